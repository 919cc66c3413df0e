//! Helpers for JSON payloads: field lookup by path.
//!
//! A path is either a JSON Pointer (`/user/email`, RFC 6901) or a dotted path
//! (`user.email`); a plain key (`email`) is a one-segment dotted path.
//!
//! Ways to look a field up:
//!
//! - [`Path::find`] scans the payload bytes once and returns the field's JSON
//!   text without building anything else: no allocation for the fields it
//!   skips. Use it when a plugin reads a field or two (filters, routes).
//! - [`Path::span`] says where the field's value lies in the payload bytes,
//!   so that a plugin that changes a field or two can rewrite it in place
//!   instead of parsing and re-serializing the whole payload;
//!   [`Path::spans`] finds several fields in one pass.
//! - [`lookup`] / [`lookup_mut`] work on a parsed [`Value`], for plugins that
//!   rewrite the payload anyway.
//!
//! ```
//! use sluice_plugin::json::Path;
//!
//! let path = Path::parse("user.country");
//! let payload = br#"{"type":"view","user":{"id":7,"country":"NL"},"note":"..."}"#;
//! let field = path.find(payload).unwrap().unwrap();
//! assert_eq!(field.get(), r#""NL""#);
//! assert!(path.find(br#"{"user":{}}"#).unwrap().is_none());
//! assert!(path.find(b"not json").is_err());
//! ```

use std::cell::RefCell;
use std::fmt;
use std::ops::Range;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::scan;

/// The value at `path` in `value`, if there is one.
pub fn lookup<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    if path.starts_with('/') {
        return value.pointer(path);
    }
    path.split('.').try_fold(value, |v, key| match v {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// The value at `path` in `value`, mutably, if there is one.
pub fn lookup_mut<'v>(value: &'v mut Value, path: &str) -> Option<&'v mut Value> {
    if path.starts_with('/') {
        return value.pointer_mut(path);
    }
    path.split('.').try_fold(value, |v, key| match v {
        Value::Object(map) => map.get_mut(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
        _ => None,
    })
}

/// The text of a JSON string value without escapes, as it lies in the
/// payload (`"abc"` → `abc`): compare or hash it without decoding into a
/// new `String`. `None` for a string with escapes or any other value.
///
/// ```
/// use sluice_plugin::json::plain_str;
///
/// assert_eq!(plain_str(r#""click""#), Some("click"));
/// assert_eq!(plain_str(r#""a\"b""#), None);
/// assert_eq!(plain_str("true"), None);
/// ```
pub fn plain_str(raw: &str) -> Option<&str> {
    let text = raw.strip_prefix('"')?.strip_suffix('"')?;
    (!text.contains('\\')).then_some(text)
}

/// What a field's value is called when values are counted or grouped: a
/// string's own text, any other value's JSON text (`42`, `true`, `{"a":1}`),
/// and `null` for a JSON null or a field that is not there.
///
/// ```
/// use sluice_plugin::json::{Path, group_key};
///
/// let page = Path::parse("page");
/// let key = |payload: &[u8]| group_key(page.find(payload).unwrap()).unwrap().into_owned();
/// assert_eq!(key(br#"{"page":"/home"}"#), "/home");
/// assert_eq!(key(br#"{"page":"a\u0062"}"#), "ab");
/// assert_eq!(key(br#"{"page":7}"#), "7");
/// assert_eq!(key(br#"{"other":1}"#), "null");
/// ```
pub fn group_key(found: Option<&RawValue>) -> Result<std::borrow::Cow<'_, str>, serde_json::Error> {
    use std::borrow::Cow;
    let Some(raw) = found else {
        return Ok(Cow::Borrowed("null"));
    };
    let text = raw.get();
    if let Some(plain) = plain_str(text) {
        return Ok(Cow::Borrowed(plain));
    }
    if text.starts_with('"') {
        return serde_json::from_str::<String>(text).map(Cow::Owned);
    }
    Ok(Cow::Borrowed(text))
}

/// A field path, parsed once (in a plugin's `init`) and used on every event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    segments: Vec<String>,
}

