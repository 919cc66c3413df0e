//! `sluice precompile`: compile a pipeline's plugins ahead of time.
//!
//! Compiling a component with Cranelift takes from a few hundred
//! milliseconds (a small Rust plugin) to seconds (a JavaScript or Python
//! one), and a Lambda cold start would pay it for every plugin. A
//! precompiled artifact loads in about a millisecond instead.
//!
//! [`precompile`] reads a pipeline config, compiles each distinct plugin it
//! names into `<out>/plugins/<name>.cwasm` and writes `<out>/pipeline.toml`:
//! the same config (comments kept), with each step's `plugin` pointing at its
//! artifact and `sha256` pinning it. Upload `<out>` as a whole: the config
//! names the artifacts relative to itself.
//!
//! Artifacts are native code for one wasmtime version, one set of engine
//! settings and one target architecture (its baseline CPU). The runtime
//! refuses any other artifact with a message saying so, and refuses an
//! artifact the config does not pin (see [`host::plugin::PluginError`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use sha2::{Digest, Sha256};

use host::app::{fetch_plugin, read_config};
use host::config;
use host::hex;
use host::pipeline::Pipeline;
use host::plugin::{Precompiler, Runtime, RuntimeOptions, check_pin};

/// One artifact written by [`precompile`].
#[derive(Debug)]
pub struct Artifact {
    /// The steps that use it.
    pub steps: Vec<String>,
    /// Where the component came from.
    pub source: String,
    /// The artifact's path, relative to the output folder.
    pub path: String,
    /// The component's size, in bytes.
    pub component_bytes: usize,
    /// The artifact's size, in bytes.
    pub artifact_bytes: usize,
    /// How long compiling took, in milliseconds.
    pub compile_ms: f64,
}

/// What [`precompile`] did.
#[derive(Debug)]
pub struct Report {
    /// The target triple the artifacts are for.
    pub target: String,
    /// The config written, `<out>/pipeline.toml`.
    pub config: PathBuf,
    /// The SHA-256 of the written config (64 hex digits): the value of
    /// [`host::app::CONFIG_PIN_VAR`] in the function's environment, without
    /// which a config in S3 may not name the artifacts.
    pub config_sha256: String,
    /// The artifacts, in step order (a shadow after its step).
    pub artifacts: Vec<Artifact>,
    /// Whether the written config was loaded back and every plugin started
    /// (only possible when the target is this machine's).
    pub verified: bool,
}

/// Precompiles the plugins of the pipeline config at `config` (a path or
/// `s3://…`) for `target` (`None`: this machine's architecture) into `out`.
pub async fn precompile(config: &str, out: &Path, target: Option<&str>) -> anyhow::Result<Report> {
    let mut aws = None;
    let (text, origin) = read_config(config, &mut aws).await?;
    let plan = config::parse(&text, &origin)?;
    plan.check_local_plugins()?;
    let precompiler = Precompiler::new(RuntimeOptions::default(), target)?;
    let plugins_dir = out.join("plugins");
    std::fs::create_dir_all(&plugins_dir)
        .with_context(|| format!("cannot create `{}`", plugins_dir.display()))?;
    let (artifacts, pins) = compile_all(&plan, &precompiler, out, &mut aws).await?;

    let tables = copy_tables(&plan, out)?;
    let rewritten =
        rewrite(&text, &pins, &tables).with_context(|| format!("rewriting `{origin}`"))?;
    let config_path = out.join("pipeline.toml");
    let config_sha256 = hex(&Sha256::digest(rewritten.as_bytes()));
    std::fs::write(&config_path, rewritten)
        .with_context(|| format!("cannot write `{}`", config_path.display()))?;

    // Load what was written, as the Lambda will: every artifact verified
    // against its pin, deserialized, type-checked and started.
    let verified = precompiler.is_host();
    if verified {
        let plan = config::load(&config_path)?;
        Pipeline::load(&Runtime::new()?, plan).context("loading the precompiled pipeline back")?;
    }
    Ok(Report {
        target: precompiler.target().to_owned(),
        config: config_path,
        config_sha256,
        artifacts,
        verified,
    })
}

