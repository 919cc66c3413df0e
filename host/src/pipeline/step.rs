//! One step over the live events: the guest call within the step's limits
//! and the invocation's deadline, and the isolation of a call that failed
//! as a whole (halves on fresh instances until only the guilty events fail),
//! with what isolation learned kept across invocations.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use super::apply::{Verdict, apply, verdict};
use super::shadow::Shadow;
use super::{Failed, Live, Stage};
use crate::config::{OnError, Plan, StepKind};
use crate::outcome::{FailureClass, StepStats};
use crate::plugin::{Event, Instance, Plugin, ResultsTooBig};

/// One step of a loaded pipeline: its plugin, the live instance, and what
/// isolating failures taught it.
pub(super) struct Step {
    kind: StepKind,
    on_error: OnError,
    pub(super) plugin: Plugin,
    pub(super) instance: Option<Instance>,
    /// What isolation learned in an earlier invocation and could not finish
    /// before its deadline: the identities (shard, sequence number,
    /// sub-sequence number) of the narrowest set of events known to make a
    /// call fail or run out of time. Kept in the warm execution environment,
    /// so that the retried batch picks up where isolation stopped.
    suspects: HashSet<Identity>,
    /// While a batch runs: the narrowest failed call whose isolation the
    /// deadline cut.
    unfinished: Option<Vec<Identity>>,
    /// Events that ran out of time alone, and why: a retried batch fails
    /// them again at once instead of spending the step's `timeout_ms` (or
    /// the whole invocation) on each again. At most [`MAX_REMEMBERED`].
    timed_out: HashMap<Identity, String>,
    /// An `aggregate` step in a tumbling window: the events that passed it
    /// in this invocation, with their input record's slot, to fold once
    /// delivery has settled which records Lambda will not send again.
    pub(super) folding: Vec<(usize, Event)>,
    /// Whether this invocation has a tumbling window (set by
    /// [`super::Pipeline::open_window`]).
    pub(super) window_open: bool,
    /// The step's shadow, run on its inputs after it and compared.
    pub(super) shadow: Option<Shadow>,
}

/// The most timed-out events a step remembers across invocations.
const MAX_REMEMBERED: usize = 1024;

/// How the reason of a call that ran out of time starts.
const TIMED_OUT: &str = "plugin timed out";

/// What identifies an event across invocations: its record's shard,
/// sequence number and sub-sequence number, and a hash of its payload (a
/// transform's outputs share their record's lineage).
type Identity = (String, String, Option<u32>, u64);

fn identity(e: &Event) -> Identity {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    e.data.hash(&mut hasher);
    (
        e.shard_id.clone(),
        e.sequence_number.clone(),
        e.sub_sequence_number,
        hasher.finish(),
    )
}

fn is_deadline(v: &Verdict) -> bool {
    matches!(v, Err((FailureClass::Deadline, _)))
}

/// Why a whole guest call failed, and whether running its events in smaller
/// calls can tell the guilty events from the innocent.
struct CallFailure {
    class: FailureClass,
    reason: String,
    /// A trap or a timeout may be caused by one event: bisect. A deadline,
    /// a plugin that cannot start, or a wrong result count is not.
    isolate: bool,
    /// The call ran and the invocation's deadline cut it short: its events
    /// are an unfinished isolation for the next invocation.
    cut_short: bool,
}

impl CallFailure {
    fn whole(class: FailureClass, reason: String) -> CallFailure {
        CallFailure {
            class,
            reason,
            isolate: false,
            cut_short: false,
        }
    }
}

/// Milliseconds left before `deadline` (`None`: no deadline).
fn millis_left(deadline: Option<Instant>) -> Option<u64> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()).as_millis() as u64)
}

