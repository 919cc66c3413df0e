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
use sluice_plugin::{Event, Failure, Route, json};

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
pub struct FieldRoute(Settings);

impl Route for FieldRoute {
    type Settings = Settings;

    fn init(s: Settings) -> Result<Self, String> {
        if let Some((value, _)) = s.routes.iter().find(|(_, to)| to.is_empty()) {
            return Err(format!("route for `{value}` lists no destination"));
        }
        Ok(FieldRoute(s))
    }

    fn route(&self, event: &Event) -> Result<Vec<String>, Failure> {
        let payload: Value = event.json()?;
        let routes = match json::lookup(&payload, &self.0.field) {
            Some(Value::String(s)) => self.0.routes.get(s.as_str()),
            Some(other) => self.0.routes.get(&other.to_string()),
            None => None,
        };
        Ok(routes.unwrap_or(&self.0.default).clone())
    }
}

sluice_plugin::export_route!(FieldRoute);
