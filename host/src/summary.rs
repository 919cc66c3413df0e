//! The short, human-readable summary of one batch that `sluice run` prints
//! and fixture cases keep as `expected/summary.txt`.
//!
//! It holds no timings or paths, so it is the same on every machine.

use std::fmt::Write as _;

use crate::config::Plan;
use crate::dispatch::DispatchReport;
use crate::outcome::{BatchOutcome, RecordFailure};

/// Renders the summary of `outcome` and `report` under `plan`.
#[expect(
    clippy::too_many_lines,
    reason = "82 lines: to split at its seams (issue 32)"
)]
pub fn render(plan: &Plan, outcome: &BatchOutcome, report: &DispatchReport) -> String {
    let mut s = String::new();
    let w = &mut s;
    let step_width = plan.steps.iter().map(|st| st.name.len()).max().unwrap_or(0);
    let dest_width = plan
        .destinations
        .iter()
        .map(|d| d.name.len())
        .max()
        .unwrap_or(0);
    let src = &outcome.source;
    if src.aggregates + src.decompressed + src.control_messages > 0 {
        let _ = writeln!(
            w,
            "kinesis records: {} (KPL aggregates: {}, decompressed: {}, control messages: {})",
            src.kinesis_records, src.aggregates, src.decompressed, src.control_messages
        );
    }
    let _ = writeln!(w, "records in: {}", outcome.records_in);
    if !plan.filters.is_empty() {
        let _ = writeln!(
            w,
            "  pre-filter ({} pattern{}, no plugin call): dropped {}",
            plan.filters.patterns().len(),
            if plan.filters.patterns().len() == 1 {
                ""
            } else {
                "s"
            },
            src.prefiltered
        );
    }
    for (i, (step, st)) in plan.steps.iter().zip(&outcome.steps).enumerate() {
        let _ = writeln!(
            w,
            "  step {}  {:<step_width$}  {:<9}  in {:>5}  out {:>5}  dropped {:>5}  failed {:>5}",
            i + 1,
            step.name,
            step.kind.as_str(),
            st.input,
            st.output,
            st.dropped,
            st.failed,
        );
    }
    let delivered: usize = report.delivered.iter().sum();
    let _ = writeln!(
        w,
        "outputs delivered: {delivered} (records routed: {}, filtered: {}, failed: {}, held back: {})",
        outcome.records_in
            - outcome.filtered
            - outcome.failures.len()
            - outcome.held_back
            - outcome.dead_letters.len()
            - outcome.dropped.len(),
        outcome.filtered,
        outcome.failures.len(),
        outcome.held_back,
    );
    for (d, n) in plan.destinations.iter().zip(&report.delivered) {
        let _ = writeln!(w, "  {:<dest_width$}  {n:>5}", d.name);
    }
    let lists = [
        (
            "failed records",
            outcome.failures.iter().collect::<Vec<_>>(),
        ),
        (
            "dead-lettered records",
            outcome.dead_letters.iter().map(|d| &d.failure).collect(),
        ),
        ("dropped records", outcome.dropped.iter().collect()),
    ];
    for (title, failures) in lists {
        if failures.is_empty() {
            continue;
        }
        let _ = writeln!(w, "{title}: {}", failures.len());
        for f in failures {
            let _ = writeln!(w, "  {}", describe(f));
        }
    }
    s
}

/// One failure on one line: `#<index> <shard>:<sequence> [<class>] <stage> (<plugin>): <reason>`.
pub fn describe(f: &RecordFailure) -> String {
    format!(
        "#{} {}:{} [{}] {}{}: {}",
        f.index,
        f.shard_id.as_deref().unwrap_or("?"),
        f.sequence_number.as_deref().unwrap_or("?"),
        f.class.as_str(),
        f.stage,
        f.plugin
            .as_deref()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default(),
        f.reason
    )
}
