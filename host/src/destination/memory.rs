//! The in-memory destination: keeps outputs for tests, fixtures and dry runs.
//!
//! It can also refuse outputs on purpose ([`MemoryDestination::set_fault`]), the way
//! a real destination does: once an output of a shard is refused, the rest of
//! that shard's outputs in the same send are refused too, as the SQS
//! destination stops a shard at its first failure and an S3 object is
//! all-or-nothing. Property tests inject thousands of faults this way; the
//! real SQS and S3 paths are tested against moto.

use std::sync::{Arc, Mutex};

use super::{SendFailure, encode};
use crate::config::Format;
use crate::outcome::{Routed, ShardCutoff};

/// Says whether an output is refused, and why.
pub type Fault = Arc<dyn Fn(&Routed) -> Option<String> + Send + Sync>;

/// Collects encoded outputs; clones share the same buffer and fault.
#[derive(Clone)]
pub struct MemoryDestination {
    name: String,
    format: Format,
    lines: Arc<Mutex<Vec<u8>>>,
    fault: Arc<Mutex<Option<Fault>>>,
}

impl std::fmt::Debug for MemoryDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryDestination")
            .field("name", &self.name)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl MemoryDestination {
    /// An empty destination that encodes outputs in `format`.
    pub fn new(name: &str, format: Format) -> MemoryDestination {
        MemoryDestination {
            name: name.to_owned(),
            format,
            lines: Arc::default(),
            fault: Arc::default(),
        }
    }

    /// The destination's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// From now on, refuses the outputs `fault` picks (`None`: takes everything).
    pub fn set_fault(&self, fault: Option<Fault>) {
        *self.fault.lock().unwrap_or_else(|p| p.into_inner()) = fault;
    }

    /// Appends `outputs`, less those refused; returns the refused ones.
    pub fn send(&self, outputs: &[&Routed]) -> Vec<SendFailure> {
        let fault = self.fault.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let Some(fault) = fault else {
            for r in outputs {
                encode(self.format, r, &mut lines);
            }
            return Vec::new();
        };
        let mut failures = Vec::new();
        let mut cutoff = ShardCutoff::default();
        for (i, r) in outputs.iter().enumerate() {
            let shard = r.record.shard_id.as_str();
            let reason = if cutoff.is_stopped(shard) {
                Some(format!(
                    "not sent: an earlier output of shard `{shard}` was refused"
                ))
            } else {
                fault(r)
            };
            match reason {
                Some(reason) => {
                    cutoff.fail(shard, i);
                    failures.push(SendFailure {
                        output: i,
                        reason,
                        for_good: false,
                    });
                }
                None => encode(self.format, r, &mut lines),
            }
        }
        failures
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
