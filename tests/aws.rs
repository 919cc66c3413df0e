//! End to end against AWS-compatible services: a real moto server on a
//! loopback port, the real AWS SDK, the real plugins.
//!
//! Run with `cargo test -p host --test aws` (needs `moto_server`: `tests/run`
//! installs it).

mod support;

use std::io::Read as _;
use std::time::Instant;

use host::app::App;
use host::event;
use support::*;

fn expected(case: &str, dest: &str) -> Vec<String> {
    let path = root().join(format!(
        "examples/clickstream/tests/{case}/expected/{dest}.jsonl"
    ));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn gunzip(bytes: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut out)
        .unwrap();
    out
}

async fn get(
    aws: &host::aws::Aws,
    bucket: &str,
    key: &str,
) -> (Vec<u8>, aws_sdk_s3::operation::get_object::GetObjectOutput) {
    let out = aws
        .s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let meta = out.clone_metadata_only();
    (
        out.body.collect().await.unwrap().into_bytes().to_vec(),
        meta,
    )
}

trait MetadataOnly {
    fn clone_metadata_only(&self) -> Self;
}

impl MetadataOnly for aws_sdk_s3::operation::get_object::GetObjectOutput {
    fn clone_metadata_only(&self) -> Self {
        aws_sdk_s3::operation::get_object::GetObjectOutput::builder()
            .set_metadata(self.metadata().cloned())
            .set_content_type(self.content_type().map(str::to_owned))
            .set_content_encoding(self.content_encoding().map(str::to_owned))
            .build()
    }
}

