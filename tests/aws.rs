//! End to end against AWS-compatible services: a real moto server on a
//! loopback port, the real AWS SDK, the real plugins.
//!
//! Run with `cargo test -p sluice-cli --test all aws::` (needs `moto_server`: `tests/run`
//! installs it).

use std::io::Read as _;
use std::time::Instant;

use crate::support::*;
use host::app::App;
use host::event;

/// A case's expected outputs at `dest`, as JSON values: outputs are compared
/// as the fixtures compare them, with an object's key order left out.
fn expected(case: &str, dest: &str) -> Vec<serde_json::Value> {
    let path = root().join(format!(
        "examples/clickstream/tests/{case}/expected/{dest}.jsonl"
    ));
    values(std::fs::read_to_string(path).unwrap().lines())
}

/// Each line as a JSON value.
fn values<S: AsRef<str>>(lines: impl IntoIterator<Item = S>) -> Vec<serde_json::Value> {
    lines
        .into_iter()
        .map(|l| serde_json::from_str(l.as_ref()).expect("a JSON line"))
        .collect()
}

/// `values` in one order whatever the order they came in.
fn sorted(mut values: Vec<serde_json::Value>) -> Vec<serde_json::Value> {
    values.sort_by_cached_key(serde_json::Value::to_string);
    values
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
    let mut app = App::load_with(&uri, None, Some(aws.clone()))
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
    assert_eq!(
        values(got.iter().map(|m| &m.body)),
        expected(case, "orders")
    );
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
    let bodies = values(drain(&aws, &analytics).await.into_iter().map(|m| m.body));
    assert_eq!(sorted(bodies), sorted(expected(case, "analytics")));

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
    assert_eq!(sorted(values(lines)), sorted(expected(case, "archive")));
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
    let mut app = App::load_with(&uri, None, Some(aws.clone())).await.unwrap();
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
    let e = App::load_with("s3://config/nope/pipeline.toml", None, Some(aws))
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
        App::load_with(&uri, None, Some(aws))
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
        App::load_with(&uri, None, Some(aws))
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
        App::load_with("s3://config/pipeline.toml", None, Some(aws))
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
    (
        App::load_with(&uri, None, Some(aws.clone())).await.unwrap(),
        aws,
    )
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

    // Found before anything is sent: class `contract`, under the pipeline's
    // policy (here `retry`, as no dead-letter destination is set); record 2
    // follows the failure on its shard and is held back.
    let failures = &report.outcome.failures;
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].index, 1);
    assert_eq!(failures[0].class, host::outcome::FailureClass::Contract);
    assert!(
        failures[0]
            .reason
            .contains("bytes; the limit is 1024 (`max_message_bytes`)"),
        "{}",
        failures[0].reason
    );
    assert_eq!(report.outcome.held_back, 1, "record 2 is held back");
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
    App::load_with(&uri, None, Some(via)).await.unwrap()
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
    // 3 records to analytics and archive (both this queue, delivered at
    // once). SQS took `/pricing` ahead of the failed `/about`; they have
    // other partition keys (`u-1`, `u-2`), so only `/about` is sent again.
    assert_eq!(bodies.len(), 6, "{bodies:?}");
    for url in ["\"/\"", "/about", "/pricing"] {
        assert_eq!(
            bodies.iter().filter(|b| b.contains(url)).count(),
            2,
            "{url}: resent once, not duplicated: {bodies:?}"
        );
    }
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
    // Refused for good (no dead-letter destination here: retried, as the
    // policy says), not a delivery failure.
    assert_eq!(failures[0].class, host::outcome::FailureClass::Contract);
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
    // Two destinations (the same queue here) are delivered at once: their
    // requests interleave.
    let mut batches = proxy.batches();
    batches.sort_unstable();
    assert_eq!(batches, [5, 5, 10, 10, 10, 10]);

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

