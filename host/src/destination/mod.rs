//! Destinations: where routed outputs are delivered.
//!
//! Each kind is one module behind the [`Sink`] trait: an
//! [`sqs::SqsDestination`] queue, an [`s3::S3Destination`] bucket, a local
//! [`file::FileDestination`], [`stdout::StdoutDestination`], or a
//! [`memory::MemoryDestination`] for tests and dry runs. A sink only turns
//! outputs into requests within its limits ([`Sink::plan`]) and sends one
//! request, saying what became of each entry ([`Sink::send`]); the
//! dispatcher (`crate::dispatch`) owns everything they share: requests in
//! flight, retries with backoff, the deadline and order. [`Destination::open`]
//! is the one registry that makes a sink from a validated plan: adding a
//! kind is its module and one line there (and its config module and one
//! line in `sluice_core::config::destination`). [`encode`] turns one output
//! into one line in the destination's [`Format`].

pub mod batch;
pub mod claim_check;
pub mod dynamodb;
pub mod eventbridge;
pub mod file;
pub mod firehose;
pub mod kinesis;
pub mod memory;
pub mod s3;
pub mod sns;
pub mod sqs;
pub mod stdout;

use std::future::Future;
use std::pin::Pin;

use base64::Engine as _;
use serde::ser::{SerializeMap, Serializer};

use crate::aws::Aws;
use crate::config::{DestinationKind, DestinationPlan, Format};
use crate::outcome::Routed;

/// A boxed future a sink returns (the trait is object-safe).
pub type SinkFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One request a sink will make: which outputs it carries, and what orders
/// it against the others.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// Positions in the outputs given to [`Sink::plan`], in order.
    pub entries: Vec<usize>,
    /// Per entry, the key its order is kept by (a FIFO message group, a
    /// shard and partition key; a hash of it). An entry that fails holds
    /// back every later entry of its key.
    pub keys: Vec<u64>,
    /// Requests of one lane go one after another, in plan order; `None`:
    /// independent of every other request.
    pub lane: Option<u64>,
    /// Per entry: the destination already took it and it is sent again
    /// after an earlier entry of its key that failed (so that its last copy
    /// stays in order). FIFO queues give such a resend a fresh
    /// deduplication id. Empty: none is.
    pub resent: Vec<bool>,
    /// 1 for the first send, then one more per resend of failed entries.
    pub attempt: u32,
}

/// What a destination made of one entry of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Delivered.
    Taken,
    /// Not delivered, and worth sending again now (a throttled or failed
    /// entry the service reported without the sender's fault): the
    /// dispatcher resends it with backoff.
    Retry(String),
    /// Not delivered; not resent now (the request failed after the SDK's
    /// own retries, or the answer is unclear): its record is retried.
    Failed(String),
    /// Refused for good: content the destination refuses every time. Its
    /// record fails with class `contract` under its policy.
    Refused(String),
}

/// An output a destination did not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendFailure {
    /// Its position in the slice given to the dispatcher.
    pub output: usize,
    /// Why, naming the resource (queue URL, object key, file).
    pub reason: String,
    /// The destination refuses this content every time (SQS's
    /// `SenderFault = true`): the record fails with class `contract` under
    /// its policy instead of being retried.
    pub for_good: bool,
}

/// A destination could not be opened or written.
#[derive(Debug, thiserror::Error)]
#[error("destination `{destination}`: {message}")]
pub struct DestinationError {
    /// The destination's name.
    pub destination: String,
    /// What went wrong.
    pub message: String,
}

/// What every kind of destination does: plan requests within its limits
/// and send one, classifying each entry.
pub trait Sink: Send + Sync + std::fmt::Debug {
    /// The destination's name.
    fn name(&self) -> &str;

    /// Where it writes, for summaries: a path, `stdout`, a queue URL.
    fn describe(&self) -> String;

    /// Why it would refuse `output` every time it is sent (it breaks the
    /// destination's rules), or `None`. Dispatch asks before sending, so
    /// such a record fails under its policy (class `contract`) instead of
    /// being retried forever.
    fn refusal(&self, _output: &Routed) -> Option<String> {
        None
    }

