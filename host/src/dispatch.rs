//! Hands each destination its outputs and folds delivery failures back into
//! the batch outcome.
//!
//! Outputs reach a destination in input order (so per-shard order holds).
//! A destination that fails a send fails every input record that had an
//! output in it: those records are reported, never silently lost.

use crate::config::Plan;
use crate::pipeline::{BatchOutcome, FailureClass, RecordFailure, Routed};
use crate::sink::Sink;

/// What dispatch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DispatchReport {
    /// Outputs delivered per destination (indexed like `Plan::destinations`).
    pub delivered: Vec<usize>,
}

/// Sends every routed output of `outcome` to its destinations; `sinks` is
/// indexed like `plan.destinations`. Records whose outputs a destination
/// refused move to `outcome.failures` and out of `outcome.routed`.
pub async fn dispatch(
    plan: &Plan,
    outcome: &mut BatchOutcome,
    sinks: &mut [Sink],
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
        let _span = tracing::debug_span!("sluice.dispatch.send", destination = %plan.destinations[d].name, outputs = outputs.len()).entered();
        match sink.send(outputs).await {
            Ok(()) => report.delivered[d] = outputs.len(),
            Err(e) => {
                tracing::error!(destination = %plan.destinations[d].name, outputs = outputs.len(), error = %e, "delivery failed");
                for r in outputs {
                    failed.push(RecordFailure {
                        index: r.origin,
                        shard_id: Some(r.record.shard_id.clone()),
                        sequence_number: Some(r.record.sequence_number.clone()),
                        stage: format!("destination {}", plan.destinations[d].name),
                        plugin: None,
                        class: FailureClass::Delivery,
                        reason: e.message.clone(),
                    });
                }
            }
        }
    }
    drop(per_dest);
    if !failed.is_empty() {
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
