//! An invocation's tumbling window (`TumblingWindowInSeconds` on the event
//! source mapping): after delivery, the `aggregate` steps fold what Lambda
//! will not send again into the window's state, and on the window's last
//! invocation they make its outputs, which go to each step's destinations.
//!
//! The state Lambda carries between a window's invocations is a string map:
//! Sluice keeps one entry per aggregate step, named after the step. A
//! failed invocation (a function error) keeps nothing: Lambda runs the
//! batch again with the state it had.

use std::collections::BTreeMap;
use std::time::Instant;

use super::{App, lock};
use crate::dispatch::{self, DispatchReport};
use crate::event::{Record, TimeWindow};
use crate::outcome::{BatchOutcome, Routed, ShardCutoff};
use crate::plugin::Window;

/// What an invocation did with its tumbling window.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WindowReport {
    /// The state to hand back to Lambda (the response's `state`).
    pub state: BTreeMap<String, String>,
    /// Events folded, per aggregate step, in step order.
    pub folded: Vec<(String, usize)>,
    /// Whether it was the window's last invocation.
    pub last: bool,
    /// Outputs the window's end delivered.
    pub emitted: usize,
    /// Why the window could not be carried on: the invocation fails, and
    /// Lambda runs it again with the state it had.
    pub error: Option<String>,
}

/// How often folding runs again after it failed records (each failure can
/// move a shard's cut-off, which changes what may be folded).
const MAX_PASSES: usize = 3;

/// The records whose events may be folded: not failed, and not after their
/// shard's first retried record (Lambda sends those again).
struct Keep {
    failed: Vec<bool>,
    cutoff: ShardCutoff<String>,
}

impl Keep {
    fn of(outcome: &BatchOutcome) -> Keep {
        let mut cutoff = ShardCutoff::default();
        for f in &outcome.failures {
            if let Some(shard) = &f.shard_id {
                cutoff.fail(shard, f.index);
            }
        }
        Keep {
            failed: (0..outcome.records_in)
                .map(|slot| outcome.has_failed(slot))
                .collect(),
            cutoff: cutoff.into_owned(),
        }
    }

    fn keeps(&self, slot: usize, shard: &str) -> bool {
        !self.failed.get(slot).copied().unwrap_or(true) && !self.cutoff.cuts(shard, slot)
    }
}

/// The window as plugins see it: Lambda's RFC 3339 bounds, and the same in
/// milliseconds.
fn window_of(tw: &TimeWindow) -> Result<Window, String> {
    let ms = |text: &str| {
        chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| t.timestamp_millis().max(0) as u64)
            .map_err(|e| format!("the event's window bound `{text}` is not RFC 3339: {e}"))
    };
    Ok(Window {
        start_ms: ms(&tw.window.start)?,
        end_ms: ms(&tw.window.end)?,
        start: tw.window.start.clone(),
        end: tw.window.end.clone(),
    })
}

impl App {
    /// Folds the invocation's events into the window's state and, on its
    /// last invocation, delivers the window's outputs. Records an aggregate
    /// step fails are filed in `outcome` (their dead letters sent).
    pub(super) async fn close_window(
        &mut self,
        tw: TimeWindow,
        outcome: &mut BatchOutcome,
        report: &mut DispatchReport,
        deadline: Option<Instant>,
    ) -> WindowReport {
        let mut done = WindowReport {
            state: tw.state.clone(),
            last: tw.is_final_invoke_for_window,
            ..WindowReport::default()
        };
        if !lock(&self.pipeline).aggregates() {
            return done;
        }
        let window = match window_of(&tw) {
            Ok(w) => w,
            Err(e) => {
                done.error = Some(e);
                return done;
            }
        };
        for pass in 1..=MAX_PASSES {
            let keep = Keep::of(outcome);
            let (pipeline, states, w) = (self.pipeline.clone(), tw.state.clone(), window.clone());
            let folds = tokio::task::spawn_blocking(move || {
                lock(&pipeline).fold_window(
                    &w,
                    &states,
                    |slot, shard| keep.keeps(slot, shard),
                    deadline,
                )
            })
            .await
            .unwrap_or_else(|e| panic!("the pipeline thread failed: {e}"));
            done.folded = folds.folded;
            if folds.failures.is_empty() {
                done.state = folds.states;
                break;
            }
            if pass == MAX_PASSES {
                done.error = Some(format!(
                    "the aggregate steps still failed records after {MAX_PASSES} passes; the \
                     window's state is kept as it was"
                ));
                return done;
            }
            dispatch::fail_after_sending(
                &self.plan,
                outcome,
                &mut self.destinations,
                deadline,
                report,
                folds.failures,
            )
            .await;
        }
        if tw.is_final_invoke_for_window {
            match self.end_window(&tw, window, &done.state, deadline).await {
                Ok((n, sent)) => {
                    done.emitted = n;
                    // The window's outputs count with the destinations' own.
                    for (d, taken) in sent.delivered.iter().enumerate() {
                        report.delivered[d] += taken;
                    }
                }
                Err(e) => done.error = Some(e),
            }
        }
        done
    }

    /// The window's last invocation: each aggregate step's outputs, made of
    /// its final state, delivered to its destinations. Any output not
    /// delivered fails the invocation (Lambda runs it again).
    async fn end_window(
        &mut self,
        tw: &TimeWindow,
        window: Window,
        states: &BTreeMap<String, String>,
        deadline: Option<Instant>,
    ) -> Result<(usize, DispatchReport), String> {
        let (pipeline, states) = (self.pipeline.clone(), states.clone());
        let w = window.clone();
        let per_step =
            tokio::task::spawn_blocking(move || lock(&pipeline).emit_window(&w, &states, deadline))
                .await
                .unwrap_or_else(|e| panic!("the pipeline thread failed: {e}"))?;
        let mut emitted = BatchOutcome::default();
        for (step_index, outputs) in per_step {
            let step = &self.plan.steps[step_index];
            let Some(aggregate) = &step.aggregate else {
                continue;
            };
            for (output_index, out) in outputs.into_iter().enumerate() {
                // A window output's lineage: its shard, the window's start
                // as its sequence number and the step's position as its
                // sub-sequence number, so that FIFO deduplication ids and S3
                // keys are the same when the last invocation runs again.
                let record = Record {
                    shard_id: tw.shard_id.clone().unwrap_or_default(),
                    sequence_number: window.start_ms.to_string(),
                    sub_sequence_number: Some(step_index as u32),
                    partition_key: out.partition_key.unwrap_or_else(|| step.name.clone()),
                    arrival_ms: window.end_ms.saturating_sub(1),
                    data: out.data,
                    attributes: out.attributes,
                };
                emitted.routed.push(Routed {
                    record,
                    slot: emitted.records_in,
                    output_index: output_index as u32,
                    destinations: aggregate.destinations.clone(),
                    host_attributes: Vec::new(),
                });
            }
            emitted.records_in += 1;
        }
        let n = emitted.routed.len();
        let sent =
            dispatch::dispatch(&self.plan, &mut emitted, &mut self.destinations, deadline).await;
        if let Some(f) = emitted.failures.first() {
            return Err(format!(
                "an output of the window {}..{} was not delivered ({}: {})",
                window.start, window.end, f.stage, f.reason
            ));
        }
        Ok((n.min(sent.delivered.iter().sum()), sent))
    }
}
