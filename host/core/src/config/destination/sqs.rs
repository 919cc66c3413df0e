//! `type = "sqs"`: each output one SQS message, standard or FIFO queue.

use serde::Deserialize;

use super::Format;
use super::iam::{Account, Permission};
use super::{Context, Invalid};
use crate::config::template::Template;

/// Placeholders of a FIFO queue's message group id template.
pub const GROUP_ID_PLACEHOLDERS: &[&str] = &["partition_key", "shard"];

/// SQS's message size limit (1 MiB), the default `max_message_bytes`.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// The `[destinations.<name>]` table of an `sqs` destination.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqsConfig {
    /// `queue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders.fifo"`;
    /// a URL ending in `.fifo` is a FIFO queue.
    pub queue_url: String,
    /// `message_group_id = "{partition_key}"`: FIFO only; the group id
    /// template, with `{partition_key}` and `{shard}`. Default `{partition_key}`.
    pub message_group_id: Option<String>,
    /// `max_message_bytes = 1048576`: the largest message (body plus
    /// attributes) and the largest `SendMessageBatch` request. Default 1 MiB.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// `format = "raw" | "envelope"`: the message body; default `raw`.
    #[serde(default)]
    pub format: Format,
    /// `max_in_flight = 16`: `SendMessageBatch` requests in flight at once
    /// (1 to 256). Requests of one message group (FIFO) or one partition key
    /// (standard) still go one after another.
    #[serde(default = "super::default_max_in_flight")]
    pub max_in_flight: usize,
    /// `claim_check = { bucket = "acme-large-messages", prefix = "sqs/" }`:
    /// a message over `max_message_bytes` goes to S3 and a pointer is sent
    /// (AWS's extended client format). Default: none (oversize is refused).
    pub claim_check: Option<super::ClaimCheck>,
}

fn default_max_message_bytes() -> usize {
    MAX_MESSAGE_BYTES
}

/// A validated `sqs` destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsPlan {
    /// The queue URL.
    pub queue_url: String,
    /// Whether it is a FIFO queue (its URL ends in `.fifo`).
    pub fifo: bool,
    /// FIFO only: the message group id template.
    pub group_id: Option<Template>,
    /// The largest message and the largest batch request, in bytes.
    pub max_message_bytes: usize,
    /// How the body is encoded.
    pub format: Format,
    /// Requests in flight at once.
    pub max_in_flight: usize,
    /// Where oversize messages go, if anywhere.
    pub claim_check: Option<super::ClaimCheck>,
}

impl SqsPlan {
    /// `sqs:SendMessage` and `sqs:GetQueueAttributes` (its
    /// `MaximumMessageSize`, read at cold start) on the queue, whose ARN
    /// comes from its URL (`https://sqs.<region>.amazonaws.com/<account>/<name>`).
    pub fn permissions(&self, account: Account<'_>) -> Vec<Permission> {
        let path: Vec<&str> = self
            .queue_url
            .split("://")
            .nth(1)
            .unwrap_or("")
            .split('/')
            .collect();
        let region = path
            .first()
            .and_then(|host| host.strip_prefix("sqs."))
            .and_then(|rest| rest.split('.').next())
            .unwrap_or(account.region);
        let (queue_account, name) = match path.as_slice() {
            [_, a, n, ..] => (*a, *n),
            _ => (account.account, "*"),
        };
        let arn = Account {
            region,
            account: queue_account,
            ..account
        }
        .arn("sqs", name);
        let mut permissions = vec![Permission::new(
            &["sqs:SendMessage", "sqs:GetQueueAttributes"],
            arn,
        )];
        if let Some(c) = &self.claim_check {
            permissions.push(Permission::new(
                &["s3:PutObject"],
                format!("arn:{}:s3:::{}/{}*", account.partition, c.bucket, c.prefix),
            ));
        }
        permissions
    }
}

impl SqsConfig {
    /// The URL must be an http(s) URL; a group id only for FIFO queues (and
    /// `{partition_key}` when a FIFO queue names none); `max_message_bytes`
    /// within SQS's 1 KiB to 1 MiB.
    pub fn validate(self, _: Context<'_>) -> Result<SqsPlan, Invalid> {
        let SqsConfig {
            queue_url,
            message_group_id,
            max_message_bytes,
            format,
            max_in_flight,
            claim_check,
        } = self;
        if !(queue_url.starts_with("https://") || queue_url.starts_with("http://")) {
            return Err(Invalid::new(
                "queue_url",
                format!(
                    "`{queue_url}` is not a queue URL: expected `https://sqs.<region>.amazonaws.com/<account>/<queue>`"
                ),
            ));
        }
        let fifo = queue_url.ends_with(".fifo");
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
                    "is only for FIFO queues (a queue URL ending in `.fifo`)",
                ));
            }
        };
        if !(1024..=MAX_MESSAGE_BYTES).contains(&max_message_bytes) {
            return Err(Invalid::new(
                "max_message_bytes",
                format!("{max_message_bytes} is out of range: expected 1024 to 1048576"),
            ));
        }
        Ok(SqsPlan {
            queue_url,
            fifo,
            group_id,
            max_message_bytes,
            format,
            max_in_flight: super::check_max_in_flight(max_in_flight)?,
            claim_check: claim_check.map(super::ClaimCheck::validate).transpose()?,
        })
    }
}
