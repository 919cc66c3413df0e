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

use std::collections::VecDeque;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::ShardIteratorType;

use super::checkpoint::{CheckpointFile, Checkpoints, ShardCheckpoint, StreamIdentity};
use super::esm::{self, Condition, Discarded, EventSource, StreamRecord};
use super::{Shard, compare_sequence, describe, hash_key, is_throttling};
use host::app::App;
use host::destination::Destination;
use host::event::Record;
use host::outcome::Routed;

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
    /// within the payload cap (at least one).
    fn batch_len(&self) -> usize {
        let mut bytes = esm::EVENT_OVERHEAD;
        let mut n = 0;
        for p in self.queue.iter().take(self.limit) {
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

    /// Moves the checkpoint past every record done: up to the record before
    /// the first one any lane still holds (or the last read, when none).
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
    }
}

/// Runs the mapping until `stop` is set (Ctrl-C) or, with
/// `exit_when_idle`, until every shard is read to its current end and done.
/// `on_failure` takes the records of discarded batches.
#[expect(
    clippy::too_many_lines,
    reason = "109 lines: to split at its seams (issue 32)"
)]
pub async fn consume(
    app: &mut App,
    client: &Client,
    options: &ConsumeOptions,
    mut on_failure: Option<Destination>,
    stop: Arc<AtomicBool>,
) -> Result<ConsumeReport, String> {
    let started = Instant::now();
    check(options)?;
    let arn = client
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
        })?
        .stream_description_summary()
        .map(|s| {
            (
                s.stream_arn().to_owned(),
                s.stream_creation_timestamp().to_millis().unwrap_or(0),
            )
        })
        .unwrap_or_default();
    let (arn, created_ms) = arn;
    let source = EventSource::for_stream(&arn);
    let identity = StreamIdentity {
        arn: arn.clone(),
        created_ms,
        endpoint: options.endpoint.clone(),
    };
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
            worked |= run_lanes(app, options, &source, shard, &mut on_failure, &mut report).await?;
            shard.advance();
            if shard.state == State::Drained && shard.queued() == 0 {
                shard.state = State::Finished;
                shard.checkpoint.finished = true;
                tracing::info!(shard = %shard.info.id, "shard read to its end and done; its children may start");
            }
            saved
                .shards
                .insert(shard.info.id.clone(), shard.checkpoint.clone());
        }
        file.save(&saved)?;
        status.show(&report, &shards, started);

        let idle = !worked
            && shards.iter().all(|s| match s.state {
                State::Finished => true,
                State::Reading => s.caught_up && s.queued() == 0,
                State::Drained => s.queued() == 0,
                // A child whose parents are done would start next round.
                State::Waiting => !parents_done(&shards, &s.info),
            });
        idle_rounds = if idle { idle_rounds + 1 } else { 0 };
        if options.exit_when_idle && idle_rounds >= 2 {
            break;
        }
        if !worked {
            let next = shards
                .iter()
                .filter(|s| s.state == State::Reading)
                .map(|s| s.next_poll)
                .min()
                .unwrap_or(now + options.poll_interval);
            let wait = next
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(10), options.poll_interval);
            tokio::time::sleep(wait).await;
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

/// Reads the shard list and adds the shards not seen yet (in list order,
/// which puts parents before their children).
async fn relist(
    client: &Client,
    options: &ConsumeOptions,
    saved: &Checkpoints,
    shards: &mut Vec<ShardRun>,
) -> Result<(), String> {
    for info in super::list_shards(client, &options.stream).await? {
        if let Some(known) = shards.iter_mut().find(|s| s.info.id == info.id) {
            known.info.closed = info.closed;
            known.info.ending_sequence = info.ending_sequence;
            continue;
        }
        let mut checkpoint = saved.shards.get(&info.id).cloned().unwrap_or_default();
        if let Some(why) = outside_shard(&checkpoint, &info) {
            let notice = format!(
                "shard `{}`: checkpoint file `{}` says sequence number {}, {why}: the \
                 checkpoint is stale and ignored",
                info.id,
                options.checkpoints.display(),
                checkpoint.after.as_deref().unwrap_or("")
            );
            eprintln!("sluice consume: {notice}");
            tracing::warn!(shard = %info.id, "{notice}");
            checkpoint = ShardCheckpoint::default();
        }
        let state = if checkpoint.finished {
            State::Finished
        } else {
            State::Waiting
        };
        shards.push(ShardRun {
            lanes: (0..options.parallelization_factor)
                .map(|_| Lane::new(options.batch_size))
                .collect(),
            info,
            state,
            iterator: None,
            next_index: 0,
            recent: VecDeque::new(),
            checkpoint,
            last_read: None,
            lag_ms: None,
            next_poll: Instant::now(),
            throttled: 0,
            caught_up: false,
            done: 0,
        });
    }
    Ok(())
}

