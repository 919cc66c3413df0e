//! `sluice new`: a plugin folder from a template, ready to build and test.
//!
//! The templates live in `templates/` next to this file and are compiled into
//! the binary. Every kind behaves the same in every language, so one set of
//! expected outputs per kind serves all three; `host/cli/tests/all/author.rs` builds
//! and tests each (kind, language) pair.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use super::{COMPONENTIZE_JS, Lang, WIT};
use host::config::StepKind;

const PLUGIN_TOML: &str = include_str!("templates/plugin.toml");
const PIPELINE_TOML: &str = include_str!("templates/pipeline.toml");
const README: &str = include_str!("templates/README.md");
const GITIGNORE: &str = include_str!("templates/gitignore");
const EVENT: &str = include_str!("templates/event.json");

/// One plugin kind's template, from `templates/kinds/<kind>/`: its source
/// in each language, the settings and extra destinations of its example
/// pipeline, and the expected files of its one test case. A new kind is one
/// folder and one line in [`KINDS`].
struct KindTemplate {
    kind: StepKind,
    rust: &'static str,
    js: &'static str,
    python: &'static str,
    /// The step's `config = …` in the example pipeline.
    config: &'static str,
    /// More `[destinations.*]` tables the example pipeline needs.
    extra_destinations: &'static str,
    /// `(file, contents)` of `tests/example/expected/`.
    expected: &'static [(&'static str, &'static str)],
    /// The example case's event, when the kind needs its own (an
    /// aggregate's is the last invocation of a tumbling window).
    event: Option<&'static str>,
}

/// A [`KindTemplate`] from its folder.
macro_rules! kind_template {
    ($kind:ident, $dir:literal, config = $config:expr, extra_destinations = $extra:expr, expected = [$($file:literal),*]) => {
        kind_template!($kind, $dir, config = $config, extra_destinations = $extra, expected = [$($file),*], event = None)
    };
    ($kind:ident, $dir:literal, config = $config:expr, extra_destinations = $extra:expr, expected = [$($file:literal),*], event = $event:expr) => {
        KindTemplate {
            kind: StepKind::$kind,
            rust: include_str!(concat!("templates/kinds/", $dir, "/lib.rs")),
            js: include_str!(concat!("templates/kinds/", $dir, "/app.js")),
            python: include_str!(concat!("templates/kinds/", $dir, "/app.py")),
            config: $config,
            extra_destinations: $extra,
            expected: &[$(($file, include_str!(concat!("templates/kinds/", $dir, "/expected/", $file)))),*],
            event: $event,
        }
    };
}

/// Every kind `sluice new` makes.
const KINDS: &[KindTemplate] = &[
    kind_template!(
        Filter,
        "filter",
        config = r#"{ drop_type = "heartbeat" }"#,
        extra_destinations = "",
        expected = ["out.jsonl", "summary.txt"]
    ),
    kind_template!(
        Transform,
        "transform",
        config = r#"{ stamp = "example" }"#,
        extra_destinations = "",
        expected = ["out.jsonl", "summary.txt"]
    ),
    kind_template!(
        Route,
        "route",
        config = r#"{ urgent = "alerts" }"#,
        extra_destinations = "\n[destinations.alerts]\ntype = \"stdout\"\n",
        expected = ["alerts.jsonl", "out.jsonl", "summary.txt"]
    ),
    kind_template!(
        Aggregate,
        "aggregate",
        config = "{ field = \"type\" }\ndestinations = [\"windows\"]",
        extra_destinations = "\n[destinations.windows]\ntype = \"stdout\"\n",
        expected = ["out.jsonl", "summary.txt", "windows.jsonl"],
        event = Some(include_str!("templates/kinds/aggregate/event.json"))
    ),
];

/// The template of `kind`.
fn template(kind: StepKind) -> anyhow::Result<&'static KindTemplate> {
    KINDS
        .iter()
        .find(|t| t.kind == kind)
        .ok_or_else(|| anyhow::anyhow!("`sluice new` has no template for a {kind} plugin"))
}

/// The Rust SDK crate as `cargo package -p sluice-plugin` made it when this
/// binary was built (host/cli/build.rs).
const SDK_CRATE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sluice-plugin.crate"));

