//! The `sluice` command: the Lambda bootstrap and the local CLI.
//!
//! Started by the Lambda runtime (no arguments, `AWS_LAMBDA_RUNTIME_API` set)
//! or as `sluice lambda`, it serves invocations; otherwise it runs a pipeline
//! on a Kinesis event file, checks a config, or runs fixture cases.
//!
//! Run with `cargo run --release -- run --config examples/clickstream/pipeline.toml
//! --event examples/clickstream/events/example-kinesis-event.json`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use host::app::App;
use host::{event, logging, summary};

/// Run WebAssembly plugins on Kinesis records.
#[derive(Parser)]
#[command(name = "sluice", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serves Lambda invocations (what the Lambda bootstrap does), with the
    /// pipeline config named by `SLUICE_CONFIG`.
    Lambda,
    /// Runs a pipeline on a Kinesis event file and delivers its outputs.
    Run {
        /// The pipeline config (TOML): a path or `s3://bucket/key`.
        #[arg(long, short)]
        config: String,
        /// A Kinesis event, as Lambda delivers it (JSON).
        #[arg(long, short)]
        event: PathBuf,
        /// Also print the CloudWatch metrics (EMF documents, one per line)
        /// that the Lambda function would print for this event.
        #[arg(long)]
        metrics: bool,
    },
    /// Validates a config and loads every plugin, without running anything.
    Check {
        /// The pipeline config (TOML): a path or `s3://bucket/key`.
        #[arg(long, short)]
        config: String,
    },
    /// Prints the pipeline's pre-filter (`[source] filters`) as Lambda's
    /// `FilterCriteria` JSON, for the event source mapping (SAM
    /// `FilterCriteria`, or `aws lambda update-event-source-mapping
    /// --filter-criteria`), so that Lambda drops records before invoking the
    /// function. Refuses when Lambda's filter would not see what Sluice's
    /// does (KPL aggregates, compression, CloudWatch Logs).
    FilterCriteria {
        /// The pipeline config (TOML): a path or `s3://bucket/key`.
        #[arg(long, short)]
        config: String,
    },
    /// Prints the least-privilege IAM policy (JSON) the function's role
    /// needs to deliver to the pipeline's destinations: one statement per
    /// AWS destination, its kind's actions on its resource alone.
    Iam {
        /// The pipeline config (TOML): a path or `s3://bucket/key`.
        #[arg(long, short)]
        config: String,
        /// The region of destinations named without an ARN; default `*`.
        #[arg(long, default_value = "*")]
        region: String,
        /// The account of destinations named without an ARN; default `*`.
        #[arg(long, default_value = "*")]
        account: String,
        /// The partition: `aws`, `aws-cn` or `aws-us-gov`.
        #[arg(long, default_value = "aws")]
        partition: String,
    },
    #[cfg(feature = "stream")]
    /// Writes lines from a file or standard input to a Kinesis stream
    /// (`PutRecords`: at most 500 records and 5 MiB per request, resending
    /// only what a request did not take). Each line must be JSON unless
    /// `--raw`.
    Put {
        /// The stream's name.
        #[arg(long)]
        stream: String,
        /// The Kinesis endpoint (default: AWS, or `AWS_ENDPOINT_URL`), e.g.
        /// `http://127.0.0.1:5000` for a local moto server.
        #[arg(long)]
        endpoint: Option<String>,
        /// The file to read (default: standard input).
        #[arg(long, short)]
        input: Option<PathBuf>,
        /// Send lines as they are, JSON or not.
        #[arg(long)]
        raw: bool,
        /// Take each record's partition key from this field of the JSON line
        /// (a dotted path: `user.id`).
        #[arg(long, conflicts_with = "partition_key")]
        partition_key_field: Option<String>,
        /// The partition key: fixed, or a template of the line's fields
        /// (`user-{user.id}`). Default: random per record.
        #[arg(long)]
        partition_key: Option<String>,
        /// Pack records in KPL aggregates, one per shard, as the Kinesis
        /// Producer Library does.
        #[arg(long)]
        aggregate: bool,
    },
    #[cfg(feature = "stream")]
    /// Runs the pipeline on a live Kinesis stream as Lambda's event source
    /// mapping would: polls every shard, invokes with the same event JSON,
    /// honours the partial batch response, retries, bisects, discards to
    /// `--on-failure`, follows reshards and keeps checkpoints in a local
    /// file. Stops on Ctrl-C (or, with `--exit-when-idle`, once every shard
    /// is drained).
    Consume {
        /// The stream's name.
        #[arg(long)]
        stream: String,
        /// The pipeline config (TOML): a path or `s3://bucket/key`.
        #[arg(long, short)]
        config: String,
        /// The Kinesis endpoint (default: AWS, or `AWS_ENDPOINT_URL`).
        #[arg(long)]
        endpoint: Option<String>,
        /// Where shards without a checkpoint start: `trim-horizon`, `latest`
        /// or `at-timestamp:<RFC 3339 time or epoch seconds>`.
        #[arg(long, default_value = "trim-horizon")]
        starting_position: host::stream::consume::StartingPosition,
        /// Most records per batch (1 to 10000).
        #[arg(long, default_value_t = 100)]
        batch_size: usize,
        /// Seconds to gather records before invoking (0 to 300).
        #[arg(long, default_value_t = 0.0)]
        batch_window: f64,
        /// Batches per shard at once (1 to 10); order is kept per partition key.
        #[arg(long, default_value_t = 1)]
        parallelization_factor: usize,
        /// Split a failed batch in two before retrying it.
        #[arg(long)]
        bisect_on_error: bool,
        /// Retries before a failed batch is discarded (-1: until it expires).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        max_retries: i64,
        /// Seconds after which a record is discarded unprocessed (-1: never).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        max_record_age: i64,
        /// Where discarded batches are recorded: an SQS queue URL,
        /// `s3://bucket/prefix`, or a file (JSON Lines).
        #[arg(long)]
        on_failure: Option<String>,
        /// The checkpoint file (default: `.sluice/checkpoints/<stream>.json`).
        #[arg(long)]
        checkpoints: Option<PathBuf>,
        /// Exit once every shard is read to its current end and done.
        #[arg(long)]
        exit_when_idle: bool,
        /// Seconds between polls of a shard that had nothing new.
        #[arg(long, default_value_t = 1.0)]
        poll_interval: f64,
        /// The function's timeout in seconds: each invocation's deadline.
        #[arg(long, default_value_t = 60.0)]
        function_timeout: f64,
        /// No live status line.
        #[arg(long)]
        quiet: bool,
    },
    #[cfg(feature = "compiler")]
    /// Compiles a pipeline's plugins ahead of time into `<out>/plugins/*.cwasm`
    /// and writes `<out>/pipeline.toml` pointing at them, pinned by SHA-256.
    /// Upload `<out>` as a whole; relative destination paths now resolve
    /// against `<out>`.
    Precompile {
        /// The pipeline config (TOML): a path or `s3://bucket/key`.
        #[arg(long, short)]
        config: String,
        /// The folder to write the config and artifacts to.
        #[arg(long, short)]
        out: PathBuf,
        /// The target triple the function runs on, e.g.
        /// `aarch64-unknown-linux-gnu` for an arm64 Lambda (default: this
        /// machine's). Code is generated for the architecture's baseline CPU.
        #[arg(long)]
        target: Option<String>,
    },
    #[cfg(feature = "author")]
    /// Runs the golden-file cases of a plugin folder (building it first), a
    /// pipeline folder, or a folder of either, and prints a diff for each
    /// file that differs.
    Test {
        /// A plugin folder (`plugin.toml`), a pipeline folder (`pipeline.toml`
        /// and `tests/`), or a folder of them.
        dir: PathBuf,
        /// Rewrite the expected files from what the cases produce.
        #[arg(long, conflicts_with = "config")]
        bless: bool,
        /// Run the cases through this pipeline config instead (a variant, e.g.
        /// the same steps with plugins in other languages) and compare the
        /// contract: outputs, counts and failures, not plugin names or
        /// free-text reasons.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    #[cfg(feature = "author")]
    /// Makes a new plugin folder from a template: code, build file, README,
    /// a pipeline running it alone and one test case.
    New {
        /// The plugin kind: the WIT world it targets.
        #[arg(value_parser = ["filter", "transform", "route"])]
        kind: String,
        /// The plugin's name (and folder name).
        name: String,
        /// The language.
        #[arg(long, value_enum)]
        lang: host::author::Lang,
        /// Where to make the folder (default: here).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    #[cfg(feature = "author")]
    /// Builds a plugin folder into a component, `build/<name>.wasm`, with its
    /// language's toolchain (cargo, componentize-js, componentize-py, clang).
    Build {
        /// The plugin folder (with `plugin.toml`).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let started_by_lambda =
        std::env::args_os().len() == 1 && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    let command = if started_by_lambda {
        Command::Lambda
    } else {
        Cli::parse().command
    };
    if let Command::Lambda = command {
        logging::init(logging::Mode::Lambda);
        return match runtime().map(|rt| rt.block_on(host::lambda::run())) {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(e)) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    logging::init(logging::Mode::Cli);
    let result = match command {
        Command::Lambda => unreachable!("handled above"),
        Command::Run {
            config,
            event,
            metrics,
        } => run(config, event, metrics),
        Command::Check { config } => check(config),
        Command::FilterCriteria { config } => filter_criteria(&config),
        Command::Iam {
            config,
            region,
            account,
            partition,
        } => iam(&config, &region, &account, &partition),
        #[cfg(feature = "stream")]
        Command::Put {
            stream,
            endpoint,
            input,
            raw,
            partition_key_field,
            partition_key,
            aggregate,
        } => {
            let key = match (partition_key_field, partition_key) {
                (Some(field), _) => host::stream::put::PartitionKey::Field(field),
                (None, Some(template)) => host::stream::put::PartitionKey::Template(template),
                (None, None) => host::stream::put::PartitionKey::Random,
            };
            let options = host::stream::put::PutOptions {
                stream,
                raw,
                partition_key: key,
                aggregate,
                progress: true,
            };
            put(options, endpoint, input)
        }
        #[cfg(feature = "stream")]
        Command::Consume {
            stream,
            config,
            endpoint,
            starting_position,
            batch_size,
            batch_window,
            parallelization_factor,
            bisect_on_error,
            max_retries,
            max_record_age,
            on_failure,
            checkpoints,
            exit_when_idle,
            poll_interval,
            function_timeout,
            quiet,
        } => (|| {
            let seconds = |flag: &str, v: f64, max: f64| {
                anyhow::ensure!(
                    v.is_finite() && (0.0..=max).contains(&v),
                    "--{flag} {v} is out of range: 0 to {max} seconds"
                );
                Ok(std::time::Duration::from_secs_f64(v))
            };
            let options = host::stream::consume::ConsumeOptions {
                checkpoints: checkpoints.unwrap_or_else(|| {
                    PathBuf::from(".sluice/checkpoints").join(format!("{stream}.json"))
                }),
                stream,
                starting_position,
                batch_size,
                batch_window: seconds("batch-window", batch_window, 300.0)?,
                parallelization_factor,
                bisect_on_error,
                max_retries: match max_retries {
                    -1 => None,
                    n => Some(u32::try_from(n).map_err(|_| {
                        anyhow::anyhow!(
                            "--max-retries {n}: use -1 (until the record expires) or 0 to 10000"
                        )
                    })?),
                },
                max_record_age: match max_record_age {
                    -1 => None,
                    n => Some(std::time::Duration::from_secs(u64::try_from(n).map_err(
                        |_| {
                            anyhow::anyhow!(
                                "--max-record-age {n}: use -1 (never) or a number of seconds"
                            )
                        },
                    )?)),
                },
                exit_when_idle,
                poll_interval: seconds("poll-interval", poll_interval, 60.0)?
                    .max(std::time::Duration::from_millis(10)),
                function_timeout: seconds("function-timeout", function_timeout, 900.0)?,
                status: !quiet,
                endpoint: endpoint
                    .clone()
                    .or_else(|| std::env::var("AWS_ENDPOINT_URL_KINESIS").ok())
                    .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
                    .unwrap_or_default(),
            };
            consume(&config, endpoint, on_failure, options)
        })(),
        #[cfg(feature = "compiler")]
        Command::Precompile {
            config,
            out,
            target,
        } => precompile(config, out, target),
        #[cfg(feature = "author")]
        Command::Test { dir, bless, config } => test(dir, bless, config),
        #[cfg(feature = "author")]
        Command::New {
            kind,
            name,
            lang,
            dir,
        } => new(&kind, &name, lang, &dir),
        #[cfg(feature = "author")]
        Command::Build { dir } => build(&dir).map(|_| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn run(config: String, event_path: PathBuf, metrics: bool) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let json = std::fs::read(&event_path)
        .with_context(|| format!("cannot read event file `{}`", event_path.display()))?;
    let batch = event::decode(&json, &event_path.display().to_string())?;
    let rt = runtime()?;
    let mut app = rt.block_on(App::load(&config))?;
    let loaded = started.elapsed();
    if batch.is_empty() {
        eprintln!(
            "note: `{}` holds no records; nothing to do",
            event_path.display()
        );
    }
    let batch_started = Instant::now();
    let oldest_arrival_ms = host::metrics::oldest_arrival_ms(&batch);
    let report = rt.block_on(app.process(batch, None));
    let ran = batch_started.elapsed();
    if metrics {
        let invocation = host::metrics::Invocation {
            timestamp_ms: host::metrics::now_ms(),
            duration: ran,
            oldest_arrival_ms,
            cold_start: Some(loaded),
            batch_item_failures: host::lambda::response(&report.outcome)
                .map_or(0, |r| r.batch_item_failures.len()),
        };
        for doc in host::metrics::documents(app.plan(), &report, &invocation) {
            println!("{doc}");
        }
    }
    print!(
        "{}",
        summary::render(app.plan(), &report.outcome, &report.dispatch)
    );
    for (destination, n) in app.destinations().iter().zip(&report.dispatch.delivered) {
        if *n > 0 {
            println!(
                "wrote {n} to `{}`: {}",
                destination.name(),
                destination.describe()
            );
        }
    }
    println!(
        "loaded in {:.1} ms, ran in {:.2} ms",
        loaded.as_secs_f64() * 1e3,
        ran.as_secs_f64() * 1e3
    );
    if let Some(bytes) = peak_rss() {
        println!("peak RSS: {bytes} bytes");
    }
    Ok(if report.outcome.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// The process's peak resident set size (`VmHWM`), where Linux reports it.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kib * 1024)
}

fn check(config: String) -> anyhow::Result<ExitCode> {
    let app = runtime()?.block_on(App::load(&config))?;
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
    }
    for destination in app.destinations() {
        println!(
            "  destination {}  {}",
            destination.name(),
            destination.describe()
        );
    }
    println!("{} plugins loaded", plan.steps.len());
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "stream")]
fn put(
    options: host::stream::put::PutOptions,
    endpoint: Option<String>,
    input: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    let report = rt.block_on(async {
        let client = host::stream::client(endpoint.as_deref()).await;
        match &input {
            Some(path) => {
                let file = std::fs::File::open(path)
                    .with_context(|| format!("cannot read `{}`", path.display()))?;
                host::stream::put::put(&client, &options, std::io::BufReader::new(file)).await
            }
            None => host::stream::put::put(&client, &options, std::io::stdin().lock()).await,
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

#[cfg(feature = "stream")]
fn consume(
    config: &str,
    endpoint: Option<String>,
    on_failure: Option<String>,
    options: host::stream::consume::ConsumeOptions,
) -> anyhow::Result<ExitCode> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let rt = runtime()?;
    let report = rt.block_on(async {
        let mut app = App::load(config).await?;
        let client = host::stream::client(endpoint.as_deref()).await;
        let mut aws = None;
        let on_failure = match &on_failure {
            Some(location) => Some(
                host::stream::consume::on_failure_destination(location, &mut aws)
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
        host::stream::consume::consume(&mut app, &client, &options, on_failure, stop)
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
    for (shard, n, checkpoint) in &report.shards {
        println!(
            "  {shard}: {n} records, checkpoint {}",
            checkpoint.as_deref().unwrap_or("-")
        );
    }
    println!("checkpoints: {}", options.checkpoints.display());
    Ok(ExitCode::SUCCESS)
}

fn filter_criteria(config: &str) -> anyhow::Result<ExitCode> {
    let (text, origin) = runtime()?.block_on(host::app::read_config(config, &mut None))?;
    let plan = host::config::parse(&text, &origin)?;
    let criteria = host::source::filter_criteria(&plan.stream, &plan.filters)
        .map_err(|m| anyhow::anyhow!("{origin}: {m}"))?;
    println!("{}", serde_json::to_string_pretty(&criteria)?);
    Ok(ExitCode::SUCCESS)
}

fn iam(config: &str, region: &str, account: &str, partition: &str) -> anyhow::Result<ExitCode> {
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

#[cfg(feature = "compiler")]
fn precompile(config: String, out: PathBuf, target: Option<String>) -> anyhow::Result<ExitCode> {
    let report = runtime()?.block_on(host::precompile::precompile(
        &config,
        &out,
        target.as_deref(),
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

#[cfg(feature = "author")]
fn new(
    kind: &str,
    name: &str,
    lang: host::author::Lang,
    dir: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let kind: host::config::StepKind = serde_json::from_value(serde_json::Value::from(kind))?;
    let made = host::author::new(dir, kind, name, lang)?;
    println!(
        "made {} ({} {} plugin). Next:",
        made.display(),
        lang.as_str(),
        kind
    );
    println!("  sluice build {}", made.display());
    println!("  sluice test {}", made.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "author")]
fn build(dir: &std::path::Path) -> anyhow::Result<host::author::Built> {
    let built = host::author::build(dir)?;
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

#[cfg(feature = "author")]
fn test(dir: PathBuf, bless: bool, variant: Option<PathBuf>) -> anyhow::Result<ExitCode> {
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
        build(plugin)?;
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