/// Why `checkpoint` cannot belong to `shard`: its sequence number lies
/// before the shard's first record or after a closed shard's last.
fn outside_shard(checkpoint: &ShardCheckpoint, shard: &Shard) -> Option<String> {
    use std::cmp::Ordering::{Greater, Less};
    let after = checkpoint.after.as_deref()?;
    if !shard.starting_sequence.is_empty()
        && compare_sequence(after, &shard.starting_sequence) == Less
    {
        return Some(format!(
            "before the shard's first sequence number {}",
            shard.starting_sequence
        ));
    }
    match shard.ending_sequence.as_deref() {
        Some(end)
            if !end.trim_start_matches('0').is_empty()
                && compare_sequence(after, end) == Greater =>
        {
            Some(format!("after the shard's last sequence number {end}"))
        }
        _ => None,
    }
}

/// Whether every parent of `shard` that is still listed is finished.
fn parents_done(shards: &[ShardRun], shard: &Shard) -> bool {
    shard.parents.iter().all(|p| {
        shards
            .iter()
            .find(|s| &s.info.id == p)
            .is_none_or(|s| s.state == State::Finished)
    })
}

/// Starts reading every waiting shard whose parents are done.
async fn start_ready_shards(
    client: &Client,
    options: &ConsumeOptions,
    shards: &mut [ShardRun],
) -> Result<(), String> {
    for i in 0..shards.len() {
        if shards[i].state != State::Waiting || !parents_done(shards, &shards[i].info) {
            continue;
        }
        let shard = &mut shards[i];
        let after = shard.checkpoint.after.clone();
        if let Some(after) = &after {
            eprintln!(
                "sluice consume: shard `{}`: resuming after sequence number {after} (checkpoint \
                 file `{}`), not at the --starting-position",
                shard.info.id,
                options.checkpoints.display()
            );
        }
        open_iterator(client, options, shard, after.as_deref()).await?;
        shard.state = State::Reading;
        tracing::info!(shard = %shard.info.id, after = shard.checkpoint.after.as_deref().unwrap_or(""), "reading shard");
    }
    Ok(())
}

/// Gives `shard` a fresh iterator: after `after` when set, else at the
/// starting position (a child shard always starts at its trim horizon, as the
/// ESM reads a child from its first record).
async fn open_iterator(
    client: &Client,
    options: &ConsumeOptions,
    shard: &mut ShardRun,
    after: Option<&str>,
) -> Result<(), String> {
    let position = if shard.info.parents.is_empty() {
        options.starting_position
    } else {
        StartingPosition::TrimHorizon
    };
    let it = iterator(client, &options.stream, &shard.info.id, after, position).await?;
    shard.iterator = Some(it);
    Ok(())
}

