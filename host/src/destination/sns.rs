//! The `sns` destination: one message per output published to an SNS
//! topic, standard or FIFO, with `PublishBatch`.
//!
//! - Requests hold at most 10 messages and 256 KiB (message plus
//!   attributes; SNS API reference, `PublishBatch`); a larger message is
//!   refused for good (class `contract`).
//! - Messages are as the `sqs` destination makes them: text as it is, other
//!   bodies base64 with `sluice.encoding = base64`; the attributes
//!   `sluice.shard-id`, `sluice.sequence-number`, `sluice.output-index`,
//!   then the output's own (10 in all).
//! - FIFO topics (an ARN ending in `.fifo`): `MessageGroupId` from the
//!   template (default the partition key), a deterministic
//!   `MessageDeduplicationId`, as for SQS FIFO queues.
//! - Entries failed with `SenderFault = false` are resent by the dispatcher
//!   with backoff (with the later entries of their key that SNS took);
//!   `SenderFault = true` is refused for good.
//! - `claim_check`: a message over 256 KiB is put into S3 and a pointer
//!   published instead, as AWS's extended client libraries do.
//! - Order: lanes by message group (FIFO) or by shard and partition key.

use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use base64::Engine as _;

use super::sqs::{dedup_id, group_id, sqs_allows, valid_attribute_name};
use super::{
    Request, Sink, SinkFuture, Verdict, batch, claim_check, encode_one, key_hash, pack_by_key,
    placeholder,
};
use crate::config::destination::sns::{MAX_MESSAGE_BYTES, SnsPlan};
use crate::outcome::Routed;

/// Most messages in one `PublishBatch` request.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// Most message attributes on one message.
pub const MAX_ATTRIBUTES: usize = 10;

/// Publishes outputs to one SNS topic.
#[derive(Debug)]
pub struct SnsDestination {
    name: String,
    client: aws_sdk_sns::Client,
    plan: SnsPlan,
    /// For `claim_check`.
    s3: aws_sdk_s3::Client,
}

/// A message's text and attributes, and its size as SNS counts it.
struct Message<'a> {
    text: String,
    attributes: Vec<(&'a str, &'static str, String)>,
    bytes: usize,
}

impl SnsDestination {
    /// The destination `plan` describes, publishing with `client`.
    pub fn new(
        name: &str,
        plan: &SnsPlan,
        client: aws_sdk_sns::Client,
        s3: aws_sdk_s3::Client,
    ) -> Self {
        SnsDestination {
            name: name.to_owned(),
            client,
            plan: plan.clone(),
            s3,
        }
    }

