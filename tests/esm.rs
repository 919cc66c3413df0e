//! No record lost under Lambda as it really is: a property test of Sluice
//! driven by a model of the Kinesis event source mapping (ESM).
//!
//! The model, per case:
//!
//! - **one shard per invocation**, as Lambda delivers a Kinesis stream;
//! - each invocation reads from the checkpoint with a **random batch size**
//!   (a redelivery seldom has the size of the batch it repeats);
//! - `batchItemFailures` move the checkpoint to the first reported record,
//!   which is redelivered with everything after it;
//! - a **function error or timeout** (injected after Sluice has delivered
//!   what it delivered, the worst moment) makes the ESM retry the whole batch;
//!   with `BisectBatchOnFunctionError` it splits the batch in two and retries
//!   each half (splits do not count as retries);
//! - after `MaximumRetryAttempts` the ESM gives up on a batch: its records
//!   go to the **on-failure destination** (recorded by the model) and the
//!   shard moves on.
//!
//! Records carry scripted plugin behaviour (the `hostile` plugin in `script`
//! mode): pass, split, filter, invalid, a retry or a trap that clears after
//! a few deliveries, and poison that never clears. Every record must end in
//! at least one of: delivered to all its routes (every output), dead-lettered,
//! dropped by the policy, filtered, or handed to the on-failure destination
//! by the ESM; anything else is **lost** (must be 0). Delivered outputs must
//! come from real records; first deliveries keep order per destination and
//! partition key (for SQS, whose `SendMessageBatch` can take later entries
//! of a request ahead of one it fails, the last copies do: Sluice resends
//! what SQS took after a failed entry of the same shard). Duplicates (at-least-once) are counted and reported.
//!
//! Most cases run on in-memory destinations that refuse random outputs; a
//! share runs against moto through [`ChaosProxy`], which fails random
//! `SendMessageBatch` entries and S3 puts, so the real SQS and S3 destinations are
//! under fault too.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use host::app::App;
use host::config::{self, Location};
use host::destination::memory::MemoryDestination;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::support::*;

const SHARD: &str = "shardId-000000000000";
/// Invocations a case may take before the model stops it.
const MAX_INVOCATIONS: usize = 400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Ok,
    Split(u8),
    None,
    Invalid,
    /// `retry` for the first `n` deliveries, then `ok`.
    Flaky(u8),
    /// A trap for the first `n` deliveries, then `ok`.
    TrapOnce(u8),
    /// `retry` every time.
    Poison,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum To {
    A,
    B,
    Both,
}

#[derive(Debug, Clone)]
struct Rec {
    key: u8,
    act: Act,
    to: To,
}

impl Rec {
    /// What the plugin is told to do on the record's `delivery`-th delivery (0-based).
    fn script(&self, delivery: usize) -> String {
        match self.act {
            Act::Ok => r#""act":"ok""#.into(),
            Act::Split(n) => format!(r#""act":"split","n":{n}"#),
            Act::None => r#""act":"none""#.into(),
            Act::Invalid => r#""act":"invalid""#.into(),
            Act::Flaky(n) if delivery < n as usize => r#""act":"retry""#.into(),
            Act::TrapOnce(n) if delivery < n as usize => r#""act":"trap""#.into(),
            Act::Flaky(_) | Act::TrapOnce(_) => r#""act":"ok""#.into(),
            Act::Poison => r#""act":"retry""#.into(),
        }
    }

    /// Outputs once the plugin passes it.
    fn outputs(&self) -> u32 {
        match self.act {
            Act::Ok | Act::Flaky(_) | Act::TrapOnce(_) => 1,
            Act::Split(n) => u32::from(n),
            Act::None | Act::Invalid | Act::Poison => 0,
        }
    }

    fn routes(&self) -> &'static [&'static str] {
        match self.to {
            To::A => &["a"],
            To::B => &["b"],
            To::Both => &["a", "b"],
        }
    }
}

#[derive(Debug, Clone)]
struct Case {
    records: Vec<Rec>,
    max_batch: usize,
    max_retries: u32,
    bisect: bool,
    /// Chance in 1000 that an invocation ends in a function error.
    errors: u16,
    /// Chance in 1000 that a destination refuses an output (or request).
    faults: u16,
    seed: u64,
}

