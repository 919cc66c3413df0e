//! Golden-file test cases for plugins and pipelines.
//!
//! The convention (one folder per case, nothing to register):
//!
//! ```text
//! examples/<pipeline>/pipeline.toml              the pipeline under test
//! examples/<pipeline>/tests/<case>/event.json    a Kinesis event, exactly as Lambda sends it
//! examples/<pipeline>/tests/<case>/pipeline.toml optional: a config for this case only
//! examples/<pipeline>/tests/<case>/expected/<destination>.jsonl   outputs per destination
//! examples/<pipeline>/tests/<case>/expected/summary.txt           the run summary
//! ```
//!
//! Each case runs through the real plugins with every destination replaced
//! by an in-memory sink that writes the `envelope` format (payload plus
//! lineage), and its outputs are compared with `expected/`. A destination
//! that received nothing has no file. With `BLESS=1` the expected files are
//! rewritten from what the case produced; review the diff before committing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::app::App;
use crate::config::{self, Format};
use crate::event;
use crate::sink::Sink;
use crate::sink::memory::MemorySink;

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
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut shared: Option<(App, Vec<MemorySink>)> = None;
    let mut results = Vec::new();
    for case in read_dir_sorted(&dir.join("tests"))? {
        if !case.join("event.json").is_file() {
            continue;
        }
        let own_config = case.join("pipeline.toml");
        let result = if own_config.is_file() {
            let (mut app, sinks) = load(&own_config)?;
            rt.block_on(run_case(&case, &mut app, &sinks, bless))?
        } else {
            if shared.is_none() {
                shared = Some(load(&dir.join("pipeline.toml"))?);
            }
            let (app, sinks) = shared.as_mut().expect("just loaded");
            app.reset();
            sinks.iter().for_each(MemorySink::clear);
            rt.block_on(run_case(&case, app, sinks, bless))?
        };
        results.push(result);
    }
    Ok(results)
}

fn load(config_path: &Path) -> anyhow::Result<(App, Vec<MemorySink>)> {
    let plan = config::load(config_path)?;
    let memory: Vec<MemorySink> = plan
        .destinations
        .iter()
        .map(|d| MemorySink::new(&d.name, Format::Envelope))
        .collect();
    let sinks = memory.iter().cloned().map(Sink::Memory).collect();
    let app = App::with_sinks(plan, sinks)
        .with_context(|| format!("loading `{}`", config_path.display()))?;
    Ok((app, memory))
}

async fn run_case(
    case: &Path,
    app: &mut App,
    sinks: &[MemorySink],
    bless: bool,
) -> anyhow::Result<CaseResult> {
    let event_path = case.join("event.json");
    let json = std::fs::read(&event_path)
        .with_context(|| format!("reading `{}`", event_path.display()))?;
    let mut actual = BTreeMap::new();
    match event::decode(&json, &event_path.display().to_string()) {
        Ok(batch) => {
            let report = app.process(batch, None).await;
            actual.insert(
                "summary.txt".to_owned(),
                crate::summary::render(app.plan(), &report.outcome, &report.dispatch),
            );
            for sink in sinks {
                let bytes = sink.contents();
                if !bytes.is_empty() {
                    actual.insert(
                        format!("{}.jsonl", sink.name()),
                        String::from_utf8_lossy(&bytes).into_owned(),
                    );
                }
            }
        }
        // An event that is not a Kinesis event at all: the error is the output.
        Err(e) => {
            let msg = e.to_string().replace(&case.display().to_string(), "<case>");
            actual.insert("error.txt".to_owned(), format!("{msg}\n"));
        }
    }

    let expected_dir = case.join("expected");
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
    let mut mismatches = Vec::new();
    let names: std::collections::BTreeSet<_> = actual.keys().chain(expected.keys()).collect();
    for name in names {
        let a = actual.get(name).map(String::as_str).unwrap_or("");
        let e = expected.get(name).map(String::as_str).unwrap_or("");
        if a != e || actual.contains_key(name) != expected.contains_key(name) {
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
    Ok(CaseResult {
        dir: case.to_owned(),
        mismatches,
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
