//! The `file` destination: one output per line in a local file.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};

use super::{SinkError, encode};
use crate::config::Format;
use crate::pipeline::Routed;

/// Appends outputs to a file, one line each.
#[derive(Debug)]
pub struct FileSink {
    name: String,
    path: PathBuf,
    format: Format,
    file: File,
}

impl FileSink {
    /// Creates (or truncates) the file and its parent directories.
    pub fn create(name: &str, path: &Path, format: Format) -> Result<FileSink, SinkError> {
        let error = |what: &str, e: std::io::Error| SinkError {
            destination: name.to_owned(),
            message: format!("cannot {what} `{}`: {e}", path.display()),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| error("create the directory of", e))?;
        }
        let file = File::create(path).map_err(|e| error("create", e))?;
        Ok(FileSink {
            name: name.to_owned(),
            path: path.to_owned(),
            format,
            file,
        })
    }

    /// The destination's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file it writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `outputs`, then flushes.
    pub fn send(&mut self, outputs: &[&Routed]) -> Result<(), SinkError> {
        let mut buf = Vec::with_capacity(outputs.len() * 256);
        for r in outputs {
            encode(self.format, r, &mut buf);
        }
        let mut w = BufWriter::new(&mut self.file);
        w.write_all(&buf)
            .and_then(|()| w.flush())
            .map_err(|e| SinkError {
                destination: self.name.clone(),
                message: format!("cannot write `{}`: {e}", self.path.display()),
            })
    }
}
