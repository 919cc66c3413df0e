//! A step's shadow: a candidate plugin run on the step's inputs right after
//! the step's own call, compared with it, and never delivered.
//!
//! One guest call per batch, on the same events (still the step's inputs:
//! the step's verdicts are not applied yet), within the candidate's own
//! `limits.timeout_ms` and at most its `time_share` of the time left in the
//! invocation. A candidate that traps, times out or breaks the contract is
//! counted (`ShadowFailures`, every event of the call) and restarted on the
//! next batch; it is never bisected, so a bad candidate costs one call per
//! batch, not the isolation's. What the step delivers is decided before the
//! shadow runs and does not depend on it.

use std::time::Instant;

use super::apply::{Verdict, verdict};
use crate::outcome::StepStats;
use crate::plugin::{Decision, Event, Instance, Output, Plugin};

/// The most mismatches logged per step per invocation.
pub const MAX_LOGGED_MISMATCHES: usize = 3;

/// The longest payload shown in a logged mismatch, in bytes.
const MAX_SHOWN_BYTES: usize = 256;

/// A step's candidate plugin and its live instance.
pub(super) struct Shadow {
    plugin: Plugin,
    instance: Option<Instance>,
    time_share: f64,
}

impl Shadow {
    /// The candidate `plugin` with its first `instance`.
    pub(super) fn new(plugin: Plugin, instance: Instance, time_share: f64) -> Shadow {
        Shadow {
            plugin,
            instance: Some(instance),
            time_share,
        }
    }

    /// Throws the instance away (the next call starts a fresh one).
    pub(super) fn reset(&mut self) {
        self.instance = None;
    }

    /// Runs the candidate on `events` and compares what it decided with
    /// the step's `verdicts` (one per event), counting in `st`.
    pub(super) fn compare(
        &mut self,
        events: &mut [Event],
        verdicts: &[Verdict],
        deadline: Option<Instant>,
        st: &mut StepStats,
    ) {
        let limit_ms = self.plugin.limits().timeout_ms;
        let timeout_ms = deadline.map_or(limit_ms, |d| {
            let left = d.saturating_duration_since(Instant::now()).as_millis() as f64;
            ((left * self.time_share) as u64).min(limit_ms)
        });
        st.shadow_calls += 1;
        match self.call(events, timeout_ms) {
            Ok(theirs) => {
                let mut logged = 0;
                for ((event, ours), theirs) in events.iter().zip(verdicts).zip(&theirs) {
                    if same(ours, theirs) {
                        continue;
                    }
                    st.shadow_mismatches += 1;
                    if logged < MAX_LOGGED_MISMATCHES {
                        logged += 1;
                        tracing::warn!(
                            target: "sluice.shadow",
                            step = %self.step(),
                            shadow = %self.plugin.name(),
                            shard_id = %event.shard_id,
                            sequence_number = %event.sequence_number,
                            step_decided = %describe(ours),
                            shadow_decided = %describe(theirs),
                            "the shadow decided otherwise than the step"
                        );
                    }
                }
            }
            Err(reason) => {
                st.shadow_failures += events.len();
                tracing::warn!(
                    target: "sluice.shadow",
                    step = %self.step(),
                    shadow = %self.plugin.name(),
                    events = events.len(),
                    error = %reason,
                    "the shadow's call failed; the step's outputs are unchanged"
                );
            }
        }
    }

    /// The step's name (the candidate's, without `.shadow`).
    fn step(&self) -> &str {
        let name = self.plugin.step();
        name.strip_suffix(".shadow").unwrap_or(name)
    }

    /// One guest call within `timeout_ms`; a failed call drops the instance.
    fn call(&mut self, events: &mut [Event], timeout_ms: u64) -> Result<Vec<Verdict>, String> {
        if timeout_ms == 0 {
            return Err("no time left in the invocation for the shadow".into());
        }
        let mut instance = match self.instance.take() {
            Some(i) => i,
            None => self
                .plugin
                .instantiate_within(timeout_ms)
                .map_err(|e| format!("the shadow could not be restarted: {e}"))?,
        };
        match instance.call(events, timeout_ms) {
            Ok(r) if r.len() == events.len() => {
                self.instance = Some(instance);
                Ok(r.into_iter().map(verdict).collect())
            }
            Ok(r) => Err(format!(
                "the shadow broke the contract: {} results for {} events",
                r.len(),
                events.len()
            )),
            Err(e) if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) => {
                Err(format!("the shadow timed out after {timeout_ms} ms"))
            }
            Err(e) => Err(format!(
                "the shadow trapped: {}",
                crate::plugin::trap_reason(&e)
            )),
        }
    }
}

/// Whether two verdicts are the same decision with the same outputs (or
/// the same failure class and reason).
fn same(a: &Verdict, b: &Verdict) -> bool {
    match (a, b) {
        (Ok(Decision::Keep(x)), Ok(Decision::Keep(y))) => x == y,
        (Ok(Decision::Routes(x)), Ok(Decision::Routes(y))) => x == y,
        (Ok(Decision::Outputs(x)), Ok(Decision::Outputs(y))) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_output(x, y))
        }
        (Err(x), Err(y)) => x == y,
        _ => false,
    }
}

fn same_output(a: &Output, b: &Output) -> bool {
    a.data == b.data && a.partition_key == b.partition_key && a.attributes == b.attributes
}

/// A verdict in a log line: the decision, bounded.
fn describe(v: &Verdict) -> String {
    match v {
        Ok(Decision::Keep(true)) => "keep".into(),
        Ok(Decision::Keep(false)) => "drop".into(),
        Ok(Decision::Routes(names)) => format!("route to [{}]", names.join(", ")),
        Ok(Decision::Outputs(outputs)) => {
            let shown: Vec<String> = outputs
                .iter()
                .take(2)
                .map(|o| {
                    let text = String::from_utf8_lossy(&o.data);
                    host_truncate(&text)
                })
                .collect();
            let more = outputs.len().saturating_sub(2);
            format!(
                "{} outputs: {}{}",
                outputs.len(),
                shown.join(" | "),
                if more > 0 {
                    format!(" | … {more} more")
                } else {
                    String::new()
                }
            )
        }
        Err((class, reason)) => format!("failed ({}): {}", class.as_str(), host_truncate(reason)),
    }
}

fn host_truncate(text: &str) -> String {
    crate::plugin::host::truncate(&crate::logging::escape_controls(text), MAX_SHOWN_BYTES)
        .into_owned()
}
