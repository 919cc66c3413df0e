//! Plugins in C, Python and JavaScript, on the same WIT as the Rust ones.
//!
//! Every plugin here is built from source by `sluice build`'s library
//! ([`sluice_cli::author::build`]) with the real toolchains: clang + wasi-libc +
//! the preview1 adapter, componentize-py and componentize-js (`tests/run`
//! installs them). Loading them is fast after the first time thanks to the
//! compilation cache.
//!
//! - Contract parity: the clickstream pipeline with its plugins swapped for
//!   `examples/plugins/{c-filter-field,python-redact,js-route-field}` passes
//!   the same golden cases.
//! - Bad input: the wrong world, another version of the WIT package, a
//!   JavaScript exception, a Python exception, a C trap and a C abort, each
//!   with a clear error naming the plugin, the failure class and the records.
//! - The sandbox: a Python plugin that reads the environment, files and the
//!   network sees nothing; what plugins print reaches the host's logs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use base64::Engine as _;
use host::app::App;
use host::config::{self, Format, Location};
use host::destination::Destination;
use host::destination::memory::MemoryDestination;
use host::event;
use host::outcome::{FailureClass, RecordFailure};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Builds the plugin folder (once per test process) and returns its component.
fn built(dir: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<Vec<(String, PathBuf)>>> = OnceLock::new();
    let mut done = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, path)) = done.iter().find(|(d, _)| d == dir) {
        return path.clone();
    }
    let built = sluice_cli::author::build(&root().join(dir)).unwrap_or_else(|e| {
        panic!("building {dir} failed (run tests/run to install the toolchains): {e:#}")
    });
    done.push((dir.to_owned(), built.component.clone()));
    built.component
}

/// A one-step pipeline running `plugin` as a `kind` step, with an `out` destination.
fn app(kind: &str, plugin: &Path, settings: &str) -> anyhow::Result<(App, MemoryDestination)> {
    let text = format!(
        "[[steps]]\nname = \"step\"\nkind = \"{kind}\"\nplugin = {:?}\nconfig = {settings}\n\n\
         [destinations.out]\ntype = \"stdout\"\n",
        plugin.display().to_string()
    );
    let plan = config::parse(&text, &Location::File("/tmp/languages.toml".into()))?;
    let destination = MemoryDestination::new("out", Format::Raw);
    let app = App::with_destinations(plan, vec![Destination::from(destination.clone())])?;
    Ok((app, destination))
}

/// One record per payload on one shard; record `i` has sequence number `<i>00`.
fn batch_of(payloads: &[&str]) -> event::Batch {
    event::decode(crate::support::event_json(payloads).as_bytes(), "e").unwrap()
}

/// Runs one batch of `payloads` and returns its failures.
fn run(app: &mut App, payloads: &[&str]) -> Vec<RecordFailure> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(app.process(batch_of(payloads), None))
        .outcome
        .failures
}

// ---------------------------------------------------------------- parity

#[test]
fn polyglot_clickstream_passes_the_same_cases_as_rust() {
    for dir in [
        "examples/plugins/c-filter-field",
        "examples/plugins/python-redact",
        "examples/plugins/js-route-field",
    ] {
        built(dir);
    }
    let pipeline = root().join("examples/clickstream");
    let variant = pipeline.join("polyglot.toml");
    let results = host::fixture::run_variant(&pipeline, &variant).unwrap();
    let cases = std::fs::read_dir(pipeline.join("tests")).unwrap().count();
    assert_eq!(results.len(), cases, "every case ran");
    for case in &results {
        assert!(
            case.passed(),
            "{} differs from the Rust plugins:\n{}",
            case.dir.display(),
            case.mismatches
                .iter()
                .map(|(f, d)| format!("{f}\n{d}"))
                .collect::<String>()
        );
    }
    // Same plugins, but routing purchases elsewhere: the comparison catches it.
    let broken = std::env::temp_dir().join(format!("sluice-broken-{}.toml", std::process::id()));
    let text = std::fs::read_to_string(&variant)
        .unwrap()
        .replace(
            "\"../plugins/",
            &format!("\"{}/examples/plugins/", root().display()),
        )
        .replace(
            "purchase = [\"orders\", \"archive\"]",
            "purchase = [\"archive\"]",
        );
    std::fs::write(&broken, text).unwrap();
    let results = host::fixture::run_variant(&pipeline, &broken).unwrap();
    std::fs::remove_file(&broken).ok();
    let failed: Vec<_> = results.iter().filter(|c| !c.passed()).collect();
    assert!(
        failed
            .iter()
            .any(|c| c.dir.ends_with("purchase-split-into-items")),
        "a variant that routes differently must fail: {results:?}"
    );
}

