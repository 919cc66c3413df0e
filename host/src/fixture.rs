//! Golden-file test cases for plugins and pipelines.
//!
//! The convention (one folder per case, nothing to register):
//!
//! ```text
//! examples/<pipeline>/pipeline.toml              the pipeline under test
//! examples/<pipeline>/tests/<case>/event.json    a Kinesis event, exactly as Lambda sends it
//! examples/<pipeline>/tests/<case>/events/*.json or: invocations in name order (one shard's;
//!                                                tumbling-window state carried from one to the next)
//! examples/<pipeline>/tests/<case>/pipeline.toml optional: a config for this case only
//! examples/<pipeline>/tests/<case>/expected/<destination>.jsonl   outputs per destination
//! examples/<pipeline>/tests/<case>/expected/summary.txt           the run summary
//! ```
//!
//! Each case runs through the real plugins with every destination replaced
//! by an in-memory destination that writes the `envelope` format (payload plus
//! lineage), and its outputs are compared with `expected/`: summaries as
//! text, outputs line by line as JSON values (an object's key order does not
//! count). A destination that received nothing has no file. With `BLESS=1` the expected files are
//! rewritten from what the case produced; review the diff before committing.
//!
//! **Variants** ([`run_variant`], `sluice test <dir> --config <variant.toml>`)
//! run the same cases through another pipeline, e.g. the same steps with
//! plugins written in other languages. A case with its own `pipeline.toml`
//! uses its own `<variant file name>` if it has one. A variant must produce
//! the same outputs, the same counts and the same failures (record, class and
//! step); what it may word differently is the plugin's file name and its
//! free-text reason, which the comparison leaves out (in the summary and in
//! dead-letter documents).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::app::App;
use crate::config::{self, Format};
use crate::destination::Destination;
use crate::destination::memory::MemoryDestination;
use crate::event;

/// One case's verdict.
#[derive(Debug)]
pub struct CaseResult {
    /// The case's folder.
    pub dir: PathBuf,
    /// Files whose content differs from what the case produced, with a diff.
    pub mismatches: Vec<(String, String)>,
}

impl CaseResult {
    /// Whether every expected file matched.
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// The pipelines under `root` that have a `tests/` folder, sorted.
pub fn suites(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if root.join("pipeline.toml").is_file() && root.join("tests").is_dir() {
        out.push(root.to_owned());
    }
    for entry in read_dir_sorted(root)? {
        if entry.join("pipeline.toml").is_file() && entry.join("tests").is_dir() {
            out.push(entry);
        }
    }
    Ok(out)
}

/// Runs every case of the pipeline in `dir`; `bless` rewrites expectations.
pub fn run_suite(dir: &Path, bless: bool) -> anyhow::Result<Vec<CaseResult>> {
    run_cases(dir, None, bless)
}

/// Runs every case of the pipeline in `dir` through the `variant` pipeline
/// config instead, and compares the contract (see the module docs).
pub fn run_variant(dir: &Path, variant: &Path) -> anyhow::Result<Vec<CaseResult>> {
    run_cases(dir, Some(variant), false)
}

fn run_cases(dir: &Path, variant: Option<&Path>, bless: bool) -> anyhow::Result<Vec<CaseResult>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut shared: Option<(App, Vec<MemoryDestination>)> = None;
    let mut results = Vec::new();
    let main_config = variant.map_or_else(|| dir.join("pipeline.toml"), Path::to_owned);
    let variant_name = variant.and_then(Path::file_name);
    for case in read_dir_sorted(&dir.join("tests"))? {
        if !case.join("event.json").is_file() && !case.join("events").is_dir() {
            continue;
        }
        let own_variant = variant_name.map(|n| case.join(n)).filter(|p| p.is_file());
        let own_config = own_variant.unwrap_or_else(|| case.join("pipeline.toml"));
        let compare = if variant.is_some() {
            Compare::Contract
        } else {
            Compare::Exact
        };
        let result = if own_config.is_file() {
            let (mut app, destinations) = load(&own_config)?;
            rt.block_on(run_case(&case, &mut app, &destinations, bless, compare))?
        } else {
            if shared.is_none() {
                shared = Some(load(&main_config)?);
            }
            let (app, destinations) = shared.as_mut().expect("just loaded");
            app.reset();
            destinations.iter().for_each(MemoryDestination::clear);
            rt.block_on(run_case(&case, app, destinations, bless, compare))?
        };
        results.push(result);
    }
    Ok(results)
}

