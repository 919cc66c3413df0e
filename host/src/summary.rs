//! The short, human-readable summary of one batch that `sluice run` prints
//! and fixture cases keep as `expected/summary.txt`.
//!
//! It holds no timings or paths, so it is the same on every machine.

use std::fmt::Write as _;

use crate::config::Plan;
use crate::dispatch::DispatchReport;
use crate::outcome::{BatchOutcome, RecordFailure};

/// Renders the summary of `outcome` and `report` under `plan`.
pub fn render(plan: &Plan, outcome: &BatchOutcome, report: &DispatchReport) -> String {
    let mut s = String::new();
    let w = &mut s;
    records_and_steps(w, plan, outcome);
    let dest_width = plan
        .destinations
        .iter()
        .map(|d| d.name.len())
        .max()
        .unwrap_or(0);
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

/// The summary's first part: what `[source]` read, the records in, the
/// pre-filter, and one line per step.
fn records_and_steps(w: &mut String, plan: &Plan, outcome: &BatchOutcome) {
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
        let n = plan.filters.patterns().len();
        let _ = writeln!(
            w,
            "  pre-filter ({n} pattern{}, no plugin call): dropped {}",
            if n == 1 { "" } else { "s" },
            src.prefiltered
        );
    }
    let step_width = plan.steps.iter().map(|st| st.name.len()).max().unwrap_or(0);
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
        if let Some(shadow) = &step.shadow {
            let _ = writeln!(
                w,
                "         shadow {}: calls {}, mismatches {}, failures {} (nothing delivered)",
                shadow.step.plugin, st.shadow_calls, st.shadow_mismatches, st.shadow_failures,
            );
        }
    }
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
