//! `sluice iam`: the least-privilege IAM policy for the pipeline's destinations.

use std::process::ExitCode;

use super::runtime;

/// Prints the least-privilege IAM policy (JSON) the function's role
/// needs to deliver to the pipeline's destinations: one statement per
/// AWS destination, its kind's actions on its resource alone.
#[derive(clap::Args)]
pub struct Args {
    /// The pipeline config (TOML): a path or `s3://bucket/key`.
    #[arg(long, short)]
    pub config: String,
    /// The region of destinations named without an ARN; default `*`.
    #[arg(long, default_value = "*")]
    pub region: String,
    /// The account of destinations named without an ARN; default `*`.
    #[arg(long, default_value = "*")]
    pub account: String,
    /// The partition: `aws`, `aws-cn` or `aws-us-gov`.
    #[arg(long, default_value = "aws")]
    pub partition: String,
}

/// Prints the policy JSON.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        config,
        region,
        account,
        partition,
    } = &args;
    let (text, origin) = runtime()?.block_on(host::app::read_config(config, &mut None))?;
    let plan = host::config::parse(&text, &origin)?;
    let account = host::config::destination::iam::Account {
        partition,
        region,
        account,
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&plan.iam_policy(account))?
    );
    Ok(ExitCode::SUCCESS)
}
