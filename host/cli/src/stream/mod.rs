//! The stream on your laptop: `sluice put` writes records to a Kinesis
//! stream, and `sluice consume` reads them as Lambda's Kinesis event source
//! mapping (ESM) would and runs the pipeline on them, through the same code
//! path as the Lambda function ([`host::lambda::invoke`]).
//!
//! Both talk to any Kinesis-compatible endpoint through the AWS SDK: moto
//! server on loopback, another emulator, or AWS itself. Only in the `stream`
//! feature (on by default); the Lambda build leaves it out.
//!
//! - [`put`]: `PutRecords` in requests of at most 500 records and 5 MiB,
//!   resending only the entries that failed; optionally packed in KPL
//!   aggregates, one per shard, as the Kinesis Producer Library does.
//! - [`consume`]: the ESM emulated: batches per shard (size, window, the 6 MB
//!   payload cap), the partial batch response, retries, bisection, maximum
//!   record age, the on-failure destination, parallelization by partition
//!   key, resharding (parents drained before children), and checkpoints in
//!   a local file ([`checkpoint`]).
//! - [`esm`]: the JSON the ESM writes: the invocation event, and the record
//!   of a discarded batch.

pub mod checkpoint;
pub mod consume;
pub mod esm;
pub mod put;

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata};

/// A Kinesis client: the standard credential chain and region (default
/// `us-east-1` when none is set), `endpoint` when given (else
/// `AWS_ENDPOINT_URL_KINESIS` or `AWS_ENDPOINT_URL`, as the SDK reads them),
/// explicit timeouts, and the SDK's retries for transient errors.
pub async fn client(endpoint: Option<&str>) -> Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(host::aws::CONNECT_TIMEOUT)
                .operation_attempt_timeout(host::aws::ATTEMPT_TIMEOUT)
                .operation_timeout(host::aws::OPERATION_TIMEOUT)
                .build(),
        )
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(host::aws::MAX_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(100)),
        );
    if let Some(url) = endpoint {
        loader = loader.endpoint_url(url);
    }
    let shared = loader.load().await;
    let mut config = aws_sdk_kinesis::config::Builder::from(&shared);
    if shared.region().is_none() {
        config = config.region(aws_config::Region::new("us-east-1"));
    }
    Client::from_conf(config.build())
}

/// One shard of a stream, as `ListShards` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// `shardId-000000000000`.
    pub id: String,
    /// The shards it was split or merged from: drained before it is read.
    pub parents: Vec<String>,
    /// The lowest partition-key hash it takes.
    pub starting_hash_key: u128,
    /// The highest partition-key hash it takes.
    pub ending_hash_key: u128,
    /// Whether it was split or merged: it takes no new records.
    pub closed: bool,
    /// The sequence number of its first record (`SequenceNumberRange`).
    pub starting_sequence: String,
    /// The sequence number of its last record, once it is closed.
    pub ending_sequence: Option<String>,
}

/// Compares two Kinesis sequence numbers (decimal, up to 56 digits: more
/// than a `u128` holds) by their value.
pub fn compare_sequence(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Every shard of `stream`, open and closed, in the order Kinesis lists them.
pub async fn list_shards(client: &Client, stream: &str) -> Result<Vec<Shard>, String> {
    let mut shards = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let request = match &next {
            // A request with a token must not name the stream.
            Some(token) => client.list_shards().next_token(token),
            None => client.list_shards().stream_name(stream),
        };
        let out = request.send().await.map_err(|e| {
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception())
            {
                format!("stream `{stream}` does not exist at this endpoint")
            } else {
                describe(&e, &format!("listing the shards of stream `{stream}`"))
            }
        })?;
        for s in out.shards() {
            let range = s.hash_key_range();
            let hash = |text: Option<&str>, or: u128| {
                text.and_then(|t| t.parse::<u128>().ok()).unwrap_or(or)
            };
            shards.push(Shard {
                id: s.shard_id().to_owned(),
                parents: s
                    .parent_shard_id()
                    .into_iter()
                    .chain(s.adjacent_parent_shard_id())
                    .map(str::to_owned)
                    .collect(),
                starting_hash_key: hash(range.map(|r| r.starting_hash_key()), 0),
                ending_hash_key: hash(range.map(|r| r.ending_hash_key()), u128::MAX),
                closed: s
                    .sequence_number_range()
                    .and_then(|r| r.ending_sequence_number())
                    .is_some(),
                starting_sequence: s
                    .sequence_number_range()
                    .map(|r| r.starting_sequence_number().to_owned())
                    .unwrap_or_default(),
                ending_sequence: s
                    .sequence_number_range()
                    .and_then(|r| r.ending_sequence_number())
                    .map(str::to_owned),
            });
        }
        match out.next_token() {
            Some(token) if !token.is_empty() => next = Some(token.to_owned()),
            _ => return Ok(shards),
        }
    }
}

pub use sluice_core::source::hash_key;

/// One line saying what went wrong with an SDK call: the service's error code
/// and message, or, when the request never got an answer, why (an endpoint
/// that does not answer, a timeout), with what was being done.
pub fn describe<E, R>(error: &aws_sdk_kinesis::error::SdkError<E, R>, doing: &str) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_kinesis::error::SdkError;
    match error {
        SdkError::ServiceError(e) => format!(
            "{doing}: {}: {}",
            e.err().code().unwrap_or("error"),
            e.err().message().unwrap_or("no message")
        ),
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => format!(
            "{doing}: the Kinesis endpoint did not answer ({}); is it running, and is \
             `--endpoint` (or AWS_ENDPOINT_URL) right?",
            DisplayErrorContext(error)
        ),
        other => format!("{doing}: {}", DisplayErrorContext(other)),
    }
}

/// Whether an SDK error is Kinesis throttling (`ProvisionedThroughputExceededException`,
/// `LimitExceededException`): back off and try again.
pub fn is_throttling<E, R>(error: &aws_sdk_kinesis::error::SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    error
        .as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|c| {
            matches!(
                c,
                "ProvisionedThroughputExceededException" | "LimitExceededException"
            )
        })
}
