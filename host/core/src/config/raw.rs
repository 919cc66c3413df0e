//! The serde types of the pipeline config, one per TOML table.
//!
//! Every struct denies unknown fields, so a typo is an error that names the
//! field and its line. Each field's doc opens with its literal syntax.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[[steps]]`: the pipeline's steps, run in order.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// `[destinations.<name>]`: where outputs can go.
    #[serde(default)]
    #[schemars(extend("propertyNames" = { "pattern": crate::name::PATTERN }))]
    pub destinations: BTreeMap<String, super::destination::DestinationConfig>,
    /// `[routing]`: routing defaults.
    #[serde(default)]
    pub routing: Routing,
    /// `[source]`: what the stream's payloads hold; see [`Source`].
    #[serde(default)]
    pub source: Source,
    /// `[metrics]`: the CloudWatch metrics of each invocation; see [`Metrics`].
    #[serde(default)]
    pub metrics: Metrics,
    /// `[tables.<name>]`: lookup tables that steps' plugins read; see [`Table`].
    #[serde(default)]
    #[schemars(extend("propertyNames" = { "pattern": crate::name::PATTERN }))]
    pub tables: BTreeMap<String, Table>,
}

/// `[tables.<name>]`: a lookup table, loaded at cold start (with the
/// plugins), held once by the host and read by the plugins of the steps it
/// names through the `sluice:plugin/tables` import.
#[derive(Debug, Deserialize, Clone, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Table {
    /// `source = "tables/customers.jsonl"`: the file, relative to this
    /// config (or to its S3 folder), or `s3://bucket/key`.
    pub source: String,
    /// `format = "jsonl" | "csv"`: default from the source's extension
    /// (`.csv` is CSV, anything else JSON Lines).
    pub format: Option<crate::table::TableFormat>,
    /// `key = "id"`: the top-level field (JSON Lines) or column (CSV) rows
    /// are looked up by.
    pub key: String,
    /// `sha256 = "<64 hex digits>"`: optional pin; loading fails if the file differs.
    pub sha256: Option<String>,
    /// `steps = ["enrich-tier"]`: the steps whose plugins may read it (and
    /// their shadows).
    pub steps: Vec<String>,
    /// `max_bytes = 268435456`: the most memory the loaded table may take
    /// (its rows and their index); more fails the cold start. Default 256 MiB.
    #[serde(default = "default_table_max_bytes")]
    pub max_bytes: usize,
    /// `refresh_seconds = 300`: in a warm function, load the table again
    /// once it is this old (in the background; lookups use the old rows
    /// until the new ones are in; a failed refresh keeps the old rows and
    /// logs why). Default: never.
    pub refresh_seconds: Option<u64>,
    /// `duplicates = "error" | "last"`: a key met twice fails the load
    /// (the default), or the later row wins.
    #[serde(default = "default_duplicates")]
    pub duplicates: crate::table::Duplicates,
}

fn default_table_max_bytes() -> usize {
    256 << 20
}

fn default_duplicates() -> crate::table::Duplicates {
    crate::table::Duplicates::Error
}

/// `[metrics]`: the metrics each invocation prints in CloudWatch Embedded
/// Metric Format (EMF).
#[derive(Debug, Deserialize, Clone, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    /// `enabled = true`: print them. Default `true`.
    pub enabled: bool,
    /// `namespace = "Sluice"`: the CloudWatch namespace. Default `Sluice`.
    pub namespace: String,
    /// `pipeline = "clickstream"`: the value of the `Pipeline` dimension.
    /// Default: the Lambda function's name (`AWS_LAMBDA_FUNCTION_NAME`), or
    /// the config file's name without `.toml` outside Lambda.
    pub pipeline: Option<String>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            enabled: true,
            namespace: "Sluice".into(),
            pipeline: None,
        }
    }
}

/// `[source]`: how Sluice reads each Kinesis payload before the first step.
///
/// In this order: a KPL aggregate is split into its user records
/// (`deaggregate`), each payload is decompressed (`decompress`), and a
/// CloudWatch Logs subscription payload is split into its log events
/// (`format`). Then the pre-filter (`filters`) keeps the records that match.
#[derive(Debug, Deserialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Source {
    /// `format = "records" | "cloudwatch-logs"`: `records` (the default) is
    /// one event per payload; `cloudwatch-logs` reads a subscription's
    /// gzipped JSON: one event per log event, control messages skipped.
    pub format: SourceFormat,
    /// `decompress = "none" | "gzip" | "zstd" | "auto"`: `auto` looks at the
    /// magic bytes and leaves other payloads alone. Default `none`.
    pub decompress: Decompress,
    /// `max_decompressed_bytes = 8388608`: the most one payload may grow to
    /// when decompressed (8 MiB); more fails the record (a compression bomb).
    pub max_decompressed_bytes: usize,
    /// `max_batch_bytes = 33554432`: the most that reading one batch's
    /// payloads may allocate (32 MiB, which fits a 128 MB function): every
    /// decompressed payload, de-aggregated user record and the keys and
    /// attributes copied onto each record decoding makes. A Kinesis record
    /// whose decoding would go past it fails alone (class `decode`); the
    /// others go on.
    pub max_batch_bytes: usize,
    /// `deaggregate = true`: split KPL aggregates (payloads that start with
    /// `f3 89 9a c2`) into their user records. Default `true`.
    pub deaggregate: bool,
    /// `filters = ['{"data": {"type": ["click"]}}', { data = { user = { tier = ["gold"] } } }]`:
    /// Lambda `FilterCriteria` patterns, each a JSON string or a TOML table
    /// (see [`crate::pattern`]). A record is kept when any pattern matches;
    /// the others count as filtered, with no plugin call. Default: none.
    #[schemars(with = "Vec<serde_json::Value>")]
    pub filters: Vec<toml::Value>,
}

