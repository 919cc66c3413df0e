#![allow(
    clippy::too_many_lines,
    reason = "benchmarks and test plugins read top to bottom"
)]
//! The `tables` benchmark behind `BENCHMARKS.md`'s lookup-table figures:
//! what loading a table costs per million rows (time and memory), and what
//! one lookup costs per record through the `enrich` example plugin.
//!
//! Run with: `cargo bench -p host --bench tables` (`SLUICE_BENCH_ROWS`,
//! default 1,000,000; `SLUICE_BENCH_RECORDS`, default 100,000).
//!
//! The lookup cost is the difference between the `enrich` step finding each
//! record's key in the table (lookup, row copied into the plugin, spliced
//! into the payload) and the same step on records without the key field
//! (no lookup: the event goes on unchanged), on the same batches.

use std::time::Instant;

use host::config::{self, Location};
use host::event::{Batch, Record};
use host::pipeline::Pipeline;
use host::plugin::Runtime;
use host::table::{Duplicates, Spec, TableFormat};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `rows` customers as JSON Lines (about 80 bytes a row) and as CSV.
fn tables(rows: usize) -> (String, String) {
    let tiers = ["gold", "silver", "bronze"];
    let mut jsonl = String::with_capacity(rows * 80);
    let mut csv = String::with_capacity(rows * 40);
    csv.push_str("id,tier,since,country\n");
    for i in 0..rows {
        let tier = tiers[i % 3];
        jsonl.push_str(&format!(
            "{{\"id\":\"u-{i}\",\"tier\":\"{tier}\",\"since\":\"2021-03-14\",\"country\":\"IE\"}}\n"
        ));
        csv.push_str(&format!("u-{i},{tier},2021-03-14,IE\n"));
    }
    (jsonl, csv)
}

fn batch(from: usize, n: usize, rows: usize, field: &str) -> Batch {
    let records: Vec<Record> = (from..from + n)
        .map(|i| Record {
            shard_id: "shardId-000000000000".into(),
            sequence_number: format!("{}", 49_000_000_000u64 + i as u64),
            sub_sequence_number: None,
            partition_key: format!("u{}", i % 97),
            arrival_ms: 1_765_000_000_000,
            data: format!(
                r#"{{"type":"page_view","{field}":"u-{}","url":"/p/{i}"}}"#,
                (i * 7919) % rows
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

/// The process's resident set (`VmRSS`), in bytes.
fn rss() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().strip_suffix("kB"))
                .and_then(|v| v.trim().parse::<usize>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn main() {
    let rows = env("SLUICE_BENCH_ROWS", 1_000_000);
    let records = env("SLUICE_BENCH_RECORDS", 100_000);
    let (jsonl, csv) = tables(rows);
    let per_million = 1e6 / rows as f64;

    println!(
        "| table ({rows} rows) | file | load | load per million rows | held (rows + index) | per million rows | RSS growth |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (format, text) in [(TableFormat::Jsonl, &jsonl), (TableFormat::Csv, &csv)] {
        let before = rss();
        let started = Instant::now();
        let table = host::table::parse(
            &Spec {
                name: "customers",
                source: "bench",
                format,
                key: "id",
                duplicates: Duplicates::Error,
                max_bytes: usize::MAX,
            },
            text.as_bytes(),
        )
        .unwrap();
        let took = started.elapsed();
        let grown = rss().saturating_sub(before);
        println!(
            "| {format:?} | {:.1} MB | {:.0} ms | {:.0} ms | {:.1} MB | {:.1} MB | {:.1} MB |",
            text.len() as f64 / 1e6,
            took.as_secs_f64() * 1e3,
            took.as_secs_f64() * 1e3 * per_million,
            table.bytes() as f64 / 1e6,
            table.bytes() as f64 / 1e6 * per_million,
            grown as f64 / 1e6,
        );
        // The host's own lookup, without a plugin around it.
        if format == TableFormat::Jsonl {
            let keys: Vec<String> = (0..100_000)
                .map(|i| format!("u-{}", (i * 7919) % rows))
                .collect();
            let started = Instant::now();
            let mut found = 0usize;
            for k in &keys {
                found += usize::from(std::hint::black_box(table.get(k)).is_some());
            }
            assert_eq!(found, keys.len());
            println!(
                "\nTable::get alone: {:.0} ns per lookup ({} keys)\n",
                started.elapsed().as_secs_f64() * 1e9 / keys.len() as f64,
                keys.len()
            );
        }
    }

    let dir = std::env::temp_dir().join(format!("sluice-bench-tables-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("customers.jsonl"), &jsonl).unwrap();
    drop((jsonl, csv));
    let text = format!(
        "[[steps]]\nname = \"enrich\"\nkind = \"transform\"\nplugin = \"{}\"\n\
         config = {{ table = \"customers\", key = \"user_id\", into = \"customer\" }}\n\
         [tables.customers]\nsource = \"customers.jsonl\"\nkey = \"id\"\nsteps = [\"enrich\"]\n\
         max_bytes = 4294967295\n\
         [destinations.out]\ntype = \"stdout\"\n",
        host::built_plugins::ENRICH
    );
    let plan = config::parse(&text, &Location::File(dir.join("bench.toml"))).unwrap();
    let runtime = Runtime::new().unwrap();
    let before = rss();
    let started = Instant::now();
    let mut pipeline = Pipeline::load(&runtime, plan).unwrap();
    println!(
        "cold start of the pipeline (table file read and parsed, plugin compiled and started): {:.0} ms, RSS +{:.0} MB\n",
        started.elapsed().as_secs_f64() * 1e3,
        rss().saturating_sub(before) as f64 / 1e6
    );
    println!("| records ({records}, batches of 1,000) | ns per record | outputs |");
    println!("|---|---:|---:|");
    let mut ns = [0.0f64; 2];
    for (k, field) in ["no_such_field", "user_id"].into_iter().enumerate() {
        // One warm-up batch, then the measured ones.
        pipeline.run(batch(0, 1_000, rows, field));
        let started = Instant::now();
        let mut outputs = 0;
        for from in (0..records).step_by(1_000) {
            let outcome = pipeline.run(batch(from, 1_000, rows, field));
            assert!(outcome.failures.is_empty());
            outputs += outcome.routed.len();
        }
        ns[k] = started.elapsed().as_secs_f64() * 1e9 / records as f64;
        println!(
            "| {} | {:.0} | {outputs} |",
            if k == 0 {
                "key field absent (no lookup)"
            } else {
                "key found (lookup, row spliced in)"
            },
            ns[k]
        );
    }
    println!("\none lookup per record: {:.0} ns", ns[1] - ns[0]);
    let _ = std::fs::remove_dir_all(&dir);
}