    /// Sets the X-Ray trace header of the invocation being served, for the
    /// kinds that can carry it.
    fn set_trace_header(&mut self, _header: Option<&str>) {}

    /// Reads what the service says of the destination's limits, at cold
    /// start.
    fn read_limits(&mut self) -> SinkFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    /// The most requests it may have in flight at once.
    fn max_in_flight(&self) -> usize {
        1
    }

    /// Splits `outputs` (in input order) into requests within the
    /// destination's limits.
    fn plan(&self, outputs: &[&Routed]) -> Vec<Request>;

    /// Sends one request; one verdict per entry, in the request's order.
    fn send<'a>(
        &'a self,
        outputs: &'a [&'a Routed],
        request: &'a Request,
    ) -> SinkFuture<'a, Vec<Verdict>>;
}

/// A destination, ready to deliver: one [`Sink`] of any kind.
#[derive(Debug)]
pub struct Destination(Box<dyn Sink>);

impl Destination {
    /// Builds the destination `plan` describes (nothing is sent or written
    /// yet): the registry of kinds, one line each. AWS kinds need `aws`.
    pub fn open(
        plan: &DestinationPlan,
        aws: Option<&Aws>,
    ) -> Result<Destination, DestinationError> {
        let aws = || {
            aws.ok_or_else(|| DestinationError {
                destination: plan.name.clone(),
                message: "an AWS destination, but no AWS clients were set up".into(),
            })
        };
        let name = &plan.name;
        Ok(Destination(match &plan.kind {
            DestinationKind::Sqs(p) => {
                let aws = aws()?;
                Box::new(sqs::SqsDestination::new(
                    name,
                    p,
                    aws.sqs.clone(),
                    aws.s3.clone(),
                ))
            }
            DestinationKind::S3(p) => Box::new(s3::S3Destination::new(name, p, aws()?.s3.clone())),
            DestinationKind::File(p) => Box::new(file::FileDestination::new(name, p)),
            DestinationKind::Stdout(p) => Box::new(stdout::StdoutDestination::new(name, p)),
            DestinationKind::Kinesis(p) => Box::new(kinesis::KinesisDestination::new(
                name,
                p,
                aws_sdk_kinesis::Client::new(&aws()?.shared),
            )),
            DestinationKind::Firehose(p) => Box::new(firehose::FirehoseDestination::new(
                name,
                p,
                aws_sdk_firehose::Client::new(&aws()?.shared),
            )),
            DestinationKind::EventBridge(p) => Box::new(eventbridge::EventBridgeDestination::new(
                name,
                p,
                aws_sdk_eventbridge::Client::new(&aws()?.shared),
            )),
            DestinationKind::Sns(p) => Box::new(sns::SnsDestination::new(
                name,
                p,
                aws_sdk_sns::Client::new(&aws()?.shared),
                aws()?.s3.clone(),
            )),
            DestinationKind::DynamoDb(p) => Box::new(dynamodb::DynamoDbDestination::new(
                name,
                p,
                aws_sdk_dynamodb::Client::new(&aws()?.shared),
            )),
        }))
    }

    /// The sink behind it.
    pub fn sink(&self) -> &dyn Sink {
        &*self.0
    }

    /// The destination's name.
    pub fn name(&self) -> &str {
        self.0.name()
    }

    /// Where it writes, for summaries.
    pub fn describe(&self) -> String {
        self.0.describe()
    }

    /// See [`Sink::refusal`].
    pub fn refusal(&self, output: &Routed) -> Option<String> {
        self.0.refusal(output)
    }

    /// See [`Sink::set_trace_header`].
    pub fn set_trace_header(&mut self, header: Option<&str>) {
        self.0.set_trace_header(header);
    }

    /// See [`Sink::read_limits`].
    pub async fn read_limits(&mut self) {
        self.0.read_limits().await;
    }
}

impl From<memory::MemoryDestination> for Destination {
    fn from(m: memory::MemoryDestination) -> Destination {
        Destination(Box::new(m))
    }
}

