//! The `sluice` command: run and check pipelines on your laptop, write,
//! build and test plugins, precompile them, and run a Kinesis stream's
//! event source mapping locally. Each subcommand is one module of
//! [`sluice_cli::cmd`].
//!
//! `sluice lambda` (or the binary started by the Lambda runtime with no
//! arguments) serves Lambda invocations as `sluice-lambda` does.
//!
//! Run with `cargo run --release -- run --config examples/clickstream/pipeline.toml
//! --event examples/clickstream/events/example-kinesis-event.json`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use host::logging;
use sluice_cli::cmd;

/// Run WebAssembly plugins on Kinesis records.
#[derive(Parser)]
#[command(name = "sluice", version, about)]
struct Cli {
    /// More logs on stderr: `-v` info (plugins loaded, timings), `-vv`
    /// debug. (`SLUICE_LOG` sets the filter outright.)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serves Lambda invocations (what the Lambda bootstrap does), with the
    /// pipeline config named by `SLUICE_CONFIG`.
    Lambda,
    Run(cmd::run::Args),
    Check(cmd::check::Args),
    Config(cmd::config::Args),
    FilterCriteria(cmd::filter_criteria::Args),
    Iam(cmd::iam::Args),
    Put(cmd::put::Args),
    Consume(cmd::consume::Args),
    Replay(cmd::replay::Args),
    Diff(cmd::diff::Args),
    Precompile(cmd::precompile::Args),
    Test(cmd::test::Args),
    New(cmd::new::Args),
    Build(cmd::build::Args),
}

fn main() -> ExitCode {
    let started_by_lambda =
        std::env::args_os().len() == 1 && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    let (command, verbose) = if started_by_lambda {
        (Command::Lambda, 0)
    } else {
        let cli = Cli::parse();
        (cli.command, cli.verbose)
    };
    logging::init(match command {
        Command::Lambda => logging::Mode::Lambda,
        _ => logging::Mode::Cli { verbose },
    });
    let result = match command {
        Command::Lambda => lambda(),
        Command::Run(args) => cmd::run::run(args),
        Command::Check(args) => cmd::check::run(args),
        Command::Config(args) => cmd::config::run(args),
        Command::FilterCriteria(args) => cmd::filter_criteria::run(args),
        Command::Iam(args) => cmd::iam::run(args),
        Command::Put(args) => cmd::put::run(args),
        Command::Consume(args) => cmd::consume::run(args),
        Command::Replay(args) => cmd::replay::run(args),
        Command::Diff(args) => cmd::diff::run(args),
        Command::Precompile(args) => cmd::precompile::run(args),
        Command::Test(args) => cmd::test::run(args),
        Command::New(args) => cmd::new::run(args),
        Command::Build(args) => cmd::build::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Serves Lambda invocations until the runtime stops the process.
fn lambda() -> anyhow::Result<ExitCode> {
    cmd::runtime()?
        .block_on(host::lambda::run())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(ExitCode::SUCCESS)
}
