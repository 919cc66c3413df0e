//! Sluice example plugin `count-by`, an aggregate: counts the events of each
//! tumbling window by the value of one field.
//!
//! Settings: `{ field = "<dotted path or JSON Pointer>" }`. When the window
//! closes it emits one output:
//!
//! ```json
//! {"window": {"start": "2026-12-07T10:00:00Z", "end": "2026-12-07T10:01:00Z"},
//!  "field": "page", "counts": {"/home": 12, "/cart": 3, "null": 1}}
//! ```
//!
//! A string counts under its own text, any other value under its JSON text,
//! and an event without the field (or with `null`) under `null`. A payload
//! that is not JSON fails (`invalid`) and is not counted. The state is the
//! counts: about 30 bytes of JSON per distinct value (BENCHMARKS.md).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sluice_plugin::json::{Path, group_key};
use sluice_plugin::{Aggregate, Event, Failure, Output, Window};

/// The step's `config`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The field whose values are counted.
    pub field: String,
}

/// The plugin: the parsed path and how it was written.
pub struct CountBy {
    path: Path,
    field: String,
}

/// What one window emits.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct WindowCounts {
    /// The window, in RFC 3339.
    pub window: Span,
    /// The field counted, as the settings name it.
    pub field: String,
    /// Events per value.
    pub counts: BTreeMap<String, u64>,
}

/// A window's start and end.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Span {
    /// When it opens.
    pub start: String,
    /// When it closes.
    pub end: String,
}

/// Counts `event` in `counts` under its value at `path`.
pub fn count(
    path: &Path,
    counts: &mut BTreeMap<String, u64>,
    event: &Event,
) -> Result<(), Failure> {
    let found = path
        .find(&event.data)
        .map_err(|e| Failure::Invalid(format!("payload is not JSON: {e}")))?;
    let key = group_key(found).map_err(|e| Failure::Invalid(format!("field is not JSON: {e}")))?;
    match counts.get_mut(key.as_ref()) {
        Some(n) => *n += 1,
        None => {
            counts.insert(key.into_owned(), 1);
        }
    }
    Ok(())
}

impl Aggregate for CountBy {
    type Settings = Settings;
    type State = BTreeMap<String, u64>;

    fn init(settings: Settings) -> Result<Self, String> {
        if settings.field.is_empty() {
            return Err("`field` must name a field".into());
        }
        Ok(CountBy {
            path: Path::parse(&settings.field),
            field: settings.field,
        })
    }

    fn fold(&self, _: &Window, counts: &mut Self::State, event: &Event) -> Result<(), Failure> {
        count(&self.path, counts, event)
    }

    fn emit(&self, window: &Window, counts: Self::State) -> Result<Vec<Output>, String> {
        let out = WindowCounts {
            window: Span {
                start: window.start.clone(),
                end: window.end.clone(),
            },
            field: self.field.clone(),
            counts,
        };
        Ok(vec![Output::json(&out).map_err(|e| format!("{e:?}"))?])
    }
}

sluice_plugin::export_aggregate!(CountBy);

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> Window {
        Window {
            start_ms: 0,
            end_ms: 60_000,
            start: "1970-01-01T00:00:00Z".into(),
            end: "1970-01-01T00:01:00Z".into(),
        }
    }

    #[test]
    fn counts_by_value_with_null_for_a_missing_field() {
        let plugin = CountBy::init(Settings {
            field: "page".into(),
        })
        .unwrap();
        let mut counts = BTreeMap::new();
        for data in [
            r#"{"page":"/a"}"#,
            r#"{"page":"/a"}"#,
            r#"{"page":7}"#,
            r#"{"other":1}"#,
        ] {
            plugin
                .fold(&window(), &mut counts, &Event::from_data(data))
                .unwrap();
        }
        let bad = plugin.fold(&window(), &mut counts, &Event::from_data("nope"));
        assert!(matches!(bad, Err(Failure::Invalid(_))));
        let out = plugin.emit(&window(), counts).unwrap();
        let emitted: WindowCounts = serde_json::from_slice(&out[0].data).unwrap();
        assert_eq!(emitted.field, "page");
        assert_eq!(emitted.window.end, "1970-01-01T00:01:00Z");
        let expected: BTreeMap<String, u64> =
            [("/a".into(), 2), ("7".into(), 1), ("null".into(), 1)].into();
        assert_eq!(emitted.counts, expected);
    }
}
