//! What a Kinesis payload holds, read before the first step (`[source]`).
//!
//! Real producers rarely write one plain record per payload. The KPL packs
//! many user records into one aggregate; producers compress; a CloudWatch
//! Logs subscription writes gzipped JSON holding many log events. [`expand`]
//! turns each decoded Kinesis record into the events the pipeline should
//! see, in this order:
//!
//! 1. **KPL de-aggregation** (`deaggregate = true`, the default): a payload
//!    that starts with the magic `f3 89 9a c2` is a protobuf
//!    `AggregatedRecord` followed by the MD5 of the protobuf. Each user
//!    record becomes a record with its own partition key, the aggregate's
//!    sequence number and its index as sub-sequence number (and attribute
//!    `kinesis.explicit-hash-key` when the producer set one).
//! 2. **Decompression** (`decompress`): gzip or zstd, or `auto` by magic
//!    bytes, never past `max_decompressed_bytes`.
//! 3. **CloudWatch Logs** (`format = "cloudwatch-logs"`): `CONTROL_MESSAGE`
//!    payloads are skipped (counted, and the record counts as filtered);
//!    every `logEvents[]` entry becomes a record whose data is the message,
//!    with attributes `logGroup`, `logStream`, `owner`, `id`, `timestamp`
//!    and its index as sub-sequence number.
//!
//! 4. **The pre-filter** ([`prefilter`], `[source] filters`): Lambda
//!    `FilterCriteria` patterns ([`crate::pattern`]); a record no pattern
//!    matches counts as filtered and reaches no plugin.
//!
//! **One memory budget for the batch** (`max_batch_bytes`): everything
//! decoding allocates (decompressed payloads, de-aggregated user records,
//! the keys and attributes each resulting record carries) is counted
//! against it before it is built. A Kinesis record whose decoding would go
//! past what is left fails alone, with class `decode`; what it had taken is
//! given back and the records after it go on. KPL input is validated as
//! Kinesis validates it (partition keys of 1 to 256 characters, explicit
//! hash keys decimal below 2^128), and CloudWatch Logs names as CloudWatch
//! bounds them (log group and stream names up to 512 characters), so that
//! no field repeated on every record can be large.
//!
//! Each resulting record gets its own slot in the batch, so one user record
//! failing does not take its siblings' outcomes with it; Lambda still
//! checkpoints by the aggregate's sequence number, so a retried aggregate
//! replays all of its user records (FIFO deduplication ids, S3 keys and
//! dead letters carry the sub-sequence number). A payload that cannot be
//! read (an aggregate whose MD5 does not match, a truncated protobuf, a
//! compression bomb, malformed CloudWatch Logs JSON) fails alone, with class
//! `decode` and a reason that names the problem, and is dead-lettered as
//! Lambda sent it under the default policy.

mod cloudwatch;
mod compression;
mod kpl;

use base64::Engine as _;

use crate::config::{Decompress, Source, SourceFormat};
use crate::event::{Batch, Record, Rejected, SourceStats};
use crate::pattern::Filters;
use cloudwatch::cloudwatch_logs;
use compression::decompress;
use kpl::deaggregate;
pub use kpl::{Aggregator, KPL_MAGIC, MAX_PARTITION_KEY_CHARS, hash_key};

/// Whether `source` leaves every payload as it is (nothing to do).
pub fn is_plain(source: &Source) -> bool {
    !source.deaggregate
        && source.decompress == Decompress::None
        && source.format == SourceFormat::Records
}

