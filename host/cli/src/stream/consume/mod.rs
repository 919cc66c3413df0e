//! `sluice consume`: Lambda's Kinesis event source mapping (ESM), emulated
//! against any Kinesis endpoint, running the pipeline through the same code
//! path as the Lambda function ([`host::lambda::invoke`], with the event JSON
//! the ESM would send).
//!
//! What it does as the ESM does (AWS defaults in brackets):
//!
//! - **Batches** per shard: up to `--batch-size` records [100], waiting up to
//!   `--batch-window` for a full batch [0: invoke as soon as records come],
//!   never over the 6 MB invocation payload.
//! - **Starting position** `trim-horizon`, `latest` or `at-timestamp:<t>` for
//!   shards without a checkpoint; children of a reshard start at their trim
//!   horizon.
//! - **The partial batch response**: the records before the lowest reported
//!   sequence number are done; the batch is retried from there. A function
//!   error (or a reported sequence number not in the batch) retries the
//!   whole batch.
//! - **Retries**: `--max-retries` [-1: until the record expires];
//!   `--max-record-age` [-1: never discarded for age]; `--bisect-on-error`
//!   halves a failed batch, and halving does not count as a retry. Records
//!   given up on go to `--on-failure` (an SQS queue URL, `s3://bucket/prefix`
//!   or a file) as the ESM's on-failure record (shard, sequence range,
//!   condition), or are only logged when there is none.
//! - **`--parallelization-factor`** [1]: up to 10 lanes per shard, a
//!   partition key always in the same lane, each lane batched, retried and
//!   bisected on its own; the shard's checkpoint is the last record before
//!   the first one any lane still holds, so order holds per key.
//! - **Resharding**: a child shard is read only once its parents are read
//!   to their end and done.
//! - **Checkpoints** in a local file ([`super::checkpoint`]): a restart
//!   resumes after the last record done. Delivery is at least once, as with
//!   Lambda: a batch cut off by a crash is sent again.
//!
//! Throttling (`ProvisionedThroughputExceededException`) backs the shard
//! off; an expired shard iterator is replaced from the last record read; an
//! unknown stream or an endpoint that does not answer ends the run with a
//! message that says so.

mod lanes;
mod on_failure;
mod read;
mod status;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;

use super::checkpoint::{CheckpointFile, ShardCheckpoint, StreamIdentity};
use super::esm::{self, EventSource, StreamRecord};
use super::{Shard, describe};
use host::app::App;
use host::destination::Destination;
pub use on_failure::on_failure_destination;
use read::{parents_done, poll, relist, start_ready_shards};
use status::Status;

/// Lambda's cap on an invocation's payload: 6 MB.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// Most records `GetRecords` returns at once.
const GET_RECORDS_LIMIT: i32 = 10_000;
/// Kinesis allows 5 `GetRecords` per shard per second.
const MIN_POLL_GAP: Duration = Duration::from_millis(200);
/// How often the shard list is read again (to find the children of a reshard).
const RELIST_EVERY: Duration = Duration::from_secs(10);
/// How often, while some shard has caught up with its end.
const RELIST_SOON: Duration = Duration::from_secs(2);

/// Where a shard without a checkpoint starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartingPosition {
    /// The oldest record kept.
    TrimHorizon,
    /// Only records written from now on.
    Latest,
    /// Records from this time on (ms since the epoch).
    AtTimestamp(i64),
}

impl FromStr for StartingPosition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "trim-horizon" | "TRIM_HORIZON" => Ok(StartingPosition::TrimHorizon),
            "latest" | "LATEST" => Ok(StartingPosition::Latest),
            _ => {
                let t = s
                    .strip_prefix("at-timestamp:")
                    .or_else(|| s.strip_prefix("AT_TIMESTAMP:"))
                    .ok_or_else(|| {
                        format!(
                            "`{s}` is not a starting position: use `trim-horizon`, `latest` or \
                             `at-timestamp:<time>` (RFC 3339, or seconds since the epoch)"
                        )
                    })?;
                if let Ok(secs) = t.parse::<f64>() {
                    return Ok(StartingPosition::AtTimestamp((secs * 1000.0) as i64));
                }
                chrono::DateTime::parse_from_rfc3339(t)
                    .map(|d| StartingPosition::AtTimestamp(d.timestamp_millis()))
                    .map_err(|e| format!("`{t}` is not a time (RFC 3339 or epoch seconds): {e}"))
            }
        }
    }
}