impl Path {
    /// Parses a dotted path (`user.country`) or a JSON Pointer (`/user/country`,
    /// with `~1` for `/` and `~0` for `~`).
    pub fn parse(path: &str) -> Path {
        let segments = match path.strip_prefix('/') {
            Some(pointer) => pointer
                .split('/')
                .map(|s| s.replace("~1", "/").replace("~0", "~"))
                .collect(),
            None => path.split('.').map(str::to_owned).collect(),
        };
        Path { segments }
    }

    /// A path of one object key taken as it is: `a.b` is the key `a.b`, not
    /// `b` in `a`, and `/a` is the key `/a`.
    ///
    /// ```
    /// use sluice_plugin::json::Path;
    ///
    /// let field = Path::key("a.b").find(br#"{"a.b":1,"a":{"b":2}}"#).unwrap().unwrap();
    /// assert_eq!(field.get(), "1");
    /// ```
    pub fn key(key: &str) -> Path {
        Path {
            segments: vec![key.to_owned()],
        }
    }

    /// The path's object keys (or array indexes), outermost first.
    pub(crate) fn segments(&self) -> &[String] {
        &self.segments
    }

    /// Finds the field in a JSON payload without parsing the rest of it into
    /// values. `Ok(None)` when the field is absent; `Err` when the payload is
    /// not JSON. When a key repeats, the last one wins (as with [`Value`]).
    pub fn find<'a>(&self, payload: &'a [u8]) -> Result<Option<&'a RawValue>, serde_json::Error> {
        // The scanner answers valid payloads; `serde_json` the rest, with
        // its own errors.
        match scan::find(&self.segments, payload) {
            Ok(None) => return Ok(None),
            Ok(Some(at)) => {
                // The found value (only it) read again: a `RawValue` is
                // only made by deserializing.
                if let Ok(raw) = serde_json::from_slice(&payload[at]) {
                    return Ok(Some(raw));
                }
            }
            Err(scan::Unsure) => {}
        }
        self.find_with_serde(payload)
    }

    /// [`Path::find`] by `serde_json` alone.
    fn find_with_serde<'a>(
        &self,
        payload: &'a [u8],
    ) -> Result<Option<&'a RawValue>, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_slice(payload);
        let found = Walk(&self.segments).deserialize(&mut de)?;
        de.end()?;
        Ok(found)
    }

    /// Where the field's value lies in `payload`, to rewrite it in place.
    ///
    /// [`Span::Unsure`] when a key on the path repeats or the path goes
    /// through an array: rewriting one occurrence in place could leave
    /// another, so parse the payload into a [`Value`] instead.
    ///
    /// ```
    /// use sluice_plugin::json::{Path, Span};
    ///
    /// let payload = br#"{"user":{"email":"a@example.com"},"n":1}"#;
    /// let Span::At(at) = Path::parse("user.email").span(payload).unwrap() else { panic!() };
    /// assert_eq!(&payload[at], br#""a@example.com""#);
    /// assert_eq!(Path::parse("user.ip").span(payload).unwrap(), Span::Absent);
    /// let twice = br#"{"user":{"email":"a"},"user":{}}"#;
    /// assert_eq!(Path::parse("user.email").span(twice).unwrap(), Span::Unsure);
    /// ```
    pub fn span(&self, payload: &[u8]) -> Result<Span, serde_json::Error> {
        let mut spans = Path::spans(std::slice::from_ref(self), payload)?;
        Ok(spans.pop().unwrap_or(Span::Absent))
    }

    /// [`Path::span`] for several paths in one pass over `payload`: one
    /// [`Span`] per path, in order. A plugin that rewrites a few fields reads
    /// the payload once instead of once per field.
    ///
    /// A path is [`Span::Unsure`] when a key on it repeats, it goes through
    /// an array, or another of `paths` ends on its way (`user` and
    /// `user.email`): rewriting both in place is not well defined.
    ///
    /// ```
    /// use sluice_plugin::json::{Path, Span};
    ///
    /// let payload = br#"{"user":{"email":"a@example.com"},"ip":"10.0.0.1"}"#;
    /// let paths = [Path::parse("user.email"), Path::parse("ip"), Path::parse("port")];
    /// let spans = Path::spans(&paths, payload).unwrap();
    /// let Span::At(email) = &spans[0] else { panic!() };
    /// assert_eq!(&payload[email.clone()], br#""a@example.com""#);
    /// let Span::At(ip) = &spans[1] else { panic!() };
    /// assert_eq!(&payload[ip.clone()], br#""10.0.0.1""#);
    /// assert_eq!(spans[2], Span::Absent);
    /// ```
    pub fn spans(paths: &[Path], payload: &[u8]) -> Result<Vec<Span>, serde_json::Error> {
        match scan::spans(paths, payload) {
            Ok(spans) => Ok(spans),
            Err(scan::Unsure) => Path::spans_with_serde(paths, payload),
        }
    }

    /// [`Path::spans`] by `serde_json` alone.
    fn spans_with_serde(paths: &[Path], payload: &[u8]) -> Result<Vec<Span>, serde_json::Error> {
        let found = RefCell::new(vec![Found::default(); paths.len()]);
        let active: Vec<usize> = (0..paths.len()).collect();
        let mut de = serde_json::Deserializer::from_slice(payload);
        Walks {
            paths,
            active: &active,
            depth: 0,
            payload,
            found: &found,
        }
        .deserialize(&mut de)?;
        de.end()?;
        Ok(found
            .into_inner()
            .into_iter()
            .map(|f| match f {
                Found { unsure: true, .. } => Span::Unsure,
                Found { at: Some(at), .. } => Span::At(at),
                Found { at: None, .. } => Span::Absent,
            })
            .collect())
    }
}

