//! `sluice put`: lines in, Kinesis records out, with `PutRecords`.
//!
//! - Requests hold at most 500 records and 5 MiB (payloads plus partition
//!   keys); a record over 1 MiB is refused, naming its line.
//! - Only the entries a request did not take are sent again, with
//!   exponential backoff, before anything after them is sent; throttling of
//!   the whole request is retried the same way.
//! - The partition key comes from a field of each JSON line
//!   (`--partition-key-field user.id`), a template
//!   (`--partition-key 'user-{user.id}'`, or a fixed key) or is random.
//! - `--aggregate` packs records in KPL aggregates, one stream of aggregates
//!   per shard, as the Kinesis Producer Library does: each record goes to
//!   the shard its own partition key hashes to (the aggregate's explicit
//!   hash key), so per-key order holds.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use sluice_core::source::Aggregator;

use super::{Shard, describe, hash_key, is_throttling};

/// Most records in one `PutRecords` request.
pub const MAX_REQUEST_RECORDS: usize = 500;
/// Most bytes (payloads and partition keys) in one `PutRecords` request.
pub const MAX_REQUEST_BYTES: usize = 5 << 20;
/// Most bytes (payload and partition key) in one Kinesis record.
pub const MAX_RECORD_BYTES: usize = 1 << 20;
/// Attempts per entry before `put` gives up.
pub const MAX_ATTEMPTS: u32 = 10;

/// Where each record's partition key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionKey {
    /// A field of the JSON line, by dotted path (`user.id`).
    Field(String),
    /// A template: `{dotted.path}` placeholders filled from the JSON line;
    /// without placeholders, one fixed key.
    Template(String),
    /// A random key per record (records spread over every shard).
    Random,
}

/// What `sluice put` does.
#[derive(Debug, Clone)]
pub struct PutOptions {
    /// The stream's name.
    pub stream: String,
    /// Send each line as it is, without checking that it is JSON.
    pub raw: bool,
    /// Where partition keys come from.
    pub partition_key: PartitionKey,
    /// Pack records in KPL aggregates.
    pub aggregate: bool,
    /// Print a progress line every few seconds (to stderr).
    pub progress: bool,
}

/// What `sluice put` did.
#[derive(Debug, Clone, Default)]
pub struct PutReport {
    /// Lines sent (user records).
    pub records: usize,
    /// Kinesis records written (fewer than `records` when aggregating).
    pub kinesis_records: usize,
    /// `PutRecords` requests made, resends included.
    pub requests: usize,
    /// Entries sent again after a request did not take them.
    pub resent: usize,
    /// User records per shard.
    pub per_shard: BTreeMap<String, usize>,
    /// Time taken.
    pub elapsed: Duration,
}

/// One entry of a request: a Kinesis record and how many lines it holds.
struct Entry {
    data: Vec<u8>,
    partition_key: String,
    explicit_hash_key: Option<String>,
    records: usize,
}

impl Entry {
    fn bytes(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

/// Sends entries in requests within Kinesis's limits.
struct Sender<'a> {
    client: &'a Client,
    stream: &'a str,
    pending: Vec<Entry>,
    pending_bytes: usize,
    report: PutReport,
    started: Instant,
    last_progress: Instant,
    progress: bool,
}

impl Sender<'_> {
    async fn push(&mut self, entry: Entry) -> Result<(), String> {
        if self.pending.len() == MAX_REQUEST_RECORDS
            || self.pending_bytes + entry.bytes() > MAX_REQUEST_BYTES
        {
            self.flush().await?;
        }
        self.pending_bytes += entry.bytes();
        self.pending.push(entry);
        Ok(())
    }