/// A shard iterator: after `after` when there is a checkpoint, else at `position`.
async fn iterator(
    client: &Client,
    stream: &str,
    shard: &str,
    after: Option<&str>,
    position: StartingPosition,
) -> Result<String, String> {
    let mut req = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard);
    req = match (after, position) {
        (Some(seq), _) => req
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .starting_sequence_number(seq),
        (None, StartingPosition::TrimHorizon) => {
            req.shard_iterator_type(ShardIteratorType::TrimHorizon)
        }
        (None, StartingPosition::Latest) => req.shard_iterator_type(ShardIteratorType::Latest),
        (None, StartingPosition::AtTimestamp(ms)) => req
            .shard_iterator_type(ShardIteratorType::AtTimestamp)
            .timestamp(DateTime::from_millis(ms)),
    };
    let out = req
        .send()
        .await
        .map_err(|e| describe(&e, &format!("getting an iterator for shard `{shard}`")))?;
    out.shard_iterator()
        .map(str::to_owned)
        .ok_or_else(|| format!("Kinesis gave no iterator for shard `{shard}`"))
}

/// Reads the next records of `shard` into its lanes, when it is due and its
/// lanes have room. Returns whether records came.
#[expect(
    clippy::too_many_lines,
    reason = "92 lines: to split at its seams (issue 32)"
)]
async fn poll(
    client: &Client,
    options: &ConsumeOptions,
    source: &EventSource,
    shard: &mut ShardRun,
) -> Result<bool, String> {
    let room = 2 * options.batch_size * options.parallelization_factor;
    if shard.state != State::Reading
        || Instant::now() < shard.next_poll
        || shard.queued() >= room.max(1000)
    {
        return Ok(false);
    }
    let Some(it) = shard.iterator.clone() else {
        return Ok(false);
    };
    let result = client
        .get_records()
        .shard_iterator(it)
        .limit(GET_RECORDS_LIMIT)
        .send()
        .await;
    let out = match result {
        Ok(out) => out,
        Err(e) if is_throttling(&e) => {
            shard.throttled += 1;
            let wait = Duration::from_millis((500u64 << shard.throttled.min(5)).min(10_000));
            tracing::warn!(shard = %shard.info.id, wait_ms = wait.as_millis() as u64, "GetRecords throttled (ProvisionedThroughputExceeded); backing off");
            shard.next_poll = Instant::now() + wait;
            return Ok(false);
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_expired_iterator_exception()) =>
        {
            tracing::warn!(shard = %shard.info.id, "shard iterator expired; getting a new one after the last record read");
            let after = shard
                .last_read
                .clone()
                .or_else(|| shard.checkpoint.after.clone());
            open_iterator(client, options, shard, after.as_deref()).await?;
            return Ok(false);
        }
        Err(e) => {
            return Err(describe(
                &e,
                &format!("reading shard `{}` (GetRecords)", shard.info.id),
            ));
        }
    };
    shard.throttled = 0;
    shard.lag_ms = out.millis_behind_latest();
    let records = out.records();
    shard.caught_up = records.is_empty();
    let factor = shard.lanes.len() as u128;
    for r in records {
        let record = StreamRecord {
            sequence_number: r.sequence_number().to_owned(),
            partition_key: r.partition_key().unwrap_or_default().to_owned(),
            data: r.data().as_ref().to_vec(),
            arrival_ms: r
                .approximate_arrival_timestamp()
                .and_then(|t| t.to_millis().ok())
                .unwrap_or(0),
        };
        let entry = source.entry(&shard.info.id, &record);
        let lane = (hash_key(&record.partition_key) % factor) as usize;
        shard
            .recent
            .push_back((shard.next_index, record.sequence_number.clone()));
        shard.last_read = Some(record.sequence_number.clone());
        shard.lanes[lane].push(Pending {
            record,
            index: shard.next_index,
            entry,
        });
        shard.next_index += 1;
    }
    let behind = shard.lag_ms.unwrap_or(0) > 0;
    shard.next_poll = Instant::now()
        + if records.is_empty() && !behind {
            options.poll_interval
        } else {
            MIN_POLL_GAP
        };
    match out.next_shard_iterator() {
        Some(next) => shard.iterator = Some(next.to_owned()),
        None => {
            shard.iterator = None;
            shard.state = State::Drained;
        }
    }
    // A closed shard takes no new records: once a read comes back empty
    // after its last record (`EndingSequenceNumber`), it has been read to
    // its end (some endpoints keep handing out iterators). An empty page
    // alone says nothing: Kinesis returns empty pages inside a shard too.
    if shard.info.closed && records.is_empty() && !behind && read_to_end(shard) {
        shard.state = State::Drained;
    }
    Ok(!records.is_empty())
}