/// How a case's outputs are compared with its expected files.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Compare {
    /// Byte for byte.
    Exact,
    /// Without plugin file names and free-text failure reasons.
    Contract,
}

/// `text` without what a variant may word differently: in the summary, a
/// failed record's `(plugin): reason`; in a dead-letter document, the
/// failure's `plugin` and `reason`; in the metrics, the `Pipeline`
/// dimension and `Bytes`.
fn contract_view(name: &str, text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if name == "summary.txt" && line.trim_start().starts_with('#') {
            let cut = line
                .find("] ")
                .and_then(|at| line[at..].find(" (").map(|p| at + p));
            out.push_str(cut.map_or(line, |c| &line[..c]));
        } else if name == METRICS_FILE {
            // The `Pipeline` dimension names the config file, and `Bytes`
            // depends on how a plugin writes its JSON: not the contract.
            match serde_json::from_str::<serde_json::Value>(line) {
                Ok(mut doc) => {
                    if let Some(d) = doc.as_object_mut() {
                        d.remove("Pipeline");
                        d.remove("Bytes");
                    }
                    out.push_str(&doc.to_string());
                }
                Err(_) => out.push_str(line),
            }
        } else if name.ends_with(".jsonl") && line.contains("\"failure\"") {
            match serde_json::from_str::<serde_json::Value>(line) {
                Ok(mut doc) => {
                    if let Some(f) = doc.get_mut("failure").and_then(|f| f.as_object_mut()) {
                        f.remove("plugin");
                        f.remove("reason");
                    }
                    out.push_str(&doc.to_string());
                }
                Err(_) => out.push_str(line),
            }
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// A case's expected EMF documents, when it has them (see [`run_case`]).
const METRICS_FILE: &str = "metrics.emf";

fn load(config_path: &Path) -> anyhow::Result<(App, Vec<MemoryDestination>)> {
    let plan = config::load(config_path)?;
    let memory: Vec<MemoryDestination> = plan
        .destinations
        .iter()
        .map(|d| MemoryDestination::new(&d.name, Format::Envelope))
        .collect();
    let destinations = memory.iter().cloned().map(Destination::from).collect();
    let app = App::with_destinations(plan, destinations)
        .with_context(|| format!("loading `{}`", config_path.display()))?;
    Ok((app, memory))
}

async fn run_case(
    case: &Path,
    app: &mut App,
    destinations: &[MemoryDestination],
    bless: bool,
    compare: Compare,
) -> anyhow::Result<CaseResult> {
    let expected_dir = case.join("expected");
    let mut actual = actual_files(case, app, destinations).await?;
    if bless {
        if expected_dir.exists() {
            std::fs::remove_dir_all(&expected_dir)?;
        }
        std::fs::create_dir_all(&expected_dir)?;
        for (name, content) in &actual {
            std::fs::write(expected_dir.join(name), content)?;
        }
    }
    let mut expected = BTreeMap::new();
    if expected_dir.is_dir() {
        for file in read_dir_sorted(&expected_dir)? {
            let name = file
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading `{}`", file.display()))?;
            expected.insert(name, text);
        }
    }
    if compare == Compare::Contract {
        for (name, text) in actual.iter_mut().chain(expected.iter_mut()) {
            *text = contract_view(name, text);
        }
    }
    Ok(CaseResult {
        dir: case.to_owned(),
        mismatches: mismatches(&actual, &expected),
    })
}

/// What the case's event makes, file by file as `expected/` holds it: the
/// summary, each destination's outputs, the EMF documents when the case
/// checks them (`expected/metrics.emf`), or the error of an event that is
/// not a Kinesis event at all. A case with an `events/` folder runs its
/// events in name order as one shard's invocations, each tumbling window's
/// state handed from one invocation to the next as Lambda hands it; its
/// summary has one part per invocation.
async fn actual_files(
    case: &Path,
    app: &mut App,
    destinations: &[MemoryDestination],
) -> anyhow::Result<BTreeMap<String, String>> {
    let sequence = case.join("events");
    let events = if sequence.is_dir() {
        read_dir_sorted(&sequence)?
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect()
    } else {
        vec![case.join("event.json")]
    };
    let mut actual = BTreeMap::new();
    let mut summary = String::new();
    let mut state: Option<BTreeMap<String, String>> = None;
    for (i, event_path) in events.iter().enumerate() {
        let json = std::fs::read(event_path)
            .with_context(|| format!("reading `{}`", event_path.display()))?;
        let mut batch = match event::decode(&json, &event_path.display().to_string()) {
            Ok(batch) => batch,
            // An event that is not a Kinesis event at all: the error is the output.
            Err(e) => {
                let msg = e.to_string().replace(&case.display().to_string(), "<case>");
                actual.insert("error.txt".to_owned(), format!("{msg}\n"));
                return Ok(actual);
            }
        };
        if let (Some(window), Some(carried)) = (batch.window.as_mut(), state.take()) {
            window.state = carried;
        }
        let oldest_arrival_ms = crate::metrics::oldest_arrival_ms(&batch);
        let report = app.process(batch, None).await;
        let rendered = crate::summary::render(app.plan(), &report.outcome, &report.dispatch);
        if sequence.is_dir() {
            let name = event_path.file_name().unwrap_or_default().to_string_lossy();
            summary.push_str(&format!(
                "invocation {} (events/{name}):\n{rendered}",
                i + 1
            ));
            if let Some(w) = &report.window {
                summary.push_str(&window_lines(w));
            }
        } else {
            summary = rendered;
        }
        state = report.window.as_ref().map(|w| w.state.clone());
        // Opt-in: run-to-run values set to 0.
        if case.join("expected").join(METRICS_FILE).is_file() {
            actual.insert(
                METRICS_FILE.to_owned(),
                metrics_of(app, &report, oldest_arrival_ms),
            );
        }
    }
    actual.insert("summary.txt".to_owned(), summary);
    for destination in destinations {
        let bytes = destination.contents();
        if !bytes.is_empty() {
            actual.insert(
                format!("{}.jsonl", destination.name()),
                String::from_utf8_lossy(&bytes).into_owned(),
            );
        }
    }
    Ok(actual)
}

/// What a sequence's summary says of an invocation's tumbling window.
fn window_lines(w: &crate::app::WindowReport) -> String {
    let mut out = format!(
        "window state: {}\n",
        serde_json::to_string(&w.state).unwrap_or_default()
    );
    if w.last {
        out.push_str(&format!("window ended: {} outputs\n", w.emitted));
    }
    if let Some(e) = &w.error {
        out.push_str(&format!("window failed: {e}\n"));
    }
    out
}

/// The EMF documents of one invocation, with run-to-run values set to 0.
fn metrics_of(app: &App, report: &crate::app::Report, oldest_arrival_ms: Option<u64>) -> String {
    let invocation = crate::metrics::Invocation {
        timestamp_ms: 0,
        duration: std::time::Duration::ZERO,
        oldest_arrival_ms,
        cold_start: None,
        batch_item_failures: crate::lambda::response(&report.outcome)
            .map_or(0, |r| r.batch_item_failures.len()),
    };
    crate::metrics::stable(&crate::metrics::documents(app.plan(), report, &invocation))
}

/// Each file that differs between what the case made and what it expects,
/// with a unified diff (JSON Lines compare by value).
fn mismatches(
    actual: &BTreeMap<String, String>,
    expected: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut mismatches = Vec::new();
    let names: std::collections::BTreeSet<_> = actual.keys().chain(expected.keys()).collect();
    for name in names {
        let a = actual.get(name).map(String::as_str).unwrap_or("");
        let e = expected.get(name).map(String::as_str).unwrap_or("");
        let same = a == e || (name.ends_with(".jsonl") && same_json_lines(a, e));
        if !same || actual.contains_key(name) != expected.contains_key(name) {
            let diff = similar::TextDiff::from_lines(e, a)
                .unified_diff()
                .context_radius(2)
                .header(&format!("expected/{name}"), &format!("actual/{name}"))
                .to_string();
            let note = match (expected.contains_key(name), actual.contains_key(name)) {
                (false, _) => " (no expected file: the case produced it)",
                (_, false) => " (expected, but the case produced nothing)",
                _ => "",
            };
            mismatches.push((format!("{name}{note}"), diff));
        }
    }
    mismatches
}

/// Whether two JSON Lines texts hold the same values line by line: the order
/// of an object's keys means nothing in JSON, and plugins in different
/// languages serialize objects in different orders.
fn same_json_lines(a: &str, b: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    a.len() == b.len()
        && a.iter().zip(&b).all(|(x, y)| {
            x == y
                || matches!(
                    (
                        serde_json::from_str::<serde_json::Value>(x),
                        serde_json::from_str::<serde_json::Value>(y),
                    ),
                    (Ok(vx), Ok(vy)) if vx == vy
                )
        })
}

fn read_dir_sorted(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut entries = std::fs::read_dir(dir)
        .with_context(|| format!("reading `{}`", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()?;
    entries.sort();
    Ok(entries)
}
