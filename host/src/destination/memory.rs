//! The in-memory destination: keeps outputs for tests, fixtures and dry runs.
//!
//! It can also refuse outputs on purpose ([`MemoryDestination::set_fault`]), the way
//! a real destination does: once an output of an order key (its shard and
//! partition key) is refused, the rest of that key's outputs in the same
//! request are refused too, as the dispatcher holds back a key's later
//! requests. By default everything is one request;
//! [`MemoryDestination::with_requests`] splits it into many, in lanes by
//! key, so that requests are in flight at once as with SQS. Property tests
//! inject thousands of faults this way; the real SQS and S3 paths are tested
//! against moto.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use super::{Request, Sink, SinkFuture, Verdict, encode, key_hash, one_request, pack_by_key};
use crate::config::Format;
use crate::outcome::Routed;

/// Says whether an output is refused, and why.
pub type Fault = Arc<dyn Fn(&Routed) -> Option<String> + Send + Sync>;

/// Collects encoded outputs; clones share the same buffer and fault.
#[derive(Clone)]
pub struct MemoryDestination {
    name: String,
    format: Format,
    lines: Arc<Mutex<Vec<u8>>>,
    fault: Arc<Mutex<Option<Fault>>>,
    /// `(entries per request, lanes)`, or one request for everything.
    requests: Option<(usize, usize)>,
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
            requests: None,
        }
    }

    /// The destination's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends requests of at most `entries` outputs, in `lanes` lanes (each
    /// order key in one lane), up to `lanes` in flight at once.
    pub fn with_requests(mut self, entries: usize, lanes: usize) -> MemoryDestination {
        self.requests = Some((entries.max(1), lanes.max(1)));
        self
    }

    /// From now on, refuses the outputs `fault` picks (`None`: takes everything).
    pub fn set_fault(&self, fault: Option<Fault>) {
        *self.fault.lock().unwrap_or_else(|p| p.into_inner()) = fault;
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

/// The order key of an output: its shard and partition key.
fn order_key(r: &Routed) -> u64 {
    key_hash(&[&r.record.shard_id, &r.record.partition_key])
}

impl Sink for MemoryDestination {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        "memory".into()
    }

    fn max_in_flight(&self) -> usize {
        self.requests.map_or(1, |(_, lanes)| lanes)
    }

    fn plan(&self, outputs: &[&Routed]) -> Vec<Request> {
        match self.requests {
            None => one_request(outputs),
            Some((entries, lanes)) => pack_by_key(
                outputs,
                outputs.len().div_ceil(entries).clamp(1, lanes),
                entries,
                usize::MAX,
                order_key,
                |_| 0,
            ),
        }
    }

    /// Appends the request's outputs, less those the fault refuses (and the
    /// later ones of their keys).
    fn send<'a>(
        &'a self,
        outputs: &'a [&'a Routed],
        request: &'a Request,
    ) -> SinkFuture<'a, Vec<Verdict>> {
        let fault = self.fault.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let mut refused: HashSet<u64> = HashSet::new();
        let verdicts = request
            .entries
            .iter()
            .map(|&i| {
                let r = outputs[i];
                let key = order_key(r);
                let reason = if refused.contains(&key) {
                    Some(format!(
                        "not sent: an earlier output of shard `{}` was refused",
                        r.record.shard_id
                    ))
                } else {
                    fault.as_ref().and_then(|f| f(r))
                };
                match reason {
                    Some(reason) => {
                        refused.insert(key);
                        Verdict::Failed(reason)
                    }
                    None => {
                        encode(self.format, r, &mut lines);
                        Verdict::Taken
                    }
                }
            })
            .collect();
        Box::pin(std::future::ready(verdicts))
    }
}