fn rec() -> impl Strategy<Value = Rec> {
    let act = prop_oneof![
        700 => Just(Act::Ok),
        60 => (0u8..4).prop_map(Act::Split),
        60 => Just(Act::None),
        30 => Just(Act::Invalid),
        30 => (1u8..3).prop_map(Act::Flaky),
        10 => (1u8..3).prop_map(Act::TrapOnce),
        4 => Just(Act::Poison),
    ];
    let to = prop_oneof![Just(To::A), Just(To::B), Just(To::Both)];
    (0u8..6, act, to).prop_map(|(key, act, to)| Rec { key, act, to })
}

fn case(max_records: usize) -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(rec(), 1..=max_records),
        prop_oneof![Just(1usize), Just(7), Just(50), Just(100), Just(500)],
        0u32..4,
        any::<bool>(),
        prop_oneof![Just(0u16), Just(50), Just(200)],
        prop_oneof![Just(0u16), Just(20), Just(100)],
        any::<u64>(),
    )
        .prop_map(
            |(records, max_batch, max_retries, bisect, errors, faults, seed)| Case {
                records,
                max_batch,
                max_retries,
                bisect,
                errors,
                faults,
                seed,
            },
        )
}

fn seq(index: usize) -> String {
    format!("4959{index:016}")
}