/// Config, plugins from S3; outputs to a FIFO queue, a standard queue and S3,
/// compared with the fixture case's golden files.
#[tokio::test(flavor = "current_thread")]
async fn cold_start_from_s3_then_deliver_to_sqs_and_s3() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    create_bucket(&aws, "config").await;
    create_bucket(&aws, "archive").await;
    let orders = create_queue(&aws, "orders.fifo").await;
    let analytics = create_queue(&aws, "analytics").await;
    let config = clickstream_config(&format!(
        r#"
[destinations.orders]
type = "sqs"
queue_url = "{orders}"
format = "envelope"

[destinations.analytics]
type = "sqs"
queue_url = "{analytics}"
format = "envelope"

[destinations.archive]
type = "s3"
bucket = "archive"
key = "clicks/{{yyyy}}/{{mm}}/{{dd}}/{{hh}}/{{shard}}-{{first_seq}}-{{last_seq}}.jsonl.gz"
format = "envelope"
gzip = true
"#
    ));
    let uri = upload_pipeline(
        &aws,
        "config",
        "pipelines/clickstream/pipeline.toml",
        &config,
    )
    .await;

    let started = Instant::now();
    let mut app = App::load_with(&uri, Some(aws.clone()))
        .await
        .expect("cold start");
    eprintln!(
        "cold start from moto: {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );

    let case = "two-shards-keep-lineage";
    let batch = event::decode(&event(&format!("tests/{case}/event.json")), "event.json").unwrap();
    let started = Instant::now();
    let report = app.process(batch, None).await;
    eprintln!(
        "invocation: {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    let response = host::lambda::response(&report.outcome).unwrap();
    assert!(
        response.batch_item_failures.is_empty(),
        "{:?}",
        report.outcome.failures
    );

    // FIFO: in order, grouped by partition key, deduplicated by lineage.
    let got = drain(&aws, &orders).await;
    let bodies: Vec<_> = got.iter().map(|m| m.body.clone()).collect();
    assert_eq!(bodies, expected(case, "orders"));
    assert_eq!(got[0].group_id.as_deref(), Some("u-2"));
    let seq = "49590338271490256608559692538361571095921575989139588801";
    assert_eq!(
        got[0].dedup_id.as_deref(),
        Some(format!("shardId-000000000003:{seq}::0").as_str())
    );
    assert_eq!(got[0].attributes["sluice.shard-id"], "shardId-000000000003");
    assert_eq!(got[0].attributes["sluice.sequence-number"], seq);
    assert_eq!(got[0].attributes["event_type"], "purchase");

    // Standard queue: same messages, order not guaranteed.
    let mut bodies: Vec<_> = drain(&aws, &analytics)
        .await
        .into_iter()
        .map(|m| m.body)
        .collect();
    bodies.sort();
    let mut want = expected(case, "analytics");
    want.sort();
    assert_eq!(bodies, want);

    // S3: one gzip object per shard, keys from the records themselves.
    let keys = keys(&aws, "archive").await;
    assert_eq!(
        keys,
        [
            "clicks/2026/11/22/08/shardId-000000000000-49590338271490256608559692538361571095921575989136588800-49590338271490256608559692538361571095921575989136588801.jsonl.gz",
            "clicks/2026/11/22/08/shardId-000000000003-49590338271490256608559692538361571095921575989139588800-49590338271490256608559692538361571095921575989139588801.jsonl.gz",
        ]
    );
    let mut lines = Vec::new();
    for key in &keys {
        let (body, meta) = get(&aws, "archive", key).await;
        assert_eq!(meta.content_encoding(), Some("gzip"));
        assert_eq!(meta.content_type(), Some("application/x-ndjson"));
        let m = meta.metadata().unwrap();
        assert_eq!(m["sluice-records"], "2");
        lines.extend(gunzip(&body).lines().map(str::to_owned));
    }
    let mut want = expected(case, "archive");
    want.sort();
    lines.sort();
    assert_eq!(lines, want);
}

/// A retried batch writes the same S3 keys and FIFO deduplicates it.
#[tokio::test(flavor = "current_thread")]
async fn a_retried_batch_is_idempotent() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    create_bucket(&aws, "config").await;
    create_bucket(&aws, "archive").await;
    let orders = create_queue(&aws, "orders.fifo").await;
    let config = clickstream_config(&format!(
        "[destinations.orders]\ntype = \"sqs\"\nqueue_url = \"{orders}\"\n\
         [destinations.analytics]\ntype = \"s3\"\nbucket = \"archive\"\nkey = \"a/{{shard}}-{{first_seq}}.jsonl\"\n\
         [destinations.archive]\ntype = \"s3\"\nbucket = \"archive\"\nkey = \"all/{{shard}}-{{first_seq}}-{{last_seq}}.jsonl\"\n"
    ));
    let uri = upload_pipeline(&aws, "config", "p.toml", &config).await;
    let mut app = App::load_with(&uri, Some(aws.clone())).await.unwrap();
    let json = event("events/example-kinesis-event.json");
    for _ in 0..2 {
        let report = app.process(event::decode(&json, "e").unwrap(), None).await;
        assert!(
            report.outcome.failures.is_empty(),
            "{:?}",
            report.outcome.failures
        );
    }
    assert_eq!(
        drain(&aws, &orders).await.len(),
        3,
        "FIFO must drop the resent duplicates"
    );
    assert_eq!(
        keys(&aws, "archive").await.len(),
        4,
        "two shards x two destinations, written twice"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_missing_config_object_is_named() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    create_bucket(&aws, "config").await;
    let e = App::load_with("s3://config/nope/pipeline.toml", Some(aws))
        .await
        .err()
        .expect("cold start must fail");
    let e = format!("{e:#}");
    assert!(
        e.contains("cannot read pipeline config `s3://config/nope/pipeline.toml`"),
        "{e}"
    );
    assert!(e.contains("NoSuchKey"), "{e}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_missing_plugin_object_is_named_with_its_step() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    create_bucket(&aws, "config").await;
    let config = clickstream_config("[destinations.archive]\ntype = \"stdout\"\n")
        .replace("plugins/redact.wasm", "plugins/missing.wasm");
    let uri = upload_pipeline(&aws, "config", "p/pipeline.toml", &config).await;
    let e = format!(
        "{:#}",
        App::load_with(&uri, Some(aws))
            .await
            .err()
            .expect("must fail")
    );
    assert!(
        e.contains("step `redact-pii`: cannot read plugin `s3://config/p/plugins/missing.wasm`"),
        "{e}"
    );
    assert!(e.contains("NoSuchKey"), "{e}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_plugin_that_does_not_match_its_sha256_pin_is_refused() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    create_bucket(&aws, "config").await;
    let config = clickstream_config("[destinations.archive]\ntype = \"stdout\"\n").replace(
        "plugin = \"plugins/redact.wasm\"",
        &format!(
            "plugin = \"plugins/redact.wasm\"\nsha256 = \"{}\"",
            "ab".repeat(32)
        ),
    );
    let uri = upload_pipeline(&aws, "config", "pipeline.toml", &config).await;
    let e = format!(
        "{:#}",
        App::load_with(&uri, Some(aws))
            .await
            .err()
            .expect("must fail")
    );
    assert!(
        e.contains("step `redact-pii`: plugin `s3://config/plugins/redact.wasm` has SHA-256"),
        "{e}"
    );
    assert!(
        e.contains(&format!("but the config pins {}", "ab".repeat(32))),
        "{e}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn access_denied_is_reported_with_the_resource() {
    // With auth enforced and no IAM user for our key, every call is refused.
    let moto = Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]);
    let aws = moto.aws().await;
    let e = format!(
        "{:#}",
        App::load_with("s3://config/pipeline.toml", Some(aws))
            .await
            .err()
            .expect("must fail")
    );
    assert!(
        e.contains("cannot read pipeline config `s3://config/pipeline.toml`"),
        "{e}"
    );
    assert!(
        e.contains("InvalidAccessKeyId") || e.contains("AccessDenied"),
        "{e}"
    );
}

/// Loads the example pipeline with its three destinations (`orders`,
/// `analytics`, `archive`) all defined by `spec`, against `moto`.
async fn app_with(moto: &Moto, spec: &str) -> (App, host::aws::Aws) {
    let aws = moto.aws().await;
    create_bucket(&aws, "config").await;
    let destinations: String = ["orders", "analytics", "archive"]
        .iter()
        .map(|d| format!("[destinations.{d}]\n{spec}\n"))
        .collect();
    let uri = upload_pipeline(
        &aws,
        "config",
        "pipeline.toml",
        &clickstream_config(&destinations),
    )
    .await;
    (App::load_with(&uri, Some(aws.clone())).await.unwrap(), aws)
}

#[tokio::test(flavor = "current_thread")]
async fn a_queue_that_does_not_exist_fails_its_records_and_sets_the_checkpoint() {
    let moto = Moto::start();
    let missing = format!("{}/123456789012/no-such-queue", moto.endpoint);
    let (mut app, _aws) =
        app_with(&moto, &format!("type = \"sqs\"\nqueue_url = \"{missing}\"")).await;
    let batch = event::decode(&event("tests/page-views/event.json"), "e").unwrap();
    let report = app.process(batch, None).await;
    let failures = &report.outcome.failures;
    assert_eq!(failures.len(), 3);
    assert!(
        failures[0].reason.contains(&missing),
        "{}",
        failures[0].reason
    );
    assert!(
        failures[0].reason.contains("NonExistentQueue"),
        "{}",
        failures[0].reason
    );
    assert!(
        failures[0].stage.starts_with("destination "),
        "{}",
        failures[0].stage
    );
    let response = host::lambda::response(&report.outcome).unwrap();
    let ids: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["49590338271490256608559692538361571095921575989136588800"]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_message_over_the_size_limit_fails_alone_and_holds_back_its_shard() {
    let moto = Moto::start();
    let aws0 = moto.aws().await;
    let queue = create_queue(&aws0, "small").await;
    let (mut app, aws) = app_with(
        &moto,
        &format!("type = \"sqs\"\nqueue_url = \"{queue}\"\nmax_message_bytes = 1024"),
    )
    .await;
    // Record 1 of 3 carries a 2 KB URL.
    let json = String::from_utf8(event("tests/page-views/event.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let big = serde_json::json!({"type": "page_view", "user_id": "u-2", "url": "x".repeat(2000)});
    use base64::Engine as _;
    v["Records"][1]["kinesis"]["data"] = base64::engine::general_purpose::STANDARD
        .encode(big.to_string())
        .into();
    let batch = event::decode(v.to_string().as_bytes(), "e").unwrap();
    let report = app.process(batch, None).await;

    let failures = &report.outcome.failures;
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert_eq!(failures[0].index, 1);
    assert!(
        failures[0]
            .reason
            .contains("bytes; the limit is 1024 (`max_message_bytes`)"),
        "{}",
        failures[0].reason
    );
    assert_eq!(
        failures[1].index, 2,
        "record 2 follows the failure on its shard"
    );
    assert!(
        failures[1]
            .reason
            .contains("not sent: an earlier output of `shardId-000000000000`"),
        "{}",
        failures[1].reason
    );
    assert_eq!(
        drain(&aws, &queue).await.len(),
        2,
        "only record 0 is sent (to analytics and archive)"
    );
    let response = host::lambda::response(&report.outcome).unwrap();
    assert_eq!(
        response.batch_item_failures[0].item_identifier.as_deref(),
        Some("49590338271490256608559692538361571095921575989136588801")
    );
}

#[tokio::test(flavor = "current_thread")]
async fn s3_going_away_mid_run_fails_exactly_the_undelivered_records() {
    let mut moto = Moto::start();
    let aws0 = moto.aws().await;
    create_bucket(&aws0, "archive").await;
    let (mut app, _aws) = app_with(
        &moto,
        "type = \"s3\"\nbucket = \"archive\"\nkey = \"{destination}/{shard}/{first_seq}.jsonl\"",
    )
    .await;
    moto.stop();
    let batch = event::decode(&event("tests/page-views/event.json"), "e").unwrap();
    let started = Instant::now();
    let report = app.process(batch, None).await;
    assert!(
        started.elapsed().as_secs() < 30,
        "timeouts must bound a dead endpoint"
    );
    let failures = &report.outcome.failures;
    assert_eq!(failures.len(), 3, "{failures:?}");
    assert!(
        failures[0].reason.contains("cannot put `s3://archive/"),
        "{}",
        failures[0].reason
    );
    let response = host::lambda::response(&report.outcome).unwrap();
    assert_eq!(response.batch_item_failures.len(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn nothing_is_sent_past_the_deadline_and_everything_unsent_is_reported() {
    let moto = Moto::start();
    let aws0 = moto.aws().await;
    let queue = create_queue(&aws0, "late").await;
    let (mut app, aws) = app_with(&moto, &format!("type = \"sqs\"\nqueue_url = \"{queue}\"")).await;
    let batch = event::decode(&event("tests/page-views/event.json"), "e").unwrap();
    let report = app.process(batch, Some(Instant::now())).await;
    assert_eq!(report.outcome.failures.len(), 3);
    assert!(report.outcome.failures[0].reason.contains("deadline"));
    let _ = drain(&aws, &queue).await;
}

/// Loads the example pipeline (every destination the queue at `queue`,
/// with `extra` settings) with clients that go through `proxy`.
async fn app_via(moto: &Moto, proxy: &FaultProxy, queue: &str, extra: &str) -> App {
    let aws = moto.aws().await;
    create_bucket(&aws, "config").await;
    let destinations: String = ["orders", "analytics", "archive"]
        .iter()
        .map(|d| format!("[destinations.{d}]\ntype = \"sqs\"\nqueue_url = \"{queue}\"\n{extra}\n"))
        .collect();
    let uri = upload_pipeline(
        &aws,
        "config",
        "pipeline.toml",
        &clickstream_config(&destinations),
    )
    .await;
    let via = host::aws::Aws::for_endpoint(&proxy.endpoint, REGION, "testing").await;
    App::load_with(&uri, Some(via)).await.unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn entries_sqs_fails_without_sender_fault_are_resent() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    let queue = create_queue(&aws, "flaky").await;
    let proxy = FaultProxy::start(moto.port, "/about", false, 1).await;
    let mut app = app_via(&moto, &proxy, &queue, "").await;
    let batch = event::decode(&event("tests/page-views/event.json"), "e").unwrap();
    let report = app.process(batch, None).await;
    assert!(
        report.outcome.failures.is_empty(),
        "{:?}",
        report.outcome.failures
    );
    assert_eq!(proxy.injected(), 1, "the proxy must have failed one entry");
    let bodies: Vec<_> = drain(&aws, &queue)
        .await
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(
        bodies.len(),
        6,
        "3 records to analytics and archive: {bodies:?}"
    );
    assert_eq!(
        bodies.iter().filter(|b| b.contains("/about")).count(),
        2,
        "resent once per destination, not duplicated"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn an_entry_sqs_fails_with_sender_fault_fails_its_record_only() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    let queue = create_queue(&aws, "picky").await;
    let proxy = FaultProxy::start(moto.port, "/about", true, usize::MAX).await;
    let mut app = app_via(&moto, &proxy, &queue, "").await;
    let batch = event::decode(&event("tests/page-views/event.json"), "e").unwrap();
    let report = app.process(batch, None).await;
    let failures = &report.outcome.failures;
    assert_eq!(failures[0].index, 1, "{failures:?}");
    assert!(
        failures[0].reason.contains("InjectedFault"),
        "{}",
        failures[0].reason
    );
    assert!(
        failures.iter().all(|f| f.index >= 1),
        "record 0 was delivered: {failures:?}"
    );
    let bodies: Vec<_> = drain(&aws, &queue)
        .await
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert!(!bodies.iter().any(|b| b.contains("/about")), "{bodies:?}");
    let response = host::lambda::response(&report.outcome).unwrap();
    assert_eq!(
        response.batch_item_failures[0].item_identifier.as_deref(),
        Some("49590338271490256608559692538361571095921575989136588801")
    );
}

/// `SendMessageBatch` requests hold at most 10 entries and at most
/// `max_message_bytes` bytes.
#[tokio::test(flavor = "current_thread")]
async fn sqs_batches_respect_ten_entries_and_the_byte_limit() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    let queue = create_queue(&aws, "packed").await;
    let proxy = FaultProxy::start(moto.port, "never-matches", false, 0).await;
    // 25 page views, each routed to analytics and archive.
    let records: Vec<String> = (0..25)
        .map(|i| {
            let data = base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                format!(r#"{{"type":"page_view","user_id":"u-{i}","url":"/{i}","pad":"{}"}}"#, "p".repeat(300)),
            );
            format!(
                r#"{{"eventID":"shardId-000000000000:{i}","kinesis":{{"partitionKey":"u","data":"{data}","sequenceNumber":"{i}","approximateArrivalTimestamp":1.5}}}}"#
            )
        })
        .collect();
    let json = format!(r#"{{"Records":[{}]}}"#, records.join(","));

    let mut app = app_via(&moto, &proxy, &queue, "").await;
    let report = app
        .process(event::decode(json.as_bytes(), "e").unwrap(), None)
        .await;
    assert!(
        report.outcome.failures.is_empty(),
        "{:?}",
        report.outcome.failures
    );
    assert_eq!(proxy.batches(), [10, 10, 5, 10, 10, 5]);

    let proxy = FaultProxy::start(moto.port, "never-matches", false, 0).await;
    let mut app = app_via(&moto, &proxy, &queue, "max_message_bytes = 2048").await;
    let report = app
        .process(event::decode(json.as_bytes(), "e").unwrap(), None)
        .await;
    assert!(
        report.outcome.failures.is_empty(),
        "{:?}",
        report.outcome.failures
    );
    let batches = proxy.batches();
    assert_eq!(batches.iter().sum::<usize>(), 50);
    // Each message is ~480 bytes with its attributes: 4 fit in 2 KiB.
    assert!(
        batches.iter().all(|&n| n <= 4),
        "2 KiB requests: {batches:?}"
    );
    assert!(batches.contains(&4), "{batches:?}");
    assert_eq!(drain(&aws, &queue).await.len(), 100);
}