/// The mapping's settings.
#[derive(Debug, Clone)]
pub struct ConsumeOptions {
    /// The Kinesis endpoint read (empty: AWS's own): part of the stream's
    /// identity in the checkpoint file.
    pub endpoint: String,
    /// The stream's name.
    pub stream: String,
    /// Where shards without a checkpoint start.
    pub starting_position: StartingPosition,
    /// Most records per batch (1 to 10,000).
    pub batch_size: usize,
    /// How long to gather records before invoking (0 to 300 s).
    pub batch_window: Duration,
    /// Lanes per shard (1 to 10).
    pub parallelization_factor: usize,
    /// Halve a failed batch before retrying it.
    pub bisect_on_error: bool,
    /// Retries before a batch is discarded (`None`: until it expires).
    pub max_retries: Option<u32>,
    /// Records older than this are discarded (`None`: never).
    pub max_record_age: Option<Duration>,
    /// The checkpoint file.
    pub checkpoints: PathBuf,
    /// Stop once every shard is read to its current end and done.
    pub exit_when_idle: bool,
    /// How long to wait before polling a shard that had nothing new.
    pub poll_interval: Duration,
    /// The function's timeout: each invocation's deadline.
    pub function_timeout: Duration,
    /// Print a status line (records/s, lag per shard) to stderr.
    pub status: bool,
    /// Tumbling windows of this length (`TumblingWindowInSeconds`), if any.
    pub tumbling_window: Option<Duration>,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct ConsumeReport {
    /// Kinesis records done (delivered, filtered, dead-lettered or dropped
    /// by the pipeline).
    pub records: usize,
    /// Records given up on (retries exhausted, too old): sent to the
    /// on-failure destination when there is one.
    pub discarded: usize,
    /// Invocations made.
    pub invocations: usize,
    /// Invocations whose partial batch response named records to retry.
    pub partial_failures: usize,
    /// Invocations that failed as a whole (function errors).
    pub function_errors: usize,
    /// Outputs delivered to the pipeline's destinations.
    pub delivered: usize,
    /// Tumbling windows ended (their last invocation made).
    pub windows: usize,
    /// Per shard: records done and the checkpoint, in shard order.
    pub shards: Vec<(String, usize, Option<String>)>,
    /// Time taken.
    pub elapsed: Duration,
}

/// A record waiting for its function call.
struct Pending {
    record: StreamRecord,
    /// Its position among the records read from its shard.
    index: u64,
    /// Its entry in the invocation event.
    entry: Vec<u8>,
}

/// One lane of a shard: records of the partition keys that hash to it.
struct Lane {
    queue: VecDeque<Pending>,
    /// Payload bytes of the queued entries.
    bytes: usize,
    /// Records per batch now: `batch_size`, less after bisection.
    limit: usize,
    /// Failed attempts of the batch at the front (bisection not counted).
    retries: u32,
    /// Calls made on the record at the front.
    invocations: u32,
    /// When the queue last went from empty to not (the batch window).
    since: Option<Instant>,
    /// No call before this (backoff after a failure).
    not_before: Option<Instant>,
    /// The tumbling window the lane is in, with its state so far.
    window: Option<esm::OpenWindow>,
}

impl Lane {
    fn new(limit: usize) -> Lane {
        Lane {
            queue: VecDeque::new(),
            bytes: 0,
            limit,
            retries: 0,
            invocations: 0,
            since: None,
            not_before: None,
            window: None,
        }
    }

    fn push(&mut self, p: Pending) {
        if self.queue.is_empty() {
            self.since = Some(Instant::now());
        }
        self.bytes += p.entry.len() + 1;
        self.queue.push_back(p);
    }

    /// A batch is settled (done, or given up on): the next one starts
    /// afresh, at the full batch size, with no retries counted.
    fn settled(&mut self, batch_size: usize) {
        self.retries = 0;
        self.invocations = 0;
        self.limit = batch_size;
    }

    fn pop(&mut self, n: usize) -> Vec<Pending> {
        let taken: Vec<Pending> = self.queue.drain(..n.min(self.queue.len())).collect();
        self.bytes -= taken.iter().map(|p| p.entry.len() + 1).sum::<usize>();
        if self.queue.is_empty() {
            self.since = None;
        } else if !taken.is_empty() {
            self.since = Some(Instant::now());
        }
        taken
    }

    /// How many records of the front make the next batch: at most `limit`,
    /// within the payload cap (at least one), and with tumbling windows of
    /// `window` only records of the front's window.
    fn batch_len(&self, window: Option<Duration>) -> usize {
        let mut bytes = esm::EVENT_OVERHEAD;
        let mut n = 0;
        let front = self
            .queue
            .front()
            .map(|p| esm::window_start(p.record.arrival_ms, window));
        let same = |p: &&Pending| Some(esm::window_start(p.record.arrival_ms, window)) == front;
        for p in self.queue.iter().take(self.limit).take_while(same) {
            bytes += p.entry.len() + 1;
            if n > 0 && bytes > MAX_PAYLOAD_BYTES {
                break;
            }
            n += 1;
        }
        n
    }

