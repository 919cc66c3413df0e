//! The pipeline config's JSON Schema, derived from its serde types
//! ([`super::raw`] and the destination tables), so it cannot drift from
//! what Sluice reads. Editors (Taplo, Even Better TOML) use it to complete
//! and check a `pipeline.toml` as it is typed; `sluice config schema`
//! prints it.
//!
//! The schema checks the shape of the file (tables, fields, types, enums,
//! the name rule). Rules that span fields (a route naming a destination that
//! exists, a FIFO queue's group id) are the config's own checks, which
//! `sluice check` runs.

/// The `$id` the schema carries, where the repository keeps a copy.
pub const ID: &str = "https://github.com/sluice-rs/sluice/raw/main/docs/pipeline.schema.json";

/// The JSON Schema (draft 2020-12) of a pipeline config file.
///
/// ```
/// let schema = sluice_core::config::schema::json_schema();
/// assert_eq!(schema["title"], "Sluice pipeline config");
/// assert!(schema["properties"]["steps"].is_object());
/// ```
pub fn json_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(super::raw::Config).to_value();
    if let Some(object) = schema.as_object_mut() {
        object.insert("$id".into(), ID.into());
        object.insert("title".into(), "Sluice pipeline config".into());
        object.insert(
            "description".into(),
            "A Sluice pipeline: its steps (WebAssembly plugins), destinations, \
             routing, source format and metrics. See docs/config.md."
                .into(),
        );
    }
    schema
}
