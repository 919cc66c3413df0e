//! Hands each destination its outputs and folds delivery failures back into
//! the batch outcome.
//!
//! Before anything is sent, [`defer_after_failures`] holds back every output
//! of a record that comes after a failed record on the same shard: Lambda
//! will redeliver everything from the first failed record on, so sending them
//! now would break per-shard order. Outputs then reach each destination in
//! input order. Outputs a destination did not take fail their input records
//! (class `delivery`); nothing is silently lost.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use crate::config::Plan;
use crate::pipeline::{BatchOutcome, FailureClass, RecordFailure, Routed};
use crate::sink::Sink;

/// What dispatch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DispatchReport {
    /// Outputs delivered per destination (indexed like `Plan::destinations`).
    pub delivered: Vec<usize>,
}

/// Removes from `outcome.routed` the outputs of every record that comes after
/// the first failed record of its shard, and counts those records in
/// `outcome.deferred`. They are covered by the retry checkpoint.
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
    outcome.routed.retain(|r| {
        let cut = first_failed
            .get(r.record.shard_id.as_str())
            .is_some_and(|&first| r.origin > first);
        if cut {
            deferred.insert(r.origin);
        }
        !cut
    });
    outcome.deferred += deferred.len();
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
    let mut per_dest: Vec<Vec<&Routed>> = vec![Vec::new(); sinks.len()];
    for r in &outcome.routed {
        for &d in &r.destinations {
            per_dest[d].push(r);
        }
    }
    let mut report = DispatchReport {
        delivered: vec![0; sinks.len()],
    };
    let mut failed = Vec::new();
    for (d, (sink, outputs)) in sinks.iter_mut().zip(&per_dest).enumerate() {
        if outputs.is_empty() {
            continue;
        }
        let name = &plan.destinations[d].name;
        let _span =
            tracing::debug_span!("sluice.dispatch.send", destination = %name, outputs = outputs.len())
                .entered();
        let send = sink.send(outputs);
        let failures = match deadline {
            Some(at) => match tokio::time::timeout_at(at.into(), send).await {
                Ok(f) => f,
                Err(_) => (0..outputs.len())
                    .map(|output| crate::sink::SendFailure {
                        output,
                        reason: "not delivered before the invocation's deadline".into(),
                    })
                    .collect(),
            },
            None => send.await,
        };
        report.delivered[d] = outputs.len() - failures.len();
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
