//! Example `transform` plugin: redacts PII fields, adds derived ones, splits arrays.
//!
//! Build with `cargo build -p redact --target wasm32-wasip2 --release`.
//!
//! Settings (the step's `config` table):
//!
//! | key | meaning |
//! |---|---|
//! | `fields` | paths of the fields to redact (`email`, `user.ip`, `/user/ip`) |
//! | `mode` | `"mask"` (replace with `mask`), `"hash"` (salted SHA-256, hex) or `"remove"`; default `"mask"` |
//! | `mask` | the replacement text for `"mask"`; default `"[redacted]"` |
//! | `salt` | the salt for `"hash"`; default `""` |
//! | `arrival_field` | if set, adds the record's Kinesis arrival time (ms since epoch) under this key |
//! | `attributes` | table from attribute name to a field path: copies field values into event attributes |
//! | `split` | path of an array field: emits one output per element, with the element under `item` and the array removed (an empty array emits nothing) |
//!
//! The payload must be a JSON object, otherwise the event fails with `invalid`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sluice_plugin::{Event, Failure, Output, Transform, json};

/// How a field is redacted.
#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Replace the value with the mask text.
    #[default]
    Mask,
    /// Replace the value with a salted SHA-256 of its JSON text (hex).
    Hash,
    /// Remove the field.
    Remove,
}

/// The step's settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    fields: Vec<String>,
    #[serde(default)]
    mode: Mode,
    #[serde(default = "default_mask")]
    mask: String,
    #[serde(default)]
    salt: String,
    arrival_field: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    split: Option<String>,
}

fn default_mask() -> String {
    "[redacted]".to_owned()
}

/// The redacting transform.
pub struct Redact(Settings);

impl Transform for Redact {
    type Settings = Settings;

    fn init(s: Settings) -> Result<Self, String> {
        if let Some(f) = s.fields.iter().find(|f| f.is_empty()) {
            return Err(format!("`fields` holds an empty path: {f:?}"));
        }
        Ok(Redact(s))
    }

    fn transform(&self, event: Event) -> Result<Vec<Output>, Failure> {
        let mut payload: Value = event.json()?;
        let Value::Object(_) = payload else {
            return Err(Failure::Invalid("payload is not a JSON object".into()));
        };
        for path in &self.0.fields {
            self.redact(&mut payload, path);
        }
        if let (Some(key), Value::Object(map)) = (&self.0.arrival_field, &mut payload) {
            map.insert(key.clone(), Value::from(event.arrival_ms));
        }
        let mut attributes = event.attributes;
        for (name, path) in &self.0.attributes {
            if let Some(v) = json::lookup(&payload, path) {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                attributes.push((name.clone(), text));
            }
        }
        let parts = match &self.0.split {
            Some(path) => split(payload, path),
            None => vec![payload],
        };
        parts
            .into_iter()
            .map(|part| {
                let mut out = Output::json(&part)?;
                out.attributes.clone_from(&attributes);
                Ok(out)
            })
            .collect()
    }
}

impl Redact {
    fn redact(&self, payload: &mut Value, path: &str) {
        if self.0.mode == Mode::Remove {
            let (parent, key) = match path.rsplit_once(['.', '/']) {
                Some((parent, key)) => (json::lookup_mut(payload, parent), key),
                None => (Some(payload), path),
            };
            if let Some(Value::Object(map)) = parent {
                map.remove(key);
            }
            return;
        }
        if let Some(v) = json::lookup_mut(payload, path) {
            *v = match self.0.mode {
                Mode::Mask => Value::String(self.0.mask.clone()),
                Mode::Hash => Value::String(hash(&self.0.salt, v)),
                Mode::Remove => unreachable!("handled above"),
            };
        }
    }
}

fn hash(salt: &str, value: &Value) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    match value {
        Value::String(s) => h.update(s.as_bytes()),
        other => h.update(other.to_string().as_bytes()),
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(64);
    for b in h.finalize() {
        text.push(HEX[usize::from(b >> 4)] as char);
        text.push(HEX[usize::from(b & 15)] as char);
    }
    text
}

/// One object per element of the array at `path`; the whole object if the
/// field is missing or not an array.
fn split(mut payload: Value, path: &str) -> Vec<Value> {
    let items = match &mut payload {
        Value::Object(map) if !path.contains(['.', '/']) => map.remove(path),
        _ => json::lookup_mut(&mut payload, path).map(Value::take),
    };
    match items {
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| {
                let mut part: Map<String, Value> = payload.as_object().cloned().unwrap_or_default();
                part.insert("item".into(), item);
                Value::Object(part)
            })
            .collect(),
        Some(other) => {
            // Not an array: put it back and emit the event whole.
            if let Some(slot) = json::lookup_mut(&mut payload, path) {
                *slot = other;
            } else if let Value::Object(map) = &mut payload {
                map.insert(path.to_owned(), other);
            }
            vec![payload]
        }
        None => vec![payload],
    }
}

sluice_plugin::export_transform!(Redact);