impl Default for Source {
    fn default() -> Source {
        Source {
            format: SourceFormat::Records,
            decompress: Decompress::None,
            max_decompressed_bytes: 8 << 20,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            deaggregate: true,
            filters: Vec::new(),
        }
    }
}

/// The most window state Lambda carries between the invocations of a
/// tumbling window, for all of a pipeline's aggregate steps: 1 MB.
pub const MAX_WINDOW_STATE_BYTES: usize = 1_000_000;

/// The default `[source] max_batch_bytes`: 32 MiB.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 32 << 20;

/// `[source] format`.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SourceFormat {
    /// One event per payload.
    Records,
    /// A CloudWatch Logs subscription: one event per log event.
    CloudwatchLogs,
}

/// `[source] decompress`.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Decompress {
    /// Payloads are used as they are.
    None,
    /// Every payload is gzip.
    Gzip,
    /// Every payload is zstd.
    Zstd,
    /// Gzip or zstd when the payload starts with its magic bytes; as it is
    /// otherwise.
    Auto,
}

/// One `[[steps]]` entry.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// `name = "redact-pii"`: unique; names the step in logs, errors and summaries.
    #[schemars(pattern(crate::name::PATTERN))]
    pub name: String,
    /// `kind = "filter" | "transform" | "route" | "aggregate"`: the world
    /// the plugin implements.
    pub kind: StepKind,
    /// `plugin = "plugins/redact.wasm"`: the component, relative to this file.
    pub plugin: String,
    /// `sha256 = "<64 hex digits>"`: optional pin; loading fails if the component differs.
    pub sha256: Option<String>,
    /// `config = { ... }`: the plugin's settings, passed to its `init` as JSON.
    #[serde(default)]
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub config: toml::Table,
    /// `limits = { timeout_ms = 2000, memory_bytes = 134217728 }`: the
    /// plugin's sandbox limits; see [`Limits`].
    #[serde(default)]
    pub limits: Limits,
    /// `on_error = "retry" | "dead-letter" | "drop"`: what becomes of a
    /// record this step fails; see [`OnError`]. Default: `dead-letter` when
    /// `routing.dead_letter` is set, else `retry`.
    pub on_error: Option<OnError>,
    /// `destinations = ["page-views"]`: an `aggregate` step's own
    /// destinations, where the outputs of each window go (required for an
    /// aggregate, refused for other kinds).
    #[serde(default)]
    pub destinations: Vec<String>,
    /// `deterministic = true`: the plugin's wall clock and randomness are a
    /// function of the records of each call, so a replayed call sees the
    /// same values. See [`crate::config::StepPlan::deterministic`].
    #[serde(default)]
    pub deterministic: bool,
    /// `shadow = { plugin = "plugins/redact-v2.wasm", sha256 = "…" }`: a
    /// candidate plugin that runs on the step's inputs after it, delivers
    /// nothing, and is compared with it; see [`Shadow`].
    pub shadow: Option<Shadow>,
}

/// A step's `shadow`: a candidate plugin of the same kind, run on the same
/// events after the step's own plugin, under its own limits and a share of
/// the invocation's time. Nothing it makes is delivered; its decisions and
/// outputs are compared with the step's and counted (`ShadowCalls`,
/// `ShadowMismatches`, `ShadowFailures`), a few mismatches logged. A
/// shadow that traps, times out or is slow changes nothing the step
/// delivers.
#[derive(Debug, Deserialize, Clone, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Shadow {
    /// `plugin = "plugins/redact-v2.wasm"`: the candidate component,
    /// relative to this file (or `s3://…`).
    pub plugin: String,
    /// `sha256 = "<64 hex digits>"`: optional pin, as a step's.
    pub sha256: Option<String>,
    /// `config = { ... }`: the candidate's settings; default: the step's.
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub config: Option<toml::Table>,
    /// `limits = { timeout_ms = 500 }`: the candidate's sandbox limits;
    /// default: the step's.
    pub limits: Option<Limits>,
    /// `time_share = 0.1`: the most of the time left in the invocation one
    /// shadow call may take (0 to 0.5). Default 0.1.
    #[serde(default = "default_time_share")]
    pub time_share: f64,
}

