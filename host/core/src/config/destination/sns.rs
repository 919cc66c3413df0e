//! `type = "sns"`: each output one message published to an SNS topic,
//! standard or FIFO, with `PublishBatch`.

use serde::Deserialize;

use super::Format;
use super::iam::{Account, Permission};
use super::{Context, Invalid};
use crate::config::template::{ATTRIBUTE, Template};

/// Placeholders of a FIFO topic's message group id template.
pub const GROUP_ID_PLACEHOLDERS: &[&str] = &["partition_key", "shard", ATTRIBUTE];

/// SNS's message size limit: 256 KiB for a message and for a whole
/// `PublishBatch` (SNS API reference, `PublishBatch`).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// The `[destinations.<name>]` table of an `sns` destination.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnsConfig {
    /// `topic_arn = "arn:aws:sns:eu-west-1:123456789012:clicks"`; an ARN
    /// ending in `.fifo` is a FIFO topic.
    pub topic_arn: String,
    /// `message_group_id = "{partition_key}"`: FIFO only; the group id
    /// template, with `{partition_key}`, `{shard}` and `{attr:NAME}`.
    pub message_group_id: Option<String>,
    /// `format = "raw" | "envelope"`: the message; default `raw`.
    #[serde(default)]
    pub format: Format,
    /// `max_in_flight = 16`: `PublishBatch` requests in flight at once.
    #[serde(default = "super::default_max_in_flight")]
    pub max_in_flight: usize,
    /// `claim_check = { bucket = "acme-large-messages", prefix = "sns/" }`:
    /// a message over 256 KiB goes to S3 and a pointer is published (the
    /// extended client format). Default: none (oversize is refused).
    pub claim_check: Option<super::ClaimCheck>,
}

/// A validated `sns` destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsPlan {
    /// The topic's ARN.
    pub topic_arn: String,
    /// FIFO only: the message group id template.
    pub group_id: Option<Template>,
    /// How the message is encoded.
    pub format: Format,
    /// Requests in flight at once.
    pub max_in_flight: usize,
    /// Where oversize messages go, if anywhere.
    pub claim_check: Option<super::ClaimCheck>,
}

impl SnsPlan {
    /// `sns:Publish` (which `PublishBatch` needs) on the topic.
    pub fn permissions(&self, _: Account<'_>) -> Vec<Permission> {
        let mut permissions = vec![Permission::new(&["sns:Publish"], self.topic_arn.clone())];
        if let Some(c) = &self.claim_check {
            permissions.push(Permission::new(
                &["s3:PutObject"],
                format!("arn:aws:s3:::{}/{}*", c.bucket, c.prefix),
            ));
        }
        permissions
    }
}

impl SnsConfig {
    /// The topic must be an SNS topic ARN; a group id only for FIFO topics
    /// (default `{partition_key}`).
    pub fn validate(self, _: Context<'_>) -> Result<SnsPlan, Invalid> {
        let SnsConfig {
            topic_arn,
            message_group_id,
            format,
            max_in_flight,
            claim_check,
        } = self;
        let parts: Vec<&str> = topic_arn.split(':').collect();
        if parts.len() != 6 || !parts[0].eq("arn") || parts[2] != "sns" || parts[5].is_empty() {
            return Err(Invalid::new(
                "topic_arn",
                format!(
                    "`{topic_arn}` is not a topic ARN: expected `arn:aws:sns:<region>:<account>:<topic>`"
                ),
            ));
        }
        let fifo = topic_arn.ends_with(".fifo");
        let group_id = match (fifo, message_group_id) {
            (true, t) => Some(
                Template::parse(
                    t.as_deref().unwrap_or("{partition_key}"),
                    GROUP_ID_PLACEHOLDERS,
                )
                .map_err(|m| Invalid::new("message_group_id", m))?,
            ),
            (false, None) => None,
            (false, Some(_)) => {
                return Err(Invalid::new(
                    "message_group_id",
                    "is only for FIFO topics (a topic ARN ending in `.fifo`)",
                ));
            }
        };
        Ok(SnsPlan {
            topic_arn,
            group_id,
            format,
            max_in_flight: super::check_max_in_flight(max_in_flight)?,
            claim_check: claim_check.map(super::ClaimCheck::validate).transpose()?,
        })
    }
}
