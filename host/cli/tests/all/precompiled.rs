//! Precompiled plugins: an artifact from `sluice precompile` loads and runs
//! like its component; any artifact this build did not make for this machine
//! and these settings, or that the config does not pin, is refused with a
//! message naming the step, the plugin and the reason.

use std::path::Path;

use crate::test_plugins::FILTER_FIELD;
use host::config::{self, Plan};
use host::event;
use host::pipeline::Pipeline;
use host::plugin::{Precompiler, Runtime, RuntimeOptions};
use sha2::{Digest, Sha256};

use crate::support::Dir;

const SETTINGS: &str = "config = { field = \"bot\", equals = true, negate = true }";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `artifact` into `dir` and a one-step filter config naming it,
/// pinned with `pin` (`None`: unpinned).
fn plan(dir: &Path, artifact: &[u8], pin: Option<String>) -> Plan {
    std::fs::write(dir.join("filter.cwasm"), artifact).unwrap();
    let pin = pin.map_or(String::new(), |p| format!("sha256 = \"{p}\"\n"));
    let text = format!(
        "[[steps]]\nname = \"keep-humans\"\nkind = \"filter\"\nplugin = \"filter.cwasm\"\n{SETTINGS}\n{pin}\n\
         [destinations.out]\ntype = \"stdout\"\n"
    );
    config::parse(&text, &config::Location::File(dir.join("pipeline.toml"))).unwrap()
}

fn pinned(dir: &Path, artifact: &[u8]) -> Plan {
    plan(dir, artifact, Some(hex(&Sha256::digest(artifact))))
}

fn artifact(options: RuntimeOptions, target: Option<&str>) -> Vec<u8> {
    let component = std::fs::read(FILTER_FIELD).unwrap();
    Precompiler::new(options, target)
        .unwrap()
        .precompile(&component)
        .unwrap()
}

fn load_error(plan: Plan) -> String {
    match Pipeline::load(&Runtime::new().unwrap(), plan) {
        Ok(_) => panic!("the pipeline loaded"),
        Err(e) => e.to_string(),
    }
}

fn assert_refused_as_foreign(e: &str) {
    assert!(e.contains("step `keep-humans`"), "{e}");
    assert!(e.contains("filter.cwasm"), "{e}");
    assert!(
        e.contains("is a precompiled artifact this Sluice cannot load"),
        "{e}"
    );
    assert!(e.contains("sluice precompile"), "{e}");
}

#[test]
fn a_pinned_artifact_loads_and_filters_like_its_component() {
    let dir = Dir::new("precompiled-ok");
    let mut pipeline = Pipeline::load(
        &Runtime::new().unwrap(),
        pinned(&dir.0, &artifact(RuntimeOptions::default(), None)),
    )
    .unwrap();
    let event = br#"{"Records":[
        {"kinesis":{"partitionKey":"a","sequenceNumber":"1","data":"eyJib3QiOnRydWV9","approximateArrivalTimestamp":1.0},"eventID":"shardId-000000000000:1"},
        {"kinesis":{"partitionKey":"b","sequenceNumber":"2","data":"eyJib3QiOmZhbHNlfQ==","approximateArrivalTimestamp":1.0},"eventID":"shardId-000000000000:2"}]}"#;
    let outcome = pipeline.run(event::decode(event, "test").unwrap());
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    let kept: Vec<_> = outcome
        .routed
        .iter()
        .map(|r| r.record.sequence_number.as_str())
        .collect();
    assert_eq!(kept, ["2"], "the bot is dropped, the human kept");
}

#[test]
fn an_unpinned_artifact_is_refused() {
    let dir = Dir::new("precompiled-unpinned");
    let e = load_error(plan(
        &dir.0,
        &artifact(RuntimeOptions::default(), None),
        None,
    ));
    assert!(e.contains("step `keep-humans`"), "{e}");
    assert!(
        e.contains(
            "is precompiled native code, and Sluice only loads it when the step pins its `sha256`"
        ),
        "{e}"
    );
}

#[test]
fn a_tampered_artifact_fails_its_pin() {
    let dir = Dir::new("precompiled-tampered");
    let good = artifact(RuntimeOptions::default(), None);
    let pin = hex(&Sha256::digest(&good));
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let e = load_error(plan(&dir.0, &bad, Some(pin)));
    assert!(e.contains("step `keep-humans`"), "{e}");
    assert!(e.contains("but the config pins"), "{e}");
}

