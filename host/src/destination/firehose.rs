//! The `firehose` destination: one record of a Firehose delivery stream per
//! output, sent with `PutRecordBatch`.
//!
//! - Requests hold at most 500 records and 4 MiB; one record at most
//!   1,000 KiB (Firehose API reference, `PutRecordBatch`). A larger record
//!   is refused for good (class `contract`).
//! - Each record ends with `\n` unless `newline = false`: Firehose
//!   concatenates records into its objects, so JSON Lines stay lines.
//! - Entries failed with `ServiceUnavailableException` (throttling) or
//!   `InternalFailure` are resent by the dispatcher with backoff; any
//!   other entry error fails the record, to be retried by Lambda.
//! - Order: Firehose keeps none, so requests are independent and a failed
//!   entry holds nothing back.

use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record as FirehoseRecord;

use super::{Batch, Request, Sink, SinkFuture, Verdict, encode, pack_unordered};
use crate::config::destination::firehose::FirehosePlan;
use crate::outcome::Routed;

/// Most records in one `PutRecordBatch` request.
pub const MAX_BATCH_ENTRIES: usize = 500;
/// Most bytes in one `PutRecordBatch` request.
pub const MAX_BATCH_BYTES: usize = 4 << 20;
/// Most bytes in one record (1,000 KiB).
pub const MAX_RECORD_BYTES: usize = 1000 * 1024;

/// Puts outputs on one Firehose delivery stream.
#[derive(Debug)]
pub struct FirehoseDestination {
    name: String,
    client: aws_sdk_firehose::Client,
    plan: FirehosePlan,
}

impl FirehoseDestination {
    /// The destination `plan` describes, putting with `client`.
    pub fn new(name: &str, plan: &FirehosePlan, client: aws_sdk_firehose::Client) -> Self {
        FirehoseDestination {
            name: name.to_owned(),
            client,
            plan: plan.clone(),
        }
    }

    /// The record's bytes, or why Firehose would refuse them every time.
    fn data(&self, r: &Routed) -> Result<Vec<u8>, String> {
        let mut data = Vec::with_capacity(r.record.data.len() + 1);
        encode(self.plan.format, r, &mut data);
        if !self.plan.newline {
            data.pop();
        }
        if data.is_empty() {
            return Err("record is empty; Firehose takes 1 byte or more".into());
        }
        if data.len() > MAX_RECORD_BYTES {
            return Err(format!(
                "record is {} bytes; Firehose takes at most {MAX_RECORD_BYTES}",
                data.len()
            ));
        }
        Ok(data)
    }

    /// The size of `r`'s record, without encoding it when the format is raw.
    fn size(&self, r: &Routed) -> usize {
        match self.plan.format {
            crate::config::Format::Raw => r.record.data.len() + 1,
            crate::config::Format::Envelope => self.data(r).map_or(0, |d| d.len()),
        }
    }

    /// One `PutRecordBatch` of the request's entries.
    async fn send_request(&self, outputs: &[&Routed], request: &Request) -> Vec<Verdict> {
        let mut batch = Batch::build(request, |i| {
            FirehoseRecord::builder()
                .data(Blob::new(self.data(outputs[i])?))
                .build()
                .map_err(|e| format!("cannot build the Firehose request: {e}"))
        });
        if batch.entries.is_empty() {
            return batch.verdicts;
        }
        let stream = &self.plan.delivery_stream;
        let response = self
            .client
            .put_record_batch()
            .delivery_stream_name(stream)
            .set_records(Some(std::mem::take(&mut batch.entries)))
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                return batch.failed(format!(
                    "PutRecordBatch to `{stream}` failed: {}",
                    aws_sdk_firehose::error::DisplayErrorContext(&e)
                ));
            }
        };
        batch.answered(
            response.request_responses(),
            |result| match result.error_code() {
                None if result.record_id().is_some() => Verdict::Taken,
                None => Verdict::Failed(format!(
                    "Firehose gave no record id for the record put to `{stream}`"
                )),
                Some(code) => {
                    let reason = format!(
                        "Firehose did not take the record for `{stream}`: {code} {}",
                        result.error_message().unwrap_or("")
                    );
                    match code {
                        "ServiceUnavailableException" | "InternalFailure" => Verdict::Retry(reason),
                        _ => Verdict::Failed(reason),
                    }
                }
            },
            &format!("Firehose gave no result for a record put to `{stream}`"),
        )
    }
}

impl Sink for FirehoseDestination {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        format!("firehose {}", self.plan.delivery_stream)
    }

    fn refusal(&self, r: &Routed) -> Option<String> {
        self.data(r).err()
    }

    fn max_in_flight(&self) -> usize {
        self.plan.max_in_flight
    }

    /// Requests of at most 500 records and 4 MiB, in input order,
    /// independent of each other.
    fn plan(&self, outputs: &[&Routed]) -> Vec<Request> {
        pack_unordered(outputs, MAX_BATCH_ENTRIES, MAX_BATCH_BYTES, |r| {
            self.size(r)
        })
    }

    fn send<'a>(
        &'a self,
        outputs: &'a [&'a Routed],
        request: &'a Request,
    ) -> SinkFuture<'a, Vec<Verdict>> {
        Box::pin(self.send_request(outputs, request))
    }
}
