//! The stream on your laptop, end to end against moto's Kinesis on
//! loopback: the real `sluice put` and `sluice consume` binaries, the real
//! AWS SDK, outputs read back from moto's SQS and S3.
//!
//! Run with: `cargo test -p sluice-cli --test all stream::` (moto from `tests/run`).

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    Dir, Moto, create_bucket, create_queue, drain, keys, kinesis, sluice_against as sluice,
};

async fn create_stream(client: &aws_sdk_kinesis::Client, name: &str, shards: i32) {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .expect("creating a stream");
}

fn run(mut c: Command) -> Output {
    let out = c.output().expect("running sluice");
    assert!(
        out.status.success(),
        "sluice failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

/// The summary lines of a run (its stdout without the JSON log lines).
fn summary(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('{'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `sluice put` of `lines` (written to a file in `dir`).
fn put(moto: &Moto, dir: &Path, stream: &str, lines: &[String], extra: &[&str]) -> String {
    let input = dir.join(format!("put-{}.jsonl", lines.len()));
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let mut c = sluice(moto, dir);
    c.args(["put", "--stream", stream, "--input"])
        .arg(&input)
        .args(extra);
    summary(&run(c))
}

/// `sluice consume … --exit-when-idle` with `config` and `extra` flags.
fn consume(moto: &Moto, dir: &Path, stream: &str, config: &Path, extra: &[&str]) -> String {
    let mut c = sluice(moto, dir);
    c.args(["consume", "--stream", stream, "--config"])
        .arg(config)
        .args(["--exit-when-idle", "--poll-interval", "0.1", "--quiet"])
        .args(extra);
    summary(&run(c))
}

/// Page views and purchases of five users, `n` counting up.
fn clicks(from: usize, count: usize) -> Vec<String> {
    (from..from + count)
        .map(|n| {
            let kind = if n % 3 == 0 { "purchase" } else { "page_view" };
            serde_json::json!({"type": kind, "user_id": format!("u{}", n % 5), "n": n, "email": "a@b.c", "items": [{"sku": "s"}]}).to_string()
        })
        .collect()
}

/// A pipeline config in `dir` running the clickstream example's plugins.
fn clickstream(dir: &Path, destinations: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    for (name, path) in [
        ("filter_field.wasm", crate::test_plugins::FILTER_FIELD),
        ("redact.wasm", crate::test_plugins::REDACT),
        ("route_field.wasm", crate::test_plugins::ROUTE_FIELD),
    ] {
        std::fs::copy(path, dir.join("plugins").join(name)).unwrap();
    }
    let config = dir.join("pipeline.toml");
    std::fs::write(&config, crate::support::clickstream_config(destinations)).unwrap();
    config
}

/// The `n` of every JSON line of `file` (payloads, or envelopes' `data`), in order.
fn ns(file: &Path) -> Vec<(String, u64)> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let data = v.get("data").cloned().unwrap_or(v);
            (
                data["user_id"].as_str().unwrap_or("").to_owned(),
                data["n"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Per user, the `n`s must come in increasing order.
fn assert_order_per_key(seen: &[(String, u64)]) {
    let mut last: std::collections::BTreeMap<&str, u64> = Default::default();
    for (user, n) in seen {
        if let Some(prev) = last.insert(user, *n) {
            assert!(prev < *n, "user {user}: {n} came after {prev}: {seen:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_then_consume_delivers_to_sqs_and_s3() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    let client = kinesis(&moto).await;
    create_stream(&client, "clicks", 2).await;
    let orders = create_queue(&aws, "orders").await;
    let analytics = create_queue(&aws, "analytics").await;
    create_bucket(&aws, "archive").await;
    let dir = Dir::new("stream-e2e");
    let config = clickstream(
        &dir.0,
        &format!(
            "[destinations.orders]\ntype = \"sqs\"\nqueue_url = \"{orders}\"\n\
             [destinations.analytics]\ntype = \"sqs\"\nqueue_url = \"{analytics}\"\n\
             [destinations.archive]\ntype = \"s3\"\nbucket = \"archive\"\n\
             key = \"{{shard}}/{{first_seq}}.jsonl\"\nformat = \"envelope\"\n\
             [routing]\ndefault = \"archive\"\n"
        ),
    );
    let put_out = put(
        &moto,
        &dir.0,
        "clicks",
        &clicks(0, 60),
        &["--partition-key-field", "user_id"],
    );
    assert!(
        put_out.contains("put 60 records to stream `clicks`"),
        "{put_out}"
    );
    assert!(put_out.contains("shardId-000000000000"), "{put_out}");
    let out = consume(&moto, &dir.0, "clicks", &config, &["--batch-size", "7"]);
    assert!(out.contains("consumed 60 records"), "{out}");
    assert!(out.contains("0 records discarded"), "{out}");

    let orders = drain(&aws, &orders).await;
    let analytics = drain(&aws, &analytics).await;
    assert_eq!(orders.len(), 20, "one order line per purchase");
    assert_eq!(analytics.len(), 40);
    let body: serde_json::Value = serde_json::from_str(&orders[0].body).unwrap();
    assert_ne!(body["email"], "a@b.c", "redacted on the way");
    let objects = keys(&aws, "archive").await;
    let mut archived = 0;
    for key in &objects {
        let object = aws.get_object("archive", key).await.unwrap();
        archived += object
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
    }
    assert_eq!(archived, 60, "{objects:?}");
    // Batches of at most 7 records, one shard each.
    assert!(objects.len() >= 60 / 7, "{objects:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_from_the_checkpoint_and_ctrl_c_stops_cleanly() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    let client = kinesis(&moto).await;
    create_stream(&client, "clicks", 1).await;
    let queue = create_queue(&aws, "archive").await;
    let dir = Dir::new("stream-restart");
    let config = dir.0.join("pipeline.toml");
    std::fs::write(
        &config,
        format!(
            "[destinations.archive]\ntype = \"sqs\"\nqueue_url = \"{queue}\"\nformat = \"envelope\"\n"
        ),
    )
    .unwrap();
    put(&moto, &dir.0, "clicks", &clicks(0, 10), &[]);
    // A consumer left running, stopped with Ctrl-C once it has delivered.
    let mut c = sluice(&moto, &dir.0);
    c.args(["consume", "--stream", "clicks", "--config"])
        .arg(&config)
        .args(["--poll-interval", "0.1", "--quiet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    let mut seen = Vec::new();
    let started = Instant::now();
    while seen.len() < 10 && started.elapsed() < Duration::from_secs(60) {
        seen.extend(drain(&aws, &queue).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen.len(), 10);
    let out = interrupt(child);
    assert!(out.contains("consumed 10 records"), "{out}");
    let checkpoints: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.0.join(".sluice/checkpoints/clicks.json")).unwrap(),
    )
    .unwrap();
    let after = checkpoints["shards"]["shardId-000000000000"]["after"]
        .as_str()
        .unwrap()
        .to_owned();

    // A restart reads only what came since.
    put(&moto, &dir.0, "clicks", &clicks(10, 5), &[]);
    let out = consume(&moto, &dir.0, "clicks", &config, &[]);
    assert!(out.contains("consumed 5 records"), "{out}");
    seen.extend(drain(&aws, &queue).await);
    let mut seqs: Vec<String> = seen
        .iter()
        .map(|m| {
            let v: serde_json::Value = serde_json::from_str(&m.body).unwrap();
            v["sequence_number"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(seqs.len(), 15);
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len(), 15, "no record twice");
    assert!(
        seen.iter()
            .skip(10)
            .all(|m| !m.body.contains(&format!("\"sequence_number\":\"{after}\"")))
    );
}

/// Sends SIGINT to `child` (as Ctrl-C does) and returns its summary; it must
/// exit 0.
fn interrupt(child: Child) -> String {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "consume did not stop cleanly: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("stopping after the current batch"));
    summary(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_is_bisected_retried_then_recorded_on_failure_and_the_shard_moves_on() {
    let moto = Moto::start();
    let client = kinesis(&moto).await;
    create_stream(&client, "events", 1).await;
    let dir = Dir::new("stream-poison");
    let config = dir.0.join("pipeline.toml");
    std::fs::write(
        &config,
        format!(
            "[[steps]]\nname = \"script\"\nkind = \"transform\"\nplugin = \"{}\"\n\
             config = {{ mode = \"script\" }}\non_error = \"retry\"\n\
             [destinations.out]\ntype = \"file\"\npath = \"out.jsonl\"\n",
            crate::test_plugins::HOSTILE
        ),
    )
    .unwrap();
    let lines: Vec<String> = (0..20)
        .map(|n| {
            let act = if n == 7 { "retry" } else { "ok" };
            serde_json::json!({"act": act, "n": n, "user_id": "one"}).to_string()
        })
        .collect();
    put(&moto, &dir.0, "events", &lines, &["--partition-key", "one"]);
    let out = consume(
        &moto,
        &dir.0,
        "events",
        &config,
        &[
            "--batch-size",
            "10",
            "--bisect-on-error",
            "--max-retries",
            "2",
            "--on-failure",
            "failed.jsonl",
        ],
    );
    assert!(out.contains("consumed 19 records"), "{out}");
    assert!(out.contains("1 records discarded"), "{out}");
    let delivered: Vec<u64> = ns(&dir.0.join("out.jsonl"))
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    let expected: Vec<u64> = (0..20).filter(|&n| n != 7).collect();
    assert_eq!(delivered, expected, "everything but the poison, in order");
    let failed = std::fs::read_to_string(dir.0.join("failed.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = failed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 1, "{failed}");
    let info = &records[0]["KinesisBatchInfo"];
    assert_eq!(
        info["batchSize"], 1,
        "bisected down to the poison: {failed}"
    );
    assert_eq!(info["shardId"], "shardId-000000000000");
    assert_eq!(info["startSequenceNumber"], info["endSequenceNumber"]);
    assert_eq!(
        records[0]["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    // One call, then retries 1 and 2 fail too: three calls on it alone.
    assert!(
        records[0]["requestContext"]["approximateInvokeCount"]
            .as_u64()
            .unwrap()
            >= 3,
        "{failed}"
    );
    assert!(
        info["streamArn"]
            .as_str()
            .unwrap()
            .ends_with(":stream/events")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_shard_is_drained_before_its_children_and_order_per_key_holds() {
    let moto = Moto::start_kinesis_as_aws();
    let client = kinesis(&moto).await;
    create_stream(&client, "clicks", 1).await;
    let dir = Dir::new("stream-reshard");
    let config = dir.0.join("pipeline.toml");
    std::fs::write(
        &config,
        "[destinations.out]\ntype = \"file\"\npath = \"out.jsonl\"\n",
    )
    .unwrap();
    put(
        &moto,
        &dir.0,
        "clicks",
        &clicks(0, 30),
        &["--partition-key-field", "user_id"],
    );
    let mut c = sluice(&moto, &dir.0);
    c.args(["consume", "--stream", "clicks", "--config"])
        .arg(&config)
        .args(["--poll-interval", "0.1", "--quiet", "--batch-size", "4"])
        .args(["--parallelization-factor", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    let out_file = dir.0.join("out.jsonl");
    let wait_for = |n: usize| {
        let started = Instant::now();
        while ns(&out_file).len() < n && started.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for(30);
    // Split the shard mid-run, then write more: the new records land on the children.
    let shard = client
        .list_shards()
        .stream_name("clicks")
        .send()
        .await
        .unwrap()
        .shards()[0]
        .clone();
    client
        .split_shard()
        .stream_name("clicks")
        .shard_to_split(shard.shard_id())
        .new_starting_hash_key((u128::MAX / 2).to_string())
        .send()
        .await
        .unwrap();
    let put_out = put(
        &moto,
        &dir.0,
        "clicks",
        &clicks(30, 30),
        &["--partition-key-field", "user_id"],
    );
    assert!(
        !put_out.contains("shardId-000000000000"),
        "the closed parent takes nothing: {put_out}"
    );
    wait_for(60);
    let out = interrupt(child);
    assert!(out.contains("consumed 60 records"), "{out}");
    let seen = ns(&out_file);
    assert_eq!(seen.len(), 60);
    assert_order_per_key(&seen);
    let checkpoints: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.0.join(".sluice/checkpoints/clicks.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        checkpoints["shards"]["shardId-000000000000"]["finished"], true,
        "{checkpoints}"
    );
    assert!(
        checkpoints["shards"]["shardId-000000000001"].is_object(),
        "{checkpoints}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_aggregate_then_consume_yields_the_user_records_in_order_per_key() {
    let moto = Moto::start();
    let client = kinesis(&moto).await;
    create_stream(&client, "agg", 2).await;
    let dir = Dir::new("stream-aggregate");
    let config = dir.0.join("pipeline.toml");
    std::fs::write(
        &config,
        "[destinations.out]\ntype = \"file\"\npath = \"out.jsonl\"\nformat = \"envelope\"\n",
    )
    .unwrap();
    let put_out = put(
        &moto,
        &dir.0,
        "agg",
        &clicks(0, 50),
        &["--partition-key-field", "user_id", "--aggregate"],
    );
    assert!(put_out.contains("put 50 records"), "{put_out}");
    assert!(
        put_out.contains(": 2 Kinesis records") || put_out.contains(": 1 Kinesis records"),
        "{put_out}"
    );
    let out = consume(
        &moto,
        &dir.0,
        "agg",
        &config,
        &["--parallelization-factor", "2"],
    );
    assert!(out.contains("0 records discarded"), "{out}");
    let lines = std::fs::read_to_string(dir.0.join("out.jsonl")).unwrap();
    assert!(
        lines.lines().all(|l| l.contains("\"sub_sequence_number\"")),
        "{lines}"
    );
    let seen = ns(&dir.0.join("out.jsonl"));
    assert_eq!(seen.len(), 50);
    assert_order_per_key(&seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_stream_or_a_dead_endpoint_is_named() {
    let moto = Moto::start();
    let dir = Dir::new("stream-bad");
    let config = dir.0.join("pipeline.toml");
    std::fs::write(&config, "[destinations.out]\ntype = \"stdout\"\n").unwrap();
    let mut c = sluice(&moto, &dir.0);
    c.args(["consume", "--stream", "nope", "--config"])
        .arg(&config);
    let out = c.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stream `nope` does not exist at this endpoint"),
        "{err}"
    );

    let mut c = sluice(&moto, &dir.0);
    c.args(["put", "--stream", "nope"]).stdin(Stdio::piped());
    let out = c.output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("stream `nope` does not exist"));

    let dead = format!("http://127.0.0.1:{}", crate::support::free_port());
    let mut c = sluice(&moto, &dir.0);
    c.args([
        "consume",
        "--stream",
        "nope",
        "--endpoint",
        &dead,
        "--config",
    ])
    .arg(&config);
    let started = Instant::now();
    let out = c.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the Kinesis endpoint did not answer"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(60));
}

/// A stream deleted and created again under the same name starts its
/// sequence numbers over: the checkpoint file names the stream it was
/// written for (ARN, creation time, endpoint), so the old checkpoints are
/// set aside, with a notice on the terminal, instead of skipping records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_of_a_recreated_stream_are_stale_and_no_record_is_skipped() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    let client = kinesis(&moto).await;
    create_stream(&client, "clicks", 1).await;
    let queue = create_queue(&aws, "archive").await;
    let dir = Dir::new("stream-recreated");
    let config = dir.0.join("pipeline.toml");
    std::fs::write(
        &config,
        format!("[destinations.archive]\ntype = \"sqs\"\nqueue_url = \"{queue}\"\n"),
    )
    .unwrap();
    put(&moto, &dir.0, "clicks", &clicks(0, 30), &[]);
    let out = consume(
        &moto,
        &dir.0,
        "clicks",
        &config,
        &["--starting-position", "trim-horizon"],
    );
    assert!(out.contains("consumed 30 records"), "{out}");

    client
        .delete_stream()
        .stream_name("clicks")
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    create_stream(&client, "clicks", 1).await;
    put(&moto, &dir.0, "clicks", &clicks(30, 12), &[]);
    let mut c = sluice(&moto, &dir.0);
    c.args(["consume", "--stream", "clicks", "--config"])
        .arg(&config)
        .args(["--exit-when-idle", "--poll-interval", "0.1", "--quiet"])
        .args(["--starting-position", "trim-horizon"]);
    let done = run(c);
    let (stdout, stderr) = (
        summary(&done),
        String::from_utf8_lossy(&done.stderr).into_owned(),
    );
    assert!(stdout.contains("consumed 12 records"), "{stdout}\n{stderr}");
    assert!(stderr.contains("deleted and created again"), "{stderr}");

    // A later run resumes from the new checkpoint, and says so.
    put(&moto, &dir.0, "clicks", &clicks(42, 3), &[]);
    let mut c = sluice(&moto, &dir.0);
    c.args(["consume", "--stream", "clicks", "--config"])
        .arg(&config)
        .args(["--exit-when-idle", "--poll-interval", "0.1", "--quiet"]);
    let done = run(c);
    let (stdout, stderr) = (
        summary(&done),
        String::from_utf8_lossy(&done.stderr).into_owned(),
    );
    assert!(stdout.contains("consumed 3 records"), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("resuming after sequence number")
            && stderr.contains("not at the --starting-position"),
        "{stderr}"
    );
    assert_eq!(drain(&aws, &queue).await.len(), 45);
}
