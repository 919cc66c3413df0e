//! Recomputing from the archive and comparing pipelines: `sluice replay` of
//! an archive the `s3` destination wrote (against moto) gives the outputs
//! the original events gave; a replay stopped by Ctrl-C, then killed, then
//! resumed delivers every record, at most the killed batch twice; `sluice
//! diff` of the clickstream pipeline against a copy that keeps bots reports
//! exactly the bot records as added.
//!
//! Run with: `cargo test -p sluice-cli --test all replay::` (moto from `tests/run`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::support::{self, Dir, Moto, sluice_against};

/// The clickstream example's steps with the built plugins, then `destinations`.
fn clickstream(destinations: &str) -> String {
    let text = support::example_config("clickstream");
    let steps = &text[..text.find("[destinations.").unwrap()];
    format!("{steps}\n{destinations}")
}

/// The clickstream pipeline with every destination a file in the envelope
/// format under `out/`, so that every output carries its lineage.
const ENVELOPE_FILES: &str = r#"
[destinations.orders]
type = "file"
path = "out/orders.jsonl"
format = "envelope"

[destinations.analytics]
type = "file"
path = "out/analytics.jsonl"
format = "envelope"

[destinations.archive]
type = "file"
path = "out/archive.jsonl"
format = "envelope"

[routing]
default = "archive"
"#;

