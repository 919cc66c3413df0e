//! The `sqs` destination: one message per output, sent with `SendMessageBatch`.
//!
//! - Requests hold at most 10 entries and at most `max_message_bytes` (body
//!   plus attributes); a message over the limit fails alone, naming its size.
//! - Bodies that are not text SQS accepts (valid UTF-8 without control
//!   characters other than tab, CR, LF) are sent base64-encoded, with the
//!   attribute `sluice.encoding = base64`.
//! - Every message carries `sluice.shard-id`, `sluice.sequence-number` and
//!   `sluice.output-index`, then the output's own attributes (SQS allows 10 in all).
//! - FIFO queues: `MessageGroupId` from the destination's template (default
//!   the partition key) and a deterministic `MessageDeduplicationId` from
//!   shard, sequence number, sub-sequence number and output index, so a
//!   retried batch is deduplicated by SQS.
//! - Entries that fail with `SenderFault = false` are resent, with backoff;
//!   `SenderFault = true` is permanent for that output.

use std::time::Duration;

use aws_sdk_sqs::types::builders::SendMessageBatchRequestEntryBuilder;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::{SendFailure, encode};
use crate::config::{Format, Template};
use crate::pipeline::Routed;

/// Most entries in one `SendMessageBatch` request.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// Most message attributes SQS allows on one message.
pub const MAX_ATTRIBUTES: usize = 10;
/// Attempts for entries SQS reports as failed without the sender's fault.
pub const MAX_ATTEMPTS: u32 = 4;

/// Sends outputs to one SQS queue.
#[derive(Debug)]
pub struct SqsSink {
    name: String,
    client: aws_sdk_sqs::Client,
    queue_url: String,
    group_id: Option<Template>,
    max_bytes: usize,
    format: Format,
}

/// One message, ready to send but for its id (its position in the request).
struct Entry {
    output: usize,
    bytes: usize,
    entry: SendMessageBatchRequestEntryBuilder,
}

impl SqsSink {
    /// A sink for `queue_url`; `group_id` is set for FIFO queues.
    pub fn new(
        name: &str,
        client: aws_sdk_sqs::Client,
        queue_url: &str,
        group_id: Option<Template>,
        max_bytes: usize,
        format: Format,
    ) -> SqsSink {
        SqsSink {
            name: name.to_owned(),
            client,
            queue_url: queue_url.to_owned(),
            group_id,
            max_bytes,
            format,
        }
    }

    /// The destination's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The queue URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Sends `outputs` in order; returns the ones that were not delivered.
    ///
    /// Once an output of a shard fails, the later outputs of that shard are
    /// not sent (they fail too, and come again with the retried batch), so
    /// the queue sees each shard in order.
    pub async fn send(&self, outputs: &[&Routed]) -> Vec<SendFailure> {
        let mut failures: Vec<SendFailure> = Vec::new();
        let mut failed_shards: Vec<&str> = Vec::new();
        let mut batch: Vec<Entry> = Vec::with_capacity(MAX_BATCH_ENTRIES);
        let mut batch_bytes = 0;
        let mut body = Vec::new();
        for (i, r) in outputs.iter().enumerate() {
            let shard = r.record.shard_id.as_str();
            if failed_shards.contains(&shard) {
                failures.push(SendFailure {
                    output: i,
                    reason: format!("not sent: an earlier output of `{shard}` was not delivered"),
                });
                continue;
            }
            let entry = match self.entry(i, r, &mut body) {
                Ok(e) => e,
                Err(reason) => {
                    failed_shards.push(shard);
                    failures.push(SendFailure { output: i, reason });
                    continue;
                }
            };
            if batch.len() == MAX_BATCH_ENTRIES || batch_bytes + entry.bytes > self.max_bytes {
                let failed = self.send_batch(std::mem::take(&mut batch)).await;
                failed_shards.extend(
                    failed
                        .iter()
                        .map(|f| outputs[f.output].record.shard_id.as_str()),
                );
                failures.extend(failed);
                batch_bytes = 0;
            }
            batch_bytes += entry.bytes;
            batch.push(entry);
        }
        if !batch.is_empty() {
            failures.extend(self.send_batch(batch).await);
        }
        failures.sort_by_key(|f| f.output);
        failures
    }

