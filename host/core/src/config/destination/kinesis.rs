//! `type = "kinesis"`: each output one record of another Kinesis data
//! stream, sent with `PutRecords`.

use serde::Deserialize;

use super::Format;
use super::iam::{Account, Permission, arn_or};
use super::{Context, Invalid};
use crate::config::template::{ATTRIBUTE, Template};

/// Placeholders of the partition key and explicit hash key templates.
pub const KEY_PLACEHOLDERS: &[&str] = &["partition_key", "shard", ATTRIBUTE];

/// The largest record Kinesis takes by default: data plus partition key,
/// 1 MiB (Kinesis API reference, `PutRecords`).
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// The `[destinations.<name>]` table of a `kinesis` destination.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KinesisConfig {
    /// `stream = "clicks-enriched"`: the stream's name or ARN
    /// (`arn:aws:kinesis:<region>:<account>:stream/<name>`).
    pub stream: String,
    /// `partition_key = "{partition_key}"`: a template with
    /// `{partition_key}` (the input record's), `{shard}` and `{attr:NAME}`
    /// (an output attribute), or a fixed string. Default `{partition_key}`.
    pub partition_key: Option<String>,
    /// `explicit_hash_key = "{attr:hash}"`: a template that renders a
    /// decimal below 2^128, choosing the shard instead of the partition
    /// key's hash. Default: none.
    pub explicit_hash_key: Option<String>,
    /// `format = "raw" | "envelope"`: each record's data; default `raw`
    /// (another stream's records are the next function's input).
    #[serde(default)]
    pub format: Format,
    /// `max_in_flight = 16`: `PutRecords` requests in flight at once.
    #[serde(default = "super::default_max_in_flight")]
    pub max_in_flight: usize,
}

/// A validated `kinesis` destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KinesisPlan {
    /// The stream's name, or its ARN.
    pub stream: String,
    /// The partition key template.
    pub partition_key: Template,
    /// The explicit hash key template, if any.
    pub explicit_hash_key: Option<Template>,
    /// How each record's data is encoded.
    pub format: Format,
    /// Requests in flight at once.
    pub max_in_flight: usize,
}

impl KinesisPlan {
    /// `kinesis:PutRecords` on the stream.
    pub fn permissions(&self, account: Account<'_>) -> Vec<Permission> {
        vec![Permission::new(
            &["kinesis:PutRecords"],
            arn_or(&self.stream, account, "kinesis", "stream/"),
        )]
    }
}

impl KinesisConfig {
    /// The stream must be a stream name (1–128 of `a-zA-Z0-9_.-`) or a
    /// Kinesis stream ARN; the templates may use only their placeholders.
    pub fn validate(self, _: Context<'_>) -> Result<KinesisPlan, Invalid> {
        let KinesisConfig {
            stream,
            partition_key,
            explicit_hash_key,
            format,
            max_in_flight,
        } = self;
        let name = match stream.strip_prefix("arn:") {
            Some(_) => stream
                .split_once(":stream/")
                .filter(|(head, _)| head.starts_with("arn:aws") && head.contains(":kinesis:"))
                .map(|(_, name)| name),
            None => Some(stream.as_str()),
        };
        if !name.is_some_and(valid_stream_name) {
            return Err(Invalid::new(
                "stream",
                format!(
                    "`{stream}` is not a stream name (1 to 128 letters, digits, `_`, `.`, `-`) or a stream ARN (`arn:aws:kinesis:<region>:<account>:stream/<name>`)"
                ),
            ));
        }
        let partition_key = Template::parse(
            partition_key.as_deref().unwrap_or("{partition_key}"),
            KEY_PLACEHOLDERS,
        )
        .map_err(|m| Invalid::new("partition_key", m))?;
        let explicit_hash_key = explicit_hash_key
            .map(|t| Template::parse(&t, KEY_PLACEHOLDERS))
            .transpose()
            .map_err(|m| Invalid::new("explicit_hash_key", m))?;
        Ok(KinesisPlan {
            stream,
            partition_key,
            explicit_hash_key,
            format,
            max_in_flight: super::check_max_in_flight(max_in_flight)?,
        })
    }
}

/// A Kinesis stream name: 1 to 128 of `a-zA-Z0-9_.-`.
pub fn valid_stream_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}
