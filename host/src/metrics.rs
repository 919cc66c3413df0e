//! Operator metrics in CloudWatch Embedded Metric Format (EMF).
//!
//! After each invocation the Lambda function prints EMF documents on
//! stdout, which CloudWatch Logs turns into metrics: no API call, no added
//! latency. `sluice run --metrics` prints the same documents.
//!
//! A document carries one value per dimension, so an invocation makes one
//! document for the pipeline (dimension `Pipeline`), one per step
//! (`Pipeline`, `Step`) and one per destination (`Pipeline`,
//! `Destination`), all with the same timestamp:
//!
//! | dimensions | metrics |
//! |---|---|
//! | `Pipeline` | `Records` (Kinesis records as Lambda delivered them), `UserRecords` (after `[source]`), `PreFiltered`, `Filtered`, `Failed` (retried), `DeadLettered`, `Dropped`, `HeldBack`, `DeliveryFailed` (outputs a destination did not take), `BatchItemFailures`, `Outputs` (delivered), `IteratorAge` (ms: now minus the oldest arrival in the batch), `Duration` (ms), `ColdStart` (1 or 0), `InitDuration` (ms, cold starts only) |
//! | `Pipeline`, `Step` | `In`, `Out`, `Dropped`, `Failed`, `Calls`, `Duration` (ms) |
//! | `Pipeline`, `Destination` | `Delivered`, `Failed`, `Bytes` (payload bytes handed over), `Requests`, `Duration` (ms) |

use std::fmt::Write as _;
use std::time::Duration;

use crate::app::Report;
use crate::config::Plan;

/// What is known about one invocation beyond its [`Report`].
#[derive(Debug, Clone, Copy)]
pub struct Invocation {
    /// When it ended, ms since the Unix epoch: the documents' timestamp.
    pub timestamp_ms: u64,
    /// How long it took, from the event to the response.
    pub duration: Duration,
    /// The oldest arrival time among the batch's records, ms since the
    /// epoch (`None` for an empty batch).
    pub oldest_arrival_ms: Option<u64>,
    /// `Some(init duration)` on the first invocation of an execution
    /// environment (a cold start), `None` after.
    pub cold_start: Option<Duration>,
    /// Records named in `batchItemFailures` (one per shard that failed).
    pub batch_item_failures: usize,
}

/// One metric's unit.
#[derive(Debug, Clone, Copy)]
enum Unit {
    Count,
    Milliseconds,
    Bytes,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Bytes => "Bytes",
        }
    }
}

/// A metric value: counts are integers, durations milliseconds.
#[derive(Debug, Clone, Copy)]
enum Value {
    Count(usize),
    Ms(f64),
    Bytes(usize),
}

impl Value {
    fn unit(self) -> Unit {
        match self {
            Value::Count(_) => Unit::Count,
            Value::Ms(_) => Unit::Milliseconds,
            Value::Bytes(_) => Unit::Bytes,
        }
    }
}

fn ms(d: Duration) -> Value {
    Value::Ms((d.as_secs_f64() * 1e6).round() / 1e3)
}

/// The EMF documents of one invocation, one JSON text each (no newline), in
/// the order: pipeline, steps in order, destinations by name.
pub fn documents(plan: &Plan, report: &Report, invocation: &Invocation) -> Vec<String> {
    let settings = &plan.metrics;
    if !settings.enabled {
        return Vec::new();
    }
    let outcome = &report.outcome;
    let dispatch = &report.dispatch;
    let pipeline = &pipeline_name(plan);
    let ns = &settings.namespace;
    let ts = invocation.timestamp_ms;
    let mut docs = Vec::with_capacity(1 + plan.steps.len() + plan.destinations.len());
    docs.push(document(
        ns,
        ts,
        &[("Pipeline", pipeline)],
        &invocation_metrics(report, invocation),
    ));
    for (step, st) in plan.steps.iter().zip(&outcome.steps) {
        let mut metrics = vec![
            ("In", Value::Count(st.input)),
            ("Out", Value::Count(st.output)),
            ("Dropped", Value::Count(st.dropped)),
            ("Failed", Value::Count(st.failed)),
            ("Calls", Value::Count(st.calls)),
            ("Duration", ms(st.duration)),
        ];
        if step.shadow.is_some() {
            metrics.extend([
                ("ShadowCalls", Value::Count(st.shadow_calls)),
                ("ShadowMismatches", Value::Count(st.shadow_mismatches)),
                ("ShadowFailures", Value::Count(st.shadow_failures)),
            ]);
        }
        docs.push(document(
            ns,
            ts,
            &[("Pipeline", pipeline), ("Step", &step.name)],
            &metrics,
        ));
    }
    for (d, (dest, sent)) in plan
        .destinations
        .iter()
        .zip(&dispatch.destinations)
        .enumerate()
    {
        docs.push(document(
            ns,
            ts,
            &[("Pipeline", pipeline), ("Destination", &dest.name)],
            &[
                ("Delivered", Value::Count(dispatch.delivered[d])),
                ("Failed", Value::Count(sent.failed)),
                ("Bytes", Value::Bytes(sent.bytes)),
                ("Requests", Value::Count(sent.requests)),
                ("Duration", ms(sent.duration)),
            ],
        ));
    }
    docs
}

