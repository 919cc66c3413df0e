//! `type = "s3"`: one object per batch and shard, every output one line.

use serde::Deserialize;

use super::Format;
use super::iam::{Account, Permission};
use super::{Context, Invalid};
use crate::config::DestinationPlan;
use crate::config::template::{ATTRIBUTE, Template};

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
    "partition_key",
    ATTRIBUTE,
];

/// The `[destinations.<name>]` table of an `s3` destination.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// `bucket = "acme-archive"`.
    pub bucket: String,
    /// `key = "clicks/{yyyy}/{mm}/{dd}/{hh}/{shard}-{first_seq}-{last_seq}.jsonl.gz"`:
    /// the object key template. Placeholders: `{shard}`, `{first_seq}`,
    /// `{last_seq}`, `{yyyy}`, `{mm}`, `{dd}`, `{hh}` (the first record's
    /// arrival time, UTC), `{destination}`, and from each output
    /// `{partition_key}` and `{attr:NAME}` (an output attribute): a shard's
    /// outputs are split into one object per rendered key, as Firehose's
    /// dynamic partitioning does. Must use `{shard}` and `{first_seq}`, so
    /// that keys are unique and a retried batch writes the same key.
    pub key: String,
    /// `format = "raw" | "envelope"`: see [`Format`]; default `raw`.
    #[serde(default)]
    pub format: Format,
    /// `gzip = true`: compress the object (`Content-Encoding: gzip`). Default `false`.
    #[serde(default)]
    pub gzip: bool,
    /// `content_type = "application/x-ndjson"`: the object's content type (that is the default).
    pub content_type: Option<String>,
    /// `max_in_flight = 16`: `PutObject` requests in flight at once (1 to
    /// 256); each shard's outputs are one object, independent of the others.
    #[serde(default = "super::default_max_in_flight")]
    pub max_in_flight: usize,
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
    /// Requests in flight at once.
    pub max_in_flight: usize,
}

impl S3Plan {
    /// `s3:PutObject` on the bucket's keys under the template's fixed
    /// prefix (what comes before its first placeholder).
    pub fn permissions(&self, account: Account<'_>) -> Vec<Permission> {
        let template = self.key.to_string();
        let prefix = &template[..template.find('{').unwrap_or(template.len())];
        vec![Permission::new(
            &["s3:PutObject"],
            format!("arn:{}:s3:::{}/{prefix}*", account.partition, self.bucket),
        )]
    }
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
            max_in_flight,
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
            max_in_flight: super::check_max_in_flight(max_in_flight)?,
        })
    }
}

/// Two S3 destinations that write the same bucket would overwrite each
/// other's objects if their keys could render the same: compared by what
/// they render (each with its own `{destination}`), not by their text, so
/// `{destination}/{shard}-{first_seq}.jsonl` for `a` and
/// `a/{shard}-{first_seq}.jsonl` for `b` are refused. Each pair is rendered
/// twice: with distinct values for every placeholder, and with one value
/// for them all (`{mm}{dd}` and `{dd}{mm}` meet on the 1st of January).
/// Returns the later destination's name and why.
pub fn check_keys_apart(destinations: &[DestinationPlan]) -> Result<(), (String, String)> {
    let s3: Vec<(&str, &S3Plan)> = destinations
        .iter()
        .filter_map(|d| match &d.kind {
            super::DestinationKind::S3(p) => Some((d.name.as_str(), p)),
            _ => None,
        })
        .collect();
    // Distinct values, then one value for every placeholder.
    let samples: [fn(&str) -> &'static str; 2] = [
        |v| match v {
            "shard" => "shardId-000000000007",
            "first_seq" => "49590338271490256608559692538361571095921575989136588898",
            "last_seq" => "49590338271490256608559692538361571095921575989136589999",
            "yyyy" => "2026",
            "mm" => "11",
            "dd" => "09",
            "hh" => "23",
            _ => "x",
        },
        |_| "01",
    ];
    fn render(name: &str, plan: &S3Plan, sample: fn(&str) -> &'static str) -> String {
        plan.key
            .render(|v| if v == "destination" { name } else { sample(v) })
    }
    for (i, (a, plan)) in s3.iter().enumerate() {
        for (b, other) in &s3[i + 1..] {
            if other.bucket != plan.bucket {
                continue;
            }
            let collide = samples
                .iter()
                .any(|&sample| render(a, plan, sample) == render(b, other, sample));
            if collide {
                return Err((
                    b.to_string(),
                    format!(
                        "destinations `{a}` (`{}`) and `{b}` (`{}`) can write the same object \
                         of `s3://{}`, e.g. `{}`, so each would overwrite the other's: give each \
                         its own key prefix, or put `{{destination}}` in both keys",
                        plan.key,
                        other.key,
                        plan.bucket,
                        render(a, plan, samples[0])
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::{Location, parse};

    fn config(a: &str, b: &str) -> String {
        format!(
            "[destinations.a]\ntype = \"s3\"\nbucket = \"k\"\nkey = \"{a}\"\n\
             [destinations.b]\ntype = \"s3\"\nbucket = \"k\"\nkey = \"{b}\"\n\
             [routing]\ndefault = \"a\"\n"
        )
    }

    fn check(a: &str, b: &str) -> Result<(), String> {
        parse(&config(a, b), &Location::File("p.toml".into()))
            .map(drop)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn keys_that_render_the_same_are_refused_whatever_their_text() {
        for (a, b) in [
            (
                "{destination}/{shard}-{first_seq}.jsonl",
                "a/{shard}-{first_seq}.jsonl",
            ),
            ("x/{shard}-{first_seq}", "x/{shard}-{first_seq}"),
            (
                "{mm}{dd}/{shard}-{first_seq}",
                "{dd}{mm}/{shard}-{first_seq}",
            ),
        ] {
            let e = check(a, b).unwrap_err();
            assert!(
                e.contains("destinations `a`") && e.contains("can write the same object"),
                "{a} / {b}: {e}"
            );
        }
        for (a, b) in [
            (
                "{destination}/{shard}-{first_seq}",
                "{destination}/{shard}-{first_seq}",
            ),
            ("a/{shard}-{first_seq}", "b/{shard}-{first_seq}"),
            ("{destination}/{shard}-{first_seq}", "c/{shard}-{first_seq}"),
        ] {
            check(a, b).unwrap_or_else(|e| panic!("{a} / {b}: {e}"));
        }
    }
}
