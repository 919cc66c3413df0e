//! Hands each destination its outputs and folds delivery failures back into
//! the batch outcome. Every request goes through one driver
//! ([`driver::deliver`]): requests in flight, retries, order and the
//! deadline are its business, not the destinations'.
//!
//! Before anything is sent, the ledger holds back every output of a record
//! that comes after a failed record on the same shard
//! ([`BatchOutcome::hold_back`]): Lambda will redeliver everything from the
//! first failed record on, so sending them now would break per-shard order.
//! Outputs a destination did not take fail their input records (class
//! `delivery`; `contract` for content it refuses for good); nothing is
//! silently lost.
//!
//! First, every output is checked against its destinations' rules
//! ([`Destination::refusal`]): a record with an output a destination would refuse
//! every time (an attribute whose name starts with `sluice.`, reserved on
//! every destination; an invalid SQS attribute name, a message over the size limit)
//! fails with class `contract` under [`Plan::delivery_on_error`], before
//! anything of it is sent, so it is dead-lettered or dropped instead of
//! stalling its shard.
//!
//! Dead letters go next, to `routing.dead_letter`: a dead letter that cannot
//! be sent turns its record into a retry, which holds back what follows it
//! on its shard before any output of those records is sent. A dead letter
//! the dead-letter destination would refuse as too big is sent without the
//! record's data (`data_omitted`), which Kinesis keeps for its retention
//! period under the named sequence number, and with every other field cut
//! (the reason to 512 characters, keys and ids to 256), so that it fits.
//!
//! Then every destination at once, each through the driver with its own
//! requests in flight; within a destination, order is kept per key (see
//! [`driver`]).

pub mod driver;

use std::collections::BTreeSet;
use std::time::Instant;

use tracing::Instrument as _;

use base64::Engine as _;
use serde::Serialize;
use serde_json::value::RawValue;
use sha2::{Digest as _, Sha256};

use crate::config::{OnError, Plan};
use crate::destination::{Destination, SendFailure};
use crate::event::Record;
use crate::outcome::{
    BatchOutcome, DeadLetter, DeadLetters, FailureClass, Original, RecordFailure, Routed,
};

/// What dispatch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DispatchReport {
    /// Outputs delivered per destination (indexed like `Plan::destinations`),
    /// dead letters included.
    pub delivered: Vec<usize>,
    /// Records delivered to the dead-letter destination.
    pub dead_lettered: usize,
    /// What each destination was asked to take (indexed like
    /// `Plan::destinations`), for the metrics.
    pub destinations: Vec<SendStats>,
}

/// One destination's part of one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendStats {
    /// Outputs (and dead letters) it did not take.
    pub failed: usize,
    /// Payload bytes handed to it.
    pub bytes: usize,
    /// Requests made (SQS `SendMessageBatch`, S3 `PutObject`; one write for
    /// local destinations).
    pub requests: usize,
    /// Time spent sending.
    pub duration: std::time::Duration,
    /// The most requests it had in flight at once.
    pub peak_in_flight: usize,
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
    document(dead, false)
}

/// Characters of a failure's reason kept in a dead letter sent without data.
const MAX_OMITTED_REASON_CHARS: usize = 512;

/// Characters of a partition key, shard id or sequence number kept in a
/// dead letter sent without data (Kinesis's own limit for partition keys).
const MAX_OMITTED_KEY_CHARS: usize = 256;

/// `text`, cut to `max` characters when `cutting`.
fn cut(text: &str, cutting: bool, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) if cutting => &text[..end],
        _ => text,
    }
}

