//! Reading a pattern from its JSON: objects, leaves and each condition
//! (`prefix`, `anything-but`, `numeric` …), checked as Lambda checks them;
//! an error names the path of what is wrong.

use serde_json::{Map, Value};

use super::{Cmp, Condition, Level, Node, Object};

/// `path.key`, or `key` at the top.
fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Reads the pattern object `map` at `path` (its fields, `$or`).
pub(super) fn object(map: &Map<String, Value>, path: &str, level: Level) -> Result<Object, String> {
    let mut o = Object {
        fields: Vec::with_capacity(map.len()),
        any_of: Vec::new(),
    };
    for (key, value) in map {
        let at = join(path, key);
        if key == "$or" {
            let Value::Array(alts) = value else {
                return Err(format!(
                    "{at}: `$or` takes an array of two or more objects, not `{value}`"
                ));
            };
            if alts.len() < 2 {
                return Err(format!("{at}: `$or` takes an array of two or more objects"));
            }
            let mut parsed = Vec::with_capacity(alts.len());
            for (i, alt) in alts.iter().enumerate() {
                match alt {
                    Value::Object(m) if !m.is_empty() => {
                        parsed.push(object(m, &format!("{at}[{i}]"), level)?);
                    }
                    _ => {
                        return Err(format!(
                            "{at}[{i}]: each `$or` alternative is a non-empty object, not `{alt}`"
                        ));
                    }
                }
            }
            o.any_of.push(parsed);
            continue;
        }
        let node = match level {
            Level::Top => match key.as_str() {
                "data" => match value {
                    Value::Object(m) if !m.is_empty() => Node::Object(object(m, &at, Level::Data)?),
                    _ => {
                        return Err(format!(
                            "{at}: Kinesis filters read `data` as JSON: give an object of its \
                             fields, such as {{\"type\": [\"click\"]}}, not `{value}`"
                        ));
                    }
                },
                "partitionKey" => match value {
                    Value::Array(_) => leaf(value, &at)?,
                    _ => {
                        return Err(format!(
                            "{at}: give an array of conditions, such as [\"user-1\"], not `{value}`"
                        ));
                    }
                },
                _ => {
                    return Err(format!(
                        "unknown key `{key}`: a Kinesis pattern reads `data` (and, in Sluice only, \
                         `partitionKey`)"
                    ));
                }
            },
            Level::Data => match value {
                Value::Object(m) if !m.is_empty() => Node::Object(object(m, &at, Level::Data)?),
                Value::Array(_) => leaf(value, &at)?,
                _ => {
                    return Err(format!(
                        "{at}: give an array of conditions, such as [\"click\"], or an object of \
                         fields, not `{value}`"
                    ));
                }
            },
        };
        o.fields.push((key.clone(), node));
    }
    Ok(o)
}

fn leaf(value: &Value, at: &str) -> Result<Node, String> {
    let Value::Array(items) = value else {
        unreachable!("leaf is called on arrays")
    };
    if items.is_empty() {
        return Err(format!(
            "{at}: an empty array matches nothing; give at least one condition"
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| condition(item, &format!("{at}[{i}]")))
        .collect::<Result<_, _>>()
        .map(Node::Leaf)
}

fn condition(item: &Value, at: &str) -> Result<Condition, String> {
    let Value::Object(m) = item else {
        return match item {
            Value::Array(_) => Err(format!(
                "{at}: arrays do not nest; give a value or an operator object"
            )),
            literal => Ok(Condition::Equals(literal.clone())),
        };
    };
    let mut ops = m.iter();
    let (Some((op, arg)), None) = (ops.next(), ops.next()) else {
        return Err(format!(
            "{at}: an operator object has exactly one key, such as {{\"prefix\": \"us-\"}}"
        ));
    };
    let string = |what: &str| match arg {
        Value::String(s) => Ok(s.clone()),
        _ => Err(format!("{at}: `{what}` takes a string, not `{arg}`")),
    };
    match op.as_str() {
        "prefix" => Ok(Condition::Prefix(string("prefix")?)),
        "suffix" => Ok(Condition::Suffix(string("suffix")?)),
        "equals-ignore-case" => Ok(Condition::EqualsIgnoreCase(string("equals-ignore-case")?)),
        "exists" => match arg {
            Value::Bool(b) => Ok(Condition::Exists(*b)),
            _ => Err(format!("{at}: `exists` takes true or false, not `{arg}`")),
        },
        "numeric" => numeric(arg, at),
        "anything-but" => anything_but(arg, at),
        "wildcard" | "cidr" => Err(format!(
            "{at}: `{op}` is an EventBridge operator that Lambda's event filtering does not support"
        )),
        _ => Err(format!(
            "{at}: unknown operator `{op}` (supported: prefix, suffix, equals-ignore-case, \
             anything-but, numeric, exists)"
        )),
    }
}

fn anything_but(arg: &Value, at: &str) -> Result<Condition, String> {
    let scalar = |v: &Value| matches!(v, Value::String(_) | Value::Number(_));
    match arg {
        Value::Array(vs) if !vs.is_empty() && vs.iter().all(scalar) => {
            Ok(Condition::AnythingBut(vs.clone()))
        }
        v if scalar(v) => Ok(Condition::AnythingBut(vec![v.clone()])),
        Value::Object(m) if m.len() == 1 => match m.iter().next() {
            Some((k, Value::String(s))) if k == "prefix" => {
                Ok(Condition::AnythingButPrefix(s.clone()))
            }
            Some((k, Value::String(s))) if k == "suffix" => {
                Ok(Condition::AnythingButSuffix(s.clone()))
            }
            _ => Err(format!(
                "{at}: `anything-but` takes {{\"prefix\": \"...\"}} or {{\"suffix\": \"...\"}} as an object, not `{arg}`"
            )),
        },
        _ => Err(format!(
            "{at}: `anything-but` takes a string or number, a non-empty array of them, or \
             {{\"prefix\": \"...\"}}, not `{arg}`"
        )),
    }
}

fn numeric(arg: &Value, at: &str) -> Result<Condition, String> {
    let bad = || {
        format!(
            "{at}: `numeric` takes one or two comparisons, such as [\">\", 0, \"<=\", 5], not `{arg}`"
        )
    };
    let Value::Array(items) = arg else {
        return Err(bad());
    };
    if items.is_empty() || items.len() > 4 || items.len() % 2 != 0 {
        return Err(bad());
    }
    let mut cmps = Vec::with_capacity(items.len() / 2);
    for pair in items.chunks(2) {
        let cmp = match pair[0].as_str() {
            Some("=") => Cmp::Eq,
            Some("<") => Cmp::Lt,
            Some("<=") => Cmp::Le,
            Some(">") => Cmp::Gt,
            Some(">=") => Cmp::Ge,
            _ => {
                return Err(format!(
                    "{at}: `{}` is not a numeric operator (=, <, <=, >, >=)",
                    pair[0]
                ));
            }
        };
        let Some(n) = pair[1].as_f64() else {
            return Err(format!(
                "{at}: `numeric` compares with numbers, not `{}`",
                pair[1]
            ));
        };
        cmps.push((cmp, n));
    }
    if cmps.len() == 2 && (cmps[0].0 == Cmp::Eq || cmps[1].0 == Cmp::Eq) {
        return Err(format!("{at}: `=` stands alone in `numeric`"));
    }
    Ok(Condition::Numeric(cmps))
}
