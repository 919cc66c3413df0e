//! Hands each destination its outputs and folds delivery failures back into
//! the batch outcome.
//!
//! Before anything is sent, [`defer_after_failures`] holds back every output
//! of a record that comes after a failed record on the same shard: Lambda
//! will redeliver everything from the first failed record on, so sending them
//! now would break per-shard order. Outputs then reach each destination in
//! input order. Outputs a destination did not take fail their input records
//! (class `delivery`); nothing is silently lost.
//!
//! Dead letters go first, to `routing.dead_letter`: a dead letter that cannot
//! be sent turns its record into a retry, which holds back what follows it
//! on its shard before any output of those records is sent.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use base64::Engine as _;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::config::Plan;
use crate::event::Record;
use crate::pipeline::{BatchOutcome, DeadLetter, FailureClass, Original, RecordFailure, Routed};
use crate::sink::{SendFailure, Sink};

/// What dispatch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DispatchReport {
    /// Outputs delivered per destination (indexed like `Plan::destinations`),
    /// dead letters included.
    pub delivered: Vec<usize>,
    /// Records delivered to the dead-letter destination.
    pub dead_lettered: usize,
}

/// Removes from `outcome` the outputs, dead letters and drops of every record
/// that comes after the first retried record of its shard, and counts those
/// records in `outcome.deferred`. They are covered by the retry checkpoint:
/// Lambda redelivers them.
pub fn defer_after_failures(outcome: &mut BatchOutcome) {
    let mut first_failed: HashMap<&str, usize> = HashMap::new();
    for f in &outcome.failures {
        if let Some(shard) = &f.shard_id {
            first_failed.entry(shard.as_str()).or_insert(f.index);
        }
    }
    if first_failed.is_empty() {
        return;
    }
    let mut deferred = BTreeSet::new();
    // Whether to keep what record `index` of `shard` brought; counts the rest.
    let mut keep = |shard: Option<&str>, index: usize| {
        let cut = shard
            .and_then(|s| first_failed.get(s))
            .is_some_and(|&first| index > first);
        if cut {
            deferred.insert(index);
        }
        !cut
    };
    outcome
        .routed
        .retain(|r| keep(Some(&r.record.shard_id), r.origin));
    outcome
        .dead_letters
        .retain(|d| keep(d.failure.shard_id.as_deref(), d.failure.index));
    outcome
        .dropped
        .retain(|f| keep(f.shard_id.as_deref(), f.index));
    outcome.deferred += deferred.len();
}

/// The document a dead letter becomes: one JSON object with the failure and
/// the original record.
///
/// ```json
/// {"failure": {"stage": "redact-pii", "plugin": "redact.wasm", "class": "invalid", "reason": "…"},
///  "record": {"shard_id": "…", "sequence_number": "…", "partition_key": "…", "arrival_ms": 0, "data": {…}}}
/// ```
///
/// `data` is the payload when it is JSON, else `data_base64`; a record that
/// did not decode is kept as Lambda sent it, under `kinesis_record`.
pub fn dead_letter_document(dead: &DeadLetter) -> Vec<u8> {
    #[derive(Serialize)]
    struct Doc<'a> {
        failure: Failure<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        record: Option<RecordDoc<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        kinesis_record: Option<&'a RawValue>,
    }
    #[derive(Serialize)]
    struct Failure<'a> {
        stage: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        plugin: Option<&'a str>,
        class: FailureClass,
        reason: &'a str,
    }
    #[derive(Serialize)]
    struct RecordDoc<'a> {
        shard_id: &'a str,
        sequence_number: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        sub_sequence_number: Option<u32>,
        partition_key: &'a str,
        arrival_ms: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<&'a RawValue>,
        #[serde(skip_serializing_if = "Option::is_none")]
        data_base64: Option<String>,
    }
    let f = &dead.failure;
    let failure = Failure {
        stage: &f.stage,
        plugin: f.plugin.as_deref(),
        class: f.class,
        reason: &f.reason,
    };
    let raw: Option<&RawValue>;
    let doc = match &dead.original {
        Original::Record(r) => {
            let json = serde_json::from_slice::<&RawValue>(&r.data).ok();
            Doc {
                failure,
                record: Some(RecordDoc {
                    shard_id: &r.shard_id,
                    sequence_number: &r.sequence_number,
                    sub_sequence_number: r.sub_sequence_number,
                    partition_key: &r.partition_key,
                    arrival_ms: r.arrival_ms,
                    data: json,
                    data_base64: json
                        .is_none()
                        .then(|| base64::engine::general_purpose::STANDARD.encode(&r.data)),
                }),
                kinesis_record: None,
            }
        }
        Original::Raw(text) => {
            raw = serde_json::from_str::<&RawValue>(text).ok();
            Doc {
                failure,
                record: None,
                kinesis_record: raw,
            }
        }
    };
    // Serializing strings, numbers and valid raw JSON into a Vec cannot fail.
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// A dead letter as an output for the dead-letter destination: lineage from
/// the original record (so FIFO deduplication ids and S3 keys stay
/// deterministic), the document as payload, the class and stage as attributes.
fn dead_letter_output(dead: &DeadLetter, destination: usize) -> Routed {
    let f = &dead.failure;
    let (partition_key, sub_sequence_number, arrival_ms) = match &dead.original {
        Original::Record(r) => (r.partition_key.clone(), r.sub_sequence_number, r.arrival_ms),
        Original::Raw(_) => (String::new(), None, 0),
    };
    Routed {
        record: Record {
            shard_id: f.shard_id.clone().unwrap_or_else(|| "unknown-shard".into()),
            sequence_number: f
                .sequence_number
                .clone()
                .unwrap_or_else(|| format!("record-{}", f.index)),
            sub_sequence_number,
            partition_key,
            arrival_ms,
            data: dead_letter_document(dead),
            attributes: vec![
                ("sluice.failure-class".into(), f.class.as_str().into()),
                ("sluice.failure-stage".into(), f.stage.clone()),
            ],
        },
        origin: f.index,
        output_index: 0,
        destinations: vec![destination],
    }
}

