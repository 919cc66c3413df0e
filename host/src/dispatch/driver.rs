//! The one driver every destination's requests go through: requests in
//! flight, retries with backoff, the deadline and order.
//!
//! A [`Sink`] plans its outputs into [`Request`]s and sends one at a time,
//! saying what became of each entry; [`deliver`] does the rest:
//!
//! - **In flight**: up to the sink's `max_in_flight` requests at once.
//!   Requests of one lane go one after another, in plan order; lanes, and
//!   requests without one, go in parallel. Every destination is delivered at
//!   once (the caller joins one `deliver` per destination).
//! - **Retries**: entries the destination reports as worth resending
//!   ([`Verdict::Retry`]) are sent again until each has failed
//!   [`MAX_ATTEMPTS`] times (in at most [`MAX_ROUNDS`] sends of a request),
//!   after a backoff of 50 ms × 2^(round − 1) (at most 800 ms) with ±50 %
//!   jitter; with
//!   them, the later entries of their order key that were already taken, so
//!   that each key's last copies stay in order.
//! - **Order**: once an entry of an order key is not delivered, every later
//!   entry of that key (in later requests) is held back, not sent.
//! - **Deadline**: nothing is sent, and no backoff waits, past it; what was
//!   not delivered by then fails, to be retried.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;

use super::SendStats;
use crate::destination::{Request, SendFailure, Sink, Verdict};
use crate::outcome::Routed;

/// Times an entry may fail (as worth resending) before it is given up.
pub const MAX_ATTEMPTS: u32 = 4;

/// Sends of one planned request at most, its resends included. An entry
/// resent after an earlier entry of its key failed ("again") does not use
/// up its own attempts, so a request whose entries keep failing here and
/// there still gets every entry through; this bounds the rounds.
pub const MAX_ROUNDS: u32 = 16;

/// What was not delivered before the deadline is told so.
const PAST_DEADLINE: &str = "not delivered before the invocation's deadline";

/// Delivers `outputs` (in input order) through `sink`; returns the outputs
/// not delivered, and what it took.
pub async fn deliver(
    sink: &dyn Sink,
    outputs: &[&Routed],
    deadline: Option<Instant>,
) -> (Vec<SendFailure>, SendStats) {
    let started = Instant::now();
    let mut stats = SendStats {
        bytes: outputs.iter().map(|r| r.record.data.len()).sum(),
        ..SendStats::default()
    };
    let mut requests = sink.plan(outputs);
    let max_in_flight = sink.max_in_flight().max(1);
    // Each request waits for the one before it in its lane.
    let mut lane_tail: std::collections::HashMap<u64, usize> = Default::default();
    let after: Vec<Option<usize>> = requests
        .iter()
        .enumerate()
        .map(|(j, r)| r.lane.and_then(|lane| lane_tail.insert(lane, j)))
        .collect();
    let mut done = vec![false; requests.len()];
    let mut begun = vec![false; requests.len()];
    let mut failed_keys: HashSet<u64> = HashSet::new();
    let mut failures: Vec<SendFailure> = Vec::new();
    let mut in_flight = FuturesUnordered::new();
    loop {
        let mut progressed = true;
        while progressed && in_flight.len() < max_in_flight {
            progressed = false;
            for j in 0..requests.len() {
                if in_flight.len() >= max_in_flight {
                    break;
                }
                if begun[j] || after[j].is_some_and(|p| !done[p]) {
                    continue;
                }
                begun[j] = true;
                progressed = true;
                // Past the deadline, a request is still tried once: what is
                // ready at once (a local write) is delivered, the rest fails.
                let request = hold_back(
                    std::mem::take(&mut requests[j]),
                    &failed_keys,
                    outputs,
                    &mut failures,
                );
                if request.entries.is_empty() {
                    done[j] = true;
                    continue;
                }
                in_flight.push(async move {
                    let sent = send_with_retries(sink, outputs, request, deadline).await;
                    (j, sent)
                });
                stats.peak_in_flight = stats.peak_in_flight.max(in_flight.len());
            }
        }
        let Some((j, sent)) = in_flight.next().await else {
            break;
        };
        done[j] = true;
        stats.requests += sent.requests;
        for (output, key, verdict) in sent.entries {
            let (reason, for_good) = match verdict {
                Verdict::Taken => continue,
                Verdict::Refused(reason) => (reason, true),
                Verdict::Retry(reason) | Verdict::Failed(reason) => (reason, false),
            };
            failed_keys.insert(key);
            failures.push(SendFailure {
                output,
                reason,
                for_good,
            });
        }
    }
    failures.sort_by_key(|f| f.output);
    failures.dedup_by_key(|f| f.output);
    stats.failed = failures.len();
    stats.duration = started.elapsed();
    (failures, stats)
}

