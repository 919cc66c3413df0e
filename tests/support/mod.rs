//! Test utilities for the end-to-end tests: a moto server on a free loopback
//! port (stopped when dropped), AWS SDK clients for it, and helpers to set up
//! buckets, queues and the example pipeline in it.

#![allow(
    dead_code,
    reason = "helpers for the tests to come, kept with the ones in use"
)]

pub mod standin;

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use host::aws::Aws;

/// The region every test uses.
pub const REGION: &str = "eu-west-1";

/// A moto server on 127.0.0.1, killed on drop.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// The port.
    pub port: u16,
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0")
}

impl Moto {
    /// Starts `moto_server` and waits until it answers. `env` is added to its
    /// environment (e.g. `INITIAL_NO_AUTH_ACTION_COUNT` to enforce IAM).
    pub fn start_with(env: &[(&str, &str)]) -> Moto {
        Moto::start_command(Command::new("moto_server"), env)
    }

    /// Starts moto with its Kinesis reshard behaving as AWS's: a shard that
    /// SplitShard closed keeps its records and takes no new ones (moto 5
    /// goes on writing to it; `support/moto_kinesis_as_aws.py` says how).
    pub fn start_kinesis_as_aws() -> Moto {
        let mut cmd = Command::new("python3");
        cmd.arg(root().join("tests/support/moto_kinesis_as_aws.py"));
        Moto::start_command(cmd, &[])
    }

    fn start_command(mut cmd: Command, env: &[(&str, &str)]) -> Moto {
        let port = free_port();
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start `moto_server` ({e}); `tests/run` installs it: pip install 'moto[server]'")
        });
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if http_get(port, "/moto-api/")
                .is_some_and(|r| r.starts_with("HTTP/1.0 200") || r.starts_with("HTTP/1.1 200"))
            {
                return moto;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("moto_server did not answer on port {port} within 60 s");
    }

    /// Starts a plain moto server.
    pub fn start() -> Moto {
        Moto::start_with(&[])
    }

    /// SDK clients for this server.
    pub async fn aws(&self) -> Aws {
        Aws::for_endpoint(&self.endpoint, REGION, "testing").await
    }

    /// Stops the server now.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    Some(buf)
}

/// A Kinesis client for `moto`, with the tests' static credentials.
pub async fn kinesis(moto: &Moto) -> aws_sdk_kinesis::Client {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&moto.endpoint)
        .region(aws_config::Region::new(REGION))
        .credentials_provider(aws_sdk_kinesis::config::Credentials::new(
            "testing", "secret", None, None, "tests",
        ))
        .load()
        .await;
    aws_sdk_kinesis::Client::new(&shared)
}

/// `sluice <args>` against `moto`, its AWS settings in the environment.
pub fn sluice_against(moto: &Moto, dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.current_dir(dir)
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env("SLUICE_LOG", "warn")
        .stdin(Stdio::null());
    c
}

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Creates a bucket (if it is not there yet).
pub async fn create_bucket(aws: &Aws, bucket: &str) {
    let result = aws
        .s3
        .create_bucket()
        .bucket(bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(REGION))
                .build(),
        )
        .send()
        .await;
    if let Err(e) = result {
        let e = aws_sdk_s3::error::DisplayErrorContext(e).to_string();
        assert!(
            e.contains("BucketAlreadyOwnedByYou"),
            "creating bucket `{bucket}`: {e}"
        );
    }
}

/// Uploads `body` to `s3://bucket/key`.
pub async fn put(aws: &Aws, bucket: &str, key: &str, body: Vec<u8>) {
    aws.s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .expect("uploading an object");
}

/// Creates a queue (FIFO if its name ends in `.fifo`) and returns its URL.
pub async fn create_queue(aws: &Aws, name: &str) -> String {
    let mut req = aws.sqs.create_queue().queue_name(name);
    if name.ends_with(".fifo") {
        req = req.attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true");
    }
    req.send()
        .await
        .expect("creating a queue")
        .queue_url
        .expect("a queue URL")
}

/// A received SQS message: body, group id, dedup id and message attributes.
#[derive(Debug, Clone)]
pub struct Message {
    /// The body.
    pub body: String,
    /// FIFO group id.
    pub group_id: Option<String>,
    /// FIFO deduplication id.
    pub dedup_id: Option<String>,
    /// Message attributes (string values).
    pub attributes: std::collections::BTreeMap<String, String>,
    /// When SQS took it (`SentTimestamp`, ms).
    pub sent_ms: u64,
}