/// The example pipeline with `destinations` (and any `[routing]`) against
/// moto, its AWS clients going to `endpoint` (moto itself or a proxy).
async fn pipeline_at(moto: &Moto, endpoint: &str, destinations: &str) -> App {
    let aws = moto.aws().await;
    create_bucket(&aws, "config").await;
    let uri = upload_pipeline(
        &aws,
        "config",
        "pipeline.toml",
        &clickstream_config(destinations),
    )
    .await;
    let via = host::aws::Aws::for_endpoint(endpoint, REGION, "testing").await;
    App::load_with(&uri, None, Some(via)).await.unwrap()
}

/// Every destination of the example pipeline is the queue at `queue`;
/// failed records go to `dlq` (raw documents).
fn with_dead_letters(queue: &str, dlq: &str, dlq_extra: &str) -> String {
    let mut text: String = ["orders", "analytics", "archive"]
        .iter()
        .map(|d| format!("[destinations.{d}]\ntype = \"sqs\"\nqueue_url = \"{queue}\"\n"))
        .collect();
    text.push_str(&format!(
        "[destinations.dlq]\ntype = \"sqs\"\nqueue_url = \"{dlq}\"\nformat = \"raw\"\n{dlq_extra}\n\
         [routing]\ndefault = \"archive\"\ndead_letter = \"dlq\"\n"
    ));
    text
}

/// 6 records, 3 of them not JSON, dead-lettered to an SQS queue (standard
/// and FIFO): each arrives with its failure class and stage as message
/// attributes; nothing is retried or held back.
#[tokio::test(flavor = "current_thread")]
async fn sqs_dead_letters_arrive_with_their_failure_attributes() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    let out = create_queue(&aws, "out").await;
    for dlq_name in ["dlq", "dlq.fifo"] {
        let dlq = create_queue(&aws, dlq_name).await;
        let mut app = pipeline_at(&moto, &moto.endpoint, &with_dead_letters(&out, &dlq, "")).await;
        let records: Vec<(&str, String)> = (0..6)
            .map(|i| {
                if i % 2 == 1 {
                    ("u-1", format!("not json {i}"))
                } else {
                    ("u-1", page_view("u-1", &format!("/p{i}")))
                }
            })
            .collect();
        let batch = event::decode(&kinesis_event(&records), "e").unwrap();
        let report = app.process(batch, None).await;
        assert!(
            report.outcome.failures.is_empty(),
            "{dlq_name}: {:?}",
            report.outcome.failures
        );
        assert_eq!(report.outcome.held_back, 0, "{dlq_name}");
        assert_eq!(report.dispatch.dead_lettered, 3, "{dlq_name}");
        let mut letters = drain(&aws, &dlq).await;
        letters.sort_by_key(|m| m.attributes["sluice.sequence-number"].clone());
        assert_eq!(letters.len(), 3, "{dlq_name}");
        for (m, i) in letters.iter().zip([1, 3, 5]) {
            assert_eq!(m.attributes["sluice.failure-class"], "invalid");
            assert_eq!(m.attributes["sluice.failure-stage"], "drop-bots");
            assert_eq!(m.attributes["sluice.shard-id"], "shardId-000000000000");
            assert_eq!(
                m.attributes["sluice.sequence-number"],
                format!("{}00", i + 1)
            );
            let doc: serde_json::Value = serde_json::from_str(&m.body).unwrap();
            assert_eq!(doc["failure"]["class"], "invalid");
            assert_eq!(doc["record"]["sequence_number"], format!("{}00", i + 1));
            if dlq_name.ends_with(".fifo") {
                assert_eq!(m.group_id.as_deref(), Some("u-1"));
                assert_eq!(
                    m.dedup_id.as_deref(),
                    Some(format!("shardId-000000000000:{}00::0", i + 1).as_str())
                );
            }
        }
        // Good records: analytics and archive each.
        assert_eq!(drain(&aws, &out).await.len(), 6, "{dlq_name}");
    }
}