    /// The message `r` becomes, or why SNS would refuse it every time.
    fn message<'a>(&self, r: &'a Routed) -> Result<Message<'a>, String> {
        let rec = &r.record;
        let mut body = Vec::new();
        encode_one(self.plan.format, r, &mut body);
        let mut attributes: Vec<(&str, &str, String)> = Vec::with_capacity(4);
        let text = match String::from_utf8(body) {
            Ok(s) if !s.is_empty() && s.chars().all(sqs_allows) => s,
            Ok(s) => {
                attributes.push(("sluice.encoding", "String", "base64".into()));
                base64::engine::general_purpose::STANDARD.encode(s)
            }
            Err(e) => {
                attributes.push(("sluice.encoding", "String", "base64".into()));
                base64::engine::general_purpose::STANDARD.encode(e.as_bytes())
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
                    "attribute `{k}` is not a valid SNS message attribute name (letters, digits, `_`, `-`, `.`; not starting with `AWS.`, `Amazon.` or `sluice.`)"
                ));
            }
            attributes.push((k, "String", v.clone()));
        }
        for (k, v) in &r.host_attributes {
            attributes.push((k, "String", v.clone()));
        }
        if attributes.len() > MAX_ATTRIBUTES {
            return Err(format!(
                "has {} message attributes with Sluice's own; SNS allows {MAX_ATTRIBUTES}",
                attributes.len()
            ));
        }
        if let Some((k, _, _)) = attributes
            .iter()
            .find(|(_, _, v)| v.is_empty() || !v.chars().all(sqs_allows))
        {
            return Err(format!(
                "attribute `{k}` has a value SNS refuses (empty, or characters a message may not hold)"
            ));
        }
        let bytes = text.len()
            + attributes
                .iter()
                .map(|(k, t, v)| k.len() + t.len() + v.len())
                .sum::<usize>();
        if bytes > MAX_MESSAGE_BYTES {
            if self.plan.claim_check.is_none() {
                return Err(format!(
                    "message is {bytes} bytes; SNS takes at most {MAX_MESSAGE_BYTES}"
                ));
            }
            if attributes.len() + 1 > MAX_ATTRIBUTES {
                return Err(format!(
                    "has {} message attributes with Sluice's own; a claim-checked message needs one more ({}), and SNS allows {MAX_ATTRIBUTES}",
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

    fn group(&self, r: &Routed) -> Option<String> {
        self.plan
            .group_id
            .as_ref()
            .map(|t| group_id(&t.render(|v| placeholder(r, v))))
    }

    /// One `PublishBatch` of the request's entries.
    async fn send_request(&self, outputs: &[&Routed], request: &Request) -> Vec<Verdict> {
        let mut verdicts = vec![Verdict::Taken; request.entries.len()];
        let mut entries = Vec::with_capacity(request.entries.len());
        let mut positions = Vec::with_capacity(request.entries.len());
        for (pos, &i) in request.entries.iter().enumerate() {
            match self.entry(outputs[i], request, pos).await {
                Ok(entry) => {
                    entries.push(entry);
                    positions.push(pos);
                }
                Err(verdict) => verdicts[pos] = verdict,
            }
        }
        if entries.is_empty() {
            return verdicts;
        }
        let response = self
            .client
            .publish_batch()
            .topic_arn(&self.plan.topic_arn)
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await;
        match response {
            Ok(response) => batch::settle(
                &mut verdicts,
                &positions,
                response.successful().iter().filter_map(|ok| ok.id()),
                response.failed().iter().map(|f| batch::Refusal {
                    id: f.id(),
                    code: f.code(),
                    message: f.message(),
                    sender_fault: f.sender_fault(),
                }),
                &batch::Service {
                    name: "SNS",
                    resource: &self.plan.topic_arn,
                    done: "published",
                },
            ),
            Err(e) => batch::fail_all(
                &mut verdicts,
                &positions,
                &format!(
                    "PublishBatch to `{}` failed: {}",
                    self.plan.topic_arn,
                    aws_sdk_sns::error::DisplayErrorContext(&e)
                ),
            ),
        }
        verdicts
    }

    /// Entry `pos` of the request, `r` as a message with its position as
    /// its id (in S3 behind a claim check when it is too big and the
    /// destination has one), or the verdict on it.
    async fn entry(
        &self,
        r: &Routed,
        request: &Request,
        pos: usize,
    ) -> Result<PublishBatchRequestEntry, Verdict> {
        let mut message = self.message(r).map_err(Verdict::Refused)?;
        if let (true, Some(check)) = (message.bytes > MAX_MESSAGE_BYTES, &self.plan.claim_check) {
            let pointer = claim_check::offload(&self.s3, check, r, &message.text)
                .await
                .map_err(Verdict::Failed)?;
            message.attributes.push((
                claim_check::SIZE_ATTRIBUTE,
                "Number",
                message.text.len().to_string(),
            ));
            message.text = pointer;
        }
        let mut b = PublishBatchRequestEntry::builder()
            .id(pos.to_string())
            .message(message.text);
        for (k, t, v) in message.attributes {
            let value = MessageAttributeValue::builder()
                .data_type(t)
                .string_value(v)
                .build()
                .map_err(|e| Verdict::Refused(e.to_string()))?;
            b = b.message_attributes(k, value);
        }
        if let Some(group) = self.group(r) {
            b = b
                .message_group_id(group)
                .message_deduplication_id(request.dedup_id(pos, &dedup_id(r)));
        }
        b.build()
            .map_err(|e| Verdict::Refused(format!("cannot build the SNS request: {e}")))
    }
}

impl Sink for SnsDestination {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        format!("sns {}", self.plan.topic_arn)
    }

    fn refusal(&self, r: &Routed) -> Option<String> {
        self.message(r).err()
    }

    fn max_in_flight(&self) -> usize {
        self.plan.max_in_flight
    }

    /// Requests of at most 10 messages and 256 KiB, packed in lanes by
    /// message group (FIFO) or by shard and partition key.
    fn plan(&self, outputs: &[&Routed]) -> Vec<Request> {
        let key = |r: &Routed| match self.group(r) {
            Some(group) => key_hash(&[&group]),
            None => key_hash(&[&r.record.shard_id, &r.record.partition_key]),
        };
        let lanes = outputs
            .len()
            .div_ceil(MAX_BATCH_ENTRIES)
            .clamp(1, self.plan.max_in_flight);
        pack_by_key(
            outputs,
            lanes,
            MAX_BATCH_ENTRIES,
            MAX_MESSAGE_BYTES,
            key,
            |r| self.message(r).map_or(0, |m| m.bytes),
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
