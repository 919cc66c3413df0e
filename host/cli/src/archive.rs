//! An archive to read records back from (`sluice replay`, `sluice diff`):
//! a local folder or an `s3://bucket/prefix`, its objects listed in key
//! order and fetched a few at a time ahead of the reader.
//!
//! What a line holds is [`host::archive`]'s: an envelope gives the record
//! back whole, a raw JSON line only its payload.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use host::archive::{Archived, LineError, ObjectError};
use host::aws::Aws;
use tokio::task::JoinHandle;

/// The most one archive object may inflate to (1 GiB).
pub const MAX_OBJECT_BYTES: u64 = 1 << 30;

/// Objects fetched ahead of the one being read.
const READ_AHEAD: usize = 4;

/// Where the archive lives.
#[derive(Debug, Clone)]
pub enum Archive {
    /// Every file under a folder (hidden ones skipped), by relative path.
    Folder(PathBuf),
    /// Every object under a prefix of a bucket.
    S3 {
        /// The S3 client.
        client: aws_sdk_s3::Client,
        /// The bucket.
        bucket: String,
        /// The key prefix (may be empty).
        prefix: String,
    },
}

/// One object of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// Its key (S3) or path relative to the folder, `/`-separated.
    pub name: String,
    /// Its size as stored, in bytes.
    pub size: u64,
    /// When it was written, ms since the Unix epoch (the arrival time of a
    /// raw line's record).
    pub modified_ms: u64,
}

impl Archive {
    /// The archive `from` names: `s3://bucket/prefix` (AWS clients from the
    /// environment, `AWS_ENDPOINT_URL` honoured) or a folder.
    pub async fn open(from: &str) -> anyhow::Result<Archive> {
        if let Some(rest) = from.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            anyhow::ensure!(!bucket.is_empty(), "`{from}` names no bucket");
            let aws = Aws::from_env().await;
            return Ok(Archive::S3 {
                client: aws.s3,
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            });
        }
        let dir = PathBuf::from(from);
        anyhow::ensure!(
            dir.is_dir(),
            "`{from}` is neither a folder nor an s3://bucket/prefix"
        );
        Ok(Archive::Folder(dir))
    }

    /// Every object, in key (path) order.
    pub async fn list(&self) -> anyhow::Result<Vec<Object>> {
        let mut objects = match self {
            Archive::Folder(dir) => {
                let mut found = Vec::new();
                walk(dir, dir, &mut found)?;
                found
            }
            Archive::S3 {
                client,
                bucket,
                prefix,
            } => list_s3(client, bucket, prefix).await?,
        };
        objects.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(objects)
    }

    /// The object's bytes, inflated when gzip.
    pub async fn read(&self, object: &Object) -> anyhow::Result<Vec<u8>> {
        let bytes = match self {
            Archive::Folder(dir) => tokio::fs::read(dir.join(&object.name))
                .await
                .with_context(|| format!("cannot read `{}`", dir.join(&object.name).display()))?,
            Archive::S3 { client, bucket, .. } => {
                let out = client
                    .get_object()
                    .bucket(bucket)
                    .key(&object.name)
                    .send()
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "cannot get `s3://{bucket}/{}`: {}",
                            object.name,
                            aws_sdk_s3::error::DisplayErrorContext(&e)
                        )
                    })?;
                out.body
                    .collect()
                    .await
                    .with_context(|| format!("cannot read `s3://{bucket}/{}`", object.name))?
                    .to_vec()
            }
        };
        host::archive::inflate(&object.name, bytes, MAX_OBJECT_BYTES)
            .map_err(|e: ObjectError| anyhow::anyhow!(e))
    }

    /// Reads `objects` in order, [`READ_AHEAD`] fetched ahead of the one
    /// handed out.
    pub fn reader(&self, objects: Vec<Object>) -> Reader {
        Reader {
            archive: self.clone(),
            waiting: objects.into(),
            fetching: VecDeque::new(),
        }
    }
}

/// Hands out an archive's objects in order, fetching ahead.
pub struct Reader {
    archive: Archive,
    waiting: VecDeque<Object>,
    fetching: VecDeque<(Object, JoinHandle<anyhow::Result<Vec<u8>>>)>,
}

