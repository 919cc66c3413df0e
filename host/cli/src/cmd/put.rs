//! `sluice put`: lines of a file or standard input written to a Kinesis stream.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::stream::put::{PartitionKey, PutOptions};

use super::runtime;

/// Writes lines from a file or standard input to a Kinesis stream
/// (`PutRecords`: at most 500 records and 5 MiB per request, resending
/// only what a request did not take). Each line must be JSON unless
/// `--raw`.
#[derive(clap::Args)]
pub struct Args {
    /// The stream's name.
    #[arg(long)]
    pub stream: String,
    /// The Kinesis endpoint (default: AWS, or `AWS_ENDPOINT_URL`), e.g.
    /// `http://127.0.0.1:5000` for a local moto server.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// The file to read (default: standard input).
    #[arg(long, short)]
    pub input: Option<PathBuf>,
    /// Send lines as they are, JSON or not.
    #[arg(long)]
    pub raw: bool,
    /// Take each record's partition key from this field of the JSON line
    /// (a dotted path: `user.id`).
    #[arg(long, conflicts_with = "partition_key")]
    pub partition_key_field: Option<String>,
    /// The partition key: fixed, or a template of the line's fields
    /// (`user-{user.id}`). Default: random per record.
    #[arg(long)]
    pub partition_key: Option<String>,
    /// Pack records in KPL aggregates, one per shard, as the Kinesis
    /// Producer Library does.
    #[arg(long)]
    pub aggregate: bool,
}

impl Args {
    /// The put's options from the flags.
    fn options(&self) -> PutOptions {
        let partition_key = match (&self.partition_key_field, &self.partition_key) {
            (Some(field), _) => PartitionKey::Field(field.clone()),
            (None, Some(template)) => PartitionKey::Template(template.clone()),
            (None, None) => PartitionKey::Random,
        };
        PutOptions {
            stream: self.stream.clone(),
            raw: self.raw,
            partition_key,
            aggregate: self.aggregate,
            progress: true,
        }
    }
}

/// Puts the records and prints how many went to each shard.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let options = args.options();
    let (endpoint, input) = (args.endpoint, args.input);
    let rt = runtime()?;
    let report = rt.block_on(async {
        let client = crate::stream::client(endpoint.as_deref()).await;
        match &input {
            Some(path) => {
                let file = std::fs::File::open(path)
                    .with_context(|| format!("cannot read `{}`", path.display()))?;
                crate::stream::put::put(&client, &options, std::io::BufReader::new(file)).await
            }
            None => crate::stream::put::put(&client, &options, std::io::stdin().lock()).await,
        }
        .map_err(|m| match &input {
            Some(path) => anyhow::anyhow!("{}: {m}", path.display()),
            None => anyhow::anyhow!("standard input: {m}"),
        })
    })?;
    let secs = report.elapsed.as_secs_f64();
    println!(
        "put {} records to stream `{}` in {secs:.2} s ({:.0} records/s): {} Kinesis records, {} requests, {} entries resent",
        report.records,
        options.stream,
        report.records as f64 / secs.max(1e-9),
        report.kinesis_records,
        report.requests,
        report.resent
    );
    for (shard, n) in &report.per_shard {
        println!("  {shard}: {n}");
    }
    Ok(ExitCode::SUCCESS)
}