/// Receives (and deletes) every message in the queue.
pub async fn drain(aws: &Aws, queue_url: &str) -> Vec<Message> {
    let mut out = Vec::new();
    loop {
        let r = aws
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receiving messages");
        let msgs = r.messages.unwrap_or_default();
        if msgs.is_empty() {
            return out;
        }
        for m in msgs {
            let sys = m.attributes.clone().unwrap_or_default();
            out.push(Message {
                body: m.body.clone().unwrap_or_default(),
                group_id: sys
                    .get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId)
                    .cloned(),
                dedup_id: sys
                    .get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageDeduplicationId)
                    .cloned(),
                sent_ms: sys
                    .get(&aws_sdk_sqs::types::MessageSystemAttributeName::SentTimestamp)
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0),

                attributes: m
                    .message_attributes
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.string_value.unwrap_or_default()))
                    .collect(),
            });
            aws.sqs
                .delete_message()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle.unwrap_or_default())
                .send()
                .await
                .expect("deleting a message");
        }
    }
}

/// Lists the keys under `bucket`.
pub async fn keys(aws: &Aws, bucket: &str) -> Vec<String> {
    let r = aws
        .s3
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("listing objects");
    let mut keys: Vec<String> = r.contents().iter().filter_map(|o| o.key.clone()).collect();
    keys.sort();
    keys
}

/// Uploads the three example plugins next to `config_key` (under `plugins/`)
/// and the config itself; returns the config's `s3://` URI.
pub async fn upload_pipeline(aws: &Aws, bucket: &str, config_key: &str, config: &str) -> String {
    let dir = config_key
        .rsplit_once('/')
        .map(|(d, _)| format!("{d}/"))
        .unwrap_or_default();
    for (name, path) in [
        ("filter_field.wasm", crate::test_plugins::FILTER_FIELD),
        ("redact.wasm", crate::test_plugins::REDACT),
        ("route_field.wasm", crate::test_plugins::ROUTE_FIELD),
    ] {
        put(
            aws,
            bucket,
            &format!("{dir}plugins/{name}"),
            std::fs::read(path).unwrap(),
        )
        .await;
    }
    put(aws, bucket, config_key, config.as_bytes().to_vec()).await;
    format!("s3://{bucket}/{config_key}")
}

/// The pipeline config of `examples/<example>/`, its plugins
/// (`../../target/plugins/<name>.wasm`) named by where this build put them.
pub fn example_config(example: &str) -> String {
    let text = std::fs::read_to_string(root().join("examples").join(example).join("pipeline.toml"))
        .unwrap();
    let built = Path::new(crate::test_plugins::FILTER_FIELD)
        .parent()
        .unwrap();
    text.replace("../../target/plugins/", &format!("{}/", built.display()))
}

/// The clickstream example's steps, with plugins named relative to the
/// config (`plugins/…`), followed by `destinations`.
pub fn clickstream_config(destinations: &str) -> String {
    let text = std::fs::read_to_string(root().join("examples/clickstream/pipeline.toml")).unwrap();
    let steps = &text[..text.find("[destinations.").unwrap()];
    format!(
        "{}\n{destinations}",
        steps.replace("../../target/plugins/", "plugins/")
    )
}

/// A Lambda Kinesis event of one record per payload, all on shard
/// `shardId-000000000000`; record `i` has sequence number `i00` and arrived
/// at 1.0 s.
pub fn event_json<P: AsRef<[u8]>>(payloads: impl IntoIterator<Item = P>) -> String {
    use base64::Engine as _;
    let records: Vec<String> = payloads
        .into_iter()
        .enumerate()
        .map(|(i, payload)| {
            let data = base64::engine::general_purpose::STANDARD.encode(payload);
            format!(
                r#"{{"eventID":"shardId-000000000000:{i}00","kinesis":{{"partitionKey":"k","data":"{data}","sequenceNumber":"{i}00","approximateArrivalTimestamp":1.0}}}}"#
            )
        })
        .collect();
    format!(r#"{{"Records":[{}]}}"#, records.join(","))
}

/// Runs `sluice precompile --config <config> --out <out>`; checks that it
/// succeeded and returns what it printed.
pub fn sluice_precompile(config: &Path, out: &Path) -> String {
    let precompile = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["precompile", "--config"])
        .arg(config)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&precompile.stdout).into_owned();
    assert!(
        precompile.status.success(),
        "sluice precompile failed: {stdout}{}",
        String::from_utf8_lossy(&precompile.stderr)
    );
    stdout
}

