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
//! With `mask` or `hash`, the payload is never parsed into values or
//! serialized again: one pass finds every field the settings name
//! ([`json::Path::spans`]), each redacted field is rewritten where it lies,
//! the arrival time is written over its field or added as a last member, and
//! a split emits the payload once per element with the array member replaced
//! by `"item": <element>`; the rest passes byte for byte. When that cannot be
//! done safely (a key on a path repeats, a path goes through an array, a
//! split key that is a path or is written with escapes, an `item` key next
//! to the split array), the payload is parsed, rewritten and serialized
//! whole, as with `remove`. Both ways make the same JSON values; only the
//! order of an object's keys may differ (the whole-payload way sorts them).

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

/// The paths the in-place path looks for, all in one pass: `fields`, then
/// the `attributes`' paths, then the arrival key, the split key and `item`
/// (the last three when set).
struct Paths {
    all: Vec<json::Path>,
    fields: usize,
    /// The attributes' names, in the order of their paths in `all`.
    attributes: Vec<String>,
    arrival: Option<usize>,
    /// The split key's index in `all` (`item` follows it).
    split: Option<usize>,
}

impl Paths {
    /// The paths for `s`, or `None` when the settings need the whole payload:
    /// `remove`, or a `split` path that is not one plain key.
    fn new(s: &Settings) -> Option<Paths> {
        if s.mode == Mode::Remove || s.split.as_ref().is_some_and(|k| k.contains(['.', '/'])) {
            return None;
        }
        let mut all: Vec<json::Path> = s.fields.iter().map(|f| json::Path::parse(f)).collect();
        let fields = all.len();
        let attributes = s.attributes.keys().cloned().collect();
        all.extend(s.attributes.values().map(|p| json::Path::parse(p)));
        let arrival = s.arrival_field.as_ref().map(|key| {
            all.push(json::Path::key(key));
            all.len() - 1
        });
        let split = s.split.as_ref().map(|key| {
            all.push(json::Path::key(key));
            all.push(json::Path::key("item"));
            all.len() - 2
        });
        Some(Paths {
            all,
            fields,
            attributes,
            arrival,
            split,
        })
    }
}

/// What the in-place path made of one payload.
enum Made {
    /// Nothing to change: the payload goes on as it is.
    Same,
    /// The rewritten payload.
    One(Vec<u8>),
    /// One payload per element of the split array (none for an empty one).
    Split(Vec<Vec<u8>>),
}

impl Transform for Redact {
    type Settings = Settings;

    fn init(s: Settings) -> Result<Self, String> {
        if let Some(f) = s.fields.iter().find(|f| f.is_empty()) {
            return Err(format!("`fields` holds an empty path: {f:?}"));
        }
        let in_place = InPlace(Paths::new(&s));
        Ok(Redact(s, in_place))
    }

