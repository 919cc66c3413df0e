//! Kinesis events in, Sluice batches out.
//!
//! [`decode`] reads the JSON that Lambda's Kinesis event source mapping sends
//! (`{"Records": [...]}`, the shape of `aws_lambda_events`' `KinesisEvent`)
//! and yields a [`Batch`]
//! of Sluice's own [`Record`]s: payload already base64-decoded, lineage (shard
//! id, sequence number, arrival time) kept on every record.
//!
//! Contract: an envelope that is not a Kinesis event is an [`EventError`] (the
//! whole batch is unusable); a single record that cannot be decoded is *not*
//! dropped: it becomes a [`Rejected`] entry naming its position, sequence
//! number if known, and the reason, so the pipeline can report it.

use std::borrow::Cow;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::value::RawValue;

/// One Kinesis record, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The shard it was read from, e.g. `shardId-000000000000`.
    pub shard_id: String,
    /// The Kinesis sequence number.
    pub sequence_number: String,
    /// The position inside a KPL-aggregated record, when de-aggregated.
    pub sub_sequence_number: Option<u32>,
    /// The producer's partition key.
    pub partition_key: String,
    /// When Kinesis accepted the record, ms since the Unix epoch.
    pub arrival_ms: u64,
    /// The payload, base64-decoded.
    pub data: Vec<u8>,
    /// Attributes set by plugins (empty for a record straight from Kinesis).
    pub attributes: Vec<(String, String)>,
}

/// The largest payload Kinesis accepts (1 MiB); a bigger one is rejected.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// A record of the event that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Its position in `Records` (0-based).
    pub index: usize,
    /// Its shard id, if it could be read.
    pub shard_id: Option<String>,
    /// Its sequence number, if it could be read.
    pub sequence_number: Option<String>,
    /// What was wrong with it.
    pub reason: String,
    /// The record's JSON as it came, for the dead-letter destination.
    pub raw: String,
}

/// One Lambda invocation's worth of records, in the order Kinesis delivered them.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    /// The records that decoded, in order. `slot[i]` gives each one's position
    /// in the original event.
    pub records: Vec<Record>,
    /// The position in the original event of each entry of `records`.
    pub slot: Vec<usize>,
    /// The records that did not decode.
    pub rejected: Vec<Rejected>,
    /// Slots whose Kinesis record held no events (a CloudWatch Logs control
    /// message), or that the pre-filter dropped: they count as filtered.
    pub empty: Vec<usize>,
    /// What reading the payloads (`[source]`) made of the event's records.
    pub source: SourceStats,
    /// The tumbling window, when the event source mapping has one
    /// (`TumblingWindowInSeconds`): the event is then a
    /// `KinesisTimeWindowEvent`.
    pub window: Option<TimeWindow>,
}

/// The tumbling-window fields of a `KinesisTimeWindowEvent`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeWindow {
    /// The window, as Lambda gives it (RFC 3339 start and end).
    pub window: WindowBounds,
    /// What the function returned as `state` last time in this window
    /// (empty when the window starts): Sluice keeps one entry per
    /// `aggregate` step, named after the step.
    #[serde(default, deserialize_with = "nullable_map")]
    pub state: std::collections::BTreeMap<String, String>,
    /// The shard the window belongs to.
    #[serde(default)]
    pub shard_id: Option<String>,
    /// The last invocation of the window: its outputs are due.
    #[serde(default)]
    pub is_final_invoke_for_window: bool,
    /// Lambda ended the window early (its state reached 1 MB); the next
    /// invocation continues the window with a fresh state.
    #[serde(default)]
    pub is_window_terminated_early: bool,
}

/// A window's start and end, in RFC 3339.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct WindowBounds {
    /// When it opens.
    pub start: String,
    /// When it closes.
    pub end: String,
}

/// `null` reads as an empty map, as Lambda sends no state at a window's start.
fn nullable_map<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<String, String>, D::Error> {
    Ok(Option::deserialize(d)?.unwrap_or_default())
}

