//! `[source] format = "cloudwatch-logs"`: a CloudWatch Logs subscription's
//! payload read into one record per log event (control messages skipped),
//! with the log group, stream, owner, id and timestamp as attributes.

use super::Budget;
use crate::event::Record;

/// A CloudWatch Logs subscription payload (after gunzip).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogsData {
    message_type: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    log_group: String,
    #[serde(default)]
    log_stream: String,
    #[serde(default)]
    log_events: Vec<LogEvent>,
}

/// One log event of a subscription payload.
#[derive(serde::Deserialize)]
struct LogEvent {
    id: String,
    timestamp: i64,
    message: String,
}

/// The most characters CloudWatch Logs takes in a log group or log stream
/// name.
const MAX_LOG_NAME_CHARS: usize = 512;

/// The log events of a CloudWatch Logs payload; `None` for a control
/// message. What every event copies is counted against `budget` before any
/// is built.
pub(super) fn cloudwatch_logs(
    record: &Record,
    data: &[u8],
    budget: &mut Budget,
) -> Result<Option<Vec<Record>>, String> {
    let logs: LogsData = serde_json::from_slice(data)
        .map_err(|e| format!("the payload is not CloudWatch Logs subscription data: {e}"))?;
    match logs.message_type.as_str() {
        "CONTROL_MESSAGE" => return Ok(None),
        "DATA_MESSAGE" => {}
        other => {
            let shown: String = other.chars().take(48).collect();
            return Err(format!(
                "CloudWatch Logs subscription data of message type {shown:?} (expected DATA_MESSAGE or CONTROL_MESSAGE)"
            ));
        }
    }
    for (field, value) in [
        ("logGroup", &logs.log_group),
        ("logStream", &logs.log_stream),
        ("owner", &logs.owner),
    ] {
        let chars = value.chars().count();
        if chars > MAX_LOG_NAME_CHARS {
            return Err(format!(
                "CloudWatch Logs subscription data whose `{field}` has {chars} characters \
                 (CloudWatch Logs names have at most {MAX_LOG_NAME_CHARS})"
            ));
        }
    }
    let shared = record.shard_id.len()
        + record.sequence_number.len()
        + record.partition_key.len()
        + logs.log_group.len()
        + logs.log_stream.len()
        + logs.owner.len()
        + "logGroupLogStreamowneridtimestamp".len()
        + 20;
    let cost = logs
        .log_events
        .iter()
        .map(|e| shared + e.id.len())
        .sum::<usize>()
        // The parsed messages, moved into the records.
        + logs.log_events.iter().map(|e| e.message.len()).sum::<usize>();
    budget.take(cost, "splitting its log events")?;
    logs.log_events
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            Ok(Record {
                shard_id: record.shard_id.clone(),
                sequence_number: record.sequence_number.clone(),
                sub_sequence_number: Some(u32::try_from(i).map_err(|_| "too many log events")?),
                partition_key: record.partition_key.clone(),
                arrival_ms: record.arrival_ms,
                data: e.message.into_bytes(),
                attributes: vec![
                    ("logGroup".to_owned(), logs.log_group.clone()),
                    ("logStream".to_owned(), logs.log_stream.clone()),
                    ("owner".to_owned(), logs.owner.clone()),
                    ("id".to_owned(), e.id),
                    ("timestamp".to_owned(), e.timestamp.to_string()),
                ],
            })
        })
        .collect::<Result<Vec<_>, String>>()
        .map(Some)
}
