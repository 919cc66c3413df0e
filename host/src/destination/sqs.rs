//! The `sqs` destination: one message per output, sent with `SendMessageBatch`.
//!
//! - Requests hold at most 10 entries and at most `max_message_bytes` (body
//!   plus attributes).
//! - Bodies that are not text SQS accepts (valid UTF-8 without control
//!   characters other than tab, CR, LF) are sent base64-encoded, with the
//!   attribute `sluice.encoding = base64`.
//! - Every message carries `sluice.shard-id`, `sluice.sequence-number` and
//!   `sluice.output-index`, then the output's own attributes, then Sluice's
//!   own for that output (a dead letter's `sluice.failure-class` and
//!   `sluice.failure-stage`); SQS allows 10 in all.
//! - FIFO queues: `MessageGroupId` from the destination's template (default
//!   the partition key) and a deterministic `MessageDeduplicationId` from
//!   shard, sequence number, sub-sequence number and output index, so a
//!   retried batch is deduplicated by SQS. A rendered group id that SQS would
//!   refuse (empty, over 128 characters, or not ASCII letters, digits and
//!   punctuation, as a Kinesis partition key may well be) is replaced by
//!   `sluice-` and the first 40 hex digits of its SHA-256: the same key always
//!   maps to the same group.
//! - What SQS would refuse every time ([`SqsDestination::refusal`]: an invalid
//!   attribute name or value, too many attributes, a message over
//!   `max_message_bytes`) is found before anything is sent, so the record
//!   fails with class `contract` under its policy instead of being retried.
//! - Entries that fail with `SenderFault = false` are [`Verdict::Retry`]: the
//!   dispatcher resends them with backoff. `SenderFault = true` is content
//!   SQS refuses every time ([`Verdict::Refused`]): the record fails with
//!   class `contract` under its policy (dead-lettered by default), not
//!   retried. An entry SQS does not report as sent counts as not delivered.
//! - `claim_check`: a message over the limit is put into S3 and a pointer
//!   sent instead, as AWS's extended client libraries do (see
//!   [`claim_check`]), so their consumers read the payload unchanged.
//! - Order: requests are packed in lanes by order key (a FIFO message
//!   group; for a standard queue, the shard and partition key), so that a
//!   key's messages stay in one lane, in order, and up to `max_in_flight`
//!   lanes are in flight at once. When an entry is resent, the later entries
//!   of its key that SQS already took are resent after it (the dispatcher
//!   does it; FIFO resends carry the deduplication id suffixed
//!   `:r<attempt>`, or SQS would drop them as duplicates), so the last copy
//!   of each stays in order.

use aws_sdk_sqs::types::builders::SendMessageBatchRequestEntryBuilder;
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
    SendMessageBatchRequestEntry,
};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::{
    Request, Sink, SinkFuture, Verdict, batch, claim_check, encode, key_hash, pack_by_key,
};
use crate::config::destination::ClaimCheck;
use crate::config::destination::sqs::SqsPlan;
use crate::config::{Format, Template};
use crate::hex;
use crate::outcome::Routed;

/// Most entries in one `SendMessageBatch` request.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// Most message attributes SQS allows on one message.
pub const MAX_ATTRIBUTES: usize = 10;

/// Sends outputs to one SQS queue.
#[derive(Debug)]
pub struct SqsDestination {
    name: String,
    client: aws_sdk_sqs::Client,
    queue_url: String,
    group_id: Option<Template>,
    max_bytes: usize,
    format: Format,
    max_in_flight: usize,
    /// The invocation's X-Ray trace header, sent as each message's
    /// `AWSTraceHeader` system attribute.
    trace_header: Option<String>,
    /// Where a message over the limit goes instead (`claim_check`).
    claim_check: Option<(ClaimCheck, aws_sdk_s3::Client)>,
}

/// A message's body and attributes (name, SQS data type, value), and its
/// size as SQS counts it.
struct Message<'a> {
    text: String,
    attributes: Vec<(&'a str, &'static str, String)>,
    bytes: usize,
}

/// One message, ready to send but for its id (its position in the request).
struct Entry {
    /// FIFO only: its deduplication id.
    dedup_id: Option<String>,
    entry: SendMessageBatchRequestEntryBuilder,
}

