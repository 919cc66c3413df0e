//! The pre-filter's language: Lambda's event-source-mapping `FilterCriteria`
//! patterns (the subset of EventBridge patterns that Lambda supports on
//! Kinesis), matched in-process before the first step.
//!
//! A pattern is a JSON object whose leaves are arrays of conditions:
//!
//! ```json
//! { "data": { "type": ["click", "view"], "user": { "tier": [{ "anything-but": "free" }] } } }
//! ```
//!
//! - Fields in one object must all match (AND); the conditions in one array
//!   are alternatives (OR); `"$or": [{...}, {...}]` matches when any of its
//!   objects does. Several patterns ([`Filters`]) are ORed too: a record is
//!   kept when any pattern matches, as Lambda does with `Filters`.
//! - Conditions: a literal (`"click"`, `42`, `true`, `null`, `""`),
//!   `{"prefix": "..."}`, `{"suffix": "..."}`, `{"equals-ignore-case": "..."}`,
//!   `{"anything-but": v | [v, ...] | {"prefix": ...} | {"suffix": ...}}`,
//!   `{"numeric": [">", 0, "<=", 5]}` (operators `=`, `<`, `<=`, `>`, `>=`)
//!   and `{"exists": true | false}`.
//! - When the record's value is an array, a condition matches when it
//!   matches any element. A missing field matches only `{"exists": false}`.
//!   Numbers compare by value (`100` matches `100.0`).
//! - Top-level keys: `data` (the payload, which must be a JSON object for
//!   the pattern to match: a payload that is not JSON is dropped, as Lambda
//!   drops it), `partitionKey` (matched in Sluice only: Lambda's Kinesis
//!   filters read `data` alone) and `$or`.
//!
//! [`Filters::criteria`] prints the patterns as Lambda's `FilterCriteria`,
//! so that Lambda can drop records before invoking the function.

mod parse;
mod projection;

use serde_json::{Map, Number, Value};

use parse::object;
use projection::Projection;

/// One filter pattern, parsed and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    top: Object,
    /// The pattern as canonical JSON (what `FilterCriteria` gets).
    text: String,
}

/// The patterns of `[source] filters`: a record is kept when any matches;
/// with none, every record is kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    patterns: Vec<Pattern>,
    uses_data: bool,
    /// The payload fields the patterns read: only these are parsed.
    projection: Projection,
}

/// An object of the pattern: every field must match, and each `$or` must
/// have one alternative that matches.
#[derive(Debug, Clone, PartialEq)]
struct Object {
    fields: Vec<(String, Node)>,
    any_of: Vec<Vec<Object>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Object(Object),
    /// Alternatives: one must match.
    Leaf(Vec<Condition>),
}

