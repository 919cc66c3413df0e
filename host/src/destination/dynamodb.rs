//! The `dynamodb` destination: one item per output, written with
//! `BatchWriteItem` as `PutRequest`s.
//!
//! - The item is the output's JSON object (or its envelope), mapped to
//!   DynamoDB attribute values: strings `S`, numbers `N`, booleans `BOOL`,
//!   null `NULL`, arrays `L`, objects `M`. An output that is not a JSON
//!   object, nests deeper than 32 levels, is over 400 KB, or lacks the
//!   table's key attributes (or has them of the wrong type) is refused for
//!   good (class `contract`), naming the key.
//! - The table's key schema is read at cold start (`DescribeTable`). A
//!   table whose schema cannot be read gets one item per request (two items
//!   of one key in one request would fail it whole), with a warning.
//! - Requests hold at most 25 items and 16 MB, never two items of one key
//!   (DynamoDB refuses that); `UnprocessedItems` are resent by the
//!   dispatcher with backoff.
//! - Order: lanes by the item's key, so that the last write of a key is its
//!   last output.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, ScalarAttributeType, WriteRequest};

use super::{Batch, Request, Sink, SinkFuture, Verdict, encode_one, key_hash, pack_by_key};
use crate::config::destination::dynamodb::DynamoDbPlan;
use crate::outcome::Routed;

/// Most items in one `BatchWriteItem` request.
pub const MAX_BATCH_ENTRIES: usize = 25;
/// Most bytes in one `BatchWriteItem` request.
pub const MAX_BATCH_BYTES: usize = 16 << 20;
/// The largest item (400 KB).
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// The deepest nesting of lists and maps in an item.
pub const MAX_DEPTH: usize = 32;

/// Writes outputs to one DynamoDB table.
#[derive(Debug)]
pub struct DynamoDbDestination {
    name: String,
    client: aws_sdk_dynamodb::Client,
    plan: DynamoDbPlan,
    /// The table's key attributes (partition key, then sort key) and their
    /// types, once read.
    key: Option<Vec<(String, ScalarAttributeType)>>,
}

/// An item, and what identifies it.
struct Item {
    attributes: HashMap<String, AttributeValue>,
    /// Its key's values, as text (empty when the key schema is unknown).
    key: String,
    bytes: usize,
}

impl DynamoDbDestination {
    /// The destination `plan` describes, writing with `client`.
    pub fn new(name: &str, plan: &DynamoDbPlan, client: aws_sdk_dynamodb::Client) -> Self {
        DynamoDbDestination {
            name: name.to_owned(),
            client,
            plan: plan.clone(),
            key: None,
        }
    }

    /// Sets the table's key (partition key, then sort key) without asking
    /// DynamoDB: for tests and benchmarks.
    pub fn with_key(mut self, key: &[(&str, ScalarAttributeType)]) -> Self {
        self.key = Some(
            key.iter()
                .map(|(n, t)| ((*n).to_owned(), t.clone()))
                .collect(),
        );
        self
    }

    /// Reads the table's key schema (`DescribeTable`).
    async fn read_key(&mut self) {
        let read = self
            .client
            .describe_table()
            .table_name(&self.plan.table)
            .send()
            .await;
        let table = match read {
            Ok(r) => r.table,
            Err(e) => {
                tracing::warn!(destination = %self.name, table = %self.plan.table,
                    error = %aws_sdk_dynamodb::error::DisplayErrorContext(&e),
                    "cannot read the table's key schema (the function needs dynamodb:DescribeTable); writing one item per request");
                return;
            }
        };
        let Some(table) = table else { return };
        let types: HashMap<&str, &ScalarAttributeType> = table
            .attribute_definitions()
            .iter()
            .map(|d| (d.attribute_name(), d.attribute_type()))
            .collect();
        let mut key: Vec<(String, ScalarAttributeType)> = Vec::new();
        for element in table.key_schema() {
            let name = element.attribute_name();
            let Some(t) = types.get(name) else { return };
            let hash = element.key_type() == &aws_sdk_dynamodb::types::KeyType::Hash;
            let entry = (name.to_owned(), (*t).clone());
            if hash {
                key.insert(0, entry);
            } else {
                key.push(entry);
            }
        }
        if !key.is_empty() {
            self.key = Some(key);
        }
    }

