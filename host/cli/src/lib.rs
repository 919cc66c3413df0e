//! The `sluice` command's library: what the CLI adds to the runtime (the
//! `host` crate) for people working on a laptop.
//!
//! - [`cmd`]: one module per subcommand, its flags and its `run`.
//! - [`author`]: the plugin-author loop (`sluice new`, `build`, `test`).
//! - [`stream`]: a Kinesis stream on your laptop (`sluice put`, `consume`,
//!   the event source mapping emulated).
//! - [`archive`], [`replay`] and [`diff`]: records read back from what the
//!   `s3` destination archived, run through a pipeline again (`sluice
//!   replay`), or through two pipelines to compare them (`sluice diff`).
//! - [`precompile`]: plugins compiled ahead of time for a Lambda without
//!   Cranelift.
//!
//! The Lambda function itself is `host`'s `sluice-lambda` binary, which
//! links none of this.

pub mod archive;
pub mod author;
pub mod cmd;
pub mod diff;
pub mod precompile;
pub mod replay;
pub mod stream;