/// A scratch folder `sluice-<name>-<pid>` under the system's temp dir,
/// emptied when made and removed when dropped.
pub struct Dir(pub PathBuf);

impl Dir {
    /// Makes (or empties) the folder for `name`.
    pub fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("sluice-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fixture case's event.
pub fn event(case: &str) -> Vec<u8> {
    std::fs::read(root().join("examples/clickstream").join(case)).unwrap()
}

/// A Lambda Kinesis event of one record per `(partition key, payload)`, all
/// on shard `shardId-000000000000`; record `i` has sequence number `{i+1}00`.
pub fn kinesis_event(records: &[(&str, String)]) -> Vec<u8> {
    use base64::Engine as _;
    let records: Vec<String> = records
        .iter()
        .enumerate()
        .map(|(i, (key, payload))| {
            let data = base64::engine::general_purpose::STANDARD.encode(payload);
            let key = serde_json::to_string(key).unwrap();
            format!(
                r#"{{"eventID":"shardId-000000000000:{n}00","kinesis":{{"partitionKey":{key},"data":"{data}","sequenceNumber":"{n}00","approximateArrivalTimestamp":1795334400.0}}}}"#,
                n = i + 1
            )
        })
        .collect();
    format!(r#"{{"Records":[{}]}}"#, records.join(",")).into_bytes()
}

/// A page view as the example pipeline reads it.
pub fn page_view(user: &str, url: &str) -> String {
    serde_json::json!({"type": "page_view", "user_id": user, "url": url}).to_string()
}

/// How the fault proxy answers for the entries it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// Reports them in `Failed` under their own `Id`.
    Honest,
    /// Reports them under an `Id` that was not in the request.
    BogusId,
}

/// An HTTP proxy in front of moto that turns SQS `SendMessageBatch` into a
/// partial failure: entries whose body contains `marker` are kept from moto
/// and reported back as `Failed` with the given `SenderFault`, for the first
/// `times` requests that hold one. Everything else passes through.
pub struct FaultProxy {
    /// `http://127.0.0.1:<port>`: point the SDK here.
    pub endpoint: String,
    task: tokio::task::JoinHandle<()>,
    left: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    times: usize,
    batches: std::sync::Arc<std::sync::Mutex<Vec<usize>>>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Starts the proxy on a free loopback port.
    pub async fn start(
        upstream: u16,
        marker: &'static str,
        sender_fault: bool,
        times: usize,
    ) -> FaultProxy {
        FaultProxy::start_tampering(upstream, marker, sender_fault, times, Tamper::Honest).await
    }

    /// Like [`FaultProxy::start`], reporting the failed entries as `tamper` says.
    pub async fn start_tampering(
        upstream: u16,
        marker: &'static str,
        sender_fault: bool,
        times: usize,
        tamper: Tamper,
    ) -> FaultProxy {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let left = Arc::new(AtomicUsize::new(times));
        let shared = left.clone();
        let batches = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = batches.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let left = shared.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let take = |l: &AtomicUsize| {
                        l.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok()
                    };
                    let _ = proxy_connection(
                        client,
                        upstream,
                        marker,
                        (sender_fault, tamper),
                        &left,
                        &seen,
                        take,
                    )
                    .await;
                });
            }
        });
        FaultProxy {
            endpoint,
            task,
            left,
            times,
            batches,
        }
    }

    /// The number of entries of each `SendMessageBatch` request seen, in order.
    pub fn batches(&self) -> Vec<usize> {
        self.batches.lock().unwrap().clone()
    }

    /// How many requests had a fault injected so far.
    pub fn injected(&self) -> usize {
        self.times - self.left.load(std::sync::atomic::Ordering::SeqCst)
    }
}

async fn read_message(
    stream: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<(String, Vec<u8>)>> {
    use tokio::io::AsyncReadExt as _;
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end..(head_end + len).min(buf.len())].to_vec();
    buf.drain(..(head_end + len).min(buf.len()));
    Ok(Some((head, body)))
}

