#![allow(
    clippy::too_many_lines,
    reason = "a test reads top to bottom, setup to assertions"
)]
//! Every integration test of the runtime and the CLI, in one binary: wasmtime
//! and the AWS SDK are linked once instead of once per test file. (The
//! fixture cases users run with `cargo test -p host` are `host/tests/fixtures.rs`.)
//!
//! Run one area with a filter: `cargo test -p sluice-cli --test all sandbox::`.
//! The areas that need services (moto, cargo-lambda, cfn-lint: `tests/run`
//! installs them) live in the repository's top-level `tests/` folder.

mod author;
mod cli;
mod corpus;
mod delivery;
mod hostile_input;
mod languages;
mod metrics;
mod no_record_lost;
mod plugins;
mod precompiled;
mod sandbox;
mod schema;
mod source;

#[path = "../../../../tests/aws.rs"]
mod aws;
#[path = "../../../../tests/deploy.rs"]
mod deploy;
#[path = "../../../../tests/destinations.rs"]
mod destinations;
#[path = "../../../../tests/esm.rs"]
mod esm;
#[path = "../../../../tests/lambda.rs"]
mod lambda;
#[path = "../../../../tests/replay.rs"]
mod replay;
#[path = "../../../../tests/shadow.rs"]
mod shadow;
#[path = "../../../../tests/stream.rs"]
mod stream;
#[path = "../../../../tests/support/mod.rs"]
mod support;
#[path = "../../../../tests/tables.rs"]
mod tables;
#[path = "../../../../tests/windows.rs"]
mod windows;

/// Paths of the example and test plugins, built from source by `host/build.rs`.
use host::built_plugins as test_plugins;
