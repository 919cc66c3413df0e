//! Where a config or plugin lives: a local path or an `s3://bucket/key` URI.

use std::path::{Path, PathBuf};

/// A config or plugin location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local file.
    File(PathBuf),
    /// An S3 object.
    S3 {
        /// The bucket.
        bucket: String,
        /// The object key.
        key: String,
    },
}

impl Location {
    /// Parses `s3://bucket/key` or a path. An `s3://` URI without a bucket or
    /// key is an error naming what is missing.
    ///
    /// ```
    /// use sluice_core::config::Location;
    /// assert_eq!(
    ///     Location::parse("s3://acme/cfg/pipeline.toml").unwrap(),
    ///     Location::S3 { bucket: "acme".into(), key: "cfg/pipeline.toml".into() }
    /// );
    /// assert!(Location::parse("s3://acme").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Location, String> {
        match text.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() || key.is_empty() || key.ends_with('/') {
                    return Err(format!(
                        "`{text}` is not an S3 object URI: expected `s3://<bucket>/<key>`"
                    ));
                }
                Ok(Location::S3 {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                })
            }
            None if text.is_empty() => Err("the location is empty".into()),
            None => Ok(Location::File(PathBuf::from(text))),
        }
    }

    /// Resolves `reference` (an `s3://` URI, an absolute path, or a path
    /// relative to this location's folder).
    pub fn join(&self, reference: &str) -> Result<Location, String> {
        let parsed = Location::parse(reference)?;
        Ok(match (self, parsed) {
            (_, s3 @ Location::S3 { .. }) => s3,
            (_, Location::File(p)) if p.is_absolute() => Location::File(p),
            (Location::File(base), Location::File(p)) => {
                Location::File(base.parent().unwrap_or(Path::new("")).join(p))
            }
            (Location::S3 { bucket, key }, Location::File(p)) => {
                let dir = key.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                let mut parts: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
                for seg in reference.split('/') {
                    match seg {
                        "" | "." => {}
                        ".." => {
                            parts.pop();
                        }
                        s => parts.push(s),
                    }
                }
                let _ = p;
                Location::S3 {
                    bucket: bucket.clone(),
                    key: parts.join("/"),
                }
            }
        })
    }

    /// The last segment: a file or object name.
    pub fn file_name(&self) -> &str {
        match self {
            Location::File(p) => p.file_name().and_then(|n| n.to_str()).unwrap_or(""),
            Location::S3 { key, .. } => key.rsplit('/').next().unwrap_or(key),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(p) => write!(f, "{}", p.display()),
            Location::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_references_resolve_against_the_folder() {
        let s3 = Location::parse("s3://b/pipelines/clicks/pipeline.toml").unwrap();
        assert_eq!(
            s3.join("plugins/redact.wasm").unwrap().to_string(),
            "s3://b/pipelines/clicks/plugins/redact.wasm"
        );
        assert_eq!(
            s3.join("../shared/x.wasm").unwrap().to_string(),
            "s3://b/pipelines/shared/x.wasm"
        );
        assert_eq!(
            s3.join("s3://other/k.wasm").unwrap().to_string(),
            "s3://other/k.wasm"
        );
        let file = Location::parse("examples/c/pipeline.toml").unwrap();
        assert_eq!(
            file.join("p.wasm").unwrap().to_string(),
            "examples/c/p.wasm"
        );
        assert_eq!(file.join("/abs/p.wasm").unwrap().to_string(), "/abs/p.wasm");
    }

    #[test]
    fn bad_s3_uris_say_what_is_expected() {
        for bad in [
            "s3://",
            "s3:///key",
            "s3://bucket",
            "s3://bucket/",
            "s3://bucket/dir/",
        ] {
            let e = Location::parse(bad).unwrap_err();
            assert!(e.contains("expected `s3://<bucket>/<key>`"), "{bad}: {e}");
        }
    }
}
