//! `sluice diff`: two pipelines on the same records, and what differs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use host::app::App;

use super::runtime;
use crate::archive::{Archive, ArrivalWindow, batch_of, parse_time, read_all};
use crate::diff::{Side, compare};

/// Runs two pipelines on the same records (a captured Kinesis event or an
/// archive) with nothing delivered, and reports what differs: per
/// destination, outputs added, removed and changed (the first few shown,
/// changes as JSON Patch operations); records whose fate changed
/// (filtered, failed, routed elsewhere); and a last line of counts. Exit
/// status 0 when both made the same, 1 when not, 2 on an error.
#[derive(clap::Args)]
pub struct Args {
    /// The two pipeline configs (TOML), first the one in use: `--config
    /// a.toml --config b.toml`.
    #[arg(long, short, num_args = 1, required = true)]
    pub config: Vec<String>,
    /// A Kinesis event, as Lambda delivers it (JSON).
    #[arg(long, short, conflicts_with = "from", required_unless_present = "from")]
    pub event: Option<PathBuf>,
    /// An archive the `s3` or `file` destination wrote: `s3://bucket/prefix`
    /// or a folder.
    #[arg(long)]
    pub from: Option<String>,
    /// With `--from`: only records that arrived at or after this RFC 3339 time.
    #[arg(long, value_parser = parse_time)]
    pub since: Option<u64>,
    /// With `--from`: only records that arrived before this RFC 3339 time.
    #[arg(long, value_parser = parse_time)]
    pub until: Option<u64>,
    /// Records per pipeline call, with `--from`.
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
    /// Differences shown of each kind, per destination.
    #[arg(long, default_value_t = 3)]
    pub show: usize,
}

/// Runs both pipelines and prints the differences.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match diff(args) {
        Ok(same) => Ok(if same {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        }),
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(ExitCode::from(2))
        }
    }
}

fn diff(args: Args) -> anyhow::Result<bool> {
    let [a, b] = <[String; 2]>::try_from(args.config)
        .map_err(|c| anyhow::anyhow!("give exactly two --config, not {}", c.len()))?;
    let rt = runtime()?;
    rt.block_on(async {
        let (mut app_a, memory_a) = App::load_in_memory(&a)
            .await
            .with_context(|| format!("loading `{a}`"))?;
        let (mut app_b, memory_b) = App::load_in_memory(&b)
            .await
            .with_context(|| format!("loading `{b}`"))?;
        let batches = match (&args.event, &args.from) {
            (Some(event), _) => {
                let json = std::fs::read(event)
                    .with_context(|| format!("cannot read event file `{}`", event.display()))?;
                vec![host::event::decode(&json, &event.display().to_string())?]
            }
            (None, Some(from)) => {
                let window = ArrivalWindow {
                    since: args.since,
                    until: args.until,
                };
                let lines = read_all(&Archive::open(from).await?, &window).await?;
                let mut lines = lines.into_iter().peekable();
                let mut batches = Vec::new();
                while lines.peek().is_some() {
                    batches.push(batch_of(lines.by_ref().take(args.batch_size.max(1))));
                }
                batches
            }
            (None, None) => anyhow::bail!("give --event or --from"),
        };
        let (mut side_a, mut side_b) = (Side::default(), Side::default());
        for batch in batches {
            side_a.run(&mut app_a, &memory_a, batch.clone()).await;
            side_b.run(&mut app_b, &memory_b, batch).await;
        }
        let diff = compare(&side_a, &side_b, args.show);
        print!("{}", diff.text);
        Ok(diff.is_empty())
    })
}