/// What reading the payloads (`[source]`: KPL aggregates, compression,
/// CloudWatch Logs) made of an event's Kinesis records.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SourceStats {
    /// Kinesis records in the event.
    pub kinesis_records: usize,
    /// KPL aggregates among them.
    pub aggregates: usize,
    /// Payloads decompressed.
    pub decompressed: usize,
    /// CloudWatch Logs control messages skipped.
    pub control_messages: usize,
    /// Records the pre-filter (`[source] filters`) dropped.
    pub prefiltered: usize,
    /// The most bytes reading the payloads held at once, as counted against
    /// `[source] max_batch_bytes`.
    pub decoded_bytes: usize,
}

impl Batch {
    /// Number of slots: records (after de-aggregation, one per user record),
    /// records that did not decode, and records that held nothing.
    pub fn len(&self) -> usize {
        self.records.len() + self.rejected.len() + self.empty.len()
    }

    /// Whether the event held no records at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The event as a whole could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// Not JSON, or not an object with a `Records` array.
    #[error("{source_name}: not a Kinesis event: {error}")]
    Envelope {
        /// Where the event came from (a file name, or `invocation`).
        source_name: String,
        /// The JSON error, with line and column.
        error: serde_json::Error,
    },
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "Records", borrow)]
    records: Vec<&'a RawValue>,
    #[serde(flatten)]
    window: Option<TimeWindow>,
}

/// The fast path's view of an event: every record read in the one pass over
/// the input. When any record does not read, or fails a check, the event is
/// decoded again record by record ([`Envelope`]), which names what is wrong.
#[derive(Deserialize)]
struct FastEnvelope<'a> {
    #[serde(rename = "Records", borrow)]
    records: Vec<ObjectOnly<RecordIn<'a>>>,
    /// `window` and the other tumbling-window fields, when present.
    #[serde(default)]
    window: Option<WindowBounds>,
    #[serde(default, deserialize_with = "nullable_map")]
    state: std::collections::BTreeMap<String, String>,
    #[serde(default, rename = "shardId")]
    shard_id: Option<String>,
    #[serde(default, rename = "isFinalInvokeForWindow")]
    is_final_invoke_for_window: bool,
    #[serde(default, rename = "isWindowTerminatedEarly")]
    is_window_terminated_early: bool,
}

/// `T` read from a JSON object only: serde would read a struct from an
/// array too, which the record-by-record path refuses.
struct ObjectOnly<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = ObjectOnly<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(ObjectOnly)
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// The fields of a Lambda Kinesis record that Sluice uses, borrowed from the
/// input where possible; other fields are ignored.
///
/// Not `aws_lambda_events::KinesisEventRecord`: its `SecondTimestamp` reads
/// the fraction of `approximateArrivalTimestamp` as a count of milliseconds
/// (`1700000000.5` becomes `…000.005`), and its catch-all `flatten` field
/// buffers every record. A test checks both agree on real Lambda events.
#[derive(Deserialize)]
struct RecordIn<'a> {
    #[serde(rename = "eventID", borrow, default)]
    event_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kinesis: KinesisIn<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KinesisIn<'a> {
    #[serde(borrow)]
    partition_key: Cow<'a, str>,
    #[serde(borrow)]
    sequence_number: Cow<'a, str>,
    #[serde(borrow)]
    data: Base64Text<'a>,
    approximate_arrival_timestamp: f64,
}

/// The text of `kinesis.data`: a JSON string read as bytes, borrowed from
/// the input unless it has escapes. Base64 is ASCII, and the decoder
/// refuses anything else, so its UTF-8 is not checked first (a per-byte pass
/// over the largest field of the event).
struct Base64Text<'a>(Cow<'a, [u8]>);

impl<'de: 'a, 'a> Deserialize<'de> for Base64Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Base64Text<'de>;
            // What serde says of anything else: the same as for a `str`.
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                Ok(Base64Text(Cow::Borrowed(v)))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Self::Value, E> {
                Ok(Base64Text(Cow::Owned(v.to_vec())))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Base64Text(Cow::Borrowed(v.as_bytes())))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Base64Text(Cow::Owned(v.as_bytes().to_vec())))
            }
        }
        d.deserialize_bytes(Visit)
    }
}

