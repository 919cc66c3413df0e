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

fn filter_criteria(config: &str) -> anyhow::Result<ExitCode> {
    let (text, origin) = runtime()?.block_on(host::app::read_config(config, &mut None))?;
    let plan = host::config::parse(&text, &origin)?;
    let criteria = host::source::filter_criteria(&plan.stream, &plan.filters)
        .map_err(|m| anyhow::anyhow!("{origin}: {m}"))?;
    println!("{}", serde_json::to_string_pretty(&criteria)?);
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