/// `n` click events over two shards (page views, purchases of one or two
/// items, and every seventh a bot), as one Kinesis event; record `i`
/// arrived at `1795334400 + i` seconds.
fn clicks(n: usize) -> Vec<u8> {
    let records: Vec<Value> = (0..n)
        .map(|i| {
            let shard = i % 2;
            let user = format!("u-{}", i % 13);
            let event = if i % 5 == 0 {
                json!({"type": "purchase", "user_id": user, "email": format!("{user}@example.com"),
                       "items": (0..=i % 2).map(|k| json!({"sku": format!("sku-{k}"), "qty": 1})).collect::<Vec<_>>()})
            } else {
                json!({"type": "page_view", "user_id": user, "url": format!("/p/{i}"),
                       "ip": "10.0.0.1", "bot": i % 7 == 0})
            };
            let data = base64::engine::general_purpose::STANDARD.encode(event.to_string());
            json!({
                "eventSource": "aws:kinesis",
                "eventID": format!("shardId-00000000000{shard}:{}", 49_000_000 + i),
                "kinesis": {"partitionKey": user, "data": data,
                            "sequenceNumber": format!("{}", 49_000_000 + i),
                            "approximateArrivalTimestamp": 1_795_334_400.0 + i as f64}
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "Records": records })).unwrap()
}

/// Splits a Kinesis event into `parts` events of consecutive records.
fn split_event(event: &[u8], parts: usize) -> Vec<Vec<u8>> {
    let v: Value = serde_json::from_slice(event).unwrap();
    let records = v["Records"].as_array().unwrap();
    records
        .chunks(records.len().div_ceil(parts))
        .map(|c| serde_json::to_vec(&json!({ "Records": c })).unwrap())
        .collect()
}

fn sluice(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.current_dir(dir)
        .env("SLUICE_LOG", "warn")
        .stdin(Stdio::null());
    c
}

fn ok(mut c: Command) -> String {
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{c:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Each `out/*.jsonl` file's lines.
fn outputs(dir: &Path) -> BTreeMap<String, Vec<String>> {
    ["orders", "analytics", "archive"]
        .into_iter()
        .map(|d| {
            let text =
                std::fs::read_to_string(dir.join(format!("out/{d}.jsonl"))).unwrap_or_default();
            (d.to_owned(), text.lines().map(str::to_owned).collect())
        })
        .collect()
}

/// Lines grouped by shard, in order: what per-shard order promises.
fn by_shard(lines: &[String]) -> BTreeMap<String, Vec<String>> {
    let mut shards: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in lines {
        let v: Value = serde_json::from_str(l).unwrap();
        shards
            .entry(v["shard_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(l.clone());
    }
    shards
}

/// What the clickstream pipeline makes of `event`, run directly.
fn expected(dir: &Path, event: &[u8]) -> BTreeMap<String, Vec<String>> {
    let run = dir.join("direct");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("pipeline.toml"), clickstream(ENVELOPE_FILES)).unwrap();
    std::fs::write(run.join("event.json"), event).unwrap();
    let mut c = sluice(&run);
    c.args(["run", "-c", "pipeline.toml", "-e", "event.json"]);
    ok(c);
    outputs(&run)
}

#[test]
fn an_s3_archive_replays_to_the_outputs_of_the_original_events() {
    let moto = Moto::start();
    let dir = Dir::new("replay-s3");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async { support::create_bucket(&moto.aws().await, "archive").await });
    let event = clicks(600);
    // The function archives every record as it came, in four invocations:
    // objects per shard and invocation, gzip envelopes.
    std::fs::write(
        dir.0.join("archive.toml"),
        r#"[destinations.raw]
type = "s3"
bucket = "archive"
key = "clicks/{yyyy}/{mm}/{dd}/{hh}/{shard}-{first_seq}-{last_seq}.jsonl.gz"
format = "envelope"
gzip = true

[routing]
default = "raw"
"#,
    )
    .unwrap();
    for (i, part) in split_event(&event, 4).iter().enumerate() {
        let file = dir.0.join(format!("event-{i}.json"));
        std::fs::write(&file, part).unwrap();
        let mut c = sluice_against(&moto, &dir.0);
        c.args(["run", "-c", "archive.toml", "-e"]).arg(&file);
        ok(c);
    }
    let keys = rt.block_on(async { support::keys(&moto.aws().await, "archive").await });
    assert!(
        keys.len() >= 8,
        "one object per shard and invocation: {keys:?}"
    );

    std::fs::write(dir.0.join("pipeline.toml"), clickstream(ENVELOPE_FILES)).unwrap();
    let mut c = sluice_against(&moto, &dir.0);
    c.args([
        "replay",
        "--from",
        "s3://archive/clicks/",
        "-c",
        "pipeline.toml",
    ]);
    let summary = ok(c);
    println!("{summary}");
    assert!(
        summary.starts_with("replayed 600 records from "),
        "{summary}"
    );

    let want = expected(&dir.0, &event);
    let got = outputs(&dir.0);
    for (destination, lines) in &want {
        assert!(!lines.is_empty(), "`{destination}` got outputs");
        assert_eq!(
            by_shard(&got[destination]),
            by_shard(lines),
            "`{destination}`: the same outputs, in the same order per shard"
        );
    }
    // Done: the checkpoint is gone, so the same command replays it all again.
    assert!(
        !dir.0
            .join(".sluice/replay")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
    );
}

/// Starts `sluice replay` slowly, waits until its checkpoint says `records`
/// are done, then stops it with `signal`; returns its exit status and what
/// the destinations had then.
fn interrupt(
    dir: &Path,
    records: u64,
    signal: &str,
) -> (Option<i32>, BTreeMap<String, Vec<String>>) {
    let mut child = sluice(dir)
        .args([
            "replay",
            "--from",
            "archive",
            "-c",
            "pipeline.toml",
            "--batch-size",
            "10",
        ])
        .args(["--rate", "250", "--checkpoint", "cp.json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let done = std::fs::read_to_string(dir.join("cp.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["records"].as_u64())
            .unwrap_or(0);
        if done >= records {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the replay made no progress"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the replay ended before it was stopped"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let kill = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    (status.code(), outputs(dir))
}

#[test]
fn a_replay_stopped_then_killed_then_resumed_delivers_every_record() {
    let dir = Dir::new("replay-resume");
    let event = clicks(800);
    std::fs::write(
        dir.0.join("archive.toml"),
        "[destinations.raw]\ntype = \"file\"\npath = \"archive/part.jsonl\"\nformat = \"envelope\"\n\n[routing]\ndefault = \"raw\"\n",
    )
    .unwrap();
    std::fs::write(dir.0.join("event.json"), &event).unwrap();
    let mut c = sluice(&dir.0);
    c.args(["run", "-c", "archive.toml", "-e", "event.json"]);
    ok(c);
    std::fs::write(dir.0.join("pipeline.toml"), clickstream(ENVELOPE_FILES)).unwrap();

    // Ctrl-C: the batch in flight finishes, the checkpoint is saved, 130.
    let (code, first) = interrupt(&dir.0, 150, "-INT");
    assert_eq!(code, Some(130));
    // Killed outright: the batch in flight may be delivered again.
    let (code, second) = interrupt(&dir.0, 400, "-KILL");
    assert_eq!(code, None, "killed by a signal");
    let mut c = sluice(&dir.0);
    c.args([
        "replay",
        "--from",
        "archive",
        "-c",
        "pipeline.toml",
        "--checkpoint",
        "cp.json",
    ]);
    let summary = ok(c);
    assert!(
        !dir.0.join("cp.json").exists(),
        "a finished replay removes its checkpoint"
    );
    let third = outputs(&dir.0);

    let want = expected(&dir.0, &event);
    let identity = |l: &String| {
        let v: Value = serde_json::from_str(l).unwrap();
        (v["shard_id"].to_string(), v["sequence_number"].to_string())
    };
    let mut twice: BTreeSet<(String, String)> = BTreeSet::new();
    for (destination, lines) in &want {
        let mut got: Vec<String> = [&first, &second, &third]
            .iter()
            .flat_map(|o| o[destination].clone())
            .collect();
        let all: BTreeSet<&String> = got.iter().collect();
        let want_set: BTreeSet<&String> = lines.iter().collect();
        assert_eq!(
            all, want_set,
            "`{destination}`: every output, nothing else ({summary})"
        );
        got.sort();
        for pair in got.windows(2) {
            if pair[0] == pair[1] {
                twice.insert(identity(&pair[0]));
            }
        }
    }
    assert!(
        twice.len() <= 10,
        "at most the killed batch (10 records) twice, not {}: {twice:?}",
        twice.len()
    );
}

/// `sluice diff` of two configs on `input` (`--event FILE` or `--from DIR`).
fn diff(dir: &Path, a: &str, b: &str, input: &[&str]) -> (Option<i32>, String) {
    let out = sluice(dir)
        .args(["diff", "--config", a, "--config", b, "--show", "1000"])
        .args(input)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn diff_reports_exactly_the_bot_records_as_added() {
    let dir = Dir::new("diff");
    let example = support::root().join("examples/clickstream/pipeline.toml");
    let text = std::fs::read_to_string(&example).unwrap();
    let a = clickstream(&text[text.find("[destinations.").unwrap()..]);
    let keeps_bots = a.replace(
        "equals = true, negate = true",
        "equals = \"never\", negate = true",
    );
    assert_ne!(a, keeps_bots);
    std::fs::write(dir.0.join("a.toml"), &a).unwrap();
    std::fs::write(dir.0.join("b.toml"), &keeps_bots).unwrap();
    let event = clicks(300);
    std::fs::write(dir.0.join("event.json"), &event).unwrap();

    let bots: BTreeSet<String> = {
        let v: Value = serde_json::from_slice(&event).unwrap();
        v["Records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                let data = base64::engine::general_purpose::STANDARD
                    .decode(r["kinesis"]["data"].as_str().unwrap())
                    .unwrap();
                serde_json::from_slice::<Value>(&data).unwrap()["bot"] == json!(true)
            })
            .map(|r| {
                let shard = r["eventID"].as_str().unwrap().split(':').next().unwrap();
                format!(
                    "{shard}/{}",
                    r["kinesis"]["sequenceNumber"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert!(bots.len() > 10);

    let (code, same) = diff(&dir.0, "a.toml", "a.toml", &["--event", "event.json"]);
    assert_eq!(
        (code, same.as_str()),
        (Some(0), "added 0, removed 0, changed 0, fate changed 0\n")
    );

    let (code, report) = diff(&dir.0, "a.toml", "b.toml", &["--event", "event.json"]);
    assert_eq!(code, Some(1), "{report}");
    let added: Vec<&str> = report
        .lines()
        .filter_map(|l| l.strip_prefix("  + "))
        .collect();
    let added_records: BTreeSet<String> = added
        .iter()
        .map(|l| l.split('#').next().unwrap().to_owned())
        .collect();
    assert_eq!(added_records, bots, "{report}");
    // A bot's page view goes to `analytics` and `archive`.
    assert_eq!(
        report.lines().last().unwrap(),
        format!(
            "added {}, removed 0, changed 0, fate changed {}",
            2 * bots.len(),
            bots.len()
        )
    );
    assert_eq!(added.len(), 2 * bots.len());

    // The same from an archive of the records (a folder of envelopes).
    std::fs::write(
        dir.0.join("archive.toml"),
        "[destinations.raw]\ntype = \"file\"\npath = \"archive/part.jsonl\"\nformat = \"envelope\"\n\n[routing]\ndefault = \"raw\"\n",
    )
    .unwrap();
    let mut c = sluice(&dir.0);
    c.args(["run", "-c", "archive.toml", "-e", "event.json"]);
    ok(c);
    let (code, from_archive) = diff(&dir.0, "a.toml", "b.toml", &["--from", "archive"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        from_archive, report,
        "an archive diffs as the event it came from"
    );
}