/// Whether what was read of closed `shard` (or its checkpoint) has reached
/// its last record. A shard that ends before it starts held no record.
fn read_to_end(shard: &ShardRun) -> bool {
    use std::cmp::Ordering::Less;
    let Some(end) = shard.info.ending_sequence.as_deref() else {
        return false;
    };
    if compare_sequence(end, &shard.info.starting_sequence) == Less
        || end.trim_start_matches('0').is_empty()
    {
        return true;
    }
    shard
        .last_read
        .as_deref()
        .or(shard.checkpoint.after.as_deref())
        .is_some_and(|at| compare_sequence(at, end) != Less)
}

/// Invokes the pipeline on every lane of `shard` that has a batch ready.
/// Returns whether anything was invoked or discarded.
#[expect(
    clippy::too_many_lines,
    reason = "116 lines: to split at its seams (issue 32)"
)]
async fn run_lanes(
    app: &mut App,
    options: &ConsumeOptions,
    source: &EventSource,
    shard: &mut ShardRun,
    on_failure: &mut Option<Destination>,
    report: &mut ConsumeReport,
) -> Result<bool, String> {
    let mut worked = false;
    let no_more_coming = shard.state == State::Drained;
    let shard_id = shard.info.id.clone();
    for lane in &mut shard.lanes {
        // A few batches per lane per round, so that polling goes on.
        for _ in 0..16 {
            if let Some(max_age) = options.max_record_age {
                let now_ms = now_ms();
                let too_old = lane
                    .queue
                    .iter()
                    .take_while(|p| now_ms - p.record.arrival_ms > max_age.as_millis() as i64)
                    .count();
                if too_old > 0 {
                    let invocations = lane.invocations;
                    let gone = lane.pop(too_old);
                    discard(
                        source,
                        &shard_id,
                        &gone,
                        Condition::RecordAgeExceeded,
                        invocations,
                        false,
                        on_failure,
                        report,
                    )
                    .await?;
                    shard.done += gone.len();
                    lane.settled(options.batch_size);
                    worked = true;
                }
            }
            if !lane.ready(Instant::now(), options.batch_window, no_more_coming) {
                break;
            }
            worked = true;
            let n = lane.batch_len();
            let event = esm::event(lane.queue.iter().take(n).map(|p| p.entry.as_slice()));
            let deadline = Instant::now() + options.function_timeout;
            report.invocations += 1;
            lane.invocations += 1;
            let result = host::lambda::invoke(app, &event, Some(deadline)).await;
            // How many records of the batch are done, and whether the rest
            // failed by a function error.
            let (done, function_error) = match result {
                Ok(invoked) => {
                    report.delivered += invoked.report.dispatch.delivered.iter().sum::<usize>();
                    let failed: Vec<&str> = invoked
                        .response
                        .batch_item_failures
                        .iter()
                        .map(|f| f.item_identifier.as_deref().unwrap_or(""))
                        .collect();
                    if failed.is_empty() {
                        (n, false)
                    } else {
                        report.partial_failures += 1;
                        let first = lane
                            .queue
                            .iter()
                            .take(n)
                            .position(|p| failed.contains(&p.record.sequence_number.as_str()));
                        match first {
                            Some(i) => (i, false),
                            // Not a sequence number of the batch: Lambda
                            // retries the whole batch.
                            None => (0, true),
                        }
                    }
                }
                Err(e) => {
                    report.function_errors += 1;
                    tracing::warn!(shard = %shard_id, records = n, error = %e, "function error; the batch will be retried");
                    (0, true)
                }
            };
            if done > 0 {
                lane.pop(done);
                report.records += done;
                shard.done += done;
                lane.invocations = u32::from(done < n);
            }
            if done == n {
                lane.settled(options.batch_size);
                lane.not_before = None;
                continue;
            }
            // Records done..n failed: bisect, retry or give up.
            let failed = n - done;
            if options.bisect_on_error && failed > 1 {
                lane.limit = failed.div_ceil(2);
                tracing::info!(shard = %shard_id, records = failed, next = lane.limit, "bisecting the failed batch");
                continue;
            }
            lane.retries += 1;
            if options.max_retries.is_some_and(|max| lane.retries > max) {
                let invocations = lane.invocations;
                let gone = lane.pop(failed);
                discard(
                    source,
                    &shard_id,
                    &gone,
                    Condition::RetryAttemptsExhausted,
                    invocations,
                    function_error,
                    on_failure,
                    report,
                )
                .await?;
                shard.done += gone.len();
                lane.settled(options.batch_size);
                lane.not_before = None;
            } else {
                let wait = Duration::from_millis((50u64 << lane.retries.min(6)).min(2_000));
                lane.not_before = Some(Instant::now() + wait);
                break;
            }
        }
    }
    Ok(worked)
}

