//! Runs a plan's steps over a batch and says what became of every record.
//!
//! [`Pipeline::run`] makes one guest call per step per batch: the events that
//! reached the step go in as one list, one result per event comes back. The
//! result is a [`BatchOutcome`]: every input record is accounted for exactly
//! once, as routed outputs, filtered, or a [`RecordFailure`] naming the step,
//! plugin, sequence number and reason. A bad record never fails the batch.
//!
//! Lineage: a record keeps its shard id and sequence number through every
//! step; outputs of a `transform` inherit them. A record is all-or-nothing:
//! if any event descended from it fails, the record fails and none of its
//! outputs are delivered (so a retry redelivers it whole).
//!
//! Traps: when a call traps or times out, the instance is dropped (a fresh
//! one, with `init` run again, serves the next call) and the call's events
//! are run again in halves, each half on a fresh instance, recursively, until
//! only the events that make the plugin fail on their own are failed: one
//! poison record fails alone. [`StepStats::calls`] counts the calls this
//! took. A call that cannot be helped by splitting (the plugin cannot be
//! restarted, it returned the wrong number of results, the invocation's
//! deadline came) fails every event of that call.
//!
//! Error policy: each failure carries the [`OnError`] of the step that failed
//! it (a plugin's own `retry` is always retried). [`BatchOutcome`] sorts them:
//! `failures` are retried through Lambda, `dead_letters` keep the original
//! record for the dead-letter destination, `dropped` are only counted.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use crate::config::{DestinationId, Limits, OnError, Plan, StepKind};
use crate::event::{Batch, Record};
use crate::outcome::{BatchOutcome, FailureClass, Original, RecordFailure, Routed, StepStats};
use crate::plugin::{
    Decision, Event, Failure, Instance, Output, Plugin, PluginError, ResultsTooBig, Runtime,
};

struct Step {
    kind: StepKind,
    on_error: OnError,
    plugin: Plugin,
    instance: Option<Instance>,
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

/// A loaded pipeline: the plan and one compiled plugin per step.
pub struct Pipeline {
    plan: Plan,
    steps: Vec<Step>,
    /// Whether the steps' time limits were checked against an invocation's
    /// time (once, on the first invocation that has a deadline).
    limits_checked: bool,
}

/// Where one live event came from.
struct Meta {
    slot: usize,
    routes: Option<Vec<DestinationId>>,
}

/// The records still on their way through the steps: the events, as one
/// slice (what a guest call takes), and index for index where each came
/// from and where it goes.
#[derive(Default)]
struct Live {
    events: Vec<Event>,
    meta: Vec<Meta>,
}

impl Live {
    fn with_capacity(n: usize) -> Live {
        Live {
            events: Vec::with_capacity(n),
            meta: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, event: Event, meta: Meta) {
        self.events.push(event);
        self.meta.push(meta);
    }

    fn len(&self) -> usize {
        self.events.len()
    }

    /// Each event with its meta, in order.
    fn into_pairs(self) -> impl Iterator<Item = (Event, Meta)> {
        self.events.into_iter().zip(self.meta)
    }

    /// Drops the events of every input record that has failed (the siblings
    /// of a record that failed go no further).
    fn drop_failed(self, failed: &Failed) -> Live {
        let mut kept = Live::with_capacity(self.len());
        for (event, m) in self.into_pairs() {
            if !failed.is_failed(m.slot) {
                kept.push(event, m);
            }
        }
        kept
    }
}

/// Where a record failed: the stage (a step, or `routing`), its plugin, and
/// the policy that decides what becomes of the record.
#[derive(Debug, Clone, Copy)]
struct Stage<'a> {
    name: &'a str,
    plugin: Option<&'a str>,
    on_error: OnError,
}

impl Pipeline {
    /// Compiles every step's plugin and starts one instance of each, so that
    /// a bad plugin or bad settings fail here, at start-up.
    pub fn load(runtime: &Runtime, plan: Plan) -> Result<Pipeline, PluginError> {
        Pipeline::load_with(plan, |step| runtime.load(step))
    }

