//! `sluice diff`'s comparison: what two pipelines made of the same records,
//! destination by destination (outputs added, removed, changed) and record
//! by record (filtered, failed, routed elsewhere).
//!
//! Each pipeline runs with in-memory destinations that keep the `envelope`
//! format, so an output is known by its lineage (shard, sequence and
//! sub-sequence numbers, output index): the same output in both runs is
//! compared byte for byte, and a changed one is shown as the JSON Patch
//! operations that turn the first into the second.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;

use host::app::App;
use host::destination::memory::MemoryDestination;
use host::event::Batch;

/// An input record: its shard and sequence number.
type RecordKey = (String, String);

/// An output: its record's shard, sequence and sub-sequence numbers and
/// its output index; a line that is no envelope (a dead letter) is known by
/// its position instead.
type OutputKey = (String, String, Option<u32>, u32);

/// What one pipeline made of the records: each destination's lines, and
/// each input record's fate.
#[derive(Debug, Default)]
pub struct Side {
    /// Per destination name, the lines it received, in order.
    pub outputs: BTreeMap<String, Vec<String>>,
    /// Per input record, in input order: what became of it.
    pub fates: Vec<(RecordKey, Fate)>,
}

/// What became of an input record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// No output and no failure.
    Filtered,
    /// Failed at a step (or `event`, `routing`, a destination), with the
    /// failure's class and what its policy did.
    Failed {
        /// The stage that failed it.
        stage: String,
        /// The failure class.
        class: String,
        /// `retry`, `dead-letter` or `drop`.
        action: String,
    },
    /// Delivered to these destinations (sorted).
    Routed(Vec<String>),
}

impl std::fmt::Display for Fate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fate::Filtered => f.write_str("filtered"),
            Fate::Failed {
                stage,
                class,
                action,
            } => write!(f, "failed at `{stage}` ({class}, {action})"),
            Fate::Routed(to) => write!(f, "routed to {}", to.join(", ")),
        }
    }
}

impl Side {
    /// Runs `batch` through `app` (whose destinations are `memory`) and adds
    /// what it made.
    pub async fn run(&mut self, app: &mut App, memory: &[MemoryDestination], batch: Batch) {
        let mut fates: Vec<(RecordKey, Fate)> = batch
            .records
            .iter()
            .map(|r| (r.shard_id.clone(), r.sequence_number.clone()))
            .chain(batch.rejected.iter().map(|r| {
                (
                    r.shard_id.clone().unwrap_or_default(),
                    r.sequence_number
                        .clone()
                        .unwrap_or_else(|| format!("#{}", r.index)),
                )
            }))
            .map(|k| (k, Fate::Filtered))
            .collect();
        let index: HashMap<RecordKey, usize> = fates
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.clone(), i))
            .collect();
        let report = app.process(batch, None).await;
        for m in memory {
            let text = String::from_utf8_lossy(&m.contents()).into_owned();
            m.clear();
            let lines = self.outputs.entry(m.name().to_owned()).or_default();
            for line in text.lines() {
                if let Ok(a) = host::archive::read_line(m.name(), 0, line.as_bytes(), 0)
                    && a.envelope
                    && let Some(&i) = index.get(&(a.record.shard_id, a.record.sequence_number))
                {
                    match &mut fates[i].1 {
                        Fate::Routed(to) if !to.iter().any(|d| d == m.name()) => {
                            to.push(m.name().to_owned());
                            to.sort();
                        }
                        fate @ Fate::Filtered => *fate = Fate::Routed(vec![m.name().to_owned()]),
                        _ => {}
                    }
                }
                lines.push(line.to_owned());
            }
        }
        let o = &report.outcome;
        let failed = o
            .failures
            .iter()
            .chain(o.dead_letters.iter().map(|d| &d.failure))
            .chain(&o.dropped);
        for f in failed {
            let key = (
                f.shard_id.clone().unwrap_or_default(),
                f.sequence_number
                    .clone()
                    .unwrap_or_else(|| format!("#{}", f.index)),
            );
            if let Some(&i) = index.get(&key) {
                fates[i].1 = Fate::Failed {
                    stage: f.stage.clone(),
                    class: f.class.as_str().to_owned(),
                    action: f.action.as_str().to_owned(),
                };
            }
        }
        self.fates.extend(fates);
    }
}

