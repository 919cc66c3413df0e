#![allow(
    clippy::too_many_lines,
    reason = "benchmarks and test plugins read top to bottom"
)]
//! The I/O benchmark behind `BENCHMARKS.md`'s delivery table: how long
//! delivering one batch takes when every request waits on the network.
//!
//! ```sh
//! cargo bench -p host --bench io
//! ```
//!
//! A loopback stand-in for the services answers every request after a fixed
//! latency (0, 5, 20 and 50 ms), the way the services answer, through the
//! real AWS SDK and the real destinations: 1,000 records of ~1 KB
//! (clickstream JSON, 100 users) to an SQS standard queue, an SQS FIFO queue
//! (a message group per user), S3, a Kinesis stream, a Firehose delivery
//! stream, an EventBridge bus, an SNS topic, a DynamoDB table, and SQS and
//! S3 at once plus a dead-letter queue (every 10th record dead-lettered). For each: the wall
//! time of dispatch, the requests the stand-in served, the most it had in
//! flight at once, and the floor: `ceil(requests / max_in_flight) ×
//! latency` for the slowest destination, plus the same run at 0 ms.
//! `SLUICE_BENCH_IN_FLIGHT` (default: each destination's default) sets
//! `max_in_flight`; 1 is one request at a time. Moto is not used: it is
//! slower than the code under test.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use base64::Engine as _;
use host::config::{self, Location};
use host::destination::Destination;
use host::event;
use host::outcome::{FailureClass, RecordFailure};
use host::pipeline::Pipeline;
use host::plugin::Runtime;

#[path = "../../tests/support/standin.rs"]
mod standin;

use standin::Served;

/// Starts the stand-in, answering every request as taken after `latency`.
async fn stand_in(latency: Duration, served: Arc<Served>) -> String {
    standin::start(move |_| latency, standin::all_taken(), served).await
}