/// Just enough of a record to name it when it does not decode.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RecordId {
    #[serde(rename = "eventID")]
    event_id: Option<String>,
    kinesis: Option<KinesisId>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct KinesisId {
    sequence_number: Option<String>,
}

/// Decodes a Lambda Kinesis event. `source_name` names the input in errors.
///
/// ```
/// let json = br#"{"Records": [{
///   "eventID": "shardId-000000000000:49590338271490256608559692538361571095921575989136588898",
///   "eventSourceARN": "arn:aws:kinesis:eu-west-1:123456789012:stream/clicks",
///   "kinesis": {"partitionKey": "u-1", "data": "eyJhIjoxfQ==",
///               "sequenceNumber": "49590338271490256608559692538361571095921575989136588898",
///               "approximateArrivalTimestamp": 1700000000.5, "kinesisSchemaVersion": "1.0"}}]}"#;
/// let batch = sluice_core::event::decode(json, "event.json").unwrap();
/// assert_eq!(batch.records[0].data, br#"{"a":1}"#);
/// assert_eq!(batch.records[0].shard_id, "shardId-000000000000");
/// assert_eq!(batch.records[0].arrival_ms, 1_700_000_000_500);
/// ```
pub fn decode(json: &[u8], source_name: &str) -> Result<Batch, EventError> {
    let envelope_error = |error| EventError::Envelope {
        source_name: source_name.to_owned(),
        error,
    };
    // serde reads a struct from a JSON array too; an event is an object.
    if let Some(kind) = not_an_object(json) {
        return Err(envelope_error(serde::de::Error::custom(format_args!(
            "{kind}, expected an object with a `Records` array"
        ))));
    }
    // The fast path: one pass over the input, no record kept as raw text.
    if let Ok(fast) = serde_json::from_slice::<FastEnvelope<'_>>(json) {
        let kinesis_records = fast.records.len();
        let records: Result<Vec<Record>, String> = fast
            .records
            .into_iter()
            .map(|ObjectOnly(r)| record_from(r))
            .collect();
        if let Ok(records) = records {
            return Ok(Batch {
                slot: (0..records.len()).collect(),
                records,
                source: SourceStats {
                    kinesis_records,
                    ..SourceStats::default()
                },
                window: fast.window.map(|window| TimeWindow {
                    window,
                    state: fast.state,
                    shard_id: fast.shard_id,
                    is_final_invoke_for_window: fast.is_final_invoke_for_window,
                    is_window_terminated_early: fast.is_window_terminated_early,
                }),
                ..Batch::default()
            });
        }
    }
    let envelope: Envelope<'_> = serde_json::from_slice(json).map_err(envelope_error)?;
    let mut batch = Batch {
        records: Vec::with_capacity(envelope.records.len()),
        slot: Vec::with_capacity(envelope.records.len()),
        source: SourceStats {
            kinesis_records: envelope.records.len(),
            ..SourceStats::default()
        },
        window: envelope.window,
        ..Batch::default()
    };
    for (index, raw) in envelope.records.into_iter().enumerate() {
        match decode_record(raw) {
            Ok(record) => {
                batch.records.push(record);
                batch.slot.push(index);
            }
            Err(reason) => batch.rejected.push(rejected(index, raw, reason)),
        }
    }
    Ok(batch)
}

/// What a JSON value that should be an object is instead (`None` when it
/// starts like an object, or is not JSON at all: serde explains that).
fn not_an_object(json: &[u8]) -> Option<&'static str> {
    match json.iter().find(|b| !b.is_ascii_whitespace())? {
        b'[' => Some("an array"),
        b'"' => Some("a string"),
        b'-' | b'0'..=b'9' => Some("a number"),
        b't' | b'f' => Some("a boolean"),
        b'n' => Some("null"),
        _ => None,
    }
}

fn decode_record(raw: &RawValue) -> Result<Record, String> {
    if let Some(kind) = not_an_object(raw.get().as_bytes()) {
        return Err(format!("the record is {kind}, not an object"));
    }
    let record: RecordIn<'_> = match serde_json::from_str(raw.get()) {
        Ok(r) => r,
        // Slow path, errors only: decode again to learn which field is wrong.
        Err(e) => return Err(explain(raw, e)),
    };
    record_from(record)
}

