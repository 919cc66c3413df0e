//! The AWS Lambda function: cold start once, then one Kinesis batch per invocation.
//!
//! Cold start reads `SLUICE_CONFIG` (an `s3://bucket/key` URI or a path) and
//! builds the [`App`]; a bad config or plugin ends the process with the error
//! logged, which Lambda reports as an init error. Each invocation returns a
//! `KinesisEventResponse` whose `batchItemFailures` name, per shard, the
//! sequence number of the first record that must be retried (Lambda
//! checkpoints there and redelivers it and everything after it); the list is
//! empty when everything was delivered. With a tumbling window
//! (`TumblingWindowInSeconds`), the response also carries the window's
//! `state` (see [`crate::app`]'s window handling).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::collections::BTreeMap;

use aws_lambda_events::event::streams::{KinesisBatchItemFailure, KinesisEventResponse};
use lambda_runtime::{LambdaEvent, service_fn};
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::Mutex;

use crate::app::{App, Report};
use crate::event;
use crate::outcome::BatchOutcome;

/// The environment variable naming the pipeline config.
pub const CONFIG_VAR: &str = "SLUICE_CONFIG";

/// Time kept in hand before the Lambda deadline: sending stops this early.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(1500);

/// Runs the Lambda function: cold start, then serve invocations until Lambda
/// stops the process.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let started = Instant::now();
    let app = cold_start().await?;
    let state = Mutex::new((app, Some(started.elapsed())));
    let state = &state;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<Box<RawValue>>| async move {
            let mut guard = state.lock().await;
            let (app, cold_start) = &mut *guard;
            handle(app, event, cold_start.take()).await
        },
    ))
    .await
}

/// The cold start: loads the pipeline config named by `SLUICE_CONFIG` and
/// its plugins, and refuses destinations that cannot work in Lambda. Logs
/// why it failed, or how long it took.
pub async fn cold_start() -> Result<App, String> {
    let started = Instant::now();
    let config = std::env::var(CONFIG_VAR).map_err(|_| {
        let msg = format!(
            "{CONFIG_VAR} is not set: set it to the pipeline config, `s3://<bucket>/<key>` or a path"
        );
        tracing::error!(target: "sluice.lambda.init", "{msg}");
        msg
    })?;
    let app = App::load(&config)
        .await
        .and_then(|app| refuse_local_destinations(app.plan()).map(|()| app))
        .map_err(|e| {
            tracing::error!(target: "sluice.lambda.init", config = %config, error = %format!("{e:#}"), "cold start failed");
            format!("cold start failed: {e:#}")
        })?;
    tracing::info!(
        target: "sluice.lambda.init",
        config = %config,
        init_ms = started.elapsed().as_secs_f64() * 1e3,
        "ready"
    );
    Ok(app)
}

/// Refuses a plan with a destination that cannot work in Lambda (`file`:
/// only `/tmp` is writable and it vanishes with the execution environment;
/// `stdout`: it would mix outputs into the function's logs), naming it.
pub fn refuse_local_destinations(plan: &crate::config::Plan) -> anyhow::Result<()> {
    match plan.destinations.iter().find(|d| !d.kind.in_aws()) {
        Some(d) => anyhow::bail!(
            "{}: destinations.{}: a `{}` destination cannot work in AWS Lambda (the file system is read-only but for `/tmp`, which vanishes with the execution environment, and standard output is the function's log): use an `sqs` or `s3` destination",
            plan.source,
            d.name,
            d.kind.name()
        ),
        None => Ok(()),
    }
}

/// What the function answers Lambda: the partial batch response, and in a
/// tumbling window the window's state
/// (`{"batchItemFailures": […], "state": {…}}`).
#[derive(Debug, Clone, Serialize)]
pub struct Response {
    /// Per shard, the record to resume from.
    #[serde(flatten)]
    pub batch: KinesisEventResponse,
    /// The window's state, one entry per `aggregate` step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<BTreeMap<String, String>>,
}

