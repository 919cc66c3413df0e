//! The destination kinds: each kind's module holds its TOML table
//! (`…Config`), its rules (`…Config::validate`) and what it validates into
//! (`…Plan`), after Vector's config → validate → build.
//!
//! The build step lives in the host (`host::destination`), which makes a live
//! destination (an SQS client, an open file) from the plan: this crate has no
//! AWS SDK. Adding a kind is a module here and one in the host, plus a
//! variant in [`DestinationConfig`], [`DestinationKind`] and the host's
//! `Destination`.

pub mod file;
pub mod s3;
pub mod sqs;
pub mod stdout;

use std::path::Path;

use serde::Deserialize;

use super::raw::Format;

/// One `[destinations.<name>]` table, tagged by `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum DestinationConfig {
    /// `type = "file"`: appends outputs to a local file, one per line.
    File(file::FileConfig),
    /// `type = "stdout"`: writes outputs to standard output, one per line.
    Stdout(stdout::StdoutConfig),
    /// `type = "sqs"`: sends each output as one SQS message (standard or FIFO).
    Sqs(sqs::SqsConfig),
    /// `type = "s3"`: writes one object per batch (per shard) with every
    /// output, one per line.
    S3(s3::S3Config),
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

impl DestinationConfig {
    /// Checks the table's rules and resolves it into a [`DestinationKind`].
    pub fn validate(self, cx: Context<'_>) -> Result<DestinationKind, Invalid> {
        Ok(match self {
            DestinationConfig::File(c) => DestinationKind::File(c.validate(cx)?),
            DestinationConfig::Stdout(c) => DestinationKind::Stdout(c.validate(cx)?),
            DestinationConfig::Sqs(c) => DestinationKind::Sqs(c.validate(cx)?),
            DestinationConfig::S3(c) => DestinationKind::S3(c.validate(cx)?),
        })
    }
}

/// The kinds of destination, with their validated settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationKind {
    /// A local file.
    File(file::FilePlan),
    /// The process's standard output.
    Stdout(stdout::StdoutPlan),
    /// An SQS queue.
    Sqs(sqs::SqsPlan),
    /// An S3 bucket.
    S3(s3::S3Plan),
}

impl DestinationKind {
    /// The kind's name, as `type` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            DestinationKind::File(_) => "file",
            DestinationKind::Stdout(_) => "stdout",
            DestinationKind::Sqs(_) => "sqs",
            DestinationKind::S3(_) => "s3",
        }
    }

    /// Whether the destination is an AWS service (and so needs AWS clients,
    /// and can work inside Lambda).
    pub fn in_aws(&self) -> bool {
        matches!(self, DestinationKind::Sqs(_) | DestinationKind::S3(_))
    }

    /// How outputs are encoded for this destination.
    pub fn format(&self) -> Format {
        match self {
            DestinationKind::File(p) => p.format,
            DestinationKind::Stdout(p) => p.format,
            DestinationKind::Sqs(p) => p.format,
            DestinationKind::S3(p) => p.format,
        }
    }
}
