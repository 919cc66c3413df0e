//! `sluice run`: a pipeline on a Kinesis event file, its outputs delivered and a summary printed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use host::app::App;
use host::{event, summary};

use super::runtime;

/// Runs a pipeline on a Kinesis event file and delivers its outputs.
#[derive(clap::Args)]
pub struct Args {
    /// The pipeline config (TOML): a path or `s3://bucket/key`.
    #[arg(long, short)]
    pub config: String,
    /// A Kinesis event, as Lambda delivers it (JSON).
    #[arg(long, short)]
    pub event: PathBuf,
    /// Also print the CloudWatch metrics (EMF documents, one per line)
    /// that the Lambda function would print for this event.
    #[arg(long)]
    pub metrics: bool,
}

/// Runs the pipeline on the event file and prints the summary; exit status
/// 2 when a record failed.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        config,
        event,
        metrics,
    } = args;
    let started = Instant::now();
    let json = std::fs::read(&event)
        .with_context(|| format!("cannot read event file `{}`", event.display()))?;
    let batch = event::decode(&json, &event.display().to_string())?;
    let rt = runtime()?;
    let mut app = rt.block_on(super::progress::show(
        "loading the pipeline (compiling its plugins)",
        App::load(&config),
    ))?;
    let loaded = started.elapsed();
    if batch.is_empty() {
        eprintln!(
            "note: `{}` holds no records; nothing to do",
            event.display()
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
    if let Some(window) = &report.window {
        print_window(window)?;
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

/// What the invocation did with its tumbling window: each step's folds, the
/// window's end, and the state the function hands back to Lambda.
fn print_window(window: &host::app::WindowReport) -> anyhow::Result<()> {
    if let Some(error) = &window.error {
        anyhow::bail!(
            "the tumbling window failed (Lambda would run the invocation again): {error}"
        );
    }
    for (step, n) in &window.folded {
        println!("window: step `{step}` folded {n} events");
    }
    if window.last {
        println!(
            "window: last invocation, {} outputs delivered",
            window.emitted
        );
    }
    // What the function answers Lambda, for the next invocation's event.
    println!(
        "window state: {}",
        serde_json::to_string(&window.state).unwrap_or_default()
    );
    Ok(())
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
