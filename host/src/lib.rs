//! Sluice: run sandboxed WebAssembly component plugins on a Kinesis stream.
//!
//! One invocation flows through the modules in this order:
//!
//! ```text
//! Kinesis event JSON ──event::decode──▶ Batch ──source::expand, prefilter──▶ Batch
//!   ──pipeline::Pipeline::run──▶ outcome::BatchOutcome (every record: routed, filtered or failed)
//!   ──dispatch::dispatch──▶ destination::Destination (SQS, S3, file, stdout, memory)
//! ```
//!
//! - [`event`], [`source`], [`pattern`], [`config`] and [`outcome`] come
//!   from the `sluice-core` crate (no wasmtime, no AWS SDK): [`event`] turns
//!   the Lambda Kinesis event into Sluice's own [`event::Batch`], [`source`]
//!   reads what the payloads hold (`[source]`: KPL aggregates, gzip or zstd,
//!   CloudWatch Logs, the pre-filter), [`config`] validates the TOML pipeline
//!   config into a [`config::Plan`] (each destination kind's table and rules
//!   in [`config::destination`]), and [`outcome`] is the ledger of what
//!   became of each record: the one place that decides that a record's first
//!   failure wins, what a shard's first retried record holds back, and where
//!   Lambda resumes each shard.
//! - [`plugin`] compiles components once and runs them in a sandbox with no
//!   ambient authority (the one `bindgen!` site lives in `plugin::bindings`);
//!   [`plugin::Instance::call`] is the one guest call.
//! - [`pipeline`] runs the plan's steps over a batch: one guest call per step
//!   per batch, each event's [`plugin::Decision`] applied over one list of
//!   live records.
//! - [`destination`] builds each destination from its validated plan and
//!   sends to it; [`dispatch`] hands each its outputs and files what they
//!   did not take in the ledger.
//! - [`app`] is the cold start (config, plugins and destinations, from disk
//!   or S3, through one fetch path); [`lambda`] serves Lambda invocations
//!   with it, and the `sluice` binary is both the Lambda bootstrap and the
//!   local CLI.
//! - [`aws`] builds the AWS clients once; [`metrics`] writes each
//!   invocation's CloudWatch metrics (EMF); [`logging`] the JSON logs;
//!   [`summary`] the local run's summary.
//! - `stream` is the stream on your laptop: `sluice put` writes records to a
//!   Kinesis stream, `sluice consume` runs the pipeline on it as Lambda's
//!   event source mapping would (the default `stream` feature).
//! - `precompile` compiles a pipeline's plugins ahead of time (`sluice
//!   precompile`); it comes with the default `compiler` feature (Cranelift),
//!   without which Sluice loads only precompiled artifacts.
//! - `author` is the plugin-author loop (`sluice new`, `sluice build`, `sluice
//!   test`) and `fixture` its golden-file runner; both come with the
//!   default `author` feature, which the Lambda build leaves out.

pub mod app;
#[cfg(feature = "author")]
pub mod author;
pub mod aws;
pub mod destination;
pub mod dispatch;
#[cfg(feature = "author")]
pub mod fixture;
pub mod lambda;
pub mod logging;
pub mod metrics;
pub mod pipeline;
pub mod plugin;
#[cfg(feature = "compiler")]
pub mod precompile;
#[cfg(feature = "stream")]
pub mod stream;
pub mod summary;

// The pure core (no wasmtime, no AWS SDK), under the names the host has
// always used for it.
pub use sluice_core::{config, event, hex, outcome, pattern, source};
