//! `sluice filter-criteria`: the pipeline's pre-filter as Lambda's `FilterCriteria`.

use std::process::ExitCode;

use super::runtime;

/// Prints the pipeline's pre-filter (`[source] filters`) as Lambda's
/// `FilterCriteria` JSON, for the event source mapping (SAM
/// `FilterCriteria`, or `aws lambda update-event-source-mapping
/// --filter-criteria`), so that Lambda drops records before invoking the
/// function. Refuses when Lambda's filter would not see what Sluice's
/// does (KPL aggregates, compression, CloudWatch Logs).
#[derive(clap::Args)]
pub struct Args {
    /// The pipeline config (TOML): a path or `s3://bucket/key`.
    #[arg(long, short)]
    pub config: String,
}

/// Prints the `FilterCriteria` JSON.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = &args.config;
    let (text, origin) = runtime()?.block_on(host::app::read_config(config, &mut None))?;
    let plan = host::config::parse(&text, &origin)?;
    let criteria = host::source::filter_criteria(&plan.stream, &plan.filters)
        .map_err(|m| anyhow::anyhow!("{origin}: {m}"))?;
    println!("{}", serde_json::to_string_pretty(&criteria)?);
    Ok(ExitCode::SUCCESS)
}