#[derive(Debug, Clone, PartialEq)]
enum Condition {
    Equals(Value),
    Prefix(String),
    Suffix(String),
    EqualsIgnoreCase(String),
    AnythingBut(Vec<Value>),
    AnythingButPrefix(String),
    AnythingButSuffix(String),
    Numeric(Vec<(Cmp, f64)>),
    Exists(bool),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Where the pattern is being read: the top level (`data`,
/// `partitionKey`, `$or`) or inside `data`.
#[derive(Clone, Copy, PartialEq)]
enum Level {
    Top,
    Data,
}

/// The most patterns Lambda accepts on one event source mapping (5 by
/// default, 10 with a quota increase).
pub const MAX_LAMBDA_FILTERS: usize = 10;
/// The longest pattern Lambda accepts, in characters.
pub const MAX_LAMBDA_PATTERN_CHARS: usize = 4096;

impl Pattern {
    /// Reads one pattern; the error names the path of what is wrong, e.g.
    /// ``data.type[1]: unknown condition `wildcard` ``.
    pub fn parse(value: &Value) -> Result<Pattern, String> {
        let Value::Object(map) = value else {
            return Err(format!(
                "a pattern is a JSON object such as {{\"data\": {{\"type\": [\"click\"]}}}}, not `{value}`"
            ));
        };
        if map.is_empty() {
            return Err("an empty pattern would match every record; remove it instead".into());
        }
        Ok(Pattern {
            top: object(map, "", Level::Top)?,
            text: value.to_string(),
        })
    }

    /// Whether a record with this partition key and payload matches. `data`
    /// is the payload parsed as JSON, or `None` when it is not JSON.
    pub fn matches(&self, partition_key: &str, data: Option<&Value>) -> bool {
        matches_top(&self.top, partition_key, data)
    }

    /// The pattern as compact JSON, as it goes in `FilterCriteria`.
    pub fn as_json(&self) -> &str {
        &self.text
    }

    /// Whether the pattern reads the payload (`data`).
    pub fn uses_data(&self) -> bool {
        uses_key(&self.top, "data")
    }

    /// Whether the pattern reads the partition key.
    pub fn uses_partition_key(&self) -> bool {
        uses_key(&self.top, "partitionKey")
    }
}

impl Filters {
    /// The pre-filter of these patterns.
    pub fn new(patterns: Vec<Pattern>) -> Filters {
        let uses_data = patterns.iter().any(Pattern::uses_data);
        let mut projection = Projection::default();
        for p in &patterns {
            Projection::of_data(&p.top, &mut projection);
        }
        Filters {
            patterns,
            uses_data,
            projection,
        }
    }

    /// Whether there are no patterns (every record is kept).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The patterns, in config order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether a record with this partition key and payload is kept: some
    /// pattern matches (or there are none). The payload is parsed as JSON
    /// once, only when a pattern reads it, and only the fields the
    /// patterns read are built.
    pub fn keeps(&self, partition_key: &str, data: &[u8]) -> bool {
        if self.patterns.is_empty() {
            return true;
        }
        let parsed = if self.uses_data {
            self.projection.parse(data)
        } else {
            None
        };
        self.patterns
            .iter()
            .any(|p| p.matches(partition_key, parsed.as_ref()))
    }

    /// The patterns as Lambda's `FilterCriteria` JSON (`{"Filters":
    /// [{"Pattern": "..."}]}`), for the event source mapping in a SAM or
    /// CloudFormation template, or `aws lambda update-event-source-mapping
    /// --filter-criteria`. Refuses what Lambda would not do the same way.
    pub fn criteria(&self) -> Result<Value, String> {
        if self.patterns.is_empty() {
            return Err(
                "`[source] filters` is empty: there is nothing for Lambda to filter".into(),
            );
        }
        if self.patterns.len() > MAX_LAMBDA_FILTERS {
            return Err(format!(
                "`[source] filters` has {} patterns; Lambda takes at most {MAX_LAMBDA_FILTERS} on one \
                 event source mapping (5 without a quota increase)",
                self.patterns.len()
            ));
        }
        let mut filters = Vec::with_capacity(self.patterns.len());
        for (i, p) in self.patterns.iter().enumerate() {
            if p.uses_partition_key() {
                return Err(format!(
                    "source.filters[{i}] reads `partitionKey`, but Lambda's Kinesis event source \
                     mappings filter on `data` only; keep it as a Sluice pre-filter"
                ));
            }
            if p.text.chars().count() > MAX_LAMBDA_PATTERN_CHARS {
                return Err(format!(
                    "source.filters[{i}] is {} characters long; Lambda takes at most \
                     {MAX_LAMBDA_PATTERN_CHARS}",
                    p.text.chars().count()
                ));
            }
            let mut f = Map::new();
            f.insert("Pattern".into(), Value::String(p.text.clone()));
            filters.push(Value::Object(f));
        }
        let mut criteria = Map::new();
        criteria.insert("Filters".into(), Value::Array(filters));
        Ok(Value::Object(criteria))
    }
}

fn uses_key(o: &Object, key: &str) -> bool {
    o.fields.iter().any(|(k, _)| k == key)
        || o.any_of.iter().flatten().any(|alt| uses_key(alt, key))
}

fn matches_top(o: &Object, partition_key: &str, data: Option<&Value>) -> bool {
    o.fields
        .iter()
        .all(|(key, node)| match (key.as_str(), node) {
            ("data", Node::Object(inner)) => data.is_some_and(|d| matches_object(inner, Some(d))),
            ("partitionKey", Node::Leaf(conds)) => {
                let key = Value::String(partition_key.to_owned());
                conds.iter().any(|c| c.matches(Some(&key)))
            }
            _ => false,
        })
        && o.any_of
            .iter()
            .all(|alts| alts.iter().any(|alt| matches_top(alt, partition_key, data)))
}

fn matches_object(o: &Object, value: Option<&Value>) -> bool {
    let map = value.and_then(Value::as_object);
    o.fields.iter().all(|(key, node)| {
        let child = map.and_then(|m| m.get(key));
        match node {
            Node::Object(inner) => match child {
                Some(Value::Array(items)) => items.iter().any(|i| matches_object(inner, Some(i))),
                _ => matches_object(inner, child),
            },
            Node::Leaf(conds) => conds.iter().any(|c| c.matches(child)),
        }
    }) && o
        .any_of
        .iter()
        .all(|alts| alts.iter().any(|alt| matches_object(alt, value)))
}

impl Condition {
    fn matches(&self, value: Option<&Value>) -> bool {
        match (self, value) {
            (Condition::Exists(want), v) => *want == v.is_some(),
            (_, None) => false,
            (_, Some(Value::Array(items))) => items.iter().any(|i| self.matches_one(i)),
            (_, Some(v)) => self.matches_one(v),
        }
    }

    fn matches_one(&self, v: &Value) -> bool {
        match self {
            Condition::Equals(want) => equal(want, v),
            Condition::Prefix(p) => v.as_str().is_some_and(|s| s.starts_with(p.as_str())),
            Condition::Suffix(p) => v.as_str().is_some_and(|s| s.ends_with(p.as_str())),
            Condition::EqualsIgnoreCase(want) => v.as_str().is_some_and(|s| {
                s.chars()
                    .flat_map(char::to_lowercase)
                    .eq(want.chars().flat_map(char::to_lowercase))
            }),
            Condition::AnythingBut(not) => {
                matches!(v, Value::String(_) | Value::Number(_)) && !not.iter().any(|n| equal(n, v))
            }
            Condition::AnythingButPrefix(p) => {
                v.as_str().is_some_and(|s| !s.starts_with(p.as_str()))
            }
            Condition::AnythingButSuffix(p) => v.as_str().is_some_and(|s| !s.ends_with(p.as_str())),
            Condition::Numeric(cmps) => v.as_f64().is_some_and(|x| {
                cmps.iter().all(|&(cmp, n)| match cmp {
                    Cmp::Eq => x == n,
                    Cmp::Lt => x < n,
                    Cmp::Le => x <= n,
                    Cmp::Gt => x > n,
                    Cmp::Ge => x >= n,
                })
            }),
            Condition::Exists(_) => unreachable!("handled in matches"),
        }
    }
}

/// Literal equality; numbers by value.
fn equal(want: &Value, v: &Value) -> bool {
    match (want, v) {
        (Value::Number(a), Value::Number(b)) => same_number(a, b),
        _ => want == v,
    }
}

fn same_number(a: &Number, b: &Number) -> bool {
    a == b || a.as_f64().zip(b.as_f64()).is_some_and(|(x, y)| x == y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(v: Value) -> Pattern {
        Pattern::parse(&v).unwrap_or_else(|e| panic!("{v}: {e}"))
    }

    /// The comparison operators of Lambda's "Filter rule syntax" table
    /// (Lambda developer guide, "Control which events Lambda sends to your
    /// function"), each with a record it keeps and one it drops, written
    /// as the Kinesis `data` of a record.
    #[test]
    #[expect(
        clippy::too_many_lines,
        reason = "a table of the operators of Lambda's documentation, one row each"
    )]
    fn the_operator_table_of_lambdas_documentation() {
        let rows: &[(&str, Value, Value, Value)] = &[
            (
                "Null",
                json!({"UserID": [null]}),
                json!({"UserID": null}),
                json!({"UserID": "u1"}),
            ),
            (
                "Empty",
                json!({"LastName": [""]}),
                json!({"LastName": ""}),
                json!({"LastName": "Doe"}),
            ),
            (
                "Equals",
                json!({"Name": ["Alice"]}),
                json!({"Name": "Alice"}),
                json!({"Name": "alice"}),
            ),
            (
                "Equals (ignore case)",
                json!({"Name": [{"equals-ignore-case": "alice"}]}),
                json!({"Name": "ALICE"}),
                json!({"Name": "Bob"}),
            ),
            (
                "And",
                json!({"Location": ["New York"], "Day": ["Monday"]}),
                json!({"Location": "New York", "Day": "Monday"}),
                json!({"Location": "New York", "Day": "Tuesday"}),
            ),
            (
                "Or",
                json!({"PaymentType": ["Credit", "Debit"]}),
                json!({"PaymentType": "Debit"}),
                json!({"PaymentType": "Cash"}),
            ),
            (
                "Or (multiple fields)",
                json!({"$or": [{"Location": ["New York"]}, {"Day": ["Monday"]}]}),
                json!({"Location": "Boston", "Day": "Monday"}),
                json!({"Location": "Boston", "Day": "Friday"}),
            ),
            (
                "Not",
                json!({"Weather": [{"anything-but": ["Raining"]}]}),
                json!({"Weather": "Sunny"}),
                json!({"Weather": "Raining"}),
            ),
            (
                "Numeric (equals)",
                json!({"Price": [{"numeric": ["=", 100]}]}),
                json!({"Price": 100}),
                json!({"Price": 101}),
            ),
            (
                "Numeric (range)",
                json!({"Price": [{"numeric": [">", 10, "<=", 20]}]}),
                json!({"Price": 20}),
                json!({"Price": 10}),
            ),
            (
                "Exists",
                json!({"ProductName": [{"exists": true}]}),
                json!({"ProductName": "Widget"}),
                json!({"Product": "Widget"}),
            ),
            (
                "Does not exist",
                json!({"ProductName": [{"exists": false}]}),
                json!({"Product": "Widget"}),
                json!({"ProductName": "Widget"}),
            ),
            (
                "Begins with",
                json!({"Region": [{"prefix": "us-"}]}),
                json!({"Region": "us-east-1"}),
                json!({"Region": "eu-west-1"}),
            ),
            (
                "Ends with",
                json!({"FileName": [{"suffix": ".png"}]}),
                json!({"FileName": "cat.png"}),
                json!({"FileName": "cat.jpg"}),
            ),
        ];
        for (name, pattern, keep, drop) in rows {
            let pat = p(json!({ "data": pattern }));
            assert!(
                pat.matches("k", Some(keep)),
                "{name}: {pattern} should keep {keep}"
            );
            assert!(
                !pat.matches("k", Some(drop)),
                "{name}: {pattern} should drop {drop}"
            );
        }
    }

    /// The example of Lambda's Kinesis filtering page: keep the orders of
    /// type "buy".
    #[test]
    fn the_kinesis_page_example() {
        let pat = p(json!({"data": {"order": {"type": ["buy"]}}}));
        let buy =
            json!({"record": 12345, "order": {"type": "buy", "stock": "ANYCO", "quantity": 1000}});
        let sell =
            json!({"record": 12346, "order": {"type": "sell", "stock": "ANYCO", "quantity": 1000}});
        assert!(pat.matches("1", Some(&buy)));
        assert!(!pat.matches("1", Some(&sell)));
    }

    #[test]
    fn arrays_in_the_record_match_on_any_element() {
        let pat = p(json!({"data": {"tags": ["red"]}}));
        assert!(pat.matches("k", Some(&json!({"tags": ["blue", "red"]}))));
        assert!(!pat.matches("k", Some(&json!({"tags": ["blue"]}))));
        let nested = p(json!({"data": {"items": {"sku": [{"prefix": "A"}]}}}));
        assert!(nested.matches("k", Some(&json!({"items": [{"sku": "B1"}, {"sku": "A7"}]}))));
    }

    #[test]
    fn missing_fields_and_payloads_that_are_not_json() {
        let pat = p(json!({"data": {"a": [{"anything-but": "x"}]}}));
        assert!(
            !pat.matches("k", Some(&json!({}))),
            "anything-but needs the field"
        );
        let absent = p(json!({"data": {"a": {"b": [{"exists": false}]}}}));
        assert!(absent.matches("k", Some(&json!({"c": 1}))));
        let filters = Filters::new(vec![absent]);
        assert!(
            !filters.keeps("k", b"not json"),
            "Lambda drops what is not JSON"
        );
        assert!(filters.keeps("k", br#"{"c": 1}"#));
    }

    #[test]
    fn numbers_compare_by_value() {
        let pat = p(json!({"data": {"n": [100]}}));
        assert!(pat.matches("k", Some(&json!({"n": 100.0}))));
        assert!(!pat.matches("k", Some(&json!({"n": "100"}))));
        let but = p(json!({"data": {"n": [{"anything-but": [1, 2]}]}}));
        assert!(but.matches("k", Some(&json!({"n": 3}))));
        assert!(!but.matches("k", Some(&json!({"n": 2.0}))));
    }

    #[test]
    fn partition_keys_and_several_patterns() {
        let by_key = p(json!({"partitionKey": [{"prefix": "eu-"}]}));
        let by_data = p(json!({"data": {"type": ["click"]}}));
        let filters = Filters::new(vec![by_key, by_data]);
        assert!(filters.keeps("eu-1", b"not json"));
        assert!(filters.keeps("us-1", br#"{"type": "click"}"#));
        assert!(!filters.keeps("us-1", br#"{"type": "view"}"#));
        assert!(Filters::default().keeps("any", b"thing"));
    }

    #[test]
    fn anything_but_prefix_and_suffix() {
        let pat = p(json!({"data": {"env": [{"anything-but": {"prefix": "test"}}]}}));
        assert!(pat.matches("k", Some(&json!({"env": "prod"}))));
        assert!(!pat.matches("k", Some(&json!({"env": "test-3"}))));
        let pat = p(json!({"data": {"f": [{"anything-but": {"suffix": ".tmp"}}]}}));
        assert!(!pat.matches("k", Some(&json!({"f": "a.tmp"}))));
    }

    /// The projected parse keeps what the patterns read: the same verdicts
    /// as matching the whole payload, on every row of the table and more.
    #[test]
    fn parsing_only_what_patterns_read_changes_no_verdict() {
        let patterns = [
            json!({"data": {"a": [1]}}),
            json!({"data": {"a": {"b": [{"prefix": "x"}]}, "c": [{"exists": false}]}}),
            json!({"data": {"$or": [{"a": [{"numeric": [">", 1]}]}, {"d": {"e": [null]}}]}}),
            json!({"data": {"items": {"sku": ["A"]}}, "partitionKey": ["k"]}),
            json!({"$or": [{"data": {"a": ["x"]}}, {"data": {"b": [{"anything-but": "y"}]}}]}),
        ];
        let docs = [
            r#"{"a": 1, "z": {"deep": [1, 2, {"x": "y"}]}}"#,
            r#"{"a": {"b": "xy"}, "pad": "ignored"}"#,
            r#"{"a": {"b": ["q", "xz"]}, "c": 3}"#,
            r#"{"a": 2.5, "d": {"e": null}}"#,
            r#"{"d": {"e": 1}, "a": "x"}"#,
            r#"{"items": [{"sku": "B"}, {"sku": "A", "n": 1}]}"#,
            r#"{"b": "z", "a": [1, "x"]}"#,
            r#"[1, 2]"#,
            r#""just a string""#,
            r#"{"a": 1} trailing"#,
            "not json",
        ];
        for pattern in &patterns {
            let pat = p(pattern.clone());
            let filters = Filters::new(vec![pat.clone()]);
            for doc in docs {
                let full = serde_json::from_str::<Value>(doc).ok();
                assert_eq!(
                    filters.keeps("k", doc.as_bytes()),
                    pat.matches("k", full.as_ref()),
                    "{pattern} on {doc}"
                );
            }
        }
    }

    #[test]
    fn bad_patterns_are_named() {
        let cases: &[(Value, &str)] = &[
            (json!([]), "a pattern is a JSON object"),
            (json!({}), "empty pattern"),
            (json!({"body": {"a": ["x"]}}), "unknown key `body`"),
            (
                json!({"data": ["x"]}),
                "data: Kinesis filters read `data` as JSON",
            ),
            (json!({"data": {"a": "x"}}), "data.a: give an array"),
            (json!({"data": {"a": []}}), "data.a: an empty array"),
            (
                json!({"data": {"a": [{"wildcard": "x*"}]}}),
                "data.a[0]: `wildcard`",
            ),
            (
                json!({"data": {"a": [{"regex": "x"}]}}),
                "unknown operator `regex`",
            ),
            (
                json!({"data": {"a": [{"prefix": 1}]}}),
                "`prefix` takes a string",
            ),
            (
                json!({"data": {"a": [{"numeric": [">", "x"]}]}}),
                "compares with numbers",
            ),
            (
                json!({"data": {"a": [{"numeric": ["!=", 1]}]}}),
                "not a numeric operator",
            ),
            (
                json!({"data": {"a": [{"numeric": ["=", 1, "<", 2]}]}}),
                "stands alone",
            ),
            (
                json!({"data": {"a": [{"exists": "yes"}]}}),
                "`exists` takes true or false",
            ),
            (
                json!({"data": {"a": [{"prefix": "x", "suffix": "y"}]}}),
                "exactly one key",
            ),
            (
                json!({"data": {"$or": [{"a": ["x"]}]}}),
                "data.$or: `$or` takes an array of two",
            ),
            (json!({"data": {"a": [["x"]]}}), "arrays do not nest"),
        ];
        for (pattern, want) in cases {
            let e = Pattern::parse(pattern).expect_err(&pattern.to_string());
            assert!(e.contains(want), "{pattern}: {e:?} should say {want:?}");
        }
    }

    #[test]
    fn criteria_for_lambda() {
        let filters = Filters::new(vec![p(json!({"data": {"type": ["click"]}}))]);
        assert_eq!(
            filters.criteria().unwrap(),
            json!({"Filters": [{"Pattern": r#"{"data":{"type":["click"]}}"#}]})
        );
        let by_key = Filters::new(vec![p(json!({"partitionKey": ["a"]}))]);
        assert!(by_key.criteria().unwrap_err().contains("`data` only"));
        let many = Filters::new(vec![p(json!({"data": {"a": [1]}})); 11]);
        assert!(many.criteria().unwrap_err().contains("at most 10"));
    }
}