    /// Like [`Pipeline::load`], with `load` making each step's [`Plugin`]
    /// (the Lambda cold start fetches plugins from S3 first).
    pub fn load_with(
        plan: Plan,
        mut load: impl FnMut(&crate::config::StepPlan) -> Result<Plugin, PluginError>,
    ) -> Result<Pipeline, PluginError> {
        let mut steps = Vec::with_capacity(plan.steps.len());
        for step in &plan.steps {
            let plugin = load(step)?;
            let instance = plugin.instantiate()?;
            steps.push(Step {
                kind: step.kind,
                on_error: step.on_error,
                plugin,
                instance: Some(instance),
                suspects: HashSet::new(),
                unfinished: None,
                timed_out: HashMap::new(),
            });
        }
        Ok(Pipeline {
            plan,
            steps,
            limits_checked: false,
        })
    }

    /// The plan it runs.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Throws away every plugin instance: the next batch starts each plugin
    /// fresh (its `init` runs again). Fixture cases use this for isolation.
    pub fn reset(&mut self) {
        for step in &mut self.steps {
            step.instance = None;
        }
    }

    /// Warns when a step's `limits.timeout_ms` does not fit twice in the
    /// time the first invocation was given (the function's timeout, at
    /// most): one call that times out, then the halves of its isolation,
    /// cannot run within one invocation. Isolation still progresses across
    /// invocations (see [`Step::run_learning`]), one or two halvings per
    /// retry, but the function's timeout should be raised or `timeout_ms`
    /// lowered.
    fn check_time_limits(&self, deadline: Instant) {
        let left_ms = deadline
            .saturating_duration_since(Instant::now())
            .as_millis() as u64;
        for step in &self.plan.steps {
            if step.limits.timeout_ms.saturating_mul(2) > left_ms {
                tracing::warn!(
                    step = %step.name,
                    timeout_ms = step.limits.timeout_ms,
                    invocation_ms = left_ms,
                    "the step's limits.timeout_ms does not fit twice in the invocation's time: a \
                     record the plugin spins on takes several invocations to isolate. Lower \
                     limits.timeout_ms or raise the function's timeout"
                );
            }
        }
    }

    /// Runs the batch through every step, with no deadline but the steps' own
    /// `limits.timeout_ms`.
    pub fn run(&mut self, batch: Batch) -> BatchOutcome {
        self.run_until(batch, None)
    }