    /// Whether a batch should go now.
    fn ready(&self, now: Instant, window: Duration, no_more_coming: bool) -> bool {
        if self.queue.is_empty() || self.not_before.is_some_and(|t| now < t) {
            return false;
        }
        self.queue.len() >= self.limit
            || self.bytes + esm::EVENT_OVERHEAD >= MAX_PAYLOAD_BYTES
            || no_more_coming
            || self.since.is_none_or(|s| now.duration_since(s) >= window)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Its parents are not done yet.
    Waiting,
    /// Being read.
    Reading,
    /// Read to its end (closed by a reshard): its lanes finish what they hold.
    Drained,
    /// Drained and every record done: its children may start.
    Finished,
}

/// One shard being consumed.
struct ShardRun {
    info: Shard,
    state: State,
    iterator: Option<String>,
    lanes: Vec<Lane>,
    next_index: u64,
    /// Records read whose checkpoint has not passed them, by index.
    recent: VecDeque<(u64, String)>,
    checkpoint: ShardCheckpoint,
    last_read: Option<String>,
    lag_ms: Option<i64>,
    next_poll: Instant,
    throttled: u32,
    /// The last `GetRecords` returned nothing.
    caught_up: bool,
    done: usize,
}

impl ShardRun {
    fn queued(&self) -> usize {
        self.lanes.iter().map(|l| l.queue.len()).sum()
    }

    /// Nothing queued and no tumbling window left open.
    fn settled(&self) -> bool {
        self.queued() == 0 && self.lanes.iter().all(|l| l.window.is_none())
    }

    /// Moves the checkpoint past every record done: up to the record before
    /// the first one any lane still holds (or the last read, when none). A
    /// drained shard with nothing left is finished: its children may start.
    fn advance(&mut self) {
        let first_undone = self
            .lanes
            .iter()
            .filter_map(|l| l.queue.front().map(|p| p.index))
            .min();
        while let Some(&(i, _)) = self.recent.front() {
            if first_undone.is_some_and(|f| i >= f) {
                break;
            }
            if let Some((_, seq)) = self.recent.pop_front() {
                self.checkpoint.after = Some(seq);
            }
        }
        if self.state == State::Drained && self.settled() {
            self.state = State::Finished;
            self.checkpoint.finished = true;
            tracing::info!(shard = %self.info.id, "shard read to its end and done; its children may start");
        }
    }
}

/// Runs the mapping until `stop` is set (Ctrl-C) or, with
/// `exit_when_idle`, until every shard is read to its current end and done.
/// `on_failure` takes the records of discarded batches.
pub async fn consume(
    app: &mut App,
    client: &Client,
    options: &ConsumeOptions,
    on_failure: Option<Destination>,
    stop: Arc<AtomicBool>,
) -> Result<ConsumeReport, String> {
    let started = Instant::now();
    check(options)?;
    let identity = describe_stream(client, options).await?;
    let source = EventSource::for_stream(&identity.arn);
    let (mut file, mut saved, stale) =
        CheckpointFile::open(&options.checkpoints, &options.stream, &identity)?;
    if let Some(stale) = stale {
        eprintln!("sluice consume: {stale}");
        tracing::warn!(stream = %options.stream, "{stale}");
    }
    let mut report = ConsumeReport::default();
    let mut shards: Vec<ShardRun> = Vec::new();
    let mut listed_at: Option<Instant> = None;
    let mut status = Status::new(options.status);
    let mut idle_rounds = 0;

    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        // Read the shard list again now and then, and soon after a shard
        // caught up or finished: a reshard closes it and lists its children.
        let soon = shards
            .iter()
            .any(|s| s.caught_up || s.state == State::Drained);
        let every = if soon { RELIST_SOON } else { RELIST_EVERY };
        if listed_at.is_none_or(|t| now.duration_since(t) >= every) {
            relist(client, options, &saved, &mut shards).await?;
            listed_at = Some(Instant::now());
        }
        start_ready_shards(client, options, &mut shards).await?;

        let mut worked = false;
        for shard in shards.iter_mut() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            worked |= poll(client, options, &source, shard).await?;
            let mut run = lanes::Run {
                app,
                options,
                source: &source,
                on_failure: &on_failure,
                report: &mut report,
            };
            worked |= lanes::run_lanes(&mut run, shard).await?;
            shard.advance();
            saved
                .shards
                .insert(shard.info.id.clone(), shard.checkpoint.clone());
        }
        file.save(&saved)?;
        status.show(&report, &shards, started);