/// The requests of a destination that writes everything at once, in
/// order: one request of every output.
pub fn one_request(outputs: &[&Routed]) -> Vec<Request> {
    if outputs.is_empty() {
        return Vec::new();
    }
    vec![Request {
        entries: (0..outputs.len()).collect(),
        keys: vec![0; outputs.len()],
        lane: Some(0),
        resent: Vec::new(),
        attempt: 1,
    }]
}

/// The value of a destination template's placeholder for `r`:
/// `partition_key`, `shard`, or `attr:NAME` (the output attribute `NAME`,
/// empty when the output has none).
pub fn placeholder<'a>(r: &'a Routed, name: &str) -> &'a str {
    let rec = &r.record;
    match name {
        "shard" => &rec.shard_id,
        "partition_key" => &rec.partition_key,
        _ => name
            .strip_prefix("attr:")
            .and_then(|a| rec.attributes.iter().find(|(k, _)| k == a))
            .map_or("", |(_, v)| v),
    }
}

/// Splits `outputs` into requests in input order for a destination that
/// keeps no order (Firehose, EventBridge): at most `max_entries` entries
/// and `max_bytes` bytes (each output's `size`) per request; every entry is
/// its own key and requests are independent, so a failed entry holds
/// nothing back.
pub fn pack_unordered(
    outputs: &[&Routed],
    max_entries: usize,
    max_bytes: usize,
    mut size: impl FnMut(&Routed) -> usize,
) -> Vec<Request> {
    let mut done = Vec::new();
    let mut request = Request {
        attempt: 1,
        ..Request::default()
    };
    let mut used = 0;
    for (i, r) in outputs.iter().enumerate() {
        let bytes = size(r);
        if !request.entries.is_empty()
            && (request.entries.len() == max_entries || used + bytes > max_bytes)
        {
            done.push(std::mem::replace(
                &mut request,
                Request {
                    attempt: 1,
                    ..Request::default()
                },
            ));
            used = 0;
        }
        request.entries.push(i);
        request.keys.push(i as u64);
        used += bytes;
    }
    if !request.entries.is_empty() {
        done.push(request);
    }
    done
}

/// The output encoded in `format`, without the line's trailing newline:
/// what a destination that sends one output per entry sends.
pub fn encode_one(format: Format, r: &Routed, buf: &mut Vec<u8>) {
    buf.clear();
    encode(format, r, buf);
    buf.pop();
}

/// A request's entries as one batch call carries them: the ones a sink
/// could build, with their positions in the request, and a verdict per
/// position (an entry that cannot be built is refused for good).
pub struct Batch<E> {
    /// One per entry of the request.
    pub verdicts: Vec<Verdict>,
    /// What the call sends, in order.
    pub entries: Vec<E>,
    /// Per entry sent, its position in the request.
    pub positions: Vec<usize>,
}

impl<E> Batch<E> {
    /// Builds each entry of `request` from its output's position in
    /// `outputs` with `build`; one it cannot build is [`Verdict::Refused`].
    pub fn build(request: &Request, mut build: impl FnMut(usize) -> Result<E, String>) -> Self {
        let mut batch = Batch {
            verdicts: vec![Verdict::Taken; request.entries.len()],
            entries: Vec::with_capacity(request.entries.len()),
            positions: Vec::with_capacity(request.entries.len()),
        };
        for (pos, &i) in request.entries.iter().enumerate() {
            match build(i) {
                Ok(entry) => {
                    batch.entries.push(entry);
                    batch.positions.push(pos);
                }
                Err(reason) => batch.verdicts[pos] = Verdict::Refused(reason),
            }
        }
        batch
    }

    /// Every entry sent is not delivered: the call failed (after the SDK's
    /// own retries) for `reason`.
    pub fn failed(mut self, reason: String) -> Vec<Verdict> {
        for &pos in &self.positions {
            self.verdicts[pos] = Verdict::Failed(reason.clone());
        }
        self.verdicts
    }

    /// The verdicts of a call that answers one result per entry, in the
    /// order sent (`PutRecords`, `PutRecordBatch`, `PutEvents`): `judge`
    /// reads each; an entry without a result is not delivered (`missing`
    /// says why).
    pub fn answered<R>(
        mut self,
        results: &[R],
        mut judge: impl FnMut(&R) -> Verdict,
        missing: &str,
    ) -> Vec<Verdict> {
        for (n, &pos) in self.positions.iter().enumerate() {
            self.verdicts[pos] = results
                .get(n)
                .map_or_else(|| Verdict::Failed(missing.to_owned()), &mut judge);
        }
        self.verdicts
    }
}

