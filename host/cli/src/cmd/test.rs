//! `sluice test`: golden-file cases of plugin and pipeline folders, built first.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

/// Runs the golden-file cases of a plugin folder (building it first), a
/// pipeline folder, or a folder of either, and prints a diff for each
/// file that differs.
#[derive(clap::Args)]
pub struct Args {
    /// A plugin folder (`plugin.toml`), a pipeline folder (`pipeline.toml`
    /// and `tests/`), or a folder of them.
    pub dir: PathBuf,
    /// Rewrite the expected files from what the cases produce.
    #[arg(long, conflicts_with = "config")]
    pub bless: bool,
    /// Run the cases through this pipeline config instead (a variant, e.g.
    /// the same steps with plugins in other languages) and compare the
    /// contract: outputs, counts and failures, not plugin names or
    /// free-text reasons.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Runs every case and prints a diff per mismatch; exit status 1 when one
/// failed.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        dir,
        bless,
        config: variant,
    } = args;
    let mut passed = 0;
    let mut failed = 0;
    let mut suites = Vec::new();
    // A plugin folder, or a folder of plugin folders: build each first.
    let plugins: Vec<PathBuf> = if dir.join("plugin.toml").is_file() {
        vec![dir.clone()]
    } else {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("cannot read `{}`", dir.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join("plugin.toml").is_file())
            .collect();
        found.sort();
        found
    };
    for plugin in &plugins {
        super::build::build(plugin)?;
    }
    suites.extend(host::fixture::suites(&dir)?);
    if suites.is_empty() {
        anyhow::bail!(
            "no test cases under `{}`: expected a `pipeline.toml` and a `tests/` folder",
            dir.display()
        );
    }
    for suite in suites {
        let cases = match &variant {
            Some(config) => host::fixture::run_variant(&suite, config)?,
            None => host::fixture::run_suite(&suite, bless)?,
        };
        for case in cases {
            if case.passed() {
                passed += 1;
                println!("ok      {}", case.dir.display());
            } else {
                failed += 1;
                println!("FAILED  {}", case.dir.display());
                for (file, diff) in &case.mismatches {
                    println!("  {file}\n{diff}");
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
