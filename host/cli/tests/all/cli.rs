//! The `sluice` binary, run as a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::test_plugins::{FILTER_FIELD, REDACT, ROUTE_FIELD};

use crate::support::Dir;

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .env("SLUICE_LOG", "warn")
        .output()
        .expect("running sluice")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/clickstream")
}

/// The example pipeline, with absolute plugin paths and outputs under `dir`.
fn example_config(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(examples().join("pipeline.toml"))
        .unwrap()
        .replace("../../target/plugins/filter_field.wasm", FILTER_FIELD)
        .replace("../../target/plugins/redact.wasm", REDACT)
        .replace("../../target/plugins/route_field.wasm", ROUTE_FIELD);
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn run_prints_a_summary_and_writes_outputs() {
    let dir = Dir::new("cli-run");
    let config = example_config(&dir.0);
    let event = examples().join("events/example-kinesis-event.json");
    let out = sluice(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--event",
        event.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    assert!(stdout.starts_with("records in: 8\n"), "{stdout}");
    assert!(
        stdout.contains("drop-bots   filter     in     8  out     6  dropped     2"),
        "{stdout}"
    );
    assert!(stdout.contains("outputs delivered: 13"), "{stdout}");

    let orders = std::fs::read_to_string(dir.0.join("out/orders.jsonl")).unwrap();
    assert_eq!(orders.lines().count(), 3, "{orders}");
    assert!(
        !orders.contains("@example.com"),
        "PII must be redacted: {orders}"
    );
    let archive = std::fs::read_to_string(dir.0.join("out/archive.jsonl")).unwrap();
    assert_eq!(archive.lines().count(), 7);
    assert!(
        archive.contains(r#""shard_id":"shardId-000000000001""#),
        "{archive}"
    );
}

#[test]
fn check_loads_every_plugin_without_running() {
    let dir = Dir::new("cli-check");
    let config = example_config(&dir.0);
    let out = sluice(&["check", "--config", config.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("3 plugins loaded"), "{stdout}");
    assert!(!dir.0.join("out").exists(), "check must not write outputs");
}

#[test]
fn a_missing_config_file_is_named() {
    let out = sluice(&["check", "--config", "/nonexistent/pipeline.toml"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot read pipeline config `/nonexistent/pipeline.toml`"),
        "{stderr}"
    );
}

#[test]
fn a_malformed_event_is_named_with_its_position() {
    let dir = Dir::new("cli-bad-event");
    let config = example_config(&dir.0);
    let event = dir.0.join("broken.json");
    std::fs::write(&event, "{\"Records\": [{\"kinesis\": ").unwrap();
    let out = sluice(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--event",
        event.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("broken.json: not a Kinesis event"),
        "{stderr}"
    );
    assert!(stderr.contains("line 1 column"), "{stderr}");
}

#[test]
fn failed_records_make_run_exit_2_and_are_listed() {
    let dir = Dir::new("cli-failed");
    let config = example_config(&dir.0);
    let event = examples().join("tests/not-json-payload/event.json");
    let out = sluice(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--event",
        event.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .contains("[invalid] drop-bots (filter_field.wasm): payload is not the expected JSON"),
        "{stdout}"
    );
}

#[test]
fn sluice_test_runs_the_fixture_cases() {
    let out = sluice(&["test", examples().to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

/// `sluice lambda` with `SLUICE_CONFIG=config`: whether it succeeded, and
/// what it wrote (stdout and stderr).
fn lambda_cold_start(config: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("lambda")
        .env("SLUICE_CONFIG", config)
        .env("SLUICE_LOG", "warn")
        // Never reached: the cold start fails first.
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .output()
        .expect("running sluice lambda");
    (
        out.status.success(),
        format!("{}{}", text(&out.stdout), text(&out.stderr)),
    )
}

/// `sluice lambda` refuses, at cold start, a destination that cannot work in
/// Lambda (the example pipeline writes files), naming it.
#[test]
fn lambda_refuses_file_and_stdout_destinations_at_cold_start() {
    let dir = Dir::new("cli-lambda-local");
    let (ok, all) = lambda_cold_start(&example_config(&dir.0));
    assert!(!ok, "{all}");
    assert!(
        all.contains("destinations.analytics: a `file` destination cannot work in AWS Lambda"),
        "{all}"
    );
    let stdout_config = dir.0.join("stdout.toml");
    std::fs::write(&stdout_config, "[destinations.out]\ntype = \"stdout\"\n").unwrap();
    let (ok, all) = lambda_cold_start(&stdout_config);
    assert!(!ok, "{all}");
    assert!(
        all.contains("destinations.out: a `stdout` destination cannot work in AWS Lambda"),
        "{all}"
    );
}

/// A person's terminal: without `-v`, `sluice run` prints the summary and
/// nothing on stderr (no info logs, no JSON, even when stderr is a pipe);
/// `-v` adds the info logs as text.
#[test]
fn run_shows_info_logs_only_with_verbose() {
    let dir = Dir::new("cli-verbose");
    let config = example_config(&dir.0);
    let event = examples().join("events/example-kinesis-event.json");
    let run = |verbose: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        if verbose {
            cmd.arg("-v");
        }
        cmd.args(["run", "--config", config.to_str().unwrap()])
            .args(["--event", event.to_str().unwrap()])
            .env_remove("SLUICE_LOG")
            .env_remove("SLUICE_LOG_FORMAT")
            .env("SLUICE_CACHE_DIR", "")
            .output()
            .expect("running sluice")
    };
    let quiet = run(false);
    assert!(quiet.status.success(), "{}", text(&quiet.stderr));
    assert_eq!(text(&quiet.stderr), "", "stderr without -v");
    assert!(text(&quiet.stdout).starts_with("records in: 8\n"));
    let verbose = run(true);
    let stderr = text(&verbose.stderr);
    assert!(stderr.contains("plugin loaded"), "{stderr}");
    assert!(
        !stderr.trim_start().starts_with('{'),
        "text, not JSON: {stderr}"
    );
}