/// A hash of an order key (FIFO group, shard and partition key).
pub fn key_hash(parts: &[&str]) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

/// Packs `outputs` into requests by lanes: each output goes to the lane of
/// its order key (`key`), so that every key's outputs stay in one lane, in
/// order, and lanes go in parallel; a lane's request is closed at
/// `max_entries` entries or when the next entry's `size` would take it past
/// `max_bytes`. Keys are spread over the `lanes` lanes by their number of
/// outputs, largest first, each to the least loaded lane, so that the
/// longest lane (what bounds the time with every lane in flight) is as short
/// as it can be. Requests come out in the order they were closed.
pub fn pack_by_key(
    outputs: &[&Routed],
    lanes: usize,
    max_entries: usize,
    max_bytes: usize,
    mut key: impl FnMut(&Routed) -> u64,
    mut size: impl FnMut(&Routed) -> usize,
) -> Vec<Request> {
    let lanes = lanes.max(1);
    let keys: Vec<u64> = outputs.iter().map(|r| key(r)).collect();
    // Outputs per key, keys in order of first appearance.
    let mut count: std::collections::HashMap<u64, usize> = Default::default();
    let mut order: Vec<u64> = Vec::new();
    for &k in &keys {
        let n = count.entry(k).or_insert(0);
        if *n == 0 {
            order.push(k);
        }
        *n += 1;
    }
    order.sort_by_key(|k| std::cmp::Reverse(count[k]));
    let mut load = vec![0usize; lanes];
    let lane_of: std::collections::HashMap<u64, usize> = order
        .iter()
        .map(|k| {
            let lane = (0..lanes).min_by_key(|&l| load[l]).unwrap_or(0);
            load[lane] += count[k];
            (*k, lane)
        })
        .collect();
    let mut open: Vec<(Request, usize)> = (0..lanes)
        .map(|lane| {
            (
                Request {
                    lane: Some(lane as u64),
                    attempt: 1,
                    ..Request::default()
                },
                0,
            )
        })
        .collect();
    let mut done = Vec::new();
    for (i, (r, &k)) in outputs.iter().zip(&keys).enumerate() {
        let bytes = size(r);
        let (request, used) = &mut open[lane_of[&k]];
        if !request.entries.is_empty()
            && (request.entries.len() == max_entries || *used + bytes > max_bytes)
        {
            let lane = request.lane;
            done.push(std::mem::replace(
                request,
                Request {
                    lane,
                    attempt: 1,
                    ..Request::default()
                },
            ));
            *used = 0;
        }
        request.entries.push(i);
        request.keys.push(k);
        *used += bytes;
    }
    done.extend(
        open.into_iter()
            .map(|(r, _)| r)
            .filter(|r| !r.entries.is_empty()),
    );
    done
}

/// The outputs `request` carries, each one line in `format`: what a
/// destination that writes a request whole (a file, stdout, an S3 object)
/// writes.
pub fn encode_request(format: Format, outputs: &[&Routed], request: &Request) -> Vec<u8> {
    let mut buf = Vec::with_capacity(
        request
            .entries
            .iter()
            .map(|&i| outputs[i].record.data.len() + 1)
            .sum(),
    );
    for &i in &request.entries {
        encode(format, outputs[i], &mut buf);
    }
    buf
}

/// Appends one output to `buf` as one line (ending in `\n`) in `format`.
///
/// `raw` writes the payload bytes as they are; `envelope` writes a JSON
/// object: `shard_id`, `sequence_number`, `sub_sequence_number` (when set),
/// `output_index`, `partition_key`, `arrival_ms` (when Kinesis took the
/// record, ms since the Unix epoch), `attributes` (an object, when any: the
/// plugins' attributes, then Sluice's own, such as a dead letter's class) and
/// `data` (the payload, when it is JSON) or `data_base64` (when it is not).
pub fn encode(format: Format, routed: &Routed, buf: &mut Vec<u8>) {
    match format {
        Format::Raw => buf.extend_from_slice(&routed.record.data),
        Format::Envelope => write_envelope(routed, buf),
    }
    buf.push(b'\n');
}

