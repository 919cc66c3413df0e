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
//!   ambient authority; each plugin kind (filter, transform, route) is one
//!   module of [`plugin::kind`], behind one trait, registered in one match;
//!   [`plugin::Instance::call`] is the one guest call.
//! - [`pipeline`] runs the plan's steps over a batch: one guest call per step
//!   per batch, each event's [`plugin::Decision`] applied over one list of
//!   live records.
//! - [`destination`] builds each destination from its validated plan and
//!   sends to it (one module per kind); [`dispatch`] keeps many requests in
//!   flight, resends what was not taken and files the rest in the ledger.
//! - [`app`] is the cold start (config, plugins and destinations, from disk
//!   or S3, through one fetch path); [`lambda`] serves Lambda invocations
//!   with it, and the `sluice-lambda` binary is the Lambda bootstrap.
//! - [`tables`] holds the lookup tables (`[tables.NAME]`) plugins read
//!   through the `sluice:plugin/tables` import, loaded at cold start and
//!   refreshed in a warm function.
//! - [`aws`] builds the AWS clients once; [`metrics`] writes each
//!   invocation's CloudWatch metrics (EMF); [`logging`] the JSON logs;
//!   [`summary`] the local run's summary; [`fixture`] runs golden-file
//!   cases (`cargo test -p host`, `sluice test`).
//!
//! The local tools (`sluice run`, `check`, `new`, `build`, `test`,
//! `precompile`, `put`, `consume` …) are the `sluice-cli` crate in
//! `host/cli`; nothing here depends on them.

pub mod app;
pub mod aws;
pub mod destination;
pub mod dispatch;
pub mod fixture;
pub mod lambda;
pub mod logging;
pub mod metrics;
pub mod pipeline;
pub mod plugin;
pub mod summary;
pub mod tables;

/// Paths of the example and test plugins (`plugins/`, `tests/plugins/`),
/// built from source for wasm32-wasip2 by `host/build.rs`: one `&str`
/// constant per plugin, named after its library (`FILTER_FIELD`, …).
#[cfg(feature = "plugins")]
pub mod built_plugins {
    include!(concat!(env!("OUT_DIR"), "/test_plugins.rs"));
}

// The pure core (no wasmtime, no AWS SDK), under the names the host has
// always used for it.
pub use sluice_core::{archive, config, event, hex, outcome, pattern, source, table};