/// The invocation's own metrics (dimension `Pipeline` alone).
fn invocation_metrics(report: &Report, invocation: &Invocation) -> Vec<(&'static str, Value)> {
    let outcome = &report.outcome;
    let dispatch = &report.dispatch;
    let mut top = vec![
        ("Records", Value::Count(outcome.source.kinesis_records)),
        ("UserRecords", Value::Count(outcome.records_in)),
        ("PreFiltered", Value::Count(outcome.source.prefiltered)),
        ("Filtered", Value::Count(outcome.filtered)),
        ("Failed", Value::Count(outcome.failures.len())),
        ("DeadLettered", Value::Count(dispatch.dead_lettered)),
        ("Dropped", Value::Count(outcome.dropped.len())),
        ("HeldBack", Value::Count(outcome.held_back)),
        (
            "DeliveryFailed",
            Value::Count(dispatch.destinations.iter().map(|d| d.failed).sum()),
        ),
        (
            "BatchItemFailures",
            Value::Count(invocation.batch_item_failures),
        ),
        (
            "Outputs",
            Value::Count(dispatch.delivered.iter().sum::<usize>() - dispatch.dead_lettered),
        ),
        ("Duration", ms(invocation.duration)),
        (
            "ColdStart",
            Value::Count(usize::from(invocation.cold_start.is_some())),
        ),
    ];
    if let Some(arrival) = invocation.oldest_arrival_ms {
        top.push((
            "IteratorAge",
            Value::Ms(invocation.timestamp_ms.saturating_sub(arrival) as f64),
        ));
    }
    if let Some(init) = invocation.cold_start {
        top.push(("InitDuration", ms(init)));
    }
    top
}

/// The value of the `Pipeline` dimension: `[metrics] pipeline`, else the
/// Lambda function's name, else the config file's name without `.toml`.
pub fn pipeline_name(plan: &Plan) -> String {
    if let Some(p) = &plan.metrics.pipeline {
        return p.clone();
    }
    if let Ok(f) = std::env::var("AWS_LAMBDA_FUNCTION_NAME")
        && !f.is_empty()
    {
        return f;
    }
    let source = plan.source.to_string();
    let file = source.rsplit('/').next().unwrap_or(&source);
    file.strip_suffix(".toml").unwrap_or(file).to_owned()
}

/// The oldest arrival time among `batch`'s records, ms since the epoch.
pub fn oldest_arrival_ms(batch: &crate::event::Batch) -> Option<u64> {
    batch.records.iter().map(|r| r.arrival_ms).min()
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One EMF document: `_aws` first, then the dimensions, then the values.
fn document(
    namespace: &str,
    timestamp_ms: u64,
    dimensions: &[(&str, &str)],
    metrics: &[(&str, Value)],
) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut s = String::with_capacity(256 + 48 * metrics.len());
    let _ = write!(
        s,
        r#"{{"_aws":{{"Timestamp":{timestamp_ms},"CloudWatchMetrics":[{{"Namespace":{},"Dimensions":[["#,
        quote(namespace)
    );
    for (i, (name, _)) in dimensions.iter().enumerate() {
        let _ = write!(s, "{}{}", if i > 0 { "," } else { "" }, quote(name));
    }
    s.push_str(r#"]],"Metrics":["#);
    for (i, (name, value)) in metrics.iter().enumerate() {
        let _ = write!(
            s,
            r#"{}{{"Name":{},"Unit":"{}"}}"#,
            if i > 0 { "," } else { "" },
            quote(name),
            value.unit().as_str()
        );
    }
    s.push_str("]}]}");
    for (name, value) in dimensions {
        let _ = write!(s, ",{}:{}", quote(name), quote(value));
    }
    for (name, value) in metrics {
        let _ = match value {
            Value::Count(n) | Value::Bytes(n) => write!(s, ",{}:{n}", quote(name)),
            Value::Ms(x) => write!(s, ",{}:{x}", quote(name)),
        };
    }
    s.push('}');
    s
}

/// `documents` with what changes from run to run (timestamps, durations,
/// the iterator age) set to 0: what fixture cases keep as
/// `expected/metrics.jsonl`.
pub fn stable(documents: &[String]) -> String {
    let mut out = String::new();
    for doc in documents {
        let Ok(mut v) = serde_json::from_str::<serde_json::Value>(doc) else {
            continue;
        };
        v["_aws"]["Timestamp"] = 0.into();
        if let Some(map) = v.as_object_mut() {
            for key in ["Duration", "IteratorAge", "InitDuration"] {
                if let Some(x) = map.get_mut(key) {
                    *x = 0.into();
                }
            }
        }
        out.push_str(&v.to_string());
        out.push('\n');
    }
    out
}