    fn transform(&self, event: Event) -> Result<Vec<Output>, Failure> {
        if let Some((made, added)) = self.in_place(&event) {
            let mut attributes = event.attributes;
            attributes.extend(added);
            let parts = match made {
                Made::Same => vec![event.data],
                Made::One(data) => vec![data],
                Made::Split(parts) => parts,
            };
            let mut outputs: Vec<Output> = parts
                .into_iter()
                .map(|data| Output {
                    data,
                    partition_key: None,
                    attributes: Vec::new(),
                })
                .collect();
            // Every output gets the attributes: a copy each, the last by move.
            if let Some((last, rest)) = outputs.split_last_mut() {
                for out in rest {
                    out.attributes.clone_from(&attributes);
                }
                last.attributes = attributes;
            }
            return Ok(outputs);
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
                attributes.push((name.clone(), attribute_text(v)));
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
    /// The in-place path: what it made of the payload and the attributes to
    /// add; or `None` when it does not apply to this event (the settings, or
    /// the payload: not an object, not JSON, a repeated key on a path, a path
    /// through an array, a split array next to an `item` key), and the
    /// whole-payload path decides. Both paths make the same JSON values
    /// (unit-tested), only the order of an object's keys may differ.
    fn in_place(&self, event: &Event) -> Option<(Made, Vec<(String, String)>)> {
        let paths = self.1.0.as_ref()?;
        let payload = &event.data[..];
        let first = payload.iter().position(|b| !b.is_ascii_whitespace())?;
        if payload[first] != b'{' {
            return None;
        }
        // Every path found in one pass over the payload.
        let spans = json::Path::spans(&paths.all, payload).ok()?;
        let found = Found { payload, spans };
        let (mut edits, texts) = self.field_edits(paths, &found)?;
        // The arrival time's text, only when the settings stamp it.
        let arrival = paths.arrival.map(|_| event.arrival_ms.to_string());
        if let Some(edit) = self.arrival_edit(paths, &found, first, arrival.as_deref())? {
            edits.push(edit);
        }
        let items = self.split_edit(paths, &found, &mut edits)?;
        edits.sort_by_key(|(at, _)| (at.start, at.end));
        // The same field listed twice, or a field that is also the arrival
        // key: rewritten twice; the whole-payload path decides.
        if edits.windows(2).any(|w| w[1].0.start < w[0].0.end) {
            return None;
        }
        let attributes = attributes_in_place(paths, &found, &edits, &texts, arrival)?;
        if edits.is_empty() {
            return Some((Made::Same, attributes));
        }
        Some((rewrite(payload, &edits, items), attributes))
    }

    /// The redacted fields' edits, and the new text of each (for an
    /// attribute on it); `None` when one cannot be done in place.
    fn field_edits(&self, paths: &Paths, found: &Found<'_>) -> Option<(Vec<Edit>, Vec<Text>)> {
        let mut edits = Vec::new();
        let mut texts = Vec::new();
        for i in 0..paths.fields {
            let Some(at) = found.span(i)? else { continue };
            let (text, json) = match self.0.mode {
                Mode::Mask => {
                    let text = self.0.mask.clone();
                    let json = serde_json::to_vec(&text).ok()?;
                    (text, json)
                }
                Mode::Hash => {
                    let raw = &found.payload[at.clone()];
                    // A string without escapes is its own bytes (the
                    // span is UTF-8: `Path::spans` checked it).
                    let plain = std::str::from_utf8(raw).ok().and_then(json::plain_str);
                    let text = match plain {
                        Some(s) => hash_bytes(&self.0.salt, s.as_bytes()),
                        None => hash(&self.0.salt, &serde_json::from_slice(raw).ok()?),
                    };
                    // Hex needs no escapes.
                    let json = [b"\"", text.as_bytes(), b"\""].concat();
                    (text, json)
                }
                Mode::Remove => return None,
            };
            edits.push((at.clone(), Some(json)));
            texts.push((at, text));
        }
        Some((edits, texts))
    }

    /// The arrival time written over its field, or added as a new last
    /// member when the payload has none (`Some(None)`: no stamp to write).
    fn arrival_edit(
        &self,
        paths: &Paths,
        found: &Found<'_>,
        first: usize,
        arrival: Option<&str>,
    ) -> Option<Option<Edit>> {
        let (Some(i), Some(key), Some(arrival)) = (paths.arrival, &self.0.arrival_field, arrival)
        else {
            return Some(None);
        };
        Some(Some(match found.span(i)? {
            Some(at) => (at, Some(arrival.as_bytes().to_vec())),
            None => {
                // A new last member, before the closing brace.
                let payload = found.payload;
                let close = payload.iter().rposition(|b| !b.is_ascii_whitespace())?;
                let empty = payload[first + 1..close]
                    .iter()
                    .all(u8::is_ascii_whitespace);
                let mut member = if empty { Vec::new() } else { vec![b','] };
                member.extend(serde_json::to_vec(key).ok()?);
                member.push(b':');
                member.extend(arrival.as_bytes());
                (close..close, Some(member))
            }
        }))
    }

    /// The split array's elements, with the edit that marks where its
    /// member goes (`Some(None)`: no split).
    fn split_edit<'a>(
        &self,
        paths: &Paths,
        found: &Found<'a>,
        edits: &mut Vec<Edit>,
    ) -> Option<Option<Vec<&'a [u8]>>> {
        let (Some(i), Some(key)) = (paths.split, &self.0.split) else {
            return Some(None);
        };
        let Some(at) = found.span(i)? else {
            return Some(None);
        };
        if found.payload[at.start] != b'[' {
            return Some(None);
        }
        if found.span(i + 1)?.is_some() {
            return None;
        }
        let elements: Vec<&serde_json::value::RawValue> =
            serde_json::from_slice(&found.payload[at.clone()]).ok()?;
        let items = elements.iter().map(|e| e.get().as_bytes()).collect();
        edits.push((member_start(found.payload, at.start, key)?..at.end, None));
        Some(Some(items))
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

/// An edit of the payload: the bytes it replaces and what replaces them;
/// `None` is the split member's place.
type Edit = (std::ops::Range<usize>, Option<Vec<u8>>);

/// The new text of an edited field, for an attribute on it.
type Text = (std::ops::Range<usize>, String);

/// Where the settings' paths are in one payload.
struct Found<'a> {
    payload: &'a [u8],
    spans: Vec<json::Span>,
}

impl Found<'_> {
    /// Path `i`'s value: `Some(None)` when absent, `None` when the scan
    /// cannot tell (the whole-payload path decides).
    fn span(&self, i: usize) -> Option<Option<std::ops::Range<usize>>> {
        match &self.spans[i] {
            json::Span::Absent => Some(None),
            json::Span::At(at) => Some(Some(at.clone())),
            json::Span::Unsure => None,
        }
    }
}

