//! The plugin-author loop: `sluice new`, `sluice build` and `sluice test`.
//!
//! A plugin folder holds the plugin's source, a `plugin.toml` manifest, a
//! `pipeline.toml` that runs the plugin alone, and golden-file cases under
//! `tests/` (the [`host::fixture`] convention):
//!
//! ```text
//! my-filter/plugin.toml        name, kind (filter | transform | route), lang (rust | js | python | c)
//! my-filter/app.js …           the source (lib.rs, app.js, app.py, *.c)
//! my-filter/pipeline.toml      one step running build/my-filter.wasm
//! my-filter/tests/<case>/…     event.json and expected/
//! my-filter/build/             what `sluice build` writes (the component, generated bindings)
//! ```
//!
//! [`new`] writes such a folder from a template; [`build`] turns it into a
//! component at `build/<name>.wasm` with the language's own toolchain
//! (cargo, componentize-js, componentize-py, or clang with wasi-libc and the
//! WASI preview1 adapter for C); `sluice test` builds, then runs the cases.
//! The WIT comes from the folder's `wit/` if it has one (what `sluice new`
//! writes), else from the contract this Sluice was built with.

mod templates;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Deserialize;

use host::config::StepKind;

pub use templates::new;

/// The WIT package this Sluice serves (`wit/plugin.wit`).
pub const WIT: &str = include_str!("../../../../wit/plugin.wit");

/// The componentize-js version `sluice new --lang js` pins.
pub const COMPONENTIZE_JS: &str = "0.23.0";

/// The componentize-py version `sluice build` expects for Python plugins.
pub const COMPONENTIZE_PY: &str = "0.25.1";

/// A language plugins can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Rust, with `wit-bindgen`, built by cargo for `wasm32-wasip2`.
    Rust,
    /// JavaScript, built by componentize-js (StarlingMonkey).
    Js,
    /// Python, built by componentize-py.
    Python,
    /// C, built by clang with wasi-libc, bindings from `wit-bindgen`'s C
    /// generator, made a component with the WASI preview1 reactor adapter.
    C,
}

impl Lang {
    /// The name used in `plugin.toml` and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Js => "js",
            Lang::Python => "python",
            Lang::C => "c",
        }
    }
}

/// A plugin folder's `plugin.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The plugin's name: the component is `build/<name>.wasm`.
    pub name: String,
    /// The world it targets.
    pub kind: StepKind,
    /// The language it is written in.
    pub lang: Lang,
    /// The entry point: the JavaScript file (default `app.js`) or the Python
    /// module (default `app`). Unused for Rust and C.
    pub entry: Option<String>,
}

impl Manifest {
    /// Reads `<dir>/plugin.toml`.
    pub fn read(dir: &Path) -> anyhow::Result<Manifest> {
        let path = dir.join("plugin.toml");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read `{}`: a plugin folder needs a plugin.toml (`sluice new` writes one)",
                path.display()
            )
        })?;
        let manifest: Manifest =
            toml::from_str(&text).with_context(|| format!("in `{}`", path.display()))?;
        sluice_core::name::check(&manifest.name)
            .map_err(|m| anyhow::anyhow!("in `{}`: `name`: {m}", path.display()))?;
        Ok(manifest)
    }

    /// Where `sluice build` writes the component, relative to the folder.
    pub fn component(&self) -> PathBuf {
        Path::new("build").join(format!("{}.wasm", self.name))
    }
}

/// What [`build`] made.
#[derive(Debug)]
pub struct Built {
    /// The component.
    pub component: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// How long the build took.
    pub elapsed: Duration,
    /// The component was newer than every source file: nothing was run.
    pub fresh: bool,
}

