//! Delivery with many requests in flight, against the loopback stand-in of
//! `tests/support/standin.rs` (moto cannot inject per-entry faults or hold
//! requests open long enough to overlap them reliably).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use host::config::{self, Location};
use host::destination::Destination;
use host::pipeline::Pipeline;
use host::plugin::Runtime;
use sha2::{Digest as _, Sha256};

use crate::support::standin::{self, Call, Reply, Served};

/// What a fault-injecting FIFO queue took, per message group, in the order
/// it took it.
#[derive(Default)]
struct FifoQueue {
    /// Group → bodies, as taken (duplicates included).
    groups: BTreeMap<String, Vec<String>>,
    /// Messages seen (taken or failed), by body, with how often.
    seen: HashMap<String, usize>,
    /// Deduplication ids taken.
    taken: HashSet<String>,
    /// Entries failed on purpose.
    failed: usize,
    /// Entries dropped as duplicates, as SQS FIFO does within 5 minutes.
    deduplicated: usize,
}

/// A 64-bit hash, for faults chosen deterministically by content.
fn hash(text: &str) -> u64 {
    u64::from_le_bytes(Sha256::digest(text.as_bytes())[..8].try_into().unwrap())
}

/// `SendMessageBatch` as a FIFO queue answers it, with faults: the first
/// time it sees a message it fails that entry (`SenderFault = false`,
/// "ServiceUnavailable") for about 1 in 6 messages, while still taking
/// the other entries of the request, later ones of the same group included
/// (SQS does that). An id it took before is dropped as a duplicate.
fn faulty_fifo(queue: Arc<Mutex<FifoQueue>>) -> standin::Answer {
    Arc::new(move |call: &Call| {
        assert_eq!(
            call.target.as_deref(),
            Some("AmazonSQS.SendMessageBatch"),
            "only SendMessageBatch is expected"
        );
        let request: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
        let mut queue = queue.lock().unwrap();
        let (mut ok, mut failed) = (Vec::new(), Vec::new());
        for entry in standin::entries(&request) {
            let dedup = entry["MessageDeduplicationId"].as_str().unwrap().to_owned();
            let group = entry["MessageGroupId"].as_str().unwrap().to_owned();
            let body = entry["MessageBody"].as_str().unwrap().to_owned();
            let times = {
                let seen = queue.seen.entry(body.clone()).or_default();
                *seen += 1;
                *seen
            };
            if times == 1 && hash(&body).is_multiple_of(6) {
                queue.failed += 1;
                failed.push(serde_json::json!({
                    "Id": entry["Id"], "SenderFault": false,
                    "Code": "ServiceUnavailable", "Message": "injected",
                }));
                continue;
            }
            if !queue.taken.insert(dedup) {
                queue.deduplicated += 1;
            } else {
                queue.groups.entry(group).or_default().push(body);
            }
            ok.push(standin::sqs_taken(&entry["Id"]));
        }
        Reply::json(serde_json::json!({"Successful": ok, "Failed": failed}))
    })
}