/// 1,000 records of ~1 KB on one shard, 100 users.
fn event_json() -> Vec<u8> {
    let records: Vec<String> = (0..1000)
        .map(|i| {
            let user = format!("user-{}", i % 100);
            let payload = serde_json::json!({
                "type": "page_view", "user": {"id": user}, "url": format!("/p/{i}"),
                "padding": "x".repeat(900),
            })
            .to_string();
            format!(
                r#"{{"eventID":"shardId-000000000000:{i:056}","kinesis":{{"partitionKey":"{user}","data":"{}","sequenceNumber":"{i:056}","approximateArrivalTimestamp":1700000000.0}}}}"#,
                base64::engine::general_purpose::STANDARD.encode(payload)
            )
        })
        .collect();
    format!(r#"{{"Records":[{}]}}"#, records.join(",")).into_bytes()
}

/// One row: the destinations (`standard`, `fifo`, `s3`, `dlq`) at one latency.
struct Row {
    wall: Duration,
    requests: usize,
    peak: usize,
    /// Per destination: (name, requests, max_in_flight).
    per_destination: Vec<(String, usize, usize)>,
}

async fn run(endpoint: &str, served: &Served, which: &[&str], in_flight: Option<usize>) -> Row {
    let extra = in_flight.map_or(String::new(), |n| format!("max_in_flight = {n}\n"));
    let mut text = String::new();
    for d in which {
        text.push_str(&match *d {
            "standard" => format!("[destinations.standard]\ntype = \"sqs\"\nqueue_url = \"{endpoint}/123456789012/standard\"\n{extra}"),
            "fifo" => format!("[destinations.fifo]\ntype = \"sqs\"\nqueue_url = \"{endpoint}/123456789012/ordered.fifo\"\n{extra}"),
            "s3" => format!("[destinations.s3]\ntype = \"s3\"\nbucket = \"archive\"\nkey = \"{{shard}}/{{first_seq}}.jsonl\"\n{extra}"),
            "dlq" => format!("[destinations.dlq]\ntype = \"sqs\"\nqueue_url = \"{endpoint}/123456789012/dlq\"\nformat = \"raw\"\n{extra}"),
            "kinesis" => format!("[destinations.kinesis]\ntype = \"kinesis\"\nstream = \"clicks-enriched\"\n{extra}"),
            "firehose" => format!("[destinations.firehose]\ntype = \"firehose\"\ndelivery_stream = \"clicks-to-lake\"\n{extra}"),
            "eventbridge" => format!("[destinations.eventbridge]\ntype = \"eventbridge\"\nsource = \"sluice.bench\"\ndetail_type = \"page_view\"\n{extra}"),
            "sns" => format!("[destinations.sns]\ntype = \"sns\"\ntopic_arn = \"arn:aws:sns:us-east-1:123456789012:clicks\"\n{extra}"),
            "dynamodb" => format!("[destinations.dynamodb]\ntype = \"dynamodb\"\ntable = \"clicks\"\nformat = \"envelope\"\n{extra}"),
            _ => unreachable!(),
        });
    }
    let first = which.iter().find(|d| **d != "dlq").unwrap();
    text.push_str(&format!("[routing]\ndefault = \"{first}\"\n"));
    if which.contains(&"dlq") {
        text.push_str("dead_letter = \"dlq\"\n");
    }
    let plan = config::parse(&text, &Location::File("bench.toml".into())).unwrap();
    let aws = host::aws::Aws::for_endpoint(endpoint, "us-east-1", "bench").await;
    let mut destinations: Vec<Destination> = plan
        .destinations
        .iter()
        .map(|d| Destination::open(d, Some(&aws)).unwrap())
        .collect();
    for d in &mut destinations {
        d.read_limits().await;
    }
    let runtime = Runtime::new().unwrap();
    let mut pipeline = Pipeline::load(&runtime, plan.clone()).unwrap();
    let all: Vec<usize> = plan
        .destinations
        .iter()
        .enumerate()
        .filter(|(_, d)| d.name != "dlq")
        .map(|(i, _)| i)
        .collect();
    let json = event_json();
    // A warm-up batch: connections opened, the SDK's first-use costs paid.
    let mut wall = Duration::ZERO;
    let mut report = None;
    for round in 0..2 {
        let batch = event::decode(&json, "bench").unwrap();
        let mut outcome = pipeline.run(batch);
        for r in &mut outcome.routed {
            r.destinations = all.clone();
        }
        if which.contains(&"dlq") {
            let failures = (0..outcome.records_in).step_by(10).map(|i| RecordFailure {
                index: i,
                shard_id: Some("shardId-000000000000".into()),
                sequence_number: Some(format!("{i:056}")),
                stage: "bench".into(),
                plugin: None,
                class: FailureClass::Invalid,
                reason: "every 10th record".into(),
                action: config::OnError::DeadLetter,
            });
            outcome.fail_all(failures);
        }
        served.reset();
        let started = Instant::now();
        let r = host::dispatch::dispatch(&plan, &mut outcome, &mut destinations, None).await;
        if round == 1 {
            wall = started.elapsed();
            assert!(
                outcome.failures.is_empty(),
                "{:?}",
                outcome.failures.first()
            );
            report = Some(r);
        }
    }
    let report = report.unwrap();
    Row {
        wall,
        requests: served.requests.load(Ordering::SeqCst),
        peak: served.peak.load(Ordering::SeqCst),
        per_destination: plan
            .destinations
            .iter()
            .zip(&report.destinations)
            .map(|(d, s)| (d.name.clone(), s.requests, d.kind.max_in_flight()))
            .collect(),
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let in_flight = std::env::var("SLUICE_BENCH_IN_FLIGHT")
        .ok()
        .and_then(|v| v.parse().ok());
    let rows: [(&str, &[&str]); 9] = [
        ("SQS standard", &["standard"]),
        ("SQS FIFO (100 groups)", &["fifo"]),
        ("S3", &["s3"]),
        ("Kinesis (100 keys)", &["kinesis"]),
        ("Firehose", &["firehose"]),
        ("EventBridge", &["eventbridge"]),
        ("SNS standard", &["sns"]),
        ("DynamoDB", &["dynamodb"]),
        (
            "all + dead-letter queue",
            &["standard", "fifo", "s3", "dlq"],
        ),
    ];
    println!(
        "max_in_flight: {}",
        in_flight.map_or("each destination's default".to_owned(), |n: usize| n
            .to_string())
    );
    println!(
        "| destinations | latency | wall | requests | peak in flight | floor | wall / floor |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    rt.block_on(async {
        for (name, which) in rows {
            let mut at_zero = Duration::ZERO;
            for latency_ms in [0u64, 5, 20, 50] {
                let served = Arc::new(Served::default());
                let endpoint = stand_in(Duration::from_millis(latency_ms), served.clone()).await;
                let row = run(&endpoint, &served, which, in_flight).await;
                if latency_ms == 0 {
                    at_zero = row.wall;
                }
                // The dead letters go first, then every destination at once.
                let rounds = |(_, requests, max): &(String, usize, usize)| requests.div_ceil(*max);
                let dlq = row
                    .per_destination
                    .iter()
                    .filter(|d| d.0 == "dlq")
                    .map(rounds)
                    .sum::<usize>();
                let slowest = row
                    .per_destination
                    .iter()
                    .filter(|d| d.0 != "dlq")
                    .map(rounds)
                    .max()
                    .unwrap_or(0);
                let floor = Duration::from_millis((dlq + slowest) as u64 * latency_ms) + at_zero;
                println!(
                    "| {name} | {latency_ms} ms | {:.0} ms | {} | {} | {:.0} ms | {:.2} |",
                    row.wall.as_secs_f64() * 1e3,
                    row.requests,
                    row.peak,
                    floor.as_secs_f64() * 1e3,
                    row.wall.as_secs_f64() / floor.as_secs_f64().max(1e-9)
                );
            }
        }
    });
}
