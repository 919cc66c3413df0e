//! The `kinesis` destination: one record of another Kinesis data stream per
//! output, sent with `PutRecords`.
//!
//! - Requests hold at most 500 records and 5 MiB (data plus partition keys);
//!   one record at most 1 MiB (Kinesis API reference, `PutRecords`).
//! - The partition key is the destination's template (default: the input
//!   record's partition key), 1 to 256 Unicode characters; the explicit hash
//!   key, when set, a decimal below 2^128. A record that breaks these
//!   limits is refused for good (class `contract`).
//! - Entries failed with `ProvisionedThroughputExceededException`,
//!   `InternalFailure` or `KMSThrottlingException` are resent by the
//!   dispatcher with backoff, with the later entries of their key that
//!   Kinesis had taken (their last copy stays in order); any other entry
//!   error fails the record, to be retried by Lambda.
//! - Order: requests are packed in lanes by the rendered partition key (or
//!   explicit hash key), so that one key's records go one request after
//!   another, in input order. Kinesis writes a request's records in order;
//!   its documentation promises order only for `PutRecord` with
//!   `SequenceNumberForOrdering`, so this is what a `PutRecords` producer
//!   (the KPL included) gets.

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

use super::{
    Batch, Request, Sink, SinkFuture, Verdict, encode_one, key_hash, pack_by_key, placeholder,
};
use crate::config::destination::kinesis::KinesisPlan;
use crate::outcome::Routed;

/// Most records in one `PutRecords` request.
pub const MAX_BATCH_ENTRIES: usize = 500;
/// Most bytes (data plus partition keys) in one `PutRecords` request.
pub const MAX_BATCH_BYTES: usize = 5 << 20;
/// Most bytes (data plus partition key) in one record.
pub const MAX_RECORD_BYTES: usize = crate::config::destination::kinesis::MAX_RECORD_BYTES;

/// Puts outputs on one Kinesis data stream.
#[derive(Debug)]
pub struct KinesisDestination {
    name: String,
    client: aws_sdk_kinesis::Client,
    plan: KinesisPlan,
}

/// One record, ready to put.
struct Put {
    data: Vec<u8>,
    partition_key: String,
    explicit_hash_key: Option<String>,
}

impl KinesisDestination {
    /// The destination `plan` describes, putting with `client`.
    pub fn new(name: &str, plan: &KinesisPlan, client: aws_sdk_kinesis::Client) -> Self {
        KinesisDestination {
            name: name.to_owned(),
            client,
            plan: plan.clone(),
        }
    }

    /// The record `r` becomes, or why Kinesis would refuse it every time.
    fn put(&self, r: &Routed) -> Result<Put, String> {
        let partition_key = self.plan.partition_key.render(|v| placeholder(r, v));
        let chars = partition_key.chars().count();
        if !(1..=256).contains(&chars) {
            return Err(format!(
                "partition key `{}` renders to {chars} characters; Kinesis takes 1 to 256",
                self.plan.partition_key
            ));
        }
        let explicit_hash_key = match &self.plan.explicit_hash_key {
            Some(t) => {
                let key = t.render(|v| placeholder(r, v));
                let valid = !key.is_empty()
                    && key.len() <= 39
                    && key.bytes().all(|b| b.is_ascii_digit())
                    && key.parse::<u128>().is_ok();
                if !valid {
                    return Err(format!(
                        "explicit hash key `{t}` renders to `{key}`; Kinesis takes a decimal from 0 to 2^128 - 1"
                    ));
                }
                Some(key)
            }
            None => None,
        };
        let mut data = Vec::new();
        encode_one(self.plan.format, r, &mut data);
        let bytes = data.len() + partition_key.len();
        if bytes > MAX_RECORD_BYTES {
            return Err(format!(
                "record is {bytes} bytes with its partition key; Kinesis takes at most {MAX_RECORD_BYTES}"
            ));
        }
        Ok(Put {
            data,
            partition_key,
            explicit_hash_key,
        })
    }

    /// One `PutRecords` of the request's entries.
    async fn send_request(&self, outputs: &[&Routed], request: &Request) -> Vec<Verdict> {
        let mut batch = Batch::build(request, |i| {
            let p = self.put(outputs[i])?;
            PutRecordsRequestEntry::builder()
                .data(Blob::new(p.data))
                .partition_key(p.partition_key)
                .set_explicit_hash_key(p.explicit_hash_key)
                .build()
                .map_err(|e| format!("cannot build the Kinesis request: {e}"))
        });
        if batch.entries.is_empty() {
            return batch.verdicts;
        }
        let stream = &self.plan.stream;
        let call = self
            .client
            .put_records()
            .set_records(Some(std::mem::take(&mut batch.entries)));
        let call = if stream.starts_with("arn:") {
            call.stream_arn(stream)
        } else {
            call.stream_name(stream)
        };
        let response = match call.send().await {
            Ok(r) => r,
            Err(e) => {
                return batch.failed(format!(
                    "PutRecords to `{stream}` failed: {}",
                    aws_sdk_kinesis::error::DisplayErrorContext(&e)
                ));
            }
        };
        batch.answered(
            response.records(),
            |result| match result.error_code() {
                None if result.sequence_number().is_some() => Verdict::Taken,
                None => Verdict::Failed(format!(
                    "Kinesis gave no sequence number for the record put to `{stream}`"
                )),
                Some(code) => {
                    let reason = format!(
                        "Kinesis did not take the record for `{stream}`: {code} {}",
                        result.error_message().unwrap_or("")
                    );
                    match code {
                        "ProvisionedThroughputExceededException"
                        | "InternalFailure"
                        | "KMSThrottlingException" => Verdict::Retry(reason),
                        _ => Verdict::Failed(reason),
                    }
                }
            },
            &format!("Kinesis gave no result for a record put to `{stream}`"),
        )
    }
}

impl Sink for KinesisDestination {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        format!("kinesis {}", self.plan.stream)
    }

    fn refusal(&self, r: &Routed) -> Option<String> {
        self.put(r).err()
    }

    fn max_in_flight(&self) -> usize {
        self.plan.max_in_flight
    }

    /// Requests of at most 500 records and 5 MiB, packed in lanes by the
    /// rendered partition key (or explicit hash key).
    fn plan(&self, outputs: &[&Routed]) -> Vec<Request> {
        let key = |r: &Routed| match &self.plan.explicit_hash_key {
            Some(t) => key_hash(&["hash", &t.render(|v| placeholder(r, v))]),
            None => key_hash(&[&self.plan.partition_key.render(|v| placeholder(r, v))]),
        };
        let size = |r: &Routed| {
            self.put(r)
                .map_or(0, |p| p.data.len() + p.partition_key.len())
        };
        let lanes = outputs
            .len()
            .div_ceil(MAX_BATCH_ENTRIES)
            .clamp(1, self.plan.max_in_flight);
        pack_by_key(
            outputs,
            lanes,
            MAX_BATCH_ENTRIES,
            MAX_BATCH_BYTES,
            key,
            size,
        )
    }

    fn send<'a>(
        &'a self,
        outputs: &'a [&'a Routed],
        request: &'a Request,
    ) -> SinkFuture<'a, Vec<Verdict>> {
        Box::pin(self.send_request(outputs, request))
    }
}
