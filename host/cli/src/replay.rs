//! `sluice replay`: an archive run through a pipeline again, as the function
//! would run it.
//!
//! Objects are read in key order (so each shard's records come in their
//! order: the `s3` destination names an object by shard and first sequence
//! number), lines in order, optionally between two arrival times, and run
//! in batches through the pipeline to its destinations: the same per-shard
//! order, failure policies and ledger as the function. A record keeps the
//! identity it was archived with, so FIFO deduplication ids and S3 keys are
//! those the function made: a record replayed twice overwrites or is
//! deduplicated where the destination can.
//!
//! A batch whose records fail with the `retry` policy (or that a
//! destination does not take) is run again from the first failed record of
//! each failed shard, as Lambda would, up to `max_retries` times; then the
//! replay stops, naming the record, with its checkpoint before the batch.
//! The checkpoint file says how far the replay got (the object and line up
//! to which every record is done), is written after every batch (to a
//! temporary file renamed over it), and lets an interrupted replay resume:
//! at most the batch in flight when it stopped is delivered twice.

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use host::app::App;
use host::archive::{Archived, LineError};
use host::destination::memory::MemoryDestination;
use serde::{Deserialize, Serialize};

use crate::archive::{Archive, ArrivalWindow, Object, batch_of};

/// How to replay.
#[derive(Debug, Clone)]
pub struct Options {
    /// The archive, as given (`s3://bucket/prefix` or a folder): the
    /// checkpoint belongs to it.
    pub from: String,
    /// Arrival times to replay.
    pub window: ArrivalWindow,
    /// Records per pipeline run (one guest call per step).
    pub batch_size: usize,
    /// At most this many records per second (`None`: as fast as it goes).
    pub rate: Option<f64>,
    /// Times a failed batch is run again before the replay stops.
    pub max_retries: u32,
    /// The checkpoint file.
    pub checkpoint: PathBuf,
    /// Keep the checkpoint file once everything is replayed (by default
    /// it is removed).
    pub keep_checkpoint: bool,
}

/// How far a replay got: every line of objects before `object`, and of
/// `object` up to line `line`, is done.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The archive it belongs to.
    pub from: String,
    /// The arrival-time window it belongs to (ms since the Unix epoch).
    pub since: Option<u64>,
    /// See `since`.
    pub until: Option<u64>,
    /// The last object with a line done.
    pub object: String,
    /// Its last line done (from 1).
    pub line: usize,
    /// Records done so far.
    pub records: u64,
}

impl Checkpoint {
    /// The checkpoint in `path` for `options`, or a fresh one; an error when
    /// the file belongs to another archive or window.
    pub fn load(options: &Options) -> anyhow::Result<Checkpoint> {
        let fresh = Checkpoint {
            from: options.from.clone(),
            since: options.window.since,
            until: options.window.until,
            ..Checkpoint::default()
        };
        let text = match std::fs::read_to_string(&options.checkpoint) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(fresh),
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot read checkpoint `{}`", options.checkpoint.display())
                });
            }
        };
        let saved: Checkpoint = serde_json::from_str(&text).with_context(|| {
            format!(
                "checkpoint `{}` is not a replay checkpoint",
                options.checkpoint.display()
            )
        })?;
        anyhow::ensure!(
            (saved.from.as_str(), saved.since, saved.until)
                == (fresh.from.as_str(), fresh.since, fresh.until),
            "checkpoint `{}` belongs to a replay of `{}` (since {:?}, until {:?}); give --restart \
             to start over, or another --checkpoint",
            options.checkpoint.display(),
            saved.from,
            saved.since,
            saved.until
        );
        Ok(saved)
    }

    /// Writes it whole to a temporary file, renamed over `path`.
    pub fn save(&self, path: &std::path::Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create `{}`", dir.display()))?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("cannot write `{}`", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot write checkpoint `{}`", path.display()))
    }

    /// Whether line `line` of `object` is done already.
    fn covers(&self, object: &str, line: usize) -> bool {
        object < self.object.as_str() || (object == self.object && line <= self.line)
    }
}

