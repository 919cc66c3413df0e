//! Tumbling windows: what the `aggregate` steps do around an invocation.
//!
//! While the steps run, an aggregate step passes every event on unchanged
//! and keeps a copy ([`super::step`]). After delivery, when the ledger knows
//! which records Lambda will send again (those failed with `retry`, and
//! what follows them on their shard), [`Pipeline::fold_window`] folds the
//! events of every other record into the step's state for the window, in
//! one `fold` call per step. So a record's events are in the state of its
//! window once: a record Lambda redelivers was not folded the first time.
//! On the window's last invocation, [`Pipeline::emit_window`] asks each
//! aggregate step for the window's outputs.

use std::collections::BTreeMap;
use std::time::Instant;

use super::Pipeline;
use crate::config::StepKind;
use crate::outcome::{FailureClass, RecordFailure};
use crate::plugin::{Event, Failure, Output, Window};

/// What folding an invocation's events did.
#[derive(Debug, Default)]
pub struct Folds {
    /// Per aggregate step (by name), the window's state to hand back to
    /// Lambda.
    pub states: BTreeMap<String, String>,
    /// Records an aggregate step failed: the plugin said so, its call
    /// failed, or the state would outgrow the step's share.
    pub failures: Vec<RecordFailure>,
    /// Events folded, per aggregate step, in step order.
    pub folded: Vec<(String, usize)>,
}

impl Pipeline {
    /// Starts an invocation with (`true`) or without a tumbling window:
    /// only in a window do aggregate steps keep their events to fold.
    pub fn open_window(&mut self, open: bool) {
        for step in &mut self.steps {
            step.folding.clear();
            step.window_open = open && step.kind() == StepKind::Aggregate;
        }
    }

    /// Whether the pipeline has an `aggregate` step.
    pub fn aggregates(&self) -> bool {
        self.plan.steps.iter().any(|s| s.aggregate.is_some())
    }

    /// Folds, into each aggregate step's state in `states` (as Lambda
    /// handed it), the events the step kept of the records `keep(slot,
    /// shard)` accepts. The events stay kept: a second pass (after a fold
    /// failed a record, which moves its shard's cut-off) folds again from
    /// the same `states`.
    pub fn fold_window(
        &mut self,
        window: &Window,
        states: &BTreeMap<String, String>,
        keep: impl Fn(usize, &str) -> bool,
        deadline: Option<Instant>,
    ) -> Folds {
        let mut out = Folds {
            states: states.clone(),
            ..Folds::default()
        };
        for (step, plan) in self.steps.iter_mut().zip(&self.plan.steps) {
            let Some(aggregate) = &plan.aggregate else {
                continue;
            };
            // The kept events move into the call and back: never copied.
            let (kept, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut step.folding)
                .into_iter()
                .partition(|(slot, e)| keep(*slot, &e.shard_id));
            step.folding = rest;
            let (slots, mut batch): (Vec<usize>, Vec<Event>) = kept.into_iter().unzip();
            out.folded.push((plan.name.clone(), batch.len()));
            if batch.is_empty() {
                continue;
            }
            let state_in = states.get(&plan.name).map_or("", String::as_str);
            let folded = step.fold(window, state_in, &mut batch, deadline);
            let (plugin, on_error) = (step.plugin.name().to_owned(), step.on_error());
            let fail =
                |event: &Event, slot: usize, class: FailureClass, reason: String| RecordFailure {
                    index: slot,
                    shard_id: Some(event.shard_id.clone()),
                    sequence_number: Some(event.sequence_number.clone()),
                    stage: plan.name.clone(),
                    plugin: Some(plugin.clone()),
                    class,
                    action: class.action(on_error),
                    reason,
                };
            let all = |class: FailureClass, reason: String| -> Vec<RecordFailure> {
                batch
                    .iter()
                    .zip(&slots)
                    .map(|(e, &slot)| fail(e, slot, class, reason.clone()))
                    .collect()
            };
            let failures = match folded {
                Err((class, reason)) => all(class, reason),
                Ok((_, results)) if results.len() != batch.len() => all(
                    FailureClass::Contract,
                    format!(
                        "plugin broke the contract: `fold` returned {} results for {} events",
                        results.len(),
                        batch.len()
                    ),
                ),
                Ok((state, _)) if state.len() > aggregate.max_state_bytes => all(
                    FailureClass::Contract,
                    format!(
                        "the window's state would be {} bytes, over the step's {} \
                         (`limits.max_state_bytes`, its share of the 1 MB Lambda carries): \
                         keep fewer keys, or give the step a bigger share",
                        state.len(),
                        aggregate.max_state_bytes
                    ),
                ),
                Ok((state, results)) => {
                    out.states.insert(plan.name.clone(), state);
                    results
                        .into_iter()
                        .zip(batch.iter().zip(&slots))
                        .filter_map(|(r, (e, &slot))| match r {
                            Ok(()) => None,
                            Err(Failure::Invalid(reason)) => {
                                Some(fail(e, slot, FailureClass::Invalid, reason))
                            }
                            Err(Failure::Retry(reason)) => {
                                Some(fail(e, slot, FailureClass::Retry, reason))
                            }
                        })
                        .collect()
                }
            };
            out.failures.extend(failures);
            // Kept for a second pass.
            step.folding.extend(slots.into_iter().zip(batch));
        }
        out
    }

    /// The window's outputs, per aggregate step (its index in the plan),
    /// made of the final `states`; the first step that cannot make them
    /// fails the whole window (Lambda runs the last invocation again).
    pub fn emit_window(
        &mut self,
        window: &Window,
        states: &BTreeMap<String, String>,
        deadline: Option<Instant>,
    ) -> Result<Vec<(usize, Vec<Output>)>, String> {
        let mut out = Vec::new();
        for (i, (step, plan)) in self.steps.iter_mut().zip(&self.plan.steps).enumerate() {
            if plan.aggregate.is_none() {
                continue;
            }
            let state = states.get(&plan.name).map_or("", String::as_str);
            let outputs = step
                .emit(window, state, deadline)
                .map_err(|e| format!("step `{}` could not end its window: {e}", plan.name))?;
            out.push((i, outputs));
        }
        Ok(out)
    }
}
