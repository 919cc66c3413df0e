//! `sluice precompile`: a pipeline's plugins compiled ahead of time, pinned.

use std::path::PathBuf;
use std::process::ExitCode;

use super::runtime;

/// Compiles a pipeline's plugins ahead of time into `<out>/plugins/*.cwasm`
/// and writes `<out>/pipeline.toml` pointing at them, pinned by SHA-256.
/// Upload `<out>` as a whole; relative destination paths now resolve
/// against `<out>`.
#[derive(clap::Args)]
pub struct Args {
    /// The pipeline config (TOML): a path or `s3://bucket/key`.
    #[arg(long, short)]
    pub config: String,
    /// The folder to write the config and artifacts to.
    #[arg(long, short)]
    pub out: PathBuf,
    /// The target triple the function runs on, e.g.
    /// `aarch64-unknown-linux-gnu` for an arm64 Lambda (default: this
    /// machine's). Code is generated for the architecture's baseline CPU.
    #[arg(long)]
    pub target: Option<String>,
}

/// Precompiles and prints each artifact and the config's pin.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        config,
        out,
        target,
    } = args;
    let report = runtime()?.block_on(super::progress::show(
        "compiling the plugins",
        crate::precompile::precompile(&config, &out, target.as_deref()),
    ))?;
    for a in &report.artifacts {
        println!(
            "{}  {}  {} → {} bytes in {:.0} ms  (steps: {})",
            a.path,
            a.source,
            a.component_bytes,
            a.artifact_bytes,
            a.compile_ms,
            a.steps.join(", ")
        );
    }
    println!(
        "wrote {} for {}{}",
        report.config.display(),
        report.target,
        if report.verified {
            "; loaded it back: every plugin starts"
        } else {
            "; not loaded back (another architecture): run `sluice check` where it runs"
        }
    );
    println!(
        "pin it in the function's environment: {}={}",
        host::app::CONFIG_PIN_VAR,
        report.config_sha256
    );
    Ok(ExitCode::SUCCESS)
}