/// Gives up on `gone`: its on-failure record goes to `on_failure`, or it is
/// only logged when there is none. An on-failure record that cannot be sent
/// ends the run (the checkpoint stays before these records, so a restart
/// tries them again): nothing is dropped silently.
#[allow(clippy::too_many_arguments)]
async fn discard(
    source: &EventSource,
    shard_id: &str,
    gone: &[Pending],
    condition: Condition,
    invoke_count: u32,
    function_error: bool,
    on_failure: &mut Option<Destination>,
    report: &mut ConsumeReport,
) -> Result<(), String> {
    let (Some(first), Some(last)) = (gone.first(), gone.last()) else {
        return Ok(());
    };
    report.discarded += gone.len();
    tracing::warn!(
        shard = %shard_id,
        records = gone.len(),
        first = %first.record.sequence_number,
        last = %last.record.sequence_number,
        condition = condition.as_str(),
        on_failure = on_failure.as_ref().map(|d| d.describe()).unwrap_or_else(|| "none".into()),
        "discarding records, as the event source mapping does"
    );
    let Some(destination) = on_failure else {
        return Ok(());
    };
    let doc = esm::failure_record(
        source,
        &Discarded {
            shard_id,
            first: &first.record,
            last: &last.record,
            batch_size: gone.len(),
            condition,
            invoke_count,
            function_error,
        },
        now_ms(),
    );
    let routed = Routed {
        record: Record {
            shard_id: shard_id.to_owned(),
            sequence_number: first.record.sequence_number.clone(),
            sub_sequence_number: None,
            partition_key: first.record.partition_key.clone(),
            arrival_ms: first.record.arrival_ms.max(0) as u64,
            data: doc,
            attributes: Vec::new(),
        },
        slot: 0,
        output_index: 0,
        destinations: vec![0],
        host_attributes: Vec::new(),
    };
    let (failures, _) = host::dispatch::driver::deliver(destination.sink(), &[&routed], None).await;
    match failures.first() {
        None => Ok(()),
        Some(f) => Err(format!(
            "could not send the on-failure record of shard `{shard_id}` ({} to {}) to `{}`: {}",
            first.record.sequence_number,
            last.record.sequence_number,
            destination.describe(),
            f.reason
        )),
    }
}