/// Reads every record of `batch` as `source` says; see the module docs.
/// Slots are renumbered: one per resulting record, in order, plus one for
/// each record that held none (it counts as filtered).
pub fn expand(batch: Batch, source: &Source) -> Batch {
    if is_plain(source) || batch.records.is_empty() {
        return batch;
    }
    let mut budget = Budget::new(source.max_batch_bytes);
    enum Entry {
        Record(Record),
        Rejected(Rejected),
        Empty,
    }
    let mut entries: Vec<Option<Entry>> = (0..batch.len()).map(|_| None).collect();
    for (record, slot) in batch.records.into_iter().zip(batch.slot) {
        entries[slot] = Some(Entry::Record(record));
    }
    for r in batch.rejected {
        let i = r.index;
        entries[i] = Some(Entry::Rejected(r));
    }
    for i in batch.empty {
        entries[i] = Some(Entry::Empty);
    }
    let mut out = Batch {
        source: SourceStats {
            kinesis_records: batch.source.kinesis_records,
            ..SourceStats::default()
        },
        ..Batch::default()
    };
    for entry in entries.into_iter().flatten() {
        let next = out.len();
        match entry {
            Entry::Rejected(r) => out.rejected.push(Rejected { index: next, ..r }),
            Entry::Empty => out.empty.push(next),
            Entry::Record(record) => match read(record, source, &mut out.source, &mut budget) {
                Ok(records) if records.is_empty() => out.empty.push(next),
                Ok(records) => {
                    out.slot.extend(next..next + records.len());
                    out.records.extend(records);
                }
                Err(unread) => {
                    let (record, reason) = *unread;
                    out.rejected.push(Rejected {
                        index: next,
                        raw: as_lambda_sent_it(&record),
                        shard_id: Some(record.shard_id),
                        sequence_number: Some(record.sequence_number),
                        reason,
                    })
                }
            },
        }
    }
    out.source.decoded_bytes = budget.peak;
    out
}

/// The bytes decoding may still allocate for the batch
/// (`[source] max_batch_bytes`): see the module docs.
#[derive(Debug)]
struct Budget {
    limit: usize,
    used: usize,
    /// The most `used` ever was.
    peak: usize,
}

impl Budget {
    fn new(limit: usize) -> Budget {
        Budget {
            limit,
            used: 0,
            peak: 0,
        }
    }

    fn left(&self) -> usize {
        self.limit - self.used
    }

    /// Takes `bytes` for `what`, or says why it cannot.
    fn take(&mut self, bytes: usize, what: &str) -> Result<(), String> {
        if bytes > self.left() {
            return Err(format!(
                "{what} would take {bytes} bytes, more than the {} left of the batch's decoding \
                 budget of {} bytes (`source.max_batch_bytes`)",
                self.left(),
                self.limit
            ));
        }
        self.used += bytes;
        self.peak = self.peak.max(self.used);
        Ok(())
    }
}

/// Drops the records that no pattern of `filters` keeps (none, when there
/// are no patterns): their slots count as filtered, in
/// `batch.source.prefiltered`. Runs after [`expand`], on what the steps
/// would see.
pub fn prefilter(mut batch: Batch, filters: &Filters) -> Batch {
    if filters.is_empty() || batch.records.is_empty() {
        return batch;
    }
    let records = std::mem::take(&mut batch.records);
    let slots = std::mem::take(&mut batch.slot);
    batch.records.reserve(records.len());
    batch.slot.reserve(slots.len());
    for (record, slot) in records.into_iter().zip(slots) {
        if filters.keeps(&record.partition_key, &record.data) {
            batch.records.push(record);
            batch.slot.push(slot);
        } else {
            batch.empty.push(slot);
            batch.source.prefiltered += 1;
        }
    }
    batch
}

/// The pre-filter's patterns as Lambda's `FilterCriteria` JSON (see
/// [`Filters::criteria`]), so that Lambda drops records before invoking the
/// function and bills nothing for them. Refused when Lambda's filter would
/// see something else than the pre-filter does: KPL aggregates, compressed
/// payloads or CloudWatch Logs subscriptions are opaque to it.
pub fn filter_criteria(source: &Source, filters: &Filters) -> Result<serde_json::Value, String> {
    let opaque = if source.format == SourceFormat::CloudwatchLogs {
        Some("`format = \"cloudwatch-logs\"`: the payloads are gzipped CloudWatch Logs data")
    } else if source.decompress != Decompress::None {
        Some("`decompress` is set: the payloads are compressed")
    } else if source.deaggregate {
        Some(
            "`deaggregate = true` (the default): a KPL aggregate is one protobuf record to \
             Lambda, not its user records, so Lambda would drop every aggregate. If no producer \
             of this stream aggregates, set `[source] deaggregate = false`",
        )
    } else {
        None
    };
    if let Some(why) = opaque {
        return Err(format!(
            "Lambda's filter cannot see what Sluice's pre-filter sees: [source] {why}. Keep the \
             patterns as Sluice's pre-filter (it runs before the first step, with no plugin call)"
        ));
    }
    filters.criteria()
}