    /// Runs the batch through every step; no plugin call runs past
    /// `deadline` (the records of a call cut off there fail with
    /// [`FailureClass::Deadline`] and are retried).
    #[expect(
        clippy::too_many_lines,
        reason = "113 lines: to split at its seams (issue 32)"
    )]
    pub fn run_until(&mut self, batch: Batch, deadline: Option<Instant>) -> BatchOutcome {
        if let Some(deadline) = deadline.filter(|_| !self.limits_checked) {
            self.limits_checked = true;
            self.check_time_limits(deadline);
        }
        let records_in = batch.len();
        let source = batch.source;
        let default_action = self.plan.default_on_error();
        let mut failed = Failed {
            slots: vec![None; records_in],
            originals: Vec::new(),
            transformed: false,
        };
        if self.plan.dead_letter.is_some() {
            failed.originals.resize_with(records_in, || None);
        }
        for r in batch.rejected {
            if let Some(original) = failed.originals.get_mut(r.index) {
                *original = Some(Original::Raw(r.raw));
            }
            failed.slots[r.index] = Some(RecordFailure {
                index: r.index,
                shard_id: r.shard_id,
                sequence_number: r.sequence_number,
                stage: "event".into(),
                plugin: None,
                class: FailureClass::Decode,
                reason: r.reason,
                action: default_action,
            });
        }
        let mut live = Live {
            events: batch.records.into_iter().map(Event::from).collect(),
            meta: batch
                .slot
                .into_iter()
                .map(|slot| Meta { slot, routes: None })
                .collect(),
        };

        let mut stats = Vec::with_capacity(self.steps.len());
        for step in &mut self.steps {
            let _span = tracing::debug_span!(
                "sluice.pipeline.step",
                step = step.plugin.step(),
                plugin = step.plugin.name(),
                events = live.len()
            )
            .entered();
            let mut st = StepStats {
                input: live.len(),
                ..StepStats::default()
            };
            if live.len() > 0 {
                let started = Instant::now();
                live = step.run(&self.plan, live, &mut failed, &mut st, deadline);
                st.duration = started.elapsed();
            }
            stats.push(st);
        }

        let mut outcome = BatchOutcome {
            records_in,
            source,
            steps: stats,
            ..BatchOutcome::default()
        };
        outcome.routed.reserve(live.len());
        let mut produced = vec![false; records_in];
        let mut last_slot = usize::MAX;
        let mut output_index = 0u32;
        for (event, m) in live.into_pairs() {
            if failed.slots[m.slot].is_some() {
                continue;
            }
            let destinations = match m.routes {
                Some(routes) => routes,
                None => match self.plan.default_destination {
                    Some(d) => vec![d],
                    None => {
                        failed.fail(
                            &event,
                            m.slot,
                            Stage {
                                name: "routing",
                                plugin: None,
                                on_error: default_action,
                            },
                            FailureClass::Contract,
                            "no `route` step chose a destination and the config has no `routing.default`".into(),
                        );
                        continue;
                    }
                },
            };
            if m.slot != last_slot {
                last_slot = m.slot;
                output_index = 0;
            }
            produced[m.slot] = true;
            outcome.routed.push(Routed {
                record: Record::from(event),
                slot: m.slot,
                output_index,
                destinations,
                host_attributes: Vec::new(),
            });
            output_index += 1;
        }
        // A record that failed late may already have routed siblings: drop them.
        outcome.routed.retain(|r| failed.slots[r.slot].is_none());
        outcome.filtered = (0..records_in)
            .filter(|&i| failed.slots[i].is_none() && !produced[i])
            .count();
        // The ledger files each failure by its action; dead letters take
        // their originals from it.
        outcome.originals = failed.originals;
        outcome.fail_all(failed.slots.into_iter().flatten());
        outcome
    }
}

/// The failures of a batch so far, and the original records that a dead
/// letter would carry.
struct Failed {
    /// Per input record: its failure, if it failed.
    slots: Vec<Option<RecordFailure>>,
    /// Per input record (only when a dead-letter destination is set): the
    /// record as it came in. Filled when a record fails, or, without a copy,
    /// when the first `transform` consumes it.
    originals: Vec<Option<Original>>,
    /// Whether a `transform` has run: events are no longer the originals.
    transformed: bool,
}

impl Failed {
    /// Records the first failure of input record `slot`, met on `event`.
    fn fail(
        &mut self,
        event: &Event,
        slot: usize,
        stage: Stage<'_>,
        class: FailureClass,
        reason: String,
    ) {
        if self.slots[slot].is_some() {
            return;
        }
        let action = class.action(stage.on_error);
        if action == OnError::DeadLetter
            && !self.transformed
            && let Some(kept @ None) = self.originals.get_mut(slot)
        {
            *kept = Some(Original::Record(Record::from(event.clone())));
        }
        self.slots[slot] = Some(RecordFailure {
            index: slot,
            shard_id: Some(event.shard_id.clone()),
            sequence_number: Some(event.sequence_number.clone()),
            stage: stage.name.to_owned(),
            plugin: stage.plugin.map(str::to_owned),
            class,
            reason,
            action,
        });
    }

