//! The destination kinds: each kind's module holds its TOML table
//! (`…Config`), its rules (`…Config::validate`) and what it validates into
//! (`…Plan`), after Vector's config → validate → build.
//!
//! The build step lives in the host (`host::destination`), which makes a live
//! destination (an SQS client, an open file) from the plan: this crate has no
//! AWS SDK. Adding a kind is a module here (its `…Config` with a `validate`
//! into its `…Plan`, which has a `format`, a `max_in_flight` and a
//! `permissions` method) and one
//! line in the [`kinds!`] list below; the host adds its own module and one
//! line in its registry.

pub mod dynamodb;
pub mod eventbridge;
pub mod file;
pub mod firehose;
pub mod iam;
pub mod kinesis;
pub mod s3;
pub mod sns;
pub mod sqs;
pub mod stdout;

use std::path::Path;

use serde::Deserialize;

/// The kinds of destination, one line each: the variant, the module and its
/// config and plan types, the `type` that names it, and whether it is an
/// AWS service. Makes [`DestinationConfig`] (the tagged TOML table),
/// [`DestinationKind`] (its validated plan) and their dispatching methods.
macro_rules! kinds {
    ($($(#[$doc:meta])* $variant:ident($module:ident::$config:ident => $plan:ident) = $tag:literal, aws: $aws:literal;)*) => {
        /// One `[destinations.<name>]` table, tagged by `type`.
        #[derive(Debug, Deserialize, schemars::JsonSchema)]
        #[serde(tag = "type")]
        pub enum DestinationConfig {
            $($(#[$doc])* #[serde(rename = $tag)] $variant($module::$config),)*
        }

        /// The kinds of destination, with their validated settings.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum DestinationKind {
            $($(#[$doc])* $variant($module::$plan),)*
        }

        impl DestinationConfig {
            /// Checks the table's rules and resolves it into a [`DestinationKind`].
            pub fn validate(self, cx: Context<'_>) -> Result<DestinationKind, Invalid> {
                Ok(match self {
                    $(DestinationConfig::$variant(c) => DestinationKind::$variant(c.validate(cx)?),)*
                })
            }
        }

        impl DestinationKind {
            /// The kind's name, as `type` spells it.
            pub fn name(&self) -> &'static str {
                match self {
                    $(DestinationKind::$variant(_) => $tag,)*
                }
            }

            /// Whether the destination is an AWS service (and so needs AWS
            /// clients, and can work inside Lambda).
            pub fn in_aws(&self) -> bool {
                match self {
                    $(DestinationKind::$variant(_) => $aws,)*
                }
            }

            /// How outputs are encoded for this destination.
            pub fn format(&self) -> Format {
                match self {
                    $(DestinationKind::$variant(p) => p.format,)*
                }
            }

            /// The most requests the destination may have in flight at once.
            pub fn max_in_flight(&self) -> usize {
                match self {
                    $(DestinationKind::$variant(p) => p.max_in_flight,)*
                }
            }

            /// The IAM statements the destination needs (none for local ones).
            pub fn permissions(&self, account: iam::Account<'_>) -> Vec<iam::Permission> {
                match self {
                    $(DestinationKind::$variant(p) => p.permissions(account),)*
                }
            }
        }
    };
}

kinds! {
    /// `type = "file"`: appends outputs to a local file, one per line.
    File(file::FileConfig => FilePlan) = "file", aws: false;
    /// `type = "stdout"`: writes outputs to standard output, one per line.
    Stdout(stdout::StdoutConfig => StdoutPlan) = "stdout", aws: false;
    /// `type = "sqs"`: sends each output as one SQS message (standard or FIFO).
    Sqs(sqs::SqsConfig => SqsPlan) = "sqs", aws: true;
    /// `type = "s3"`: writes one object per batch (per shard) with every
    /// output, one per line.
    S3(s3::S3Config => S3Plan) = "s3", aws: true;
    /// `type = "kinesis"`: puts each output as one record of a Kinesis data stream.
    Kinesis(kinesis::KinesisConfig => KinesisPlan) = "kinesis", aws: true;
    /// `type = "firehose"`: puts each output as one record of a Firehose delivery stream.
    Firehose(firehose::FirehoseConfig => FirehosePlan) = "firehose", aws: true;
    /// `type = "eventbridge"`: puts each output as one event on an EventBridge bus.
    EventBridge(eventbridge::EventBridgeConfig => EventBridgePlan) = "eventbridge", aws: true;
    /// `type = "sns"`: publishes each output as one message to an SNS topic.
    Sns(sns::SnsConfig => SnsPlan) = "sns", aws: true;
    /// `type = "dynamodb"`: writes each output (a JSON object) as one item of a DynamoDB table.
    DynamoDb(dynamodb::DynamoDbConfig => DynamoDbPlan) = "dynamodb", aws: true;
}

/// The default `max_in_flight` of a destination in AWS: requests it may have
/// in flight at once (see BENCHMARKS.md for how it was chosen).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 16;

/// Checks a `max_in_flight` setting: 1 to 256.
pub fn check_max_in_flight(n: usize) -> Result<usize, Invalid> {
    if (1..=256).contains(&n) {
        Ok(n)
    } else {
        Err(Invalid::new(
            "max_in_flight",
            format!("{n} is out of range: expected 1 to 256"),
        ))
    }
}

/// `max_in_flight`'s serde default.
pub(crate) const fn default_max_in_flight() -> usize {
    DEFAULT_MAX_IN_FLIGHT
}

/// `claim_check = { bucket = "…", prefix = "…" }` on an `sqs` or `sns`
/// destination: a message over the size limit is put into S3 and a pointer
/// is sent instead, in the format of AWS's extended client libraries.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimCheck {
    /// The bucket the payloads go to.
    pub bucket: String,
    /// The key prefix (e.g. `sqs/`); default none.
    #[serde(default)]
    pub prefix: String,
}

impl ClaimCheck {
    /// The bucket must be a bucket name; the prefix must not start with `/`.
    pub fn validate(self) -> Result<ClaimCheck, Invalid> {
        if self.bucket.is_empty() || self.bucket.contains('/') {
            return Err(Invalid::new(
                "claim_check",
                format!("bucket `{}` is not a bucket name", self.bucket),
            ));
        }
        if self.prefix.starts_with('/') {
            return Err(Invalid::new(
                "claim_check",
                format!("prefix `{}` must not start with `/`", self.prefix),
            ));
        }
        Ok(self)
    }
}

/// What a destination's rules may look at besides its own table.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The folder relative paths are resolved against (the config file's).
    pub base: &'a Path,
}

/// A rule a destination's table breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The field, under the destination's table (`queue_url`).
    pub field: &'static str,
    /// What is wrong and what was expected.
    pub message: String,
}

impl Invalid {
    /// `field` breaks a rule: `message` says which.
    pub fn new(field: &'static str, message: impl Into<String>) -> Invalid {
        Invalid {
            field,
            message: message.into(),
        }
    }
}

/// How an output is written as one line.
#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The payload bytes as they are (for JSON payloads: JSON Lines).
    #[default]
    Raw,
    /// A JSON object with the lineage (shard, sequence number, partition key,
    /// attributes) and the payload under `data` (or `data_base64` when the
    /// payload is not JSON).
    Envelope,
}
