//! {{name}}: a Sluice `route` plugin. Sends events whose `urgent` field is
//! `true` to the destination named by the `urgent` setting; the others go to
//! the pipeline's default destination.

use std::sync::OnceLock;

use serde_json::Value;

wit_bindgen::generate!({ path: "wit", world: "route" });

use sluice::plugin::log::{Level, log};

/// The `urgent` setting, set once by `init`.
static URGENT: OnceLock<String> = OnceLock::new();

struct Plugin;

impl Guest for Plugin {
    fn init(settings: String) -> Result<(), String> {
        let settings: Value = serde_json::from_str(&settings).map_err(|e| e.to_string())?;
        let urgent = settings["urgent"]
            .as_str()
            .ok_or("missing `urgent` (a destination name)")?;
        log(Level::Debug, &format!("urgent events go to {urgent}"));
        let _ = URGENT.set(urgent.to_owned());
        Ok(())
    }

    fn route(batch: Vec<Event>) -> Vec<Result<Vec<String>, Failure>> {
        let urgent = URGENT.get().cloned().unwrap_or_default();
        batch
            .iter()
            .map(|event| {
                let payload: Value = serde_json::from_slice(&event.data)
                    .map_err(|e| Failure::Invalid(format!("payload is not JSON: {e}")))?;
                // `[]`: the pipeline's default destination.
                Ok(if payload["urgent"] == Value::Bool(true) {
                    vec![urgent.clone()]
                } else {
                    vec![]
                })
            })
            .collect()
    }
}

export!(Plugin);
