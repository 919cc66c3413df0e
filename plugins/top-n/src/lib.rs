//! Sluice example plugin `top-n`, an aggregate: the `n` most frequent values
//! of one field in each tumbling window.
//!
//! Settings: `{ field = "<dotted path or JSON Pointer>", n = 10 }`. When the
//! window closes it emits one output:
//!
//! ```json
//! {"window": {"start": "2026-12-07T10:00:00Z", "end": "2026-12-07T11:00:00Z"},
//!  "field": "page", "top": [{"value": "/home", "count": 12}, {"value": "/cart", "count": 3}]}
//! ```
//!
//! Most frequent first; equal counts in value order. Values are named as
//! `count-by` names them (`null` for a missing field). The state keeps every
//! value's count, so that the top is exact: size it for the distinct values
//! of a window, as for `count-by`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sluice_plugin::json::{Path, group_key};
use sluice_plugin::{Aggregate, Event, Failure, Output, Window};

/// The step's `config`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The field whose values are ranked.
    pub field: String,
    /// How many values to emit.
    #[serde(default = "ten")]
    pub n: usize,
}

fn ten() -> usize {
    10
}

/// The plugin.
pub struct TopN {
    path: Path,
    field: String,
    n: usize,
}

/// One ranked value.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Ranked {
    /// The value.
    pub value: String,
    /// Events with it.
    pub count: u64,
}

/// What one window emits.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct WindowTop {
    /// The window, in RFC 3339.
    pub window: BTreeMap<String, String>,
    /// The field ranked, as the settings name it.
    pub field: String,
    /// The most frequent values, most frequent first.
    pub top: Vec<Ranked>,
}

impl Aggregate for TopN {
    type Settings = Settings;
    type State = BTreeMap<String, u64>;

    fn init(settings: Settings) -> Result<Self, String> {
        if settings.field.is_empty() || settings.n == 0 {
            return Err("`field` must name a field and `n` be at least 1".into());
        }
        Ok(TopN {
            path: Path::parse(&settings.field),
            field: settings.field,
            n: settings.n,
        })
    }

    fn fold(&self, _: &Window, counts: &mut Self::State, event: &Event) -> Result<(), Failure> {
        let found = self
            .path
            .find(&event.data)
            .map_err(|e| Failure::Invalid(format!("payload is not JSON: {e}")))?;
        let key =
            group_key(found).map_err(|e| Failure::Invalid(format!("field is not JSON: {e}")))?;
        match counts.get_mut(key.as_ref()) {
            Some(n) => *n += 1,
            None => {
                counts.insert(key.into_owned(), 1);
            }
        }
        Ok(())
    }

    fn emit(&self, window: &Window, counts: Self::State) -> Result<Vec<Output>, String> {
        let mut ranked: Vec<(String, u64)> = counts.into_iter().collect();
        // Most frequent first; the map's order (by value) breaks ties.
        ranked.sort_by_key(|r| std::cmp::Reverse(r.1));
        ranked.truncate(self.n);
        let out = WindowTop {
            window: [
                ("start".to_owned(), window.start.clone()),
                ("end".to_owned(), window.end.clone()),
            ]
            .into(),
            field: self.field.clone(),
            top: ranked
                .into_iter()
                .map(|(value, count)| Ranked { value, count })
                .collect(),
        };
        Ok(vec![Output::json(&out).map_err(|e| format!("{e:?}"))?])
    }
}

sluice_plugin::export_aggregate!(TopN);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_frequent_first_ties_by_value() {
        let window = Window {
            start_ms: 0,
            end_ms: 1000,
            start: "1970-01-01T00:00:00Z".into(),
            end: "1970-01-01T00:00:01Z".into(),
        };
        let plugin = TopN::init(Settings {
            field: "p".into(),
            n: 2,
        })
        .unwrap();
        let mut counts = BTreeMap::new();
        for p in ["c", "b", "a", "b", "c", "d"] {
            let e = Event::from_data(format!(r#"{{"p":"{p}"}}"#));
            plugin.fold(&window, &mut counts, &e).unwrap();
        }
        let out = plugin.emit(&window, counts).unwrap();
        let top: WindowTop = serde_json::from_slice(&out[0].data).unwrap();
        let names: Vec<_> = top
            .top
            .iter()
            .map(|r| (r.value.as_str(), r.count))
            .collect();
        assert_eq!(names, [("b", 2), ("c", 2)]);
        assert_eq!(top.window["start"], "1970-01-01T00:00:00Z");
    }
}