    /// The item `r` becomes, or why DynamoDB would refuse it every time.
    fn item(&self, r: &Routed) -> Result<Item, String> {
        let mut text = Vec::new();
        encode_one(self.plan.format, r, &mut text);
        let value: serde_json::Value = serde_json::from_slice(&text).map_err(|_| {
            "output is not JSON; a DynamoDB item is made from a JSON object".to_owned()
        })?;
        let serde_json::Value::Object(object) = value else {
            return Err("output is not a JSON object; a DynamoDB item is made from one".into());
        };
        let mut bytes = 0;
        let mut attributes = HashMap::with_capacity(object.len());
        for (name, value) in object {
            bytes += name.len();
            let value = attribute(value, 1, &mut bytes).map_err(|e| format!("`{name}`: {e}"))?;
            attributes.insert(name, value);
        }
        if bytes > MAX_ITEM_BYTES {
            return Err(format!(
                "item is about {bytes} bytes; DynamoDB takes at most {MAX_ITEM_BYTES}"
            ));
        }
        let mut key = String::new();
        for (name, kind) in self.key.iter().flatten() {
            let value = match (attributes.get(name), kind) {
                (Some(AttributeValue::S(s)), ScalarAttributeType::S) if !s.is_empty() => s,
                (Some(AttributeValue::N(n)), ScalarAttributeType::N) => n,
                (found, kind) => {
                    let what = match found {
                        None => "missing".to_owned(),
                        Some(_) => format!("not a {}", type_name(kind)),
                    };
                    return Err(format!(
                        "key attribute `{name}` of table `{}` is {what} (the table's key: {})",
                        self.plan.table,
                        self.key_names()
                    ));
                }
            };
            key.push_str(value);
            key.push('\u{0}');
        }
        Ok(Item {
            attributes,
            key,
            bytes,
        })
    }

    fn key_names(&self) -> String {
        self.key
            .iter()
            .flatten()
            .map(|(n, t)| format!("`{n}` ({})", type_name(t)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// One `BatchWriteItem` of the request's entries.
    async fn send_request(&self, outputs: &[&Routed], request: &Request) -> Vec<Verdict> {
        // Each item's key, with the output it came from.
        let mut by_key: HashMap<String, usize> = HashMap::new();
        let mut batch = Batch::build(request, |i| {
            let item = self.item(outputs[i])?;
            by_key.insert(item.key, i);
            let put = PutRequest::builder()
                .set_item(Some(item.attributes))
                .build()
                .map_err(|e| format!("cannot build the DynamoDB request: {e}"))?;
            Ok(WriteRequest::builder().put_request(put).build())
        });
        if batch.entries.is_empty() {
            return batch.verdicts;
        }
        let response = self
            .client
            .batch_write_item()
            .request_items(&self.plan.table, std::mem::take(&mut batch.entries))
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                return batch.failed(format!(
                    "BatchWriteItem to `{}` failed: {}",
                    self.plan.table,
                    aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                ));
            }
        };
        let unprocessed = response
            .unprocessed_items()
            .and_then(|u| u.values().next())
            .map(Vec::as_slice)
            .unwrap_or_default();
        for write in unprocessed {
            let Some(item) = write.put_request().map(PutRequest::item) else {
                continue;
            };
            let key = self.key_of(item);
            // Without a known key schema a request holds one item.
            let pos = if self.key.is_some() {
                by_key
                    .get(&key)
                    .and_then(|&i| request.entries.iter().position(|&e| e == i))
            } else {
                batch.positions.first().copied()
            };
            if let Some(pos) = pos {
                batch.verdicts[pos] = Verdict::Retry(format!(
                    "DynamoDB left the item for `{}` unprocessed",
                    self.plan.table
                ));
            }
        }
        batch.verdicts
    }

    /// The text of `item`'s key values, as [`Self::item`] makes it.
    fn key_of(&self, item: &HashMap<String, AttributeValue>) -> String {
        let mut key = String::new();
        for (name, _) in self.key.iter().flatten() {
            match item.get(name) {
                Some(AttributeValue::S(s)) => key.push_str(s),
                Some(AttributeValue::N(n)) => key.push_str(n),
                _ => {}
            }
            key.push('\u{0}');
        }
        key
    }
}

/// A JSON value as a DynamoDB attribute value, adding its size to `bytes`.
fn attribute(
    value: serde_json::Value,
    depth: usize,
    bytes: &mut usize,
) -> Result<AttributeValue, String> {
    if depth > MAX_DEPTH {
        return Err(format!("nests deeper than DynamoDB's {MAX_DEPTH} levels"));
    }
    Ok(match value {
        serde_json::Value::Null => {
            *bytes += 1;
            AttributeValue::Null(true)
        }
        serde_json::Value::Bool(b) => {
            *bytes += 1;
            AttributeValue::Bool(b)
        }
        serde_json::Value::Number(n) => {
            let text = n.to_string();
            *bytes += text.len();
            AttributeValue::N(text)
        }
        serde_json::Value::String(s) => {
            *bytes += s.len();
            AttributeValue::S(s)
        }
        serde_json::Value::Array(items) => {
            *bytes += 3;
            AttributeValue::L(
                items
                    .into_iter()
                    .map(|v| {
                        *bytes += 1;
                        attribute(v, depth + 1, bytes)
                    })
                    .collect::<Result<_, _>>()?,
            )
        }
        serde_json::Value::Object(map) => {
            *bytes += 3;
            AttributeValue::M(
                map.into_iter()
                    .map(|(k, v)| {
                        *bytes += k.len() + 1;
                        Ok((k, attribute(v, depth + 1, bytes)?))
                    })
                    .collect::<Result<_, String>>()?,
            )
        }
    })
}

fn type_name(t: &ScalarAttributeType) -> &'static str {
    match t {
        ScalarAttributeType::S => "string",
        ScalarAttributeType::N => "number",
        ScalarAttributeType::B => "binary (which JSON cannot hold)",
        _ => "value of an unknown type",
    }
}

