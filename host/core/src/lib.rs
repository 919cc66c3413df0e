//! Sluice's core: what can be said about a batch and a pipeline without
//! running a plugin or talking to AWS.
//!
//! - [`event`] turns the Lambda Kinesis event into Sluice's own
//!   [`event::Batch`]; no AWS type leaks past it.
//! - [`source`] reads what the payloads hold (`[source]`: KPL aggregates,
//!   gzip or zstd, CloudWatch Logs) and applies the pre-filter.
//! - [`pattern`] is the pre-filter's language: Lambda's `FilterCriteria`
//!   patterns, matched in-process.
//! - [`config`] parses the TOML pipeline config and validates it into a
//!   [`config::Plan`].
//! - [`outcome`] is the ledger of what became of every record of a batch:
//!   routed, filtered or failed, first failure wins, per-shard cut-off.
//! - [`table`] reads lookup tables (`[tables.NAME]`: JSON Lines or CSV)
//!   into one buffer and an index.
//! - [`archive`] reads what the `s3` and `file` destinations wrote back as
//!   records (`sluice replay`, `sluice diff`).
//!
//! The `host` crate (wasmtime, the AWS SDK, the `sluice` binary) builds on
//! it; the fuzz targets in `host/fuzz` depend on it as an ordinary crate.

pub mod archive;
pub mod config;
pub mod event;
pub mod name;
pub mod outcome;
pub mod pattern;
pub mod source;
pub mod table;

/// Lower-case hex of `bytes` (digests in messages and configs).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
