//! Throughput of the example (clickstream) pipeline, from the Kinesis event
//! JSON to encoded outputs ready for their destinations, with and without the
//! execution-time limit (epoch interruption).
//!
//! Run with: `cargo bench -p host --bench pipeline`. Figures go to
//! `BENCHMARKS.md`.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use host::config;
use host::event;
use host::pipeline::Pipeline;
use host::plugin::{Runtime, RuntimeOptions};
use host::sink;

/// A Lambda Kinesis event of `n` clickstream records of about 1 KB each:
/// 80% page views, 10% purchases of two items, 10% bot traffic, on 4 shards.
fn event_json(n: usize) -> Vec<u8> {
    let pad = "x".repeat(640);
    let records: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let user = format!("u-{}", i % 97);
            let payload = match i % 10 {
                0 => serde_json::json!({
                    "type": "purchase", "user_id": user, "email": format!("{user}@example.com"),
                    "ip": "198.51.100.23", "order_id": format!("o-{i}"), "currency": "EUR",
                    "items": [{"sku": "SKU-42", "qty": 1, "price_cents": 1999},
                              {"sku": "SKU-7", "qty": 2, "price_cents": 450}],
                    "note": pad,
                }),
                1 => serde_json::json!({
                    "type": "page_view", "user_id": "crawler", "url": "/robots.txt",
                    "user_agent": "Googlebot/2.1", "bot": true, "note": pad,
                }),
                _ => serde_json::json!({
                    "type": "page_view", "user_id": user, "email": format!("{user}@example.com"),
                    "ip": "203.0.113.7", "url": format!("/products/{i}"),
                    "user_agent": "Mozilla/5.0", "bot": false, "note": pad,
                }),
            };
            let data = base64::engine::general_purpose::STANDARD
                .encode(serde_json::to_vec(&payload).unwrap());
            let seq = format!("4959033827149025660855969253836157109592157598913{:07}", i);
            let shard = format!("shardId-{:012}", i % 4);
            serde_json::json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0", "partitionKey": user, "sequenceNumber": seq,
                    "data": data, "approximateArrivalTimestamp": 1795334400.0 + i as f64 * 0.001,
                },
                "eventSource": "aws:kinesis", "eventVersion": "1.0",
                "eventID": format!("{shard}:{seq}"), "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/sluice",
                "awsRegion": "eu-west-1",
                "eventSourceARN": "arn:aws:kinesis:eu-west-1:123456789012:stream/clickstream",
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "Records": records })).unwrap()
}

fn pipeline(time_limits: bool) -> Pipeline {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/clickstream/pipeline.toml");
    let plan = config::load(&path).expect("the example config loads");
    let runtime = Runtime::with_options(RuntimeOptions { time_limits }).unwrap();
    Pipeline::load(&runtime, plan).expect("the example plugins load")
}

/// Decode, run the three plugins, encode every output for each destination.
fn process(pipeline: &mut Pipeline, json: &[u8], bufs: &mut [Vec<u8>]) -> usize {
    let batch = event::decode(json, "bench").unwrap();
    let outcome = pipeline.run(batch);
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    for b in bufs.iter_mut() {
        b.clear();
    }
    let formats: Vec<_> = pipeline
        .plan()
        .destinations
        .iter()
        .map(|d| d.kind.format())
        .collect();
    for routed in &outcome.routed {
        for d in &routed.destinations {
            sink::encode(formats[*d], routed, &mut bufs[*d]);
        }
    }
    outcome.routed.len()
}

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("clickstream");
    for n in [100, 1000, 3000] {
        let json = event_json(n);
        group.throughput(Throughput::Elements(n as u64));
        for (label, limits) in [("time-limit", true), ("no-time-limit", false)] {
            let mut p = pipeline(limits);
            let mut bufs = vec![Vec::new(); p.plan().destinations.len()];
            group.bench_with_input(BenchmarkId::new(label, n), &json, |b, json| {
                b.iter(|| process(&mut p, json, &mut bufs))
            });
        }
    }
    group.finish();
}

/// The cost of the time limit, measured in pairs: the same batch through a
/// pipeline with and one without epoch interruption, alternating, so that
/// drift in the machine's speed hits both alike. Prints the median ratio.
fn time_limit_overhead(c: &mut Criterion) {
    let json = event_json(1000);
    let mut on = pipeline(true);
    let mut off = pipeline(false);
    let mut bufs = vec![Vec::new(); on.plan().destinations.len()];
    let mut time = |p: &mut Pipeline| {
        let started = Instant::now();
        std::hint::black_box(process(p, &json, &mut bufs));
        started.elapsed().as_secs_f64()
    };
    for _ in 0..5 {
        time(&mut on);
        time(&mut off);
    }
    let mut ratios: Vec<f64> = (0..60)
        .map(|_| {
            let a = time(&mut on);
            let b = time(&mut off);
            a / b
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    let (q1, q3) = (ratios[ratios.len() / 4], ratios[ratios.len() * 3 / 4]);
    println!(
        "time-limit overhead (1000-record batch, 60 alternating pairs): median {:+.1}% (quartiles {:+.1}% .. {:+.1}%)",
        (median - 1.0) * 100.0,
        (q1 - 1.0) * 100.0,
        (q3 - 1.0) * 100.0
    );
    let _ = c;
}

fn fixed_overhead(c: &mut Criterion) {
    let json = event_json(1);
    let mut p = pipeline(true);
    let mut bufs = vec![Vec::new(); p.plan().destinations.len()];
    c.bench_function("one-record batch, warm instances", |b| {
        b.iter(|| process(&mut p, &json, &mut bufs))
    });
    c.bench_function("one-record batch, fresh instances", |b| {
        // Instantiation (and each plugin's `init`) is part of what is timed.
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                p.reset();
                let started = Instant::now();
                std::hint::black_box(process(&mut p, &json, &mut bufs));
                total += started.elapsed();
            }
            total
        })
    });
}

#[allow(missing_docs, reason = "criterion_group! generates an undocumented fn")]
mod group {
    criterion::criterion_group!(
        benches,
        super::throughput,
        super::time_limit_overhead,
        super::fixed_overhead
    );
}
use group::benches;
criterion_main!(benches);
