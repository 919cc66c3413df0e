//! Claim-check for oversize messages, in the format of AWS's extended
//! client libraries (`amazon-sqs-java-extended-client-lib`,
//! `amazon-sqs-extended-client` for Python, and the SNS extended client):
//! the message body goes to S3, and the message carries a pointer,
//! `["software.amazon.payloadoffloading.PayloadS3Pointer",
//! {"s3BucketName": "…", "s3Key": "…"}]`, with the number attribute
//! `ExtendedPayloadSize` holding the payload's size. Their consumers fetch
//! the payload and hand it over as the message body.
//!
//! The key is `<prefix><shard>/<sequence number>-<sub-sequence number>-<output
//! index>`, the output's identity, so a retried batch overwrites the same
//! object instead of leaving copies behind.

use crate::config::destination::ClaimCheck;
use crate::outcome::Routed;

/// The message attribute that marks a claim-checked message.
pub const SIZE_ATTRIBUTE: &str = "ExtendedPayloadSize";

/// The pointer's class name, as the extended clients write it.
pub const POINTER_CLASS: &str = "software.amazon.payloadoffloading.PayloadS3Pointer";

/// About what a pointer and its size attribute weigh, for request packing.
pub const POINTER_BYTES: usize = 512;

/// The S3 key of `r`'s payload.
pub fn key(check: &ClaimCheck, r: &Routed) -> String {
    let rec = &r.record;
    format!(
        "{}{}/{}-{}-{}",
        check.prefix,
        rec.shard_id,
        rec.sequence_number,
        rec.sub_sequence_number.unwrap_or(0),
        r.output_index
    )
}

/// The message body that points at `bucket`/`key`.
pub fn pointer(bucket: &str, key: &str) -> String {
    serde_json::json!([POINTER_CLASS, {"s3BucketName": bucket, "s3Key": key}]).to_string()
}

/// Puts `text` (the message body it replaces) into S3; returns the pointer.
pub async fn offload(
    s3: &aws_sdk_s3::Client,
    check: &ClaimCheck,
    r: &Routed,
    text: &str,
) -> Result<String, String> {
    let key = key(check, r);
    s3.put_object()
        .bucket(&check.bucket)
        .key(&key)
        .body(text.as_bytes().to_vec().into())
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot put the oversize message into `s3://{}/{key}` (claim_check): {}",
                check.bucket,
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        })?;
    Ok(pointer(&check.bucket, &key))
}