impl Sink for DynamoDbDestination {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        format!("dynamodb {}", self.plan.table)
    }

    fn refusal(&self, r: &Routed) -> Option<String> {
        self.item(r).err()
    }

    fn read_limits(&mut self) -> SinkFuture<'_, ()> {
        Box::pin(self.read_key())
    }

    fn max_in_flight(&self) -> usize {
        self.plan.max_in_flight
    }

    /// Requests of at most 25 items and 16 MB, in lanes by the item's key,
    /// never two items of one key in a request (one item per request when
    /// the key schema is unknown).
    fn plan(&self, outputs: &[&Routed]) -> Vec<Request> {
        // Each output's key and size, from one parse of it.
        let (keys, sizes): (Vec<String>, Vec<usize>) = outputs
            .iter()
            .map(|r| {
                self.item(r)
                    .map_or_else(|_| (String::new(), 0), |i| (i.key, i.bytes))
            })
            .unzip();
        let per_request = if self.key.is_some() {
            MAX_BATCH_ENTRIES
        } else {
            1
        };
        let lanes = outputs
            .len()
            .div_ceil(per_request)
            .clamp(1, self.plan.max_in_flight);
        // `pack_by_key` asks for keys, then sizes, once per output in order.
        let (mut key_at, mut size_at) = (0, 0);
        let planned = pack_by_key(
            outputs,
            lanes,
            per_request,
            MAX_BATCH_BYTES,
            |r| {
                key_at += 1;
                if self.key.is_some() {
                    key_hash(&[&keys[key_at - 1]])
                } else {
                    key_hash(&[&r.record.shard_id, &r.record.partition_key])
                }
            },
            |_| {
                size_at += 1;
                sizes[size_at - 1]
            },
        );
        // Split where a key comes again, keeping the lane's order.
        let mut requests = Vec::with_capacity(planned.len());
        for request in planned {
            let mut open = Request {
                lane: request.lane,
                attempt: 1,
                ..Request::default()
            };
            let mut seen = std::collections::HashSet::new();
            for (&entry, &key) in request.entries.iter().zip(&request.keys) {
                if !seen.insert(keys[entry].as_str()) {
                    requests.push(std::mem::replace(
                        &mut open,
                        Request {
                            lane: request.lane,
                            attempt: 1,
                            ..Request::default()
                        },
                    ));
                    seen.clear();
                    seen.insert(keys[entry].as_str());
                }
                open.entries.push(entry);
                open.keys.push(key);
            }
            requests.push(open);
        }
        requests
    }

    fn send<'a>(
        &'a self,
        outputs: &'a [&'a Routed],
        request: &'a Request,
    ) -> SinkFuture<'a, Vec<Verdict>> {
        Box::pin(self.send_request(outputs, request))
    }
}