#[test]
fn polyglot_clickstream_deploys_precompiled() {
    for dir in [
        "examples/plugins/c-filter-field",
        "examples/plugins/python-redact",
        "examples/plugins/js-route-field",
    ] {
        built(dir);
    }
    let pipeline = root().join("examples/clickstream");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("polyglot-precompiled");
    let _ = std::fs::remove_dir_all(&out);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = rt
        .block_on(sluice_cli::precompile::precompile(
            &pipeline.join("polyglot.toml").display().to_string(),
            &out,
            None,
        ))
        .unwrap();
    assert!(report.verified, "loaded back: every plugin starts");
    let config = std::fs::read_to_string(&report.config).unwrap();
    assert_eq!(config.matches(".cwasm\"").count(), 3, "{config}");
    assert_eq!(config.matches("sha256 = ").count(), 3, "{config}");
    // The precompiled pipeline passes the cases too.
    for case in host::fixture::run_variant(&pipeline, &report.config).unwrap() {
        assert!(
            case.passed(),
            "{}: {:?}",
            case.dir.display(),
            case.mismatches
        );
    }
}

// ---------------------------------------------------------------- bad input

#[test]
fn a_plugin_for_another_world_is_refused_at_load_naming_it() {
    let route = built("examples/plugins/js-route-field");
    let err = app("filter", &route, "{}").err().expect("refused");
    let msg = format!("{err:#}");
    assert!(msg.contains("step `step` is a `filter` step"), "{msg}");
    assert!(msg.contains("js-route-field.wasm"), "{msg}");
    assert!(msg.contains("sluice:plugin/filter"), "{msg}");
}

/// A copy of the hostile C plugin built against `sluice:plugin@<version>`.
fn c_plugin_for_wit(version: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-wit-{version}-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("wit")).unwrap();
    for file in ["plugin.toml", "hostile.c"] {
        std::fs::copy(
            root().join("tests/plugins/hostile-c").join(file),
            dir.join(file),
        )
        .unwrap();
    }
    let wit = sluice_cli::author::WIT.replace(
        "package sluice:plugin@0.1.3;",
        &format!("package sluice:plugin@{version};"),
    );
    assert_ne!(wit, sluice_cli::author::WIT);
    std::fs::write(dir.join("wit/plugin.wit"), wit).unwrap();
    sluice_cli::author::build(&dir).unwrap().component
}

#[test]
fn a_plugin_for_another_wit_version_is_refused_naming_both_versions() {
    for version in ["0.2.0", "1.0.0", "0.0.9"] {
        let plugin = c_plugin_for_wit(version);
        let err = app("filter", &plugin, "{}").err().expect("refused");
        let msg = format!("{err:#}");
        assert!(msg.contains("hostile-c.wasm"), "{msg}");
        assert!(
            msg.contains(&format!("sluice:plugin@{version}"))
                && msg.contains("sluice:plugin@0.1.3"),
            "names the plugin's and the host's WIT versions: {msg}"
        );
    }
    // An additive version, older or newer, is served by the 0.1 host.
    for version in ["0.1.0", "0.1.1", "0.1.2", "0.1.4"] {
        let plugin = c_plugin_for_wit(version);
        let (mut app, destination) = app("filter", &plugin, "{}").unwrap();
        let failures = run(&mut app, &["a", "b"]);
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(String::from_utf8(destination.contents()).unwrap(), "a\nb\n");
    }
}

