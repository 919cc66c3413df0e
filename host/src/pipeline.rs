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

use std::time::Instant;

use crate::config::{DestinationId, Limits, OnError, Plan, StepKind};
use crate::event::{Batch, Record};
use crate::plugin::{
    CallError, Event, Failure, Instance, Output, Plugin, PluginError, ResultsTooBig, Runtime,
};

/// Why a record failed, independent of the plugin's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureClass {
    /// The input record itself could not be decoded.
    Decode,
    /// A plugin said the record is bad (`failure::invalid`).
    Invalid,
    /// A plugin said the record should be retried (`failure::retry`).
    Retry,
    /// The plugin trapped (panicked, ran out of memory …) on the call.
    Trap,
    /// The plugin broke the contract (wrong result count, unknown destination).
    Contract,
    /// A destination did not accept the record's outputs.
    Delivery,
    /// The invocation ran out of time before the record was done (the
    /// Lambda deadline, not the plugin's own limit). Always retried.
    Deadline,
}

impl FailureClass {
    /// The class's name as logs and summaries show it.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Decode => "decode",
            FailureClass::Invalid => "invalid",
            FailureClass::Retry => "retry",
            FailureClass::Trap => "trap",
            FailureClass::Contract => "contract",
            FailureClass::Delivery => "delivery",
            FailureClass::Deadline => "deadline",
        }
    }
}

/// One input record that failed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecordFailure {
    /// Its position in the event's `Records`.
    pub index: usize,
    /// Its shard, if known.
    pub shard_id: Option<String>,
    /// Its sequence number, if known (always known past decoding).
    pub sequence_number: Option<String>,
    /// Where it failed: `event` (decoding), a step name, `routing`, or
    /// `destination <name>`.
    pub stage: String,
    /// The plugin's name, when a plugin failed it.
    pub plugin: Option<String>,
    /// The failure class.
    pub class: FailureClass,
    /// The reason, in the plugin's or host's words.
    pub reason: String,
    /// What is done about it.
    pub action: OnError,
}

/// A failed record on its way to the dead-letter destination.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Why it failed.
    pub failure: RecordFailure,
    /// The record as it came in.
    pub original: Original,
}

/// The input record a dead letter carries.
#[derive(Debug, Clone)]
pub enum Original {
    /// A decoded record, as it was before any step ran.
    Record(Record),
    /// A record that did not decode: its JSON as Lambda sent it.
    Raw(String),
}

/// One output ready for its destinations.
#[derive(Debug, Clone)]
pub struct Routed {
    /// The output, with the lineage of its input record.
    pub record: Record,
    /// The input record's position in the event's `Records`.
    pub slot: usize,
    /// Which output of that input record this is (0, 1, …): with shard and
    /// sequence number, a deterministic identity for deduplication.
    pub output_index: u32,
    /// The destinations it goes to.
    pub destinations: Vec<DestinationId>,
    /// Attributes Sluice sets itself (a dead letter's failure class and
    /// stage), kept apart from the plugins' `record.attributes`: destinations
    /// check a plugin's attribute names against their rules, then add these.
    pub host_attributes: Vec<(&'static str, String)>,
}

/// Counts for one step of one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepStats {
    /// Events that reached the step.
    pub input: usize,
    /// Events that came out (kept by a filter, outputs of a transform, routed).
    pub output: usize,
    /// Events the step dropped (filtered out, or transformed into nothing).
    pub dropped: usize,
    /// Events the step failed.
    pub failed: usize,
    /// Guest calls made: 1 per batch, more when a failed call was bisected
    /// to isolate the events that made it fail.
    pub calls: usize,
    /// Time spent in the step (guest calls and applying their results).
    pub duration: std::time::Duration,
}