impl Step {
    /// A step running `plugin` with its first `instance`.
    pub(super) fn new(
        kind: StepKind,
        on_error: OnError,
        plugin: Plugin,
        instance: Instance,
    ) -> Step {
        Step {
            kind,
            on_error,
            plugin,
            instance: Some(instance),
            suspects: HashSet::new(),
            unfinished: None,
            timed_out: HashMap::new(),
            folding: Vec::new(),
            window_open: false,
            shadow: None,
        }
    }

    /// The step's kind.
    pub(super) fn kind(&self) -> StepKind {
        self.kind
    }

    /// What becomes of a record this step fails.
    pub(super) fn on_error(&self) -> OnError {
        self.on_error
    }

    /// One `fold` call of an aggregate step, on a live or fresh instance,
    /// within the step's time limit and `deadline`. A failed call drops the
    /// instance; the error says why, for the records of the call.
    pub(super) fn fold(
        &mut self,
        window: &crate::plugin::Window,
        state: &str,
        batch: &mut [Event],
        deadline: Option<Instant>,
    ) -> Result<crate::plugin::kind::Folded, (FailureClass, String)> {
        let mut instance = self
            .ready_instance(deadline)
            .map_err(|f| (f.class, f.reason))?;
        let limit_ms = self.plugin.limits().timeout_ms;
        let timeout_ms = millis_left(deadline).map_or(limit_ms, |ms| ms.min(limit_ms));
        match instance.fold(window, state, batch, timeout_ms) {
            Ok(folded) => {
                self.instance = Some(instance);
                Ok(folded)
            }
            Err(e) => {
                let f = self.call_failure(&e, false, timeout_ms);
                Err((f.class, f.reason))
            }
        }
    }

    /// The window's outputs from an aggregate step's `emit`.
    pub(super) fn emit(
        &mut self,
        window: &crate::plugin::Window,
        state: &str,
        deadline: Option<Instant>,
    ) -> Result<Vec<crate::plugin::Output>, String> {
        let mut instance = self.ready_instance(deadline).map_err(|f| f.reason)?;
        let limit_ms = self.plugin.limits().timeout_ms;
        let timeout_ms = millis_left(deadline).map_or(limit_ms, |ms| ms.min(limit_ms));
        match instance.emit(window, state, timeout_ms) {
            Ok(outputs) => {
                self.instance = Some(instance);
                outputs.map_err(|reason| format!("the plugin made no outputs: {reason}"))
            }
            Err(e) => Err(self.call_failure(&e, false, timeout_ms).reason),
        }
    }

    /// The failure of a call the deadline left no time for.
    fn not_run(&self) -> CallFailure {
        CallFailure::whole(
            FailureClass::Deadline,
            format!(
                "the invocation's deadline passed before step `{}` ran",
                self.plugin.step()
            ),
        )
    }

    /// One guest call on `events`, within the step's time limit and the
    /// invocation's `deadline`. A failed call drops the instance (it may be
    /// poisoned); the next call starts a fresh one.
    fn call(
        &mut self,
        events: &mut [Event],
        deadline: Option<Instant>,
    ) -> Result<Vec<Verdict>, CallFailure> {
        let mut instance = self.ready_instance(deadline)?;
        let left_ms = millis_left(deadline);
        if left_ms == Some(0) {
            return Err(self.not_run());
        }
        // The call gets the time really left, after a restart's `init`.
        let limit_ms = self.plugin.limits().timeout_ms;
        let cut_by_deadline = left_ms.is_some_and(|ms| ms < limit_ms);
        let timeout_ms = left_ms.map_or(limit_ms, |ms| ms.min(limit_ms));
        match instance.call(events, timeout_ms) {
            Ok(r) if r.len() == events.len() => {
                self.instance = Some(instance);
                Ok(r.into_iter().map(verdict).collect())
            }
            Ok(r) => Err(CallFailure::whole(
                FailureClass::Contract,
                format!(
                    "plugin broke the contract: returned {} results for {} events",
                    r.len(),
                    events.len()
                ),
            )),
            Err(e) => Err(self.call_failure(&e, cut_by_deadline, timeout_ms)),
        }
    }