/// The Lambda event for `range` of the stream; counts the deliveries.
fn event(records: &[Rec], range: std::ops::Range<usize>, deliveries: &mut [usize]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let items: Vec<String> = range
        .map(|i| {
            let r = &records[i];
            let to = match r.to {
                To::A => "a",
                To::B => "b",
                To::Both => "ab",
            };
            let data = b64.encode(format!(
                r#"{{"id":{i},{},"to":"{to}"}}"#,
                r.script(deliveries[i])
            ));
            deliveries[i] += 1;
            format!(
                r#"{{"eventID":"{SHARD}:{q}","eventSource":"aws:kinesis","kinesis":{{"partitionKey":"k{k}","data":"{data}","sequenceNumber":"{q}","approximateArrivalTimestamp":1700000000.0}}}}"#,
                k = r.key,
                q = seq(i)
            )
        })
        .collect();
    format!(r#"{{"Records":[{}]}}"#, items.join(",")).into_bytes()
}

/// The pipeline config: the scripted transform, a route, destinations `a`,
/// `b` and (under `dead-letter`) `dlq` as `destinations` defines them.
fn config(policy: &str, destinations: &str) -> String {
    format!(
        r#"
[[steps]]
name = "chaos"
kind = "transform"
plugin = {hostile:?}
config = {{ mode = "script" }}
on_error = "{policy}"

[[steps]]
name = "route"
kind = "route"
plugin = {route:?}
config = {{ field = "to", routes = {{ a = ["a"], b = ["b"], ab = ["a", "b"] }} }}
on_error = "{policy}"

{destinations}
[routing]
default = "a"
{dlq}
"#,
        hostile = crate::test_plugins::HOSTILE,
        route = crate::test_plugins::ROUTE_FIELD,
        dlq = if policy == "dead-letter" {
            "dead_letter = \"dlq\""
        } else {
            ""
        },
    )
}

/// Where a case's outputs went, read back after the run.
#[derive(Default)]
struct Delivered {
    /// `(record, destination, output index)`, in delivery order, repeats included.
    outputs: Vec<(usize, String, u32, String)>,
    /// Dead-lettered records, repeats included.
    dead: Vec<usize>,
}

/// The destinations of a case: in memory, or SQS and S3 in moto behind a
/// chaos proxy.
enum Rig {
    Memory(Vec<MemoryDestination>),
    Moto {
        aws: Box<host::aws::Aws>,
        queue_a: String,
        queue_dlq: String,
        b: MotoB,
    },
}

/// Destination `b` against moto: one kind per case, in turn.
enum MotoB {
    S3(String),
    Kinesis(String),
    DynamoDb(String),
}

impl Rig {
    fn memory(policy: &str) -> (App, Rig) {
        let mut destinations = String::from(
            "[destinations.a]\ntype = \"stdout\"\n[destinations.b]\ntype = \"stdout\"\n",
        );
        if policy == "dead-letter" {
            destinations.push_str("[destinations.dlq]\ntype = \"stdout\"\n");
        }
        let plan = config::parse(
            &config(policy, &destinations),
            &Location::File("/tmp/esm.toml".into()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (app, destinations) = crate::support::memory_app(plan);
        (app, Rig::Memory(destinations))
    }

    async fn moto(moto: &Moto, proxy: &ChaosProxy, policy: &str, n: usize) -> (App, Rig) {
        let aws = moto.aws().await;
        let queue_a = create_queue(&aws, &format!("a-{n}")).await;
        let queue_dlq = create_queue(&aws, &format!("dlq-{n}")).await;
        let name_b = format!("b-{n}");
        let (b, table_b) = match n % 3 {
            0 => {
                create_bucket(&aws, &name_b).await;
                (
                    MotoB::S3(name_b.clone()),
                    format!(
                        "type = \"s3\"\nbucket = \"{name_b}\"\nkey = \"{{shard}}/{{first_seq}}-{{last_seq}}.jsonl\"\n"
                    ),
                )
            }
            1 => {
                aws_sdk_kinesis::Client::new(&aws.shared)
                    .create_stream()
                    .stream_name(&name_b)
                    .shard_count(1)
                    .send()
                    .await
                    .unwrap();
                (
                    MotoB::Kinesis(name_b.clone()),
                    format!("type = \"kinesis\"\nstream = \"{name_b}\"\n"),
                )
            }
            _ => {
                create_lineage_table(&aws, &name_b).await;
                (
                    MotoB::DynamoDb(name_b.clone()),
                    format!("type = \"dynamodb\"\ntable = \"{name_b}\"\n"),
                )
            }
        };
        let mut destinations = format!(
            "[destinations.a]\ntype = \"sqs\"\nqueue_url = \"{queue_a}\"\nformat = \"envelope\"\n\
             [destinations.b]\n{table_b}format = \"envelope\"\n"
        );
        if policy == "dead-letter" {
            destinations.push_str(&format!(
                "[destinations.dlq]\ntype = \"sqs\"\nqueue_url = \"{queue_dlq}\"\nformat = \"raw\"\n"
            ));
        }
        let plan = config::parse(
            &config(policy, &destinations),
            &Location::File("/tmp/esm.toml".into()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let via = host::aws::Aws::for_endpoint(&proxy.endpoint, REGION, "testing").await;
        let app = App::from_plan(plan, Some(via))
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        (
            app,
            Rig::Moto {
                aws: Box::new(aws),
                queue_a,
                queue_dlq,
                b,
            },
        )
    }

    /// Makes the in-memory destinations refuse about `per_mille` of the
    /// outputs of the next invocation, counting them in `counter`.
    fn set_faults(&self, per_mille: u16, seed: u64, counter: &Arc<AtomicUsize>) {
        let Rig::Memory(destinations) = self else {
            return;
        };
        for (d, destination) in destinations.iter().enumerate() {
            let counter = counter.clone();
            let seed = seed ^ mix(d as u64 + 1);
            destination.set_fault(
                (per_mille > 0).then(|| -> host::destination::memory::Fault {
                    Arc::new(move |r| {
                        let seq: u64 = r.record.sequence_number.parse().unwrap_or(0);
                        let h = mix(seed ^ mix(seq) ^ (u64::from(r.output_index) << 48));
                        (h % 1000 < u64::from(per_mille)).then(|| {
                            counter.fetch_add(1, Ordering::Relaxed);
                            "injected: ServiceUnavailable".to_owned()
                        })
                    })
                }),
            );
        }
    }

    /// Everything delivered so far (the in-memory destinations keep accumulating).
    async fn delivered(&self) -> Delivered {
        let mut out = Delivered::default();
        let mut envelope = |dest: &str, line: &[u8]| {
            let v: serde_json::Value = serde_json::from_slice(line).unwrap();
            let i = v["data"]["id"].as_u64().unwrap() as usize;
            assert_eq!(v["sequence_number"], seq(i), "lineage kept: {v}");
            out.outputs.push((
                i,
                dest.to_owned(),
                v["output_index"].as_u64().unwrap() as u32,
                v["partition_key"].as_str().unwrap().to_owned(),
            ));
        };
        let mut dead = Vec::new();
        let mut letter = |body: &[u8]| {
            let v: serde_json::Value = serde_json::from_slice(body).unwrap();
            assert!(!v["failure"]["reason"].as_str().unwrap().is_empty());
            let s = v["record"]["sequence_number"].as_str().unwrap();
            dead.push(s[4..].parse::<usize>().unwrap());
        };
        match self {
            Rig::Memory(destinations) => {
                for destination in destinations {
                    let contents = destination.contents();
                    for line in contents.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                        if destination.name() == "dlq" {
                            letter(line);
                        } else {
                            envelope(destination.name(), line);
                        }
                    }
                }
            }
            Rig::Moto {
                aws,
                queue_a,
                queue_dlq,
                b,
            } => {
                for m in drain(aws, queue_a).await {
                    envelope("a", m.body.as_bytes());
                }
                for m in drain(aws, queue_dlq).await {
                    letter(m.body.as_bytes());
                }
                match b {
                    MotoB::S3(bucket_b) => {
                        for key in keys(aws, bucket_b).await {
                            let body = aws
                                .s3
                                .get_object()
                                .bucket(bucket_b)
                                .key(&key)
                                .send()
                                .await
                                .unwrap()
                                .body
                                .collect()
                                .await
                                .unwrap()
                                .into_bytes();
                            for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                                envelope("b", line);
                            }
                        }
                    }
                    MotoB::Kinesis(stream) => {
                        for data in read_stream(aws, stream).await {
                            envelope("b", &data);
                        }
                    }
                    MotoB::DynamoDb(table) => {
                        for item in scan_json(aws, table).await {
                            envelope("b", item.to_string().as_bytes());
                        }
                    }
                }
            }
        }
        out.dead = dead;
        out
    }
}

/// A table keyed by an envelope's lineage (`sequence_number`,
/// `output_index`).
async fn create_lineage_table(aws: &host::aws::Aws, name: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .unwrap()
    };
    let attribute = |n: &str, t: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(t)
            .build()
            .unwrap()
    };
    aws_sdk_dynamodb::Client::new(&aws.shared)
        .create_table()
        .table_name(name)
        .key_schema(key("sequence_number", KeyType::Hash))
        .key_schema(key("output_index", KeyType::Range))
        .attribute_definitions(attribute("sequence_number", ScalarAttributeType::S))
        .attribute_definitions(attribute("output_index", ScalarAttributeType::N))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
}

/// Every record's data in a one-shard stream, in order.
async fn read_stream(aws: &host::aws::Aws, stream: &str) -> Vec<Vec<u8>> {
    let kinesis = aws_sdk_kinesis::Client::new(&aws.shared);
    let mut iterator = kinesis
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id("shardId-000000000000")
        .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator;
    let mut out = Vec::new();
    while let Some(it) = iterator {
        let r = kinesis
            .get_records()
            .shard_iterator(it)
            .send()
            .await
            .unwrap();
        if r.records().is_empty() {
            break;
        }
        out.extend(r.records().iter().map(|rec| rec.data().as_ref().to_vec()));
        iterator = r.next_shard_iterator;
    }
    out
}

/// Every item of a table, as JSON.
async fn scan_json(aws: &host::aws::Aws, table: &str) -> Vec<serde_json::Value> {
    use aws_sdk_dynamodb::types::AttributeValue;
    fn json(v: &AttributeValue) -> serde_json::Value {
        match v {
            AttributeValue::S(s) => serde_json::Value::String(s.clone()),
            AttributeValue::N(n) => serde_json::from_str(n).unwrap(),
            AttributeValue::Bool(b) => serde_json::Value::Bool(*b),
            AttributeValue::Null(_) => serde_json::Value::Null,
            AttributeValue::L(l) => l.iter().map(json).collect(),
            AttributeValue::M(m) => m.iter().map(|(k, v)| (k.clone(), json(v))).collect(),
            other => panic!("not from JSON: {other:?}"),
        }
    }
    let client = aws_sdk_dynamodb::Client::new(&aws.shared);
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let r = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        out.extend(
            r.items()
                .iter()
                .map(|item| item.iter().map(|(k, v)| (k.clone(), json(v))).collect()),
        );
        start = r.last_evaluated_key;
        if start.is_none() {
            return out;
        }
    }
}