/// A message SQS would refuse every time (over `max_message_bytes`) fails
/// its record with class `contract` before anything of it is sent: with a
/// dead-letter destination it is dead-lettered and the shard moves on.
#[tokio::test(flavor = "current_thread")]
async fn a_message_sqs_would_always_refuse_is_dead_lettered_not_retried() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    let out = create_queue(&aws, "small").await;
    let dlq = create_queue(&aws, "dlq").await;
    let mut destinations: String = ["orders", "analytics", "archive"]
        .iter()
        .map(|d| {
            format!("[destinations.{d}]\ntype = \"sqs\"\nqueue_url = \"{out}\"\nmax_message_bytes = 1024\n")
        })
        .collect();
    destinations.push_str(&format!(
        "[destinations.dlq]\ntype = \"sqs\"\nqueue_url = \"{dlq}\"\nformat = \"raw\"\n\
         [routing]\ndefault = \"archive\"\ndead_letter = \"dlq\"\n"
    ));
    let mut app = pipeline_at(&moto, &moto.endpoint, &destinations).await;
    let records = [
        ("u-1", page_view("u-1", "/a")),
        ("u-2", page_view("u-2", &"x".repeat(2000))),
        ("u-3", page_view("u-3", "/c")),
    ];
    let batch = event::decode(&kinesis_event(&records), "e").unwrap();
    let report = app.process(batch, None).await;
    assert!(
        report.outcome.failures.is_empty(),
        "{:?}",
        report.outcome.failures
    );
    assert_eq!(report.outcome.held_back, 0);
    let dead = &report.outcome.dead_letters;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].failure.index, 1);
    assert_eq!(dead[0].failure.class, host::outcome::FailureClass::Contract);
    assert!(
        dead[0]
            .failure
            .reason
            .contains("the limit is 1024 (`max_message_bytes`)"),
        "{}",
        dead[0].failure.reason
    );
    let letters = drain(&aws, &dlq).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].attributes["sluice.failure-class"], "contract");
    assert_eq!(
        letters[0].attributes["sluice.failure-stage"],
        "destination analytics"
    );
    let doc: serde_json::Value = serde_json::from_str(&letters[0].body).unwrap();
    assert_eq!(
        doc["record"]["data"]["url"],
        "x".repeat(2000),
        "the original record"
    );
    // Records 0 and 2, to analytics and archive; nothing of record 1.
    let bodies: Vec<String> = drain(&aws, &out)
        .await
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(bodies.len(), 4, "{bodies:?}");
    assert!(!bodies.iter().any(|b| b.contains("xxxx")));
}

/// A dead letter too big for the dead-letter queue goes without the record's
/// data, naming its sequence number, rather than stalling the shard.
#[tokio::test(flavor = "current_thread")]
async fn a_dead_letter_too_big_for_its_queue_is_sent_without_the_data() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    let out = create_queue(&aws, "out").await;
    let dlq = create_queue(&aws, "dlq").await;
    let mut app = pipeline_at(
        &moto,
        &moto.endpoint,
        &with_dead_letters(&out, &dlq, "max_message_bytes = 1024"),
    )
    .await;
    let records = [
        ("u-1", format!("not json {}", "y".repeat(3000))),
        ("u-2", page_view("u-2", "/b")),
    ];
    let batch = event::decode(&kinesis_event(&records), "e").unwrap();
    let report = app.process(batch, None).await;
    assert!(
        report.outcome.failures.is_empty(),
        "{:?}",
        report.outcome.failures
    );
    assert_eq!(report.dispatch.dead_lettered, 1);
    let letters = drain(&aws, &dlq).await;
    assert_eq!(letters.len(), 1);
    let doc: serde_json::Value = serde_json::from_str(&letters[0].body).unwrap();
    assert_eq!(doc["record"]["sequence_number"], "100");
    assert!(doc["record"].get("data_base64").is_none(), "{doc}");
    assert!(
        doc["data_omitted"]
            .as_str()
            .unwrap()
            .contains("sequence number"),
        "{doc}"
    );
    assert_eq!(drain(&aws, &out).await.len(), 2);
}