/// Sends `outputs` to `sink`, giving up at `deadline`.
async fn send_until(
    sink: &mut Sink,
    outputs: &[&Routed],
    deadline: Option<Instant>,
) -> Vec<SendFailure> {
    let send = sink.send(outputs);
    match deadline {
        Some(at) => match tokio::time::timeout_at(at.into(), send).await {
            Ok(f) => f,
            Err(_) => (0..outputs.len())
                .map(|output| SendFailure {
                    output,
                    reason: "not delivered before the invocation's deadline".into(),
                })
                .collect(),
        },
        None => send.await,
    }
}

/// Sends the dead letters; those not taken become retried failures.
async fn send_dead_letters(
    plan: &Plan,
    outcome: &mut BatchOutcome,
    sinks: &mut [Sink],
    deadline: Option<Instant>,
    report: &mut DispatchReport,
) {
    let Some(d) = plan
        .dead_letter
        .filter(|_| !outcome.dead_letters.is_empty())
    else {
        return;
    };
    let name = &plan.destinations[d].name;
    let letters: Vec<Routed> = outcome
        .dead_letters
        .iter()
        .map(|dead| dead_letter_output(dead, d))
        .collect();
    let refs: Vec<&Routed> = letters.iter().collect();
    let failures = send_until(&mut sinks[d], &refs, deadline).await;
    report.delivered[d] += letters.len() - failures.len();
    report.dead_lettered = letters.len() - failures.len();
    if failures.is_empty() {
        return;
    }
    tracing::error!(destination = %name, failed = failures.len(), first_error = %failures[0].reason, "dead-lettering failed; those records will be retried");
    let mut lost = vec![false; letters.len()];
    for f in failures {
        lost[f.output] = true;
        let failure = &outcome.dead_letters[f.output].failure;
        outcome.failures.push(RecordFailure {
            stage: format!("dead-letter {name}"),
            plugin: None,
            class: FailureClass::Delivery,
            reason: format!(
                "could not dead-letter it ({} at {}: {}): {}",
                failure.class.as_str(),
                failure.stage,
                failure.reason,
                f.reason
            ),
            action: crate::config::OnError::Retry,
            ..failure.clone()
        });
    }
    let mut lost = lost.into_iter();
    outcome
        .dead_letters
        .retain(|_| !lost.next().unwrap_or(false));
    outcome.failures.sort_by_key(|f| f.index);
    // A record that is now retried holds back what follows it on its shard.
    defer_after_failures(outcome);
}

/// Sends every routed output of `outcome` to its destinations; `sinks` is
/// indexed like `plan.destinations`. Records whose outputs were not taken —
/// refused, or not sent because `deadline` came — move to
/// `outcome.failures`.
pub async fn dispatch(
    plan: &Plan,
    outcome: &mut BatchOutcome,
    sinks: &mut [Sink],
    deadline: Option<Instant>,
) -> DispatchReport {
    let mut report = DispatchReport {
        delivered: vec![0; sinks.len()],
        dead_lettered: 0,
    };
    send_dead_letters(plan, outcome, sinks, deadline, &mut report).await;
    let mut per_dest: Vec<Vec<&Routed>> = vec![Vec::new(); sinks.len()];
    for r in &outcome.routed {
        for &d in &r.destinations {
            per_dest[d].push(r);
        }
    }
    let mut failed = Vec::new();
    for (d, (sink, outputs)) in sinks.iter_mut().zip(&per_dest).enumerate() {
        if outputs.is_empty() {
            continue;
        }
        let name = &plan.destinations[d].name;
        let _span =
            tracing::debug_span!("sluice.dispatch.send", destination = %name, outputs = outputs.len())
                .entered();
        let failures = send_until(sink, outputs, deadline).await;
        report.delivered[d] += outputs.len() - failures.len();
        if !failures.is_empty() {
            tracing::error!(destination = %name, failed = failures.len(), first_error = %failures[0].reason, "delivery failed");
        }
        for f in failures {
            let r = outputs[f.output];
            failed.push(RecordFailure {
                index: r.origin,
                shard_id: Some(r.record.shard_id.clone()),
                sequence_number: Some(r.record.sequence_number.clone()),
                stage: format!("destination {name}"),
                plugin: None,
                class: FailureClass::Delivery,
                reason: f.reason,
                action: crate::config::OnError::Retry,
            });
        }
    }
    drop(per_dest);
    if !failed.is_empty() {
        failed.sort_by_key(|f| f.index);
        failed.dedup_by_key(|f| f.index);
        outcome
            .routed
            .retain(|r| failed.binary_search_by_key(&r.origin, |f| f.index).is_err());
        outcome.failures.extend(failed);
        outcome.failures.sort_by_key(|f| f.index);
        outcome.failures.dedup_by_key(|f| f.index);
    }
    report
}