/// 1,000 records on one shard, 40 partition keys; each payload names its
/// key and its place.
fn event_json() -> Vec<u8> {
    let records: Vec<String> = (0..1000)
        .map(|i| {
            let key = format!("user-{}", i % 40);
            let payload = format!(r#"{{"user":"{key}","n":{i}}}"#);
            format!(
                r#"{{"eventID":"shardId-000000000000:{i:056}","kinesis":{{"partitionKey":"{key}","data":"{}","sequenceNumber":"{i:056}","approximateArrivalTimestamp":1700000000.0}}}}"#,
                base64::engine::general_purpose::STANDARD.encode(payload)
            )
        })
        .collect();
    format!(r#"{{"Records":[{}]}}"#, records.join(",")).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_groups_arrive_in_order_with_many_requests_in_flight_under_faults() {
    let queue = Arc::new(Mutex::new(FifoQueue::default()));
    let served = Arc::new(Served::default());
    // 20–31 ms per request, varied so that requests of different groups
    // overtake each other, and long enough that a busy machine (CI builds
    // the fuzz targets meanwhile) still sends the next ones before the
    // first answers come back.
    let endpoint = standin::start(
        |n| Duration::from_millis(20 + (n as u64 * 7919) % 12),
        faulty_fifo(queue.clone()),
        served.clone(),
    )
    .await;
    let text = format!(
        "[destinations.ordered]\ntype = \"sqs\"\nqueue_url = \"{endpoint}/123456789012/ordered.fifo\"\nformat = \"raw\"\nmax_in_flight = 16\n\n[routing]\ndefault = \"ordered\"\n"
    );
    let plan = config::parse(&text, &Location::File("delivery.toml".into())).unwrap();
    let aws = host::aws::Aws::for_endpoint(&endpoint, "us-east-1", "stand-in").await;
    let mut destinations: Vec<Destination> = plan
        .destinations
        .iter()
        .map(|d| Destination::open(d, Some(&aws)).unwrap())
        .collect();
    let runtime = Runtime::new().unwrap();
    let mut pipeline = Pipeline::load(&runtime, plan.clone()).unwrap();
    let batch = host::event::decode(&event_json(), "delivery").unwrap();
    let mut outcome = pipeline.run(batch);
    let report = host::dispatch::dispatch(&plan, &mut outcome, &mut destinations, None).await;

    assert!(
        outcome.failures.is_empty(),
        "every record is delivered after resends: {:?}",
        outcome.failures.first()
    );
    let queue = queue.lock().unwrap();
    assert!(
        queue.failed >= 50,
        "faults were injected: {} entries failed",
        queue.failed
    );
    let peak = served.peak.load(Ordering::SeqCst);
    assert!(peak >= 8, "many requests in flight at once: peak {peak}");
    assert!(report.destinations[0].requests > 100, "{report:?}");

    // Per group: every message arrived, and the last copy of each is in
    // input order.
    assert_eq!(queue.groups.len(), 40);
    for (group, bodies) in &queue.groups {
        let numbers: Vec<u64> = bodies
            .iter()
            .map(|b| {
                serde_json::from_str::<serde_json::Value>(b).unwrap()["n"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        let mut last: Vec<u64> = Vec::new();
        for (i, n) in numbers.iter().enumerate() {
            if !numbers[i + 1..].contains(n) {
                last.push(*n);
            }
        }
        let user: u64 = group.trim_start_matches("user-").parse().unwrap();
        let expected: Vec<u64> = (0..1000).filter(|i| i % 40 == user).collect();
        assert_eq!(
            last, expected,
            "group {group}: last copies in input order (as taken: {numbers:?})"
        );
    }
}

/// An S3 key with `{attr:NAME}` and `{partition_key}` splits a shard's
/// outputs into one object per rendered key, each in input order, named by
/// its own first sequence number (so a retried batch writes the same keys).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_keys_from_the_records_split_objects_by_rendered_key() {
    let objects: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let seen = objects.clone();
    let answer: standin::Answer = Arc::new(move |call: &Call| {
        seen.lock().unwrap().insert(
            call.path.clone(),
            String::from_utf8(call.body.clone()).unwrap(),
        );
        Reply {
            status: 200,
            content_type: "application/xml",
            body: String::new(),
        }
    });
    let served = Arc::new(Served::default());
    let endpoint = standin::start(|_| Duration::ZERO, answer, served).await;
    let text = "[destinations.lake]\ntype = \"s3\"\nbucket = \"lake\"\nkey = \"{attr:tenant}/{partition_key}/{shard}-{first_seq}.jsonl\"\n";
    let plan = config::parse(text, &Location::File("s3.toml".into())).unwrap();
    let aws = host::aws::Aws::for_endpoint(&endpoint, "us-east-1", "stand-in").await;
    let mut destinations = vec![Destination::open(&plan.destinations[0], Some(&aws)).unwrap()];
    // A step-less pipeline cannot set attributes: set them on the outputs.
    let runtime = Runtime::new().unwrap();
    let mut pipeline = Pipeline::load(&runtime, plan.clone()).unwrap();
    let records: Vec<(String, String)> = (0..12)
        .map(|i| (format!("k{}", i % 2), format!(r#"{{"n":{i}}}"#)))
        .collect();
    let event: Vec<(&str, String)> = records
        .iter()
        .map(|(k, p)| (k.as_str(), p.clone()))
        .collect();
    let batch = host::event::decode(&crate::support::kinesis_event(&event), "s3").unwrap();
    let mut outcome = pipeline.run(batch);
    for (i, r) in outcome.routed.iter_mut().enumerate() {
        let tenant = if i % 3 == 0 { "acme" } else { "globex" };
        r.record.attributes.push(("tenant".into(), tenant.into()));
    }
    host::dispatch::dispatch(&plan, &mut outcome, &mut destinations, None).await;
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);

    let objects = objects.lock().unwrap();
    let mut want: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for i in 0..12 {
        let tenant = if i % 3 == 0 { "acme" } else { "globex" };
        want.entry(format!("{tenant}/k{}", i % 2))
            .or_default()
            .push(i);
    }
    assert_eq!(objects.len(), want.len(), "{:?}", objects.keys());
    for (prefix, numbers) in want {
        let first_seq = format!("{}00", numbers[0] + 1);
        let path = format!("/lake/{prefix}/shardId-000000000000-{first_seq}.jsonl?x-id=PutObject");
        let body = objects
            .get(&path)
            .unwrap_or_else(|| panic!("no object {path}: {:?}", objects.keys()));
        let got: Vec<usize> = body
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["n"]
                    .as_u64()
                    .unwrap() as usize
            })
            .collect();
        assert_eq!(got, numbers, "{path}");
    }
}

/// What a kind refuses every time fails its record alone, class `contract`,
/// with a reason naming the rule; the other records are delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_each_new_kind_refuses_fails_its_record_alone_as_contract() {
    let served = Arc::new(Served::default());
    let endpoint = standin::start(|_| Duration::ZERO, standin::all_taken(), served).await;
    let cases = [
        (
            "[destinations.out]\ntype = \"eventbridge\"\nsource = \"s\"\ndetail_type = \"d\"\n",
            "not json",
            "not a JSON object",
        ),
        (
            "[destinations.out]\ntype = \"eventbridge\"\nsource = \"s\"\ndetail_type = \"d\"\n",
            "[1, 2]",
            "not a JSON object",
        ),
        (
            "[destinations.out]\ntype = \"dynamodb\"\ntable = \"clicks\"\n",
            r#"{"user": "u-1"}"#,
            "key attribute `sequence_number` of table `clicks` is missing (the table's key: `sequence_number` (string), `output_index` (number))",
        ),
        (
            "[destinations.out]\ntype = \"dynamodb\"\ntable = \"clicks\"\n",
            r#"{"sequence_number": 7, "output_index": 1}"#,
            "key attribute `sequence_number` of table `clicks` is not a string",
        ),
        (
            "[destinations.out]\ntype = \"kinesis\"\nstream = \"next\"\npartition_key = \"{partition_key}-{partition_key}\"\n",
            "long key",
            "renders to 401 characters; Kinesis takes 1 to 256",
        ),
        (
            "[destinations.out]\ntype = \"kinesis\"\nstream = \"next\"\nexplicit_hash_key = \"{partition_key}\"\n",
            "not a number",
            "Kinesis takes a decimal from 0 to 2^128 - 1",
        ),
    ];
    for (text, bad, reason) in cases {
        // The Kinesis cases' bad record is in its partition key.
        let (good_key, bad_key, bad) = match bad {
            "long key" => ("12".to_owned(), "k".repeat(200), r#"{"a": 1}"#),
            "not a number" => ("12".to_owned(), "k".to_owned(), r#"{"a": 1}"#),
            _ => ("12".to_owned(), "12".to_owned(), bad),
        };
        let plan = config::parse(text, &Location::File("refusals.toml".into())).unwrap();
        let aws = host::aws::Aws::for_endpoint(&endpoint, "us-east-1", "stand-in").await;
        let mut destinations = vec![Destination::open(&plan.destinations[0], Some(&aws)).unwrap()];
        destinations[0].read_limits().await;
        let runtime = Runtime::new().unwrap();
        let mut pipeline = Pipeline::load(&runtime, plan.clone()).unwrap();
        let good = r#"{"sequence_number": "1", "output_index": 0, "a": 1}"#;
        let records = [
            (good_key.as_str(), good.to_owned()),
            (bad_key.as_str(), bad.to_owned()),
            (good_key.as_str(), good.to_owned()),
        ];
        let batch = host::event::decode(&crate::support::kinesis_event(&records), "r").unwrap();
        let mut outcome = pipeline.run(batch);
        host::dispatch::dispatch(&plan, &mut outcome, &mut destinations, None).await;
        let failures: Vec<_> = outcome
            .failures
            .iter()
            .filter(|f| f.class == host::outcome::FailureClass::Contract)
            .collect();
        assert_eq!(failures.len(), 1, "{text} {bad}: {:?}", outcome.failures);
        assert_eq!(failures[0].index, 1, "{text}");
        assert!(
            failures[0].reason.contains(reason),
            "{text} {bad}: {}",
            failures[0].reason
        );
    }
}