/// Partition keys that are not valid FIFO group ids (Kinesis allows any
/// Unicode, SQS only ASCII letters, digits and punctuation) map to a stable
/// valid group instead of failing their records forever.
#[tokio::test(flavor = "current_thread")]
async fn partition_keys_sqs_refuses_as_group_ids_get_a_stable_valid_group() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    let queue = create_queue(&aws, "orders.fifo").await;
    let other = create_queue(&aws, "other").await;
    // Page views go to analytics (the FIFO queue) and archive.
    let destinations = format!(
        "[destinations.orders]\ntype = \"sqs\"\nqueue_url = \"{other}\"\n\
         [destinations.analytics]\ntype = \"sqs\"\nqueue_url = \"{queue}\"\n\
         [destinations.archive]\ntype = \"sqs\"\nqueue_url = \"{other}\"\n"
    );
    let mut app = pipeline_at(&moto, &moto.endpoint, &destinations).await;
    let long = "k".repeat(200);
    let keys = ["ünïcode kéy", "with space", long.as_str(), "plain-key"];
    let records: Vec<(&str, String)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (*k, page_view("u", &format!("/{i}"))))
        .collect();
    let batch = event::decode(&kinesis_event(&records), "e").unwrap();
    let report = app.process(batch, None).await;
    assert!(
        report.outcome.failures.is_empty(),
        "{:?}",
        report.outcome.failures
    );
    let got = drain(&aws, &queue).await;
    assert_eq!(got.len(), 4);
    for (i, key) in keys.iter().enumerate() {
        let m = got
            .iter()
            .find(|m| m.body.contains(&format!("\"/{i}\"")))
            .unwrap();
        let group = m.group_id.clone().unwrap();
        assert_eq!(group, host::destination::sqs::group_id(key));
        if *key == "plain-key" {
            assert_eq!(group, "plain-key");
        } else {
            assert!(group.starts_with("sluice-") && group.len() == 47, "{group}");
        }
    }
}

/// One-shard page views `/p0`, `/p1`, …, with `/about` (the fault proxy's
/// marker) as record `about`.
fn page_views_with_about_at(n: usize, about: usize) -> Vec<(&'static str, String)> {
    (0..n)
        .map(|i| {
            let url = if i == about {
                "/about".to_owned()
            } else {
                format!("/p{i}")
            };
            ("u-1", page_view("u-1", &url))
        })
        .collect()
}

/// The example pipeline through `proxy`, with page views going to the
/// queue `<name>` (analytics) and `<name>-archive`; returns the first.
async fn analytics_queue_via(
    moto: &Moto,
    aws: &host::aws::Aws,
    proxy: &FaultProxy,
    name: &str,
) -> (String, App) {
    let queue = create_queue(aws, name).await;
    let archive = create_queue(aws, &format!("{name}-archive")).await;
    let destinations = format!(
        "[destinations.orders]\ntype = \"stdout\"\n[destinations.analytics]\ntype = \"sqs\"\nqueue_url = \"{queue}\"\n\
         [destinations.archive]\ntype = \"sqs\"\nqueue_url = \"{archive}\"\n"
    );
    let app = pipeline_at(moto, &proxy.endpoint, &destinations).await;
    (queue, app)
}

