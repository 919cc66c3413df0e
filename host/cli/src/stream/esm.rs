//! The JSON that Lambda's Kinesis event source mapping writes: the
//! invocation event (`{"Records": [...]}`, field for field as AWS documents
//! it) and the record of a discarded batch that goes to the on-failure
//! destination.

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// One record read from a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    /// Its sequence number.
    pub sequence_number: String,
    /// Its partition key.
    pub partition_key: String,
    /// Its payload.
    pub data: Vec<u8>,
    /// When Kinesis took it, ms since the epoch.
    pub arrival_ms: i64,
}

/// Where records come from, as the event names it.
#[derive(Debug, Clone)]
pub struct EventSource {
    /// The stream's ARN (`eventSourceARN`).
    pub stream_arn: String,
    /// Its region (`awsRegion`).
    pub region: String,
    /// The role the mapping invokes with (`invokeIdentityArn`).
    pub invoke_identity_arn: String,
    /// The function's ARN, for on-failure records.
    pub function_arn: String,
}

impl EventSource {
    /// The names for a stream: its region and account come from its ARN
    /// (`arn:aws:kinesis:<region>:<account>:stream/<name>`); the role and the
    /// function are named `sluice-consume` in that account.
    pub fn for_stream(stream_arn: &str) -> EventSource {
        let parts: Vec<&str> = stream_arn.split(':').collect();
        let region = parts.get(3).copied().unwrap_or("us-east-1");
        let account = parts.get(4).copied().unwrap_or("000000000000");
        EventSource {
            stream_arn: stream_arn.to_owned(),
            region: region.to_owned(),
            invoke_identity_arn: format!("arn:aws:iam::{account}:role/sluice-consume"),
            function_arn: format!("arn:aws:lambda:{region}:{account}:function:sluice-consume"),
        }
    }

    /// One record's entry in the event's `Records`, as the ESM writes it.
    pub fn entry(&self, shard_id: &str, r: &StreamRecord) -> Vec<u8> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Kinesis<'a> {
            kinesis_schema_version: &'static str,
            partition_key: &'a str,
            sequence_number: &'a str,
            data: String,
            approximate_arrival_timestamp: f64,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Entry<'a> {
            kinesis: Kinesis<'a>,
            event_source: &'static str,
            event_version: &'static str,
            #[serde(rename = "eventID")]
            event_id: String,
            event_name: &'static str,
            invoke_identity_arn: &'a str,
            aws_region: &'a str,
            #[serde(rename = "eventSourceARN")]
            event_source_arn: &'a str,
        }
        let entry = Entry {
            kinesis: Kinesis {
                kinesis_schema_version: "1.0",
                partition_key: &r.partition_key,
                sequence_number: &r.sequence_number,
                data: base64::engine::general_purpose::STANDARD.encode(&r.data),
                approximate_arrival_timestamp: r.arrival_ms as f64 / 1000.0,
            },
            event_source: "aws:kinesis",
            event_version: "1.0",
            event_id: format!("{shard_id}:{}", r.sequence_number),
            event_name: "aws:kinesis:record",
            invoke_identity_arn: &self.invoke_identity_arn,
            aws_region: &self.region,
            event_source_arn: &self.stream_arn,
        };
        // Strings and a finite number into a Vec: cannot fail.
        serde_json::to_vec(&entry).unwrap_or_default()
    }
}

/// The invocation event made of `entries` (each from [`EventSource::entry`]).
pub fn event<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = b"{\"Records\":[".to_vec();
    for (i, e) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(e);
    }
    out.extend_from_slice(b"]}");
    out
}

/// A shard's tumbling window being carried (`TumblingWindowInSeconds`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenWindow {
    /// When it opens, ms since the epoch.
    pub start_ms: i64,
    /// When it closes (exclusive).
    pub end_ms: i64,
    /// What the function returned as `state` last time in this window.
    pub state: std::collections::BTreeMap<String, String>,
}

/// The start of the window of `length` that a record that arrived at
/// `arrival_ms` belongs to (windows line up on the epoch); 0 without windows.
pub fn window_start(arrival_ms: i64, length: Option<std::time::Duration>) -> i64 {
    match length {
        Some(w) => {
            let w = (w.as_millis() as i64).max(1);
            arrival_ms.div_euclid(w) * w
        }
        None => 0,
    }
}

/// The event of an invocation in a tumbling window: the records, and the
/// `KinesisTimeWindowEvent` fields (`window`, `state`, `shardId`,
/// `eventSourceARN`, `isFinalInvokeForWindow`, `isWindowTerminatedEarly`).
pub fn window_event<'a>(
    entries: impl IntoIterator<Item = &'a [u8]>,
    window: &OpenWindow,
    shard_id: &str,
    source: &EventSource,
    last: bool,
) -> Vec<u8> {
    let mut out = event(entries);
    out.truncate(out.len() - 1); // the closing brace
    let rfc3339 = |ms: i64| {
        DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .to_rfc3339_opts(SecondsFormat::Secs, true)
    };
    let fields = serde_json::json!({
        "window": {"start": rfc3339(window.start_ms), "end": rfc3339(window.end_ms)},
        "state": window.state,
        "shardId": shard_id,
        "eventSourceARN": source.stream_arn,
        "isFinalInvokeForWindow": last,
        "isWindowTerminatedEarly": false,
    });
    let text = fields.to_string();
    out.push(b',');
    out.extend_from_slice(&text.as_bytes()[1..]);
    out
}

/// The bytes the event takes around its entries (`{"Records":[]}`) and per
/// entry (a comma): with the entries' sizes, the event's exact size.
pub const EVENT_OVERHEAD: usize = 14;

