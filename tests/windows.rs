//! Tumbling windows and `aggregate` steps: the Lambda contract
//! (`KinesisTimeWindowEvent` in, `state` and `batchItemFailures` out) through
//! the same entry point as the function, and `sluice consume
//! --tumbling-window` against moto's Kinesis with a fault in the middle of a
//! window: summed over every window, the counts are exactly the input's.
//!
//! Run with: `cargo test -p sluice-cli --test all windows::` (moto from `tests/run`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use host::app::App;
use serde_json::{Value, json};

use crate::support::{Dir, Moto, kinesis, sluice_against as sluice};

/// A pipeline: a `flaky` step (fails its first marked event with `retry`),
/// then `count-by` on `page` into `counts.jsonl`; every record to
/// `archive.jsonl`.
fn pipeline(dir: &Path, extra_step_settings: &str) -> std::path::PathBuf {
    let config = dir.join("pipeline.toml");
    std::fs::write(
        &config,
        format!(
            r#"[[steps]]
name = "flaky"
kind = "transform"
plugin = "{hostile}"
config = {{ mode = "flaky", count = 1, marker = "FAULT" }}
on_error = "retry"

[[steps]]
name = "pages"
kind = "aggregate"
plugin = "{count_by}"
config = {{ field = "page" }}
destinations = ["counts"]
{extra_step_settings}

[destinations.archive]
type = "file"
path = "archive.jsonl"

[destinations.counts]
type = "file"
path = "counts.jsonl"

[routing]
default = "archive"
"#,
            hostile = crate::test_plugins::HOSTILE,
            count_by = crate::test_plugins::COUNT_BY,
        ),
    )
    .unwrap();
    config
}

/// One Lambda Kinesis record.
fn record(seq: u64, data: &Value) -> Value {
    use base64::Engine as _;
    json!({
        "eventID": format!("shardId-000000000000:{seq}"),
        "eventSource": "aws:kinesis",
        "kinesis": {
            "partitionKey": "k",
            "sequenceNumber": seq.to_string(),
            "data": base64::engine::general_purpose::STANDARD.encode(data.to_string()),
            "approximateArrivalTimestamp": 1_765_000_000.0,
            "kinesisSchemaVersion": "1.0"
        }
    })
}

/// A `KinesisTimeWindowEvent` of `records` in the window, with `state`.
fn window_event(records: &[Value], state: &Value, last: bool) -> Vec<u8> {
    json!({
        "Records": records,
        "window": {"start": "2025-12-06T05:46:40Z", "end": "2025-12-06T05:47:40Z"},
        "state": state,
        "shardId": "shardId-000000000000",
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/clicks",
        "isFinalInvokeForWindow": last,
        "isWindowTerminatedEarly": false
    })
    .to_string()
    .into_bytes()
}

/// The counts of every window output in `file`, summed.
fn summed_counts(file: &Path) -> BTreeMap<String, u64> {
    let mut sum = BTreeMap::new();
    for line in std::fs::read_to_string(file).unwrap_or_default().lines() {
        let doc: Value = serde_json::from_str(line).unwrap();
        assert_eq!(doc["field"], "page", "{line}");
        assert!(doc["window"]["start"].is_string(), "{line}");
        for (page, n) in doc["counts"].as_object().unwrap() {
            *sum.entry(page.clone()).or_default() += n.as_u64().unwrap();
        }
    }
    sum
}