/// A record whose payload could not be read, as it came, and why (boxed:
/// the rare path stays out of the common one's way).
type Unread = Box<(Record, String)>;

/// The records `record`'s payload holds, or why it cannot be read (with the
/// record as it came, for its dead letter). What it takes of `budget` is
/// given back when it fails.
fn read(
    record: Record,
    source: &Source,
    stats: &mut SourceStats,
    budget: &mut Budget,
) -> Result<Vec<Record>, Unread> {
    let mark = budget.used;
    let read = read_within(record, source, stats, budget);
    if read.is_err() {
        budget.used = mark;
    }
    read
}

fn read_within(
    record: Record,
    source: &Source,
    stats: &mut SourceStats,
    budget: &mut Budget,
) -> Result<Vec<Record>, Unread> {
    if !(source.deaggregate && record.data.starts_with(&KPL_MAGIC)) {
        return unpack(record, source, stats, budget);
    }
    stats.aggregates += 1;
    let users = match deaggregate(&record, budget) {
        Ok(users) => users,
        Err(reason) => return Err(Box::new((record, reason))),
    };
    let mut out = Vec::with_capacity(users.len());
    for user in users {
        match unpack(user, source, stats, budget) {
            Ok(records) => out.extend(records),
            Err(unread) => return Err(Box::new((record, unread.1))),
        }
    }
    if source.format == SourceFormat::CloudwatchLogs {
        // Each user record's log events are numbered from 0: number them
        // across the aggregate instead, so that no two events of one
        // Kinesis record share an identity (FIFO deduplication ids, S3
        // keys and dead letters are made from it).
        for (i, r) in out.iter_mut().enumerate() {
            r.sub_sequence_number = Some(u32::try_from(i).map_err(|_| {
                Box::new((
                    record.clone(),
                    "too many log events in one aggregate".to_owned(),
                ))
            })?);
        }
    }
    Ok(out)
}

/// Decompresses one (user) record and splits CloudWatch Logs data; the
/// record comes back untouched with the reason when that fails.
fn unpack(
    mut record: Record,
    source: &Source,
    stats: &mut SourceStats,
    budget: &mut Budget,
) -> Result<Vec<Record>, Unread> {
    let decompressed = match decompress(&record.data, source, budget) {
        Ok(d) => d,
        Err(reason) => return Err(Box::new((record, reason))),
    };
    stats.decompressed += usize::from(decompressed.is_some());
    match source.format {
        SourceFormat::Records => {
            if let Some(data) = decompressed {
                record.data = data;
            }
            Ok(vec![record])
        }
        SourceFormat::CloudwatchLogs => {
            let data = decompressed.as_deref().unwrap_or(&record.data);
            match cloudwatch_logs(&record, data, budget) {
                Ok(Some(events)) => Ok(events),
                Ok(None) => {
                    stats.control_messages += 1;
                    Ok(Vec::new())
                }
                Err(reason) => Err(Box::new((record, reason))),
            }
        }
    }
}

