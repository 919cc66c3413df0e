//! A loopback stand-in for AWS services, for the delivery benchmark and the
//! tests that need what moto cannot give: a fixed latency per request, faults
//! chosen by the test, and a count of the requests in flight.
//!
//! It speaks plain HTTP/1.1 with keep-alive on 127.0.0.1 and hands every
//! request to an [`Answer`] the caller gives (the service's reply is the
//! caller's business: [`all_taken`] answers as if every entry was taken).
//! The AWS SDK talks to it as to the real endpoint (`endpoint_url`).

#![allow(
    dead_code,
    reason = "shared by the benchmark and the tests, which each use a part"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};

/// One request as the stand-in read it.
pub struct Call {
    /// The request line's path, e.g. `/archive/key.jsonl`.
    pub path: String,
    /// The `x-amz-target` header of the JSON protocols
    /// (`AmazonSQS.SendMessageBatch`), if any.
    pub target: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

/// What the stand-in sends back.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `content-type`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

impl Reply {
    /// A 200 with a JSON body (the AWS JSON protocols).
    pub fn json(body: serde_json::Value) -> Reply {
        Reply {
            status: 200,
            content_type: "application/x-amz-json-1.0",
            body: body.to_string(),
        }
    }
}

/// How the stand-in answers: called once per request, after the latency.
pub type Answer = Arc<dyn Fn(&Call) -> Reply + Send + Sync>;

/// Requests served and in flight, as the stand-in saw them.
#[derive(Default)]
pub struct Served {
    /// Requests answered.
    pub requests: AtomicUsize,
    /// Requests read and not yet answered.
    pub in_flight: AtomicUsize,
    /// The most requests in flight at once.
    pub peak: AtomicUsize,
}

impl Served {
    /// Forgets the counts (e.g. after a warm-up).
    pub fn reset(&self) {
        self.requests.store(0, Ordering::SeqCst);
        self.peak.store(0, Ordering::SeqCst);
    }
}

/// Starts the stand-in on a free loopback port; every request waits
/// `latency(n)` (n counts requests from 0) and is then answered by `answer`.
/// Returns its endpoint, `http://127.0.0.1:<port>`.
pub async fn start(
    latency: impl Fn(usize) -> Duration + Send + Sync + 'static,
    answer: Answer,
    served: Arc<Served>,
) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding 127.0.0.1:0");
    let endpoint = format!("http://{}", listener.local_addr().expect("bound"));
    let shared = Arc::new(Shared {
        latency: Box::new(latency),
        answer,
        served,
        counter: AtomicUsize::new(0),
    });
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let shared = shared.clone();
            tokio::spawn(async move {
                let _ = connection(stream, &shared).await;
            });
        }
    });
    endpoint
}

/// What every connection of one stand-in shares.
struct Shared {
    latency: Box<dyn Fn(usize) -> Duration + Send + Sync>,
    answer: Answer,
    served: Arc<Served>,
    counter: AtomicUsize,
}

/// Serves one keep-alive connection, one request after another.
async fn connection(stream: tokio::net::TcpStream, shared: &Shared) -> std::io::Result<()> {
    let served = &shared.served;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            if read.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            if line == "\r\n" {
                break;
            }
            head.push(line);
        }
        let header = |name: &str| {
            head.iter().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
            write.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }
        let mut body = vec![0; length];
        read.read_exact(&mut body).await?;
        let call = Call {
            path: head
                .first()
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or("/")
                .to_owned(),
            target: header("x-amz-target"),
            body,
        };
        let now = served.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        served.peak.fetch_max(now, Ordering::SeqCst);
        let n = shared.counter.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep((shared.latency)(n)).await;
        let reply = (shared.answer)(&call);
        served.requests.fetch_add(1, Ordering::SeqCst);
        served.in_flight.fetch_sub(1, Ordering::SeqCst);
        let response = format!(
            "HTTP/1.1 {} OK\r\ncontent-type: {}\r\netag: \"0\"\r\nx-amzn-requestid: stand-in\r\ncontent-length: {}\r\n\r\n{}",
            reply.status,
            reply.content_type,
            reply.body.len(),
            reply.body
        );
        write.write_all(response.as_bytes()).await?;
    }
}