/// The differences between two sides, counted and with the first few of
/// each kind described.
#[derive(Debug, Default)]
pub struct Diff {
    /// Outputs only the second pipeline made.
    pub added: usize,
    /// Outputs only the first pipeline made.
    pub removed: usize,
    /// Outputs both made, with different contents.
    pub changed: usize,
    /// Records whose fate differs.
    pub fate_changed: usize,
    /// The report, for a person.
    pub text: String,
}

impl Diff {
    /// Whether both pipelines made the same.
    pub fn is_empty(&self) -> bool {
        self.added + self.removed + self.changed + self.fate_changed == 0
    }
}

/// Compares `a` with `b`, describing at most `show` differences of each
/// kind per destination (and `show` fate changes).
pub fn compare(a: &Side, b: &Side, show: usize) -> Diff {
    let mut diff = Diff::default();
    let names: std::collections::BTreeSet<&String> =
        a.outputs.keys().chain(b.outputs.keys()).collect();
    let empty = Vec::new();
    for name in names {
        let (x, y) = (
            a.outputs.get(name).unwrap_or(&empty),
            b.outputs.get(name).unwrap_or(&empty),
        );
        compare_destination(name, x, y, show, &mut diff);
    }
    let theirs: HashMap<&RecordKey, &Fate> = b.fates.iter().map(|(k, f)| (k, f)).collect();
    let mut shown = 0;
    for (key, fate) in &a.fates {
        let Some(other) = theirs.get(key) else {
            continue;
        };
        if fate != *other {
            if diff.fate_changed == 0 {
                diff.text.push_str("records whose fate changed:\n");
            }
            diff.fate_changed += 1;
            if shown < show {
                shown += 1;
                let _ = writeln!(diff.text, "  {}/{}: {fate} → {other}", key.0, key.1);
            }
        }
    }
    if diff.fate_changed > shown {
        let _ = writeln!(diff.text, "  … and {} more", diff.fate_changed - shown);
    }
    let _ = writeln!(
        diff.text,
        "added {}, removed {}, changed {}, fate changed {}",
        diff.added, diff.removed, diff.changed, diff.fate_changed
    );
    diff
}

fn output_key(destination: &str, position: usize, line: &str) -> OutputKey {
    match host::archive::read_line(destination, position, line.as_bytes(), 0) {
        Ok(a) if a.envelope => (
            a.record.shard_id,
            a.record.sequence_number,
            a.record.sub_sequence_number,
            a.output_index,
        ),
        _ => (String::new(), format!("#{position}"), None, 0),
    }
}

fn compare_destination(name: &str, a: &[String], b: &[String], show: usize, diff: &mut Diff) {
    let mut theirs: HashMap<OutputKey, VecDeque<usize>> = HashMap::new();
    for (i, line) in b.iter().enumerate() {
        theirs
            .entry(output_key(name, i, line))
            .or_default()
            .push_back(i);
    }
    let mut matched = vec![false; b.len()];
    let (mut removed, mut changed) = (Vec::new(), Vec::new());
    for (i, line) in a.iter().enumerate() {
        match theirs
            .get_mut(&output_key(name, i, line))
            .and_then(VecDeque::pop_front)
        {
            Some(j) => {
                matched[j] = true;
                if b[j] != *line {
                    changed.push((i, j));
                }
            }
            None => removed.push(i),
        }
    }
    let added: Vec<usize> = (0..b.len()).filter(|&j| !matched[j]).collect();
    diff.added += added.len();
    diff.removed += removed.len();
    diff.changed += changed.len();
    if added.len() + removed.len() + changed.len() == 0 {
        return;
    }
    let t = &mut diff.text;
    let _ = writeln!(
        t,
        "destination `{name}`: added {}, removed {}, changed {}",
        added.len(),
        removed.len(),
        changed.len()
    );
    for &j in added.iter().take(show) {
        let _ = writeln!(t, "  + {}", shown_line(name, j, &b[j]));
    }
    for &i in removed.iter().take(show) {
        let _ = writeln!(t, "  - {}", shown_line(name, i, &a[i]));
    }
    for &(i, j) in changed.iter().take(show) {
        let _ = writeln!(t, "  ~ {}", identity(&output_key(name, i, &a[i])));
        for line in json_changes(&a[i], &b[j]) {
            let _ = writeln!(t, "      {line}");
        }
    }
    let more = added.len().saturating_sub(show)
        + removed.len().saturating_sub(show)
        + changed.len().saturating_sub(show);
    if more > 0 {
        let _ = writeln!(t, "  … and {more} more");
    }
}

