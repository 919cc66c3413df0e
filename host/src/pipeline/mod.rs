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

mod apply;
mod shadow;
mod step;
mod window;

use std::time::Instant;

use crate::config::{DestinationId, OnError, Plan};
use crate::event::{Batch, Record};
use crate::outcome::{BatchOutcome, FailureClass, Original, RecordFailure, Routed, StepStats};
use crate::plugin::{Event, Plugin, PluginError, Runtime};
use crate::tables::Tables;
use step::Step;
pub use window::Folds;

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
    /// Its lookup tables must be local files (they are read here).
    pub fn load(runtime: &Runtime, plan: Plan) -> Result<Pipeline, PluginError> {
        let tables = Tables::load_local(&plan).map_err(|e| PluginError::Table(format!("{e:#}")))?;
        Pipeline::load_with(plan, &tables, |step| runtime.load(step))
    }

    /// Like [`Pipeline::load`], with `load` making each step's [`Plugin`]
    /// (the Lambda cold start fetches plugins from S3 first), then its
    /// shadow's: in the order of [`Plan::plugin_steps`]. Each plugin may read
    /// the `tables` its step was granted.
    pub fn load_with(
        plan: Plan,
        tables: &Tables,
        mut load: impl FnMut(&crate::config::StepPlan) -> Result<Plugin, PluginError>,
    ) -> Result<Pipeline, PluginError> {
        let mut steps = Vec::with_capacity(plan.steps.len());
        for step in &plan.steps {
            let mut plugin = load(step)?;
            plugin.grant(tables.granted(step));
            let instance = plugin.instantiate()?;
            let mut s = Step::new(step.kind, step.on_error, plugin, instance);
            if let Some(sh) = &step.shadow {
                let mut plugin = load(&sh.step)?;
                plugin.grant(tables.granted(&sh.step));
                let instance = plugin.instantiate()?;
                s.shadow = Some(shadow::Shadow::new(plugin, instance, sh.time_share));
            }
            steps.push(s);
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
            if let Some(shadow) = &mut step.shadow {
                shadow.reset();
            }
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
    pub fn run_until(&mut self, batch: Batch, deadline: Option<Instant>) -> BatchOutcome {
        if let Some(deadline) = deadline.filter(|_| !self.limits_checked) {
            self.limits_checked = true;
            self.check_time_limits(deadline);
        }
        let mut outcome = BatchOutcome {
            records_in: batch.len(),
            source: batch.source,
            ..BatchOutcome::default()
        };
        let (mut failed, mut live) = self.admit(batch);
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
            outcome.steps.push(st);
        }
        self.deliver(live, failed, &mut outcome);
        outcome
    }

    /// The batch's records as the first step's events, and its records
    /// that did not decode failed already (class `decode`).
    fn admit(&self, batch: Batch) -> (Failed, Live) {
        let records_in = batch.len();
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
                action: self.plan.default_on_error(),
            });
        }
        let live = Live {
            events: batch.records.into_iter().map(Event::from).collect(),
            meta: batch
                .slot
                .into_iter()
                .map(|slot| Meta { slot, routes: None })
                .collect(),
        };
        (failed, live)
    }

    /// What came out of the last step, routed (to the destinations a route
    /// chose, or the default one) and numbered per record; every input
    /// record filed in `outcome` as routed, filtered or failed.
    fn deliver(&self, live: Live, mut failed: Failed, outcome: &mut BatchOutcome) {
        let records_in = outcome.records_in;
        outcome.routed.reserve(live.len());
        let mut produced = vec![false; records_in];
        let mut last_slot = usize::MAX;
        let mut output_index = 0u32;
        for (event, m) in live.into_pairs() {
            if failed.slots[m.slot].is_some() {
                continue;
            }
            let Some(destinations) = m
                .routes
                .or_else(|| self.plan.default_destination.map(|d| vec![d]))
            else {
                let stage = Stage {
                    name: "routing",
                    plugin: None,
                    on_error: self.plan.default_on_error(),
                };
                failed.fail(
                    &event,
                    m.slot,
                    stage,
                    FailureClass::Contract,
                    "no `route` step chose a destination and the config has no `routing.default`"
                        .into(),
                );
                continue;
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
