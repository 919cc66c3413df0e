//! The plugin-author loop through the real `sluice` binary, as the README
//! documents it: `sluice new <kind> <name> --lang <lang>`, `sluice build`,
//! `sluice test`, for every kind in Rust, JavaScript and Python, from an
//! empty folder to a passing test; then a broken expectation must fail with
//! a readable diff. Prints how long each loop took.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

fn sluice(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .current_dir(dir)
        .env("SLUICE_LOG", "warn")
        // CI lints our crates through clippy-driver; a new plugin is the
        // author's crate, built as its author would build it.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        // Rust plugins share one target folder, so the loop for the second
        // and third kind does not rebuild wit-bindgen and serde_json.
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("author-plugins"),
        )
        .output()
        .unwrap()
}

fn ok(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `sluice new` → `build` → `test` for each kind in `lang`, the kinds at
/// once (each is mostly one toolchain process: componentize-js or -py,
/// cargo, then Cranelift).
fn loop_for(lang: &str) {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("author-{lang}"));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    std::thread::scope(|threads| {
        for kind in ["filter", "transform", "route", "aggregate"] {
            let scratch = &scratch;
            threads.spawn(move || one_kind(scratch, lang, kind));
        }
    });
    // A name that is already taken is refused.
    let again = sluice(&scratch, &["new", "filter", "my-filter", "--lang", lang]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

/// One kind's loop: a new plugin builds, passes its case, and fails it with
/// a diff once the case expects something else.
fn one_kind(scratch: &Path, lang: &str, kind: &str) {
    let name = format!("my-{kind}");
    let started = Instant::now();
    let made = sluice(scratch, &["new", kind, &name, "--lang", lang]);
    ok(&made, "sluice new");
    let dir = scratch.join(&name);
    for file in [
        "plugin.toml",
        "pipeline.toml",
        "README.md",
        "wit/plugin.wit",
        "tests/example/event.json",
    ] {
        assert!(dir.join(file).is_file(), "{lang} {kind}: no {file}");
    }
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains("Build with:"), "{readme}");
    let pipeline: serde_json::Value =
        toml::from_str(&std::fs::read_to_string(dir.join("pipeline.toml")).unwrap()).unwrap();
    let wrong = crate::schema::errors(&crate::schema::validator(), &pipeline);
    assert!(wrong.is_empty(), "{lang} {kind}: pipeline.toml: {wrong:?}");
    if lang == "rust" {
        rust_plugin_uses_its_own_copy_of_the_sdk(&dir, kind);
    }
    let built = sluice(scratch, &["build", &name]);
    let stdout = ok(&built, "sluice build");
    assert!(stdout.contains(&format!("build/{name}.wasm")), "{stdout}");
    let tested = sluice(scratch, &["test", &name]);
    let stdout = ok(&tested, "sluice test");
    assert!(stdout.contains("1 passed, 0 failed"), "{stdout}");
    println!(
        "{lang} {kind}: new → build → test passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Change what the case expects: the test fails and shows a diff.
    let summary = dir.join("tests/example/expected/summary.txt");
    let text = std::fs::read_to_string(&summary).unwrap();
    std::fs::write(&summary, text.replace("records in: 3", "records in: 4")).unwrap();
    let tested = sluice(scratch, &["test", &name]);
    let stdout = String::from_utf8_lossy(&tested.stdout);
    assert!(!tested.status.success(), "{stdout}");
    assert!(stdout.contains("FAILED"), "{stdout}");
    assert!(stdout.contains("-records in: 4"), "{stdout}");
    assert!(stdout.contains("+records in: 3"), "{stdout}");
    assert!(stdout.contains("0 passed, 1 failed"), "{stdout}");
}

/// A Rust plugin from `sluice new` is written with the SDK's export macro
/// and depends on nothing outside its folder but crates.io: the SDK is in
/// `sluice-plugin/`, written from inside the `sluice` binary.
fn rust_plugin_uses_its_own_copy_of_the_sdk(dir: &Path, kind: &str) {
    let source = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    assert!(
        source.contains(&format!("sluice_plugin::export_{kind}!(Plugin);")),
        "{source}"
    );
    assert!(!source.contains("wit_bindgen"), "{source}");
    for file in [
        "sluice-plugin/Cargo.toml",
        "sluice-plugin/src/lib.rs",
        "sluice-plugin/src/scan.rs",
        "sluice-plugin/src/heap.rs",
        "sluice-plugin/wit/plugin.wit",
    ] {
        assert!(dir.join(file).is_file(), "{kind}: no {file}");
    }
    // The build turns on wasm's SIMD, for the SDK's JSON scanning.
    let config = std::fs::read_to_string(dir.join(".cargo/config.toml")).unwrap();
    assert!(config.contains("+simd128"), "{config}");
    for manifest in ["Cargo.toml", "sluice-plugin/Cargo.toml"] {
        let text = std::fs::read_to_string(dir.join(manifest)).unwrap();
        assert!(
            !text.contains(".."),
            "{manifest} reaches outside the plugin:\n{text}"
        );
        assert!(!text.contains("workspace = true"), "{manifest}:\n{text}");
    }
    the_sdk_is_the_packaged_crate(dir);
}

/// What `sluice new` writes as the SDK is `plugins/sdk` as `cargo package`
/// makes it: the same sources and WIT byte for byte, and the manifest's
/// dependencies and features, with the workspace's settings resolved.
fn the_sdk_is_the_packaged_crate(dir: &Path) {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/sdk");
    let mut sources: Vec<_> = std::fs::read_dir(sdk.join("src"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    sources.push(sdk.join("wit/plugin.wit"));
    for source in sources {
        let inner = source.strip_prefix(&sdk).unwrap();
        let written = dir.join("sluice-plugin").join(inner);
        assert_eq!(
            std::fs::read(&written).unwrap_or_default(),
            std::fs::read(&source).unwrap(),
            "{} differs from {}",
            written.display(),
            source.display()
        );
    }
    let manifest = |path: &Path| -> toml::Table {
        toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let ours = manifest(&sdk.join("Cargo.toml"));
    let written = manifest(&dir.join("sluice-plugin/Cargo.toml"));
    for table in ["dependencies", "features"] {
        let names = |t: &toml::Table| -> Vec<String> {
            t[table].as_table().unwrap().keys().cloned().collect()
        };
        assert_eq!(names(&written), names(&ours), "[{table}]");
    }
    let workspace = manifest(&sdk.join("../../Cargo.toml"));
    for key in [
        "version",
        "edition",
        "rust-version",
        "license",
        "repository",
        "description",
    ] {
        let field = &ours["package"][key];
        let expected = match field.get("workspace") {
            Some(_) => &workspace["workspace"]["package"][key],
            None => field,
        };
        assert_eq!(written["package"].get(key), Some(expected), "package.{key}");
    }
    let version = |t: &toml::Value| t.get("version").and_then(|v| v.as_str()).map(str::to_owned);
    for (name, dep) in written["dependencies"].as_table().unwrap() {
        let expected = match ours["dependencies"][name].get("workspace") {
            Some(_) => version(&workspace["workspace"]["dependencies"][name]),
            None => version(&ours["dependencies"][name]),
        };
        assert_eq!(version(dep), expected, "dependency {name}");
    }
}

#[test]
fn rust_loop() {
    loop_for("rust");
}

#[test]
fn javascript_loop() {
    loop_for("js");
}

#[test]
fn python_loop() {
    loop_for("python");
}

#[test]
fn a_plugin_folder_without_a_manifest_is_named_in_the_error() {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("author-no-manifest");
    std::fs::create_dir_all(&scratch).unwrap();
    let out = sluice(&scratch, &["build", "."]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("plugin.toml"), "{stderr}");
}
