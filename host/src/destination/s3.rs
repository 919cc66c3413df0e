//! The `s3` destination: one object per batch and shard, every output one line.
//!
//! The key comes from the destination's template, filled from the records
//! themselves (shard, first and last sequence number, the first record's
//! arrival hour), so a retried batch writes the same key: retries overwrite,
//! never duplicate. Objects carry the metadata `sluice-shard-id`,
//! `sluice-first-sequence-number`, `sluice-last-sequence-number` and
//! `sluice-records`.

use std::io::Write as _;

use chrono::{DateTime, Datelike as _, Timelike as _};
use flate2::Compression;
use flate2::write::GzEncoder;

use super::{SendFailure, encode};
use crate::config::destination::s3::S3Plan;
use crate::config::{Format, Template};
use crate::outcome::Routed;

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
    /// `PutObject` requests made so far.
    requests: std::sync::atomic::AtomicUsize,
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
            requests: Default::default(),
        }
    }

    /// `PutObject` requests made so far.
    pub fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The destination's name.
    pub fn name(&self) -> &str {
        &self.name
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
            "shard" => &first.shard_id,
            "first_seq" => &first.sequence_number,
            "last_seq" => &last.sequence_number,
            "yyyy" => &yyyy,
            "mm" => &mm,
            "dd" => &dd,
            "hh" => &hh,
            _ => &self.name,
        })
    }

    /// Writes `outputs`, one object per shard (in each, the shard's outputs in
    /// order); returns the outputs not delivered.
    pub async fn send(&self, outputs: &[&Routed]) -> Vec<SendFailure> {
        let mut shards: Vec<(&str, Vec<usize>)> = Vec::new();
        for (i, r) in outputs.iter().enumerate() {
            let shard = r.record.shard_id.as_str();
            match shards.iter_mut().find(|(s, _)| *s == shard) {
                Some((_, idx)) => idx.push(i),
                None => shards.push((shard, vec![i])),
            }
        }
        let mut failures = Vec::new();
        for (_, idx) in shards {
            let group: Vec<&Routed> = idx.iter().map(|&i| outputs[i]).collect();
            if let Err(reason) = self.put(&group).await {
                failures.extend(idx.into_iter().map(|output| SendFailure {
                    for_good: false,
                    output,
                    reason: reason.clone(),
                }));
            }
        }
        failures.sort_by_key(|f| f.output);
        failures
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
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        req.send().await.map(|_| ()).map_err(|e| {
            format!(
                "cannot put `s3://{}/{key}`: {}",
                self.bucket,
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        })
    }
}