/// `request` less the entries whose key already failed (each failed, held
/// back, into `failures`).
fn hold_back(
    request: Request,
    failed_keys: &HashSet<u64>,
    outputs: &[&Routed],
    failures: &mut Vec<SendFailure>,
) -> Request {
    if failed_keys.is_empty() || !request.keys.iter().any(|k| failed_keys.contains(k)) {
        return request;
    }
    let mut kept = Request {
        lane: request.lane,
        attempt: request.attempt,
        ..Request::default()
    };
    for (&i, &key) in request.entries.iter().zip(&request.keys) {
        if failed_keys.contains(&key) {
            failures.push(SendFailure {
                output: i,
                reason: format!(
                    "not sent: an earlier output of `{}` with the same order key was not delivered",
                    outputs[i].record.shard_id
                ),
                for_good: false,
            });
        } else {
            kept.entries.push(i);
            kept.keys.push(key);
        }
    }
    kept
}

/// What became of one planned request, after its resends.
struct Sent {
    /// Per entry: its output, its order key, its last verdict.
    entries: Vec<(usize, u64, Verdict)>,
    /// Requests made (the first send and each resend).
    requests: usize,
}

/// Sends `request`, then resends what the destination says is worth it
/// (with the later entries of their keys that it took), with backoff.
async fn send_with_retries(
    sink: &dyn Sink,
    outputs: &[&Routed],
    mut request: Request,
    deadline: Option<Instant>,
) -> Sent {
    let mut last: Vec<(usize, u64, Verdict)> = request
        .entries
        .iter()
        .zip(&request.keys)
        .map(|(&i, &k)| (i, k, Verdict::Failed(PAST_DEADLINE.into())))
        .collect();
    // Per entry of the request being sent: its place in `last` (a resend
    // carries a subsequence of the first request's entries).
    let mut slots: Vec<usize> = (0..last.len()).collect();
    // Per entry (by slot): how often the destination failed it.
    let mut fails = vec![0u32; last.len()];
    let mut requests = 0;
    for attempt in 1..=MAX_ROUNDS {
        request.attempt = attempt;
        requests += 1;
        let verdicts = send_once(sink, outputs, &request, deadline).await;
        let mut retry = vec![false; request.entries.len()];
        for (pos, verdict) in verdicts.into_iter().enumerate() {
            let at = slots[pos];
            if matches!(verdict, Verdict::Retry(_)) {
                fails[at] += 1;
                retry[pos] = fails[at] < MAX_ATTEMPTS;
            }
            last[at].2 = verdict;
        }
        if !retry.contains(&true) || attempt == MAX_ROUNDS {
            break;
        }
        // Resend the entries to retry, and after each the later entries of
        // its key that were taken: their last copy stays in order.
        let mut next = Request {
            lane: request.lane,
            ..Request::default()
        };
        let mut next_slots = Vec::new();
        let mut retried_keys = HashSet::new();
        for pos in 0..request.entries.len() {
            let key = request.keys[pos];
            let again = !retry[pos] && retried_keys.contains(&key);
            if retry[pos] {
                retried_keys.insert(key);
            }
            if retry[pos] || again {
                next.entries.push(request.entries[pos]);
                next.keys.push(key);
                next_slots.push(slots[pos]);
                let resent_before = request.resent.get(pos).copied().unwrap_or(false);
                next.resent.push(again || (resent_before && retry[pos]));
            }
        }
        let pause = backoff(attempt);
        if deadline.is_some_and(|at| Instant::now() + pause >= at) {
            break;
        }
        tracing::warn!(destination = %sink.name(), attempt, entries = next.entries.len(), "entries failed; resending");
        tokio::time::sleep(pause).await;
        request = next;
        slots = next_slots;
    }
    Sent {
        entries: last,
        requests,
    }
}

/// One send of `request`, cut at `deadline`; one verdict per entry.
async fn send_once(
    sink: &dyn Sink,
    outputs: &[&Routed],
    request: &Request,
    deadline: Option<Instant>,
) -> Vec<Verdict> {
    let send = sink.send(outputs, request);
    let mut verdicts = match deadline {
        Some(at) => tokio::time::timeout_at(at.into(), send)
            .await
            .unwrap_or_else(|_| vec![Verdict::Failed(PAST_DEADLINE.into()); request.entries.len()]),
        None => send.await,
    };
    // A sink that answers for fewer entries leaves the rest undelivered.
    verdicts.resize(
        request.entries.len(),
        Verdict::Failed(format!("`{}` gave no answer for the entry", sink.name())),
    );
    verdicts
}

/// The pause before resend `attempt + 1`: 50 ms × 2^(attempt − 1), at most
/// 800 ms, with
/// ±50 % jitter, so that many failed requests do not come back at once.
fn backoff(attempt: u32) -> Duration {
    let base = 50u64 << (attempt - 1).min(4);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    // A cheap spread of the clock's low bits over 0.5 to 1.5.
    let spread = 500 + u64::from(nanos.wrapping_mul(2_654_435_761) % 1000);
    Duration::from_millis(base * spread / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_within_its_jitter() {
        for attempt in 1..=8 {
            let base = 50u64 << (attempt - 1).min(4);
            let d = backoff(attempt).as_millis() as u64;
            assert!((base / 2..=base * 3 / 2).contains(&d), "{attempt}: {d}");
        }
    }
}