/// What a run of the model found.
#[derive(Default, Debug)]
struct Tally {
    cases: usize,
    records: usize,
    invocations: usize,
    function_errors: usize,
    plugin_faults: usize,
    destination_faults: usize,
    lost: usize,
    duplicates: usize,
    on_failure: usize,
    unfinished: usize,
}

/// Drives `app` like the ESM drives a Lambda function over one shard.
fn run_case(
    app: &mut App,
    rig: &Rig,
    policy: &str,
    case: &Case,
    tally: &mut Tally,
    rt: &tokio::runtime::Runtime,
    destination_faults: &Arc<AtomicUsize>,
) -> Result<(), TestCaseError> {
    let n = case.records.len();
    let mut deliveries = vec![0usize; n];
    let mut on_failure: HashSet<usize> = HashSet::new();
    let mut dropped: HashSet<usize> = HashSet::new();
    let mut dead_lettered: HashSet<usize> = HashSet::new();
    let mut pos = 0usize;
    let mut retries = 0u32;
    // Halves still to run after a bisect, the next one last.
    let mut halves: Vec<std::ops::Range<usize>> = Vec::new();
    let mut rng = case.seed;
    let mut draw = |m: u64| {
        rng = mix(rng.wrapping_add(0x9e37_79b9_7f4a_7c15));
        rng % m
    };
    let mut invocations = 0;
    while (pos < n || !halves.is_empty()) && invocations < MAX_INVOCATIONS {
        invocations += 1;
        let range = match halves.pop() {
            Some(r) => r,
            None => pos..(pos + 1 + draw(case.max_batch as u64) as usize).min(n),
        };
        rig.set_faults(
            case.faults,
            mix(case.seed ^ invocations as u64),
            destination_faults,
        );
        for i in range.clone() {
            if case.records[i].script(deliveries[i]).contains("retry")
                || case.records[i].script(deliveries[i]).contains("trap")
                || case.records[i].act == Act::Invalid
            {
                tally.plugin_faults += 1;
            }
        }
        let json = event(&case.records, range.clone(), &mut deliveries);
        let batch = host::event::decode(&json, "esm").unwrap();
        let report = rt.block_on(app.process(batch, None));
        for f in &report.outcome.dropped {
            dropped.insert(range.start + f.index);
        }
        for d in &report.outcome.dead_letters {
            dead_lettered.insert(range.start + d.failure.index);
        }
        let function_error = draw(1000) < u64::from(case.errors);
        let response = host::lambda::response(&report.outcome);
        let checkpoint = match (&response, function_error) {
            (Ok(r), false) => match r.batch_item_failures.as_slice() {
                [] => None,
                [one] => {
                    let id = one.item_identifier.as_deref().unwrap_or("");
                    let i = range
                        .clone()
                        .find(|&i| seq(i) == id)
                        .ok_or_else(|| TestCaseError::fail(format!("unknown checkpoint `{id}`")))?;
                    Some(i)
                }
                more => {
                    return Err(TestCaseError::fail(format!(
                        "{} checkpoints for one shard",
                        more.len()
                    )));
                }
            },
            // A function error or timeout: the whole batch again.
            _ => {
                tally.function_errors += 1;
                if case.bisect && range.len() > 1 {
                    let mid = range.start + range.len() / 2;
                    halves.push(mid..range.end);
                    halves.push(range.start..mid);
                    continue;
                }
                Some(range.start)
            }
        };
        match checkpoint {
            None => {
                retries = 0;
                pos = pos.max(range.end);
            }
            Some(from) => {
                retries += 1;
                if retries > case.max_retries {
                    // The ESM gives up: the rest of the batch goes to the
                    // on-failure destination; the shard moves on.
                    on_failure.extend(from..range.end);
                    retries = 0;
                    pos = pos.max(range.end);
                } else if halves.is_empty() && !(from..range.end).is_empty() {
                    pos = from;
                } else {
                    halves.push(from..range.end);
                }
            }
        }
    }
    tally.cases += 1;
    tally.records += n;
    tally.invocations += invocations;
    let unfinished = pos < n || !halves.is_empty();
    if unfinished {
        tally.unfinished += 1;
    }

    let got = rt.block_on(rig.delivered());
    let dead: HashSet<usize> = got.dead.iter().copied().collect();
    tally.duplicates += got.dead.len() - dead.len();
    let mut outputs: HashMap<(usize, &str), HashSet<u32>> = HashMap::new();
    let mut seen_outputs: HashSet<(usize, &str, u32)> = HashSet::new();
    // Per destination and key: records by first delivery, and by last copy.
    let mut first: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    let mut last: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    let mut seen: HashSet<(usize, &str)> = HashSet::new();
    for (i, dest, output_index, key) in &got.outputs {
        let r = &case.records[*i];
        prop_assert!(
            r.routes().contains(&dest.as_str()) && *output_index < r.outputs(),
            "invented output: record #{i} ({r:?}) output {output_index} at `{dest}`"
        );
        prop_assert_eq!(key, &format!("k{}", r.key));
        if !seen_outputs.insert((*i, dest.as_str(), *output_index)) {
            tally.duplicates += 1;
        }
        outputs
            .entry((*i, dest.as_str()))
            .or_default()
            .insert(*output_index);
        // A record dead-lettered or dropped, then replayed by a whole-batch
        // retry after its transient failure cleared, is delivered late: a
        // duplicate fate, outside the order promise (which covers first fates).
        let settled = dead_lettered.contains(i) || dropped.contains(i);
        if !settled && seen.insert((*i, dest.as_str())) {
            first
                .entry((dest.as_str(), key.as_str()))
                .or_default()
                .push(*i);
        }
    }
    // A record the ESM gave up on (handed to on-failure), or never finished
    // with when the model stopped, can have its last copy from an attempt
    // the ESM replayed only in part: a replay that ends before it brings
    // earlier records again after it. Lambda's doing, not Sluice's; the
    // last-copy order covers the records the ESM finished.
    let frontier = halves.iter().map(|r| r.start).fold(pos, usize::min);
    let finished = |i: usize| !(on_failure.contains(&i) || (unfinished && i >= frontier));
    let mut seen_last: HashSet<(usize, &str)> = HashSet::new();
    for (i, dest, _, key) in got.outputs.iter().rev() {
        let settled = dead_lettered.contains(i) || dropped.contains(i);
        if !settled && finished(*i) && seen_last.insert((*i, dest.as_str())) {
            last.entry((dest.as_str(), key.as_str()))
                .or_default()
                .insert(0, *i);
        }
    }
    for (i, r) in case.records.iter().enumerate() {
        if unfinished && i >= pos {
            continue;
        }
        let complete = r.outputs() > 0
            && r.routes().iter().all(|d| {
                outputs
                    .get(&(i, *d))
                    .is_some_and(|got| got.len() == r.outputs() as usize)
            });
        let filtered = r.outputs() == 0 && matches!(r.act, Act::None | Act::Split(0));
        let fates = [
            complete,
            dead.contains(&i),
            dropped.contains(&i),
            filtered,
            on_failure.contains(&i),
        ];
        if !fates.contains(&true) {
            tally.lost += 1;
            return Err(TestCaseError::fail(format!(
                "policy `{policy}`: record #{i} ({r:?}) is lost: delivered {:?}, {deliveries:?} deliveries",
                outputs
                    .iter()
                    .filter(|((j, _), _)| *j == i)
                    .collect::<Vec<_>>(),
                deliveries = deliveries[i]
            )));
        }
        if on_failure.contains(&i) {
            tally.on_failure += 1;
        }
    }
    let sqs_resends = matches!(rig, Rig::Moto { .. });
    let by = if sqs_resends { &last } else { &first };
    for ((dest, key), order) in by {
        // S3 objects are written whole: first deliveries hold there too.
        // Kinesis resends like SQS (last copies in order); a DynamoDB scan
        // shows no delivery order at all (a key's last write is its item).
        let order = match (rig, *dest) {
            (
                Rig::Moto {
                    b: MotoB::S3(_), ..
                },
                "b",
            ) => &first[&(*dest, *key)],
            (
                Rig::Moto {
                    b: MotoB::DynamoDb(_),
                    ..
                },
                "b",
            ) => continue,
            _ => order,
        };
        prop_assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "policy `{policy}`: deliveries out of order at `{dest}` for key {key}: {order:?}"
        );
    }
    Ok(())
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

