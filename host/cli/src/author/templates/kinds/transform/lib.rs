//! {{name}}: a Sluice `transform` plugin. Adds `"processed_by": <stamp>` to
//! every JSON object payload and keeps the event's attributes.

use serde::Deserialize;
use serde_json::Value;
use sluice_plugin::{Event, Failure, Output, Transform};

/// The step's `config` table.
#[derive(Deserialize)]
pub struct Settings {
    /// What `processed_by` is set to.
    stamp: String,
}

/// The plugin: its settings, read once per instance.
pub struct Plugin(Settings);

impl Transform for Plugin {
    type Settings = Settings;

    fn init(settings: Settings) -> Result<Self, String> {
        sluice_plugin::debug!("stamping events with {}", settings.stamp);
        Ok(Plugin(settings))
    }

    fn transform(&self, event: Event) -> Result<Vec<Output>, Failure> {
        let mut payload: Value = serde_json::from_slice(&event.data)
            .map_err(|e| Failure::Invalid(format!("payload is not JSON: {e}")))?;
        let Some(fields) = payload.as_object_mut() else {
            return Err(Failure::Invalid("payload is not a JSON object".into()));
        };
        fields.insert("processed_by".into(), Value::from(self.0.stamp.as_str()));
        Ok(vec![event.output(payload.to_string().into_bytes())])
    }
}

sluice_plugin::export_transform!(Plugin);