/// The attributes the settings take from the payload, as the rewritten
/// payload holds them; `None` when one reads a value an edit overlaps.
fn attributes_in_place(
    paths: &Paths,
    found: &Found<'_>,
    edits: &[Edit],
    texts: &[Text],
    arrival: Option<String>,
) -> Option<Vec<(String, String)>> {
    let mut attributes = Vec::with_capacity(paths.attributes.len());
    for (k, name) in paths.attributes.iter().enumerate() {
        let i = paths.fields + k;
        let text = if let Some(arrival) = arrival
            .as_ref()
            .filter(|_| paths.arrival.is_some_and(|a| paths.all[a] == paths.all[i]))
        {
            arrival.clone()
        } else {
            let Some(at) = found.span(i)? else { continue };
            match texts.iter().find(|(edited, _)| *edited == at) {
                Some((_, text)) => text.clone(),
                None => {
                    if edits
                        .iter()
                        .any(|(e, _)| e.start < at.end && at.start < e.end)
                    {
                        return None;
                    }
                    attribute_text(&serde_json::from_slice(&found.payload[at]).ok()?)
                }
            }
        };
        attributes.push((name.clone(), text));
    }
    Some(attributes)
}

/// The payload with `edits` (sorted, apart) applied: one payload, or one
/// per split item, each with `"item":<the item>` in the split member's place.
fn rewrite(payload: &[u8], edits: &[Edit], items: Option<Vec<&[u8]>>) -> Made {
    // In two halves around the split member if there is one.
    let mut halves = [
        Vec::with_capacity(payload.len() + 64 * edits.len()),
        Vec::new(),
    ];
    let (mut half, mut from) = (0, 0);
    for (at, text) in edits {
        halves[half].extend_from_slice(&payload[from..at.start]);
        match text {
            Some(text) => halves[half].extend_from_slice(text),
            None => half = 1,
        }
        from = at.end;
    }
    halves[half].extend_from_slice(&payload[from..]);
    let [before, after] = halves;
    match items {
        None => Made::One(before),
        Some(items) => Made::Split(
            items
                .iter()
                .map(|item| {
                    let mut part = Vec::with_capacity(before.len() + after.len() + item.len() + 7);
                    part.extend_from_slice(&before);
                    part.extend_from_slice(br#""item":"#);
                    part.extend_from_slice(item);
                    part.extend_from_slice(&after);
                    part
                })
                .collect(),
        ),
    }
}

/// An attribute's text: a string's contents, any other value's JSON text.
fn attribute_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Where the member whose value starts at `value_start` starts: at its key,
/// which must be `key` written without escapes (else `None`: the caller
/// falls back to parsing the whole payload). `payload` is valid JSON.
fn member_start(payload: &[u8], value_start: usize, key: &str) -> Option<usize> {
    let before = payload[..value_start].trim_ascii_end().strip_suffix(b":")?;
    let before = before.trim_ascii_end();
    let quoted = serde_json::to_vec(key).ok()?;
    let start = before.len().checked_sub(quoted.len())?;
    // The opening quote must not be escaped (an even run of backslashes
    // before it): else the key is longer than `key`.
    let backslashes = before[..start]
        .iter()
        .rev()
        .take_while(|&&b| b == b'\\')
        .count();
    (before.ends_with(&quoted) && backslashes % 2 == 0).then_some(start)
}

fn hash(salt: &str, value: &Value) -> String {
    match value {
        Value::String(s) => hash_bytes(salt, s.as_bytes()),
        other => hash_bytes(salt, other.to_string().as_bytes()),
    }
}

/// The salted SHA-256 of `bytes`, in hex.
fn hash_bytes(salt: &str, bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(bytes);
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
            attributes: vec![("before".into(), "x".into())],
            ..Event::from_data(data)
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

    /// One output: its data as a JSON value, and its attributes.
    type Out = (Value, Vec<(String, String)>);

    /// What `r` makes of `data`: each output's data as a JSON value and its
    /// attributes, or the failure.
    fn made(r: &Redact, data: &str) -> Result<Vec<Out>, String> {
        let mut e = event(data);
        e.arrival_ms = 1_764_800_000_123;
        match r.transform(e) {
            Ok(outs) => Ok(outs
                .into_iter()
                .map(|o| (serde_json::from_slice(&o.data).unwrap(), o.attributes))
                .collect()),
            Err(e) => Err(format!("{e:?}")),
        }
    }

    #[test]
    fn in_place_with_arrival_attributes_and_split_gives_what_the_whole_payload_path_gives() {
        let settings = [
            // The example pipeline's step.
            serde_json::json!({"fields": ["email", "ip"], "mode": "hash", "salt": "s",
                "arrival_field": "received_at_ms", "attributes": {"event_type": "type"},
                "split": "items"}),
            // Attributes on a redacted field, on the arrival key, on the split array.
            serde_json::json!({"fields": ["email", "user.ip"], "mode": "mask",
                "arrival_field": "at", "split": "items",
                "attributes": {"mail": "email", "when": "at", "all": "items", "ip": "user.ip",
                    "n": "n"}}),
            serde_json::json!({"fields": ["email"], "mode": "hash", "arrival_field": "a.b"}),
            serde_json::json!({"split": "items"}),
            // The same field twice, a field that is the arrival key: whole payload.
            serde_json::json!({"fields": ["email", "email", "at"], "arrival_field": "at"}),
        ];
        let docs = [
            r#"{"type":"purchase","email":"a@example.com","ip":"1.2.3.4","items":[{"sku":"x","n":1},{"sku":"y"}],"n":1.5}"#,
            r#"{"type":"page_view","email":"b@example.com","ip":"1.2.3.4","url":"/"}"#,
            r#" { "items" : [ 1 , "two" , [3] , {"k":null} ] , "email" : "esc\u0061ped\"q" } "#,
            r#"{"items":[]}"#,
            r#"{"items":{"not":"an array"},"email":"c"}"#,
            r#"{"items":"text","at":5}"#,
            r#"{}"#,
            r#"{ }"#,
            r#"{"at":"old","received_at_ms":1,"a.b":true,"a":{"b":2}}"#,
            r#"{"user":{"ip":"9.9.9.9","id":7},"items":[true]}"#,
            // `item` next to the array, a key with escapes, repeated keys,
            // a path through an array: the whole-payload path decides.
            r#"{"item":0,"items":[1,2]}"#,
            r#"{"it\u0065ms":[1,2],"email":"d"}"#,
            r#"{"x\"items":[1],"items":[2]}"#,
            r#"{"items":[1],"items":[2]}"#,
            r#"{"email":"first","email":"second","items":[1]}"#,
            r#"{"user":[{"ip":"1"}],"items":[1]}"#,
            // Not an object, not JSON: both fail alike.
            r#"["items"]"#,
            r#"{"items":[1,"#,
            "  ",
        ];
        let mut in_place = 0;
        for settings in &settings {
            let s = || serde_json::from_value::<Settings>(settings.clone()).unwrap();
            let fast = Redact::init(s()).unwrap();
            let whole = Redact(s(), InPlace(None));
            for data in docs {
                assert_eq!(
                    made(&fast, data),
                    made(&whole, data),
                    "{settings} on {data}"
                );
                in_place += usize::from(fast.in_place(&event(data)).is_some());
            }
        }
        // Most of these went the in-place way (else this test proves little).
        assert!(in_place >= 40, "{in_place} in place");
    }

    #[test]
    fn a_key_written_with_escapes_is_not_taken_for_the_split_key() {
        let payload = br#"{"x\"items":[1],"items" : [2]}"#;
        let value_at = payload.len() - 4;
        assert_eq!(&payload[value_at..value_at + 3], b"[2]");
        assert_eq!(member_start(payload, value_at, "items"), Some(16));
        let inner = br#"{"x\"items":[1]}"#.len() - 4;
        assert_eq!(member_start(br#"{"x\"items":[1]}"#, inner, "items"), None);
        assert_eq!(member_start(br#"{"it\u0065ms":[1]}"#, 14, "items"), None);
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