        idle_rounds = if !worked && idle(&shards) {
            idle_rounds + 1
        } else {
            0
        };
        if options.exit_when_idle && idle_rounds >= 2 {
            break;
        }
        if !worked {
            tokio::time::sleep(until_next_poll(&shards, now, options.poll_interval)).await;
        }
    }
    status.finish();
    file.save(&saved)?;
    report.elapsed = started.elapsed();
    report.shards = shards
        .iter()
        .map(|s| (s.info.id.clone(), s.done, s.checkpoint.after.clone()))
        .collect();
    Ok(report)
}

/// The stream's ARN and creation time, which its checkpoints belong to.
async fn describe_stream(
    client: &Client,
    options: &ConsumeOptions,
) -> Result<StreamIdentity, String> {
    let summary = client
        .describe_stream_summary()
        .stream_name(&options.stream)
        .send()
        .await
        .map_err(|e| {
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception())
            {
                format!(
                    "stream `{}` does not exist at this endpoint",
                    options.stream
                )
            } else {
                describe(&e, &format!("describing stream `{}`", options.stream))
            }
        })?;
    let (arn, created_ms) = summary
        .stream_description_summary()
        .map(|s| {
            (
                s.stream_arn().to_owned(),
                s.stream_creation_timestamp().to_millis().unwrap_or(0),
            )
        })
        .unwrap_or_default();
    Ok(StreamIdentity {
        arn,
        created_ms,
        endpoint: options.endpoint.clone(),
    })
}

/// Whether every shard is done, or read to its current end with nothing
/// queued.
fn idle(shards: &[ShardRun]) -> bool {
    shards.iter().all(|s| match s.state {
        State::Finished => true,
        State::Reading => s.caught_up && s.settled(),
        State::Drained => s.settled(),
        // A child whose parents are done would start next round.
        State::Waiting => !parents_done(shards, &s.info),
    })
}

/// How long to sleep after a round that did nothing: until the next shard
/// is due to be read, within 10 ms and the poll interval.
fn until_next_poll(shards: &[ShardRun], now: Instant, poll_interval: Duration) -> Duration {
    let next = shards
        .iter()
        .filter(|s| s.state == State::Reading)
        .map(|s| s.next_poll)
        .min()
        .unwrap_or(now + poll_interval);
    next.saturating_duration_since(Instant::now())
        .clamp(Duration::from_millis(10), poll_interval)
}