/// Builds the plugin in `dir` into `build/<name>.wasm` with its language's
/// toolchain, unless the component is newer than every source file. Errors
/// name the tool that is missing or failed, with its output.
pub fn build(dir: &Path) -> anyhow::Result<Built> {
    let started = Instant::now();
    let dir =
        &std::path::absolute(dir).with_context(|| format!("cannot resolve `{}`", dir.display()))?;
    let manifest = Manifest::read(dir)?;
    if manifest.lang == Lang::Rust {
        // A plugin made by `sluice new` carries the SDK: bring it up to this
        // Sluice's (unchanged files keep their times, so freshness holds).
        templates::refresh_rust_sdk(dir)?;
    }
    let out_dir = dir.join("build");
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create `{}`", out_dir.display()))?;
    let out = dir.join(manifest.component());
    if is_fresh(dir, &out) {
        return Ok(Built {
            bytes: std::fs::metadata(&out)?.len(),
            component: out,
            elapsed: started.elapsed(),
            fresh: true,
        });
    }
    let wit = wit_dir(dir)?;
    match manifest.lang {
        Lang::Rust => build_rust(dir, &out)?,
        Lang::Js => build_js(dir, &manifest, &wit, &out)?,
        Lang::Python => build_python(dir, &manifest, &wit, &out)?,
        Lang::C => build_c(dir, &manifest, &wit, &out)?,
    }
    let bytes = std::fs::metadata(&out)
        .with_context(|| format!("the build did not write `{}`", out.display()))?
        .len();
    Ok(Built {
        component: out,
        bytes,
        elapsed: started.elapsed(),
        fresh: false,
    })
}

/// Whether `out` is newer than every file of the plugin's source: the folder
/// without `build/`, `target/`, `node_modules/`, `tests/` and hidden files
/// (but with `.cargo/`, cargo's settings for a Rust plugin).
fn is_fresh(dir: &Path, out: &Path) -> bool {
    fn newest(dir: &Path, top: bool) -> Option<std::time::SystemTime> {
        let mut latest = std::time::UNIX_EPOCH;
        for entry in std::fs::read_dir(dir).ok()? {
            let entry = entry.ok()?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if (name.starts_with('.') && !(top && name == ".cargo"))
                || name == "__pycache__"
                || (top && ["build", "target", "node_modules", "tests"].contains(&name.as_ref()))
            {
                continue;
            }
            let meta = entry.metadata().ok()?;
            let time = if meta.is_dir() {
                newest(&entry.path(), false)?
            } else {
                meta.modified().ok()?
            };
            latest = latest.max(time);
        }
        Some(latest)
    }
    let Some(built) = std::fs::metadata(out).and_then(|m| m.modified()).ok() else {
        return false;
    };
    newest(dir, true).is_some_and(|source| source < built)
}

/// The folder's own `wit/`, or this Sluice's contract written to `build/wit/`.
fn wit_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    if dir.join("wit").is_dir() {
        return Ok(PathBuf::from("wit"));
    }
    let rel = Path::new("build").join("wit");
    let abs = dir.join(&rel);
    std::fs::create_dir_all(&abs)?;
    let file = abs.join("plugin.wit");
    if std::fs::read_to_string(&file).ok().as_deref() != Some(WIT) {
        std::fs::write(&file, WIT).with_context(|| format!("cannot write `{}`", file.display()))?;
    }
    Ok(rel)
}

/// Runs a build tool in `dir`; a failure carries the tool's output.
fn run(dir: &Path, program: &str, args: &[&str], install_hint: &str) -> anyhow::Result<Vec<u8>> {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run `{program}`: {e}. {install_hint}"))?;
    if !output.status.success() {
        bail!(
            "`{program} {}` failed ({}) in `{}`:\n{}{}",
            args.join(" "),
            output.status,
            dir.display(),
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .filter(|l| !l.starts_with("{\"reason\":"))
                .map(|l| format!("{l}\n"))
                .collect::<String>(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output.stdout)
}

fn copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::copy(from, to)
        .with_context(|| format!("cannot copy `{}` to `{}`", from.display(), to.display()))?;
    Ok(())
}

fn build_rust(dir: &Path, out: &Path) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let stdout = run(
        dir,
        &cargo,
        &[
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
        ],
        "Install Rust with rustup, then `rustup target add wasm32-wasip2`.",
    )?;
    // The component is the `.wasm` of the `cdylib` cargo reports last.
    let component = stdout
        .split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str().map(PathBuf::from))
                .collect::<Vec<_>>()
        })
        .rfind(|f| f.extension().is_some_and(|e| e == "wasm"))
        .context(
            "cargo built no `.wasm`: is the crate a `cdylib` (`[lib] crate-type = [\"cdylib\"]`)?",
        )?;
    copy(&component, out)
}