/// How an output is named: `shard/sequence[.sub]#output`.
fn identity(k: &OutputKey) -> String {
    let sub = k.2.map_or_else(String::new, |s| format!(".{s}"));
    format!("{}/{}{sub}#{}", k.0, k.1, k.3)
}

/// An output as the report shows it: its identity and payload (an
/// envelope), or the line.
fn shown_line(destination: &str, position: usize, line: &str) -> String {
    match host::archive::read_line(destination, position, line.as_bytes(), 0) {
        Ok(a) if a.envelope => {
            let k = (
                a.record.shard_id,
                a.record.sequence_number,
                a.record.sub_sequence_number,
                a.output_index,
            );
            format!(
                "{}: {}",
                identity(&k),
                clip(&String::from_utf8_lossy(&a.record.data))
            )
        }
        _ => clip(line),
    }
}

/// What turns line `a` into line `b`: JSON Patch operations, one per
/// line, each with the value it replaces; both lines when either is not
/// JSON.
fn json_changes(a: &str, b: &str) -> Vec<String> {
    let (Ok(x), Ok(y)) = (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) else {
        return vec![format!("- {}", clip(a)), format!("+ {}", clip(b))];
    };
    let old = |path: &str| {
        x.pointer(path)
            .map_or_else(String::new, |v| clip(&v.to_string()))
    };
    json_patch::diff(&x, &y)
        .0
        .iter()
        .map(|op| match op {
            json_patch::PatchOperation::Add(o) => {
                format!("+ {}: {}", o.path, clip(&o.value.to_string()))
            }
            json_patch::PatchOperation::Remove(o) => {
                format!("- {}: {}", o.path, old(o.path.as_str()))
            }
            json_patch::PatchOperation::Replace(o) => format!(
                "~ {}: {} → {}",
                o.path,
                old(o.path.as_str()),
                clip(&o.value.to_string())
            ),
            other => other.to_string(),
        })
        .collect()
}

/// `text`, cut at 240 characters.
fn clip(text: &str) -> String {
    const MAX: usize = 240;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(seq: &str, data: &str) -> String {
        format!(
            r#"{{"shard_id":"s","sequence_number":"{seq}","output_index":0,"partition_key":"p","arrival_ms":0,"data":{data}}}"#
        )
    }

    fn side(lines: &[String], fates: &[(&str, Fate)]) -> Side {
        Side {
            outputs: [("out".to_owned(), lines.to_vec())].into(),
            fates: fates
                .iter()
                .map(|(seq, f)| (("s".to_owned(), (*seq).to_owned()), f.clone()))
                .collect(),
        }
    }

    #[test]
    fn outputs_are_matched_by_lineage_and_compared() {
        let routed = Fate::Routed(vec!["out".into()]);
        let a = side(
            &[envelope("1", r#"{"v":1}"#), envelope("2", r#"{"v":2}"#)],
            &[
                ("1", routed.clone()),
                ("2", routed.clone()),
                ("3", Fate::Filtered),
            ],
        );
        let b = side(
            &[envelope("1", r#"{"v":10}"#), envelope("3", r#"{"v":3}"#)],
            &[("1", routed.clone()), ("2", Fate::Filtered), ("3", routed)],
        );
        let d = compare(&a, &b, 3);
        assert_eq!(
            (d.added, d.removed, d.changed, d.fate_changed),
            (1, 1, 1, 2)
        );
        assert!(d.text.contains("~ /data/v: 1 → 10"), "{}", d.text);
        assert!(
            d.text.contains("  s/2: routed to out → filtered"),
            "{}",
            d.text
        );
        assert!(
            d.text
                .ends_with("added 1, removed 1, changed 1, fate changed 2\n"),
            "{}",
            d.text
        );
        assert!(!d.is_empty());
        let same = compare(&a, &a, 3);
        assert!(same.is_empty());
        assert_eq!(same.text, "added 0, removed 0, changed 0, fate changed 0\n");
    }
}