fn report(label: &str, tally: &Tally) {
    println!(
        "esm model ({label}): {} cases, {} records, {} invocations; faults injected: {} function errors, {} plugin faults, {} destination faults; \
         lost: {}, duplicates delivered: {}, handed to on-failure by the ESM: {}, cases stopped at {MAX_INVOCATIONS} invocations: {}",
        tally.cases,
        tally.records,
        tally.invocations,
        tally.function_errors,
        tally.plugin_faults,
        tally.destination_faults,
        tally.lost,
        tally.duplicates,
        tally.on_failure,
        tally.unfinished,
    );
}

/// The model over in-memory destinations, under each policy.
#[test]
fn no_record_is_lost_under_the_event_source_mapping_in_memory() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cases: u32 = std::env::var("SLUICE_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let tally = std::cell::RefCell::new(Tally::default());
    let faults = Arc::new(AtomicUsize::new(0));
    for policy in ["retry", "dead-letter", "drop"] {
        let result = runner(cases).run(&case(300), |case| {
            // A fresh function (cold start) per case: the destinations start empty.
            let (mut app, rig) = Rig::memory(policy);
            run_case(
                &mut app,
                &rig,
                policy,
                &case,
                &mut tally.borrow_mut(),
                &rt,
                &faults,
            )
        });
        if let Err(e) = result {
            panic!("{e}");
        }
    }
    let mut tally = tally.into_inner();
    tally.destination_faults = faults.load(Ordering::Relaxed);
    report("in memory", &tally);
    assert_eq!(tally.lost, 0);
    assert!(tally.function_errors >= 50, "{tally:?}");
    assert!(tally.destination_faults >= 100, "{tally:?}");
}