    fn entry(&self, output: usize, r: &Routed, body: &mut Vec<u8>) -> Result<Entry, String> {
        let rec = &r.record;
        body.clear();
        encode(self.format, r, body);
        body.pop(); // no trailing newline in a message
        let mut attributes: Vec<(&str, &str, String)> =
            Vec::with_capacity(4 + rec.attributes.len());
        let text = match std::str::from_utf8(body) {
            Ok(s) if s.chars().all(sqs_allows) => s.to_owned(),
            _ => {
                attributes.push(("sluice.encoding", "String", "base64".into()));
                base64::engine::general_purpose::STANDARD.encode(&*body)
            }
        };
        attributes.push(("sluice.shard-id", "String", rec.shard_id.clone()));
        attributes.push((
            "sluice.sequence-number",
            "String",
            rec.sequence_number.clone(),
        ));
        attributes.push(("sluice.output-index", "Number", r.output_index.to_string()));
        for (k, v) in &rec.attributes {
            if !valid_attribute_name(k) {
                return Err(format!(
                    "attribute `{k}` is not a valid SQS message attribute name (letters, digits, `_`, `-`, `.`; not starting with `AWS.`, `Amazon.` or `sluice.`)"
                ));
            }
            attributes.push((k, "String", v.clone()));
        }
        if attributes.len() > MAX_ATTRIBUTES {
            return Err(format!(
                "has {} message attributes with Sluice's own; SQS allows {MAX_ATTRIBUTES}",
                attributes.len()
            ));
        }
        let bytes = text.len()
            + attributes
                .iter()
                .map(|(k, t, v)| k.len() + t.len() + v.len())
                .sum::<usize>();
        if bytes > self.max_bytes {
            return Err(format!(
                "message is {bytes} bytes; the limit is {} (`max_message_bytes`)",
                self.max_bytes
            ));
        }
        let mut b = SendMessageBatchRequestEntry::builder().message_body(text);
        for (k, t, v) in attributes {
            let value = MessageAttributeValue::builder()
                .data_type(t)
                .string_value(v)
                .build()
                .map_err(|e| e.to_string())?;
            b = b.message_attributes(k, value);
        }
        if let Some(group) = &self.group_id {
            let group = group.render(|v| match v {
                "shard" => &rec.shard_id,
                _ => &rec.partition_key,
            });
            b = b
                .message_group_id(group)
                .message_deduplication_id(dedup_id(r));
        }
        Ok(Entry {
            output,
            bytes,
            entry: b,
        })
    }

    async fn send_batch(&self, mut batch: Vec<Entry>) -> Vec<SendFailure> {
        let mut failures = Vec::new();
        for attempt in 1..=MAX_ATTEMPTS {
            let entries = batch
                .iter()
                .enumerate()
                .map(|(id, e)| e.entry.clone().id(id.to_string()).build())
                .collect::<Result<Vec<_>, _>>();
            let entries = match entries {
                Ok(e) => e,
                Err(e) => {
                    failures.extend(batch.iter().map(|b| SendFailure {
                        output: b.output,
                        reason: format!("cannot build the SQS request: {e}"),
                    }));
                    return failures;
                }
            };
            let request = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries));
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    // The SDK already retried transient errors.
                    let reason = format!(
                        "SendMessageBatch to `{}` failed: {}",
                        self.queue_url,
                        aws_sdk_sqs::error::DisplayErrorContext(&e)
                    );
                    failures.extend(batch.iter().map(|e| SendFailure {
                        output: e.output,
                        reason: reason.clone(),
                    }));
                    return failures;
                }
            };
            let mut retry = Vec::new();
            for f in response.failed() {
                let Some(pos) = f.id().parse::<usize>().ok().filter(|&p| p < batch.len()) else {
                    continue;
                };
                let reason = format!(
                    "SQS refused the message for `{}`: {} {}",
                    self.queue_url,
                    f.code(),
                    f.message().unwrap_or("")
                );
                if f.sender_fault() || attempt == MAX_ATTEMPTS {
                    failures.push(SendFailure {
                        output: batch[pos].output,
                        reason,
                    });
                } else {
                    tracing::warn!(destination = %self.name, code = f.code(), attempt, "SQS entry failed; resending");
                    retry.push(pos);
                }
            }
            if retry.is_empty() {
                return failures;
            }
            retry.sort_unstable();
            let mut keep = retry.into_iter().peekable();
            let mut idx = 0;
            batch.retain(|_| {
                let k = keep.peek() == Some(&idx);
                if k {
                    keep.next();
                }
                idx += 1;
                k
            });
            tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
        }
        failures
    }
}

/// The characters SQS accepts in a message body.
fn sqs_allows(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn valid_attribute_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && !["AWS.", "Amazon.", "aws.", "amazon.", "sluice."]
            .iter()
            .any(|p| name.starts_with(p))
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// A deterministic deduplication id: the same output of the same record
/// always gets the same id (at most 128 characters).
pub fn dedup_id(r: &Routed) -> String {
    let rec = &r.record;
    let id = format!(
        "{}:{}:{}:{}",
        rec.shard_id,
        rec.sequence_number,
        rec.sub_sequence_number
            .map(|s| s.to_string())
            .unwrap_or_default(),
        r.output_index
    );
    if id.len() <= 128 {
        id
    } else {
        Sha256::digest(id.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_characters_follow_the_sqs_rules() {
        assert!("plain text, é, 😀\t\n".chars().all(sqs_allows));
        assert!(!sqs_allows('\u{0}'));
        assert!(!sqs_allows('\u{1F}'));
        assert!(!sqs_allows('\u{FFFE}'));
    }

    #[test]
    fn attribute_names_follow_the_sqs_rules() {
        assert!(valid_attribute_name("event_type"));
        assert!(valid_attribute_name("a.b-c"));
        assert!(!valid_attribute_name("AWS.x"));
        assert!(!valid_attribute_name("sluice.shard-id"));
        assert!(!valid_attribute_name("has space"));
        assert!(!valid_attribute_name("a..b"));
    }
}