    /// The live instance, or a fresh one (its `init` given no more than the
    /// time left before `deadline`).
    fn ready_instance(&mut self, deadline: Option<Instant>) -> Result<Instance, CallFailure> {
        let limit_ms = self.plugin.limits().timeout_ms;
        let left_ms = millis_left(deadline);
        if left_ms == Some(0) {
            return Err(self.not_run());
        }
        let instance = match self.instance.take() {
            Some(i) => return Ok(i),
            None => self
                .plugin
                .instantiate_within(left_ms.map_or(limit_ms, |ms| ms.min(limit_ms))),
        };
        instance.map_err(|e| {
            tracing::error!(step = %self.plugin.step(), plugin = %self.plugin.name(), error = %e, "plugin could not be restarted");
            if millis_left(deadline) == Some(0) {
                CallFailure::whole(
                    FailureClass::Deadline,
                    format!("the invocation's deadline passed while the plugin restarted: {e}"),
                )
            } else {
                CallFailure::whole(FailureClass::Trap, e.to_string())
            }
        })
    }

    /// What a call that returned an error means: cut off at the deadline,
    /// over the step's time limit, over the copy-out limit, or a trap.
    fn call_failure(
        &self,
        e: &wasmtime::Error,
        cut_by_deadline: bool,
        timeout_ms: u64,
    ) -> CallFailure {
        let isolate = |class, reason| CallFailure {
            class,
            reason,
            isolate: true,
            cut_short: false,
        };
        if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
            if cut_by_deadline {
                return CallFailure {
                    cut_short: true,
                    ..CallFailure::whole(
                        FailureClass::Deadline,
                        format!(
                            "plugin call cut off at the invocation's deadline after {timeout_ms} ms"
                        ),
                    )
                };
            }
            return isolate(
                FailureClass::Trap,
                format!(
                    "{TIMED_OUT}: the call took more than {} ms (`limits.timeout_ms`)",
                    self.plugin.limits().timeout_ms
                ),
            );
        }
        if e.downcast_ref::<ResultsTooBig>().is_some() {
            return isolate(
                FailureClass::Contract,
                format!("plugin broke the contract: {e}"),
            );
        }
        tracing::debug!(step = %self.plugin.step(), plugin = %self.plugin.name(), error = ?e, "plugin trap in full");
        isolate(
            FailureClass::Trap,
            format!("plugin trapped: {}", crate::plugin::trap_reason(e)),
        )
    }

    /// Calls the plugin on `events`; when the call fails as a whole (a trap
    /// or a timeout), runs the two halves again on fresh instances, and so
    /// on, until only the events that make the plugin fail on their own are
    /// failed. Always one verdict per event. `calls` counts the guest calls.
    ///
    /// One poison event among `n` costs about `2·log2(n)` extra calls (and
    /// as many restarts); the invocation's deadline bounds it all.
    fn run_isolating(
        &mut self,
        events: &mut [Event],
        deadline: Option<Instant>,
        calls: &mut usize,
    ) -> Vec<Verdict> {
        *calls += 1;
        match self.call(events, deadline) {
            Ok(results) => results,
            Err(f) if !f.isolate || events.len() == 1 => {
                let verdicts: Vec<Verdict> = events
                    .iter()
                    .map(|_| Err((f.class, f.reason.clone())))
                    .collect();
                if f.cut_short {
                    self.note_unfinished(events, &verdicts);
                }
                if events.len() == 1 && f.reason.starts_with(TIMED_OUT) {
                    self.remember_timed_out(&events[0], &f.reason);
                }
                verdicts
            }
            Err(f) => {
                tracing::warn!(step = %self.plugin.step(), plugin = %self.plugin.name(), events = events.len(), class = f.class.as_str(), error = %f.reason, "plugin call failed; re-running its events in halves to find the ones that fail");
                self.run_halves(events, deadline, calls)
            }
        }
    }

    /// Runs the two halves of `events` (a set known to fail as a whole) on
    /// their own, isolating further; remembers the set when the deadline
    /// cuts its isolation short.
    fn run_halves(
        &mut self,
        events: &mut [Event],
        deadline: Option<Instant>,
        calls: &mut usize,
    ) -> Vec<Verdict> {
        let (left, right) = events.split_at_mut(events.len() / 2);
        let mut results = self.run_isolating(left, deadline, calls);
        results.extend(self.run_isolating(right, deadline, calls));
        self.note_unfinished(events, &results);
        results
    }

    /// Keeps `events` as the narrowest unfinished isolation when the
    /// deadline cut some of their verdicts (children are noted before their
    /// parents, so the narrowest set stays).
    fn note_unfinished(&mut self, events: &[Event], verdicts: &[Verdict]) {
        if verdicts.iter().any(is_deadline)
            && self
                .unfinished
                .as_ref()
                .is_none_or(|u| u.len() > events.len())
        {
            self.unfinished = Some(events.iter().map(identity).collect());
        }
    }

    fn remember_timed_out(&mut self, event: &Event, reason: &str) {
        if self.timed_out.len() >= MAX_REMEMBERED {
            self.timed_out.clear();
        }
        self.timed_out.insert(identity(event), reason.to_owned());
    }

    /// Runs `events` with what earlier invocations learned: events of an
    /// isolation the deadline cut short (the step's suspects) go first, on
    /// their own and already halved, then the rest in one call. So every
    /// retry of a batch that holds a record the plugin spins on narrows the
    /// suspects down (at least by half) until that record fails alone, even
    /// when one invocation's time cannot isolate it; and a record that ran
    /// out of the invocation's time alone, twice, fails as a timeout.
    /// Fails the events that ran out of time alone in an earlier
    /// invocation at once, without a call, and runs the others as
    /// [`Step::run_learning`] does.
    fn run_known(
        &mut self,
        events: &mut Vec<Event>,
        deadline: Option<Instant>,
        calls: &mut usize,
    ) -> Vec<Verdict> {
        let known: Vec<Option<String>> = events
            .iter()
            .map(|e| self.timed_out.get(&identity(e)).cloned())
            .collect();
        if known.iter().all(Option::is_none) {
            let timed_out = std::mem::take(&mut self.timed_out);
            let verdicts = self.run_learning(events, deadline, calls);
            self.timed_out.extend(timed_out);
            return verdicts;
        }
        let mut slots: Vec<Option<Event>> = events.drain(..).map(Some).collect();
        let mut rest: Vec<Event> = slots
            .iter_mut()
            .zip(&known)
            .filter(|(_, k)| k.is_none())
            .filter_map(|(e, _)| e.take())
            .collect();
        let timed_out = std::mem::take(&mut self.timed_out);
        let mut verdicts = if rest.is_empty() {
            Vec::new()
        } else {
            self.run_learning(&mut rest, deadline, calls)
        }
        .into_iter();
        self.timed_out.extend(timed_out);
        let mut rest = rest.into_iter();
        let mut out = Vec::with_capacity(known.len());
        for (slot, k) in slots.iter_mut().zip(known) {
            match k {
                Some(reason) => out.push(Err((
                    FailureClass::Trap,
                    format!("{reason} (remembered from an earlier invocation; not run again)"),
                ))),
                None => {
                    *slot = rest.next();
                    out.push(
                        verdicts.next().unwrap_or_else(|| {
                            Err((FailureClass::Deadline, "no verdict".to_owned()))
                        }),
                    );
                }
            }
        }
        events.extend(slots.into_iter().flatten());
        out
    }

    fn run_learning(
        &mut self,
        events: &mut Vec<Event>,
        deadline: Option<Instant>,
        calls: &mut usize,
    ) -> Vec<Verdict> {
        self.unfinished = None;
        if !self.timed_out.is_empty() {
            return self.run_known(events, deadline, calls);
        }
        let suspect: Vec<bool> = if self.suspects.is_empty() {
            Vec::new()
        } else {
            events
                .iter()
                .map(|e| self.suspects.contains(&identity(e)))
                .collect()
        };
        let n_suspect = suspect.iter().filter(|&&s| s).count();
        let verdicts = if n_suspect == 0 {
            self.run_isolating(events, deadline, calls)
        } else {
            tracing::warn!(step = %self.plugin.step(), plugin = %self.plugin.name(), suspects = n_suspect,
                "running first, in halves, the events an earlier invocation could not finish isolating");
            let order: Vec<usize> = (0..events.len())
                .filter(|&i| suspect[i])
                .chain((0..events.len()).filter(|&i| !suspect[i]))
                .collect();
            let mut slots: Vec<Option<Event>> = events.drain(..).map(Some).collect();
            let mut permuted: Vec<Event> = order.iter().filter_map(|&i| slots[i].take()).collect();
            let (suspects, rest) = permuted.split_at_mut(n_suspect);
            let mut verdicts = if suspects.len() == 1 {
                *calls += 1;
                match self.call(suspects, deadline) {
                    Ok(v) => v,
                    Err(f) if f.cut_short => {
                        let reason = format!(
                            "{TIMED_OUT}: it did not finish this event alone before the \
                             invocation's deadline, after an earlier invocation ran out of time \
                             on it too ({})",
                            f.reason
                        );
                        self.remember_timed_out(&suspects[0], &reason);
                        vec![Err((FailureClass::Trap, reason))]
                    }
                    Err(f) => {
                        let verdicts = vec![Err((f.class, f.reason))];
                        // Not run at all: still a suspect next time.
                        self.note_unfinished(suspects, &verdicts);
                        verdicts
                    }
                }
            } else {
                self.run_halves(suspects, deadline, calls)
            };
            if !rest.is_empty() {
                verdicts.extend(self.run_isolating(rest, deadline, calls));
            }
            let mut placed: Vec<Option<Verdict>> = (0..order.len()).map(|_| None).collect();
            for ((&i, event), verdict) in order.iter().zip(permuted).zip(verdicts) {
                slots[i] = Some(event);
                placed[i] = Some(verdict);
            }
            events.extend(slots.into_iter().flatten());
            placed.into_iter().flatten().collect()
        };
        self.suspects = self
            .unfinished
            .take()
            .map(|u| u.into_iter().collect())
            .unwrap_or_default();
        verdicts
    }

    /// Runs the step on `live`: one guest call for all of it (more only to
    /// isolate a failure), then each event's verdict applied.
    pub(super) fn run(
        &mut self,
        plan: &Plan,
        mut live: Live,
        failed: &mut Failed,
        st: &mut StepStats,
        deadline: Option<Instant>,
    ) -> Live {
        if self.kind == StepKind::Aggregate {
            // Events pass unchanged; in a window, a copy of each waits to be
            // folded after delivery (`super::window`).
            if self.window_open {
                let slots = live.meta.iter().map(|m| m.slot);
                self.folding.extend(slots.zip(live.events.iter().cloned()));
            }
            st.output = live.len();
            return live;
        }
        let verdicts = self.run_learning(&mut live.events, deadline, &mut st.calls);
        if let Some(shadow) = &mut self.shadow {
            shadow.compare(&mut live.events, &verdicts, deadline, st);
        }
        let stage = Stage {
            name: self.plugin.step(),
            plugin: Some(self.plugin.name()),
            on_error: self.on_error,
        };
        let next = apply(
            plan,
            live,
            verdicts,
            stage,
            self.plugin.limits(),
            failed,
            st,
        );
        if self.kind == StepKind::Transform {
            // The events are no longer the records that came in.
            failed.transformed = true;
        }
        let next = if st.failed > 0 {
            next.drop_failed(failed)
        } else {
            next
        };
        st.output = next.len();
        next
    }
}