/// Checks a record read from the event and decodes its payload.
fn record_from(record: RecordIn<'_>) -> Result<Record, String> {
    let k = record.kinesis;
    if k.sequence_number.is_empty() {
        return Err("field `kinesis.sequenceNumber` is empty".into());
    }
    if !k.sequence_number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "field `kinesis.sequenceNumber` is not a decimal number: {:?}",
            k.sequence_number
        ));
    }
    let shard_id = shard_of(record.event_id.as_deref())
        .ok_or("field `eventID` is missing or not `<shardId>:<sequenceNumber>`")?
        .to_owned();
    // Base64 of more than the largest Kinesis record cannot be a Kinesis record.
    let text = &k.data.0;
    if text.len() / 4 * 3 > MAX_RECORD_BYTES + 2 {
        return Err(format!(
            "field `kinesis.data` holds about {} bytes; a Kinesis record holds at most {MAX_RECORD_BYTES}",
            text.len() / 4 * 3
        ));
    }
    let data = match base64_simd::STANDARD.decode_to_vec(text) {
        Ok(data) => data,
        // Errors only: the `base64` crate says where and what.
        Err(_) => base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("field `kinesis.data` is not valid base64: {e}"))?,
    };
    let secs = k.approximate_arrival_timestamp;
    if !(secs.is_finite() && secs >= 0.0) {
        return Err(format!(
            "field `kinesis.approximateArrivalTimestamp` is not a time: {secs}"
        ));
    }
    Ok(Record {
        shard_id,
        sequence_number: k.sequence_number.into_owned(),
        sub_sequence_number: None,
        partition_key: k.partition_key.into_owned(),
        // Seconds with a fraction -> whole milliseconds.
        arrival_ms: (secs * 1000.0).round() as u64,
        data,
        attributes: Vec::new(),
    })
}

/// Names the field that failed to decode, when serde can tell.
fn explain(raw: &RawValue, error: serde_json::Error) -> String {
    let mut de = serde_json::Deserializer::from_str(raw.get());
    let (path, error) = match serde_path_to_error::deserialize::<_, RecordIn<'_>>(&mut de) {
        Err(e) if e.path().iter().next().is_some() => (Some(e.path().to_string()), e.into_inner()),
        _ => (None, error),
    };
    // The field path says where; a line and column inside one record would
    // mislead. serde's names for our structs mean nothing to a user either.
    let text = error.to_string();
    let text = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(m, _)| m);
    let text = text
        .replace("struct KinesisIn with 4 elements", "a `kinesis` object")
        .replace("struct KinesisIn", "a `kinesis` object")
        .replace("struct RecordIn", "a record object");
    match path {
        Some(path) => format!("field `{path}`: {text}"),
        None => text,
    }
}

fn shard_of(event_id: Option<&str>) -> Option<&str> {
    event_id?
        .split_once(':')
        .map(|(shard, _)| shard)
        .filter(|s| !s.is_empty())
}

