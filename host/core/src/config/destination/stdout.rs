//! `type = "stdout"`: outputs on the process's standard output, one per line.

use serde::Deserialize;

use super::Format;
use super::iam::{Account, Permission};
use super::{Context, Invalid};

/// The `[destinations.<name>]` table of a `stdout` destination.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {
    /// `format = "raw" | "envelope"`: see [`Format`]; default `raw`.
    #[serde(default)]
    pub format: Format,
}

/// A validated `stdout` destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StdoutPlan {
    /// How outputs are encoded.
    pub format: Format,
    /// Writes in flight at once: one.
    pub max_in_flight: usize,
}

impl StdoutConfig {
    /// Nothing to check: any format will do.
    pub fn validate(self, _: Context<'_>) -> Result<StdoutPlan, Invalid> {
        Ok(StdoutPlan {
            format: self.format,
            max_in_flight: 1,
        })
    }
}

impl StdoutPlan {
    /// Nothing in AWS.
    pub fn permissions(&self, _: Account<'_>) -> Vec<Permission> {
        Vec::new()
    }
}