/// Handles one invocation; `cold_start` is the init duration on the first
/// invocation of the execution environment.
pub async fn handle(
    app: &mut App,
    event: LambdaEvent<Box<RawValue>>,
    cold_start: Option<Duration>,
) -> Result<Response, lambda_runtime::Error> {
    let started = Instant::now();
    let trace_header = event.context.xray_trace_id.as_deref();
    crate::logging::begin_invocation(crate::logging::Invocation {
        request_id: event.context.request_id.clone(),
        function_arn: event.context.invoked_function_arn.clone(),
        xray_trace_id: trace_header.map(trace_root),
        cold_start: cold_start.is_some(),
    });
    app.set_trace_header(trace_header);
    let deadline = deadline_of(event.context.deadline);
    tracing::debug!(
        target: "sluice.lambda.invoke",
        deadline_ms = event.context.deadline,
        budget_ms = deadline.saturating_duration_since(started).as_millis() as u64,
        "invocation"
    );
    let Invoked {
        report,
        response,
        records,
        oldest_arrival_ms,
        state,
    } = invoke(app, event.payload.get().as_bytes(), Some(deadline)).await?;
    let invocation = crate::metrics::Invocation {
        timestamp_ms: crate::metrics::now_ms(),
        duration: started.elapsed(),
        oldest_arrival_ms,
        cold_start,
        batch_item_failures: response.batch_item_failures.len(),
    };
    for doc in crate::metrics::documents(app.plan(), &report, &invocation) {
        // EMF: one JSON document per line on stdout, which CloudWatch Logs
        // turns into metrics.
        println!("{doc}");
    }
    tracing::info!(
        target: "sluice.lambda.invoke",
        request_id = %event.context.request_id,
        records,
        delivered = report.dispatch.delivered.iter().sum::<usize>(),
        filtered = report.outcome.filtered,
        failed = report.outcome.failures.len(),
        dead_lettered = report.dispatch.dead_lettered,
        dropped = report.outcome.dropped.len(),
        held_back = report.outcome.held_back,
        checkpoints = response.batch_item_failures.len(),
        window_last = report.window.as_ref().is_some_and(|w| w.last),
        window_emitted = report.window.as_ref().map_or(0, |w| w.emitted),
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "batch done"
    );
    let failed = report.outcome.failures.iter();
    let dead = report.outcome.dead_letters.iter().map(|d| &d.failure);
    for f in failed.chain(dead).chain(&report.outcome.dropped) {
        tracing::warn!(
            target: "sluice.lambda.record",
            action = f.action.as_str(),
            shard = f.shard_id.as_deref().unwrap_or(""),
            sequence_number = f.sequence_number.as_deref().unwrap_or(""),
            stage = %f.stage,
            plugin = f.plugin.as_deref().unwrap_or(""),
            class = f.class.as_str(),
            reason = %f.reason,
            "record failed"
        );
    }
    Ok(Response {
        batch: response,
        state,
    })
}

/// What one invocation did.
#[derive(Debug)]
pub struct Invoked {
    /// What became of every record, and what each destination took.
    pub report: Report,
    /// The partial batch response: per shard, the record to resume from.
    pub response: KinesisEventResponse,
    /// Records in the event.
    pub records: usize,
    /// The oldest record's arrival time (ms since the epoch), if any record.
    pub oldest_arrival_ms: Option<u64>,
    /// In a tumbling window: the window's state to hand back.
    pub state: Option<BTreeMap<String, String>>,
}

/// One invocation as Lambda makes it, without the Runtime API: the Kinesis
/// event's JSON in, the partial batch response out. An `Err` is a function
/// error: Lambda retries the whole batch. The Lambda handler and `sluice
/// consume` (which builds the event the event source mapping would send)
/// both come through here.
pub async fn invoke(
    app: &mut App,
    payload: &[u8],
    deadline: Option<Instant>,
) -> Result<Invoked, String> {
    let batch = event::decode(payload, "invocation").map_err(|e| e.to_string())?;
    let records = batch.len();
    let oldest_arrival_ms = crate::metrics::oldest_arrival_ms(&batch);
    let report = app.process(batch, deadline).await;
    if let Some(error) = report.window.as_ref().and_then(|w| w.error.clone()) {
        return Err(error);
    }
    let response = response(&report.outcome)?;
    let state = report.window.as_ref().map(|w| w.state.clone());
    Ok(Invoked {
        report,
        response,
        records,
        oldest_arrival_ms,
        state,
    })
}

