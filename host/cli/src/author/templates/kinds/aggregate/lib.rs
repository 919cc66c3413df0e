//! {{name}}: a Sluice `aggregate` plugin. Counts each tumbling window's
//! events by their `type` field (the `field` setting names another) and, when
//! the window closes, emits `{"window": {...}, "counts": {"<type>": n}}`.

use std::collections::BTreeMap;

use serde::Deserialize;
use sluice_plugin::{Aggregate, Event, Failure, Output, Window};

/// The step's `config` table.
#[derive(Deserialize)]
pub struct Settings {
    /// The top-level field whose values are counted.
    field: String,
}

/// The plugin: its settings, read once per instance.
pub struct Plugin(Settings);

impl Aggregate for Plugin {
    type Settings = Settings;
    /// Events per value: Lambda carries it, as JSON, between the
    /// invocations of a window.
    type State = BTreeMap<String, u64>;

    fn init(settings: Settings) -> Result<Self, String> {
        sluice_plugin::debug!("counting events by {}", settings.field);
        Ok(Plugin(settings))
    }

    fn fold(&self, _: &Window, counts: &mut Self::State, event: &Event) -> Result<(), Failure> {
        let payload: serde_json::Value = serde_json::from_slice(&event.data)
            .map_err(|e| Failure::Invalid(format!("payload is not JSON: {e}")))?;
        let value = match &payload[&self.0.field] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        *counts.entry(value).or_default() += 1;
        Ok(())
    }

    fn emit(&self, window: &Window, counts: Self::State) -> Result<Vec<Output>, String> {
        let doc = serde_json::json!({
            "window": {"start": window.start, "end": window.end},
            "counts": counts,
        });
        Ok(vec![Output::json(&doc).map_err(|e| format!("{e:?}"))?])
    }
}

sluice_plugin::export_aggregate!(Plugin);