fn default_time_share() -> f64 {
    0.1
}

/// What becomes of a record that a step fails (the plugin said `invalid`,
/// trapped, timed out, or broke the contract). A plugin's own
/// `failure::retry` is always retried, whatever the policy.
#[derive(
    Debug, Deserialize, serde::Serialize, Clone, Copy, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// Report the record to Lambda in `batchItemFailures`: it and everything
    /// after it on its shard are redelivered; nothing after it is sent now.
    Retry,
    /// Send the original record, with the step, plugin, failure class and
    /// reason, to `routing.dead_letter`, and carry on with the shard.
    DeadLetter,
    /// Count and log the record (with its sequence number) and carry on.
    Drop,
}

impl OnError {
    /// The name used in config and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            OnError::Retry => "retry",
            OnError::DeadLetter => "dead-letter",
            OnError::Drop => "drop",
        }
    }
}

/// A step's sandbox limits. A plugin that exceeds `timeout_ms`,
/// `memory_bytes` or its stack traps: it is restarted, and the call's events
/// are re-run in halves until only those that make it trap fail (class
/// `trap`). An event over
/// `max_outputs_per_event` or `max_output_bytes` fails alone (class `contract`).
///
/// `memory_bytes` caps the plugin's linear memory summed over all the
/// memories of its component; tables are capped at 2^20 elements in all,
/// the Wasm stack at 512 KiB. What the host copies out of one call is
/// capped at `memory_bytes` too, before it allocates: a call whose results
/// add up to more (outputs that all point at one region of its memory) is
/// split like a trap, and the events that do it fail alone (class
/// `contract`).
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// `timeout_ms = 2000`: wall time one call (one batch) may take.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// `memory_bytes = 134217728`: linear memory the plugin may grow to, all
    /// its memories together (128 MiB).
    #[serde(default = "default_memory_bytes")]
    pub memory_bytes: usize,
    /// `max_outputs_per_event = 1000`: outputs a `transform` may make of one event.
    #[serde(default = "default_max_outputs_per_event")]
    pub max_outputs_per_event: usize,
    /// `max_output_bytes = 1048576`: the largest output payload (1 MiB).
    #[serde(default = "default_max_output_bytes")]
    pub max_output_bytes: usize,
    /// `max_log_lines = 1000`: log lines per call; the rest are counted, not written.
    #[serde(default = "default_max_log_lines")]
    pub max_log_lines: usize,
    /// `max_state_bytes = 500000`: `aggregate` only: the most bytes of
    /// state a window of this step may hold. Lambda carries at most 1 MB of
    /// window state for all of a pipeline's aggregate steps; by default each
    /// gets an equal share.
    #[serde(default)]
    pub max_state_bytes: Option<usize>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            timeout_ms: default_timeout_ms(),
            memory_bytes: default_memory_bytes(),
            max_outputs_per_event: default_max_outputs_per_event(),
            max_output_bytes: default_max_output_bytes(),
            max_log_lines: default_max_log_lines(),
            max_state_bytes: None,
        }
    }
}

/// 2 s per call.
pub const fn default_timeout_ms() -> u64 {
    2000
}
/// 128 MiB.
pub const fn default_memory_bytes() -> usize {
    128 << 20
}
/// 1000 outputs per event.
pub const fn default_max_outputs_per_event() -> usize {
    1000
}
/// 1 MiB per output.
pub const fn default_max_output_bytes() -> usize {
    1 << 20
}
/// 1000 log lines per call.
pub const fn default_max_log_lines() -> usize {
    1000
}

/// The plugin kinds, one per WIT world.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// Keeps or drops each event.
    Filter,
    /// Turns each event into zero or more events.
    Transform,
    /// Chooses each event's destinations.
    Route,
    /// Folds events into a state per tumbling window; emits outputs when
    /// the window closes (events pass unchanged).
    Aggregate,
}

impl StepKind {
    /// The name used in config, WIT and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Filter => "filter",
            StepKind::Transform => "transform",
            StepKind::Route => "route",
            StepKind::Aggregate => "aggregate",
        }
    }
}

impl std::fmt::Display for StepKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `[routing]` table.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Routing {
    /// `default = "archive"`: where events go when no `route` step chose;
    /// optional when there is only one destination.
    pub default: Option<String>,
    /// `dead_letter = "dlq"`: the destination that takes records a step
    /// fails under `on_error = "dead-letter"`, and records that do not
    /// decode. Each becomes one JSON document (see the README).
    pub dead_letter: Option<String>,
}
