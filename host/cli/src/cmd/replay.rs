//! `sluice replay`: an archive run through a pipeline to its destinations.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use host::app::App;

use super::runtime;
use crate::archive::{Archive, ArrivalWindow, parse_time};
use crate::replay::{Options, Summary, replay};

/// Replays what Sluice's `s3` (or `file`) destination archived through a
/// pipeline to its destinations, in key order per shard, with the
/// function's order, failure policies and record identities. Shows
/// progress on a terminal; Ctrl-C stops after the batch in flight, and
/// running the same command again resumes from the checkpoint file.
#[derive(clap::Args)]
pub struct Args {
    /// The archive: `s3://bucket/prefix` or a folder. Envelope lines keep
    /// every record's lineage; raw JSON lines only their payload.
    #[arg(long)]
    pub from: String,
    /// The pipeline config (TOML): a path or `s3://bucket/key`.
    #[arg(long, short)]
    pub config: String,
    /// Only records that arrived at or after this RFC 3339 time.
    #[arg(long, value_parser = parse_time)]
    pub since: Option<u64>,
    /// Only records that arrived before this RFC 3339 time.
    #[arg(long, value_parser = parse_time)]
    pub until: Option<u64>,
    /// Records per pipeline run (one guest call per step), 1 to 10000.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u16).range(1..=10000))]
    pub batch_size: u16,
    /// At most this many records per second.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Times a batch whose records fail with `retry` is run again before
    /// the replay stops.
    #[arg(long, default_value_t = 3)]
    pub max_retries: u32,
    /// The checkpoint file (default: `.sluice/replay/<archive>.json`).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Keep the checkpoint file when the replay is done (it is removed by
    /// default, so that the same command replays everything again).
    #[arg(long)]
    pub keep_checkpoint: bool,
    /// Ignore an existing checkpoint and start from the beginning.
    #[arg(long)]
    pub restart: bool,
    /// Run the pipeline but deliver nothing; print what would be delivered.
    #[arg(long)]
    pub dry_run: bool,
}

/// Replays the archive and prints the summary; exit status 130 when Ctrl-C
/// stopped it (resumable).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // A dry run neither resumes nor leaves a checkpoint a real run would
    // resume from.
    let checkpoint = if args.dry_run {
        std::env::temp_dir().join(format!("sluice-dry-run-{}.json", std::process::id()))
    } else {
        args.checkpoint
            .clone()
            .unwrap_or_else(|| default_checkpoint(&args.from))
    };
    if args.restart {
        match std::fs::remove_file(&checkpoint) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot remove `{}`", checkpoint.display()));
            }
            _ => {}
        }
    }
    let options = Options {
        from: args.from.clone(),
        window: ArrivalWindow {
            since: args.since,
            until: args.until,
        },
        batch_size: usize::from(args.batch_size),
        rate: args.rate,
        max_retries: args.max_retries,
        checkpoint,
        keep_checkpoint: args.keep_checkpoint && !args.dry_run,
    };
    let rt = runtime()?;
    let stop = Arc::new(AtomicBool::new(false));
    rt.block_on(async {
        let (mut app, memory) = if args.dry_run {
            let (app, memory) = super::progress::show(
                "loading the pipeline (compiling its plugins)",
                App::load_in_memory(&args.config),
            )
            .await?;
            (app, Some(memory))
        } else {
            let app = super::progress::show(
                "loading the pipeline (compiling its plugins)",
                App::load(&args.config),
            )
            .await?;
            (app, None)
        };
        let archive = Archive::open(&args.from).await?;
        let flag = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\nstopping after the batch in flight (Ctrl-C again to kill)");
                flag.store(true, Ordering::Relaxed);
                let _ = tokio::signal::ctrl_c().await;
                std::process::exit(130);
            }
        });
        let summary = replay(&mut app, memory.as_deref(), &archive, &options, &stop).await?;
        print_summary(&app, &summary, &options, args.dry_run);
        Ok(if summary.interrupted {
            ExitCode::from(130)
        } else {
            ExitCode::SUCCESS
        })
    })
}

fn print_summary(app: &App, s: &Summary, options: &Options, dry_run: bool) {
    let secs = s.elapsed.as_secs_f64();
    println!(
        "replayed {} records from {} objects in {secs:.2} s ({:.0} records/s)",
        s.records,
        s.objects,
        s.records as f64 / secs.max(1e-6)
    );
    let verb = if dry_run {
        "would deliver"
    } else {
        "delivered"
    };
    for (d, n) in app.destinations().iter().zip(&s.delivered) {
        if *n > 0 {
            println!("{verb} {n} to `{}`: {}", d.name(), d.describe());
        }
    }
    println!(
        "filtered {}, dead-lettered {}, dropped {}, batches retried {}",
        s.filtered, s.dead_lettered, s.dropped, s.retries
    );
    if s.raw_lines > 0 {
        println!(
            "note: {} lines were raw JSON Lines, not envelopes: their lineage was not archived, so \
             each has the object's key as its shard, its line number as its sequence number, \
             `{}` as its partition key and the object's time as its arrival time",
            s.raw_lines,
            host::archive::RAW_PARTITION_KEY
        );
    }
    if s.interrupted {
        println!(
            "interrupted: the checkpoint `{}` is saved; run the same command again to resume",
            options.checkpoint.display()
        );
    }
}

/// `.sluice/replay/<the archive, as a file name>.json`.
fn default_checkpoint(from: &str) -> PathBuf {
    let name: String = from
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    PathBuf::from(".sluice/replay").join(format!("{name}.json"))
}
