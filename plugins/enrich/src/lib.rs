//! Example `transform` plugin: adds to each event the row of a lookup table
//! (`[tables.NAME]` in the pipeline config) found by one of its fields.
//!
//! Build with `cargo build -p enrich --target wasm32-wasip2 --release`.
//!
//! Settings (the step's `config` table):
//!
//! | key | meaning |
//! |---|---|
//! | `table` | the table to read (its `steps` must name this step) |
//! | `key` | path of the field to look up by: `user.id` or a JSON Pointer `/user/id`; a string, or a number looked up as written |
//! | `into` | the top-level field the row is written under, as a JSON object (replaced when the event has one) |
//! | `missing` | an event whose key has no row (or is absent, or not a string or a number): `keep` (unchanged, the default), `drop`, or `fail` (`invalid`) |
//!
//! A payload that is not a JSON object fails with `invalid`.

use serde::Deserialize;
use sluice_plugin::json::{self, Path, Span};
use sluice_plugin::{Event, Failure, Output, Transform, tables};

/// What becomes of an event whose key has no row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Missing {
    /// It goes on unchanged.
    Keep,
    /// It is dropped.
    Drop,
    /// It fails (`invalid`).
    Fail,
}

/// The step's settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    table: String,
    key: String,
    into: String,
    #[serde(default = "keep")]
    missing: Missing,
}

fn keep() -> Missing {
    Missing::Keep
}

/// Adds a table's row to each event.
pub struct Enrich {
    table: String,
    key: Path,
    into: Path,
    into_name: String,
    /// `"into":`, written once.
    into_json: String,
    missing: Missing,
}

impl Transform for Enrich {
    type Settings = Settings;

    fn init(s: Settings) -> Result<Self, String> {
        if s.key.is_empty() || s.into.is_empty() || s.table.is_empty() {
            return Err("`table`, `key` and `into` must not be empty".into());
        }
        // A table this step may not read fails the start-up, not every event.
        tables::get(&s.table, "").map_err(|e| format!("`table`: {e}"))?;
        Ok(Enrich {
            into_json: serde_json::to_string(&s.into).map_err(|e| e.to_string())? + ":",
            into: Path::key(&s.into),
            into_name: s.into.clone(),
            key: Path::parse(&s.key),
            table: s.table,
            missing: s.missing,
        })
    }

    fn transform(&self, event: Event) -> Result<Vec<Output>, Failure> {
        let found = self.key.find(&event.data).map_err(not_json)?;
        let key = found.and_then(|raw| {
            let text = raw.get();
            match text.as_bytes().first() {
                Some(b'"') => json::group_key(Some(raw)).ok().map(|k| k.into_owned()),
                Some(b'-' | b'0'..=b'9') => Some(text.to_owned()),
                _ => None,
            }
        });
        let row = match &key {
            Some(k) => tables::get(&self.table, k).map_err(Failure::Invalid)?,
            None => None,
        };
        let Some(row) = row else {
            return match self.missing {
                Missing::Keep => Ok(vec![event.into_output()]),
                Missing::Drop => Ok(Vec::new()),
                Missing::Fail => Err(Failure::Invalid(match key {
                    Some(k) => format!("no row of `{k}` in table `{}`", self.table),
                    None => "no key to look up (absent, or not a string or a number)".into(),
                })),
            };
        };
        let data = self.with_row(&event.data, &row)?;
        Ok(vec![event.output(data)])
    }
}

impl Enrich {
    /// The payload with `row` under the `into` field: spliced in as text
    /// (the rest of the payload byte for byte), or through a parse when the
    /// field is there more than once.
    fn with_row(&self, payload: &[u8], row: &str) -> Result<Vec<u8>, Failure> {
        match self.into.span(payload).map_err(not_json)? {
            Span::At(at) => {
                let mut out = Vec::with_capacity(payload.len() + row.len());
                out.extend_from_slice(&payload[..at.start]);
                out.extend_from_slice(row.as_bytes());
                out.extend_from_slice(&payload[at.end..]);
                Ok(out)
            }
            Span::Absent => {
                let end = payload
                    .iter()
                    .rposition(|b| !b.is_ascii_whitespace())
                    .filter(|&i| payload[i] == b'}')
                    .ok_or_else(|| Failure::Invalid("the payload is not a JSON object".into()))?;
                let empty = payload[..end]
                    .iter()
                    .rev()
                    .find(|b| !b.is_ascii_whitespace())
                    == Some(&b'{');
                let mut out =
                    Vec::with_capacity(payload.len() + self.into_json.len() + row.len() + 2);
                out.extend_from_slice(&payload[..end]);
                if !empty {
                    out.push(b',');
                }
                out.extend_from_slice(self.into_json.as_bytes());
                out.extend_from_slice(row.as_bytes());
                out.extend_from_slice(&payload[end..]);
                Ok(out)
            }
            Span::Unsure => {
                let mut v: serde_json::Value = serde_json::from_slice(payload).map_err(not_json)?;
                let row: serde_json::Value = serde_json::from_str(row).map_err(not_json)?;
                let object = v
                    .as_object_mut()
                    .ok_or_else(|| Failure::Invalid("the payload is not a JSON object".into()))?;
                object.insert(self.into_name.clone(), row);
                serde_json::to_vec(&v).map_err(not_json)
            }
        }
    }
}

fn not_json(e: serde_json::Error) -> Failure {
    Failure::Invalid(format!("payload is not JSON: {e}"))
}

sluice_plugin::export_transform!(Enrich);
