//! {{name}}: a Sluice `route` plugin. Sends events whose `urgent` field is
//! `true` to the destination named by the `urgent` setting; the others go to
//! the pipeline's default destination.

use serde::Deserialize;
use sluice_plugin::{Event, Failure, Route};

/// The step's `config` table.
#[derive(Deserialize)]
pub struct Settings {
    /// The destination urgent events go to.
    urgent: String,
}

/// The plugin: its settings, read once per instance.
pub struct Plugin(Settings);

impl Route for Plugin {
    type Settings = Settings;

    fn init(settings: Settings) -> Result<Self, String> {
        sluice_plugin::debug!("urgent events go to {}", settings.urgent);
        Ok(Plugin(settings))
    }

    fn route(&self, event: &Event) -> Result<Vec<String>, Failure> {
        let payload: serde_json::Value = serde_json::from_slice(&event.data)
            .map_err(|e| Failure::Invalid(format!("payload is not JSON: {e}")))?;
        // `[]`: the pipeline's default destination.
        Ok(if payload["urgent"] == serde_json::Value::Bool(true) {
            vec![self.0.urgent.clone()]
        } else {
            vec![]
        })
    }
}

sluice_plugin::export_route!(Plugin);
