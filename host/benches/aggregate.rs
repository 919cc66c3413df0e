#![allow(
    clippy::too_many_lines,
    reason = "benchmarks and test plugins read top to bottom"
)]
//! The `aggregate` benchmark behind `BENCHMARKS.md`'s window table: what
//! folding costs per record with the `count-by` example plugin, and how big
//! its window state is per 1,000 distinct values.
//!
//! Run with: `cargo bench -p host --bench aggregate` (`SLUICE_BENCH_SECONDS`
//! per row, default 2).
//!
//! Each row runs a 1,000-record batch through a pipeline of one `count-by`
//! step, in a window (the step keeps a copy of each event, then one `fold`
//! call folds them) and, for the baseline, without one (events pass the step
//! untouched): the difference is the cost of aggregating.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use host::config::{self, Location};
use host::event::{Batch, Record};
use host::pipeline::Pipeline;
use host::plugin::{Runtime, Window};

fn batch(records: usize, distinct: usize) -> Batch {
    let records: Vec<Record> = (0..records)
        .map(|i| Record {
            shard_id: "shardId-000000000000".into(),
            sequence_number: format!("{}", 49_000_000_000u64 + i as u64),
            sub_sequence_number: None,
            partition_key: format!("u{}", i % 97),
            arrival_ms: 1_765_000_000_000,
            data: format!(
                r#"{{"type":"page_view","page":"/p/{:07}","user":"u{}","ms":{i}}}"#,
                i % distinct,
                i % 97
            )
            .into_bytes(),
            attributes: Vec::new(),
        })
        .collect();
    Batch {
        slot: (0..records.len()).collect(),
        records,
        ..Batch::default()
    }
}

fn main() {
    let seconds: f64 = std::env::var("SLUICE_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2.0);
    let text = format!(
        "[[steps]]\nname = \"pages\"\nkind = \"aggregate\"\nplugin = \"{}\"\n\
         config = {{ field = \"page\" }}\ndestinations = [\"out\"]\n\
         [destinations.out]\ntype = \"stdout\"\n",
        host::built_plugins::COUNT_BY
    );
    let plan = config::parse(&text, &Location::File("bench.toml".into())).unwrap();
    let runtime = Runtime::new().unwrap();
    let mut pipeline = Pipeline::load(&runtime, plan).unwrap();
    let window = Window {
        start_ms: 1_765_000_000_000,
        end_ms: 1_765_000_060_000,
        start: "2025-12-06T05:46:40Z".into(),
        end: "2025-12-06T05:47:40Z".into(),
    };
    let budget = Duration::from_secs_f64(seconds);
    println!(
        "| distinct values | state after the batch | ns per record, no window | ns per record, folded | fold cost per record |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for distinct in [10usize, 1_000, 10_000] {
        let n = 1_000.max(distinct);
        let mut per_record = [0.0f64; 2];
        let mut state_bytes = 0;
        for (k, windowed) in [false, true].into_iter().enumerate() {
            let started = Instant::now();
            let mut runs = 0u32;
            while started.elapsed() < budget || runs < 3 {
                let b = batch(n, distinct);
                let t = Instant::now();
                pipeline.open_window(windowed);
                let outcome = pipeline.run_until(b, None);
                if windowed {
                    let folds = pipeline.fold_window(&window, &BTreeMap::new(), |_, _| true, None);
                    assert!(folds.failures.is_empty(), "{:?}", folds.failures.first());
                    state_bytes = folds.states["pages"].len();
                }
                per_record[k] += t.elapsed().as_secs_f64() * 1e9 / n as f64;
                runs += 1;
                std::hint::black_box(outcome);
            }
            per_record[k] /= f64::from(runs);
        }
        println!(
            "| {distinct} ({n} records) | {state_bytes} bytes ({:.1} bytes per value) | {:.0} | {:.0} | {:.0} |",
            state_bytes as f64 / distinct as f64,
            per_record[0],
            per_record[1],
            per_record[1] - per_record[0]
        );
    }
}
