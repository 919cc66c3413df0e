//! `type = "file"`: outputs appended to a local file, one per line.

use std::path::PathBuf;

use serde::Deserialize;

use super::Format;
use super::iam::{Account, Permission};
use super::{Context, Invalid};

/// The `[destinations.<name>]` table of a `file` destination.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `path = "out/orders.jsonl"`: the file, relative to this config file.
    pub path: PathBuf,
    /// `format = "raw" | "envelope"`: see [`Format`]; default `raw`.
    #[serde(default)]
    pub format: Format,
}

/// A validated `file` destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePlan {
    /// The file, resolved against the config's folder.
    pub path: PathBuf,
    /// How outputs are encoded.
    pub format: Format,
    /// Writes in flight at once: one (a file is written in order).
    pub max_in_flight: usize,
}

impl FileConfig {
    /// The path must not be empty; it is resolved against `cx.base`.
    pub fn validate(self, cx: Context<'_>) -> Result<FilePlan, Invalid> {
        if self.path.as_os_str().is_empty() {
            return Err(Invalid::new("path", "must not be empty"));
        }
        Ok(FilePlan {
            path: cx.base.join(self.path),
            format: self.format,
            max_in_flight: 1,
        })
    }
}

impl FilePlan {
    /// Nothing in AWS.
    pub fn permissions(&self, _: Account<'_>) -> Vec<Permission> {
        Vec::new()
    }
}
