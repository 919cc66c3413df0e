//! The outcome ledger: what became of every record of a batch, and the one
//! place that decides how a failure changes it.
//!
//! Every input record ends up exactly once: as routed outputs ([`Routed`]),
//! filtered, or a [`RecordFailure`] filed by its action (retried through
//! Lambda, dead-lettered, or dropped). The rules live here, not in the layers
//! that find failures (the pipeline, the destinations, dispatch):
//!
//! - **First failure wins.** A record fails at most once; a later failure of
//!   the same record is ignored ([`BatchOutcome::fail_all`]).
//! - **Input order.** Failures, dead letters and drops stay sorted by the
//!   record's position in the event.
//! - **Per-shard cut-off.** Lambda redelivers a shard from its first retried
//!   record on, so nothing after it on that shard may be delivered now
//!   ([`BatchOutcome::hold_back`]), and a destination that fails an output
//!   stops sending that shard ([`ShardCutoff`]). [`BatchOutcome::checkpoints`]
//!   gives, per shard, the record Lambda resumes from.

use std::time::Duration;

use crate::config::{DestinationId, OnError};
use crate::event::{Record, SourceStats};

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

    /// The action for a failure of this class under `policy`: a plugin that
    /// asks for a retry gets one, whatever the policy, and so does a record
    /// the invocation had no time left for.
    pub fn action(self, policy: OnError) -> OnError {
        match self {
            FailureClass::Retry | FailureClass::Deadline => OnError::Retry,
            _ => policy,
        }
    }
}

/// One input record that failed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecordFailure {
    /// Its position in the event's `Records` (its slot).
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
    pub duration: Duration,
    /// Calls of the step's shadow (one per batch the step ran).
    pub shadow_calls: usize,
    /// Events the shadow decided otherwise than the step (another
    /// decision, other outputs, another failure).
    pub shadow_mismatches: usize,
    /// Events of shadow calls that failed as a whole (a trap, a timeout, a
    /// broken contract).
    pub shadow_failures: usize,
}

/// What became of a batch.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// Records in the event (decoded or not; after `[source]`, one per user
    /// record or log event).
    pub records_in: usize,
    /// What `[source]` made of the event's Kinesis records.
    pub source: SourceStats,
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
    /// transform touched is its own routed output). A record that fails after
    /// the steps (a destination refuses it for good) is dead-lettered from here.
    pub originals: Vec<Option<Original>>,
}

