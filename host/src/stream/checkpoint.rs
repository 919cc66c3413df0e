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

/// The checkpoints of one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoints {
    /// The stream's name.
    pub stream: String,
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
    /// holds another stream's checkpoints is refused, naming both.
    pub fn open(path: &Path, stream: &str) -> Result<(CheckpointFile, Checkpoints), String> {
        let saved = match std::fs::read(path) {
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
                c
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Checkpoints {
                stream: stream.to_owned(),
                shards: BTreeMap::new(),
            },
            Err(e) => return Err(format!("cannot read `{}`: {e}", path.display())),
        };
        Ok((
            CheckpointFile {
                path: path.to_owned(),
                saved: saved.clone(),
            },
            saved,
        ))
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
        let (mut file, mut now) = CheckpointFile::open(&path, "clicks").unwrap();
        assert!(now.shards.is_empty());
        now.shards.insert(
            "shardId-000000000000".into(),
            ShardCheckpoint {
                after: Some("42".into()),
                finished: false,
            },
        );
        file.save(&now).unwrap();
        let (_, again) = CheckpointFile::open(&path, "clicks").unwrap();
        assert_eq!(again, now);
        let e = CheckpointFile::open(&path, "orders").unwrap_err();
        assert!(e.contains("holds stream `clicks`, not `orders`"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