/// The record as a Lambda Kinesis record (the fields Sluice reads), for the
/// dead letter of a payload that could not be read.
fn as_lambda_sent_it(record: &Record) -> String {
    serde_json::json!({
        "eventID": format!("{}:{}", record.shard_id, record.sequence_number),
        "kinesis": {
            "partitionKey": record.partition_key,
            "sequenceNumber": record.sequence_number,
            "data": base64::engine::general_purpose::STANDARD.encode(&record.data),
            "approximateArrivalTimestamp": record.arrival_ms as f64 / 1000.0,
        }
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use md5::{Digest as _, Md5};
    use prost::Message as _;

    use super::kpl::{AggregatedRecord, UserRecord};
    use super::*;

    fn record(data: Vec<u8>) -> Record {
        Record {
            shard_id: "shardId-000000000000".into(),
            sequence_number: "100".into(),
            sub_sequence_number: None,
            partition_key: "k".into(),
            arrival_ms: 1_000,
            data,
            attributes: Vec::new(),
        }
    }

    fn batch(payloads: Vec<Vec<u8>>) -> Batch {
        let n = payloads.len();
        Batch {
            records: payloads.into_iter().map(record).collect(),
            slot: (0..n).collect(),
            ..Batch::default()
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn source(text: &str) -> Source {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn auto_decompresses_gzip_and_zstd_and_leaves_the_rest() {
        let zstd = zstd::encode_all(&b"zstd payload"[..], 3).unwrap();
        let out = expand(
            batch(vec![gzip(b"gzip payload"), zstd, b"plain".to_vec()]),
            &source("decompress = \"auto\""),
        );
        let data: Vec<&[u8]> = out.records.iter().map(|r| r.data.as_slice()).collect();
        assert_eq!(data, [&b"gzip payload"[..], b"zstd payload", b"plain"]);
        assert_eq!(out.source.decompressed, 2);
        assert_eq!(out.slot, [0, 1, 2]);
    }

    #[test]
    fn a_compression_bomb_fails_its_record_only() {
        let bomb = gzip(&vec![0u8; 10 << 20]);
        let out = expand(
            batch(vec![b"ok".to_vec(), bomb]),
            &source("decompress = \"auto\"\nmax_decompressed_bytes = 1048576"),
        );
        assert_eq!(out.records.len(), 1);
        assert_eq!(out.rejected.len(), 1);
        let r = &out.rejected[0];
        assert_eq!(r.index, 1);
        assert_eq!(r.sequence_number.as_deref(), Some("100"));
        assert!(
            r.reason.contains(
                "decompresses to more than 1048576 bytes (`source.max_decompressed_bytes`)"
            ),
            "{}",
            r.reason
        );
        // The dead letter holds the record as Lambda sent it.
        let raw: serde_json::Value = serde_json::from_str(&r.raw).unwrap();
        assert_eq!(raw["eventID"], "shardId-000000000000:100");
    }

    #[test]
    fn cloudwatch_logs_become_one_event_per_log_event_and_control_messages_are_skipped() {
        let data = br#"{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/lambda/x","logStream":"s","subscriptionFilters":["f"],"logEvents":[{"id":"1","timestamp":1700000000000,"message":"first"},{"id":"2","timestamp":1700000000001,"message":"second"}]}"#;
        let control = br#"{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1,"message":"CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."}]}"#;
        let out = expand(
            batch(vec![gzip(control), gzip(data)]),
            &source("format = \"cloudwatch-logs\""),
        );
        assert_eq!(out.empty, [0]);
        assert_eq!(out.slot, [1, 2]);
        assert_eq!(out.records[0].data, b"first");
        assert_eq!(out.records[1].sub_sequence_number, Some(1));
        assert_eq!(
            out.records[1].attributes,
            [
                ("logGroup".to_owned(), "/aws/lambda/x".to_owned()),
                ("logStream".to_owned(), "s".to_owned()),
                ("owner".to_owned(), "123456789012".to_owned()),
                ("id".to_owned(), "2".to_owned()),
                ("timestamp".to_owned(), "1700000000001".to_owned()),
            ]
        );
        assert_eq!(out.source.control_messages, 1);
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn malformed_cloudwatch_logs_fail_their_record() {
        let out = expand(
            batch(vec![gzip(b"{\"messageType\":")]),
            &source("format = \"cloudwatch-logs\""),
        );
        assert!(
            out.rejected[0]
                .reason
                .starts_with("the payload is not CloudWatch Logs subscription data"),
            "{}",
            out.rejected[0].reason
        );
    }

    #[test]
    fn what_the_aggregator_packs_deaggregates_to_the_same_records() {
        let mut agg = Aggregator::new();
        agg.push("a", b"one".to_vec());
        agg.push("b", b"two".to_vec());
        agg.push("a", b"three".to_vec());
        assert_eq!((agg.len(), agg.first_key()), (3, Some("a")));
        let size = agg.size();
        let data = agg.finish();
        assert!(agg.is_empty());
        assert!(
            data.len().abs_diff(size) < 3 * 8,
            "{} vs {size}",
            data.len()
        );
        let records = deaggregate(&record(data), &mut Budget::new(1 << 20)).unwrap();
        let got: Vec<_> = records
            .iter()
            .map(|r| {
                (
                    r.partition_key.as_str(),
                    r.data.as_slice(),
                    r.sub_sequence_number,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("a", &b"one"[..], Some(0)),
                ("b", &b"two"[..], Some(1)),
                ("a", &b"three"[..], Some(2))
            ]
        );
    }

    #[test]
    fn a_kpl_aggregate_that_does_not_verify_fails_alone() {
        let mut aggregate = KPL_MAGIC.to_vec();
        let message = AggregatedRecord {
            partition_key_table: vec!["a".into()],
            explicit_hash_key_table: vec![],
            records: vec![UserRecord {
                partition_key_index: 0,
                explicit_hash_key_index: None,
                data: b"x".to_vec(),
            }],
        }
        .encode_to_vec();
        aggregate.extend_from_slice(&message);
        aggregate.extend_from_slice(&Md5::digest(&message));
        let mut corrupt = aggregate.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        let out = expand(batch(vec![aggregate, corrupt]), &Source::default());
        assert_eq!(out.records.len(), 1);
        assert_eq!(out.records[0].sub_sequence_number, Some(0));
        assert!(
            out.rejected[0].reason.contains("whose MD5 does not match"),
            "{}",
            out.rejected[0].reason
        );
    }

    /// A KPL aggregate of `records`, each `(partition key, explicit hash key, data)`.
    fn aggregate(
        keys: &[&str],
        hash_keys: &[&str],
        records: Vec<(u64, Option<u64>, Vec<u8>)>,
    ) -> Vec<u8> {
        let message = AggregatedRecord {
            partition_key_table: keys.iter().map(|k| (*k).to_owned()).collect(),
            explicit_hash_key_table: hash_keys.iter().map(|k| (*k).to_owned()).collect(),
            records: records
                .into_iter()
                .map(|(k, h, data)| UserRecord {
                    partition_key_index: k,
                    explicit_hash_key_index: h,
                    data,
                })
                .collect(),
        }
        .encode_to_vec();
        let mut out = KPL_MAGIC.to_vec();
        out.extend_from_slice(&message);
        out.extend_from_slice(&Md5::digest(&message));
        out
    }

    #[test]
    fn one_key_shared_by_every_user_record_cannot_blow_up_the_batch() {
        // 2,000 user records under one 400 KB partition key: 800 MB if
        // each record copied it. Kinesis refuses such a key; so do we.
        let key = "k".repeat(400_000);
        let hostile = aggregate(
            &[&key],
            &[],
            (0..2000).map(|_| (0, None, vec![b'x'])).collect(),
        );
        let fine = aggregate(&["a"], &[], vec![(0, None, b"ok".to_vec())]);
        let out = expand(batch(vec![hostile, fine]), &Source::default());
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(out.rejected[0].index, 0);
        assert!(
            out.rejected[0]
                .reason
                .contains("partition key of 400000 characters (Kinesis takes 1 to 256)"),
            "{}",
            out.rejected[0].reason
        );
        assert_eq!(out.records.len(), 1);
        assert_eq!(out.records[0].data, b"ok");
        assert!(
            out.source.decoded_bytes < 4096,
            "{}",
            out.source.decoded_bytes
        );
    }

    #[test]
    fn explicit_hash_keys_are_decimal_below_2_pow_128() {
        let max = u128::MAX.to_string();
        let ok = aggregate(&["a"], &[&max], vec![(0, Some(0), b"x".to_vec())]);
        let out = expand(batch(vec![ok]), &Source::default());
        assert_eq!(out.records[0].attributes[0].1, max);
        for bad in [
            "340282366920938463463374607431768211456",
            "12a",
            "",
            "+1",
            &"9".repeat(5000),
        ] {
            let agg = aggregate(&["a"], &[bad], vec![(0, Some(0), b"x".to_vec())]);
            let out = expand(batch(vec![agg]), &Source::default());
            assert_eq!(out.rejected.len(), 1, "{bad}");
            let reason = &out.rejected[0].reason;
            assert!(reason.contains("decimal number below 2^128"), "{reason}");
            assert!(
                reason.len() < 300,
                "the reason quotes the key whole: {} bytes",
                reason.len()
            );
        }
    }

    #[test]
    fn gzip_bombs_share_one_budget_and_fail_alone() {
        // Each bomb stays under the per-payload limit; together they would
        // take 100 × 8 MiB.
        let bomb = gzip(&vec![0u8; (8 << 20) - 1024]);
        let mut payloads = vec![bomb; 100];
        payloads.push(gzip(b"small"));
        let out = expand(batch(payloads), &source("decompress = \"gzip\""));
        let budget = crate::config::raw::DEFAULT_MAX_BATCH_BYTES;
        assert!(
            out.source.decoded_bytes <= budget,
            "{}",
            out.source.decoded_bytes
        );
        assert_eq!(
            out.records.len(),
            4 + 1,
            "four bombs fit in 32 MiB, then the small one"
        );
        assert_eq!(out.rejected.len(), 96);
        assert!(
            out.rejected[0].reason.contains("`source.max_batch_bytes`"),
            "{}",
            out.rejected[0].reason
        );
        assert_eq!(out.rejected[0].sequence_number.as_deref(), Some("100"));
        assert_eq!(out.records.last().unwrap().data, b"small");
        assert_eq!(out.len(), 101);
    }

    #[test]
    fn a_zstd_frame_cannot_ask_for_a_window_past_the_payload_limit() {
        // A frame made with a 128 MiB window (long-distance matching).
        let data = vec![7u8; 3 << 20];
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        encoder.window_log(27).unwrap();
        encoder.long_distance_matching(true).unwrap();
        encoder.include_contentsize(false).unwrap();
        // Flushed in pieces: the encoder never learns the size, so it keeps
        // the window it was asked for.
        for piece in data.chunks(64 << 10) {
            encoder.write_all(piece).unwrap();
            encoder.flush().unwrap();
        }
        let frame = encoder.finish().unwrap();
        let out = expand(
            batch(vec![frame.clone()]),
            &source("decompress = \"zstd\"\nmax_decompressed_bytes = 1048576"),
        );
        assert_eq!(out.rejected.len(), 1);
        assert!(
            out.rejected[0].reason.contains("window"),
            "{}",
            out.rejected[0].reason
        );
        // Allowed to grow to 128 MiB, the payload may have that window.
        let out = expand(
            batch(vec![frame]),
            &source(
                "decompress = \"zstd\"\nmax_decompressed_bytes = 134217728\nmax_batch_bytes = 134217728",
            ),
        );
        assert_eq!(out.records[0].data, data);
    }

    fn cloudwatch(group: &str, events: usize) -> Vec<u8> {
        let events: Vec<_> = (0..events)
            .map(|i| serde_json::json!({"id": i.to_string(), "timestamp": 1, "message": "m"}))
            .collect();
        gzip(
            serde_json::json!({
                "messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": group,
                "logStream": "s", "subscriptionFilters": [], "logEvents": events
            })
            .to_string()
            .as_bytes(),
        )
    }

    #[test]
    fn a_huge_log_group_repeated_on_every_event_fails_its_record_only() {
        let hostile = cloudwatch(&"g".repeat(1 << 20), 1000);
        assert!(hostile.len() < 8192, "{}", hostile.len());
        let out = expand(
            batch(vec![hostile, cloudwatch("/aws/lambda/x", 2)]),
            &source("format = \"cloudwatch-logs\""),
        );
        assert_eq!(out.rejected.len(), 1);
        assert!(
            out.rejected[0]
                .reason
                .contains("`logGroup` has 1048576 characters"),
            "{}",
            out.rejected[0].reason
        );
        assert_eq!(out.records.len(), 2);
        // Within CloudWatch's names, the budget still bounds the copies.
        let out = expand(
            batch(vec![cloudwatch(&"g".repeat(512), 1000), cloudwatch("x", 1)]),
            &source("format = \"cloudwatch-logs\"\nmax_batch_bytes = 100000"),
        );
        assert_eq!(out.rejected.len(), 1);
        assert!(
            out.rejected[0].reason.contains("`source.max_batch_bytes`"),
            "{}",
            out.rejected[0].reason
        );
        assert!(out.source.decoded_bytes <= 100_000);
        assert_eq!(out.records.len(), 1);
    }

    #[test]
    fn log_events_in_a_kpl_aggregate_each_have_their_own_identity() {
        let agg = aggregate(
            &["a"],
            &[],
            vec![(0, None, cloudwatch("g", 2)), (0, None, cloudwatch("g", 3))],
        );
        let out = expand(batch(vec![agg]), &source("format = \"cloudwatch-logs\""));
        let ids: Vec<_> = out.records.iter().map(|r| r.sub_sequence_number).collect();
        assert_eq!(ids, [Some(0), Some(1), Some(2), Some(3), Some(4)]);
    }
}