impl SqsDestination {
    /// The destination `plan` describes, sending with `client`.
    pub fn new(
        name: &str,
        plan: &SqsPlan,
        client: aws_sdk_sqs::Client,
        s3: aws_sdk_s3::Client,
    ) -> SqsDestination {
        SqsDestination {
            claim_check: plan.claim_check.clone().map(|c| (c, s3)),
            name: name.to_owned(),
            client,
            queue_url: plan.queue_url.clone(),
            group_id: plan.group_id.clone(),
            max_bytes: plan.max_message_bytes,
            format: plan.format,
            max_in_flight: plan.max_in_flight,
            trace_header: None,
        }
    }

    /// The largest message this destination sends (`max_message_bytes`, or
    /// the queue's own `MaximumMessageSize` when that is smaller).
    pub fn max_message_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Lowers the message limit to the queue's own `MaximumMessageSize`
    /// when that is smaller than `max_message_bytes`, so that a message the
    /// queue would refuse every time is found before it is sent (and a dead
    /// letter is cut to fit). A queue whose attributes cannot be read (no
    /// `sqs:GetQueueAttributes`) keeps the configured limit, with a warning.
    pub async fn read_queue_limit(&mut self) {
        let read = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::MaximumMessageSize)
            .send()
            .await;
        let size = match read {
            Ok(r) => r
                .attributes()
                .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::MaximumMessageSize))
                .and_then(|v| v.parse::<usize>().ok()),
            Err(e) => {
                tracing::warn!(destination = %self.name, queue_url = %self.queue_url,
                    error = %aws_sdk_sqs::error::DisplayErrorContext(&e),
                    max_message_bytes = self.max_bytes,
                    "cannot read the queue's MaximumMessageSize (the function needs sqs:GetQueueAttributes); keeping max_message_bytes");
                return;
            }
        };
        if let Some(size) = size.filter(|&s| s > 0 && s < self.max_bytes) {
            tracing::info!(destination = %self.name, queue_url = %self.queue_url,
                max_message_bytes = self.max_bytes, queue_maximum = size,
                "the queue's MaximumMessageSize is smaller than max_message_bytes; using it");
            self.max_bytes = size;
        }
    }

    /// The queue URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// The message `r` becomes, or why SQS would refuse it every time.
    fn message<'a>(&self, r: &'a Routed, body: &mut Vec<u8>) -> Result<Message<'a>, String> {
        let rec = &r.record;
        body.clear();
        encode(self.format, r, body);
        body.pop(); // no trailing newline in a message
        let mut attributes: Vec<(&str, &str, String)> =
            Vec::with_capacity(4 + rec.attributes.len() + r.host_attributes.len());
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
        for (k, v) in &r.host_attributes {
            attributes.push((k, "String", v.clone()));
        }
        if attributes.len() > MAX_ATTRIBUTES {
            return Err(format!(
                "has {} message attributes with Sluice's own; SQS allows {MAX_ATTRIBUTES}",
                attributes.len()
            ));
        }
        if let Some((k, _, _)) = attributes
            .iter()
            .find(|(_, _, v)| v.is_empty() || !v.chars().all(sqs_allows))
        {
            return Err(format!(
                "attribute `{k}` has a value SQS refuses (empty, or characters outside what a message may hold)"
            ));
        }
        let bytes = text.len()
            + attributes
                .iter()
                .map(|(k, t, v)| k.len() + t.len() + v.len())
                .sum::<usize>();
        if bytes > self.max_bytes {
            if self.claim_check.is_none() {
                return Err(format!(
                    "message is {bytes} bytes; the limit is {} (`max_message_bytes`)",
                    self.max_bytes
                ));
            }
            if attributes.len() + 1 > MAX_ATTRIBUTES {
                return Err(format!(
                    "has {} message attributes with Sluice's own; a claim-checked message needs one more ({}), and SQS allows {MAX_ATTRIBUTES}",
                    attributes.len(),
                    claim_check::SIZE_ATTRIBUTE
                ));
            }
        }
        Ok(Message {
            text,
            attributes,
            bytes,
        })
    }

    /// The order key of `r`: its message group (FIFO), or its shard and
    /// partition key.
    fn order_key(&self, r: &Routed) -> u64 {
        let rec = &r.record;
        match &self.group_id {
            Some(group) => key_hash(&[&self.group(group, r)]),
            None => key_hash(&[&rec.shard_id, &rec.partition_key]),
        }
    }

    fn group(&self, template: &Template, r: &Routed) -> String {
        let rec = &r.record;
        group_id(&template.render(|v| match v {
            "shard" => &rec.shard_id,
            _ => &rec.partition_key,
        }))
    }

    /// `r`'s message, with an oversize body put into S3 and a pointer in
    /// its place (`claim_check`).
    async fn checked_message<'a>(
        &self,
        r: &'a Routed,
        body: &mut Vec<u8>,
    ) -> Result<Message<'a>, Verdict> {
        let mut m = self.message(r, body).map_err(Verdict::Refused)?;
        if let (true, Some((check, s3))) = (m.bytes > self.max_bytes, &self.claim_check) {
            let pointer = claim_check::offload(s3, check, r, &m.text)
                .await
                .map_err(Verdict::Failed)?;
            m.attributes.push((
                claim_check::SIZE_ATTRIBUTE,
                "Number",
                m.text.len().to_string(),
            ));
            m.text = pointer;
        }
        Ok(m)
    }

    fn entry(&self, r: &Routed, message: Message<'_>) -> Result<Entry, String> {
        let Message {
            text, attributes, ..
        } = message;
        let mut b = SendMessageBatchRequestEntry::builder().message_body(text);
        if let Some(header) = &self.trace_header {
            let value = MessageSystemAttributeValue::builder()
                .data_type("String")
                .string_value(header)
                .build()
                .map_err(|e| e.to_string())?;
            b = b.message_system_attributes(
                MessageSystemAttributeNameForSends::AwsTraceHeader,
                value,
            );
        }
        for (k, t, v) in attributes {
            let value = MessageAttributeValue::builder()
                .data_type(t)
                .string_value(v)
                .build()
                .map_err(|e| e.to_string())?;
            b = b.message_attributes(k, value);
        }
        let dedup = match &self.group_id {
            Some(group) => {
                b = b.message_group_id(self.group(group, r));
                Some(dedup_id(r))
            }
            None => None,
        };
        Ok(Entry {
            dedup_id: dedup,
            entry: b,
        })
    }

    /// One `SendMessageBatch` of the request's entries.
    async fn send_request(&self, outputs: &[&Routed], request: &Request) -> Vec<Verdict> {
        let mut verdicts = vec![Verdict::Taken; request.entries.len()];
        let (entries, positions) = self.entries(outputs, request, &mut verdicts).await;
        if entries.is_empty() {
            return verdicts;
        }
        let response = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await;
        match response {
            Ok(response) => batch::settle(
                &mut verdicts,
                &positions,
                response.successful().iter().map(|ok| ok.id()),
                response.failed().iter().map(|f| batch::Refusal {
                    id: f.id(),
                    code: f.code(),
                    message: f.message(),
                    sender_fault: f.sender_fault(),
                }),
                &batch::Service {
                    name: "SQS",
                    resource: &self.queue_url,
                    done: "sent",
                },
            ),
            // The SDK already retried transient errors.
            Err(e) => batch::fail_all(
                &mut verdicts,
                &positions,
                &format!(
                    "SendMessageBatch to `{}` failed: {}",
                    self.queue_url,
                    aws_sdk_sqs::error::DisplayErrorContext(&e)
                ),
            ),
        }
        verdicts
    }

    /// The request's entries, each with its position as its id, and those
    /// positions; an output that cannot be sent gets its verdict instead.
    async fn entries(
        &self,
        outputs: &[&Routed],
        request: &Request,
        verdicts: &mut [Verdict],
    ) -> (Vec<SendMessageBatchRequestEntry>, Vec<usize>) {
        let mut body = Vec::new();
        let mut entries = Vec::with_capacity(request.entries.len());
        let mut positions = Vec::with_capacity(request.entries.len());
        for (pos, &i) in request.entries.iter().enumerate() {
            let message = match self.checked_message(outputs[i], &mut body).await {
                Ok(m) => m,
                Err(verdict) => {
                    verdicts[pos] = verdict;
                    continue;
                }
            };
            let built = self.entry(outputs[i], message).and_then(|e| {
                let mut b = e.entry.id(pos.to_string());
                if let Some(dedup) = &e.dedup_id {
                    b = b.message_deduplication_id(request.dedup_id(pos, dedup));
                }
                b.build()
                    .map_err(|e| format!("cannot build the SQS request: {e}"))
            });
            match built {
                Ok(entry) => {
                    entries.push(entry);
                    positions.push(pos);
                }
                Err(reason) => verdicts[pos] = Verdict::Refused(reason),
            }
        }
        (entries, positions)
    }
}

