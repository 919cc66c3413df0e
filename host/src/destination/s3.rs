//! The `s3` destination: one object per batch, shard and rendered key, every
//! output one line.
//!
//! The key comes from the destination's template, filled from the records
//! themselves (shard, first and last sequence number, the first record's
//! arrival hour), so a retried batch writes the same key: retries overwrite,
//! never duplicate. A template with `{partition_key}` or `{attr:NAME}` (an
//! output attribute) splits a shard's outputs into one object per value,
//! in input order within each. Objects carry the metadata `sluice-shard-id`,
//! `sluice-first-sequence-number`, `sluice-last-sequence-number` and
//! `sluice-records`.

use std::borrow::Cow;
use std::io::Write as _;

use chrono::{DateTime, Datelike as _, Timelike as _};
use flate2::Compression;
use flate2::write::GzEncoder;

use super::{Request, Sink, SinkFuture, Verdict, encode, placeholder};
use crate::config::destination::s3::S3Plan;
use crate::config::{Format, Template};
use crate::outcome::Routed;

/// The longest object key S3 takes, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// Writes outputs to one bucket.
#[derive(Debug)]
pub struct S3Destination {
    name: String,
    client: aws_sdk_s3::Client,
    bucket: String,
    key: Template,
    format: Format,
    gzip: bool,
    content_type: String,
    max_in_flight: usize,
    /// The key takes values from each output (`{partition_key}`,
    /// `{attr:NAME}`): a shard's outputs may make several objects.
    per_output: bool,
}

impl S3Destination {
    /// The destination `plan` describes, writing with `client`.
    pub fn new(name: &str, plan: &S3Plan, client: aws_sdk_s3::Client) -> S3Destination {
        S3Destination {
            name: name.to_owned(),
            client,
            bucket: plan.bucket.clone(),
            key: plan.key.clone(),
            format: plan.format,
            gzip: plan.gzip,
            content_type: plan.content_type.clone(),
            max_in_flight: plan.max_in_flight,
            per_output: {
                let text = plan.key.to_string();
                text.contains("{partition_key}") || text.contains("{attr:")
            },
        }
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key an object holding `outputs` (all from one shard) gets.
    pub fn key_for(&self, outputs: &[&Routed]) -> String {
        let first = &outputs[0].record;
        let last = &outputs[outputs.len() - 1].record;
        let t = DateTime::from_timestamp_millis(first.arrival_ms as i64).unwrap_or_default();
        let (yyyy, mm, dd, hh) = (
            format!("{:04}", t.year()),
            format!("{:02}", t.month()),
            format!("{:02}", t.day()),
            format!("{:02}", t.hour()),
        );
        self.key.render(|v| match v {
            "first_seq" => &first.sequence_number,
            "last_seq" => &last.sequence_number,
            "yyyy" => &yyyy,
            "mm" => &mm,
            "dd" => &dd,
            "hh" => &hh,
            "destination" => &self.name,
            _ => placeholder(outputs[0], v),
        })
    }

    /// What puts `r` in an object of its own: its shard and the values the
    /// key takes from each output (`{partition_key}`, `{attr:NAME}`).
    fn object_of<'a>(&self, r: &'a Routed) -> Cow<'a, str> {
        if !self.per_output {
            return Cow::Borrowed(&r.record.shard_id);
        }
        Cow::Owned(
            self.key.render(|v| match v {
                "shard" | "partition_key" => placeholder(r, v),
                _ if v.starts_with("attr:") => placeholder(r, v),
                _ => "",
            }) + "\u{0}"
                + &r.record.shard_id,
        )
    }

    async fn put(&self, outputs: &[&Routed]) -> Result<(), String> {
        let key = self.key_for(outputs);
        let mut body = Vec::with_capacity(outputs.iter().map(|r| r.record.data.len() + 1).sum());
        for r in outputs {
            encode(self.format, r, &mut body);
        }
        if self.gzip {
            let mut gz = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
            gz.write_all(&body).map_err(|e| e.to_string())?;
            body = gz.finish().map_err(|e| e.to_string())?;
        }
        let first = &outputs[0].record;
        let last = &outputs[outputs.len() - 1].record;
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type(&self.content_type)
            .metadata("sluice-shard-id", &first.shard_id)
            .metadata("sluice-first-sequence-number", &first.sequence_number)
            .metadata("sluice-last-sequence-number", &last.sequence_number)
            .metadata("sluice-records", outputs.len().to_string())
            .body(body.into());
        if self.gzip {
            req = req.content_encoding("gzip");
        }
        req.send().await.map(|_| ()).map_err(|e| {
            format!(
                "cannot put `s3://{}/{key}`: {}",
                self.bucket,
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        })
    }
}

impl Sink for S3Destination {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        format!("s3://{}", self.bucket)
    }

    fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// A key over S3's 1,024 bytes (a long attribute or partition key in
    /// it) is refused every time.
    fn refusal(&self, r: &Routed) -> Option<String> {
        let key = self.key_for(&[r]);
        (key.len() > MAX_KEY_BYTES).then(|| {
            format!(
                "object key `{}…` is {} bytes; S3 takes at most {MAX_KEY_BYTES}",
                key.chars().take(64).collect::<String>(),
                key.len()
            )
        })
    }

    /// One object per shard and rendered key (its outputs, in order);
    /// objects are independent of each other.
    fn plan(&self, outputs: &[&Routed]) -> Vec<Request> {
        let mut objects: Vec<Request> = Vec::new();
        let mut index: std::collections::HashMap<Cow<'_, str>, usize> = Default::default();
        for (i, r) in outputs.iter().enumerate() {
            let next = objects.len();
            let at = *index.entry(self.object_of(r)).or_insert(next);
            if at == next {
                objects.push(Request {
                    attempt: 1,
                    ..Request::default()
                });
            }
            let request = &mut objects[at];
            request.entries.push(i);
            request.keys.push(at as u64);
        }
        objects
    }

    /// Puts the object: all its entries are taken, or none.
    fn send<'a>(
        &'a self,
        outputs: &'a [&'a Routed],
        request: &'a Request,
    ) -> SinkFuture<'a, Vec<Verdict>> {
        Box::pin(async move {
            let group: Vec<&Routed> = request.entries.iter().map(|&i| outputs[i]).collect();
            let verdict = match self.put(&group).await {
                Ok(()) => Verdict::Taken,
                Err(reason) => Verdict::Failed(reason),
            };
            vec![verdict; group.len()]
        })
    }
}