/// The destination of `--on-failure`: an SQS queue URL (`https://…`), an
/// S3 prefix (`s3://bucket/prefix`: one object per discarded batch, under
/// `<prefix>/<shard>/<yyyy>/<mm>/<dd>/<first sequence number>.json`) or a
/// local file (JSON Lines). AWS clients come from the environment.
pub async fn on_failure_destination(
    location: &str,
    aws: &mut Option<host::aws::Aws>,
) -> Result<Destination, String> {
    use host::config::destination::{
        Context, DestinationKind, file::FileConfig, s3::S3Config, sqs::SqsConfig,
    };
    use host::config::{DestinationPlan, Format};
    let cx = Context {
        base: std::path::Path::new(""),
    };
    let invalid = |e: host::config::destination::Invalid| {
        format!("--on-failure `{location}`: {}: {}", e.field, e.message)
    };
    let kind = if location.starts_with("https://") || location.starts_with("http://") {
        DestinationKind::Sqs(
            SqsConfig {
                queue_url: location.to_owned(),
                message_group_id: None,
                max_message_bytes: host::config::destination::sqs::MAX_MESSAGE_BYTES,
                format: Format::Raw,
                max_in_flight: host::config::destination::DEFAULT_MAX_IN_FLIGHT,
                claim_check: None,
            }
            .validate(cx)
            .map_err(invalid)?,
        )
    } else if let Some(rest) = location.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_end_matches('/');
        let key = if prefix.is_empty() {
            "{shard}/{yyyy}/{mm}/{dd}/{first_seq}.json".to_owned()
        } else {
            format!("{prefix}/{{shard}}/{{yyyy}}/{{mm}}/{{dd}}/{{first_seq}}.json")
        };
        DestinationKind::S3(
            S3Config {
                bucket: bucket.to_owned(),
                key,
                format: Format::Raw,
                gzip: false,
                content_type: Some("application/json".into()),
                max_in_flight: host::config::destination::DEFAULT_MAX_IN_FLIGHT,
            }
            .validate(cx)
            .map_err(invalid)?,
        )
    } else {
        DestinationKind::File(
            FileConfig {
                path: location.into(),
                format: Format::Raw,
            }
            .validate(cx)
            .map_err(invalid)?,
        )
    };
    let plan = DestinationPlan {
        name: "on-failure".into(),
        kind,
    };
    if plan.kind.in_aws() {
        host::app::clients(aws).await;
    }
    Destination::open(&plan, aws.as_ref()).map_err(|e| e.to_string())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The live status line: records/s and lag per shard, on stderr.
struct Status {
    on: bool,
    tty: bool,
    last: Instant,
    last_records: usize,
    shown: bool,
}

impl Status {
    fn new(on: bool) -> Status {
        Status {
            on,
            tty: std::io::stderr().is_terminal(),
            last: Instant::now(),
            last_records: 0,
            shown: false,
        }
    }

    fn show(&mut self, report: &ConsumeReport, shards: &[ShardRun], started: Instant) {
        let every = if self.tty {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(5)
        };
        if !self.on || self.last.elapsed() < every {
            return;
        }
        let rate = (report.records - self.last_records) as f64 / self.last.elapsed().as_secs_f64();
        self.last = Instant::now();
        self.last_records = report.records;
        let lag: Vec<String> = shards
            .iter()
            .filter(|s| matches!(s.state, State::Reading | State::Drained))
            .map(|s| match s.lag_ms {
                Some(ms) => format!("{} {ms} ms", short(&s.info.id)),
                None => format!("{} ?", short(&s.info.id)),
            })
            .collect();
        let line = format!(
            "consume: {} records, {rate:.0}/s, {} invocations, {} discarded, {:.0} s; lag: {}",
            report.records,
            report.invocations,
            report.discarded,
            started.elapsed().as_secs_f64(),
            if lag.is_empty() {
                "-".into()
            } else {
                lag.join(", ")
            }
        );
        if self.tty {
            eprint!("\r\x1b[2K{line}");
        } else {
            eprintln!("{line}");
        }
        self.shown = true;
    }

    fn finish(&self) {
        if self.on && self.tty && self.shown {
            eprintln!();
        }
    }
}

/// `shardId-000000000001` → `shard 1`.
fn short(id: &str) -> String {
    id.strip_prefix("shardId-")
        .map(|n| format!("shard {}", n.trim_start_matches('0').max("0")))
        .unwrap_or_else(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(lane.batch_len(), 3);
        let mut big = Lane::new(100);
        for i in 0..5 {
            big.push(pending(i, 2 << 20));
        }
        assert_eq!(big.batch_len(), 2, "three 2 MiB entries pass 6 MB");
        let mut huge = Lane::new(100);
        huge.push(pending(0, 7 << 20));
        assert_eq!(huge.batch_len(), 1, "one record always goes");
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