/// The dead-letter document; with `omit_data`, without the payload (or the
/// undecodable record's JSON), and with the reason cut to
/// [`MAX_OMITTED_REASON_CHARS`]: `data_omitted` says why.
fn document(dead: &DeadLetter, omit_data: bool) -> Vec<u8> {
    #[derive(Serialize)]
    struct Doc<'a> {
        failure: Failure<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        record: Option<RecordDoc<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        kinesis_record: Option<&'a RawValue>,
        #[serde(skip_serializing_if = "Option::is_none")]
        data_omitted: Option<&'a str>,
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
    // Without the data, every other field is cut too: a plugin's reason can
    // be long, and so can a key a producer chose.
    let reason = cut(&f.reason, omit_data, MAX_OMITTED_REASON_CHARS);
    let failure = Failure {
        stage: &f.stage,
        plugin: f.plugin.as_deref(),
        class: f.class,
        reason,
    };
    let raw: Option<&RawValue>;
    let omitted = omit_data.then_some(
        "the record was too big for the dead-letter destination; read it from Kinesis by its sequence number",
    );
    let mut doc = match &dead.original {
        Original::Record(r) => {
            let json = serde_json::from_slice::<&RawValue>(&r.data).ok();
            Doc {
                failure,
                record: Some(RecordDoc {
                    shard_id: cut(&r.shard_id, omit_data, MAX_OMITTED_KEY_CHARS),
                    sequence_number: cut(&r.sequence_number, omit_data, MAX_OMITTED_KEY_CHARS),
                    sub_sequence_number: r.sub_sequence_number,
                    partition_key: cut(&r.partition_key, omit_data, MAX_OMITTED_KEY_CHARS),
                    arrival_ms: r.arrival_ms,
                    data: json.filter(|_| !omit_data),
                    data_base64: (json.is_none() && !omit_data)
                        .then(|| base64::engine::general_purpose::STANDARD.encode(&r.data)),
                }),
                kinesis_record: None,
                data_omitted: None,
            }
        }
        Original::Raw(text) => {
            raw = serde_json::from_str::<&RawValue>(text).ok();
            Doc {
                failure,
                record: None,
                kinesis_record: raw.filter(|_| !omit_data),
                data_omitted: None,
            }
        }
    };
    doc.data_omitted = omitted;
    // Serializing strings, numbers and valid raw JSON into a Vec cannot fail.
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// A dead letter as an output for the dead-letter destination: lineage from
/// the original record (so FIFO deduplication ids and S3 keys stay
/// deterministic), the document as payload, the class and stage as Sluice's
/// own attributes.
///
/// A record that did not decode far enough to have a shard id or a sequence
/// number gets an identity from its content (`unknown-shard`, `raw-<SHA-256
/// of its JSON>`): the same record always gets the same one, and two
/// different records never share one, whatever batch they come in.
fn dead_letter_output(dead: &DeadLetter, destination: usize, omit_data: bool) -> Routed {
    let f = &dead.failure;
    let (partition_key, sub_sequence_number, arrival_ms) = match &dead.original {
        Original::Record(r) => (
            cut(&r.partition_key, omit_data, MAX_OMITTED_KEY_CHARS).to_owned(),
            r.sub_sequence_number,
            r.arrival_ms,
        ),
        Original::Raw(_) => (String::new(), None, 0),
    };
    let content_id = || match &dead.original {
        Original::Raw(text) => {
            let digest = Sha256::digest(text.as_bytes());
            let hex: String = digest.iter().take(20).map(|b| format!("{b:02x}")).collect();
            format!("raw-{hex}")
        }
        Original::Record(r) => r.sequence_number.clone(),
    };
    Routed {
        record: Record {
            shard_id: f.shard_id.clone().unwrap_or_else(|| "unknown-shard".into()),
            sequence_number: f
                .sequence_number
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(content_id),
            sub_sequence_number,
            partition_key,
            arrival_ms,
            data: document(dead, omit_data),
            attributes: Vec::new(),
        },
        slot: f.index,
        output_index: 0,
        destinations: vec![destination],
        host_attributes: vec![
            ("sluice.failure-class", f.class.as_str().into()),
            ("sluice.failure-stage", f.stage.clone()),
        ],
    }
}

/// The prefix of the attributes only Sluice sets (`sluice.failure-class`
/// on a dead letter, `sluice.shard-id` …).
pub const RESERVED_PREFIX: &str = "sluice.";

/// Why an output is refused on every destination for an attribute whose
/// name Sluice reserves: a plugin that set `sluice.failure-class` could
/// forge a dead letter.
fn reserved_attribute(r: &Routed) -> Option<String> {
    let (name, _) = r
        .record
        .attributes
        .iter()
        .find(|(name, _)| name.starts_with(RESERVED_PREFIX))?;
    let shown: String = name.chars().take(64).collect();
    Some(format!(
        "it has attribute `{shown}`: names starting with `{RESERVED_PREFIX}` are reserved for \
         what Sluice itself sets"
    ))
}

/// Fails, before anything is sent, every record with an output that one of
/// its destinations would refuse every time: class `contract`, stage
/// `destination <name>`, under [`Plan::delivery_on_error`]. Their outputs
/// are removed; a retried one holds back what follows it on its shard.
fn refuse_for_good(plan: &Plan, outcome: &mut BatchOutcome, destinations: &[Destination]) {
    let action = plan.delivery_on_error();
    let mut refused: Vec<RecordFailure> = Vec::new();
    for r in &outcome.routed {
        if refused.last().is_some_and(|f| f.index == r.slot) {
            continue;
        }
        let refusal = r.destinations.iter().find_map(|&d| {
            reserved_attribute(r)
                .or_else(|| destinations[d].refusal(r))
                .map(|reason| (d, reason))
        });
        if let Some((d, reason)) = refusal {
            refused.push(RecordFailure {
                index: r.slot,
                shard_id: Some(r.record.shard_id.clone()),
                sequence_number: Some(r.record.sequence_number.clone()),
                stage: format!("destination {}", plan.destinations[d].name),
                plugin: None,
                class: FailureClass::Contract,
                reason: format!(
                    "output {} would be refused every time: {reason}",
                    r.output_index
                ),
                action,
            });
        }
    }
    if refused.is_empty() {
        return;
    }
    tracing::warn!(
        records = refused.len(),
        first_error = %refused[0].reason,
        action = action.as_str(),
        "outputs a destination would always refuse; their records fail under the policy"
    );
    if outcome.fail_all(refused) {
        outcome.hold_back(DeadLetters::Pending);
    }
}

/// How many of `n` outputs were delivered, given the send's failures (at
/// most one counted per output).
fn delivered(n: usize, failures: &[SendFailure]) -> usize {
    let failed: BTreeSet<usize> = failures.iter().map(|f| f.output).collect();
    n.saturating_sub(failed.len())
}

/// Adds one delivery's figures to a destination's.
fn add_stats(into: &mut SendStats, from: &SendStats) {
    into.bytes += from.bytes;
    into.requests += from.requests;
    into.duration += from.duration;
    into.peak_in_flight = into.peak_in_flight.max(from.peak_in_flight);
}

/// Sends the dead letters; those not taken become retried failures.
async fn send_dead_letters(
    plan: &Plan,
    outcome: &mut BatchOutcome,
    destinations: &mut [Destination],
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
    // Each letter, or why the dead-letter destination would refuse it even
    // without the record's data.
    let mut letters: Vec<Routed> = Vec::with_capacity(outcome.dead_letters.len());
    let mut failures: Vec<SendFailure> = Vec::new();
    let mut positions: Vec<usize> = Vec::with_capacity(outcome.dead_letters.len());
    for (i, dead) in outcome.dead_letters.iter().enumerate() {
        let mut letter = dead_letter_output(dead, d, false);
        if destinations[d].refusal(&letter).is_some() {
            letter = dead_letter_output(dead, d, true);
        }
        match destinations[d].refusal(&letter) {
            Some(reason) => failures.push(SendFailure {
                output: i,
                reason,
                for_good: false,
            }),
            None => {
                positions.push(i);
                letters.push(letter);
            }
        }
    }
    let refs: Vec<&Routed> = letters.iter().collect();
    let (sent_failures, stats) = driver::deliver(destinations[d].sink(), &refs, deadline).await;
    add_stats(&mut report.destinations[d], &stats);
    failures.extend(sent_failures.into_iter().map(|f| SendFailure {
        for_good: false,
        output: positions[f.output],
        reason: f.reason,
    }));
    failures.sort_by_key(|f| f.output);
    failures.dedup_by_key(|f| f.output);
    let taken = delivered(outcome.dead_letters.len(), &failures);
    report.delivered[d] += taken;
    report.destinations[d].failed += outcome.dead_letters.len() - taken;
    report.dead_lettered += taken;
    if failures.is_empty() {
        return;
    }
    tracing::error!(destination = %name, failed = failures.len(), first_error = %failures[0].reason, "dead-lettering failed; those records will be retried");
    // A dead letter that was not taken turns its record into a retry.
    let mut retries = Vec::with_capacity(failures.len());
    let mut lost = vec![false; outcome.dead_letters.len()];
    for f in failures {
        lost[f.output] = true;
        let failure = &outcome.dead_letters[f.output].failure;
        retries.push(RecordFailure {
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
            action: OnError::Retry,
            ..failure.clone()
        });
    }
    let mut lost = lost.into_iter();
    outcome
        .dead_letters
        .retain(|_| !lost.next().unwrap_or(false));
    outcome.fail_all(retries);
    // What follows a now retried record on its shard is held back; the dead
    // letters already sent stay sent.
    outcome.hold_back(DeadLetters::Sent);
}

/// Sends every routed output of `outcome` to its destinations; `destinations` is
/// indexed like `plan.destinations`. Records whose outputs were not taken —
/// refused, or not sent because `deadline` came — move to
/// `outcome.failures`.
pub async fn dispatch(
    plan: &Plan,
    outcome: &mut BatchOutcome,
    destinations: &mut [Destination],
    deadline: Option<Instant>,
) -> DispatchReport {
    let mut report = DispatchReport {
        delivered: vec![0; destinations.len()],
        dead_lettered: 0,
        destinations: vec![SendStats::default(); destinations.len()],
    };
    outcome.hold_back(DeadLetters::Pending);
    refuse_for_good(plan, outcome, destinations);
    send_dead_letters(plan, outcome, destinations, deadline, &mut report).await;
    let mut per_dest: Vec<Vec<&Routed>> = vec![Vec::new(); destinations.len()];
    for r in &outcome.routed {
        for &d in &r.destinations {
            per_dest[d].push(r);
        }
    }
    // Every destination at once, each with its own requests in flight.
    let sends = destinations
        .iter()
        .zip(&per_dest)
        .enumerate()
        .filter(|(_, (_, outputs))| !outputs.is_empty())
        .map(|(d, (destination, outputs))| {
            let span = tracing::debug_span!("sluice.dispatch.send", destination = %destination.name(), outputs = outputs.len());
            async move { (d, driver::deliver(destination.sink(), outputs, deadline).await) }
                .instrument(span)
        });
    let sent = futures_util::future::join_all(sends).await;
    let mut failed = Vec::new();
    for (d, (failures, stats)) in sent {
        let outputs = &per_dest[d];
        let name = &plan.destinations[d].name;
        let taken = delivered(outputs.len(), &failures);
        report.delivered[d] += taken;
        report.destinations[d].failed += outputs.len() - taken;
        add_stats(&mut report.destinations[d], &stats);
        if !failures.is_empty() {
            tracing::error!(destination = %name, failed = failures.len(), first_error = %failures[0].reason, "delivery failed");
        }
        for f in failures {
            let r = outputs[f.output];
            let (class, action) = if f.for_good {
                (FailureClass::Contract, plan.delivery_on_error())
            } else {
                (FailureClass::Delivery, OnError::Retry)
            };
            failed.push(RecordFailure {
                index: r.slot,
                shard_id: Some(r.record.shard_id.clone()),
                sequence_number: Some(r.record.sequence_number.clone()),
                stage: format!("destination {name}"),
                plugin: None,
                class,
                reason: f.reason,
                action,
            });
        }
    }
    drop(per_dest);
    // Sent already: what follows these records on their shards stays sent
    // (the destinations stopped each shard at its first failed output).
    // Records a destination refused for good while sending (SQS's
    // `SenderFault`) are dead-lettered now, after the others' letters.
    fail_after_sending(plan, outcome, destinations, deadline, &mut report, failed).await;
    report
}

/// Files `failed` (records that failed after their outputs were sent: a
/// destination refused them while sending, an aggregate step could not fold
/// them) and sends the dead letters this makes; the letters already sent
/// stay sent.
pub async fn fail_after_sending(
    plan: &Plan,
    outcome: &mut BatchOutcome,
    destinations: &mut [Destination],
    deadline: Option<Instant>,
    report: &mut DispatchReport,
    failed: Vec<RecordFailure>,
) {
    let sent = std::mem::take(&mut outcome.dead_letters);
    outcome.fail_all(failed);
    if !outcome.dead_letters.is_empty() {
        send_dead_letters(plan, outcome, destinations, deadline, report).await;
    }
    outcome.dead_letters.extend(sent);
    outcome.dead_letters.sort_by_key(|d| d.failure.index);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn undecodable(raw: &str) -> DeadLetter {
        DeadLetter {
            failure: RecordFailure {
                index: 0,
                shard_id: None,
                sequence_number: None,
                stage: "event".into(),
                plugin: None,
                class: FailureClass::Decode,
                reason: "not a Kinesis record".into(),
                action: OnError::DeadLetter,
            },
            original: Original::Raw(raw.into()),
        }
    }

    #[test]
    fn dead_letters_of_records_without_ids_get_distinct_stable_identities() {
        let a = dead_letter_output(&undecodable(r#"{"kinesis":1}"#), 0, false);
        let again = dead_letter_output(&undecodable(r#"{"kinesis":1}"#), 0, false);
        let b = dead_letter_output(&undecodable(r#"{"kinesis":2}"#), 0, false);
        assert_ne!(a.record.sequence_number, b.record.sequence_number);
        assert_eq!(a.record.sequence_number, again.record.sequence_number);
        assert!(a.record.sequence_number.starts_with("raw-"));
        assert_ne!(
            crate::destination::sqs::dedup_id(&a),
            crate::destination::sqs::dedup_id(&b)
        );
    }

    #[test]
    fn sluice_attributes_are_kept_apart_from_the_plugins() {
        let letter = dead_letter_output(&undecodable("{}"), 0, false);
        assert!(letter.record.attributes.is_empty());
        assert_eq!(
            letter.host_attributes,
            [
                ("sluice.failure-class", "decode".to_owned()),
                ("sluice.failure-stage", "event".to_owned())
            ]
        );
    }

    #[test]
    fn a_dead_letter_without_data_cuts_a_long_reason() {
        let mut dead = undecodable(r#"{"kinesis":"big"}"#);
        dead.failure.reason = "é".repeat(10_000);
        let doc: serde_json::Value = serde_json::from_slice(&document(&dead, true)).unwrap();
        let reason = doc["failure"]["reason"].as_str().unwrap();
        assert_eq!(reason.chars().count(), MAX_OMITTED_REASON_CHARS);
        assert!(doc.get("kinesis_record").is_none());
        assert!(doc["data_omitted"].is_string());
        let full: serde_json::Value = serde_json::from_slice(&document(&dead, false)).unwrap();
        assert_eq!(
            full["failure"]["reason"].as_str().unwrap().chars().count(),
            10_000
        );
        assert_eq!(full["kinesis_record"]["kinesis"], "big");
    }

    #[test]
    fn delivered_counts_each_failed_output_once_and_never_underflows() {
        let f = |output| SendFailure {
            for_good: false,
            output,
            reason: String::new(),
        };
        assert_eq!(delivered(3, &[f(0), f(0), f(2)]), 1);
        assert_eq!(delivered(1, &[f(0), f(0), f(1)]), 0);
    }

    #[test]
    fn every_field_of_a_dead_letter_without_data_is_cut_to_fit() {
        let dead = DeadLetter {
            failure: RecordFailure {
                index: 0,
                shard_id: Some("shardId-000000000000".into()),
                sequence_number: Some("100".into()),
                stage: "s".into(),
                plugin: None,
                class: FailureClass::Invalid,
                reason: "r".repeat(300_000),
                action: OnError::DeadLetter,
            },
            original: Original::Record(Record {
                shard_id: "shardId-000000000000".into(),
                sequence_number: "100".into(),
                sub_sequence_number: Some(7),
                partition_key: "k".repeat(600_000),
                arrival_ms: 1,
                data: vec![b'x'; 1 << 20],
                attributes: Vec::new(),
            }),
        };
        let letter = dead_letter_output(&dead, 0, true);
        assert!(
            letter.record.data.len() < 2048,
            "{} bytes",
            letter.record.data.len()
        );
        assert_eq!(letter.record.partition_key.len(), MAX_OMITTED_KEY_CHARS);
        let doc: serde_json::Value = serde_json::from_slice(&letter.record.data).unwrap();
        assert_eq!(doc["record"]["sub_sequence_number"], 7);
        assert_eq!(
            doc["record"]["partition_key"].as_str().unwrap().len(),
            MAX_OMITTED_KEY_CHARS
        );
    }
}