#[test]
fn an_artifact_made_with_other_engine_settings_is_refused() {
    // Without epoch interruption the code has no time-limit checks: loading
    // it would silently lose `limits.timeout_ms`.
    let dir = Dir::new("precompiled-settings");
    let e = load_error(pinned(
        &dir.0,
        &artifact(
            RuntimeOptions {
                time_limits: false,
                ..RuntimeOptions::default()
            },
            None,
        ),
    ));
    assert_refused_as_foreign(&e);
    assert!(e.contains("without epoch interruption"), "{e}");
}

#[test]
fn an_artifact_for_another_architecture_is_refused() {
    let dir = Dir::new("precompiled-arch");
    let other = if cfg!(target_arch = "aarch64") {
        "x86_64-unknown-linux-gnu"
    } else {
        "aarch64-unknown-linux-gnu"
    };
    let e = load_error(pinned(
        &dir.0,
        &artifact(RuntimeOptions::default(), Some(other)),
    ));
    assert_refused_as_foreign(&e);
    assert!(e.contains("compiled for architecture"), "{e}");
}

#[test]
fn an_artifact_from_another_wasmtime_version_is_refused() {
    let dir = Dir::new("precompiled-version");
    let mut bytes = artifact(RuntimeOptions::default(), None);
    // The artifact records the Sluice and wasmtime versions that made it;
    // make it claim an older wasmtime patch release (same length, so the
    // rest of the file is intact). wasmtime alone would accept it: it only
    // compares major versions.
    let ours = host::plugin::ARTIFACT_VERSION;
    assert!(ours.contains(&format!("/wasmtime-{}", host::plugin::WASMTIME_VERSION)));
    let at = bytes
        .windows(ours.len())
        .position(|w| w == ours.as_bytes())
        .expect("the artifact records its version");
    let theirs = ours.replace(host::plugin::WASMTIME_VERSION, "48.0.0");
    assert_eq!(theirs.len(), ours.len());
    bytes[at..at + ours.len()].copy_from_slice(theirs.as_bytes());
    let e = load_error(pinned(&dir.0, &bytes));
    assert_refused_as_foreign(&e);
    assert!(
        e.contains(&format!(
            "Module was compiled with incompatible version '{theirs}'"
        )),
        "{e}"
    );
}

#[test]
fn sluice_precompile_writes_a_pinned_config_that_runs_like_the_original() {
    let dir = Dir::new("precompiled-cli");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let example = root.join("examples/clickstream");
    let out = dir.0.join("build");
    let stdout = crate::support::sluice_precompile(&example.join("pipeline.toml"), &out);
    assert!(
        stdout.contains("loaded it back: every plugin starts"),
        "{stdout}"
    );
    let text = std::fs::read_to_string(out.join("pipeline.toml")).unwrap();
    assert_eq!(text.matches("sha256 = ").count(), 3, "{text}");
    assert!(text.contains("plugin = \"plugins/redact.cwasm\""), "{text}");

    // The same event through the original and the precompiled pipeline.
    let run = |config: &Path| {
        let event = example.join("events/example-kinesis-event.json");
        let batch = event::decode(&std::fs::read(event).unwrap(), "event").unwrap();
        let plan = config::load(config).unwrap();
        let mut pipeline = Pipeline::load(&Runtime::new().unwrap(), plan).unwrap();
        let outcome = pipeline.run(batch);
        outcome
            .routed
            .into_iter()
            .map(|r| (r.record.data, r.destinations))
            .collect::<Vec<_>>()
    };
    let original = run(&example.join("pipeline.toml"));
    assert!(!original.is_empty());
    assert_eq!(run(&out.join("pipeline.toml")), original);
}

#[test]
fn precompile_copies_local_tables_beside_the_config_it_writes() {
    let dir = Dir::new("precompile-tables");
    let example = crate::support::root().join("examples/clickstream-enrich/pipeline.toml");
    let printed = crate::support::sluice_precompile(&example, &dir.0);
    assert!(
        printed.contains("loaded it back: every plugin starts"),
        "{printed}"
    );
    let written = std::fs::read_to_string(dir.0.join("pipeline.toml")).unwrap();
    assert!(
        written.contains("source = \"tables/customers.jsonl\""),
        "{written}"
    );
    assert_eq!(
        std::fs::read(dir.0.join("tables/customers.jsonl")).unwrap(),
        std::fs::read(
            crate::support::root().join("examples/clickstream-enrich/tables/customers.jsonl")
        )
        .unwrap()
    );
}
