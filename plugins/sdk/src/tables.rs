//! Lookup tables: rows the host loaded at cold start (`[tables.NAME]` in
//! the pipeline config) and shares with every instance, read by key.
//!
//! A step reads only the tables whose `steps` name it; asking for another
//! is an `Err` naming the table, the step and the tables it may read. A
//! row is the table's JSON text: a JSON Lines table's line as written, a
//! CSV row as an object of its columns (all strings).
//!
//! ```no_run
//! use sluice_plugin::tables;
//!
//! # fn tier(user_id: &str) -> Result<Option<String>, String> {
//! let customer = tables::get("customers", user_id)?; // Some(r#"{"id":"u-1","tier":"gold"}"#)
//! # Ok(customer)
//! # }
//! ```
//!
//! The time a lookup takes counts against the step's `limits.timeout_ms`;
//! for many keys, [`get_many`] makes one host call for them all.

use crate::bindings::filter::sluice::plugin::tables::{self as host, TableError};

fn message(e: TableError) -> String {
    match e {
        TableError::NotGranted(m) => m,
    }
}

/// The row of `key` in `table` as JSON text, `None` when it has none.
pub fn get(table: &str, key: &str) -> Result<Option<String>, String> {
    host::get(table, key).map_err(message)
}

/// The rows of `keys` in `table`, one answer per key, in order (one host call).
pub fn get_many(table: &str, keys: &[String]) -> Result<Vec<Option<String>>, String> {
    host::get_many(table, keys).map_err(message)
}

/// The text a JSON value is looked up by: a string as it is, a number as
/// written; `None` for any other value (it has no row: not an error).
pub fn key_of(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The row of a JSON key (see [`key_of`]) in `table`, parsed; `Ok(None)`
/// when the key is not a string or a number or has no row.
pub fn get_json(table: &str, key: &serde_json::Value) -> Result<Option<serde_json::Value>, String> {
    let Some(key) = key_of(key) else {
        return Ok(None);
    };
    match get(table, &key)? {
        Some(row) => serde_json::from_str(&row)
            .map(Some)
            .map_err(|e| format!("table `{table}`: the row of `{key}` is not JSON: {e}")),
        None => Ok(None),
    }
}
