//! The in-memory destination: keeps outputs for tests, fixtures and dry runs.

use std::sync::{Arc, Mutex};

use super::encode;
use crate::config::Format;
use crate::pipeline::Routed;

/// Collects encoded outputs; clones share the same buffer.
#[derive(Debug, Clone)]
pub struct MemorySink {
    name: String,
    format: Format,
    lines: Arc<Mutex<Vec<u8>>>,
}

impl MemorySink {
    /// An empty sink that encodes outputs in `format`.
    pub fn new(name: &str, format: Format) -> MemorySink {
        MemorySink {
            name: name.to_owned(),
            format,
            lines: Arc::default(),
        }
    }

    /// The destination's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Appends `outputs`.
    pub fn send(&self, outputs: &[&Routed]) {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        for r in outputs {
            encode(self.format, r, &mut lines);
        }
    }

    /// Everything received so far, one output per line.
    pub fn contents(&self) -> Vec<u8> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Forgets everything received so far.
    pub fn clear(&self) {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}