    /// Sends what is pending until every entry is taken.
    async fn flush(&mut self) -> Result<(), String> {
        let mut entries = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let mut attempt = 0u32;
        while !entries.is_empty() {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            attempt += 1;
            let request: Vec<PutRecordsRequestEntry> = entries
                .iter()
                .map(|e| {
                    PutRecordsRequestEntry::builder()
                        .data(Blob::new(e.data.clone()))
                        .partition_key(&e.partition_key)
                        .set_explicit_hash_key(e.explicit_hash_key.clone())
                        .build()
                        .map_err(|e| format!("building a PutRecords entry: {e}"))
                })
                .collect::<Result<_, _>>()?;
            self.report.requests += 1;
            let sent = self
                .client
                .put_records()
                .stream_name(self.stream)
                .set_records(Some(request))
                .send()
                .await;
            let out = match sent {
                Ok(out) => out,
                Err(e) if is_throttling(&e) && attempt < MAX_ATTEMPTS => continue,
                Err(e) => {
                    return Err(describe(
                        &e,
                        &format!("writing to stream `{}` (PutRecords)", self.stream),
                    ));
                }
            };
            let mut failed = Vec::new();
            let mut last_error = String::new();
            for (entry, result) in entries.into_iter().zip(out.records()) {
                match result.error_code() {
                    Some(code) => {
                        last_error =
                            format!("{code}: {}", result.error_message().unwrap_or("no message"));
                        failed.push(entry);
                    }
                    None => {
                        let shard = result.shard_id().unwrap_or("unknown-shard");
                        *self.report.per_shard.entry(shard.to_owned()).or_default() +=
                            entry.records;
                        self.report.records += entry.records;
                        self.report.kinesis_records += 1;
                    }
                }
            }
            if !failed.is_empty() {
                if attempt >= MAX_ATTEMPTS {
                    return Err(format!(
                        "stream `{}` did not take {} records after {MAX_ATTEMPTS} attempts; last error: {last_error}",
                        self.stream,
                        failed.len()
                    ));
                }
                tracing::debug!(entries = failed.len(), error = %last_error, "PutRecords did not take every entry; sending those again");
                self.report.resent += failed.len();
            }
            entries = failed;
        }
        if self.progress && self.last_progress.elapsed() >= Duration::from_secs(2) {
            self.last_progress = Instant::now();
            let secs = self.started.elapsed().as_secs_f64();
            eprintln!(
                "put: {} records in {secs:.1} s ({:.0} records/s)",
                self.report.records,
                self.report.records as f64 / secs.max(1e-9)
            );
        }
        Ok(())
    }
}

/// Exponential backoff with a cap: 100 ms, 200 ms, … 5 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.min(6)).min(5_000))
}

/// Reads `input` line by line and writes every non-empty line to the stream.
/// Errors name the line.
pub async fn put(
    client: &Client,
    options: &PutOptions,
    input: impl BufRead,
) -> Result<PutReport, String> {
    let shards: Vec<Shard> = if options.aggregate {
        super::list_shards(client, &options.stream)
            .await?
            .into_iter()
            .filter(|s| !s.closed)
            .collect()
    } else {
        // Fail early, and clearly, on a stream that is not there.
        super::list_shards(client, &options.stream).await?;
        Vec::new()
    };
    let mut sender = Sender {
        client,
        stream: &options.stream,
        pending: Vec::new(),
        pending_bytes: 0,
        report: PutReport::default(),
        started: Instant::now(),
        last_progress: Instant::now(),
        progress: options.progress,
    };
    let mut aggregates: Vec<Aggregator> = shards.iter().map(|_| Aggregator::new()).collect();
    let mut random = RandomKeys::new();
    for (i, line) in input.split(b'\n').enumerate() {
        let n = i + 1;
        let mut line = line.map_err(|e| format!("reading line {n}: {e}"))?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let key = partition_key(&options.partition_key, options.raw, &line, &mut random)
            .map_err(|m| format!("line {n}: {m}"))?;
        if key.is_empty() || key.chars().count() > 256 {
            return Err(format!(
                "line {n}: partition key `{key}` must be 1 to 256 characters"
            ));
        }
        if line.len() + key.len() > MAX_RECORD_BYTES {
            return Err(format!(
                "line {n}: {} bytes with its partition key, over Kinesis's 1 MiB per record",
                line.len() + key.len()
            ));
        }
        if options.aggregate {
            let hash = hash_key(&key);
            let s = shards
                .iter()
                .position(|s| (s.starting_hash_key..=s.ending_hash_key).contains(&hash))
                .ok_or_else(|| format!("line {n}: no open shard takes partition key `{key}`"))?;
            let agg = &mut aggregates[s];
            if !agg.is_empty() && agg.size_with(&key, &line) > MAX_RECORD_BYTES - 256 {
                sender.push(aggregate_entry(agg, &shards[s])).await?;
            }
            agg.push(&key, line);
        } else {
            sender
                .push(Entry {
                    data: line,
                    partition_key: key,
                    explicit_hash_key: None,
                    records: 1,
                })
                .await?;
        }
    }
    for (agg, shard) in aggregates.iter_mut().zip(&shards) {
        if !agg.is_empty() {
            sender.push(aggregate_entry(agg, shard)).await?;
        }
    }
    sender.flush().await?;
    let mut report = sender.report;
    report.elapsed = sender.started.elapsed();
    Ok(report)
}

