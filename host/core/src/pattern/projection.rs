//! The payload parsed for the patterns: only the fields some pattern reads
//! are built into a JSON value; the rest is skipped as it is read
//! (a serde `DeserializeSeed` over the tree of wanted fields).

use std::collections::BTreeMap;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::{Node, Object};

/// The fields of a payload that patterns read, as a tree: a payload is
/// parsed into a JSON value holding only these (the rest is skipped without
/// being built), which is what the patterns see anyway.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Projection {
    /// Keep the whole value here (a leaf's conditions read it).
    whole: bool,
    /// Keep these fields of an object here (of each object, in an array).
    fields: BTreeMap<String, Projection>,
}

impl Projection {
    fn add_object(&mut self, o: &Object) {
        for (key, node) in &o.fields {
            let child = self.fields.entry(key.clone()).or_default();
            match node {
                Node::Object(inner) => child.add_object(inner),
                Node::Leaf(_) => child.whole = true,
            }
        }
        for alt in o.any_of.iter().flatten() {
            self.add_object(alt);
        }
    }

    /// What the patterns read under the top-level `data` key.
    pub(super) fn of_data(top: &Object, into: &mut Projection) {
        for (key, node) in &top.fields {
            if let ("data", Node::Object(inner)) = (key.as_str(), node) {
                into.add_object(inner);
            }
        }
        for alt in top.any_of.iter().flatten() {
            Projection::of_data(alt, into);
        }
    }

    /// Parses `data` as JSON, keeping only the projected fields; `None`
    /// when it is not JSON.
    pub(super) fn parse(&self, data: &[u8]) -> Option<Value> {
        let mut de = serde_json::Deserializer::from_slice(data);
        let value = Project(self).deserialize(&mut de).ok()?;
        de.end().ok()?;
        Some(value)
    }
}

/// Deserializes a JSON value keeping only what a [`Projection`] names.
#[derive(Clone, Copy)]
struct Project<'p>(&'p Projection);

impl<'de> DeserializeSeed<'de> for Project<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.0.whole {
            serde::Deserialize::deserialize(d)
        } else {
            d.deserialize_any(self)
        }
    }
}

impl<'de> Visitor<'de> for Project<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match self.0.fields.get(key.as_ref()) {
                Some(sub) => {
                    let v = map.next_value_seed(Project(sub))?;
                    out.insert(key.into_owned(), v);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}
