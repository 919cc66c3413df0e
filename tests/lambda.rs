//! The real `sluice` binary as a Lambda function under cargo-lambda's Runtime
//! API emulator, with its config, plugins and destinations in moto.
//!
//! Run with `cargo test -p host --test lambda` (needs `moto_server` and
//! `cargo-lambda`: `tests/run` installs both).

fn main() {}