/// Entry 3 of a request of 10 (one shard) fails once without the sender's
/// fault: it is resent, and so are the entries after it that SQS already
/// took, so the last copy of every record in the queue is in shard order.
#[tokio::test(flavor = "current_thread")]
async fn a_resent_entry_does_not_stay_behind_the_later_entries_of_its_shard() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    let proxy = FaultProxy::start(moto.port, "/about", false, 1).await;
    let (queue, mut app) = analytics_queue_via(&moto, &aws, &proxy, "ordered").await;
    let records = page_views_with_about_at(10, 3);
    let batch = event::decode(&kinesis_event(&records), "e").unwrap();
    let report = app.process(batch, None).await;
    assert!(
        report.outcome.failures.is_empty(),
        "{:?}",
        report.outcome.failures
    );
    assert_eq!(proxy.injected(), 1);
    let urls: Vec<String> = drain(&aws, &queue)
        .await
        .into_iter()
        .map(|m| {
            let v: serde_json::Value = serde_json::from_str(&m.body).unwrap();
            v["url"].as_str().unwrap().to_owned()
        })
        .collect();
    let want: Vec<String> = records
        .iter()
        .map(|(_, p)| {
            serde_json::from_str::<serde_json::Value>(p).unwrap()["url"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    // The position of each record's last copy must follow the record order.
    let last: Vec<usize> = want
        .iter()
        .map(|u| {
            urls.iter()
                .rposition(|x| x == u)
                .unwrap_or_else(|| panic!("{u} missing: {urls:?}"))
        })
        .collect();
    assert!(last.windows(2).all(|w| w[0] < w[1]), "queue order {urls:?}");
}

/// Entry 2 of the first request fails for good (sender's fault): the 11th
/// output of the same shard, which triggers the next request, is held back
/// too, not sent ahead of the failed record.
#[tokio::test(flavor = "current_thread")]
async fn the_entry_that_triggers_a_flush_after_a_failure_is_held_back() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    let proxy = FaultProxy::start(moto.port, "/about", true, usize::MAX).await;
    let (queue, mut app) = analytics_queue_via(&moto, &aws, &proxy, "stopper").await;
    let records = page_views_with_about_at(12, 2);
    let batch = event::decode(&kinesis_event(&records), "e").unwrap();
    let report = app.process(batch, None).await;
    let failed: Vec<usize> = report.outcome.failures.iter().map(|f| f.index).collect();
    assert_eq!(failed[0], 2, "{:?}", report.outcome.failures);
    assert!(failed.contains(&10) && failed.contains(&11), "{failed:?}");
    let urls: Vec<String> = drain(&aws, &queue)
        .await
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert!(
        !urls
            .iter()
            .any(|u| u.contains("\"/p10\"") || u.contains("\"/p11\"")),
        "sent after a failure of their shard: {urls:?}"
    );
}

/// SQS reports a failed entry under an id that was not in the request: the
/// entry SQS did not report as sent is not counted as delivered.
#[tokio::test(flavor = "current_thread")]
async fn an_entry_sqs_does_not_report_as_sent_fails_closed() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    let queue = create_queue(&aws, "murky").await;
    let proxy =
        FaultProxy::start_tampering(moto.port, "/about", true, usize::MAX, Tamper::BogusId).await;
    let mut app = app_via(&moto, &proxy, &queue, "").await;
    let batch = event::decode(&event("tests/page-views/event.json"), "e").unwrap();
    let report = app.process(batch, None).await;
    let failures = &report.outcome.failures;
    assert_eq!(failures.first().map(|f| f.index), Some(1), "{failures:?}");
    assert!(
        failures[0].reason.contains("did not report the message"),
        "{}",
        failures[0].reason
    );
    let bodies: Vec<_> = drain(&aws, &queue)
        .await
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert!(!bodies.iter().any(|b| b.contains("/about")), "{bodies:?}");
}

/// Dead letters SQS took, after one it refused in the same request, are
/// counted as dead-lettered, not as held back.
#[tokio::test(flavor = "current_thread")]
async fn dead_letters_already_sent_are_not_counted_as_held_back() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    let out = create_queue(&aws, "out").await;
    let dlq = create_queue(&aws, "dlq").await;
    let proxy = FaultProxy::start(moto.port, "MARK", true, usize::MAX).await;
    let mut app = pipeline_at(&moto, &proxy.endpoint, &with_dead_letters(&out, &dlq, "")).await;
    // JSON that is not an object: redact-pii fails every one as invalid.
    let records: Vec<(&str, String)> = (0..6)
        .map(|i| {
            (
                "u-1",
                if i == 1 {
                    "[\"MARK\"]".into()
                } else {
                    format!("[{i}]")
                },
            )
        })
        .collect();
    let batch = event::decode(&kinesis_event(&records), "e").unwrap();
    let report = app.process(batch, None).await;
    let failed: Vec<usize> = report.outcome.failures.iter().map(|f| f.index).collect();
    assert_eq!(failed, [1], "{:?}", report.outcome.failures);
    assert_eq!(report.dispatch.dead_lettered, 5);
    assert_eq!(report.outcome.held_back, 0, "they were sent, not held back");
    assert_eq!(drain(&aws, &dlq).await.len(), 5);
}