/// What became of a batch.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// Records in the event (decoded or not; after `[source]`, one per user
    /// record or log event).
    pub records_in: usize,
    /// What `[source]` made of the event's Kinesis records.
    pub source: crate::event::SourceStats,
    /// Outputs, in input order, each with its destinations.
    pub routed: Vec<Routed>,
    /// Failed input records to retry (reported to Lambda), in input order;
    /// at most one per record.
    pub failures: Vec<RecordFailure>,
    /// Failed input records for the dead-letter destination, in input order.
    pub dead_letters: Vec<DeadLetter>,
    /// Failed input records dropped by an `on_error = "drop"` policy.
    pub dropped: Vec<RecordFailure>,
    /// Input records that produced no output and did not fail.
    pub filtered: usize,
    /// Input records whose outputs were held back because an earlier record
    /// of the same shard failed (Lambda redelivers them).
    pub held_back: usize,
    /// Per-step counts, in step order.
    pub steps: Vec<StepStats>,
    /// Per input record, only when a dead-letter destination is set: the
    /// record as it came in, where a `transform` replaced it (a record that no
    /// transform touched is its own routed output). Dispatch dead-letters
    /// from here a record that a destination refuses for good.
    pub originals: Vec<Option<Original>>,
}

impl BatchOutcome {
    /// The original of input record `slot`, for a dead letter: taken from
    /// [`BatchOutcome::originals`], or, for a record no transform touched,
    /// rebuilt from its routed output.
    pub fn take_original(&mut self, slot: usize) -> Option<Original> {
        if let Some(original) = self.originals.get_mut(slot).and_then(Option::take) {
            return Some(original);
        }
        self.routed
            .iter()
            .find(|r| r.slot == slot)
            .map(|r| Original::Record(r.record.clone()))
    }
}

struct Step {
    kind: StepKind,
    on_error: OnError,
    plugin: Plugin,
    instance: Option<Instance>,
}

