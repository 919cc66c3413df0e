//! Structured logs with `tracing`.
//!
//! In Lambda, logs are JSON lines on stdout: that is what CloudWatch reads.
//! The CLI writes its logs to stderr (stdout holds the summary and the
//! `stdout` destination), as text when stderr is a terminal and JSON
//! otherwise. `SLUICE_LOG` sets the filter (default `info`, e.g.
//! `SLUICE_LOG=debug` or `SLUICE_LOG=sluice.plugin.log=trace`);
//! `SLUICE_LOG_FORMAT=json|text` forces the format.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// Where the process runs, which decides where logs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The Lambda function: JSON on stdout.
    Lambda,
    /// The CLI: stderr, text on a terminal.
    Cli,
}

/// Installs the global subscriber. Calling it twice is harmless.
pub fn init(mode: Mode) {
    let filter = EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match std::env::var("SLUICE_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => mode == Mode::Lambda || !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = match (mode, json) {
        (Mode::Lambda, true) => builder.json().with_current_span(false).try_init(),
        (Mode::Lambda, false) => builder.try_init(),
        (Mode::Cli, true) => builder
            .json()
            .with_current_span(false)
            .with_writer(std::io::stderr)
            .try_init(),
        (Mode::Cli, false) => builder.with_writer(std::io::stderr).try_init(),
    };
    // Already installed (tests call this more than once): keep the first.
    drop(result);
}
