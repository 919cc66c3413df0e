//! Example `filter` plugin: keeps events whose JSON field matches a configured value.
//!
//! Build with `cargo build -p filter-field --target wasm32-wasip2 --release`.
//!
//! Settings (the step's `config` table):
//!
//! | key | meaning |
//! |---|---|
//! | `field` | path of the field: `type`, `user.country` or a JSON Pointer `/user/country` |
//! | `equals` | keep events whose field equals this value |
//! | `one_of` | keep events whose field equals one of these values (instead of `equals`) |
//! | `negate` | `true` inverts the match: keep events whose field does *not* match (default `false`) |
//! | `keep_if_missing` | what to do when the field is absent (default `false`: drop) |
//!
//! A payload that is not JSON fails with `invalid`.

use serde::Deserialize;
use serde_json::Value;
use sluice_plugin::json::{self, Path};
use sluice_plugin::{Event, Failure, Filter};

/// The step's settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    field: String,
    equals: Option<Value>,
    one_of: Option<Vec<Value>>,
    #[serde(default)]
    negate: bool,
    #[serde(default)]
    keep_if_missing: bool,
}

/// Keeps events whose field matches.
pub struct FieldFilter {
    field: Path,
    values: Vec<Value>,
    negate: bool,
    keep_if_missing: bool,
}

impl Filter for FieldFilter {
    type Settings = Settings;

    fn init(s: Settings) -> Result<Self, String> {
        let values = match (s.equals, s.one_of) {
            (Some(v), None) => vec![v],
            (None, Some(vs)) if !vs.is_empty() => vs,
            (None, Some(_)) => return Err("`one_of` must list at least one value".into()),
            (Some(_), Some(_)) => return Err("set `equals` or `one_of`, not both".into()),
            (None, None) => return Err("missing `equals` (or `one_of`)".into()),
        };
        if s.field.is_empty() {
            return Err("`field` must not be empty".into());
        }
        Ok(FieldFilter {
            field: Path::parse(&s.field),
            values,
            negate: s.negate,
            keep_if_missing: s.keep_if_missing,
        })
    }

    fn filter(&self, event: &Event) -> Result<bool, Failure> {
        // Only the field is parsed into a value; the rest is scanned.
        let field = self.field.find(&event.data).map_err(not_json)?;
        Ok(match field {
            None => self.keep_if_missing,
            Some(raw) => {
                // A string without escapes is compared where it lies; any
                // other value is parsed.
                let hit = match json::plain_str(raw.get()) {
                    Some(text) => self.values.iter().any(|v| v.as_str() == Some(text)),
                    None => {
                        let v: Value = serde_json::from_str(raw.get()).map_err(not_json)?;
                        self.values.contains(&v)
                    }
                };
                hit != self.negate
            }
        })
    }
}

fn not_json(e: serde_json::Error) -> Failure {
    Failure::Invalid(format!("payload is not the expected JSON: {e}"))
}

sluice_plugin::export_filter!(FieldFilter);

#[cfg(test)]
mod tests {
    use super::*;

    fn keeps(settings: serde_json::Value, data: &str) -> Result<bool, Failure> {
        let f = FieldFilter::init(serde_json::from_value(settings).unwrap()).unwrap();
        f.filter(&Event::from_data(data))
    }

    #[test]
    fn strings_with_and_without_escapes_and_other_values_match_alike() {
        let s = || serde_json::json!({"field": "kind", "one_of": ["click", 7, true, "a\"b"]});
        for (data, keep) in [
            (r#"{"kind":"click"}"#, true),
            (r#"{"kind":"cl\u0069ck"}"#, true),
            (r#"{"kind":"a\"b"}"#, true),
            (r#"{"kind":"clicks"}"#, false),
            (r#"{"kind":7}"#, true),
            (r#"{"kind":7.0}"#, false),
            (r#"{"kind":true}"#, true),
            (r#"{"kind":"true"}"#, false),
            (r#"{"kind":null}"#, false),
            (r#"{"kind":"x","kind":"click"}"#, true),
            (r#"{"other":1}"#, false),
        ] {
            assert_eq!(keeps(s(), data).unwrap(), keep, "{data}");
        }
        assert!(keeps(s(), r#"{"kind":"click""#).is_err());
        assert!(keeps(s(), r#"{"kind":"\q"}"#).is_err());
    }
}
