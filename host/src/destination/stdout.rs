//! The `stdout` destination: one output per line on standard output.

use std::io::Write as _;

use super::{Request, Sink, SinkFuture, Verdict, encode_request, one_request};
use crate::config::Format;
use crate::config::destination::stdout::StdoutPlan;
use crate::outcome::Routed;

/// Writes outputs to the process's standard output, one line each.
#[derive(Debug)]
pub struct StdoutDestination {
    name: String,
    format: Format,
}

impl StdoutDestination {
    /// The destination `plan` describes.
    pub fn new(name: &str, plan: &StdoutPlan) -> StdoutDestination {
        StdoutDestination {
            name: name.to_owned(),
            format: plan.format,
        }
    }
}

impl Sink for StdoutDestination {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        "stdout".into()
    }

    fn plan(&self, outputs: &[&Routed]) -> Vec<Request> {
        one_request(outputs)
    }

    fn send<'a>(
        &'a self,
        outputs: &'a [&'a Routed],
        request: &'a Request,
    ) -> SinkFuture<'a, Vec<Verdict>> {
        let buf = encode_request(self.format, outputs, request);
        let mut out = std::io::stdout().lock();
        let verdict = match out.write_all(&buf).and_then(|()| out.flush()) {
            Ok(()) => Verdict::Taken,
            Err(e) => Verdict::Failed(format!("cannot write to stdout: {e}")),
        };
        Box::pin(std::future::ready(vec![verdict; request.entries.len()]))
    }
}
