//! The `file` destination: one output per line in a local file.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{DestinationError, Request, Sink, SinkFuture, Verdict, encode_request, one_request};
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
    file: Mutex<Option<File>>,
}

impl FileDestination {
    /// The destination `plan` describes; nothing is written until the first send.
    pub fn new(name: &str, plan: &FilePlan) -> FileDestination {
        FileDestination {
            name: name.to_owned(),
            path: plan.path.clone(),
            format: plan.format,
            file: Mutex::new(None),
        }
    }

    /// The file it writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `buf` (whole lines), then flushes.
    fn write(&self, buf: &[u8]) -> Result<(), DestinationError> {
        let error = |what: &str, e: std::io::Error| DestinationError {
            destination: self.name.clone(),
            message: format!("cannot {what} `{}`: {e}", self.path.display()),
        };
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if file.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| error("create the directory of", e))?;
            }
            *file = Some(File::create(&self.path).map_err(|e| error("create", e))?);
        }
        let Some(file) = file.as_mut() else {
            unreachable!("opened above")
        };
        let mut w = BufWriter::new(file);
        w.write_all(buf)
            .and_then(|()| w.flush())
            .map_err(|e| error("write", e))
    }
}

impl Sink for FileDestination {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn plan(&self, outputs: &[&Routed]) -> Vec<Request> {
        one_request(outputs)
    }

    fn send<'a>(
        &'a self,
        outputs: &'a [&'a Routed],
        request: &'a Request,
    ) -> SinkFuture<'a, Vec<Verdict>> {
        let verdict = match self.write(&encode_request(self.format, outputs, request)) {
            Ok(()) => Verdict::Taken,
            Err(e) => Verdict::Failed(e.message),
        };
        Box::pin(std::future::ready(vec![verdict; request.entries.len()]))
    }
}
