//! `type = "s3"`: one object per batch and shard, every output one line.

use serde::Deserialize;

use super::{Context, Invalid};
use crate::config::DestinationPlan;
use crate::config::raw::Format;
use crate::config::template::Template;

/// Placeholders of an S3 key template.
pub const KEY_PLACEHOLDERS: &[&str] = &[
    "shard",
    "first_seq",
    "last_seq",
    "yyyy",
    "mm",
    "dd",
    "hh",
    "destination",
];

/// The `[destinations.<name>]` table of an `s3` destination.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// `bucket = "acme-archive"`.
    pub bucket: String,
    /// `key = "clicks/{yyyy}/{mm}/{dd}/{hh}/{shard}-{first_seq}-{last_seq}.jsonl.gz"`:
    /// the object key template. Placeholders: `{shard}`, `{first_seq}`,
    /// `{last_seq}`, `{yyyy}`, `{mm}`, `{dd}`, `{hh}` (the first record's
    /// arrival time, UTC) and `{destination}`. Must use `{shard}` and
    /// `{first_seq}`, so that keys are unique and a retried batch writes
    /// the same key.
    pub key: String,
    /// `format = "raw" | "envelope"`: see [`Format`]; default `raw`.
    #[serde(default)]
    pub format: Format,
    /// `gzip = true`: compress the object (`Content-Encoding: gzip`). Default `false`.
    #[serde(default)]
    pub gzip: bool,
    /// `content_type = "application/x-ndjson"`: the object's content type (that is the default).
    pub content_type: Option<String>,
}

/// A validated `s3` destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Plan {
    /// The bucket.
    pub bucket: String,
    /// The key template.
    pub key: Template,
    /// How outputs are encoded, one per line.
    pub format: Format,
    /// Whether the object is gzip-compressed.
    pub gzip: bool,
    /// The object's content type.
    pub content_type: String,
}

impl S3Config {
    /// A bucket name without `/`; a key template that uses `{shard}` and
    /// `{first_seq}`.
    pub fn validate(self, _: Context<'_>) -> Result<S3Plan, Invalid> {
        let S3Config {
            bucket,
            key,
            format,
            gzip,
            content_type,
        } = self;
        if bucket.is_empty() || bucket.contains('/') {
            return Err(Invalid::new(
                "bucket",
                format!("`{bucket}` is not a bucket name"),
            ));
        }
        let key = Template::parse(&key, KEY_PLACEHOLDERS).map_err(|m| Invalid::new("key", m))?;
        if !(key.uses("shard") && key.uses("first_seq")) {
            return Err(Invalid::new(
                "key",
                format!(
                    "`{key}` must use `{{shard}}` and `{{first_seq}}`, so that every batch writes its own object and a retried batch writes the same one"
                ),
            ));
        }
        Ok(S3Plan {
            bucket,
            key,
            format,
            gzip,
            content_type: content_type.unwrap_or_else(|| "application/x-ndjson".into()),
        })
    }
}

/// Two S3 destinations that write the same bucket with the same key template
/// would overwrite each other's objects: refused, unless the key uses
/// `{destination}`. Returns the later destination's name and why.
pub fn check_keys_apart(destinations: &[DestinationPlan]) -> Result<(), (String, String)> {
    let s3: Vec<(&str, &S3Plan)> = destinations
        .iter()
        .filter_map(|d| match &d.kind {
            super::DestinationKind::S3(p) => Some((d.name.as_str(), p)),
            _ => None,
        })
        .collect();
    for (i, (a, plan)) in s3.iter().enumerate() {
        if plan.key.uses("destination") {
            continue;
        }
        if let Some((b, _)) = s3[i + 1..]
            .iter()
            .find(|(_, other)| other.bucket == plan.bucket && other.key == plan.key)
        {
            return Err((
                b.to_string(),
                format!(
                    "destinations `{a}` and `{b}` both write `s3://{}/{}`, so each would overwrite the other's objects: put `{{destination}}` in the key, or use another key or bucket",
                    plan.bucket, plan.key
                ),
            ));
        }
    }
    Ok(())
}