/// Precompiles every plugin of `plan` (each step's, then its shadow's; a
/// component named twice once) into `out/plugins/`: the artifacts, and
/// where each goes in the rewritten config.
async fn compile_all(
    plan: &config::Plan,
    precompiler: &Precompiler,
    out: &Path,
    aws: &mut Option<host::aws::Aws>,
) -> anyhow::Result<(Vec<Artifact>, Vec<Pin>)> {
    let mut artifacts: Vec<Artifact> = Vec::new();
    let mut by_source: HashMap<String, (usize, String)> = HashMap::new();
    let mut pins = Vec::with_capacity(plan.steps.len());
    for (index, step, field) in plan.plugin_steps() {
        let source = step.plugin.to_string();
        if let Some((i, digest)) = by_source.get(&source) {
            artifacts[*i].steps.push(step.name.clone());
            pins.push(Pin {
                step: index,
                field,
                path: artifacts[*i].path.clone(),
                digest: digest.clone(),
            });
            continue;
        }
        let component = fetch_plugin(step, aws).await?;
        if wasmtime::Engine::detect_precompiled(&component).is_some() {
            anyhow::bail!(
                "step `{}`: plugin `{source}` is already precompiled; precompile from the `.wasm` component",
                step.name
            );
        }
        // Imports and the world are checked when the result is loaded back.
        check_pin(step, &source, &component)?;
        let started = Instant::now();
        let artifact = precompiler.precompile(&component).with_context(|| {
            format!(
                "step `{}`: cannot precompile plugin `{source}` for `{}`",
                step.name,
                precompiler.target()
            )
        })?;
        let compile_ms = started.elapsed().as_secs_f64() * 1e3;
        let path = format!("plugins/{}", artifact_name(&source, &artifacts));
        std::fs::write(out.join(&path), &artifact)
            .with_context(|| format!("cannot write `{}`", out.join(&path).display()))?;
        let digest = hex(&Sha256::digest(&artifact));
        by_source.insert(source.clone(), (artifacts.len(), digest.clone()));
        pins.push(Pin {
            step: index,
            field,
            path: path.clone(),
            digest,
        });
        artifacts.push(Artifact {
            steps: vec![step.name.clone()],
            source,
            path,
            component_bytes: component.len(),
            artifact_bytes: artifact.len(),
            compile_ms,
        });
    }

    Ok((artifacts, pins))
}

/// `<stem>.cwasm`, made unique among the artifacts so far.
fn artifact_name(source: &str, so_far: &[Artifact]) -> String {
    let file = source.rsplit('/').next().unwrap_or(source);
    let stem = file.strip_suffix(".wasm").unwrap_or(file);
    let taken = |name: &str| so_far.iter().any(|a| a.path == format!("plugins/{name}"));
    let mut name = format!("{stem}.cwasm");
    let mut n = 2;
    while taken(&name) {
        name = format!("{stem}-{n}.cwasm");
        n += 1;
    }
    name
}

/// Where an artifact goes in the rewritten config: step `step`'s `plugin`
/// and `sha256`, or its `shadow`'s (`field` is `plugin` or `shadow.plugin`).
#[derive(Debug, Clone)]
struct Pin {
    step: usize,
    field: &'static str,
    path: String,
    digest: String,
}

/// Copies each local table file next to the written config
/// (`tables/<file>`), so that the folder is the whole deployment; returns
/// each copied table's name and new `source`. Tables in S3 stay there.
fn copy_tables(plan: &config::Plan, out: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut copied: Vec<(String, String)> = Vec::new();
    for t in &plan.tables {
        let config::Location::File(path) = &t.source else {
            continue;
        };
        let file = path
            .file_name()
            .map_or_else(|| t.name.clone(), |f| f.to_string_lossy().into_owned());
        let mut source = format!("tables/{file}");
        let mut n = 2;
        while copied.iter().any(|(_, s)| *s == source) {
            source = format!("tables/{n}-{file}");
            n += 1;
        }
        std::fs::create_dir_all(out.join("tables"))
            .with_context(|| format!("cannot create `{}`", out.join("tables").display()))?;
        std::fs::copy(path, out.join(&source))
            .with_context(|| format!("table `{}`: cannot copy `{}`", t.name, path.display()))?;
        copied.push((t.name.clone(), source));
    }
    Ok(copied)
}