/// Whether the dead letters have been sent when [`BatchOutcome::hold_back`]
/// cuts a shard: sent ones stay sent (and their records are not held back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetters {
    /// Not sent yet: those after a shard's first retried record are held back.
    Pending,
    /// Already delivered.
    Sent,
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

    /// Whether input record `slot` has failed (retried, dead-lettered or dropped).
    pub fn has_failed(&self, slot: usize) -> bool {
        let find = |list: &[RecordFailure]| list.binary_search_by_key(&slot, |f| f.index).is_ok();
        find(&self.failures)
            || find(&self.dropped)
            || self
                .dead_letters
                .binary_search_by_key(&slot, |d| d.failure.index)
                .is_ok()
    }

    /// Files `failures` in the ledger: the first failure of a record wins
    /// (one that already failed, in this call or before, keeps its first
    /// failure); each goes by its action to `failures`, `dead_letters`
    /// (with its original; without one it is retried, which never loses a
    /// record) or `dropped`; its routed outputs are removed; every list stays
    /// in input order. Returns whether any record is now retried: the caller
    /// then holds back what follows it on its shard ([`BatchOutcome::hold_back`]).
    pub fn fail_all(&mut self, failures: impl IntoIterator<Item = RecordFailure>) -> bool {
        let mut new: Vec<RecordFailure> = failures.into_iter().collect();
        // Stable: of two failures of one record, the one given first stays.
        new.sort_by_key(|f| f.index);
        new.dedup_by_key(|f| f.index);
        new.retain(|f| !self.has_failed(f.index));
        if new.is_empty() {
            return false;
        }
        let mut retried = false;
        for f in &new {
            let original = match f.action {
                OnError::DeadLetter => self.take_original(f.index),
                OnError::Retry | OnError::Drop => None,
            };
            match (f.action, original) {
                (OnError::Drop, _) => self.dropped.push(f.clone()),
                (OnError::DeadLetter, Some(original)) => self.dead_letters.push(DeadLetter {
                    failure: f.clone(),
                    original,
                }),
                (OnError::Retry, _) | (OnError::DeadLetter, None) => {
                    retried = true;
                    self.failures.push(RecordFailure {
                        action: OnError::Retry,
                        ..f.clone()
                    });
                }
            }
        }
        self.routed
            .retain(|r| new.binary_search_by_key(&r.slot, |f| f.index).is_err());
        self.failures.sort_by_key(|f| f.index);
        self.dead_letters.sort_by_key(|d| d.failure.index);
        self.dropped.sort_by_key(|f| f.index);
        retried
    }

    /// Per shard, removes the outputs, dead letters (unless already
    /// [`DeadLetters::Sent`]) and drops of every record that comes after the
    /// shard's first retried record, and counts those records in
    /// `held_back`. Lambda redelivers them from the checkpoint, so sending
    /// them now would break the shard's order.
    pub fn hold_back(&mut self, dead_letters: DeadLetters) {
        let mut cutoff = ShardCutoff::default();
        for f in &self.failures {
            if let Some(shard) = &f.shard_id {
                cutoff.fail(shard, f.index);
            }
        }
        if cutoff.is_empty() {
            return;
        }
        let cutoff = cutoff.into_owned();
        let mut held_back: Vec<usize> = Vec::new();
        let mut keep = |shard: Option<&str>, slot: usize| {
            let cut = shard.is_some_and(|s| cutoff.cuts(s, slot));
            if cut {
                held_back.push(slot);
            }
            !cut
        };
        self.routed
            .retain(|r| keep(Some(&r.record.shard_id), r.slot));
        if dead_letters == DeadLetters::Pending {
            self.dead_letters
                .retain(|d| keep(d.failure.shard_id.as_deref(), d.failure.index));
        }
        self.dropped
            .retain(|f| keep(f.shard_id.as_deref(), f.index));
        held_back.sort_unstable();
        held_back.dedup();
        self.held_back += held_back.len();
    }

    /// Per shard, in order of first appearance, the first retried record:
    /// where Lambda resumes the shard (the partial batch response's
    /// `itemIdentifier` is its sequence number).
    pub fn checkpoints(&self) -> impl Iterator<Item = &RecordFailure> {
        let mut seen: Vec<&str> = Vec::new();
        self.failures.iter().filter(move |f| {
            let shard = f.shard_id.as_deref().unwrap_or("");
            if seen.contains(&shard) {
                false
            } else {
                seen.push(shard);
                true
            }
        })
    }
}

/// Per shard, the position of its first failure: what comes after it on that
/// shard is cut off, because Lambda redelivers the shard from there.
///
/// A batch holds few shards (Lambda's event source mapping sends one), so
/// this is a short list, not a map. Destinations use it to stop sending a
/// shard once one of its outputs failed; the ledger uses it to hold back
/// what follows a shard's first retried record.
#[derive(Debug, Clone, Default)]
pub struct ShardCutoff<S = String> {
    first: Vec<(S, usize)>,
}

impl<'a> ShardCutoff<&'a str> {
    /// Notes a failure of `shard` at `position`; the lowest position per shard stays.
    pub fn fail(&mut self, shard: &'a str, position: usize) {
        match self.first.iter_mut().find(|(s, _)| *s == shard) {
            Some((_, first)) => *first = (*first).min(position),
            None => self.first.push((shard, position)),
        }
    }

    /// The same cut-offs, owning their shard ids.
    pub fn into_owned(self) -> ShardCutoff<String> {
        ShardCutoff {
            first: self
                .first
                .into_iter()
                .map(|(s, p)| (s.to_owned(), p))
                .collect(),
        }
    }
}

impl<S: AsRef<str>> ShardCutoff<S> {
    /// The position of `shard`'s first failure, if it has failed.
    pub fn first(&self, shard: &str) -> Option<usize> {
        self.first
            .iter()
            .find(|(s, _)| s.as_ref() == shard)
            .map(|&(_, p)| p)
    }

    /// Whether `shard` has failed at all: nothing more of it is sent.
    pub fn is_stopped(&self, shard: &str) -> bool {
        self.first(shard).is_some()
    }

    /// Whether `position` of `shard` comes after the shard's first failure.
    pub fn cuts(&self, shard: &str, position: usize) -> bool {
        self.first(shard).is_some_and(|first| position > first)
    }