fn with_length(head: &str, len: usize, close: bool) -> String {
    let mut out = String::new();
    for line in head.trim_end().lines() {
        let name = line.split(':').next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("connection") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(&format!("content-length: {len}\r\n"));
    if close {
        out.push_str("connection: close\r\n");
    }
    out.push_str("\r\n");
    out
}

async fn proxy_connection(
    mut client: tokio::net::TcpStream,
    upstream: u16,
    marker: &str,
    (sender_fault, tamper): (bool, Tamper),
    left: &std::sync::atomic::AtomicUsize,
    batches: &std::sync::Mutex<Vec<usize>>,
    take: impl Fn(&std::sync::atomic::AtomicUsize) -> bool,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    while let Some((head, mut body)) = read_message(&mut client, &mut buf).await? {
        let mut failed_ids = Vec::new();
        if head
            .to_ascii_lowercase()
            .contains("amazonsqs.sendmessagebatch")
            && let Ok(json) = serde_json::from_slice::<serde_json::Value>(&body)
        {
            let n = json["Entries"].as_array().map_or(0, Vec::len);
            batches.lock().unwrap().push(n);
        }
        if head
            .to_ascii_lowercase()
            .contains("amazonsqs.sendmessagebatch")
            && let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(&body)
            && let Some(entries) = json["Entries"].as_array_mut()
            && entries.iter().any(|e| {
                e["MessageBody"]
                    .as_str()
                    .is_some_and(|b| b.contains(marker))
            })
            && entries.len() > 1
            && take(left)
        {
            entries.retain(|e| {
                let hit = e["MessageBody"]
                    .as_str()
                    .is_some_and(|b| b.contains(marker));
                if hit {
                    failed_ids.push(e["Id"].as_str().unwrap_or("").to_owned());
                }
                !hit
            });
            body = serde_json::to_vec(&json).unwrap();
        }
        let failed: Vec<serde_json::Value> = failed_ids
            .into_iter()
            .map(|id| {
                let id = match tamper {
                    Tamper::Honest => id,
                    Tamper::BogusId => format!("bogus-{id}"),
                };
                serde_json::json!({
                    "Id": id, "SenderFault": sender_fault,
                    "Code": "InjectedFault", "Message": "injected by the test proxy"
                })
            })
            .collect();
        if !forward(&mut client, upstream, &head, &body, add_failed(failed)).await? {
            return Ok(());
        }
    }
    Ok(())
}

/// Forwards a `PublishBatch` to moto and adds `failed` (XML members) to
/// its answer's `Failed`.
async fn forward_xml(
    client: &mut tokio::net::TcpStream,
    upstream: u16,
    head: &str,
    body: &[u8],
    failed: &str,
) -> std::io::Result<bool> {
    use tokio::io::AsyncWriteExt as _;
    let mut up = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await?;
    up.write_all(with_length(head, body.len(), true).as_bytes())
        .await?;
    up.write_all(body).await?;
    let mut rbuf = Vec::new();
    let Some((rhead, rbody)) = read_message(&mut up, &mut rbuf).await? else {
        return Ok(false);
    };
    let mut text = String::from_utf8_lossy(&rbody)
        .replace("<Failed/>", "<Failed></Failed>")
        .replace("<Failed />", "<Failed></Failed>");
    text = if text.contains("<Failed>") {
        text.replacen("<Failed>", &format!("<Failed>{failed}"), 1)
    } else {
        text.replacen(
            "</PublishBatchResult>",
            &format!("<Failed>{failed}</Failed></PublishBatchResult>"),
            1,
        )
    };
    client
        .write_all(with_length(&rhead, text.len(), false).as_bytes())
        .await?;
    client.write_all(text.as_bytes()).await?;
    Ok(true)
}

/// What the chaos proxies change in moto's answer.
type Merge = Box<dyn FnOnce(&mut serde_json::Value) + Send>;

/// A merge that adds `failed` to a `SendMessageBatch` answer's `Failed`.
fn add_failed(failed: Vec<serde_json::Value>) -> Option<Merge> {
    if failed.is_empty() {
        return None;
    }
    Some(Box::new(move |json: &mut serde_json::Value| {
        json.as_object_mut()
            .unwrap()
            .entry("Failed")
            .or_insert_with(|| serde_json::json!([]))
            .as_array_mut()
            .unwrap()
            .extend(failed);
    }))
}

/// Sends one request to moto on `upstream` and its answer back to `client`,
/// with `failed` added to the answer's `Failed` list (a `SendMessageBatch`
/// whose entries the proxy kept from moto). `false`: moto hung up.
async fn forward(
    client: &mut tokio::net::TcpStream,
    upstream: u16,
    head: &str,
    body: &[u8],
    merge: Option<Merge>,
) -> std::io::Result<bool> {
    use tokio::io::AsyncWriteExt as _;
    let mut up = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await?;
    up.write_all(with_length(head, body.len(), true).as_bytes())
        .await?;
    up.write_all(body).await?;
    let mut rbuf = Vec::new();
    let Some((rhead, mut rbody)) = read_message(&mut up, &mut rbuf).await? else {
        return Ok(false);
    };
    if let Some(merge) = merge
        && let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(&rbody)
    {
        merge(&mut json);
        rbody = serde_json::to_vec(&json).unwrap();
    }
    client
        .write_all(with_length(&rhead, rbody.len(), false).as_bytes())
        .await?;
    client.write_all(&rbody).await?;
    Ok(true)
}

/// An HTTP proxy in front of moto that injects random faults, with a chance
/// of `per_mille` in 1000 each, decided by a seeded hash: each entry of a
/// batch call is kept from moto and reported failed as the service reports
/// it (SQS `SendMessageBatch`: `Failed` with `SenderFault = false`; Kinesis
/// `PutRecords`: `ProvisionedThroughputExceededException`; Firehose
/// `PutRecordBatch`: `ServiceUnavailableException`; EventBridge `PutEvents`:
/// `ThrottlingException`; DynamoDB `BatchWriteItem`: `UnprocessedItems`;
/// SNS `PublishBatch`: `Failed` with `SenderFault = false`),
/// and each S3 `PUT` is answered `503 SlowDown` without reaching moto.
/// Everything else passes through.
pub struct ChaosProxy {
    /// `http://127.0.0.1:<port>`: point the SDK here.
    pub endpoint: String,
    task: tokio::task::JoinHandle<()>,
    injected: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ChaosProxy {
    /// Starts the proxy on a free loopback port.
    pub async fn start(upstream: u16, per_mille: u64, seed: u64) -> ChaosProxy {
        use std::sync::Arc;
        use std::sync::atomic::AtomicUsize;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let injected = Arc::new(AtomicUsize::new(0));
        let counter = injected.clone();
        let draws = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let counter = counter.clone();
                let draws = draws.clone();
                tokio::spawn(async move {
                    let _ =
                        chaos_connection(client, upstream, per_mille, seed, &counter, &draws).await;
                });
            }
        });
        ChaosProxy {
            endpoint,
            task,
            injected,
        }
    }

    /// Faults injected so far (failed entries and refused puts).
    pub fn injected(&self) -> usize {
        self.injected.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The batch APIs whose answer has one result per entry, in the request's
/// order: (`x-amz-target` in lower case, the request's entries, the
/// answer's results, its count of failed entries, the error injected).
const POSITIONAL: &[(&str, &str, &str, &str, &str)] = &[
    (
        "kinesis_20131202.putrecords",
        "Records",
        "Records",
        "FailedRecordCount",
        "ProvisionedThroughputExceededException",
    ),
    (
        "firehose_20150804.putrecordbatch",
        "Records",
        "RequestResponses",
        "FailedPutCount",
        "ServiceUnavailableException",
    ),
    (
        "awsevents.putevents",
        "Entries",
        "Entries",
        "FailedEntryCount",
        "ThrottlingException",
    ),
];

/// A cheap, well-mixed hash for deterministic fault decisions.
pub fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

async fn chaos_connection(
    mut client: tokio::net::TcpStream,
    upstream: u16,
    per_mille: u64,
    seed: u64,
    injected: &std::sync::atomic::AtomicUsize,
    draws: &std::sync::atomic::AtomicUsize,
) -> std::io::Result<()> {
    use std::sync::atomic::Ordering;
    use tokio::io::AsyncWriteExt as _;
    let hit = || {
        let n = draws.fetch_add(1, Ordering::SeqCst) as u64;
        let yes = mix(seed ^ mix(n + 1)) % 1000 < per_mille;
        if yes {
            injected.fetch_add(1, Ordering::SeqCst);
        }
        yes
    };
    let mut buf = Vec::new();
    while let Some((head, mut body)) = read_message(&mut client, &mut buf).await? {
        let lower = head.to_ascii_lowercase();
        if lower.starts_with("put ") && !lower.contains("x-amz-target") && hit() {
            let reply = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>injected by the chaos proxy</Message></Error>";
            client
                .write_all(
                    format!(
                        "HTTP/1.1 503 Slow Down\r\ncontent-type: application/xml\r\ncontent-length: {}\r\n\r\n{reply}",
                        reply.len()
                    )
                    .as_bytes(),
                )
                .await?;
            continue;
        }
        let mut merge: Option<Merge> = None;
        let mut answer: Option<serde_json::Value> = None;
        let mut sns_failed: Option<String> = None;
        if lower.contains("amazonsqs.sendmessagebatch")
            && let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(&body)
            && let Some(entries) = json["Entries"].as_array_mut()
        {
            let mut failed = Vec::new();
            entries.retain(|e| {
                let fail = hit();
                if fail {
                    failed.push(serde_json::json!({
                        "Id": e["Id"], "SenderFault": false,
                        "Code": "ServiceUnavailable", "Message": "injected by the chaos proxy"
                    }));
                }
                !fail
            });
            if entries.is_empty() {
                // Every entry failed: SQS answers that itself (moto would
                // refuse the empty batch that is left).
                answer = Some(serde_json::json!({"Successful": [], "Failed": failed}));
            } else {
                merge = add_failed(failed);
            }
            body = serde_json::to_vec(&json).unwrap();
        }
        // The batch APIs that answer one result per entry, in order.
        for &(target, entries_field, results_field, count_field, code) in POSITIONAL {
            if !lower.contains(target) {
                continue;
            }
            let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(&body) else {
                break;
            };
            let Some(entries) = json[entries_field].as_array_mut() else {
                break;
            };
            let total = entries.len();
            let mut failed_at = Vec::new();
            let mut position = 0;
            entries.retain(|_| {
                let fail = hit();
                if fail {
                    failed_at.push(position);
                }
                position += 1;
                !fail
            });
            let error = serde_json::json!({"ErrorCode": code, "ErrorMessage": "injected by the chaos proxy"});
            let rebuild = move |json: &mut serde_json::Value| {
                let taken = json[results_field].as_array().cloned().unwrap_or_default();
                let mut taken = taken.into_iter();
                let results: Vec<serde_json::Value> = (0..total)
                    .map(|p| {
                        if failed_at.contains(&p) {
                            error.clone()
                        } else {
                            taken.next().unwrap_or_else(|| error.clone())
                        }
                    })
                    .collect();
                let failed = results
                    .iter()
                    .filter(|r| r.get("ErrorCode").is_some())
                    .count();
                json[results_field] = serde_json::Value::Array(results);
                json[count_field] = serde_json::json!(failed);
            };
            if entries.is_empty() {
                let mut reply = serde_json::json!({});
                rebuild(&mut reply);
                answer = Some(reply);
            } else if position > entries.len() {
                merge = Some(Box::new(rebuild));
            }
            body = serde_json::to_vec(&json).unwrap();
        }
        // DynamoDB: items kept from it come back as `UnprocessedItems`.
        if lower.contains("dynamodb_20120810.batchwriteitem")
            && let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(&body)
            && let Some(tables) = json["RequestItems"].as_object_mut()
        {
            let mut unprocessed = serde_json::Map::new();
            for (table, writes) in tables.iter_mut() {
                let Some(writes) = writes.as_array_mut() else {
                    continue;
                };
                let mut kept = Vec::new();
                writes.retain(|w| {
                    let fail = hit();
                    if fail {
                        kept.push(w.clone());
                    }
                    !fail
                });
                if !kept.is_empty() {
                    unprocessed.insert(table.clone(), serde_json::Value::Array(kept));
                }
            }
            tables.retain(|_, w| w.as_array().is_some_and(|a| !a.is_empty()));
            if tables.is_empty() {
                answer = Some(serde_json::json!({"UnprocessedItems": unprocessed}));
            } else if !unprocessed.is_empty() {
                merge = Some(Box::new(move |json: &mut serde_json::Value| {
                    json["UnprocessedItems"] = serde_json::Value::Object(unprocessed);
                }));
            }
            body = serde_json::to_vec(&json).unwrap();
        }
        // SNS `PublishBatch` (the query protocol): members are dropped from
        // the form and numbered again; the answer gets them under `Failed`.
        let mut sns_answer = None;
        if !lower.contains("x-amz-target") && body.starts_with(b"Action=PublishBatch&") {
            let form = String::from_utf8_lossy(&body).into_owned();
            let member = |pair: &str| -> Option<usize> {
                let rest = pair.strip_prefix("PublishBatchRequestEntries.member.")?;
                rest.split('.').next()?.parse().ok()
            };
            let count = form.split('&').filter_map(member).max().unwrap_or(0);
            let failed: Vec<usize> = (1..=count).filter(|_| hit()).collect();
            if !failed.is_empty() {
                let id_of = |n: usize| {
                    form.split('&')
                        .find_map(|p| {
                            p.strip_prefix(&format!("PublishBatchRequestEntries.member.{n}.Id="))
                        })
                        .unwrap_or("")
                        .to_owned()
                };
                let members: String = failed
                    .iter()
                    .map(|&n| {
                        format!(
                            "<member><Id>{}</Id><Code>InternalError</Code><Message>injected by the chaos proxy</Message><SenderFault>false</SenderFault></member>",
                            id_of(n)
                        )
                    })
                    .collect();
                let kept: Vec<usize> = (1..=count).filter(|n| !failed.contains(n)).collect();
                let renumbered: Vec<String> = form
                    .split('&')
                    .filter_map(|pair| match member(pair) {
                        None => Some(pair.to_owned()),
                        Some(n) => kept.iter().position(|&k| k == n).map(|at| {
                            pair.replacen(
                                &format!("PublishBatchRequestEntries.member.{n}."),
                                &format!("PublishBatchRequestEntries.member.{}.", at + 1),
                                1,
                            )
                        }),
                    })
                    .collect();
                body = renumbered.join("&").into_bytes();
                if kept.is_empty() {
                    sns_answer = Some(format!(
                        "<PublishBatchResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><PublishBatchResult><Successful/><Failed>{members}</Failed></PublishBatchResult><ResponseMetadata><RequestId>chaos</RequestId></ResponseMetadata></PublishBatchResponse>"
                    ));
                } else {
                    sns_failed = Some(members);
                }
            }
        }
        if let Some(reply) = sns_answer {
            client
                .write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ncontent-length: {}\r\n\r\n{reply}",
                        reply.len()
                    )
                    .as_bytes(),
                )
                .await?;
            continue;
        }
        if let Some(reply) = answer {
            let reply = reply.to_string();
            client
                .write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{reply}",
                        reply.len()
                    )
                    .as_bytes(),
                )
                .await?;
            continue;
        }
        let forwarded = match sns_failed {
            Some(members) => forward_xml(&mut client, upstream, &head, &body, &members).await?,
            None => forward(&mut client, upstream, &head, &body, merge).await?,
        };
        if !forwarded {
            return Ok(());
        }
    }
    Ok(())
}

/// An app running `plan` with every destination in memory: the dead-letter
/// destination `dlq` (if any) in `raw` format, the others in `envelope`.
/// Returns the destinations too, to read what they took.
pub fn memory_app(
    plan: host::config::Plan,
) -> (
    host::app::App,
    Vec<host::destination::memory::MemoryDestination>,
) {
    use host::config::Format;
    use host::destination::{Destination, memory::MemoryDestination};
    let destinations: Vec<MemoryDestination> = plan
        .destinations
        .iter()
        .map(|d| {
            let format = if d.name == "dlq" {
                Format::Raw
            } else {
                Format::Envelope
            };
            // Requests of 10 in up to 8 lanes, as SQS would send them: many
            // in flight at once.
            MemoryDestination::new(&d.name, format).with_requests(10, 8)
        })
        .collect();
    let app = host::app::App::with_destinations(
        plan,
        destinations
            .iter()
            .cloned()
            .map(Destination::from)
            .collect(),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    (app, destinations)
}
