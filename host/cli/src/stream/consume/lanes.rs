//! The invoking side of the mapping: each lane of a shard batched as the
//! ESM batches (size, window, payload cap), invoked through the Lambda
//! entry point, and its failures handled as the ESM handles them (the
//! partial batch response, bisection, retries with backoff, giving up on
//! records too old or out of retries).

use std::time::{Duration, Instant};

use host::app::App;
use host::destination::Destination;

use super::on_failure::discard;
use super::{ConsumeOptions, ConsumeReport, Lane, ShardRun, State, now_ms};
use crate::stream::esm::{self, Condition, EventSource};

/// What the lanes' work shares: the pipeline, the mapping's settings, the
/// event's source, the on-failure destination and the running totals.
pub(super) struct Run<'a> {
    /// The loaded pipeline.
    pub(super) app: &'a mut App,
    /// The mapping's settings.
    pub(super) options: &'a ConsumeOptions,
    /// The stream, as the events name it.
    pub(super) source: &'a EventSource,
    /// Where records given up on go.
    pub(super) on_failure: &'a Option<Destination>,
    /// The totals so far.
    pub(super) report: &'a mut ConsumeReport,
}

/// What comes after a batch whose records did not all succeed.
enum Retry {
    /// Go on with this lane now (bisected, or gave up on records).
    Now,
    /// The lane backs off.
    Later,
}

/// Invokes the pipeline on every lane of `shard` that has a batch ready.
/// Returns whether anything was invoked or discarded.
pub(super) async fn run_lanes(run: &mut Run<'_>, shard: &mut ShardRun) -> Result<bool, String> {
    let mut worked = false;
    let no_more_coming = shard.state == State::Drained;
    let shard_id = shard.info.id.clone();
    let options = run.options;
    for lane in &mut shard.lanes {
        // A few batches per lane per round, so that polling goes on.
        for _ in 0..16 {
            let expired = expire(run, &shard_id, lane).await?;
            shard.done += expired;
            worked |= expired > 0;
            match end_window(run, &shard_id, lane).await {
                Some(Retry::Now) => {
                    worked = true;
                    continue;
                }
                Some(Retry::Later) => break,
                None => {}
            }
            if !lane.ready(Instant::now(), options.batch_window, no_more_coming) {
                break;
            }
            worked = true;
            let n = lane.batch_len(options.tumbling_window);
            let (done, function_error) = invoke(run, &shard_id, lane, n).await;
            if done > 0 {
                lane.pop(done);
                run.report.records += done;
                shard.done += done;
                lane.invocations = u32::from(done < n);
            }
            if done == n {
                lane.settled(options.batch_size);
                lane.not_before = None;
                continue;
            }
            // Records done..n failed: bisect, retry or give up.
            let given_up = lane.queue.len();
            let next = after_failure(run, &shard_id, lane, n - done, function_error).await?;
            shard.done += given_up - lane.queue.len();
            if let Retry::Later = next {
                break;
            }
        }
    }
    Ok(worked)
}

/// Gives up on the records at the front of `lane` older than
/// `--max-record-age`; how many.
async fn expire(run: &mut Run<'_>, shard_id: &str, lane: &mut Lane) -> Result<usize, String> {
    let Some(max_age) = run.options.max_record_age else {
        return Ok(0);
    };
    let now_ms = now_ms();
    let too_old = lane
        .queue
        .iter()
        .take_while(|p| now_ms - p.record.arrival_ms > max_age.as_millis() as i64)
        .count();
    if too_old == 0 {
        return Ok(0);
    }
    let invocations = lane.invocations;
    let gone = lane.pop(too_old);
    discard(
        run,
        shard_id,
        &gone,
        Condition::RecordAgeExceeded,
        invocations,
        false,
    )
    .await?;
    lane.settled(run.options.batch_size);
    Ok(gone.len())
}