fn build_js(dir: &Path, manifest: &Manifest, wit: &Path, out: &Path) -> anyhow::Result<()> {
    let tool = dir.join("node_modules/.bin/componentize-js");
    if !tool.is_file() {
        // With a `package-lock.json`, `npm ci` installs exactly what it pins
        // and never rewrites it. It refuses a lock that does not match
        // `package.json`, or that lacks other platforms' optional packages
        // (which registry mirrors often do not carry): then `npm install`,
        // which also writes the lock the first time, says what changed.
        let how = "Install Node.js 20 or newer (with npm).";
        let locked = dir.join("package-lock.json").is_file();
        let ci = locked && run(dir, "npm", &["ci", "--no-audit", "--no-fund"], how).is_ok();
        if !ci {
            if locked {
                eprintln!(
                    "sluice build: `npm ci` refused `{}` (see above); running `npm install`, \
                     which may update it",
                    dir.join("package-lock.json").display()
                );
            }
            run(dir, "npm", &["install", "--no-audit", "--no-fund"], how)?;
        }
    }
    let entry = manifest.entry.as_deref().unwrap_or("app.js");
    let out = out.to_string_lossy();
    let wit = wit.to_string_lossy();
    // No `wasi:http` or fetch event: a plugin has no network. Standard output
    // and errors stay, so `console.log` and exceptions reach the host's logs.
    run(
        dir,
        &tool.to_string_lossy(),
        &[
            entry,
            "--wit",
            &wit,
            "--world-name",
            manifest.kind.as_str(),
            "-d",
            "http",
            "fetch-event",
            "-o",
            &out,
        ],
        &format!(
            "Add `@bytecodealliance/componentize-js` {COMPONENTIZE_JS} to the plugin's package.json devDependencies."
        ),
    )?;
    Ok(())
}

fn build_python(dir: &Path, manifest: &Manifest, wit: &Path, out: &Path) -> anyhow::Result<()> {
    let entry = manifest.entry.as_deref().unwrap_or("app");
    run(
        dir,
        "componentize-py",
        &[
            "-d",
            &wit.to_string_lossy(),
            "-w",
            manifest.kind.as_str(),
            "componentize",
            entry,
            "-o",
            &out.to_string_lossy(),
        ],
        &format!("Install it with `pip install componentize-py=={COMPONENTIZE_PY}`."),
    )?;
    Ok(())
}

fn build_c(dir: &Path, manifest: &Manifest, wit: &Path, out: &Path) -> anyhow::Result<()> {
    // Bindings: `<world>.h`, `<world>.c` and the component-type object.
    let gen_dir = dir.join("build/gen");
    std::fs::create_dir_all(&gen_dir)?;
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve
        .push_path(dir.join(wit))
        .with_context(|| format!("cannot read the WIT in `{}`", dir.join(wit).display()))?;
    let world = resolve.select_world(&[package], Some(manifest.kind.as_str()))?;
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world, &mut files)
        .context("generating the C bindings")?;
    let mut sources: Vec<String> = Vec::new();
    for (name, bytes) in files.iter() {
        std::fs::write(gen_dir.join(name), bytes)?;
        if name.ends_with(".c") || name.ends_with(".o") {
            sources.push(format!("build/gen/{name}"));
        }
    }
    let mut own: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".c"))
        .collect();
    own.sort();
    if own.is_empty() {
        bail!("no `.c` files in `{}`", dir.display());
    }
    // A reactor: no `main`; the exports are called after `_initialize`.
    let core = dir.join("build/core.wasm");
    let mut args: Vec<String> = [
        "--target=wasm32-wasi",
        "-mexec-model=reactor",
        "-O2",
        "-Wall",
        "-I.",
        "-Ibuild/gen",
        "-o",
        "build/core.wasm",
    ]
    .map(String::from)
    .to_vec();
    args.extend(own);
    args.extend(sources);
    let cc = c_compiler();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(
        dir,
        &cc,
        &args,
        "Install clang and wasi-libc, e.g. `apt-get install clang-19 lld-19 libclang-rt-19-dev-wasm32 wasi-libc`, or point `CC` at wasi-sdk's clang.",
    )?;
    let module = std::fs::read(&core)?;
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .context("reading the core module's component type")?
        .adapter(
            "wasi_snapshot_preview1",
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )
        .context("adding the WASI preview1 adapter")?
        .validate(true)
        .encode()
        .context("making the core module a component")?;
    std::fs::write(out, component)?;
    Ok(())
}

/// `CC` if set, else `clang-19`, else `clang`.
fn c_compiler() -> String {
    if let Some(cc) = std::env::var_os("CC").filter(|c| !c.is_empty()) {
        return cc.to_string_lossy().into_owned();
    }
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
    };
    if on_path("clang-19") {
        "clang-19".into()
    } else {
        "clang".into()
    }
}
