//! The live status line of `sluice consume`: records, rate, invocations and
//! each shard's lag, redrawn in place on a terminal, a line every 5 s
//! otherwise.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use super::{ConsumeReport, ShardRun, State};

/// The live status line: records/s and lag per shard, on stderr.
pub(super) struct Status {
    on: bool,
    tty: bool,
    last: Instant,
    last_records: usize,
    shown: bool,
}

impl Status {
    pub(super) fn new(on: bool) -> Status {
        Status {
            on,
            tty: std::io::stderr().is_terminal(),
            last: Instant::now(),
            last_records: 0,
            shown: false,
        }
    }

    pub(super) fn show(&mut self, report: &ConsumeReport, shards: &[ShardRun], started: Instant) {
        let every = if self.tty {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(5)
        };
        if !self.on || self.last.elapsed() < every {
            return;
        }
        let rate = (report.records - self.last_records) as f64 / self.last.elapsed().as_secs_f64();
        self.last = Instant::now();
        self.last_records = report.records;
        let lag: Vec<String> = shards
            .iter()
            .filter(|s| matches!(s.state, State::Reading | State::Drained))
            .map(|s| match s.lag_ms {
                Some(ms) => format!("{} {ms} ms", short(&s.info.id)),
                None => format!("{} ?", short(&s.info.id)),
            })
            .collect();
        let line = format!(
            "consume: {} records, {rate:.0}/s, {} invocations, {} discarded, {:.0} s; lag: {}",
            report.records,
            report.invocations,
            report.discarded,
            started.elapsed().as_secs_f64(),
            if lag.is_empty() {
                "-".into()
            } else {
                lag.join(", ")
            }
        );
        if self.tty {
            eprint!("\r\x1b[2K{line}");
        } else {
            eprintln!("{line}");
        }
        self.shown = true;
    }

    pub(super) fn finish(&self) {
        if self.on && self.tty && self.shown {
            eprintln!();
        }
    }
}

/// `shardId-000000000001` → `shard 1`.
fn short(id: &str) -> String {
    id.strip_prefix("shardId-")
        .map(|n| format!("shard {}", n.trim_start_matches('0').max("0")))
        .unwrap_or_else(|| id.to_owned())
}