/// Why the mapping gave up on records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// `--max-retries` retries failed.
    RetryAttemptsExhausted,
    /// The records were older than `--max-record-age`.
    RecordAgeExceeded,
}

impl Condition {
    /// The name the on-failure record gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::RetryAttemptsExhausted => "RetryAttemptsExhausted",
            Condition::RecordAgeExceeded => "RecordAgeExceeded",
        }
    }
}

/// A batch the mapping discarded, for the on-failure destination.
#[derive(Debug, Clone)]
pub struct Discarded<'a> {
    /// The shard.
    pub shard_id: &'a str,
    /// The first and last record discarded.
    pub first: &'a StreamRecord,
    /// The last record discarded.
    pub last: &'a StreamRecord,
    /// How many records.
    pub batch_size: usize,
    /// Why.
    pub condition: Condition,
    /// How many times the function was called on them.
    pub invoke_count: u32,
    /// Whether the last call was a function error (not a partial batch response).
    pub function_error: bool,
}

/// The on-failure record of `d`: its `requestContext`, `responseContext`
/// and `KinesisBatchInfo`, as Lambda sends it to an SQS or SNS destination.
/// The request id is derived from the shard, the first sequence number and
/// the condition, so the same discarded batch always gets the same one.
pub fn failure_record(source: &EventSource, d: &Discarded<'_>, now_ms: i64) -> Vec<u8> {
    let time = |ms: i64| {
        DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    };
    let digest = Sha256::digest(
        format!(
            "{}:{}:{}",
            d.shard_id,
            d.first.sequence_number,
            d.condition.as_str()
        )
        .as_bytes(),
    );
    let h = host::hex(&digest[..16]);
    let request_id = format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    );
    let mut response = serde_json::json!({
        "statusCode": 200,
        "executedVersion": "$LATEST",
    });
    if d.function_error {
        response["functionError"] = "Unhandled".into();
    }
    let doc = serde_json::json!({
        "requestContext": {
            "requestId": request_id,
            "functionArn": source.function_arn,
            "condition": d.condition.as_str(),
            "approximateInvokeCount": d.invoke_count,
        },
        "responseContext": response,
        "version": "1.0",
        "timestamp": time(now_ms),
        "KinesisBatchInfo": {
            "shardId": d.shard_id,
            "startSequenceNumber": d.first.sequence_number,
            "endSequenceNumber": d.last.sequence_number,
            "approximateArrivalOfFirstRecord": time(d.first.arrival_ms),
            "approximateArrivalOfLastRecord": time(d.last.arrival_ms),
            "batchSize": d.batch_size,
            "streamArn": source.stream_arn,
        },
    });
    serde_json::to_vec(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: &str) -> StreamRecord {
        StreamRecord {
            sequence_number: seq.into(),
            partition_key: "user-1".into(),
            data: br#"{"a":1}"#.to_vec(),
            arrival_ms: 1_545_084_650_987,
        }
    }

    #[test]
    fn the_event_is_what_sluice_lambda_decodes() {
        let source = EventSource::for_stream("arn:aws:kinesis:eu-west-1:123456789012:stream/s");
        let entries = [
            source.entry("shardId-000000000006", &record("1")),
            source.entry("shardId-000000000006", &record("2")),
        ];
        let json = event(entries.iter().map(Vec::as_slice));
        assert_eq!(
            json.len(),
            EVENT_OVERHEAD - 1 + entries.iter().map(|e| e.len() + 1).sum::<usize>()
        );
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(
            text.contains(r#""approximateArrivalTimestamp":1545084650.987"#),
            "{text}"
        );
        assert!(
            text.contains(r#""eventID":"shardId-000000000006:1""#),
            "{text}"
        );
        assert!(text.contains(r#""awsRegion":"eu-west-1""#), "{text}");
        let batch = host::event::decode(&json, "test").unwrap();
        assert_eq!(batch.records.len(), 2);
        assert_eq!(batch.records[1].shard_id, "shardId-000000000006");
        assert_eq!(batch.records[1].data, br#"{"a":1}"#);
        assert_eq!(batch.records[1].arrival_ms, 1_545_084_650_987);
    }

    #[test]
    fn a_failure_record_names_the_batch() {
        let source = EventSource::for_stream("arn:aws:kinesis:eu-west-1:123456789012:stream/s");
        let (a, b) = (record("10"), record("12"));
        let d = Discarded {
            shard_id: "shardId-000000000000",
            first: &a,
            last: &b,
            batch_size: 3,
            condition: Condition::RetryAttemptsExhausted,
            invoke_count: 4,
            function_error: false,
        };
        let doc: serde_json::Value =
            serde_json::from_slice(&failure_record(&source, &d, 1_545_084_651_000)).unwrap();
        assert_eq!(doc["requestContext"]["condition"], "RetryAttemptsExhausted");
        assert_eq!(doc["requestContext"]["approximateInvokeCount"], 4);
        assert_eq!(doc["KinesisBatchInfo"]["startSequenceNumber"], "10");
        assert_eq!(doc["KinesisBatchInfo"]["endSequenceNumber"], "12");
        assert_eq!(doc["KinesisBatchInfo"]["batchSize"], 3);
        assert_eq!(
            doc["KinesisBatchInfo"]["approximateArrivalOfFirstRecord"],
            "2018-12-17T22:10:50.987Z"
        );
        assert_eq!(doc["timestamp"], "2018-12-17T22:10:51.000Z");
        assert!(doc["responseContext"].get("functionError").is_none());
    }
}