/// The model against moto: the real SQS destination, and in turn S3,
/// Kinesis and DynamoDB as the second one, with random faults injected
/// between Sluice and moto.
#[test]
fn no_record_is_lost_under_the_event_source_mapping_with_real_destinations_under_fault() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let moto = Moto::start();
    let cases: u32 = std::env::var("SLUICE_PROPTEST_MOTO_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let tally = std::cell::RefCell::new(Tally::default());
    let injected = std::cell::Cell::new(0usize);
    let unused = Arc::new(AtomicUsize::new(0));
    let n = std::cell::Cell::new(0usize);
    for policy in ["retry", "dead-letter"] {
        let result = runner(cases).run(&case(120), |case| {
            n.set(n.get() + 1);
            let proxy = rt.block_on(ChaosProxy::start(
                moto.port,
                u64::from(case.faults.max(50)),
                case.seed,
            ));
            let (mut app, rig) = rt.block_on(Rig::moto(&moto, &proxy, policy, n.get()));
            let r = run_case(
                &mut app,
                &rig,
                policy,
                &case,
                &mut tally.borrow_mut(),
                &rt,
                &unused,
            );
            injected.set(injected.get() + proxy.injected());
            r
        });
        if let Err(e) = result {
            panic!("{e}");
        }
    }
    let mut tally = tally.into_inner();
    tally.destination_faults = injected.get();
    report(
        "moto, SQS with S3, Kinesis or DynamoDB, under fault",
        &tally,
    );
    assert_eq!(tally.lost, 0);
    assert!(tally.destination_faults >= 10, "{tally:?}");
}