#[tokio::test]
async fn a_window_folds_each_record_once_across_a_retry_and_emits_on_its_last_invocation() {
    let dir = Dir::new("windows-contract");
    let mut app = App::load(pipeline(&dir.0, "").to_str().unwrap())
        .await
        .unwrap();
    let page = |p: &str| json!({"page": p});
    // Invocation 1: three records, from an empty state.
    let first = [
        record(1, &page("/a")),
        record(2, &page("/b")),
        record(3, &page("/a")),
    ];
    let one = host::lambda::invoke(&mut app, &window_event(&first, &json!(null), false), None)
        .await
        .unwrap();
    assert!(one.response.batch_item_failures.is_empty());
    let state = one.state.expect("a window's response carries its state");
    assert_eq!(state["pages"], r#"{"/a":2,"/b":1}"#);
    // Invocation 2: the marked record fails with `retry` in the middle of
    // the batch: it and what follows are not folded (Lambda sends them again).
    let second = [
        record(4, &page("/c")),
        record(5, &json!({"page": "/a", "note": "FAULT"})),
        record(6, &page("/b")),
    ];
    let two = host::lambda::invoke(&mut app, &window_event(&second, &json!(state), false), None)
        .await
        .unwrap();
    let failures: Vec<_> = two
        .response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap())
        .collect();
    assert_eq!(failures, ["5"]);
    let state = two.state.unwrap();
    assert_eq!(
        state["pages"], r#"{"/a":2,"/b":1,"/c":1}"#,
        "only record 4 folded"
    );
    // Lambda resends from record 5 with the state it got back.
    let again = [
        record(5, &json!({"page": "/a", "note": "FAULT"})),
        record(6, &page("/b")),
    ];
    let three = host::lambda::invoke(&mut app, &window_event(&again, &json!(state), false), None)
        .await
        .unwrap();
    assert!(three.response.batch_item_failures.is_empty());
    let state = three.state.unwrap();
    assert_eq!(state["pages"], r#"{"/a":3,"/b":2,"/c":1}"#);
    assert!(
        !dir.0.join("counts.jsonl").exists(),
        "nothing emitted before the window ends"
    );
    // The last invocation: no records, the final state; the outputs go out.
    let last = host::lambda::invoke(&mut app, &window_event(&[], &json!(state), true), None)
        .await
        .unwrap();
    assert!(last.response.batch_item_failures.is_empty());
    let counts = std::fs::read_to_string(dir.0.join("counts.jsonl")).unwrap();
    let doc: Value = serde_json::from_str(counts.trim()).unwrap();
    assert_eq!(
        doc,
        json!({"window": {"start": "2025-12-06T05:46:40Z", "end": "2025-12-06T05:47:40Z"},
               "field": "page", "counts": {"/a": 3, "/b": 2, "/c": 1}})
    );
    // Every record reached the archive once (record 6 was held back, not sent, in invocation 2).
    let archived = std::fs::read_to_string(dir.0.join("archive.jsonl")).unwrap();
    assert_eq!(archived.lines().count(), 6, "{archived}");
}

#[tokio::test]
async fn a_state_over_its_share_fails_the_call_s_records_and_keeps_the_state() {
    let dir = Dir::new("windows-state-cap");
    let config = pipeline(&dir.0, "limits = { max_state_bytes = 40 }");
    let mut app = App::load(config.to_str().unwrap()).await.unwrap();
    let records: Vec<Value> = (1..=6)
        .map(|n| record(n, &json!({"page": format!("/a-rather-long-page-name-{n}")})))
        .collect();
    let state = json!({"pages": r#"{"/x":1}"#});
    let out = host::lambda::invoke(&mut app, &window_event(&records, &state, false), None)
        .await
        .unwrap();
    // The records fail under the step's policy (retry: from the first).
    let failures: Vec<_> = out
        .response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap())
        .collect();
    assert_eq!(failures, ["1"]);
    assert_eq!(
        out.state.unwrap()["pages"],
        r#"{"/x":1}"#,
        "the state is kept as it was"
    );
    let failed = &out.report.outcome.failures[0];
    assert!(
        failed.reason.contains("max_state_bytes"),
        "{}",
        failed.reason
    );
    assert_eq!(failed.stage, "pages");
}

#[test]
fn an_aggregate_step_needs_destinations_and_states_fit_in_lambda_s_megabyte() {
    let dir = Dir::new("windows-config");
    let write = |steps: &str| {
        let config = dir.0.join("pipeline.toml");
        std::fs::write(
            &config,
            format!("{steps}\n[destinations.out]\ntype = \"stdout\"\n",),
        )
        .unwrap();
        host::config::load(&config)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let step = |extra: &str| {
        format!(
            "[[steps]]\nname = \"a\"\nkind = \"aggregate\"\nplugin = \"{}\"\n{extra}\n",
            crate::test_plugins::COUNT_BY
        )
    };
    let e = write(&step(""));
    assert!(
        e.contains("steps[0] (`a`).destinations") && e.contains("required"),
        "{e}"
    );
    let e = write(&step("destinations = [\"nowhere\"]"));
    assert!(e.contains("`nowhere`"), "{e}");
    let e = write(&step(
        "destinations = [\"out\"]\nlimits = { max_state_bytes = 2000000 }",
    ));
    assert!(e.contains("1000000 bytes of window state"), "{e}");
    let e = write(&format!(
        "[[steps]]\nname = \"f\"\nkind = \"filter\"\nplugin = \"{}\"\ndestinations = [\"out\"]\n",
        crate::test_plugins::FILTER_FIELD
    ));
    assert!(
        e.contains("only an `aggregate` step has destinations"),
        "{e}"
    );
}

fn ok(mut c: Command) -> String {
    let out = c.output().expect("running sluice");
    assert!(
        out.status.success(),
        "sluice failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_with_tumbling_windows_counts_every_record_once_despite_a_fault() {
    let moto = Moto::start();
    let dir = Dir::new("windows-consume");
    let config = pipeline(&dir.0, "");
    kinesis(&moto)
        .await
        .create_stream()
        .stream_name("clicks")
        .shard_count(2)
        .send()
        .await
        .unwrap();
    // Three bursts, apart in time, so that they fall in several 1 s windows;
    // one record in the middle is marked for the flaky step.
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for burst in 0..3 {
        let lines: Vec<String> = (0..100)
            .map(|i| {
                let n = burst * 100 + i;
                let page = format!("/p{}", n % 7);
                *expected.entry(page.clone()).or_default() += 1;
                let note = if n == 150 { "FAULT" } else { "" };
                json!({"page": page, "n": n, "user": format!("u{}", n % 5), "note": note})
                    .to_string()
            })
            .collect();
        let input = dir.0.join(format!("burst-{burst}.jsonl"));
        std::fs::write(&input, lines.join("\n") + "\n").unwrap();
        let mut put = sluice(&moto, &dir.0);
        put.args([
            "put",
            "--stream",
            "clicks",
            "--partition-key-field",
            "user",
            "--input",
        ])
        .arg(&input);
        ok(put);
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    let mut consume = sluice(&moto, &dir.0);
    consume
        .args(["consume", "--stream", "clicks", "--config"])
        .arg(&config)
        .args([
            "--tumbling-window",
            "1",
            "--batch-size",
            "40",
            "--exit-when-idle",
            "--poll-interval",
            "0.1",
            "--quiet",
        ]);
    let out = ok(consume);
    assert!(out.contains("consumed 300 records"), "{out}");
    assert!(
        !out.contains("(0 with records to retry"),
        "the fault happened: {out}"
    );
    let windows: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("tumbling windows ended: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("the windows ended");
    assert!(windows >= 4, "two shards, several windows each: {out}");
    assert_eq!(
        summed_counts(&dir.0.join("counts.jsonl")),
        expected,
        "summed over every window, each record counted once"
    );
    let archived = std::fs::read_to_string(dir.0.join("archive.jsonl")).unwrap();
    let seen: std::collections::BTreeSet<u64> = archived
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seen.len(), 300, "every record archived at least once");
}
