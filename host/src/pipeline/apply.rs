//! A step's verdicts applied to the live events: kept, dropped, replaced by
//! a transform's outputs (within the step's limits, with the lineage of the
//! event they came from) or given their destinations by a route.

use super::{Failed, Live, Meta, Stage};
use crate::config::{DestinationId, Limits, Plan};
use crate::event::Record;
use crate::outcome::{FailureClass, Original, StepStats};
use crate::plugin::{Decision, Event, Failure, Output};

/// A step's verdicts, event by event: a filter keeps or drops it; a
/// transform replaces it by its outputs (none: dropped), within the step's
/// limits; a route gives it its destinations (none: the default one). A
/// failed event fails its input record. The first transform consumes the
/// original events: they are kept (moved, not copied) for dead letters.
pub(super) fn apply(
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
pub(super) type Verdict = Result<Decision, (FailureClass, String)>;

/// A plugin's answer for one event as a [`Verdict`].
pub(super) fn verdict(r: Result<Decision, Failure>) -> Verdict {
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
