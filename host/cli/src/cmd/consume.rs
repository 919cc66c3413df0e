//! `sluice consume`: the pipeline on a live Kinesis stream, as Lambda's event
//! source mapping would run it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use host::app::App;

use crate::stream::consume::{ConsumeOptions, StartingPosition};

use super::runtime;

/// Runs the pipeline on a live Kinesis stream as Lambda's event source
/// mapping would: polls every shard, invokes with the same event JSON,
/// honours the partial batch response, retries, bisects, discards to
/// `--on-failure`, follows reshards and keeps checkpoints in a local
/// file. Stops on Ctrl-C (or, with `--exit-when-idle`, once every shard
/// is drained).
#[derive(clap::Args)]
pub struct Args {
    /// The stream's name.
    #[arg(long)]
    pub stream: String,
    /// The pipeline config (TOML): a path or `s3://bucket/key`.
    #[arg(long, short)]
    pub config: String,
    /// The Kinesis endpoint (default: AWS, or `AWS_ENDPOINT_URL`).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Where shards without a checkpoint start: `trim-horizon`, `latest`
    /// or `at-timestamp:<RFC 3339 time or epoch seconds>`.
    #[arg(long, default_value = "trim-horizon")]
    pub starting_position: StartingPosition,
    /// Most records per batch (1 to 10000).
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Seconds to gather records before invoking (0 to 300).
    #[arg(long, default_value_t = 0.0)]
    pub batch_window: f64,
    /// Batches per shard at once (1 to 10); order is kept per partition key.
    #[arg(long, default_value_t = 1)]
    pub parallelization_factor: usize,
    /// Split a failed batch in two before retrying it.
    #[arg(long)]
    pub bisect_on_error: bool,
    /// Retries before a failed batch is discarded (-1: until it expires).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub max_retries: i64,
    /// Seconds after which a record is discarded unprocessed (-1: never).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub max_record_age: i64,
    /// Where discarded batches are recorded: an SQS queue URL,
    /// `s3://bucket/prefix`, or a file (JSON Lines).
    #[arg(long)]
    pub on_failure: Option<String>,
    /// The checkpoint file (default: `.sluice/checkpoints/<stream>.json`).
    #[arg(long)]
    pub checkpoints: Option<PathBuf>,
    /// Exit once every shard is read to its current end and done.
    #[arg(long)]
    pub exit_when_idle: bool,
    /// Seconds between polls of a shard that had nothing new.
    #[arg(long, default_value_t = 1.0)]
    pub poll_interval: f64,
    /// The function's timeout in seconds: each invocation's deadline.
    #[arg(long, default_value_t = 60.0)]
    pub function_timeout: f64,
    /// No live status line.
    #[arg(long)]
    pub quiet: bool,
    /// Tumbling windows of this many seconds (1 to 900), as
    /// `TumblingWindowInSeconds`: each shard's window state is carried from
    /// one invocation to the next, and a last invocation ends each window.
    #[arg(long)]
    pub tumbling_window: Option<u64>,
}

/// `--<flag> <seconds>` as a duration, refused outside 0 to `max`.
fn seconds(flag: &str, v: f64, max: f64) -> anyhow::Result<Duration> {
    anyhow::ensure!(
        v.is_finite() && (0.0..=max).contains(&v),
        "--{flag} {v} is out of range: 0 to {max} seconds"
    );
    Ok(Duration::from_secs_f64(v))
}

impl Args {
    /// The mapping's options from the flags, each checked and named when
    /// out of range.
    fn options(&self) -> anyhow::Result<ConsumeOptions> {
        let max_retries = match self.max_retries {
            -1 => None,
            n => Some(u32::try_from(n).map_err(|_| {
                anyhow::anyhow!(
                    "--max-retries {n}: use -1 (until the record expires) or 0 to 10000"
                )
            })?),
        };
        let max_record_age = match self.max_record_age {
            -1 => None,
            n => Some(Duration::from_secs(u64::try_from(n).map_err(|_| {
                anyhow::anyhow!("--max-record-age {n}: use -1 (never) or a number of seconds")
            })?)),
        };
        let tumbling_window = match self.tumbling_window {
            None => None,
            Some(w) if (1..=900).contains(&w) && self.parallelization_factor == 1 => {
                Some(Duration::from_secs(w))
            }
            Some(w) if (1..=900).contains(&w) => anyhow::bail!(
                "--tumbling-window with --parallelization-factor {}: a shard's window state is \
                 one, so use a factor of 1",
                self.parallelization_factor
            ),
            Some(w) => anyhow::bail!("--tumbling-window {w} is out of range: 1 to 900 seconds"),
        };
        Ok(ConsumeOptions {
            tumbling_window,
            checkpoints: self.checkpoints.clone().unwrap_or_else(|| {
                PathBuf::from(".sluice/checkpoints").join(format!("{}.json", self.stream))
            }),
            stream: self.stream.clone(),
            starting_position: self.starting_position,
            batch_size: self.batch_size,
            batch_window: seconds("batch-window", self.batch_window, 300.0)?,
            parallelization_factor: self.parallelization_factor,
            bisect_on_error: self.bisect_on_error,
            max_retries,
            max_record_age,
            exit_when_idle: self.exit_when_idle,
            poll_interval: seconds("poll-interval", self.poll_interval, 60.0)?
                .max(Duration::from_millis(10)),
            function_timeout: seconds("function-timeout", self.function_timeout, 900.0)?,
            status: !self.quiet,
            endpoint: self
                .endpoint
                .clone()
                .or_else(|| std::env::var("AWS_ENDPOINT_URL_KINESIS").ok())
                .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
                .unwrap_or_default(),
        })
    }
}

/// Consumes the stream until Ctrl-C (or idle) and prints what it did.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let options = args.options()?;
    let (config, endpoint, on_failure) = (args.config.as_str(), args.endpoint, args.on_failure);
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let rt = runtime()?;
    let report = rt.block_on(async {
        let mut app = super::progress::show(
            "loading the pipeline (compiling its plugins)",
            App::load(config),
        )
        .await?;
        let client = crate::stream::client(endpoint.as_deref()).await;
        let mut aws = None;
        let on_failure = match &on_failure {
            Some(location) => Some(
                crate::stream::consume::on_failure_destination(location, &mut aws)
                    .await
                    .map_err(|m| anyhow::anyhow!(m))?,
            ),
            None => None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\nconsume: stopping after the current batch (Ctrl-C)");
                flag.store(true, Ordering::Relaxed);
            }
        });
        crate::stream::consume::consume(&mut app, &client, &options, on_failure, stop)
            .await
            .map_err(|m| anyhow::anyhow!(m))
    })?;
    let secs = report.elapsed.as_secs_f64();
    println!(
        "consumed {} records from stream `{}` in {secs:.2} s ({:.0} records/s): {} invocations \
         ({} with records to retry, {} function errors), {} outputs delivered, {} records discarded",
        report.records,
        options.stream,
        report.records as f64 / secs.max(1e-9),
        report.invocations,
        report.partial_failures,
        report.function_errors,
        report.delivered,
        report.discarded
    );
    if options.tumbling_window.is_some() {
        println!("tumbling windows ended: {}", report.windows);
    }
    for (shard, n, checkpoint) in &report.shards {
        println!(
            "  {shard}: {n} records, checkpoint {}",
            checkpoint.as_deref().unwrap_or("-")
        );
    }
    println!("checkpoints: {}", options.checkpoints.display());
    Ok(ExitCode::SUCCESS)
}