impl Sink for SqsDestination {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        format!("sqs {}", self.queue_url)
    }

    /// Why SQS would refuse `r` every time it is sent (an invalid attribute
    /// name or value, too many attributes, a message over
    /// `max_message_bytes`), or `None` if it can be sent.
    fn refusal(&self, r: &Routed) -> Option<String> {
        self.message(r, &mut Vec::new()).err()
    }

    fn set_trace_header(&mut self, header: Option<&str>) {
        self.trace_header = header.filter(|h| !h.is_empty()).map(str::to_owned);
    }

    fn read_limits(&mut self) -> SinkFuture<'_, ()> {
        Box::pin(self.read_queue_limit())
    }

    fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// Requests of at most 10 entries and `max_message_bytes`, packed in
    /// lanes by order key: as many lanes as it takes full requests, up to
    /// `max_in_flight` (a few outputs still make one request: SQS bills per
    /// request).
    fn plan(&self, outputs: &[&Routed]) -> Vec<Request> {
        let mut body = Vec::new();
        pack_by_key(
            outputs,
            outputs
                .len()
                .div_ceil(MAX_BATCH_ENTRIES)
                .clamp(1, self.max_in_flight),
            MAX_BATCH_ENTRIES,
            self.max_bytes,
            |r| self.order_key(r),
            |r| {
                self.message(r, &mut body).map_or(0, |m| {
                    if m.bytes > self.max_bytes {
                        claim_check::POINTER_BYTES
                    } else {
                        m.bytes
                    }
                })
            },
        )
    }

    fn send<'a>(
        &'a self,
        outputs: &'a [&'a Routed],
        request: &'a Request,
    ) -> SinkFuture<'a, Vec<Verdict>> {
        Box::pin(self.send_request(outputs, request))
    }
}