impl Reader {
    /// The next object and its inflated bytes; `None` after the last.
    pub async fn next(&mut self) -> Option<(Object, anyhow::Result<Vec<u8>>)> {
        while self.fetching.len() < READ_AHEAD {
            let Some(object) = self.waiting.pop_front() else {
                break;
            };
            let (archive, o) = (self.archive.clone(), object.clone());
            let fetch = tokio::spawn(async move { archive.read(&o).await });
            self.fetching.push_back((object, fetch));
        }
        let (object, fetch) = self.fetching.pop_front()?;
        let bytes = fetch
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("the read of `{}` failed: {e}", object.name)));
        Some((object, bytes))
    }
}

/// Every record of the archive (optionally between two arrival times), in
/// key order: what `sluice diff --from` compares.
pub async fn read_all(
    archive: &Archive,
    window: &ArrivalWindow,
) -> anyhow::Result<Vec<Result<Archived, LineError>>> {
    let mut reader = archive.reader(archive.list().await?);
    let mut out = Vec::new();
    while let Some((object, bytes)) = reader.next().await {
        let bytes = bytes?;
        out.extend(
            host::archive::read_lines(&object.name, &bytes, object.modified_ms)
                .map(|(_, l)| l)
                .filter(|l| {
                    l.as_ref()
                        .map_or(true, |a| window.holds(a.record.arrival_ms))
                }),
        );
    }
    Ok(out)
}

/// Arrival times to keep: `[since, until)`, ms since the Unix epoch.
#[derive(Debug, Clone, Copy, Default)]
pub struct ArrivalWindow {
    /// The first arrival time kept.
    pub since: Option<u64>,
    /// The first arrival time no longer kept.
    pub until: Option<u64>,
}

impl ArrivalWindow {
    /// Whether a record that arrived at `ms` is in the window.
    pub fn holds(&self, ms: u64) -> bool {
        self.since.is_none_or(|s| ms >= s) && self.until.is_none_or(|u| ms < u)
    }
}

/// An RFC 3339 time (`2026-12-01T00:00:00Z`) as ms since the Unix epoch.
pub fn parse_time(text: &str) -> Result<u64, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis().max(0) as u64)
        .map_err(|e| format!("`{text}` is not an RFC 3339 time (like 2026-12-01T00:00:00Z): {e}"))
}

fn walk(root: &Path, dir: &Path, found: &mut Vec<Object>) -> anyhow::Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list `{}`", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list `{}`", dir.display()))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let meta = entry
            .metadata()
            .with_context(|| format!("cannot read `{}`", path.display()))?;
        if meta.is_dir() {
            walk(root, &path, found)?;
            continue;
        }
        let name = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        let modified_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as u64);
        found.push(Object {
            name,
            size: meta.len(),
            modified_ms,
        });
    }
    Ok(())
}

async fn list_s3(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> anyhow::Result<Vec<Object>> {
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    let mut found = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            anyhow::anyhow!(
                "cannot list `s3://{bucket}/{prefix}`: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        })?;
        for o in page.contents() {
            let Some(key) = o.key().filter(|k| !k.ends_with('/')) else {
                continue;
            };
            found.push(Object {
                name: key.to_owned(),
                size: o.size().unwrap_or(0).max(0) as u64,
                modified_ms: o
                    .last_modified()
                    .and_then(|t| t.to_millis().ok())
                    .map_or(0, |ms| ms.max(0) as u64),
            });
        }
    }
    Ok(found)
}

/// Archived lines as one batch, in order: a line that could not be read
/// is a rejected record (it fails with class `decode`, naming its object
/// and line, and goes where the pipeline's policy sends it).
pub fn batch_of(
    lines: impl IntoIterator<Item = Result<Archived, LineError>>,
) -> host::event::Batch {
    let mut batch = host::event::Batch::default();
    for (index, line) in lines.into_iter().enumerate() {
        match line {
            Ok(a) => {
                batch.records.push(a.record);
                batch.slot.push(index);
            }
            Err(e) => batch.rejected.push(host::event::Rejected {
                index,
                shard_id: Some(e.object.clone()),
                sequence_number: Some(format!("line {}", e.line)),
                reason: e.to_string(),
                raw: e.raw,
            }),
        }
    }
    batch
}