/// The config text with each step's (and shadow's) `plugin` and `sha256`
/// replaced, and each copied table's `source`, everything else (comments
/// included) kept.
fn rewrite(text: &str, pins: &[Pin], tables: &[(String, String)]) -> anyhow::Result<String> {
    let mut doc: toml_edit::DocumentMut = text.parse()?;
    for (name, source) in tables {
        let table = doc
            .get_mut("tables")
            .and_then(|t| t.get_mut(name))
            .and_then(toml_edit::Item::as_table_like_mut)
            .with_context(|| format!("expected `[tables.{name}]`"))?;
        table.insert("source", toml_edit::value(source.as_str()));
    }
    let steps = doc
        .get_mut("steps")
        .and_then(|s| s.as_array_of_tables_mut())
        .context("expected `[[steps]]` tables")?;
    for pin in pins {
        let table = steps
            .get_mut(pin.step)
            .with_context(|| format!("expected a step #{}", pin.step))?;
        let table: &mut dyn toml_edit::TableLike = if pin.field == "plugin" {
            table
        } else {
            table
                .get_mut("shadow")
                .and_then(toml_edit::Item::as_table_like_mut)
                .with_context(|| format!("expected steps[{}].shadow", pin.step))?
        };
        table.insert("plugin", toml_edit::value(pin.path.as_str()));
        table.insert("sha256", toml_edit::value(pin.digest.as_str()));
    }
    let header = "# Written by `sluice precompile`: plugins are precompiled artifacts, pinned by\n\
                  # SHA-256. They load only in the Sluice build that wrote them.\n";
    Ok(format!("{header}{doc}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_keeps_comments_and_sets_pins() {
        let text = "# top\n[[steps]]\nname = \"a\" # the step\nkind = \"filter\"\nplugin = \"a.wasm\"\n\n[[steps]]\nname = \"b\"\nkind = \"route\"\nplugin = \"b.wasm\"\nsha256 = \"00\"\nshadow = { plugin = \"c.wasm\", time_share = 0.2 }\n";
        let pin = |step, field, path: &str, digest: &str| Pin {
            step,
            field,
            path: path.into(),
            digest: digest.into(),
        };
        let out = rewrite(
            &format!("{text}\n[tables.t]\nsource = \"../x/t.csv\" # kept comment\nkey = \"id\"\n"),
            &[
                pin(0, "plugin", "plugins/a.cwasm", "11"),
                pin(1, "plugin", "plugins/b.cwasm", "22"),
                pin(1, "shadow.plugin", "plugins/c.cwasm", "33"),
            ],
            &[("t".into(), "tables/t.csv".into())],
        )
        .unwrap();
        assert!(out.contains("source = \"tables/t.csv\""), "{out}");
        assert!(
            out.contains(
                r#"shadow = { plugin = "plugins/c.cwasm", time_share = 0.2 , sha256 = "33" }"#
            ) || out.contains(
                r#"shadow = { plugin = "plugins/c.cwasm", time_share = 0.2, sha256 = "33" }"#
            ),
            "{out}"
        );
        assert!(out.contains("# top") && out.contains("# the step"), "{out}");
        assert!(
            out.contains("plugin = \"plugins/a.cwasm\"\nsha256 = \"11\""),
            "{out}"
        );
        assert!(
            out.contains("plugin = \"plugins/b.cwasm\"\nsha256 = \"22\""),
            "{out}"
        );
    }

    #[test]
    fn artifact_names_are_unique() {
        let a = |path: &str| Artifact {
            steps: vec![],
            source: String::new(),
            path: path.into(),
            component_bytes: 0,
            artifact_bytes: 0,
            compile_ms: 0.0,
        };
        assert_eq!(artifact_name("x/redact.wasm", &[]), "redact.cwasm");
        assert_eq!(
            artifact_name("s3://b/y/redact.wasm", &[a("plugins/redact.cwasm")]),
            "redact-2.cwasm"
        );
    }
}
