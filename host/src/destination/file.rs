//! The `file` destination: one output per line in a local file.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};

use super::{DestinationError, encode};
use crate::config::Format;
use crate::config::destination::file::FilePlan;
use crate::outcome::Routed;

/// Appends outputs to a file, one line each.
///
/// The file (and its folder) is created, or truncated, at the first send of
/// the process, so a run's outputs replace the previous run's and a mere
/// `sluice check` writes nothing.
#[derive(Debug)]
pub struct FileDestination {
    name: String,
    path: PathBuf,
    format: Format,
    file: Option<File>,
}

impl FileDestination {
    /// The destination `plan` describes; nothing is written until the first send.
    pub fn new(name: &str, plan: &FilePlan) -> FileDestination {
        FileDestination {
            name: name.to_owned(),
            path: plan.path.clone(),
            format: plan.format,
            file: None,
        }
    }

    fn open(&mut self) -> Result<&mut File, DestinationError> {
        if self.file.is_none() {
            let error = |what: &str, e: std::io::Error| DestinationError {
                destination: self.name.clone(),
                message: format!("cannot {what} `{}`: {e}", self.path.display()),
            };
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| error("create the directory of", e))?;
            }
            self.file = Some(File::create(&self.path).map_err(|e| error("create", e))?);
        }
        Ok(self.file.as_mut().expect("just opened"))
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
    pub fn send(&mut self, outputs: &[&Routed]) -> Result<(), DestinationError> {
        let mut buf = Vec::with_capacity(outputs.len() * 256);
        for r in outputs {
            encode(self.format, r, &mut buf);
        }
        let (name, path) = (self.name.clone(), self.path.clone());
        let mut w = BufWriter::new(self.open()?);
        w.write_all(&buf)
            .and_then(|()| w.flush())
            .map_err(|e| DestinationError {
                destination: name,
                message: format!("cannot write `{}`: {e}", path.display()),
            })
    }
}
