//! {{name}}: a Sluice `filter` plugin. Drops events whose `type` field equals
//! the `drop_type` setting; keeps the others.

use std::sync::OnceLock;

use serde_json::Value;

wit_bindgen::generate!({ path: "wit", world: "filter" });

use sluice::plugin::log::{Level, log};

/// The `drop_type` setting, set once by `init`.
static DROP_TYPE: OnceLock<String> = OnceLock::new();

struct Plugin;

impl Guest for Plugin {
    fn init(settings: String) -> Result<(), String> {
        let settings: Value = serde_json::from_str(&settings).map_err(|e| e.to_string())?;
        let drop_type = settings["drop_type"]
            .as_str()
            .ok_or("missing `drop_type` (a string)")?;
        log(Level::Debug, &format!("dropping events of type {drop_type}"));
        let _ = DROP_TYPE.set(drop_type.to_owned());
        Ok(())
    }

    fn filter(batch: Vec<Event>) -> Vec<Result<bool, Failure>> {
        let drop_type = DROP_TYPE.get().map(String::as_str);
        batch
            .iter()
            .map(|event| {
                let payload: Value = serde_json::from_slice(&event.data)
                    .map_err(|e| Failure::Invalid(format!("payload is not JSON: {e}")))?;
                Ok(payload["type"].as_str() != drop_type)
            })
            .collect()
    }
}

export!(Plugin);
