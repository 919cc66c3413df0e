//! Sluice: run sandboxed WebAssembly component plugins on a Kinesis stream.
//!
//! One invocation flows through the modules in this order:
//!
//! ```text
//! Kinesis event JSON ──event::decode──▶ Batch
//!   ──pipeline::Pipeline::run──▶ BatchOutcome (one outcome per record, routed outputs)
//!   ──dispatch::dispatch──▶ sink::Destination (file, stdout, memory …)
//! ```
//!
//! - [`event`], [`source`], [`pattern`] and [`config`] come from the
//!   `sluice-core` crate (no wasmtime, no AWS SDK): [`event`] turns the Lambda
//!   Kinesis event into Sluice's own [`event::Batch`], [`source`] reads what
//!   the payloads hold (`[source]`: KPL aggregates, gzip or zstd, CloudWatch
//!   Logs, the pre-filter) and [`config`] validates the TOML pipeline config
//!   into a [`config::Plan`].
//! - [`plugin`] compiles components once and runs them in a sandbox with no
//!   ambient authority (the one `bindgen!` site lives in `plugin::bindings`).
//! - [`pipeline`] runs the plan's steps over a batch: one guest call per step per batch.
//! - [`sink`] holds the destinations; [`dispatch`] hands each its outputs.
//! - [`fixture`] runs golden-file test cases for plugin authors.
//! - [`app`] is the cold start (config, plugins and destinations, from disk
//!   or S3); [`lambda`] serves Lambda invocations with it, and the `sluice`
//!   binary is both the Lambda bootstrap and the local CLI.
//! - [`aws`] builds the AWS clients once; [`metrics`] writes each
//!   invocation's CloudWatch metrics (EMF).
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
pub mod sink;
pub mod summary;

// The pure core (no wasmtime, no AWS SDK), under the names the host has
// always used for it.
pub use sluice_core::{config, event, hex, pattern, source};

/// Paths of the example plugins, built from `plugins/` by `build.rs`.
pub mod test_plugins {
    include!(concat!(env!("OUT_DIR"), "/test_plugins.rs"));
}
