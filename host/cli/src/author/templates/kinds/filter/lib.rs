//! {{name}}: a Sluice `filter` plugin. Drops events whose `type` field equals
//! the `drop_type` setting; keeps the others.

use serde::Deserialize;
use sluice_plugin::{Event, Failure, Filter};

/// The step's `config` table.
#[derive(Deserialize)]
pub struct Settings {
    /// Events whose `type` is this are dropped.
    drop_type: String,
}

/// The plugin: its settings, read once per instance.
pub struct Plugin(Settings);

impl Filter for Plugin {
    type Settings = Settings;

    fn init(settings: Settings) -> Result<Self, String> {
        sluice_plugin::debug!("dropping events of type {}", settings.drop_type);
        Ok(Plugin(settings))
    }

    fn filter(&self, event: &Event) -> Result<bool, Failure> {
        let payload: serde_json::Value = serde_json::from_slice(&event.data)
            .map_err(|e| Failure::Invalid(format!("payload is not JSON: {e}")))?;
        Ok(payload["type"].as_str() != Some(self.0.drop_type.as_str()))
    }
}

sluice_plugin::export_filter!(Plugin);
