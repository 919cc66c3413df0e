//! `sluice config`: about the pipeline config file itself (its JSON Schema).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

/// About the pipeline config file format.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Prints the pipeline config's JSON Schema (draft 2020-12), derived
    /// from the types Sluice reads the config into. Point an editor at it
    /// (Taplo, Even Better TOML) to complete and check `pipeline.toml`.
    Schema {
        /// Write it to this file instead of stdout.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Schema { out } => {
            let mut text = serde_json::to_string_pretty(&host::config::schema::json_schema())?;
            text.push('\n');
            match out {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("cannot write `{}`", path.display()))?,
                None => print!("{text}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