/// Records the body of every request an SQS client sends.
#[derive(Debug, Clone, Default)]
struct Wire(std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>);

impl aws_sdk_sqs::config::Intercept for Wire {
    fn name(&self) -> &'static str {
        "wire"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_sqs::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_sqs::config::RuntimeComponents,
        _: &mut aws_sdk_sqs::config::ConfigBag,
    ) -> Result<(), aws_sdk_sqs::error::BoxError> {
        if let Some(body) = context.request().body().bytes()
            && let Ok(json) = serde_json::from_slice(body)
        {
            self.0.lock().unwrap().push(json);
        }
        Ok(())
    }
}

/// The `AWSTraceHeader` of every entry of the `SendMessageBatch` requests on
/// the wire (moto's `SendMessageBatch` drops `MessageSystemAttributes`, so
/// the request is read as it leaves the SDK, on its way to moto).
fn trace_headers(wire: &Wire) -> Vec<Option<String>> {
    let requests = std::mem::take(&mut *wire.0.lock().unwrap());
    requests
        .iter()
        .flat_map(|r| r["Entries"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            e["MessageSystemAttributes"]["AWSTraceHeader"]["StringValue"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn sqs_messages_carry_the_invocations_trace_header() {
    let moto = Moto::start();
    let mut aws = moto.aws().await;
    let wire = Wire::default();
    aws.sqs = aws_sdk_sqs::Client::from_conf(
        aws.sqs
            .config()
            .to_builder()
            .interceptor(wire.clone())
            .build(),
    );
    create_bucket(&aws, "config").await;
    let queue = create_queue(&aws, "traced").await;
    let uri = upload_pipeline(
        &aws,
        "config",
        "p.toml",
        &format!("[destinations.q]\ntype = \"sqs\"\nqueue_url = \"{queue}\"\n"),
    )
    .await;
    let mut app = App::load_with(&uri, None, Some(aws.clone())).await.unwrap();
    let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    app.set_trace_header(Some(header));
    let json = event_json([r#"{"a":1}"#, r#"{"a":2}"#]);
    let report = app
        .process(event::decode(json.as_bytes(), "e").unwrap(), None)
        .await;
    assert!(
        report.outcome.failures.is_empty(),
        "{:?}",
        report.outcome.failures
    );
    assert_eq!(drain(&aws, &queue).await.len(), 2, "moto took both");
    assert_eq!(
        trace_headers(&wire),
        [Some(header.to_owned()), Some(header.to_owned())]
    );
    // The next invocation has no trace: its messages carry none.
    app.set_trace_header(None);
    app.process(event::decode(json.as_bytes(), "e").unwrap(), None)
        .await;
    assert_eq!(trace_headers(&wire), [None, None]);
}

/// Whoever can write an unpinned config in S3 chooses plugins and
/// destinations, never the function's own files: a plugin named by an
/// absolute local path (or `..` above the config's prefix) fails the cold
/// start, naming the step, before anything is read. Pinned, the same config
/// may; a file that is not a Wasm binary is still refused without quoting it.
#[tokio::test(flavor = "current_thread")]
async fn an_unpinned_config_from_s3_cannot_read_local_files() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    create_bucket(&aws, "config").await;
    for plugin in ["/proc/self/environ", "../../etc/passwd"] {
        let config = clickstream_config("[destinations.archive]\ntype = \"stdout\"\n")
            .replace("plugins/redact.wasm", plugin);
        let uri = upload_pipeline(&aws, "config", "p/pipeline.toml", &config).await;
        let e = format!(
            "{:#}",
            App::load_with(&uri, None, Some(aws.clone()))
                .await
                .err()
                .expect("an unpinned config must not reach a local file")
        );
        eprintln!("cold start with plugin = {plugin:?} from an unpinned S3 config: {e}");
        assert!(
            e.contains("steps[1] (`redact-pii`).plugin")
                && e.contains(&format!(
                    "`{plugin}` reaches outside the config's own S3 prefix (`s3://config/p/`)"
                ))
                && e.contains("SLUICE_CONFIG_SHA256"),
            "{e}"
        );
        assert!(!e.contains("PATH=") && !e.contains("root:"), "{e}");
    }
    // Pinned: the operator chose it; the file is refused as not Wasm, by size.
    let config = clickstream_config("[destinations.archive]\ntype = \"stdout\"\n")
        .replace("plugins/redact.wasm", "/proc/self/environ");
    let uri = upload_pipeline(&aws, "config", "p/pipeline.toml", &config).await;
    let pin = host::hex(&<sha2::Sha256 as sha2::Digest>::digest(config.as_bytes()));
    let e = format!(
        "{:#}",
        App::load_with(&uri, Some(&pin), Some(aws))
            .await
            .err()
            .expect("not a plugin")
    );
    assert!(e.contains("not a WebAssembly binary ("), "{e}");
    assert!(!e.contains("PATH="), "{e}");
}

/// An entry SQS fails with `SenderFault = true` is content SQS refuses every
/// time: its record is dead-lettered (class `contract`, the step's policy),
/// not retried until the batch expires.
#[tokio::test(flavor = "current_thread")]
async fn an_entry_sqs_refuses_as_the_senders_fault_is_dead_lettered() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    let queue = create_queue(&aws, "picky").await;
    let dlq = create_queue(&aws, "dlq").await;
    let proxy = FaultProxy::start(moto.port, "/about", true, usize::MAX).await;
    let mut app = pipeline_at(&moto, &proxy.endpoint, &with_dead_letters(&queue, &dlq, "")).await;
    let batch = event::decode(&event("tests/page-views/event.json"), "e").unwrap();
    let report = app.process(batch, None).await;
    // The refused record is not retried; what its shard sent after it in
    // later requests may be (held back, to keep the shard's order).
    assert!(
        report.outcome.failures.iter().all(|f| f.index != 1),
        "{:?}",
        report.outcome.failures
    );
    let letters = drain(&aws, &dlq).await;
    let about: Vec<serde_json::Value> = letters
        .iter()
        .map(|m| serde_json::from_str::<serde_json::Value>(&m.body).unwrap())
        .filter(|d| {
            d["failure"]["reason"]
                .as_str()
                .unwrap_or("")
                .contains("InjectedFault")
        })
        .collect();
    assert_eq!(about.len(), 1, "{letters:?}");
    assert_eq!(about[0]["failure"]["class"], "contract");
    assert_eq!(
        about[0]["record"]["sequence_number"],
        "49590338271490256608559692538361571095921575989136588801"
    );
}

/// The queue's own `MaximumMessageSize` (here 1 KiB, under the default
/// `max_message_bytes` of 256 KiB) is read at cold start: a message over it
/// is refused before it is sent (class `contract`, dead-lettered), instead
/// of being sent and refused by SQS.
#[tokio::test(flavor = "current_thread")]
async fn the_queues_own_maximum_message_size_is_read_at_cold_start() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    let small = aws
        .sqs
        .create_queue()
        .queue_name("small")
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::MaximumMessageSize,
            "1024",
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dlq = create_queue(&aws, "dlq").await;
    let mut app = pipeline_at(&moto, &moto.endpoint, &with_dead_letters(&small, &dlq, "")).await;
    let records = [
        ("u-1", page_view("u-1", &format!("/{}", "y".repeat(3000)))),
        ("u-2", page_view("u-2", "/b")),
    ];
    let batch = event::decode(&kinesis_event(&records), "e").unwrap();
    let report = app.process(batch, None).await;
    assert!(
        report.outcome.failures.is_empty(),
        "{:?}",
        report.outcome.failures
    );
    let letters = drain(&aws, &dlq).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let doc: serde_json::Value = serde_json::from_str(&letters[0].body).unwrap();
    assert_eq!(doc["failure"]["class"], "contract");
    let reason = doc["failure"]["reason"].as_str().unwrap();
    assert!(reason.contains("the limit is 1024"), "{reason}");
    assert!(!drain(&aws, &small).await.is_empty());
}