    /// Whether no shard has failed.
    pub fn is_empty(&self) -> bool {
        self.first.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(index: usize, shard: &str, action: OnError) -> RecordFailure {
        RecordFailure {
            index,
            shard_id: Some(shard.into()),
            sequence_number: Some(format!("{}", 100 + index)),
            stage: "step".into(),
            plugin: None,
            class: FailureClass::Invalid,
            reason: format!("bad #{index}"),
            action,
        }
    }

    fn routed(slot: usize, shard: &str) -> Routed {
        Routed {
            record: Record {
                shard_id: shard.into(),
                sequence_number: format!("{}", 100 + slot),
                sub_sequence_number: None,
                partition_key: "pk".into(),
                arrival_ms: 0,
                data: b"{}".to_vec(),
                attributes: Vec::new(),
            },
            slot,
            output_index: 0,
            destinations: vec![0],
            host_attributes: Vec::new(),
        }
    }

    fn outcome(shards: &[&str]) -> BatchOutcome {
        BatchOutcome {
            records_in: shards.len(),
            routed: shards
                .iter()
                .enumerate()
                .map(|(i, s)| routed(i, s))
                .collect(),
            ..BatchOutcome::default()
        }
    }

    #[test]
    fn the_first_failure_of_a_record_wins() {
        let mut o = outcome(&["a", "a", "a"]);
        let mut late = failure(1, "a", OnError::Drop);
        late.reason = "late".into();
        assert!(o.fail_all([failure(1, "a", OnError::Retry), late.clone()]));
        assert!(!o.fail_all([late]));
        assert_eq!(o.failures.len(), 1);
        assert_eq!(o.failures[0].reason, "bad #1");
        assert!(o.dropped.is_empty());
        assert_eq!(o.routed.iter().map(|r| r.slot).collect::<Vec<_>>(), [0, 2]);
    }

    #[test]
    fn failures_are_filed_by_action_in_input_order() {
        let mut o = outcome(&["a", "a", "a", "a"]);
        o.fail_all([
            failure(3, "a", OnError::Drop),
            failure(2, "a", OnError::DeadLetter),
            failure(0, "a", OnError::Drop),
        ]);
        assert_eq!(
            o.dropped.iter().map(|f| f.index).collect::<Vec<_>>(),
            [0, 3]
        );
        // Untouched by any transform: its routed output is its original.
        assert_eq!(o.dead_letters.len(), 1);
        assert!(
            matches!(&o.dead_letters[0].original, Original::Record(r) if r.sequence_number == "102")
        );
        assert!(o.failures.is_empty());
    }

    #[test]
    fn a_dead_letter_without_its_original_is_retried() {
        let mut o = BatchOutcome {
            records_in: 1,
            ..BatchOutcome::default()
        };
        assert!(o.fail_all([failure(0, "a", OnError::DeadLetter)]));
        assert_eq!(o.failures[0].action, OnError::Retry);
    }

    #[test]
    fn a_retried_record_holds_back_what_follows_it_on_its_shard_only() {
        let mut o = outcome(&["a", "b", "a", "a", "b"]);
        assert!(!o.fail_all([failure(4, "b", OnError::Drop)]));
        assert!(o.fail_all([failure(2, "a", OnError::Retry)]));
        o.hold_back(DeadLetters::Pending);
        assert_eq!(o.routed.iter().map(|r| r.slot).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(o.held_back, 1);
        assert_eq!(o.dropped.len(), 1, "shard b is not cut");
        assert_eq!(
            o.checkpoints()
                .map(|f| f.sequence_number.as_deref().unwrap())
                .collect::<Vec<_>>(),
            ["102"]
        );
    }

    #[test]
    fn sent_dead_letters_stay_sent() {
        let mut o = outcome(&["a", "a", "a"]);
        o.fail_all([failure(2, "a", OnError::DeadLetter)]);
        o.fail_all([failure(0, "a", OnError::Retry)]);
        o.hold_back(DeadLetters::Sent);
        assert_eq!(o.dead_letters.len(), 1);
        assert_eq!(o.held_back, 1, "only record 1's output is held back");
        o.hold_back(DeadLetters::Pending);
        assert!(o.dead_letters.is_empty());
    }

    #[test]
    fn one_checkpoint_per_shard_at_its_first_failure() {
        let mut o = outcome(&["a", "b", "a", "b"]);
        o.fail_all([
            failure(3, "b", OnError::Retry),
            failure(1, "b", OnError::Retry),
            failure(2, "a", OnError::Retry),
        ]);
        let points: Vec<_> = o.checkpoints().map(|f| f.index).collect();
        assert_eq!(points, [1, 2]);
    }

    #[test]
    fn a_cutoff_keeps_each_shards_lowest_position() {
        let mut c = ShardCutoff::default();
        c.fail("a", 5);
        c.fail("a", 2);
        c.fail("b", 7);
        assert_eq!(c.first("a"), Some(2));
        assert!(c.cuts("a", 3) && !c.cuts("a", 2) && !c.cuts("b", 6));
        assert!(c.is_stopped("b") && !c.is_stopped("c"));
        assert!(c.into_owned().cuts("b", 8));
    }
}
