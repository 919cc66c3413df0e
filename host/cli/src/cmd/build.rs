//! `sluice build`: a plugin folder built into a component.

use std::path::PathBuf;
use std::process::ExitCode;

/// Builds a plugin folder into a component, `build/<name>.wasm`, with its
/// language's toolchain (cargo, componentize-js, componentize-py, clang).
#[derive(clap::Args)]
pub struct Args {
    /// The plugin folder (with `plugin.toml`).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

/// Builds the plugin and says where it went.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    build(&args.dir).map(|_| ExitCode::SUCCESS)
}

/// Builds the plugin in `dir` (unless it is up to date), saying so.
pub fn build(dir: &std::path::Path) -> anyhow::Result<crate::author::Built> {
    let built = crate::author::build(dir)?;
    if built.fresh {
        println!("{} is up to date", built.component.display());
    } else {
        println!(
            "built {} ({} bytes) in {:.1} s",
            built.component.display(),
            built.bytes,
            built.elapsed.as_secs_f64()
        );
    }
    Ok(built)
}
