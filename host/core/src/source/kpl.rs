//! The KPL aggregation format: an aggregate (the magic, an
//! `AggregatedRecord` protobuf and its MD5) split into its user records,
//! checked as Kinesis checks records, and [`Aggregator`], which packs them
//! as the KPL does (`sluice put --aggregate`).

use md5::{Digest as _, Md5};
use prost::Message as _;

use super::Budget;
use crate::event::Record;

/// The four bytes a KPL aggregate starts with.
pub const KPL_MAGIC: [u8; 4] = [0xf3, 0x89, 0x9a, 0xc2];

/// The KPL aggregation format (`AggregatedRecord` in the KPL's
/// `messages.proto`, proto2).
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct AggregatedRecord {
    #[prost(string, repeated, tag = "1")]
    pub(super) partition_key_table: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub(super) explicit_hash_key_table: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    pub(super) records: Vec<UserRecord>,
}

/// One user record of an aggregate.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct UserRecord {
    #[prost(uint64, required, tag = "1")]
    pub(super) partition_key_index: u64,
    #[prost(uint64, optional, tag = "2")]
    pub(super) explicit_hash_key_index: Option<u64>,
    #[prost(bytes = "vec", required, tag = "3")]
    pub(super) data: Vec<u8>,
}

/// The partition-key hash Kinesis maps a record to a shard by: the MD5 of
/// the key, as a 128-bit big-endian number.
pub fn hash_key(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

/// Packs user records into KPL aggregates, as the Kinesis Producer Library
/// writes them: the magic, an `AggregatedRecord` protobuf (a table of
/// partition keys, then the records), and its MD5. `sluice put --aggregate`
/// uses it, so that de-aggregation can be tried end to end.
#[derive(Debug, Default)]
pub struct Aggregator {
    keys: Vec<String>,
    pub(super) records: Vec<UserRecord>,
    /// The protobuf's size so far, give or take a few bytes per record.
    bytes: usize,
}

impl Aggregator {
    /// An empty aggregate.
    pub fn new() -> Aggregator {
        Aggregator::default()
    }

    /// The aggregate's size if `data` under `partition_key` were added: what
    /// a caller checks against Kinesis's 1 MiB per record.
    pub fn size_with(&self, partition_key: &str, data: &[u8]) -> usize {
        self.size() + partition_key.len() + data.len() + 16
    }

    /// The size of the finished aggregate (magic and MD5 included), within
    /// a few bytes per record.
    pub fn size(&self) -> usize {
        KPL_MAGIC.len() + self.bytes + 16
    }

    /// The number of user records in it.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The partition key of its first record: the aggregate's own key.
    pub fn first_key(&self) -> Option<&str> {
        self.records
            .first()
            .map(|r| self.keys[r.partition_key_index as usize].as_str())
    }

    /// Adds one user record.
    pub fn push(&mut self, partition_key: &str, data: Vec<u8>) {
        let index = match self.keys.iter().position(|k| k == partition_key) {
            Some(i) => i,
            None => {
                self.keys.push(partition_key.to_owned());
                self.bytes += partition_key.len() + 4;
                self.keys.len() - 1
            }
        };
        self.bytes += data.len() + 12;
        self.records.push(UserRecord {
            partition_key_index: index as u64,
            explicit_hash_key_index: None,
            data,
        });
    }

    /// The aggregate's bytes; the aggregator is empty again.
    pub fn finish(&mut self) -> Vec<u8> {
        let message = AggregatedRecord {
            partition_key_table: std::mem::take(&mut self.keys),
            explicit_hash_key_table: Vec::new(),
            records: std::mem::take(&mut self.records),
        }
        .encode_to_vec();
        self.bytes = 0;
        let mut out = Vec::with_capacity(KPL_MAGIC.len() + message.len() + 16);
        out.extend_from_slice(&KPL_MAGIC);
        out.extend_from_slice(&message);
        out.extend_from_slice(&Md5::digest(&message));
        out
    }
}

/// The most characters Kinesis takes in a partition key.
pub const MAX_PARTITION_KEY_CHARS: usize = 256;

/// Checks a KPL partition key as Kinesis checks one: 1 to 256 characters.
fn check_partition_key(key: &str) -> Result<(), String> {
    let chars = key.chars().count();
    if !(1..=MAX_PARTITION_KEY_CHARS).contains(&chars) {
        return Err(format!(
            "a KPL aggregate with a partition key of {chars} characters (Kinesis takes 1 to \
             {MAX_PARTITION_KEY_CHARS})"
        ));
    }
    Ok(())
}

/// Checks a KPL explicit hash key as Kinesis checks one: a decimal number
/// below 2^128.
fn check_explicit_hash_key(key: &str) -> Result<(), String> {
    let decimal = !key.is_empty() && key.len() <= 39 && key.bytes().all(|b| b.is_ascii_digit());
    if !decimal || key.parse::<u128>().is_err() {
        let shown: String = key.chars().take(48).collect();
        let more = if shown.len() < key.len() { "…" } else { "" };
        return Err(format!(
            "a KPL aggregate with explicit hash key `{shown}{more}` ({} bytes): Kinesis takes a \
             decimal number below 2^128",
            key.len()
        ));
    }
    Ok(())
}

/// Splits a KPL aggregate into its user records, within `budget`.
pub(super) fn deaggregate(record: &Record, budget: &mut Budget) -> Result<Vec<Record>, String> {
    let body = &record.data[KPL_MAGIC.len()..];
    let Some(split) = body.len().checked_sub(16) else {
        return Err(format!(
            "a KPL aggregate (it starts with f3 89 9a c2) too short for its MD5 trailer: {} bytes",
            record.data.len()
        ));
    };
    let (message, digest) = body.split_at(split);
    let actual = Md5::digest(message);
    if actual.as_slice() != digest {
        return Err(format!(
            "a KPL aggregate (it starts with f3 89 9a c2) whose MD5 does not match: the trailer says \
             {}, the protobuf hashes to {}",
            crate::hex(digest),
            crate::hex(&actual)
        ));
    }
    let aggregate = AggregatedRecord::decode(message)
        .map_err(|e| format!("a KPL aggregate whose protobuf does not decode: {e}"))?;
    for key in &aggregate.partition_key_table {
        check_partition_key(key)?;
    }
    for key in &aggregate.explicit_hash_key_table {
        check_explicit_hash_key(key)?;
    }
    // What decoding the protobuf copied: at most the aggregate's size.
    budget.take(message.len(), "de-aggregating it")?;
    let lineage = record.shard_id.len() + record.sequence_number.len();
    let mut cost = 0usize;
    let mut users = Vec::with_capacity(aggregate.records.len());
    for (i, user) in aggregate.records.iter().enumerate() {
        let key = usize::try_from(user.partition_key_index)
            .ok()
            .and_then(|k| aggregate.partition_key_table.get(k))
            .ok_or_else(|| {
                format!(
                    "a KPL aggregate whose user record {i} names partition key {} of a table of {}",
                    user.partition_key_index,
                    aggregate.partition_key_table.len()
                )
            })?;
        let hash_key = match user.explicit_hash_key_index {
            None => None,
            Some(h) => Some(
                usize::try_from(h)
                    .ok()
                    .and_then(|k| aggregate.explicit_hash_key_table.get(k))
                    .ok_or_else(|| {
                        format!(
                            "a KPL aggregate whose user record {i} names explicit hash key {h} of a table of {}",
                            aggregate.explicit_hash_key_table.len()
                        )
                    })?,
            ),
        };
        let sub = u32::try_from(i).map_err(|_| "too many user records".to_owned())?;
        cost += lineage + key.len() + hash_key.map_or(0, |h| h.len() + EXPLICIT_HASH_KEY.len());
        users.push((key, hash_key, sub));
    }
    // The keys and lineage each user record carries, before any is copied.
    budget.take(cost, "de-aggregating it")?;
    Ok(aggregate
        .records
        .into_iter()
        .zip(users)
        .map(|(user, (key, hash_key, sub))| Record {
            shard_id: record.shard_id.clone(),
            sequence_number: record.sequence_number.clone(),
            sub_sequence_number: Some(sub),
            partition_key: key.clone(),
            arrival_ms: record.arrival_ms,
            data: user.data,
            attributes: hash_key
                .map(|h| vec![(EXPLICIT_HASH_KEY.to_owned(), h.clone())])
                .unwrap_or_default(),
        })
        .collect())
}

/// The attribute a KPL user record's explicit hash key is kept in.
const EXPLICIT_HASH_KEY: &str = "kinesis.explicit-hash-key";