/// What a replay did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Objects read.
    pub objects: usize,
    /// Records run through the pipeline (each once, retries not counted).
    pub records: u64,
    /// Records that made no output.
    pub filtered: u64,
    /// Records sent to the dead-letter destination.
    pub dead_lettered: u64,
    /// Records dropped by an `on_error = "drop"` step.
    pub dropped: u64,
    /// Outputs delivered per destination (indexed like the plan's).
    pub delivered: Vec<u64>,
    /// Batches run again after a failure.
    pub retries: u64,
    /// Lines that were raw JSON Lines, not envelopes: their lineage is
    /// made up (see [`host::archive`]).
    pub raw_lines: u64,
    /// Whether Ctrl-C stopped it (the checkpoint is saved).
    pub interrupted: bool,
    /// How long it took.
    pub elapsed: Duration,
}

/// A batch on its way: each line with the object (index into `texts`) and
/// line number it came from.
#[derive(Default)]
struct Pending {
    lines: Vec<Result<Archived, LineError>>,
    at: Vec<(usize, usize)>,
}

/// The objects whose lines a pending batch holds, kept so that a retry can
/// read its lines again.
type Texts = Vec<(Object, Arc<Vec<u8>>)>;

/// Replays the archive through `app`, saving the checkpoint after every
/// batch; stops early (checkpoint saved) when `stop` is set.
pub async fn replay(
    app: &mut App,
    dry_run: Option<&[MemoryDestination]>,
    archive: &Archive,
    options: &Options,
    stop: &AtomicBool,
) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let mut checkpoint = Checkpoint::load(options)?;
    let objects: Vec<Object> = archive
        .list()
        .await?
        .into_iter()
        .filter(|o| o.name >= checkpoint.object)
        .collect();
    let mut progress = Progress::new(objects.iter().map(|o| o.size).sum(), objects.len());
    let mut summary = Summary {
        delivered: vec![0; app.destinations().len()],
        ..Summary::default()
    };
    let mut reader = archive.reader(objects);
    let mut texts: Texts = Vec::new();
    let mut pending = Pending::default();
    let base = checkpoint.records;
    while let Some((object, bytes)) = reader.next().await {
        let text = Arc::new(bytes?);
        summary.objects += 1;
        progress.object(object.size);
        let (name, modified_ms) = (object.name.clone(), object.modified_ms);
        texts.push((object, text.clone()));
        let mut t = texts.len() - 1;
        for (n, line) in host::archive::read_lines(&name, &text, modified_ms) {
            if checkpoint.covers(&name, n)
                || line
                    .as_ref()
                    .is_ok_and(|a| !options.window.holds(a.record.arrival_ms))
            {
                continue;
            }
            if line.as_ref().is_ok_and(|a| !a.envelope) {
                summary.raw_lines += 1;
            }
            pending.lines.push(line);
            pending.at.push((t, n));
            if pending.lines.len() >= options.batch_size.max(1) {
                let batch = std::mem::take(&mut pending);
                run_batch(app, dry_run, batch, &texts, options, &mut summary).await?;
                checkpoint.object.clone_from(&name);
                checkpoint.line = n;
                checkpoint.records = base + summary.records;
                checkpoint.save(&options.checkpoint)?;
                progress.records(summary.records, started);
                pace(options, summary.records, started).await;
                // Every line read so far is done: only this object's text
                // may be needed again.
                texts.drain(..t);
                t = 0;
                if stop.load(Ordering::Relaxed) {
                    summary.interrupted = true;
                    break;
                }
            }
        }
        if summary.interrupted {
            break;
        }
    }
    if !summary.interrupted
        && let Some(&(t, n)) = pending.at.last()
    {
        run_batch(app, dry_run, pending, &texts, options, &mut summary).await?;
        checkpoint.object.clone_from(&texts[t].0.name);
        checkpoint.line = n;
        checkpoint.records = base + summary.records;
        checkpoint.save(&options.checkpoint)?;
    }
    progress.clear();
    if !summary.interrupted && !options.keep_checkpoint {
        let _ = std::fs::remove_file(&options.checkpoint);
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Waits until `records` records have taken at least as long as the rate
/// limit allows.
async fn pace(options: &Options, records: u64, started: Instant) {
    if let Some(rate) = options.rate.filter(|r| *r > 0.0) {
        let due = Duration::from_secs_f64(records as f64 / rate);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Runs one batch to its end: again from each failed shard's first failed
/// record while records fail with `retry`, at most `max_retries` times.
async fn run_batch(
    app: &mut App,
    dry_run: Option<&[MemoryDestination]>,
    mut pending: Pending,
    texts: &Texts,
    options: &Options,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    summary.records += pending.lines.len() as u64;
    let mut attempt = 0;
    loop {
        let shards: Vec<String> = pending.lines.iter().map(shard_of).collect();
        let report = app.process(batch_of(pending.lines), None).await;
        if let Some(memory) = dry_run {
            memory.iter().for_each(MemoryDestination::clear);
        }
        let o = &report.outcome;
        summary.filtered += o.filtered as u64;
        summary.dead_lettered += report.dispatch.dead_lettered as u64;
        summary.dropped += o.dropped.len() as u64;
        for (sum, n) in summary.delivered.iter_mut().zip(&report.dispatch.delivered) {
            *sum += *n as u64;
        }
        // Where each failed shard resumes, as Lambda would resume it.
        let resume: HashMap<&str, usize> = o
            .checkpoints()
            .map(|f| (f.shard_id.as_deref().unwrap_or_default(), f.index))
            .collect();
        if resume.is_empty() {
            return Ok(());
        }
        attempt += 1;
        if attempt > options.max_retries {
            let first = o.checkpoints().next().map(host::summary::describe);
            anyhow::bail!(
                "a record still failed after {} retries: {}. Nothing after it on its shard was \
                 delivered; the checkpoint is before this batch, so running the replay again \
                 resumes here",
                options.max_retries,
                first.unwrap_or_default()
            );
        }
        summary.retries += 1;
        let again: Vec<(usize, usize)> = pending
            .at
            .iter()
            .zip(&shards)
            .enumerate()
            .filter(|(i, (_, shard))| resume.get(shard.as_str()).is_some_and(|from| i >= from))
            .map(|(_, (&at, _))| at)
            .collect();
        tracing::warn!(
            records = again.len(),
            attempt,
            "records failed with `retry`; running them again"
        );
        pending = reread(texts, again);
    }
}

/// The shard a line's record is ordered in (a line that could not be read:
/// its object).
fn shard_of(line: &Result<Archived, LineError>) -> String {
    match line {
        Ok(a) => a.record.shard_id.clone(),
        Err(e) => e.object.clone(),
    }
}

/// The lines at `at` (object index in `texts`, line number), read again.
fn reread(texts: &Texts, at: Vec<(usize, usize)>) -> Pending {
    let mut pending = Pending::default();
    let mut wanted = at.iter().peekable();
    for (t, (object, text)) in texts.iter().enumerate() {
        if wanted.peek().is_none_or(|(wt, _)| *wt != t) {
            continue;
        }
        for (n, line) in host::archive::read_lines(&object.name, text, object.modified_ms) {
            if wanted.peek() == Some(&&(t, n)) {
                wanted.next();
                pending.lines.push(line);
                pending.at.push((t, n));
            }
        }
    }
    pending
}

/// The progress line on a terminal: records, rate, objects and bytes left.
struct Progress {
    shown: bool,
    on: bool,
    bytes_left: u64,
    objects_left: usize,
    last: Option<Instant>,
}

impl Progress {
    fn new(bytes: u64, objects: usize) -> Progress {
        Progress {
            shown: false,
            on: std::io::stderr().is_terminal(),
            bytes_left: bytes,
            objects_left: objects,
            last: None,
        }
    }

    fn object(&mut self, size: u64) {
        self.bytes_left = self.bytes_left.saturating_sub(size);
        self.objects_left = self.objects_left.saturating_sub(1);
    }

    fn records(&mut self, records: u64, started: Instant) {
        if !self.on
            || self
                .last
                .is_some_and(|t| t.elapsed() < Duration::from_millis(250))
        {
            return;
        }
        self.last = Some(Instant::now());
        let rate = records as f64 / started.elapsed().as_secs_f64().max(1e-3);
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\r\x1b[2Kreplayed {records} records ({rate:.0}/s); {} objects ({:.1} MB) left",
            self.objects_left,
            self.bytes_left as f64 / 1e6
        );
        let _ = err.flush();
        self.shown = true;
    }

    fn clear(&mut self) {
        if self.shown {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}