fn check(o: &ConsumeOptions) -> Result<(), String> {
    if !(1..=10_000).contains(&o.batch_size) {
        return Err(format!(
            "--batch-size {} is out of range: 1 to 10000",
            o.batch_size
        ));
    }
    if o.batch_window > Duration::from_secs(300) {
        return Err("--batch-window is at most 300 seconds".into());
    }
    if !(1..=10).contains(&o.parallelization_factor) {
        return Err(format!(
            "--parallelization-factor {} is out of range: 1 to 10",
            o.parallelization_factor
        ));
    }
    if o.max_retries.is_some_and(|r| r > 10_000) {
        return Err("--max-retries is at most 10000 (or -1: until the record expires)".into());
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::read::{outside_shard, read_to_end};
    use super::*;
    use crate::stream::compare_sequence;

    #[test]
    fn starting_positions_parse_as_the_esm_names_them() {
        assert_eq!(
            "trim-horizon".parse::<StartingPosition>(),
            Ok(StartingPosition::TrimHorizon)
        );
        assert_eq!("LATEST".parse(), Ok(StartingPosition::Latest));
        assert_eq!(
            "at-timestamp:1700000000.5".parse(),
            Ok(StartingPosition::AtTimestamp(1_700_000_000_500))
        );
        assert_eq!(
            "at-timestamp:2023-11-14T22:13:20Z".parse(),
            Ok(StartingPosition::AtTimestamp(1_700_000_000_000))
        );
        let e = "yesterday".parse::<StartingPosition>().unwrap_err();
        assert!(e.contains("not a starting position"), "{e}");
    }

    fn pending(index: u64, bytes: usize) -> Pending {
        Pending {
            record: StreamRecord {
                sequence_number: index.to_string(),
                partition_key: "k".into(),
                data: Vec::new(),
                arrival_ms: 0,
            },
            index,
            entry: vec![b'x'; bytes],
        }
    }

    #[test]
    fn a_batch_stays_within_its_size_and_the_payload_cap() {
        let mut lane = Lane::new(3);
        for i in 0..5 {
            lane.push(pending(i, 10));
        }
        assert_eq!(lane.batch_len(None), 3);
        let mut big = Lane::new(100);
        for i in 0..5 {
            big.push(pending(i, 2 << 20));
        }
        assert_eq!(big.batch_len(None), 2, "three 2 MiB entries pass 6 MB");
        let mut huge = Lane::new(100);
        huge.push(pending(0, 7 << 20));
        assert_eq!(huge.batch_len(None), 1, "one record always goes");
        assert!(big.ready(Instant::now(), Duration::from_secs(300), false));
        assert!(
            !lane.ready(Instant::now(), Duration::from_secs(300), false) || lane.queue.len() >= 3
        );
    }

    #[test]
    fn the_checkpoint_stops_before_the_first_record_a_lane_still_holds() {
        let mut shard = ShardRun {
            info: Shard {
                id: "shardId-000000000000".into(),
                parents: Vec::new(),
                starting_hash_key: 0,
                ending_hash_key: u128::MAX,
                closed: false,
                starting_sequence: "0".into(),
                ending_sequence: None,
            },
            state: State::Reading,
            iterator: None,
            lanes: vec![Lane::new(10), Lane::new(10)],
            next_index: 4,
            recent: (0..4).map(|i| (i, i.to_string())).collect(),
            checkpoint: ShardCheckpoint::default(),
            last_read: Some("3".into()),
            lag_ms: None,
            next_poll: Instant::now(),
            throttled: 0,
            caught_up: false,
            done: 0,
        };
        // Lane 0 holds record 2; lane 1 is done with 0, 1 and 3.
        shard.lanes[0].push(pending(2, 1));
        shard.advance();
        assert_eq!(shard.checkpoint.after.as_deref(), Some("1"));
        shard.lanes[0].pop(1);
        shard.advance();
        assert_eq!(shard.checkpoint.after.as_deref(), Some("3"));
        assert!(shard.recent.is_empty());
    }

    #[test]
    fn a_closed_shard_is_read_to_its_end_only_past_its_last_sequence_number() {
        let shard = |last_read: Option<&str>, after: Option<&str>, end: Option<&str>| ShardRun {
            info: Shard {
                id: "shardId-000000000000".into(),
                parents: Vec::new(),
                starting_hash_key: 0,
                ending_hash_key: u128::MAX,
                closed: end.is_some(),
                starting_sequence: "49590338271490256608559692538361571095921575989136588801"
                    .into(),
                ending_sequence: end.map(str::to_owned),
            },
            state: State::Reading,
            iterator: None,
            lanes: vec![Lane::new(10)],
            next_index: 0,
            recent: VecDeque::new(),
            checkpoint: ShardCheckpoint {
                after: after.map(str::to_owned),
                finished: false,
            },
            last_read: last_read.map(str::to_owned),
            lag_ms: None,
            next_poll: Instant::now(),
            throttled: 0,
            caught_up: false,
            done: 0,
        };
        let end = Some("49590338271490256608559692538361571095921575989136588900");
        // An empty page in the middle of a closed shard (lag missing) is
        // not its end.
        assert!(!read_to_end(&shard(
            Some("49590338271490256608559692538361571095921575989136588850"),
            None,
            end
        )));
        assert!(!read_to_end(&shard(None, None, end)));
        assert!(read_to_end(&shard(end, None, end)));
        assert!(read_to_end(&shard(None, end, end)));
        // An open shard never is.
        assert!(!read_to_end(&shard(end, None, None)));
        // 56-digit sequence numbers compare by value.
        assert_eq!(compare_sequence("9", "10"), std::cmp::Ordering::Less);
    }

    #[test]
    fn a_checkpoint_outside_its_shards_range_is_stale() {
        let info = Shard {
            id: "s".into(),
            parents: Vec::new(),
            starting_hash_key: 0,
            ending_hash_key: u128::MAX,
            closed: true,
            starting_sequence: "200".into(),
            ending_sequence: Some("300".into()),
        };
        let at = |after: &str| ShardCheckpoint {
            after: Some(after.into()),
            finished: false,
        };
        assert!(
            outside_shard(&at("161"), &info)
                .unwrap()
                .contains("before the shard's first")
        );
        assert!(
            outside_shard(&at("301"), &info)
                .unwrap()
                .contains("after the shard's last")
        );
        assert!(outside_shard(&at("250"), &info).is_none());
        assert!(outside_shard(&ShardCheckpoint::default(), &info).is_none());
    }
}
