//! Where `sluice consume` stopped, per shard, in a local JSON file, so that a
//! restart resumes there (as the event source mapping's own checkpoints do).
//!
//! ```json
//! {"stream": "clicks", "shards": {"shardId-000000000000": {"after": "4959…", "finished": false}}}
//! ```
//!
//! `after` is the last sequence number done (every record before it is done
//! too); `finished` says the shard was closed by a reshard and read to its
//! end. The file is written whole to a temporary file, then renamed over the
//! old one, so a crash never leaves half a file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One shard's checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardCheckpoint {
    /// The last sequence number done: reading resumes after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Closed and read to its end: its children may be read.
    #[serde(default)]
    pub finished: bool,
}

/// Which stream the checkpoints belong to beyond its name: a stream
/// deleted and created again under the same name (or another endpoint's)
/// starts its sequence numbers over, and old checkpoints would skip records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamIdentity {
    /// The stream's ARN.
    pub arn: String,
    /// When the stream was created, ms since the Unix epoch.
    pub created_ms: i64,
    /// The Kinesis endpoint read (empty: AWS's own for the region).
    #[serde(default)]
    pub endpoint: String,
}

/// The checkpoints of one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoints {
    /// The stream's name.
    pub stream: String,
    /// The stream they were written for (files from before it was recorded
    /// have none, and are taken as they are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<StreamIdentity>,
    /// Per shard id.
    #[serde(default)]
    pub shards: BTreeMap<String, ShardCheckpoint>,
}

/// The checkpoint file of one stream.
#[derive(Debug)]
pub struct CheckpointFile {
    path: PathBuf,
    saved: Checkpoints,
}

impl CheckpointFile {
    /// Opens (or starts) the checkpoints of `stream` at `path`. A file that
    /// holds another stream's checkpoints is refused, naming both; one
    /// written for another stream of the same name (recreated since, or at
    /// another endpoint) is stale: it is set aside (the third value says
    /// so, for the terminal) and reading starts as if there were none.
    pub fn open(
        path: &Path,
        stream: &str,
        identity: &StreamIdentity,
    ) -> Result<(CheckpointFile, Checkpoints, Option<String>), String> {
        let fresh = Checkpoints {
            stream: stream.to_owned(),
            identity: Some(identity.clone()),
            shards: BTreeMap::new(),
        };
        let (saved, stale) = match std::fs::read(path) {
            Ok(bytes) => {
                let c: Checkpoints = serde_json::from_slice(&bytes).map_err(|e| {
                    format!("checkpoint file `{}` is not valid: {e}", path.display())
                })?;
                if c.stream != stream {
                    return Err(format!(
                        "checkpoint file `{}` holds stream `{}`, not `{stream}`: name another file with `--checkpoints`",
                        path.display(),
                        c.stream
                    ));
                }
                match &c.identity {
                    Some(old) if old != identity => (
                        fresh,
                        Some(format!(
                            "checkpoint file `{}` was written for another stream named `{stream}` \
                             (created at {} ms at `{}`; this one was created at {} ms at `{}`): it \
                             was deleted and created again, so its checkpoints are ignored and \
                             will be overwritten",
                            path.display(),
                            old.created_ms,
                            old.endpoint,
                            identity.created_ms,
                            identity.endpoint
                        )),
                    ),
                    _ => (
                        Checkpoints {
                            identity: Some(identity.clone()),
                            ..c
                        },
                        None,
                    ),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (fresh, None),
            Err(e) => return Err(format!("cannot read `{}`: {e}", path.display())),
        };
        Ok((
            CheckpointFile {
                path: path.to_owned(),
                saved: saved.clone(),
            },
            saved,
            stale,
        ))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `now` if it differs from what was saved last.
    pub fn save(&mut self, now: &Checkpoints) -> Result<(), String> {
        if *now == self.saved {
            return Ok(());
        }
        let error = |e: std::io::Error| format!("cannot write `{}`: {e}", self.path.display());
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(error)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(now).unwrap_or_default();
        std::fs::write(&tmp, bytes).map_err(error)?;
        std::fs::rename(&tmp, &self.path).map_err(error)?;
        self.saved = now.clone();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_survive_a_restart_and_name_their_stream() {
        let dir = std::env::temp_dir().join(format!("sluice-ckpt-{}", std::process::id()));
        let path = dir.join("c.json");
        let id = StreamIdentity {
            arn: "arn:aws:kinesis:us-east-1:123456789012:stream/clicks".into(),
            created_ms: 1,
            endpoint: "http://127.0.0.1:1".into(),
        };
        let (mut file, mut now, stale) = CheckpointFile::open(&path, "clicks", &id).unwrap();
        assert!(now.shards.is_empty() && stale.is_none());
        now.shards.insert(
            "shardId-000000000000".into(),
            ShardCheckpoint {
                after: Some("42".into()),
                finished: false,
            },
        );
        file.save(&now).unwrap();
        let (_, again, stale) = CheckpointFile::open(&path, "clicks", &id).unwrap();
        assert_eq!(again, now);
        assert!(stale.is_none());
        let e = CheckpointFile::open(&path, "orders", &id).unwrap_err();
        assert!(e.contains("holds stream `clicks`, not `orders`"), "{e}");
        // The stream was deleted and created again: the checkpoints are stale.
        let recreated = StreamIdentity {
            created_ms: 2,
            ..id.clone()
        };
        let (_, fresh, stale) = CheckpointFile::open(&path, "clicks", &recreated).unwrap();
        assert!(fresh.shards.is_empty());
        let stale = stale.unwrap();
        assert!(stale.contains("deleted and created again"), "{stale}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
