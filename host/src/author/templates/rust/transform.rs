//! {{name}}: a Sluice `transform` plugin. Adds `"processed_by": <stamp>` to
//! every JSON object payload and keeps the event's attributes.

use std::sync::OnceLock;

use serde_json::Value;

wit_bindgen::generate!({ path: "wit", world: "transform" });

use sluice::plugin::log::{Level, log};

/// The `stamp` setting, set once by `init`.
static STAMP: OnceLock<String> = OnceLock::new();

struct Plugin;

impl Guest for Plugin {
    fn init(settings: String) -> Result<(), String> {
        let settings: Value = serde_json::from_str(&settings).map_err(|e| e.to_string())?;
        let stamp = settings["stamp"]
            .as_str()
            .ok_or("missing `stamp` (a string)")?;
        log(Level::Debug, &format!("stamping events with {stamp}"));
        let _ = STAMP.set(stamp.to_owned());
        Ok(())
    }

    fn transform(batch: Vec<Event>) -> Vec<Result<Vec<Output>, Failure>> {
        let stamp = STAMP.get().cloned().unwrap_or_default();
        batch
            .into_iter()
            .map(|event| {
                let mut payload: Value = serde_json::from_slice(&event.data)
                    .map_err(|e| Failure::Invalid(format!("payload is not JSON: {e}")))?;
                let Some(fields) = payload.as_object_mut() else {
                    return Err(Failure::Invalid("payload is not a JSON object".into()));
                };
                fields.insert("processed_by".into(), Value::from(stamp.as_str()));
                Ok(vec![Output {
                    data: payload.to_string().into_bytes(),
                    partition_key: None,
                    attributes: event.attributes,
                }])
            })
            .collect()
    }
}

export!(Plugin);
