//! Helpers for JSON payloads: field lookup by path.
//!
//! A path is either a JSON Pointer (`/user/email`, RFC 6901) or a dotted path
//! (`user.email`); a plain key (`email`) is a one-segment dotted path.

use serde_json::Value;

/// The value at `path` in `value`, if there is one.
pub fn lookup<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    if path.starts_with('/') {
        return value.pointer(path);
    }
    path.split('.').try_fold(value, |v, key| match v {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// The value at `path` in `value`, mutably, if there is one.
pub fn lookup_mut<'v>(value: &'v mut Value, path: &str) -> Option<&'v mut Value> {
    if path.starts_with('/') {
        return value.pointer_mut(path);
    }
    path.split('.').try_fold(value, |v, key| match v {
        Value::Object(map) => map.get_mut(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
        _ => None,
    })
}