/// A loaded pipeline: the plan and one compiled plugin per step.
pub struct Pipeline {
    plan: Plan,
    steps: Vec<Step>,
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
            });
        }
        Ok(Pipeline { plan, steps })
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

    /// Runs the batch through every step, with no deadline but the steps' own
    /// `limits.timeout_ms`.
    pub fn run(&mut self, batch: Batch) -> BatchOutcome {
        self.run_until(batch, None)
    }

    /// Runs the batch through every step; no plugin call runs past
    /// `deadline` (the records of a call cut off there fail with
    /// [`FailureClass::Deadline`] and are retried).
    pub fn run_until(&mut self, batch: Batch, deadline: Option<Instant>) -> BatchOutcome {
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
            events: batch.records.into_iter().map(to_event).collect(),
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
                record: to_record(event),
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
        let Failed {
            slots,
            mut originals,
            ..
        } = failed;
        for f in slots.into_iter().flatten() {
            match f.action {
                OnError::Retry => outcome.failures.push(f),
                OnError::Drop => outcome.dropped.push(f),
                OnError::DeadLetter => {
                    match originals.get_mut(f.index).and_then(Option::take) {
                        Some(original) => outcome.dead_letters.push(DeadLetter {
                            failure: f,
                            original,
                        }),
                        // Unreachable: originals are kept whenever a dead
                        // letter is possible. Retrying never loses a record.
                        None => outcome.failures.push(RecordFailure {
                            action: OnError::Retry,
                            ..f
                        }),
                    }
                }
            }
        }
        outcome.originals = originals;
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
        // A plugin that asks for a retry gets one, whatever the policy, and
        // so does a record the invocation had no time left for.
        let action = if matches!(class, FailureClass::Retry | FailureClass::Deadline) {
            OnError::Retry
        } else {
            stage.on_error
        };
        if action == OnError::DeadLetter
            && !self.transformed
            && let Some(kept @ None) = self.originals.get_mut(slot)
        {
            *kept = Some(Original::Record(to_record(event.clone())));
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
}

impl CallFailure {
    fn whole(class: FailureClass, reason: String) -> CallFailure {
        CallFailure {
            class,
            reason,
            isolate: false,
        }
    }
}

impl Step {
    /// One guest call on `events`, within the step's time limit and the
    /// invocation's `deadline`. A failed call drops the instance (it may be
    /// poisoned); the next call starts a fresh one.
    fn call<T>(
        &mut self,
        events: &[Event],
        deadline: Option<Instant>,
        guest: Guest<T>,
    ) -> Result<Vec<Verdict<T>>, CallFailure> {
        let limits = *self.plugin.limits();
        // The call's time limit: the step's own, or less when the
        // invocation's deadline comes first.
        let left_ms =
            deadline.map(|d| d.saturating_duration_since(Instant::now()).as_millis() as u64);
        if left_ms == Some(0) {
            return Err(CallFailure::whole(
                FailureClass::Deadline,
                format!(
                    "the invocation's deadline passed before step `{}` ran",
                    self.plugin.step()
                ),
            ));
        }
        let cut_by_deadline = left_ms.is_some_and(|ms| ms < limits.timeout_ms);
        let timeout_ms = left_ms.map_or(limits.timeout_ms, |ms| ms.min(limits.timeout_ms));

        let instance = match self.instance.take() {
            Some(i) => Ok(i),
            None => self.plugin.instantiate(),
        };
        let mut instance = instance.map_err(|e| {
            tracing::error!(step = %self.plugin.step(), plugin = %self.plugin.name(), error = %e, "plugin could not be restarted");
            CallFailure::whole(FailureClass::Trap, e.to_string())
        })?;

        let result = guest(&mut instance, events, timeout_ms);
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
                    Err(CallFailure::whole(
                        FailureClass::Deadline,
                        format!(
                            "plugin call cut off at the invocation's deadline after {timeout_ms} ms"
                        ),
                    ))
                } else {
                    Err(CallFailure {
                        class: FailureClass::Trap,
                        reason: format!(
                            "plugin timed out: the call took more than {} ms (`limits.timeout_ms`)",
                            limits.timeout_ms
                        ),
                        isolate: true,
                    })
                }
            }
            Err(e) if e.downcast_ref::<ResultsTooBig>().is_some() => Err(CallFailure {
                class: FailureClass::Contract,
                reason: format!("plugin broke the contract: {e}"),
                isolate: true,
            }),
            Err(e) => {
                tracing::debug!(step = %self.plugin.step(), plugin = %self.plugin.name(), error = ?e, "plugin trap in full");
                Err(CallFailure {
                    class: FailureClass::Trap,
                    reason: format!("plugin trapped: {}", crate::plugin::trap_reason(&e)),
                    isolate: true,
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
    fn run_isolating<T>(
        &mut self,
        events: &[Event],
        deadline: Option<Instant>,
        calls: &mut usize,
        guest: Guest<T>,
    ) -> Vec<Verdict<T>> {
        *calls += 1;
        match self.call(events, deadline, guest) {
            Ok(results) => results,
            Err(f) if !f.isolate || events.len() == 1 => events
                .iter()
                .map(|_| Err((f.class, f.reason.clone())))
                .collect(),
            Err(f) => {
                tracing::warn!(step = %self.plugin.step(), plugin = %self.plugin.name(), events = events.len(), class = f.class.as_str(), error = %f.reason, "plugin call failed; re-running its events in halves to find the ones that fail");
                let (left, right) = events.split_at(events.len() / 2);
                let mut results = self.run_isolating(left, deadline, calls, guest);
                results.extend(self.run_isolating(right, deadline, calls, guest));
                results
            }
        }
    }

    /// Runs the step on `live`: one guest call for all of it (more only to
    /// isolate a failure), then its verdicts applied by the step's kind.
    fn run(
        &mut self,
        plan: &Plan,
        live: Live,
        failed: &mut Failed,
        st: &mut StepStats,
        deadline: Option<Instant>,
    ) -> Live {
        let calls = &mut st.calls;
        let next = match self.kind {
            StepKind::Filter => {
                let verdicts = self.run_isolating(&live.events, deadline, calls, Instance::filter);
                apply_filter(live, verdicts, self.stage(), failed, st)
            }
            StepKind::Transform => {
                let verdicts =
                    self.run_isolating(&live.events, deadline, calls, Instance::transform);
                apply_transform(
                    live,
                    verdicts,
                    self.stage(),
                    self.plugin.limits(),
                    failed,
                    st,
                )
            }
            StepKind::Route => {
                let verdicts = self.run_isolating(&live.events, deadline, calls, Instance::route);
                apply_route(plan, live, verdicts, self.stage(), failed, st)
            }
        };
        let next = if st.failed > 0 {
            next.drop_failed(failed)
        } else {
            next
        };
        st.output = next.len();
        next
    }

    fn stage(&self) -> Stage<'_> {
        Stage {
            name: self.plugin.step(),
            plugin: Some(self.plugin.name()),
            on_error: self.on_error,
        }
    }
}

/// A filter's verdicts: kept events go on, the others are dropped.
fn apply_filter(
    live: Live,
    verdicts: Vec<Verdict<bool>>,
    stage: Stage<'_>,
    failed: &mut Failed,
    st: &mut StepStats,
) -> Live {
    let mut next = Live::with_capacity(live.len());
    for ((event, m), v) in live.into_pairs().zip(verdicts) {
        match v {
            Ok(true) => next.push(event, m),
            Ok(false) => st.dropped += 1,
            Err((class, reason)) => {
                failed.fail(&event, m.slot, stage, class, reason);
                st.failed += 1;
            }
        }
    }
    next
}

/// A transform's verdicts: each event becomes its outputs (none: dropped),
/// within the step's limits. The first transform consumes the original
/// events: they are kept (moved, not copied) for dead letters.
fn apply_transform(
    live: Live,
    verdicts: Vec<Verdict<Vec<Output>>>,
    stage: Stage<'_>,
    limits: &Limits,
    failed: &mut Failed,
    st: &mut StepStats,
) -> Live {
    let keep_originals = !failed.transformed && !failed.originals.is_empty();
    let mut next = Live::with_capacity(live.len());
    for ((event, m), v) in live.into_pairs().zip(verdicts) {
        let outputs = v.and_then(|outputs| {
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
        });
        match outputs {
            Ok(outputs) if outputs.is_empty() => st.dropped += 1,
            Ok(outputs) => {
                for out in outputs {
                    next.push(
                        derive(&event, out),
                        Meta {
                            slot: m.slot,
                            routes: m.routes.clone(),
                        },
                    );
                }
            }
            Err((class, reason)) => {
                failed.fail(&event, m.slot, stage, class, reason);
                st.failed += 1;
            }
        }
        if keep_originals && let slot @ None = &mut failed.originals[m.slot] {
            *slot = Some(Original::Record(to_record(event)));
        }
    }
    failed.transformed = true;
    next
}

/// A route's verdicts: each event goes on with its destinations (none: the
/// default one).
fn apply_route(
    plan: &Plan,
    live: Live,
    verdicts: Vec<Verdict<Vec<String>>>,
    stage: Stage<'_>,
    failed: &mut Failed,
    st: &mut StepStats,
) -> Live {
    let mut next = Live::with_capacity(live.len());
    for ((event, mut m), v) in live.into_pairs().zip(verdicts) {
        let routes = match v {
            Ok(names) if names.is_empty() => match plan.default_destination {
                Some(d) => Ok(vec![d]),
                None => Err((
                    FailureClass::Contract,
                    "route returned no destination and the config has no `routing.default`"
                        .to_owned(),
                )),
            },
            Ok(names) => resolve(plan, &names),
            Err(e) => Err(e),
        };
        match routes {
            Ok(routes) => {
                m.routes = Some(routes);
                next.push(event, m);
            }
            Err((class, reason)) => {
                failed.fail(&event, m.slot, stage, class, reason);
                st.failed += 1;
            }
        }
    }
    next
}

/// One event's result from a step, or why it failed (its class and reason).
type Verdict<T> = Result<T, (FailureClass, String)>;

/// One guest call of a step's kind: [`Instance::filter`], `transform` or `route`.
type Guest<T> = fn(&mut Instance, &[Event], u64) -> Result<Vec<Result<T, Failure>>, CallError>;

fn verdict<T>(r: Result<T, Failure>) -> Verdict<T> {
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

fn to_event(r: Record) -> Event {
    Event {
        partition_key: r.partition_key,
        sequence_number: r.sequence_number,
        sub_sequence_number: r.sub_sequence_number,
        shard_id: r.shard_id,
        arrival_ms: r.arrival_ms,
        data: r.data,
        attributes: r.attributes,
    }
}

fn to_record(e: Event) -> Record {
    Record {
        shard_id: e.shard_id,
        sequence_number: e.sequence_number,
        sub_sequence_number: e.sub_sequence_number,
        partition_key: e.partition_key,
        arrival_ms: e.arrival_ms,
        data: e.data,
        attributes: e.attributes,
    }
}