/// Answers every request as if the service took all of it: SQS
/// `SendMessageBatch`, Kinesis `PutRecords`, Firehose `PutRecordBatch`,
/// EventBridge `PutEvents`, DynamoDB `BatchWriteItem` (and `DescribeTable`:
/// a table keyed by `sequence_number` and `output_index`, the envelope's
/// lineage) and SNS `PublishBatch` list every entry as taken; any other JSON
/// request gets `{}`; anything else (S3 `PutObject`) an empty 200.
pub fn all_taken() -> Answer {
    Arc::new(|call: &Call| {
        let request =
            || serde_json::from_slice::<serde_json::Value>(&call.body).unwrap_or_default();
        let each = |field: &str, result: serde_json::Value| {
            let request = request();
            let n = request[field].as_array().map_or(0, Vec::len);
            vec![result; n]
        };
        match call.target.as_deref() {
            Some("AmazonSQS.SendMessageBatch") => {
                let request = request();
                let ok: Vec<serde_json::Value> =
                    entries(&request).map(|e| sqs_taken(&e["Id"])).collect();
                Reply::json(serde_json::json!({"Successful": ok, "Failed": []}))
            }
            Some("Kinesis_20131202.PutRecords") => Reply::json(serde_json::json!({
                "FailedRecordCount": 0,
                "Records": each("Records", serde_json::json!({"SequenceNumber": "1", "ShardId": "shardId-000000000000"})),
            })),
            Some("Firehose_20150804.PutRecordBatch") => Reply::json(serde_json::json!({
                "FailedPutCount": 0, "Encrypted": false,
                "RequestResponses": each("Records", serde_json::json!({"RecordId": "1"})),
            })),
            Some("AWSEvents.PutEvents") => Reply::json(serde_json::json!({
                "FailedEntryCount": 0,
                "Entries": each("Entries", serde_json::json!({"EventId": "1"})),
            })),
            Some("DynamoDB_20120810.BatchWriteItem") => {
                Reply::json(serde_json::json!({"UnprocessedItems": {}}))
            }
            Some("DynamoDB_20120810.DescribeTable") => Reply::json(serde_json::json!({"Table": {
                "TableName": request()["TableName"],
                "KeySchema": [
                    {"AttributeName": "sequence_number", "KeyType": "HASH"},
                    {"AttributeName": "output_index", "KeyType": "RANGE"},
                ],
                "AttributeDefinitions": [
                    {"AttributeName": "sequence_number", "AttributeType": "S"},
                    {"AttributeName": "output_index", "AttributeType": "N"},
                ],
            }})),
            Some(_) => Reply::json(serde_json::json!({})),
            None if call.body.starts_with(b"Action=PublishBatch") => {
                let body = String::from_utf8_lossy(&call.body);
                let members: String = body
                    .split('&')
                    .filter_map(|pair| {
                        let (k, v) = pair.split_once('=')?;
                        (k.starts_with("PublishBatchRequestEntries.member.") && k.ends_with(".Id"))
                            .then(|| {
                                format!("<member><Id>{v}</Id><MessageId>1</MessageId></member>")
                            })
                    })
                    .collect();
                Reply {
                    status: 200,
                    content_type: "text/xml",
                    body: format!(
                        "<PublishBatchResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><PublishBatchResult><Successful>{members}</Successful><Failed/></PublishBatchResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></PublishBatchResponse>"
                    ),
                }
            }
            None => Reply {
                status: 200,
                content_type: "application/xml",
                body: String::new(),
            },
        }
    })
}

/// The `Entries` of a JSON request.
pub fn entries(request: &serde_json::Value) -> impl Iterator<Item = &serde_json::Value> {
    request["Entries"].as_array().into_iter().flatten()
}

/// A `SendMessageBatch` success entry for entry `id`.
pub fn sqs_taken(id: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "Id": id,
        "MessageId": "00000000-0000-0000-0000-000000000000",
        "MD5OfMessageBody": "d41d8cd98f00b204e9800998ecf8427e",
    })
}