/// Where [`Path::span`] found a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    /// The field is not there.
    Absent,
    /// The field's value is these bytes of the payload.
    At(Range<usize>),
    /// A key on the path repeats, or the path goes through an array.
    Unsure,
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.segments.join("."))
    }
}

/// Walks `segments` down a JSON document, skipping everything else.
struct Walk<'p>(&'p [String]);

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = Option<&'de RawValue>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        if self.0.is_empty() {
            return <&RawValue as de::Deserialize>::deserialize(d).map(Some);
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (want, rest) = (&self.0[0], &self.0[1..]);
        let mut found = None;
        while let Some(hit) = map.next_key_seed(KeyIs(want))? {
            if hit {
                found = map.next_value_seed(Walk(rest))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let want = self.0[0].parse::<usize>().ok();
        let mut found = None;
        let mut i = 0;
        loop {
            if Some(i) == want {
                match seq.next_element_seed(Walk(&self.0[1..]))? {
                    Some(v) => found = v,
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            i += 1;
        }
        Ok(found)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// What [`Path::spans`] found for one path so far.
#[derive(Debug, Clone, Default)]
struct Found {
    at: Option<Range<usize>>,
    unsure: bool,
}

/// Walks several paths down a JSON document at once: `active` are the
/// indexes of the paths whose first `depth` segments led here.
struct Walks<'p> {
    paths: &'p [Path],
    active: &'p [usize],
    depth: usize,
    payload: &'p [u8],
    found: &'p RefCell<Vec<Found>>,
}

impl Walks<'_> {
    fn unsure(&self, which: impl IntoIterator<Item = usize>) {
        let mut found = self.found.borrow_mut();
        for i in which {
            found[i].unsure = true;
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walks<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let ends = |&i: &usize| self.paths[i].segments.len() == self.depth;
        if self.active.iter().any(&ends) {
            // Paths that go on below a path that ends here cannot both be
            // rewritten in place.
            self.unsure(self.active.iter().copied().filter(|i| !ends(i)));
            let raw = <&RawValue as de::Deserialize>::deserialize(d)?;
            // `raw` is borrowed from the payload: its offset is where it lies.
            let start = raw.get().as_ptr() as usize - self.payload.as_ptr() as usize;
            let mut found = self.found.borrow_mut();
            for i in self.active.iter().copied().filter(|i| ends(i)) {
                found[i].at = Some(start..start + raw.get().len());
            }
            return Ok(());
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walks<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Paths met on a key of this object, to notice a key that repeats.
        let mut met: Vec<usize> = Vec::new();
        while let Some(hits) = map.next_key_seed(KeyIn(self.paths, self.active, self.depth))? {
            if hits.is_empty() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            self.unsure(hits.iter().copied().filter(|i| met.contains(i)));
            met.extend(&hits);
            map.next_value_seed(Walks {
                active: &hits,
                depth: self.depth + 1,
                ..self
            })?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.unsure(self.active.iter().copied());
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// Reads an object key and says which of the `active` paths it continues
/// (their segment at `depth`); allocates only for a key on a path.
struct KeyIn<'p>(&'p [Path], &'p [usize], usize);

impl<'de> DeserializeSeed<'de> for KeyIn<'_> {
    type Value = Vec<usize>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Vec<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIn<'_> {
    type Value = Vec<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<Vec<usize>, E> {
        let KeyIn(paths, active, depth) = self;
        Ok(active
            .iter()
            .copied()
            .filter(|&i| paths[i].segments[depth] == key)
            .collect())
    }
}

/// Reads an object key and says whether it is the wanted one, without
/// allocating unless the key has escapes.
struct KeyIs<'p>(&'p str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(path: &str, json: &str) -> Option<String> {
        Path::parse(path)
            .find(json.as_bytes())
            .unwrap()
            .map(|r| r.get().to_owned())
    }

    #[test]
    fn finds_what_lookup_finds() {
        let doc = r#"{"a":{"b":[10,{"c":"x\"y"}],"d":null},"e.f":1,"k":1,"k":2}"#;
        let value: Value = serde_json::from_str(doc).unwrap();
        for path in [
            "a", "a.b", "a.b.0", "a.b.1.c", "a.b.2", "a.d", "a.d.x", "/a/b/1/c", "/e.f", "e", "k",
            "a.b.x", "missing", "/a/b/1",
        ] {
            let lazy = find(path, doc).map(|t| serde_json::from_str::<Value>(&t).unwrap());
            assert_eq!(lazy.as_ref(), lookup(&value, path), "path {path}");
        }
    }

    #[test]
    fn pointer_escapes_and_escaped_keys() {
        assert_eq!(
            find("/a~1b/c~0d", r#"{"a/b":{"c~d":true}}"#).as_deref(),
            Some("true")
        );
        assert_eq!(
            find("caf\u{e9}", r#"{"caf\u00e9":3}"#).as_deref(),
            Some("3")
        );
    }

    #[test]
    fn spans_in_one_pass_are_the_spans_one_by_one() {
        let docs = [
            r#"{"a":{"b":1,"c":"x\"y"},"d":[1,2],"e":null,"k":1,"k":2}"#,
            r#"{"a":{"b":{"c":3}},"a2":true}"#,
            r#"{"a":"s","d":{"0":1}}"#,
            "{}",
        ];
        let sets: [&[&str]; 6] = [
            &["a.b", "a.c", "e"],
            &["a.c", "missing", "a.b.c"],
            &["d.0", "d", "k"],
            &["a", "a.b"],
            &["a.b", "a.b"],
            &["/a/b/c", "a2", "e.x"],
        ];
        for doc in docs {
            for set in sets {
                let paths: Vec<Path> = set.iter().map(|p| Path::parse(p)).collect();
                let all = Path::spans(&paths, doc.as_bytes()).unwrap();
                for (path, got) in paths.iter().zip(&all) {
                    let one = path.span(doc.as_bytes()).unwrap();
                    // A path on whose way another path of the set ends
                    // (and is there) is unsure; otherwise the two agree.
                    let prefix_there = paths.iter().any(|q| {
                        q.segments.len() < path.segments.len()
                            && path.segments.starts_with(&q.segments)
                            && matches!(q.span(doc.as_bytes()).unwrap(), Span::At(_))
                    });
                    if prefix_there {
                        assert_eq!(got, &Span::Unsure, "{path} in {set:?} of {doc}");
                    } else {
                        assert_eq!(got, &one, "{path} in {set:?} of {doc}");
                    }
                }
            }
        }
        assert!(Path::spans(&[Path::parse("a")], br#"{"a":1} x"#).is_err());
    }

    /// The scanner (`scan.rs`) answers only what `serde_json` answers the
    /// same: on seeds and on every one-byte deletion, insertion and
    /// replacement of them, whenever the scanner is sure, `serde_json`
    /// agrees (same values or spans); and the scanner is sure of the valid
    /// seeds, so the fast path is the one taken.
    #[test]
    fn the_scanner_agrees_with_serde_json() {
        let seeds = [
            r#"{"type":"page_view","user":{"id":"u-1","email":"a@example.com"},"ip":"198.51.100.23","n":-1.5e3,"ok":true,"none":null}"#,
            r#"{"kind":"click","items":[{"sku":"S-1","qty":1},{"sku":"S-2","qty":2}],"note":"x\"y\\z\u00e9\n","user":{"email":"b"}}"#,
            r#" { "user" : { "email" : "c" , "email" : "d" } , "type" : [ 1 , 2 ] } "#,
            "{\"caf\u{e9}\":\"th\u{e9}\",\"type\":\"v\",\"deep\":[[[{\"a\":[{}]}]]],\"e\":0,\"f\":10.25}",
            r#"{"type":{"x":1},"user":"plain","ip":[],"items":{}}"#,
            r#"[{"type":"a"},"b",3]"#,
            r#""type""#,
        ];
        let paths = [
            "type",
            "user.email",
            "user",
            "items.1.sku",
            "items.0",
            "ip",
            "/note",
            "caf\u{e9}",
            "deep.0.0.0.a",
            "0.type",
            "e",
        ]
        .map(Path::parse);
        let specials = b"{}[]\",:\\ 0-9e.+tnu\x01\x7f\xff\xc3\xa9";
        let mut docs: Vec<Vec<u8>> = seeds.iter().map(|s| s.as_bytes().to_vec()).collect();
        for seed in seeds {
            let seed = seed.as_bytes();
            for at in 0..=seed.len() {
                for &c in specials {
                    let mut doc = seed.to_vec();
                    doc.insert(at, c);
                    docs.push(doc);
                    if at < seed.len() {
                        let mut doc = seed.to_vec();
                        doc[at] = c;
                        docs.push(doc);
                    }
                }
                if at < seed.len() {
                    let mut doc = seed.to_vec();
                    doc.remove(at);
                    docs.push(doc);
                }
            }
        }
        let (mut sure, mut checked) = (0, 0);
        for doc in &docs {
            let text = String::from_utf8_lossy(doc);
            for path in &paths {
                checked += 1;
                if let Ok(fast) = scan::find(&path.segments, doc) {
                    sure += 1;
                    let slow = path.find_with_serde(doc);
                    let slow = slow.map(|v| v.map(|raw| raw.get().as_bytes()));
                    let fast = fast.map(|at| &doc[at]);
                    assert_eq!(slow.ok(), Some(fast), "{path} in {text}");
                }
            }
            if let Ok(fast) = scan::spans(&paths, doc) {
                let slow = Path::spans_with_serde(&paths, doc);
                assert_eq!(slow.ok(), Some(fast), "spans in {text}");
            }
        }
        // Most mutations break the JSON; the seeds and many others do not.
        assert!(
            sure > checked / 5,
            "the scanner was sure of {sure} of {checked}"
        );
        for seed in &seeds[..5] {
            for path in &paths {
                let fast = scan::find(&path.segments, seed.as_bytes());
                assert!(fast.is_ok(), "{path} in {seed}");
            }
            assert!(scan::spans(&paths, seed.as_bytes()).is_ok(), "{seed}");
        }
    }

    #[test]
    fn rejects_what_is_not_json() {
        for bad in [
            "",
            "{",
            r#"{"a":1} x"#,
            r#"{"a":}"#,
            "[1,]",
            r#"{"a":"\q"}"#,
        ] {
            assert!(Path::parse("a").find(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}
