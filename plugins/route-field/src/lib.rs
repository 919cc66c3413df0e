//! Example `route` plugin: chooses destinations from a JSON field, with a default.
//!
//! Build with `cargo build -p route-field --target wasm32-wasip2 --release`.
//!
//! Settings (the step's `config` table):
//!
//! | key | meaning |
//! |---|---|
//! | `field` | path of the field to route on: `type`, `a.b` or `/a/b` |
//! | `routes` | table from field value to the destination names it goes to |
//! | `default` | destinations for any other value or a missing field (default `[]`: the pipeline's default destination) |
//!
//! Field values that are not strings are matched by their JSON text (`true`, `42`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use sluice_plugin::json::{self, Path};
use sluice_plugin::{Event, Failure, Route};

/// The step's settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    field: String,
    routes: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    default: Vec<String>,
}

/// Routes on one field.
pub struct FieldRoute {
    field: Path,
    routes: BTreeMap<String, Vec<String>>,
    default: Vec<String>,
}

impl Route for FieldRoute {
    type Settings = Settings;

    fn init(s: Settings) -> Result<Self, String> {
        if let Some((value, _)) = s.routes.iter().find(|(_, to)| to.is_empty()) {
            return Err(format!("route for `{value}` lists no destination"));
        }
        Ok(FieldRoute {
            field: Path::parse(&s.field),
            routes: s.routes,
            default: s.default,
        })
    }

    fn route(&self, event: &Event) -> Result<Vec<String>, Failure> {
        // Only the field is parsed into a value; the rest is scanned.
        let field = self.field.find(&event.data).map_err(not_json)?;
        let routes = match field {
            // A string without escapes is looked up where it lies; any
            // other value is parsed (a number or `true` routes by its text).
            Some(raw) => match json::plain_str(raw.get()) {
                Some(text) => self.routes.get(text),
                None => match serde_json::from_str(raw.get()).map_err(not_json)? {
                    Value::String(s) => self.routes.get(s.as_str()),
                    other => self.routes.get(&other.to_string()),
                },
            },
            None => None,
        };
        Ok(routes.unwrap_or(&self.default).clone())
    }
}

fn not_json(e: serde_json::Error) -> Failure {
    Failure::Invalid(format!("payload is not the expected JSON: {e}"))
}

sluice_plugin::export_route!(FieldRoute);

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(data: &str) -> Result<Vec<String>, Failure> {
        let settings = serde_json::json!({
            "field": "kind",
            "routes": {"click": ["a"], "7": ["n"], "true": ["t"], "a\"b": ["q"]},
            "default": ["d"],
        });
        let r = FieldRoute::init(serde_json::from_value(settings).unwrap()).unwrap();
        r.route(&Event::from_data(data))
    }

    #[test]
    fn strings_with_and_without_escapes_and_other_values_route_alike() {
        for (data, to) in [
            (r#"{"kind":"click"}"#, "a"),
            (r#"{"kind":"cl\u0069ck"}"#, "a"),
            (r#"{"kind":"a\"b"}"#, "q"),
            (r#"{"kind":7}"#, "n"),
            (r#"{"kind":true}"#, "t"),
            (r#"{"kind":"true"}"#, "t"),
            (r#"{"kind":null}"#, "d"),
            (r#"{"kind":"view"}"#, "d"),
            (r#"{"kind":"x","kind":"click"}"#, "a"),
            (r#"{"other":1}"#, "d"),
        ] {
            assert_eq!(routes(data).unwrap(), [to], "{data}");
        }
        assert!(routes(r#"{"kind":"click""#).is_err());
    }
}
