//! `type = "firehose"`: each output one record of a Firehose delivery
//! stream, sent with `PutRecordBatch`.

use serde::Deserialize;

use super::Format;
use super::iam::{Account, Permission};
use super::{Context, Invalid};

/// The `[destinations.<name>]` table of a `firehose` destination.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FirehoseConfig {
    /// `delivery_stream = "clicks-to-lake"`: the delivery stream's name.
    pub delivery_stream: String,
    /// `format = "raw" | "envelope"`: each record's data; default `raw`.
    #[serde(default)]
    pub format: Format,
    /// `newline = true`: end each record with `\n` (Firehose concatenates
    /// records into its objects, so JSON Lines stay lines). Default `true`.
    #[serde(default = "yes")]
    pub newline: bool,
    /// `max_in_flight = 16`: `PutRecordBatch` requests in flight at once.
    #[serde(default = "super::default_max_in_flight")]
    pub max_in_flight: usize,
}

fn yes() -> bool {
    true
}

/// A validated `firehose` destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirehosePlan {
    /// The delivery stream's name.
    pub delivery_stream: String,
    /// How each record is encoded.
    pub format: Format,
    /// Whether each record ends with `\n`.
    pub newline: bool,
    /// Requests in flight at once.
    pub max_in_flight: usize,
}

impl FirehosePlan {
    /// `firehose:PutRecordBatch` on the delivery stream.
    pub fn permissions(&self, account: Account<'_>) -> Vec<Permission> {
        vec![Permission::new(
            &["firehose:PutRecordBatch"],
            account.arn(
                "firehose",
                &format!("deliverystream/{}", self.delivery_stream),
            ),
        )]
    }
}

impl FirehoseConfig {
    /// The delivery stream must be a name (1–64 of `a-zA-Z0-9_.-`).
    pub fn validate(self, _: Context<'_>) -> Result<FirehosePlan, Invalid> {
        let FirehoseConfig {
            delivery_stream,
            format,
            newline,
            max_in_flight,
        } = self;
        let valid = (1..=64).contains(&delivery_stream.len())
            && delivery_stream
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !valid {
            return Err(Invalid::new(
                "delivery_stream",
                format!(
                    "`{delivery_stream}` is not a delivery stream name (1 to 64 letters, digits, `_`, `.`, `-`)"
                ),
            ));
        }
        Ok(FirehosePlan {
            delivery_stream,
            format,
            newline,
            max_in_flight: super::check_max_in_flight(max_in_flight)?,
        })
    }
}
