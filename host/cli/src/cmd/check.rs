//! `sluice check`: validate a config and load every plugin, running nothing.

use std::process::ExitCode;

use host::app::App;

use super::runtime;

/// Validates a config and loads every plugin, without running anything.
#[derive(clap::Args)]
pub struct Args {
    /// The pipeline config (TOML): a path or `s3://bucket/key`.
    #[arg(long, short)]
    pub config: String,
}

/// Loads the pipeline as a cold start would and lists its steps and
/// destinations.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = args.config;
    let app = runtime()?.block_on(super::progress::show(
        "loading the pipeline (compiling its plugins)",
        App::load(&config),
    ))?;
    let plan = app.plan();
    println!("{config}: ok");
    for (i, step) in plan.steps.iter().enumerate() {
        println!(
            "  step {}  {}  {}  {}",
            i + 1,
            step.name,
            step.kind,
            step.plugin
        );
        if let Some(shadow) = &step.shadow {
            println!("     shadow  {}", shadow.step.plugin);
        }
    }
    for (i, table) in plan.tables.iter().enumerate() {
        let Some(slot) = app.tables().slot(i) else {
            continue;
        };
        let rows = slot.rows();
        let readers: Vec<&str> = table
            .steps
            .iter()
            .map(|&s| plan.steps[s].name.as_str())
            .collect();
        println!(
            "  table {}  {}  {} rows, {} bytes  (read by {})",
            table.name,
            table.source,
            rows.len(),
            rows.bytes(),
            readers.join(", ")
        );
    }
    for destination in app.destinations() {
        println!(
            "  destination {}  {}",
            destination.name(),
            destination.describe()
        );
    }
    println!("{} plugins loaded", plan.plugin_steps().count());
    Ok(ExitCode::SUCCESS)
}
