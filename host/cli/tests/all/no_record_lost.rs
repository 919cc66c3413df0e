//! No record lost, none invented, order kept: a property test.
//!
//! Random batches (1–500 records over 1–4 shards and 8 partition keys) go
//! through a real two-step pipeline (the `hostile` plugin in `script` mode,
//! which fails, traps, splits or drops records as each payload says, then the
//! real `route-field` plugin) into in-memory destinations that refuse random
//! outputs the way SQS and S3 do. Lambda is simulated faithfully: each
//! invocation's `batchItemFailures` decide what is redelivered next, for up
//! to four invocations. Under each `on_error` policy (`retry`, `dead-letter`,
//! `drop`) every input record must end in exactly one of: delivered to all
//! its routes (every output), dead-lettered with the reason, dropped by the
//! policy, filtered by the plugin, or still covered by the retry checkpoint;
//! every delivered output must come from an input record; and per
//! destination and partition key, first deliveries keep input order.
//!
//! The run injects thousands of faults (plugin failures and refused
//! outputs); it asserts that at least 1,000 were injected and prints the count.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use host::app::App;
use host::config::{self, Location};
use host::destination::memory::{Fault, MemoryDestination};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

const ROUNDS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Ok,
    Split(u8),
    None,
    Invalid,
    Retry,
    Trap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum To {
    A,
    B,
    Both,
    Unknown,
    Missing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broken {
    No,
    Base64,
    NoIds,
}

#[derive(Debug, Clone)]
struct Rec {
    shard: u8,
    key: u8,
    act: Act,
    to: To,
    broken: Broken,
}

impl Rec {
    /// Outputs it makes when nothing fails.
    fn outputs(&self) -> usize {
        match self.act {
            Act::Ok => 1,
            Act::Split(n) => n as usize,
            _ => 0,
        }
    }

    /// The destinations its outputs go to (`a` is `routing.default`).
    fn routes(&self) -> &'static [&'static str] {
        match self.to {
            To::A | To::Missing => &["a"],
            To::B => &["b"],
            To::Both => &["a", "b"],
            To::Unknown => &[],
        }
    }

    /// The failure class it must fail with, if it fails on its own.
    fn own_failure(&self) -> Option<&'static str> {
        match (self.broken, self.act) {
            (Broken::Base64 | Broken::NoIds, _) => Some("decode"),
            (_, Act::Invalid) => Some("invalid"),
            (_, Act::Retry) => Some("retry"),
            (_, Act::Trap) => Some("trap"),
            _ if self.to == To::Unknown && self.outputs() > 0 => Some("contract"),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Scenario {
    records: Vec<Rec>,
    /// Per destination `a`, `b`, `dlq`: chance in 1000 that an output is refused.
    faults: [u16; 3],
    seed: u64,
}

fn rec() -> impl Strategy<Value = Rec> {
    let act = prop_oneof![
        700 => Just(Act::Ok),
        80 => (0u8..4).prop_map(Act::Split),
        80 => Just(Act::None),
        20 => Just(Act::Invalid),
        15 => Just(Act::Retry),
        1 => Just(Act::Trap),
    ];
    let to = prop_oneof![
        45 => Just(To::A),
        25 => Just(To::B),
        20 => Just(To::Both),
        5 => Just(To::Unknown),
        5 => Just(To::Missing),
    ];
    let broken = prop_oneof![
        985 => Just(Broken::No),
        14 => Just(Broken::Base64),
        1 => Just(Broken::NoIds),
    ];
    (0u8..8, act, to, broken).prop_map(|(key, act, to, broken)| Rec {
        shard: 0,
        key,
        act,
        to,
        broken,
    })
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let fault = prop_oneof![Just(0u16), Just(20), Just(100), Just(300)];
    (
        1usize..=4,
        prop::collection::vec(rec(), 1..=500),
        [fault.clone(), fault.clone(), fault],
        any::<u64>(),
    )
        .prop_map(|(shards, mut records, faults, seed)| {
            // A partition key always maps to one shard, as in Kinesis.
            for r in &mut records {
                r.shard = r.key % shards as u8;
            }
            Scenario {
                records,
                faults,
                seed,
            }
        })
}

fn seq(index: usize) -> String {
    format!("4959{index:016}")
}

fn event(records: &[Rec], indices: &[usize]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let items: Vec<String> = indices
        .iter()
        .map(|&i| {
            let r = &records[i];
            let act = match r.act {
                Act::Ok => r#""act":"ok""#.to_owned(),
                Act::Split(n) => format!(r#""act":"split","n":{n}"#),
                Act::None => r#""act":"none""#.to_owned(),
                Act::Invalid => r#""act":"invalid""#.to_owned(),
                Act::Retry => r#""act":"retry""#.to_owned(),
                Act::Trap => r#""act":"trap""#.to_owned(),
            };
            let to = match r.to {
                To::A => r#","to":"a""#,
                To::B => r#","to":"b""#,
                To::Both => r#","to":"ab""#,
                To::Unknown => r#","to":"zz""#,
                To::Missing => "",
            };
            let data = match r.broken {
                Broken::Base64 => "%%not base64%%".to_owned(),
                _ => b64.encode(format!(r#"{{"id":{i},{act}{to}}}"#)),
            };
            let (s, k, q) = (r.shard, r.key, seq(i));
            match r.broken {
                Broken::NoIds => format!(
                    r#"{{"kinesis":{{"partitionKey":"k{k}","data":"{data}","approximateArrivalTimestamp":1700000000.0}}}}"#
                ),
                _ => format!(
                    r#"{{"eventID":"shardId-00000000000{s}:{q}","eventSource":"aws:kinesis","kinesis":{{"partitionKey":"k{k}","data":"{data}","sequenceNumber":"{q}","approximateArrivalTimestamp":1700000000.0}}}}"#
                ),
            }
        })
        .collect();
    format!(r#"{{"Records":[{}]}}"#, items.join(",")).into_bytes()
}

/// A pipeline under one `on_error` policy, with its in-memory destinations.
struct Rig {
    policy: &'static str,
    app: App,
    /// `a`, `b` and (dead-letter policy only) `dlq`.
    destinations: Vec<MemoryDestination>,
}

fn rig(policy: &'static str) -> Rig {
    let dead_letter = policy == "dead-letter";
    let text = format!(
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
config = {{ field = "to", routes = {{ a = ["a"], b = ["b"], ab = ["a", "b"], zz = ["nowhere"] }} }}
on_error = "{policy}"

[destinations.a]
type = "stdout"
[destinations.b]
type = "stdout"
{dlq}
[routing]
default = "a"
{dlq_route}
"#,
        hostile = crate::test_plugins::HOSTILE,
        route = crate::test_plugins::ROUTE_FIELD,
        dlq = if dead_letter {
            "[destinations.dlq]\ntype = \"stdout\""
        } else {
            ""
        },
        dlq_route = if dead_letter {
            "dead_letter = \"dlq\""
        } else {
            ""
        },
    );
    let plan = config::parse(&text, &Location::File("/tmp/no-record-lost.toml".into()))
        .unwrap_or_else(|e| panic!("{e}"));
    let (app, destinations) = crate::support::memory_app(plan);
    Rig {
        policy,
        app,
        destinations,
    }
}

/// A cheap, well-mixed hash for deterministic fault decisions.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// A fault that refuses about `per_mille` of the outputs, differently each round.
fn fault(per_mille: u16, seed: u64, counter: Arc<AtomicUsize>) -> Fault {
    Arc::new(move |r| {
        let seq: u64 = r.record.sequence_number.parse().unwrap_or(0);
        let h = mix(seed ^ mix(seq) ^ (u64::from(r.output_index) << 48));
        if h % 1000 < u64::from(per_mille) {
            counter.fetch_add(1, Ordering::Relaxed);
            Some(
                [
                    "SendMessageBatch entry failed: ServiceUnavailable (SenderFault=false)",
                    "S3 PutObject: 503 SlowDown",
                    "timed out",
                ][(h % 3) as usize]
                    .to_owned(),
            )
        } else {
            None
        }
    })
}

#[derive(Default)]
struct Tally {
    cases: usize,
    records: usize,
    plugin_faults: usize,
    delivery_faults: Arc<AtomicUsize>,
    delivered: usize,
    dead_lettered: usize,
    dropped: usize,
    filtered: usize,
    retried_at_end: usize,
}

/// One output line of an envelope destination: `(record index, output index, partition key)`.
fn parse_envelopes(bytes: &[u8]) -> Vec<(usize, u32, String)> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|line| {
            let v: serde_json::Value = serde_json::from_slice(line).unwrap();
            let index = v["data"]["id"].as_u64().unwrap() as usize;
            assert_eq!(v["sequence_number"], seq(index), "lineage kept: {v}");
            (
                index,
                v["output_index"].as_u64().unwrap() as u32,
                v["partition_key"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn check(
    rig: &mut Rig,
    sc: &Scenario,
    tally: &mut Tally,
    rt: &tokio::runtime::Runtime,
) -> Result<(), TestCaseError> {
    // Transient plugin faults (`retry`, a trap) clear on redelivery, as a
    // throttled dependency or a rare crash would; `invalid` stays.
    let healed: Vec<Rec> = sc
        .records
        .iter()
        .map(|r| match r.act {
            Act::Retry | Act::Trap => Rec {
                act: Act::Ok,
                ..r.clone()
            },
            _ => r.clone(),
        })
        .collect();
    let recs = &sc.records;
    let index_of: HashMap<String, usize> = (0..recs.len()).map(|i| (seq(i), i)).collect();
    // First deliveries, per destination and partition key, in order.
    let mut first: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    let mut seen: HashSet<(String, usize)> = HashSet::new();
    // Records dead-lettered or dropped in an earlier round. When a whole
    // invocation is retried (here: it held an undecodable record without a
    // sequence number), Lambda replays them too, and one whose failure was
    // transient (a trap) is then delivered: a late duplicate fate, outside
    // the order promise, which covers the first fate of each record.
    let mut settled: HashSet<usize> = HashSet::new();
    let mut pending: Vec<usize> = (0..recs.len()).collect();
    tally.cases += 1;
    tally.records += recs.len();

    for round in 0..ROUNDS {
        let recs: &[Rec] = if round == 0 { recs } else { &healed };
        for (destination, &per_mille) in rig.destinations.iter().zip(&sc.faults) {
            destination.clear();
            let seed = sc.seed ^ mix(round as u64 + 1) ^ mix(destination.name().len() as u64);
            destination.set_fault(
                (per_mille > 0).then(|| fault(per_mille, seed, tally.delivery_faults.clone())),
            );
        }
        let batch = host::event::decode(&event(recs, &pending), "property").unwrap();
        let report = rt.block_on(rig.app.process(batch, None));
        let outcome = &report.outcome;
        // Positions in `outcome` are positions in this round's event.
        let at = |pos: usize| pending[pos];

        // Injected: one per record carrying a fault, per invocation it is
        // sent in.
        tally.plugin_faults += pending
            .iter()
            .filter(|&&i| recs[i].own_failure().is_some())
            .count();

        // What Lambda redelivers: per shard, from the checkpoint on; all of
        // it when the invocation fails.
        let retried: HashSet<usize> = match host::lambda::response(outcome) {
            Err(_) => pending.iter().copied().collect(),
            Ok(response) => {
                let mut from_shard: HashMap<u8, usize> = HashMap::new();
                for item in &response.batch_item_failures {
                    let id = item.item_identifier.as_deref().unwrap_or("");
                    prop_assert!(!id.is_empty(), "empty item identifier");
                    let &i = index_of
                        .get(id)
                        .ok_or_else(|| TestCaseError::fail(format!("unknown checkpoint {id}")))?;
                    prop_assert!(
                        from_shard.insert(recs[i].shard, i).is_none(),
                        "two checkpoints for one shard"
                    );
                }
                pending
                    .iter()
                    .copied()
                    .filter(|&i| from_shard.get(&recs[i].shard).is_some_and(|&c| i >= c))
                    .collect()
            }
        };

        // Outputs delivered this round, per record and destination.
        let mut outputs: HashMap<(usize, &str), Vec<u32>> = HashMap::new();
        for destination in rig.destinations.iter().filter(|s| s.name() != "dlq") {
            for (i, output_index, key) in parse_envelopes(&destination.contents()) {
                prop_assert!(
                    pending.contains(&i),
                    "output of record #{i}, not in this batch"
                );
                let r = &recs[i];
                prop_assert!(
                    r.routes().contains(&destination.name())
                        && (output_index as usize) < r.outputs(),
                    "invented output: record #{i} ({r:?}) output {output_index} at `{}`",
                    destination.name()
                );
                prop_assert_eq!(&key, &format!("k{}", r.key));
                outputs
                    .entry((i, destination.name()))
                    .or_default()
                    .push(output_index);
                if !settled.contains(&i) && seen.insert((destination.name().to_owned(), i)) {
                    first
                        .entry((destination.name().to_owned(), key))
                        .or_default()
                        .push(i);
                }
            }
        }
        let mut dead: HashMap<usize, String> = HashMap::new();
        if let Some(dlq) = rig.destinations.iter().find(|s| s.name() == "dlq") {
            for line in dlq
                .contents()
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
            {
                let v: serde_json::Value = serde_json::from_slice(line).unwrap();
                let class = v["failure"]["class"].as_str().unwrap().to_owned();
                prop_assert!(!v["failure"]["reason"].as_str().unwrap().is_empty());
                let seq = v["record"]["sequence_number"]
                    .as_str()
                    .or(v["kinesis_record"]["kinesis"]["sequenceNumber"].as_str());
                let i = match seq {
                    Some(s) => index_of[s],
                    None => {
                        // Undecodable: the record as Lambda sent it.
                        let data = v["kinesis_record"]["kinesis"]["data"].as_str().unwrap();
                        let pk = v["kinesis_record"]["kinesis"]["partitionKey"]
                            .as_str()
                            .unwrap();
                        *pending
                            .iter()
                            .find(|&&i| {
                                recs[i].broken != Broken::No
                                    && format!("k{}", recs[i].key) == pk
                                    && !dead.contains_key(&i)
                                    && recs[i].broken == Broken::NoIds
                                    && data != "%%not base64%%"
                            })
                            .ok_or_else(|| TestCaseError::fail("dead letter of no record"))?
                    }
                };
                prop_assert!(
                    dead.insert(i, class).is_none(),
                    "record #{i} dead-lettered twice"
                );
            }
        }
        let dropped: HashSet<usize> = outcome.dropped.iter().map(|f| at(f.index)).collect();

        for &i in pending.iter().filter(|i| !retried.contains(i)) {
            let r = &recs[i];
            let delivered = outputs.keys().any(|&(j, _)| j == i);
            let fates = [delivered, dead.contains_key(&i), dropped.contains(&i)];
            prop_assert!(
                fates.iter().filter(|&&f| f).count() <= 1,
                "record #{i} ({r:?}) has two fates: {fates:?}"
            );
            // A trap is isolated: it fails its own record only.
            let expected_failure = r.own_failure();
            match expected_failure {
                Some("retry") => prop_assert!(false, "record #{i} asked for a retry: {r:?}"),
                Some(class) => match rig.policy {
                    "dead-letter" => {
                        prop_assert_eq!(
                            dead.get(&i).map(String::as_str),
                            Some(class),
                            "record #{} {:?}",
                            i,
                            r
                        );
                        tally.dead_lettered += 1;
                    }
                    "drop" if class != "decode" => {
                        prop_assert!(dropped.contains(&i), "record #{i} {r:?} not dropped");
                        tally.dropped += 1;
                    }
                    _ => prop_assert!(false, "record #{i} ({r:?}) failed but is not retried"),
                },
                None if r.outputs() == 0 => {
                    prop_assert!(fates == [false; 3], "record #{i} {r:?} should be filtered");
                    tally.filtered += 1;
                }
                None => {
                    for dest in r.routes() {
                        let mut got = outputs.get(&(i, *dest)).cloned().unwrap_or_default();
                        got.sort_unstable();
                        let want: Vec<u32> = (0..r.outputs() as u32).collect();
                        prop_assert_eq!(got, want, "record #{} {:?} at `{}`", i, r, dest);
                    }
                    tally.delivered += 1;
                }
            }
        }
        settled.extend(dead.keys().copied());
        settled.extend(dropped.iter().copied());
        let mut next: Vec<usize> = retried.into_iter().collect();
        next.sort_unstable();
        pending = next;
        if pending.is_empty() {
            break;
        }
    }
    tally.retried_at_end += pending.len();
    for ((dest, key), order) in &first {
        prop_assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "first deliveries out of order at `{dest}` for key {key}: {order:?}"
        );
    }
    Ok(())
}

#[test]
fn every_record_is_delivered_dead_lettered_dropped_filtered_or_retried() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cases: u32 = std::env::var("SLUICE_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    // `TestRunner::run` takes an `Fn`: the rig and tally are shared through cells.
    let tally = std::cell::RefCell::new(Tally::default());
    for policy in ["retry", "dead-letter", "drop"] {
        let rig = std::cell::RefCell::new(rig(policy));
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&scenario(), |sc| {
            check(&mut rig.borrow_mut(), &sc, &mut tally.borrow_mut(), &rt)
        });
        if let Err(e) = result {
            panic!("policy `{policy}`: {e}");
        }
    }
    let tally = tally.into_inner();
    let delivery_faults = tally.delivery_faults.load(Ordering::Relaxed);
    let faults = tally.plugin_faults + delivery_faults;
    println!(
        "no-record-lost: {} cases, {} records, {} faults injected ({} plugin and input faults, {} refused outputs); \
         settled: {} delivered, {} dead-lettered, {} dropped, {} filtered; {} still retried after {ROUNDS} invocations; lost: 0",
        tally.cases,
        tally.records,
        faults,
        tally.plugin_faults,
        delivery_faults,
        tally.delivered,
        tally.dead_lettered,
        tally.dropped,
        tally.filtered,
        tally.retried_at_end
    );
    assert!(faults >= 1000, "only {faults} faults injected");
    assert!(
        delivery_faults >= 100,
        "only {delivery_faults} destination faults injected"
    );
}
