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
//!
//! With `mask` or `hash` and neither `arrival_field` nor `split`, each field
//! is rewritten where it lies in the payload ([`json::Path::span`]): the rest
//! of the payload is passed on byte for byte, never parsed into values or
//! serialized again. When that cannot be done safely (a key on a path
//! repeats, a path goes through an array), the payload is parsed, rewritten
//! and serialized whole, as with the other settings.

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
pub struct Redact(Settings, InPlace);

/// What the in-place path needs, parsed once, or `None` when the settings
/// need the whole payload parsed.
struct InPlace(Option<Paths>);

/// The paths of `fields`, and of `attributes` with their names.
struct Paths {
    fields: Vec<json::Path>,
    attributes: Vec<(String, json::Path)>,
}

impl Transform for Redact {
    type Settings = Settings;

    fn init(s: Settings) -> Result<Self, String> {
        if let Some(f) = s.fields.iter().find(|f| f.is_empty()) {
            return Err(format!("`fields` holds an empty path: {f:?}"));
        }
        let in_place = (s.mode != Mode::Remove && s.arrival_field.is_none() && s.split.is_none())
            .then(|| {
                let fields = s.fields.iter().map(|f| json::Path::parse(f)).collect();
                let attributes = s
                    .attributes
                    .iter()
                    .map(|(name, path)| (name.clone(), json::Path::parse(path)))
                    .collect();
                Paths { fields, attributes }
            });
        Ok(Redact(s, InPlace(in_place)))
    }

    fn transform(&self, event: Event) -> Result<Vec<Output>, Failure> {
        if let Some((data, added)) = self.in_place(&event) {
            let mut attributes = event.attributes;
            attributes.extend(added);
            return Ok(vec![Output {
                data: data.unwrap_or(event.data),
                partition_key: None,
                attributes,
            }]);
        }
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
    /// The in-place path: the rewritten payload (`None` when no field was
    /// there: the payload goes on as it is) and the attributes to add; or
    /// `None` when the path does not apply to this event (the settings, or
    /// the payload: not an object, not JSON, a repeated key on a path), and
    /// the whole-payload path decides.
    #[allow(clippy::type_complexity)]
    fn in_place(&self, event: &Event) -> Option<(Option<Vec<u8>>, Vec<(String, String)>)> {
        let Paths {
            fields,
            attributes: attribute_paths,
        } = self.1.0.as_ref()?;
        let first = event.data.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            return None;
        }
        // Every field found in one pass over the payload; the payload is
        // copied only when one of them is there.
        let payload = &event.data[..];
        let mut edits = Vec::new();
        for span in json::Path::spans(fields, payload).ok()? {
            match span {
                json::Span::Absent => {}
                json::Span::Unsure => return None,
                json::Span::At(at) => {
                    let text = match self.0.mode {
                        Mode::Mask => self.0.mask.clone(),
                        Mode::Hash => {
                            let value: Value = serde_json::from_slice(&payload[at.clone()]).ok()?;
                            hash(&self.0.salt, &value)
                        }
                        Mode::Remove => return None,
                    };
                    edits.push((at, serde_json::to_vec(&text).ok()?));
                }
            }
        }
        edits.sort_by_key(|(at, _)| at.start);
        // The same field listed twice is rewritten twice: the whole-payload path.
        if edits.windows(2).any(|w| w[1].0.start < w[0].0.end) {
            return None;
        }
        let mut data = std::borrow::Cow::Borrowed(payload);
        if !edits.is_empty() {
            let mut out = Vec::with_capacity(payload.len() + 64 * edits.len());
            let mut from = 0;
            for (at, text) in &edits {
                out.extend_from_slice(&payload[from..at.start]);
                out.extend_from_slice(text);
                from = at.end;
            }
            out.extend_from_slice(&payload[from..]);
            data = std::borrow::Cow::Owned(out);
        }
        let mut attributes = Vec::with_capacity(attribute_paths.len());
        for (name, path) in attribute_paths {
            match path.span(&data).ok()? {
                json::Span::Absent => {}
                json::Span::Unsure => return None,
                json::Span::At(at) => {
                    let value: Value = serde_json::from_slice(&data[at]).ok()?;
                    let text = match value {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    attributes.push((name.clone(), text));
                }
            }
        }
        let data = match data {
            std::borrow::Cow::Owned(rewritten) => Some(rewritten),
            std::borrow::Cow::Borrowed(_) => None,
        };
        Some((data, attributes))
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: &str) -> Event {
        Event {
            partition_key: "k".into(),
            sequence_number: "1".into(),
            sub_sequence_number: None,
            shard_id: "shardId-000000000000".into(),
            arrival_ms: 0,
            data: data.as_bytes().to_vec(),
            attributes: vec![("before".into(), "x".into())],
        }
    }

    fn settings(mode: &str) -> Settings {
        serde_json::from_value(serde_json::json!({
            "fields": ["email", "user.ip", "/user/tags"],
            "mode": mode,
            "salt": "s",
            "attributes": {"who": "user.id", "mail": "email"},
        }))
        .unwrap()
    }

    /// What one path made: the data as a JSON value and the attributes, or the failure.
    type Made = Result<(Value, Vec<(String, String)>), String>;

    /// What each path makes of `data`.
    fn both(mode: &str, data: &str) -> [Made; 2] {
        let fast = Redact::init(settings(mode)).unwrap();
        assert!(fast.1.0.is_some());
        let whole = Redact(settings(mode), InPlace(None));
        [fast, whole].map(|r| match r.transform(event(data)) {
            Ok(mut outs) => {
                assert_eq!(outs.len(), 1);
                let out = outs.remove(0);
                Ok((serde_json::from_slice(&out.data).unwrap(), out.attributes))
            }
            Err(e) => Err(format!("{e:?}")),
        })
    }

    #[test]
    fn rewriting_in_place_gives_what_rewriting_the_whole_payload_gives() {
        for data in [
            r#"{"email":"a@example.com","user":{"id":7,"ip":"203.0.113.7","tags":["x",1]},"n":1.5}"#,
            r#" { "email" : "esc\u0061ped\"q" , "user" : { "ip" : null } } "#,
            r#"{"other":"field","user":"not an object"}"#,
            r#"{"email":{"nested":[1,2,{"z":"y","a":"b"}]},"user":{}}"#,
            // Repeated keys and arrays on a path: the whole-payload path decides.
            r#"{"email":"first","email":"second"}"#,
            r#"{"user":{"ip":"a"},"user":{"id":1}}"#,
            r#"{"user":[{"ip":"1"}]}"#,
            // Not an object, not JSON: both fail alike.
            r#"["email"]"#,
            r#"{"email":"#,
        ] {
            for mode in ["mask", "hash"] {
                let [fast, whole] = both(mode, data);
                assert_eq!(fast, whole, "{mode} of {data}");
            }
        }
    }

    #[test]
    fn a_repeated_key_never_leaves_a_value_unredacted() {
        let r = Redact::init(settings("mask")).unwrap();
        let out = r
            .transform(event(
                r#"{"email":"leak@example.com","email":"b@example.com"}"#,
            ))
            .unwrap();
        assert!(!String::from_utf8_lossy(&out[0].data).contains("example.com"));
    }
}