    fn is_failed(&self, slot: usize) -> bool {
        self.slots[slot].is_some()
    }
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
    #[expect(
        clippy::too_many_lines,
        reason = "81 lines: to split at its seams (issue 32)"
    )]
    fn call(
        &mut self,
        events: &mut [Event],
        deadline: Option<Instant>,
    ) -> Result<Vec<Verdict>, CallFailure> {
        let limits = *self.plugin.limits();
        // The call's time limit: the step's own, or less when the
        // invocation's deadline comes first.
        let left_ms = millis_left(deadline);
        if left_ms == Some(0) {
            return Err(self.not_run());
        }
        let instance = match self.instance.take() {
            Some(i) => Ok(i),
            // A restart's `init` gets no more than the time left.
            None => self.plugin.instantiate_within(
                left_ms.map_or(limits.timeout_ms, |ms| ms.min(limits.timeout_ms)),
            ),
        };
        let left_ms = millis_left(deadline);
        let mut instance = instance.map_err(|e| {
            tracing::error!(step = %self.plugin.step(), plugin = %self.plugin.name(), error = %e, "plugin could not be restarted");
            if left_ms == Some(0) {
                CallFailure::whole(
                    FailureClass::Deadline,
                    format!("the invocation's deadline passed while the plugin restarted: {e}"),
                )
            } else {
                CallFailure::whole(FailureClass::Trap, e.to_string())
            }
        })?;
        if left_ms == Some(0) {
            return Err(self.not_run());
        }
        // The call gets the time really left, after a restart's `init`.
        let cut_by_deadline = left_ms.is_some_and(|ms| ms < limits.timeout_ms);
        let timeout_ms = left_ms.map_or(limits.timeout_ms, |ms| ms.min(limits.timeout_ms));

        let result = instance.call(events, timeout_ms);
        match result {
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
            Err(e) if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) => {
                if cut_by_deadline {
                    Err(CallFailure {
                        cut_short: true,
                        ..CallFailure::whole(
                            FailureClass::Deadline,
                            format!(
                                "plugin call cut off at the invocation's deadline after {timeout_ms} ms"
                            ),
                        )
                    })
                } else {
                    Err(CallFailure {
                        class: FailureClass::Trap,
                        reason: format!(
                            "{TIMED_OUT}: the call took more than {} ms (`limits.timeout_ms`)",
                            limits.timeout_ms
                        ),
                        isolate: true,
                        cut_short: false,
                    })
                }
            }
            Err(e) if e.downcast_ref::<ResultsTooBig>().is_some() => Err(CallFailure {
                class: FailureClass::Contract,
                reason: format!("plugin broke the contract: {e}"),
                isolate: true,
                cut_short: false,
            }),
            Err(e) => {
                tracing::debug!(step = %self.plugin.step(), plugin = %self.plugin.name(), error = ?e, "plugin trap in full");
                Err(CallFailure {
                    class: FailureClass::Trap,
                    reason: format!("plugin trapped: {}", crate::plugin::trap_reason(&e)),
                    isolate: true,
                    cut_short: false,
                })
            }
        }
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
    fn run(
        &mut self,
        plan: &Plan,
        mut live: Live,
        failed: &mut Failed,
        st: &mut StepStats,
        deadline: Option<Instant>,
    ) -> Live {
        let verdicts = self.run_learning(&mut live.events, deadline, &mut st.calls);
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

/// A step's verdicts, event by event: a filter keeps or drops it; a
/// transform replaces it by its outputs (none: dropped), within the step's
/// limits; a route gives it its destinations (none: the default one). A
/// failed event fails its input record. The first transform consumes the
/// original events: they are kept (moved, not copied) for dead letters.
fn apply(
    plan: &Plan,
    live: Live,
    verdicts: Vec<Verdict>,
    stage: Stage<'_>,
    limits: &Limits,
    failed: &mut Failed,
    st: &mut StepStats,
) -> Live {
    let keep_originals = !failed.transformed && !failed.originals.is_empty();
    let mut next = Live::with_capacity(live.len());
    for ((event, mut m), verdict) in live.into_pairs().zip(verdicts) {
        let outputs = match verdict {
            Ok(Decision::Keep(true)) => {
                next.push(event, m);
                continue;
            }
            Ok(Decision::Keep(false)) => {
                st.dropped += 1;
                continue;
            }
            Ok(Decision::Routes(names)) => match destinations(plan, &names) {
                Ok(ids) => {
                    m.routes = Some(ids);
                    next.push(event, m);
                    continue;
                }
                Err(e) => Err(e),
            },
            Ok(Decision::Outputs(outputs)) => within_limits(limits, outputs),
            Err(e) => Err(e),
        };
        match outputs {
            Ok(outputs) if outputs.is_empty() => st.dropped += 1,
            Ok(mut outputs) => {
                let keep = keep_originals && failed.originals[m.slot].is_none();
                // The last output takes the event's lineage by move, unless
                // the event is kept as the original.
                let last = if keep { None } else { outputs.pop() };
                for out in outputs {
                    let meta = Meta {
                        slot: m.slot,
                        routes: m.routes.clone(),
                    };
                    next.push(derive(&event, out), meta);
                }
                match last {
                    Some(out) => next.push(adopt(event, out), m),
                    None => {
                        failed.originals[m.slot] = Some(Original::Record(Record::from(event)));
                    }
                }
                continue;
            }
            Err((class, reason)) => {
                failed.fail(&event, m.slot, stage, class, reason);
                st.failed += 1;
            }
        }
        if keep_originals && let kept @ None = &mut failed.originals[m.slot] {
            *kept = Some(Original::Record(Record::from(event)));
        }
    }
    next
}

/// A transform's outputs of one event, if they are within the step's limits.
fn within_limits(
    limits: &Limits,
    outputs: Vec<Output>,
) -> Result<Vec<Output>, (FailureClass, String)> {
    if outputs.len() > limits.max_outputs_per_event {
        return Err((
            FailureClass::Contract,
            format!(
                "transform made {} outputs of one event; the limit is {} (`limits.max_outputs_per_event`)",
                outputs.len(),
                limits.max_outputs_per_event
            ),
        ));
    }
    let biggest = outputs.iter().map(|o| o.data.len()).max().unwrap_or(0);
    if biggest > limits.max_output_bytes {
        return Err((
            FailureClass::Contract,
            format!(
                "transform made an output of {biggest} bytes; the limit is {} (`limits.max_output_bytes`)",
                limits.max_output_bytes
            ),
        ));
    }
    Ok(outputs)
}

/// The destinations a route named (none: the default one).
fn destinations(
    plan: &Plan,
    names: &[String],
) -> Result<Vec<DestinationId>, (FailureClass, String)> {
    if names.is_empty() {
        return match plan.default_destination {
            Some(d) => Ok(vec![d]),
            None => Err((
                FailureClass::Contract,
                "route returned no destination and the config has no `routing.default`".to_owned(),
            )),
        };
    }
    resolve(plan, names)
}

/// One event's result from a step, or why it failed (its class and reason).
type Verdict = Result<Decision, (FailureClass, String)>;

fn verdict(r: Result<Decision, Failure>) -> Verdict {
    r.map_err(|f| match f {
        Failure::Invalid(reason) => (FailureClass::Invalid, reason),
        Failure::Retry(reason) => (FailureClass::Retry, reason),
    })
}

fn resolve(plan: &Plan, names: &[String]) -> Result<Vec<DestinationId>, (FailureClass, String)> {
    let mut ids = Vec::with_capacity(names.len());
    for name in names {
        let id = plan.destination(name).ok_or_else(|| {
            (
                FailureClass::Contract,
                format!(
                    "route named destination `{name}`, which is not defined (defined: {})",
                    plan.destination_names()
                ),
            )
        })?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// [`derive`] for the last output of an event: the lineage is moved, not copied.
fn adopt(parent: Event, out: Output) -> Event {
    Event {
        partition_key: out.partition_key.unwrap_or(parent.partition_key),
        sequence_number: parent.sequence_number,
        sub_sequence_number: parent.sub_sequence_number,
        shard_id: parent.shard_id,
        arrival_ms: parent.arrival_ms,
        data: out.data,
        attributes: out.attributes,
    }
}

/// A transform output as an event, with the lineage of the event it came from.
fn derive(parent: &Event, out: Output) -> Event {
    Event {
        partition_key: out
            .partition_key
            .unwrap_or_else(|| parent.partition_key.clone()),
        sequence_number: parent.sequence_number.clone(),
        sub_sequence_number: parent.sub_sequence_number,
        shard_id: parent.shard_id.clone(),
        arrival_ms: parent.arrival_ms,
        data: out.data,
        attributes: out.attributes,
    }
}