/// Invokes the function on the first `n` records of `lane`: how many of
/// them are done (those before the first failure it reported), and whether
/// the rest failed by a function error.
async fn invoke(run: &mut Run<'_>, shard_id: &str, lane: &mut Lane, n: usize) -> (usize, bool) {
    let entries = lane.queue.iter().take(n).map(|p| p.entry.as_slice());
    let event = match run.options.tumbling_window {
        None => esm::event(entries),
        Some(length) => {
            let first = lane.queue.front().map_or(0, |p| p.record.arrival_ms);
            let window = lane.window.get_or_insert_with(|| {
                let start_ms = esm::window_start(first, Some(length));
                esm::OpenWindow {
                    start_ms,
                    end_ms: start_ms + length.as_millis() as i64,
                    state: Default::default(),
                }
            });
            esm::window_event(entries, window, shard_id, run.source, false)
        }
    };
    let deadline = Instant::now() + run.options.function_timeout;
    run.report.invocations += 1;
    lane.invocations += 1;
    match host::lambda::invoke(run.app, &event, Some(deadline)).await {
        Ok(invoked) => {
            // The state the function returned is the window's from now on
            // (a function error keeps the one it had).
            if let (Some(window), Some(state)) = (&mut lane.window, invoked.state) {
                window.state = state;
            }
            run.report.delivered += invoked.report.dispatch.delivered.iter().sum::<usize>();
            let failed: Vec<&str> = invoked
                .response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.as_deref().unwrap_or(""))
                .collect();
            if failed.is_empty() {
                return (n, false);
            }
            run.report.partial_failures += 1;
            let first = lane
                .queue
                .iter()
                .take(n)
                .position(|p| failed.contains(&p.record.sequence_number.as_str()));
            match first {
                Some(i) => (i, false),
                // Not a sequence number of the batch: Lambda retries the
                // whole batch.
                None => (0, true),
            }
        }
        Err(e) => {
            run.report.function_errors += 1;
            tracing::warn!(shard = %shard_id, records = n, error = %e, "function error; the batch will be retried");
            (0, true)
        }
    }
}

/// With tumbling windows: the last invocation of the lane's window once it
/// is over (its time has passed, or the lane's next record belongs to a
/// later window), with the window's state and no records, as the event
/// source mapping sends it. `None` when there is none to make; a function
/// error keeps the window open and backs the lane off.
async fn end_window(run: &mut Run<'_>, shard_id: &str, lane: &mut Lane) -> Option<Retry> {
    let length = run.options.tumbling_window?;
    let window = lane.window.as_ref()?;
    let next_window = lane
        .queue
        .front()
        .map(|p| esm::window_start(p.record.arrival_ms, Some(length)));
    let over = match next_window {
        Some(start) => start != window.start_ms,
        // A record may still come in the window: a little grace.
        None => now_ms() >= window.end_ms + WINDOW_GRACE_MS,
    };
    if !over || lane.not_before.is_some_and(|t| Instant::now() < t) {
        return None;
    }
    let event = esm::window_event([], window, shard_id, run.source, true);
    let deadline = Instant::now() + run.options.function_timeout;
    run.report.invocations += 1;
    match host::lambda::invoke(run.app, &event, Some(deadline)).await {
        Ok(_) => {
            run.report.windows += 1;
            lane.window = None;
            Some(Retry::Now)
        }
        Err(e) => {
            run.report.function_errors += 1;
            tracing::warn!(shard = %shard_id, error = %e, "the window's last invocation failed; it will be retried");
            lane.retries += 1;
            let wait = Duration::from_millis((50u64 << lane.retries.min(6)).min(2_000));
            lane.not_before = Some(Instant::now() + wait);
            Some(Retry::Later)
        }
    }
}

/// How long after a window's end a lane with nothing queued waits for a
/// late record of the window before ending it.
const WINDOW_GRACE_MS: i64 = 500;

/// The first `failed` records of `lane` failed: halve the batch
/// (`--bisect-on-error`), give up on them (`--max-retries` reached), or back
/// off before the next try.
async fn after_failure(
    run: &mut Run<'_>,
    shard_id: &str,
    lane: &mut Lane,
    failed: usize,
    function_error: bool,
) -> Result<Retry, String> {
    let options = run.options;
    if options.bisect_on_error && failed > 1 {
        lane.limit = failed.div_ceil(2);
        tracing::info!(shard = %shard_id, records = failed, next = lane.limit, "bisecting the failed batch");
        return Ok(Retry::Now);
    }
    lane.retries += 1;
    if options.max_retries.is_some_and(|max| lane.retries > max) {
        let invocations = lane.invocations;
        let gone = lane.pop(failed);
        discard(
            run,
            shard_id,
            &gone,
            Condition::RetryAttemptsExhausted,
            invocations,
            function_error,
        )
        .await?;
        lane.settled(options.batch_size);
        lane.not_before = None;
        return Ok(Retry::Now);
    }
    let wait = Duration::from_millis((50u64 << lane.retries.min(6)).min(2_000));
    lane.not_before = Some(Instant::now() + wait);
    Ok(Retry::Later)
}