/// The characters SQS accepts in a message body.
pub(super) fn sqs_allows(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

pub(super) fn valid_attribute_name(name: &str) -> bool {
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

/// A valid FIFO `MessageGroupId` for `rendered`: itself when SQS accepts it
/// (1 to 128 ASCII letters, digits and punctuation), else `sluice-` and the
/// first 40 hex digits of its SHA-256, so the same key keeps one group.
pub fn group_id(rendered: &str) -> String {
    let valid =
        (1..=128).contains(&rendered.len()) && rendered.bytes().all(|b| b.is_ascii_graphic());
    if valid {
        rendered.to_owned()
    } else {
        format!(
            "sluice-{}",
            &hex(&Sha256::digest(rendered.as_bytes()))[..40]
        )
    }
}

/// The deduplication id of an entry SQS already took, sent again on
/// `attempt` after an earlier entry of its group: SQS would drop a copy with
/// the same id (at most 128 characters).
pub(super) fn resent_dedup_id(dedup: &str, attempt: u32) -> String {
    let suffix = format!(":r{attempt}");
    if dedup.len() + suffix.len() <= 128 {
        format!("{dedup}{suffix}")
    } else {
        hex(&Sha256::digest(format!("{dedup}{suffix}").as_bytes()))
    }
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
        hex(&Sha256::digest(id.as_bytes()))
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

    #[test]
    fn group_ids_sqs_refuses_map_to_a_stable_valid_one() {
        assert_eq!(group_id("u-42"), "u-42");
        for bad in ["", "with space", "ünïcode", &"k".repeat(129)] {
            let g = group_id(bad);
            assert!(g.starts_with("sluice-") && g.len() == 47, "{g}");
            assert_eq!(g, group_id(bad), "deterministic");
        }
        assert_ne!(group_id("a b"), group_id("a  b"));
    }
}