/// The partial-batch response for `outcome`: per shard, the first failed record.
///
/// A failed record whose sequence number is unknown cannot be a checkpoint,
/// so the whole invocation fails instead (Lambda retries the batch).
pub fn response(outcome: &BatchOutcome) -> Result<KinesisEventResponse, String> {
    let mut failures: Vec<KinesisBatchItemFailure> = Vec::new();
    for f in outcome.checkpoints() {
        let Some(seq) = f.sequence_number.as_deref().filter(|s| !s.is_empty()) else {
            return Err(format!(
                "record #{} failed ({}: {}) and has no sequence number to retry from; failing the whole batch",
                f.index, f.stage, f.reason
            ));
        };
        let mut item = KinesisBatchItemFailure::default();
        item.item_identifier = Some(seq.to_owned());
        failures.push(item);
    }
    let mut response = KinesisEventResponse::default();
    response.batch_item_failures = failures;
    Ok(response)
}

/// The trace id of an X-Ray trace header (`Root=1-…;Parent=…;Sampled=1` →
/// `1-…`), as Powertools logs it; the header itself when it has no `Root`.
pub fn trace_root(header: &str) -> String {
    header
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Root="))
        .unwrap_or(header)
        .to_owned()
}

/// Deadlines below this (the year 2001, in ms since the epoch) are durations.
const EPOCH_MS_FLOOR: u64 = 978_307_200_000;

/// The instant to stop sending: the Lambda deadline (ms since the epoch)
/// less [`DEADLINE_MARGIN`].
///
/// Lambda sends an absolute time; cargo-lambda's emulator sends the timeout
/// itself (e.g. `600000`), which is taken as a duration from now.
fn deadline_of(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let remaining = if deadline_ms < EPOCH_MS_FLOOR {
        Duration::from_millis(deadline_ms)
    } else {
        Duration::from_millis(deadline_ms.saturating_sub(now_ms))
    };
    Instant::now() + remaining.saturating_sub(DEADLINE_MARGIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_id_is_the_root_of_the_trace_header() {
        assert_eq!(
            trace_root(
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
            ),
            "1-5759e988-bd862e3fe1be46a994272793"
        );
        assert_eq!(trace_root("opaque"), "opaque");
    }
    use crate::outcome::{FailureClass, RecordFailure};

    fn failure(index: usize, shard: &str, seq: Option<&str>) -> RecordFailure {
        RecordFailure {
            index,
            shard_id: Some(shard.into()),
            sequence_number: seq.map(str::to_owned),
            stage: "s".into(),
            plugin: None,
            class: FailureClass::Retry,
            reason: "r".into(),
            action: crate::config::OnError::Retry,
        }
    }

    #[test]
    fn deadlines_are_absolute_or_relative() {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let budget = |d| deadline_of(d).saturating_duration_since(Instant::now());
        let abs = budget(now_ms + 10_000);
        assert!(
            abs > Duration::from_secs(8) && abs <= Duration::from_millis(8_500),
            "{abs:?}"
        );
        let rel = budget(600_000);
        assert!(
            rel > Duration::from_secs(598) && rel < Duration::from_secs(599),
            "{rel:?}"
        );
        assert_eq!(budget(now_ms - 1), Duration::ZERO);
    }

    #[test]
    fn empty_when_nothing_failed() {
        let r = response(&BatchOutcome::default()).unwrap();
        assert!(r.batch_item_failures.is_empty());
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"batchItemFailures":[]}"#
        );
    }

    #[test]
    fn first_failure_per_shard() {
        let outcome = BatchOutcome {
            failures: vec![
                failure(1, "a", Some("11")),
                failure(2, "b", Some("22")),
                failure(3, "a", Some("33")),
            ],
            ..BatchOutcome::default()
        };
        let r = response(&outcome).unwrap();
        let ids: Vec<_> = r
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone().unwrap())
            .collect();
        assert_eq!(ids, ["11", "22"]);
    }

    #[test]
    fn a_failure_without_sequence_number_fails_the_invocation() {
        let outcome = BatchOutcome {
            failures: vec![failure(0, "a", None)],
            ..BatchOutcome::default()
        };
        assert!(
            response(&outcome)
                .unwrap_err()
                .contains("no sequence number")
        );
    }
}