/// The aggregate so far as one entry for `shard` (its explicit hash key puts
/// it there); the aggregator is empty again.
fn aggregate_entry(agg: &mut Aggregator, shard: &Shard) -> Entry {
    let records = agg.len();
    let partition_key = agg.first_key().unwrap_or("aggregate").to_owned();
    Entry {
        data: agg.finish(),
        partition_key,
        explicit_hash_key: Some(shard.starting_hash_key.to_string()),
        records,
    }
}

/// The partition key of one line.
fn partition_key(
    how: &PartitionKey,
    raw: bool,
    line: &[u8],
    random: &mut RandomKeys,
) -> Result<String, String> {
    let json = || -> Result<serde_json::Value, String> {
        serde_json::from_slice(line).map_err(|e| format!("not JSON ({e})"))
    };
    match how {
        PartitionKey::Random => {
            if !raw {
                json()?;
            }
            Ok(random.next())
        }
        PartitionKey::Field(path) => field(&json()?, path),
        PartitionKey::Template(template) if !template.contains('{') => {
            if !raw {
                json()?;
            }
            Ok(template.clone())
        }
        PartitionKey::Template(template) => {
            let value = json()?;
            let mut out = String::new();
            let mut rest = template.as_str();
            while let Some(open) = rest.find('{') {
                out.push_str(&rest[..open]);
                let close = rest[open..]
                    .find('}')
                    .ok_or_else(|| format!("template `{template}` has an unclosed `{{`"))?;
                out.push_str(&field(&value, &rest[open + 1..open + close])?);
                rest = &rest[open + close + 1..];
            }
            out.push_str(rest);
            Ok(out)
        }
    }
}

/// The value at dotted `path` in `value`, as text.
fn field(value: &serde_json::Value, path: &str) -> Result<String, String> {
    let mut v = value;
    for part in path.split('.') {
        v = v
            .get(part)
            .ok_or_else(|| format!("has no field `{path}` for the partition key"))?;
    }
    Ok(match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => {
            return Err(format!("field `{path}` is null: no partition key"));
        }
        other => other.to_string(),
    })
}

/// Random partition keys: 32 hex digits from a SHA-256 counter seeded with
/// the time and process.
struct RandomKeys {
    seed: [u8; 32],
    n: u64,
}

impl RandomKeys {
    fn new() -> RandomKeys {
        use sha2::Digest as _;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let seed = sha2::Sha256::digest(format!("{nanos}:{}", std::process::id())).into();
        RandomKeys { seed, n: 0 }
    }

    fn next(&mut self) -> String {
        use sha2::Digest as _;
        self.n += 1;
        let mut h = sha2::Sha256::new();
        h.update(self.seed);
        h.update(self.n.to_le_bytes());
        host::hex(&h.finalize()[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_keys_come_from_fields_templates_or_chance() {
        let line = br#"{"user":{"id":42,"name":"ada"},"type":"click"}"#;
        let mut r = RandomKeys::new();
        let key = |how: PartitionKey, r: &mut RandomKeys| partition_key(&how, false, line, r);
        assert_eq!(
            key(PartitionKey::Field("user.id".into()), &mut r).unwrap(),
            "42"
        );
        assert_eq!(
            key(PartitionKey::Template("{type}-{user.name}".into()), &mut r).unwrap(),
            "click-ada"
        );
        assert_eq!(
            key(PartitionKey::Template("fixed".into()), &mut r).unwrap(),
            "fixed"
        );
        let (a, b) = (
            key(PartitionKey::Random, &mut r).unwrap(),
            key(PartitionKey::Random, &mut r).unwrap(),
        );
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        let e = key(PartitionKey::Field("user.email".into()), &mut r).unwrap_err();
        assert!(e.contains("no field `user.email`"), "{e}");
        let e = partition_key(&PartitionKey::Random, false, b"not json", &mut r).unwrap_err();
        assert!(e.contains("not JSON"), "{e}");
        assert!(partition_key(&PartitionKey::Random, true, b"not json", &mut r).is_ok());
    }

    #[test]
    fn backoff_grows_to_a_cap() {
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(30), Duration::from_secs(5));
    }
}
