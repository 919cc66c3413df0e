//! The serde types of the pipeline config, one per TOML table.
//!
//! Every struct denies unknown fields, so a typo is an error that names the
//! field and its line. Each field's doc opens with its literal syntax.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[[steps]]`: the pipeline's steps, run in order.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// `[destinations.<name>]`: where outputs can go.
    #[serde(default)]
    pub destinations: BTreeMap<String, Destination>,
    /// `[routing]`: routing defaults.
    #[serde(default)]
    pub routing: Routing,
}

/// One `[[steps]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// `name = "redact-pii"`: unique; names the step in logs, errors and summaries.
    pub name: String,
    /// `kind = "filter" | "transform" | "route"`: the world the plugin implements.
    pub kind: StepKind,
    /// `plugin = "plugins/redact.wasm"`: the component, relative to this file.
    pub plugin: String,
    /// `sha256 = "<64 hex digits>"`: optional pin; loading fails if the component differs.
    pub sha256: Option<String>,
    /// `config = { ... }`: the plugin's settings, passed to its `init` as JSON.
    #[serde(default)]
    pub config: toml::Table,
}

/// The plugin kinds, one per WIT world.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// Keeps or drops each event.
    Filter,
    /// Turns each event into zero or more events.
    Transform,
    /// Chooses each event's destinations.
    Route,
}

impl StepKind {
    /// The name used in config, WIT and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Filter => "filter",
            StepKind::Transform => "transform",
            StepKind::Route => "route",
        }
    }
}

impl std::fmt::Display for StepKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[destinations.<name>]` table, tagged by `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Destination {
    /// `type = "file"`: appends outputs to a local file, one per line.
    File {
        /// `path = "out/orders.jsonl"`: the file, relative to this config file.
        path: PathBuf,
        /// `format = "raw" | "envelope"`: see [`Format`]; default `raw`.
        #[serde(default)]
        format: Format,
    },
    /// `type = "stdout"`: writes outputs to standard output, one per line.
    Stdout {
        /// `format = "raw" | "envelope"`: see [`Format`]; default `raw`.
        #[serde(default)]
        format: Format,
    },
    /// `type = "sqs"`: sends each output as one SQS message (standard or FIFO).
    Sqs {
        /// `queue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders.fifo"`;
        /// a URL ending in `.fifo` is a FIFO queue.
        queue_url: String,
        /// `message_group_id = "{partition_key}"`: FIFO only; the group id
        /// template, with `{partition_key}` and `{shard}`. Default `{partition_key}`.
        message_group_id: Option<String>,
        /// `max_message_bytes = 1048576`: the largest message (body plus
        /// attributes) and the largest `SendMessageBatch` request. Default 1 MiB.
        #[serde(default = "default_max_message_bytes")]
        max_message_bytes: usize,
        /// `format = "raw" | "envelope"`: the message body; default `raw`.
        #[serde(default)]
        format: Format,
    },
    /// `type = "s3"`: writes one object per batch (per shard) with every output, one per line.
    S3 {
        /// `bucket = "acme-archive"`.
        bucket: String,
        /// `key = "clicks/{yyyy}/{mm}/{dd}/{hh}/{shard}-{first_seq}-{last_seq}.jsonl.gz"`:
        /// the object key template. Placeholders: `{shard}`, `{first_seq}`,
        /// `{last_seq}`, `{yyyy}`, `{mm}`, `{dd}`, `{hh}` (the first record's
        /// arrival time, UTC) and `{destination}`. Must use `{shard}` and
        /// `{first_seq}`, so that keys are unique and a retried batch writes
        /// the same key.
        key: String,
        /// `format = "raw" | "envelope"`: see [`Format`]; default `raw`.
        #[serde(default)]
        format: Format,
        /// `gzip = true`: compress the object (`Content-Encoding: gzip`). Default `false`.
        #[serde(default)]
        gzip: bool,
        /// `content_type = "application/x-ndjson"`: the object's content type (that is the default).
        content_type: Option<String>,
    },
}

/// 1 MiB: SQS's message size limit.
pub const fn default_max_message_bytes() -> usize {
    1 << 20
}

/// How an output is written as one line.
#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The payload bytes as they are (for JSON payloads: JSON Lines).
    #[default]
    Raw,
    /// A JSON object with the lineage (shard, sequence number, partition key,
    /// attributes) and the payload under `data` (or `data_base64` when the
    /// payload is not JSON).
    Envelope,
}

/// The `[routing]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Routing {
    /// `default = "archive"`: where events go when no `route` step chose;
    /// optional when there is only one destination.
    pub default: Option<String>,
}