fn write_envelope(routed: &Routed, buf: &mut Vec<u8>) {
    struct Attributes<'a>(&'a [(String, String)], &'a [(&'static str, String)]);
    impl serde::Serialize for Attributes<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(Some(self.0.len() + self.1.len()))?;
            for (k, v) in self.0 {
                map.serialize_entry(k, v)?;
            }
            for (k, v) in self.1 {
                map.serialize_entry(k, v)?;
            }
            map.end()
        }
    }
    let r = &routed.record;
    let mut ser = serde_json::Serializer::new(&mut *buf);
    // Writing into a Vec cannot fail, and every key is a string.
    let result = (|| {
        let mut map = ser.serialize_map(None)?;
        map.serialize_entry("shard_id", &r.shard_id)?;
        map.serialize_entry("sequence_number", &r.sequence_number)?;
        if let Some(sub) = r.sub_sequence_number {
            map.serialize_entry("sub_sequence_number", &sub)?;
        }
        map.serialize_entry("output_index", &routed.output_index)?;
        map.serialize_entry("partition_key", &r.partition_key)?;
        map.serialize_entry("arrival_ms", &r.arrival_ms)?;
        if !r.attributes.is_empty() || !routed.host_attributes.is_empty() {
            map.serialize_entry(
                "attributes",
                &Attributes(&r.attributes, &routed.host_attributes),
            )?;
        }
        match serde_json::from_slice::<&serde_json::value::RawValue>(&r.data) {
            Ok(json) => map.serialize_entry("data", json)?,
            Err(_) => map.serialize_entry(
                "data_base64",
                &base64::engine::general_purpose::STANDARD.encode(&r.data),
            )?,
        }
        map.end()
    })();
    debug_assert!(result.is_ok(), "serializing an envelope into a Vec failed");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Record;

    fn routed(data: &[u8]) -> Routed {
        Routed {
            record: Record {
                shard_id: "shardId-000000000000".into(),
                sequence_number: "42".into(),
                sub_sequence_number: None,
                partition_key: "pk".into(),
                arrival_ms: 0,
                data: data.to_vec(),
                attributes: vec![("k".into(), "v".into())],
            },
            slot: 0,
            output_index: 1,
            destinations: vec![0],
            host_attributes: Vec::new(),
        }
    }

    #[test]
    fn envelope_embeds_json_and_base64s_the_rest() {
        let mut buf = Vec::new();
        encode(Format::Envelope, &routed(br#"{"a": 1}"#), &mut buf);
        encode(Format::Envelope, &routed(&[0xff, 0x00]), &mut buf);
        let text = String::from_utf8(buf).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            r#"{"shard_id":"shardId-000000000000","sequence_number":"42","output_index":1,"partition_key":"pk","arrival_ms":0,"attributes":{"k":"v"},"data":{"a": 1}}"#
        );
        assert!(lines.next().unwrap().ends_with(r#""data_base64":"/wA="}"#));
    }

    #[test]
    fn the_archive_reads_an_envelope_back_as_the_record() {
        for data in [&br#"{"a": [1, 2.50]}"#[..], &[0xff, 0x00, b'\n'], b"text"] {
            let mut r = routed(data);
            r.record.sub_sequence_number = Some(7);
            r.record.arrival_ms = 1_700_000_000_500;
            let mut buf = Vec::new();
            encode(Format::Envelope, &r, &mut buf);
            let back = crate::archive::read_lines("o", &buf, 0)
                .next()
                .unwrap()
                .1
                .unwrap();
            assert_eq!(back.record, r.record);
            assert_eq!(back.output_index, r.output_index);
        }
    }

    #[test]
    fn raw_is_the_payload_and_a_newline() {
        let mut buf = Vec::new();
        encode(Format::Raw, &routed(b"hello"), &mut buf);
        assert_eq!(buf, b"hello\n");
    }
}