fn rejected(index: usize, raw: &RawValue, reason: String) -> Rejected {
    let id: RecordId = serde_json::from_str(raw.get()).unwrap_or_default();
    let shard_id = shard_of(id.event_id.as_deref()).map(str::to_owned);
    let sequence_number = id
        .kinesis
        .and_then(|k| k.sequence_number)
        .or_else(|| {
            id.event_id
                .and_then(|e| e.split_once(':').map(|(_, s)| s.to_owned()))
        })
        .filter(|s| !s.is_empty());
    Rejected {
        index,
        shard_id,
        sequence_number,
        reason,
        raw: raw.get().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(data: &str, seq: &str) -> String {
        format!(
            r#"{{"eventID":"shardId-000000000001:{seq}","eventSource":"aws:kinesis",
               "kinesis":{{"partitionKey":"pk","data":"{data}","sequenceNumber":"{seq}",
               "approximateArrivalTimestamp":1.0,"kinesisSchemaVersion":"1.0"}}}}"#
        )
    }

    #[test]
    fn malformed_json_names_the_source_and_position() {
        let err = decode(b"{\"Records\": [", "bad.json").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("bad.json: not a Kinesis event:"), "{msg}");
        assert!(msg.contains("line 1"), "{msg}");
    }

    #[test]
    fn missing_records_is_an_envelope_error() {
        let err = decode(b"{}", "e.json").unwrap_err();
        assert!(err.to_string().contains("missing field `Records`"), "{err}");
    }

    #[test]
    fn empty_batch_decodes_to_nothing() {
        let batch = decode(br#"{"Records": []}"#, "e.json").unwrap();
        assert!(batch.is_empty());
    }

    #[test]
    fn invalid_base64_rejects_only_that_record_and_names_it() {
        let json = format!(
            r#"{{"Records":[{},{},{}]}}"#,
            record("eyJhIjoxfQ==", "1"),
            record("!!!not base64", "2"),
            record("e30=", "3")
        );
        let batch = decode(json.as_bytes(), "e.json").unwrap();
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.records.len(), 2);
        assert_eq!(batch.slot, vec![0, 2]);
        let r = &batch.rejected[0];
        assert_eq!(r.index, 1);
        assert_eq!(r.sequence_number.as_deref(), Some("2"));
        assert_eq!(r.shard_id.as_deref(), Some("shardId-000000000001"));
        assert!(!r.reason.is_empty());
    }

    #[test]
    fn agrees_with_aws_lambda_events_on_a_lambda_event() {
        // The sample event from the AWS Lambda documentation (3-digit fraction).
        let json = r#"{"Records":[{"kinesis":{"kinesisSchemaVersion":"1.0","partitionKey":"1",
            "sequenceNumber":"49590338271490256608559692538361571095921575989136588898",
            "data":"SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==","approximateArrivalTimestamp":1545084650.987},
            "eventSource":"aws:kinesis","eventVersion":"1.0",
            "eventID":"shardId-000000000006:49590338271490256608559692538361571095921575989136588898",
            "eventName":"aws:kinesis:record","invokeIdentityArn":"arn:aws:iam::123456789012:role/lambda-role",
            "awsRegion":"us-east-2","eventSourceARN":"arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream"}]}"#;
        let ours = decode(json.as_bytes(), "e.json").unwrap();
        let theirs: aws_lambda_events::event::kinesis::KinesisEvent =
            serde_json::from_str(json).unwrap();
        let (r, t) = (&ours.records[0], &theirs.records[0].kinesis);
        assert_eq!(r.data, t.data.0);
        assert_eq!(r.data, b"Hello, this is a test.");
        assert_eq!(r.sequence_number, t.sequence_number);
        assert_eq!(r.partition_key, t.partition_key);
        assert_eq!(
            r.arrival_ms as i64,
            t.approximate_arrival_timestamp.0.timestamp_millis()
        );
        assert_eq!(r.shard_id, "shardId-000000000006");
    }

    #[test]
    fn fractional_arrival_times_keep_their_value() {
        let json = record("e30=", "1").replace("1.0", "1700000000.25");
        let batch = decode(format!(r#"{{"Records":[{json}]}}"#).as_bytes(), "e.json").unwrap();
        assert_eq!(batch.records[0].arrival_ms, 1_700_000_000_250);
    }

    #[test]
    fn a_missing_field_is_named_with_its_path() {
        let json = r#"{"Records":[{"eventID":"s:1","kinesis":{"partitionKey":"pk","data":"e30=","approximateArrivalTimestamp":1.0}}]}"#;
        let batch = decode(json.as_bytes(), "e.json").unwrap();
        let reason = &batch.rejected[0].reason;
        assert!(reason.contains("kinesis"), "{reason}");
        assert!(
            reason.contains("missing field `sequenceNumber`"),
            "{reason}"
        );
    }

    #[test]
    fn record_without_event_id_is_rejected_with_a_reason() {
        let json = r#"{"Records":[{"kinesis":{"partitionKey":"pk","data":"e30=","sequenceNumber":"7","approximateArrivalTimestamp":1.0}}]}"#;
        let batch = decode(json.as_bytes(), "e.json").unwrap();
        assert_eq!(batch.rejected[0].sequence_number.as_deref(), Some("7"));
        assert!(batch.rejected[0].reason.contains("eventID"));
    }
}
