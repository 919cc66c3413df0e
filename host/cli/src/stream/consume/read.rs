//! The reading side of the mapping: the shard list (and resharding: a
//! child waits for its parents), shard iterators from the checkpoint or the
//! starting position, and `GetRecords` pages spread over each shard's lanes
//! by partition key.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::operation::get_records::GetRecordsOutput;
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::ShardIteratorType;

use super::{
    ConsumeOptions, GET_RECORDS_LIMIT, Lane, MIN_POLL_GAP, Pending, ShardRun, StartingPosition,
    State,
};
use crate::stream::checkpoint::{Checkpoints, ShardCheckpoint};
use crate::stream::esm::{EventSource, StreamRecord};
use crate::stream::{Shard, compare_sequence, describe, hash_key, is_throttling};

/// Reads the shard list and adds the shards not seen yet (in list order,
/// which puts parents before their children).
pub(super) async fn relist(
    client: &Client,
    options: &ConsumeOptions,
    saved: &Checkpoints,
    shards: &mut Vec<ShardRun>,
) -> Result<(), String> {
    for info in crate::stream::list_shards(client, &options.stream).await? {
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
pub(super) fn outside_shard(checkpoint: &ShardCheckpoint, shard: &Shard) -> Option<String> {
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
pub(super) fn parents_done(shards: &[ShardRun], shard: &Shard) -> bool {
    shard.parents.iter().all(|p| {
        shards
            .iter()
            .find(|s| &s.info.id == p)
            .is_none_or(|s| s.state == State::Finished)
    })
}

/// Starts reading every waiting shard whose parents are done.
pub(super) async fn start_ready_shards(
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
pub(super) async fn poll(
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
    let Some(page) = get_records(client, options, shard).await? else {
        return Ok(false);
    };
    shard.throttled = 0;
    shard.lag_ms = page.millis_behind_latest();
    let records = page.records();
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
    match page.next_shard_iterator() {
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

/// One `GetRecords` page of `shard`; `None` when there is none to read now
/// (no iterator; throttled: the shard backs off; the iterator expired: a new
/// one is taken after the last record read).
async fn get_records(
    client: &Client,
    options: &ConsumeOptions,
    shard: &mut ShardRun,
) -> Result<Option<GetRecordsOutput>, String> {
    let Some(it) = shard.iterator.clone() else {
        return Ok(None);
    };
    let result = client
        .get_records()
        .shard_iterator(it)
        .limit(GET_RECORDS_LIMIT)
        .send()
        .await;
    match result {
        Ok(page) => Ok(Some(page)),
        Err(e) if is_throttling(&e) => {
            shard.throttled += 1;
            let wait = Duration::from_millis((500u64 << shard.throttled.min(5)).min(10_000));
            tracing::warn!(shard = %shard.info.id, wait_ms = wait.as_millis() as u64, "GetRecords throttled (ProvisionedThroughputExceeded); backing off");
            shard.next_poll = Instant::now() + wait;
            Ok(None)
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
            Ok(None)
        }
        Err(e) => Err(describe(
            &e,
            &format!("reading shard `{}` (GetRecords)", shard.info.id),
        )),
    }
}

/// Whether what was read of closed `shard` (or its checkpoint) has reached
/// its last record. A shard that ends before it starts held no record.
pub(super) fn read_to_end(shard: &ShardRun) -> bool {
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