#[test]
fn javascript_and_python_plugins_read_lookup_tables() {
    let dir = std::env::temp_dir().join(format!("sluice-lang-tables-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("t.csv"), "id,tier\nu-1,gold\n").unwrap();
    for plugin in ["tests/plugins/hostile-js", "tests/plugins/hostile-py"] {
        for (granted, want) in [
            (
                "step",
                [r#"lookup: {"id":"u-1","tier":"gold"}"#, "lookup: none"],
            ),
            (
                "other",
                ["may not read table `t`", "may not read table `t`"],
            ),
        ] {
            let text = format!(
                "[[steps]]\nname = \"step\"\nkind = \"filter\"\nplugin = {:?}\n\n\
                 [[steps]]\nname = \"other\"\nkind = \"filter\"\nplugin = {:?}\n\n\
                 [tables.t]\nsource = \"t.csv\"\nkey = \"id\"\nsteps = [\"{granted}\"]\n\n\
                 [destinations.out]\ntype = \"stdout\"\n",
                built(plugin).display().to_string(),
                built(plugin).display().to_string(),
            );
            let plan = config::parse(&text, &Location::File(dir.join("p.toml"))).unwrap();
            let destination = MemoryDestination::new("out", Format::Raw);
            let mut app =
                App::with_destinations(plan, vec![Destination::from(destination)]).unwrap();
            let failures = run(&mut app, &["lookup:u-1", "lookup:u-2"]);
            assert_eq!(failures.len(), 2, "{plugin}: {failures:?}");
            for (f, want) in failures.iter().zip(want) {
                assert!(
                    f.reason.contains(want),
                    "{plugin}, granted to `{granted}`: {}",
                    f.reason
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `payloads` through a hostile plugin and returns the failures.
fn hostile(dir: &str, payloads: &[&str]) -> (Vec<RecordFailure>, String) {
    let plugin = built(dir);
    let (mut app, destination) = app("filter", &plugin, "{}").unwrap();
    let failures = run(&mut app, payloads);
    (failures, String::from_utf8(destination.contents()).unwrap())
}

/// Exactly the records at `poison` failed, with class `trap` (the host
/// isolates the records that make a call trap), each naming its sequence
/// number, the plugin, and quoting `quote` from the plugin's stderr.
fn assert_trapped(failures: &[RecordFailure], poison: &[usize], plugin: &str, quote: &str) {
    let failed: Vec<usize> = failures.iter().map(|f| f.index).collect();
    assert_eq!(failed, poison, "{failures:?}");
    for f in failures {
        assert_eq!(f.class, FailureClass::Trap, "{f:?}");
        assert_eq!(
            f.sequence_number.as_deref(),
            Some(format!("{}00", f.index).as_str())
        );
        assert_eq!(f.plugin.as_deref(), Some(plugin));
        assert!(f.reason.starts_with("plugin trapped: "), "{}", f.reason);
        assert!(
            f.reason.contains(quote),
            "quotes the plugin's stderr: {}",
            f.reason
        );
        assert!(!f.reason.contains('\n'), "one line: {}", f.reason);
    }
}

#[test]
fn a_javascript_exception_fails_its_record_as_a_trap_quoting_the_error() {
    let (failures, out) = hostile("tests/plugins/hostile-js", &["ok", "throw", "ok"]);
    assert_trapped(
        &failures,
        &[1],
        "hostile-js.wasm",
        "hostile-js threw on sequence number 100",
    );
    // Record 0 is delivered; record 2 follows the failure on its shard.
    assert_eq!(out, "ok\n");
    // Per-record failures keep their own class and sequence number.
    let (failures, out) = hostile("tests/plugins/hostile-js", &["ok", "invalid"]);
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].class, FailureClass::Invalid);
    assert_eq!(failures[0].sequence_number.as_deref(), Some("100"));
    assert_eq!(failures[0].reason, "hostile-js says this event is invalid");
    assert_eq!(out, "ok\n");
}

#[test]
fn a_python_exception_fails_its_record_as_a_trap_quoting_the_traceback() {
    let (failures, out) = hostile("tests/plugins/hostile-py", &["ok", "raise"]);
    assert_eq!(out, "ok\n");
    assert_trapped(
        &failures,
        &[1],
        "hostile-py.wasm",
        "RuntimeError: hostile-py raised on sequence number 100",
    );
    // (A failed record holds back the rest of its shard: the ok one first.)
    let (failures, out) = hostile("tests/plugins/hostile-py", &["ok", "invalid"]);
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].class, FailureClass::Invalid);
    assert_eq!(failures[0].sequence_number.as_deref(), Some("100"));
    assert_eq!(failures[0].reason, "hostile-py says this event is invalid");
    assert_eq!(out, "ok\n");
}

#[test]
fn a_c_trap_or_abort_fails_its_record_as_a_trap() {
    let (failures, out) = hostile("tests/plugins/hostile-c", &["ok", "trap"]);
    assert_trapped(&failures, &[1], "hostile-c.wasm", "");
    assert_eq!(out, "ok\n");
    assert!(
        failures[0].reason.contains("unreachable"),
        "{}",
        failures[0].reason
    );
    let (failures, _) = hostile("tests/plugins/hostile-c", &["abort", "ok"]);
    assert_trapped(
        &failures,
        &[0],
        "hostile-c.wasm",
        "hostile-c: giving up on sequence number 000",
    );
}

/// Python's `time.sleep` waits inside the host; the wait is cut at the
/// call's deadline and the call fails as timed out, within the limit + 10 %.
#[test]
fn a_python_plugin_that_sleeps_meets_its_time_limit() {
    let plugin = built("tests/plugins/hostile-py");
    let (mut app, _destination) = app("filter", &plugin, "{}").unwrap();
    let started = std::time::Instant::now();
    let failures = run(&mut app, &["sleep"]);
    let took = started.elapsed();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].class, FailureClass::Trap);
    assert!(
        failures[0].reason.contains("plugin timed out"),
        "{}",
        failures[0].reason
    );
    let limit = std::time::Duration::from_millis(2000);
    assert!(
        took <= limit * 11 / 10,
        "the call took {took:?} for a {limit:?} limit"
    );
    eprintln!("python sleep: limit {limit:?}, failed after {took:?}");
}

/// `deterministic = true`: the wall clock reads the arrival time of the
/// call's first record, and the randomness repeats when the same records
/// come again, even in a fresh instance; without it, both are real.
#[test]
fn a_deterministic_step_sees_the_records_clock_and_repeatable_randomness() {
    let plugin = built("tests/plugins/hostile-py");
    let reasons = |deterministic: bool| -> Vec<String> {
        let text = format!(
            "[[steps]]\nname = \"step\"\nkind = \"filter\"\nplugin = {:?}\non_error = \"drop\"\n\
             deterministic = {deterministic}\n\n[destinations.out]\ntype = \"stdout\"\n",
            plugin.display().to_string()
        );
        let plan = config::parse(&text, &Location::File("/tmp/languages.toml".into())).unwrap();
        let destination = MemoryDestination::new("out", Format::Raw);
        let mut app = App::with_destinations(plan, vec![Destination::from(destination)]).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let outcome = rt
            .block_on(app.process(batch_of(&["entropy", "entropy"]), None))
            .outcome;
        outcome.dropped.into_iter().map(|f| f.reason).collect()
    };
    let first = reasons(true);
    assert_eq!(first.len(), 2, "{first:?}");
    // Arrival 1.0 s: the clock reads 1,000,000,000 ns, for both records.
    for r in &first {
        assert!(r.starts_with("1000000000 "), "{r}");
    }
    // The records of one call draw on one stream: different bytes.
    assert_ne!(first[0], first[1]);
    // The same records again, in a new instance: the same values.
    assert_eq!(first, reasons(true));
    let free = reasons(false);
    assert!(!free[0].starts_with("1000000000 "), "{free:?}");
    assert_ne!(free, reasons(false), "real randomness differs");
}

#[test]
fn a_plugin_is_started_fresh_after_a_trap() {
    let plugin = built("tests/plugins/hostile-py");
    let (mut app, destination) = app("filter", &plugin, "{}").unwrap();
    let failures = run(&mut app, &["raise"]);
    assert_eq!(failures.len(), 1);
    let failures = run(&mut app, &["a", "b"]);
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(String::from_utf8(destination.contents()).unwrap(), "a\nb\n");
}

// ---------------------------------------------------------------- sandbox

#[test]
fn a_python_plugin_sees_no_environment_files_or_network() {
    // The test process has an environment; the plugin must see none of it.
    assert!(std::env::vars_os().next().is_some());
    let (failures, _) = hostile("tests/plugins/hostile-py", &["probe"]);
    assert_eq!(failures.len(), 1, "{failures:?}");
    let seen: serde_json::Value = serde_json::from_str(&failures[0].reason).unwrap();
    assert_eq!(seen["environ"], serde_json::json!({}), "{seen}");
    for path in ["/etc/passwd", "/", ".", "/proc/self/environ"] {
        let what = seen[path].as_str().unwrap();
        assert!(!what.starts_with("read "), "{path}: {what}");
    }
    assert!(
        !seen["listdir"].is_array(),
        "listing `/` must fail: {}",
        seen["listdir"]
    );
    assert_ne!(seen["socket"], "connected", "{seen}");
}

#[test]
fn a_c_plugin_sees_no_environment_or_files() {
    let (failures, _) = hostile("tests/plugins/hostile-c", &["probe"]);
    assert_eq!(failures.len(), 1, "{failures:?}");
    let seen: serde_json::Value = serde_json::from_str(&failures[0].reason).unwrap();
    assert_eq!(seen["HOME"], "(unset)", "{seen}");
    assert_ne!(seen["/etc/passwd"], "opened", "{seen}");
}

#[test]
fn a_javascript_plugin_has_no_process_environment_or_fetch() {
    let (failures, _) = hostile("tests/plugins/hostile-js", &["probe"]);
    assert_eq!(failures.len(), 1, "{failures:?}");
    let seen: serde_json::Value = serde_json::from_str(&failures[0].reason).unwrap();
    let process = seen["process"].as_str().unwrap();
    assert!(process == "no process object" || process == "{}", "{seen}");
}

#[test]
fn what_plugins_print_goes_to_the_logs_tagged_with_step_and_stream() {
    for (dir, plugin) in [
        ("tests/plugins/hostile-py", "hostile-py"),
        ("tests/plugins/hostile-js", "hostile-js"),
    ] {
        let component = built(dir);
        let scratch =
            std::env::temp_dir().join(format!("sluice-print-{plugin}-{}", std::process::id()));
        std::fs::create_dir_all(&scratch).unwrap();
        let config = scratch.join("pipeline.toml");
        std::fs::write(
            &config,
            format!(
                "[[steps]]\nname = \"printer\"\nkind = \"filter\"\nplugin = {:?}\n\n[destinations.out]\ntype = \"file\"\npath = \"out.jsonl\"\n",
                component.display().to_string()
            ),
        )
        .unwrap();
        let event = scratch.join("event.json");
        let data = base64::engine::general_purpose::STANDARD.encode("print");
        std::fs::write(
            &event,
            format!(r#"{{"Records":[{{"eventID":"shardId-000000000000:1","kinesis":{{"partitionKey":"k","data":"{data}","sequenceNumber":"1","approximateArrivalTimestamp":1.0}}}}]}}"#),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["run", "--config"])
            .arg(&config)
            .arg("--event")
            .arg(&event)
            .env("SLUICE_LOG_FORMAT", "json")
            .current_dir(&scratch)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        // JSON lines on stderr, as asked.
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        let logs: Vec<serde_json::Value> = stderr
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        for stream in ["stdout", "stderr"] {
            let line = logs
                .iter()
                .find(|l| l["fields"]["stream"] == stream)
                .unwrap_or_else(|| panic!("{plugin}: no {stream} line in the logs:\n{stderr}"));
            assert_eq!(
                line["fields"]["message"],
                format!("{plugin} writes to {stream}"),
                "{line}"
            );
            assert_eq!(line["fields"]["step"], "printer");
            assert_eq!(line["fields"]["plugin"], format!("{plugin}.wasm"));
        }
        std::fs::remove_dir_all(&scratch).ok();
    }
}