/// The Rust SDK as it goes next to a Rust plugin, in `sluice-plugin/`:
/// `(path, contents)`, the files of the packaged crate (normalized manifest,
/// sources, WIT) without cargo's bookkeeping. The plugin depends on it by
/// path, so it builds anywhere with only the Rust toolchain and crates.io, no
/// checkout of Sluice.
fn rust_sdk() -> anyhow::Result<Vec<(PathBuf, String)>> {
    let mut files = Vec::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(SDK_CRATE));
    for entry in archive.entries().context("reading the packaged SDK")? {
        let mut entry = entry.context("reading the packaged SDK")?;
        let path = entry.path().context("a path in the packaged SDK")?;
        // `sluice-plugin-<version>/src/lib.rs` → `sluice-plugin/src/lib.rs`
        let inner: PathBuf = path.components().skip(1).collect();
        let bookkeeping = ["Cargo.toml.orig", "Cargo.lock", ".cargo_vcs_info.json"];
        if bookkeeping.iter().any(|b| inner == Path::new(b)) {
            continue;
        }
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text)
            .with_context(|| format!("reading `{}` in the packaged SDK", inner.display()))?;
        files.push((Path::new("sluice-plugin").join(inner), text));
    }
    Ok(files)
}

/// Rewrites the SDK next to the Rust plugin in `dir`, if it has one
/// (`sluice-plugin/Cargo.toml`), with this Sluice's; files that did not
/// change are not touched.
pub(super) fn refresh_rust_sdk(dir: &Path) -> anyhow::Result<()> {
    if !dir.join("sluice-plugin/Cargo.toml").is_file() {
        return Ok(());
    }
    write_files(dir, rust_sdk()?)
}

/// Writes `(path, contents)` under `dir`, skipping files that already hold
/// exactly that.
fn write_files(dir: &Path, files: Vec<(impl AsRef<Path>, String)>) -> anyhow::Result<()> {
    for (file, text) in files {
        let path = dir.join(file);
        if std::fs::read(&path).is_ok_and(|old| old == text.as_bytes()) {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create `{}`", parent.display()))?;
        }
        std::fs::write(&path, text)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    Ok(())
}

/// The plugin's source files: `(path, contents)`.
fn sources(lang: Lang, t: &KindTemplate) -> Vec<(&'static str, &'static str)> {
    match lang {
        Lang::Rust => vec![
            ("Cargo.toml", include_str!("templates/rust/Cargo.toml")),
            (
                ".cargo/config.toml",
                include_str!("templates/rust/cargo-config.toml"),
            ),
            ("src/lib.rs", t.rust),
        ],
        Lang::Js => vec![
            ("package.json", include_str!("templates/js/package.json")),
            ("app.js", t.js),
        ],
        Lang::Python => vec![("app.py", t.python)],
        Lang::C => Vec::new(),
    }
}

/// Writes a new plugin folder `<parent>/<name>` for `kind` in `lang` and
/// returns its path. Refuses to touch a folder that already exists.
pub fn new(parent: &Path, kind: StepKind, name: &str, lang: Lang) -> anyhow::Result<PathBuf> {
    sluice_core::name::check(name).map_err(|m| anyhow::anyhow!("plugin name: {m}"))?;
    if lang == Lang::C {
        bail!(
            "`sluice new` has templates for rust, js and python; for C, start from \
             examples/plugins/c-filter-field (`sluice build` builds C plugins)"
        );
    }
    let dir = parent.join(name);
    if dir.exists() {
        bail!("`{}` already exists", dir.display());
    }
    let t = template(kind)?;
    let (lang_name, source, build_with) = match lang {
        Lang::Rust => (
            "Rust",
            "src/lib.rs",
            "rustup target add wasm32-wasip2   # once\nsluice build .",
        ),
        Lang::Js => (
            "JavaScript",
            "app.js",
            "sluice build .   # runs `npm install` the first time, then componentize-js",
        ),
        Lang::Python => (
            "Python",
            "app.py",
            "pip install componentize-py==0.25.1   # once\nsluice build .",
        ),
        Lang::C => unreachable!("refused above"),
    };
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{kind}}", kind.as_str())
            .replace("{{lang}}", lang.as_str())
            .replace("{{lang_name}}", lang_name)
            .replace("{{source}}", source)
            .replace("{{build_with}}", build_with)
            .replace("{{config}}", t.config)
            .replace("{{extra_destinations}}", t.extra_destinations)
            .replace("{{componentize_js}}", COMPONENTIZE_JS)
    };
    let mut files: Vec<(String, String)> = vec![
        ("plugin.toml".into(), fill(PLUGIN_TOML)),
        ("pipeline.toml".into(), fill(PIPELINE_TOML)),
        ("README.md".into(), fill(README)),
        (".gitignore".into(), GITIGNORE.into()),
        ("wit/plugin.wit".into(), WIT.into()),
        (
            "tests/example/event.json".into(),
            t.event.unwrap_or(EVENT).into(),
        ),
    ];
    for (file, text) in t.expected {
        files.push((format!("tests/example/expected/{file}"), (*text).into()));
    }
    for (file, text) in sources(lang, t) {
        files.push((file.into(), fill(text)));
    }
    if lang == Lang::Rust {
        files.extend(
            rust_sdk()?
                .into_iter()
                .map(|(f, t)| (f.to_string_lossy().into_owned(), t)),
        );
    }
    write_files(&dir, files)?;
    Ok(dir)
}
