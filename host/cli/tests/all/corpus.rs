//! The bad-input corpus: every malformed event in `tests/corpus/events/`,
//! every bad config in `tests/corpus/configs/` and every payload in
//! `tests/corpus/sources/` that `[source]` cannot read gets a clear error
//! that names the input and where, compared with its committed golden file
//! (`<name>.expected`). `BLESS=1` rewrites the golden files; read the diff.
//!
//! The inputs are written by `tests/corpus/make_corpus.py`.

use std::path::{Path, PathBuf};

use host::config::{self, Decompress, Source, SourceFormat};
use host::{event, source};

fn corpus(kind: &str, ext: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/corpus")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    files
}

/// Compares `actual` with `<input>.expected`; returns a description of any difference.
fn golden(input: &Path, actual: &str) -> Option<String> {
    let path = input.with_extension(format!(
        "{}.expected",
        input.extension().unwrap().to_str().unwrap()
    ));
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return None;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    (expected != actual).then(|| {
        format!(
            "{}:\n--- expected\n{expected}--- actual\n{actual}",
            input.display()
        )
    })
}

/// What decoding an event says, machine-independently.
fn render_event(file: &Path) -> String {
    let name = file.file_name().unwrap().to_str().unwrap();
    let bytes = std::fs::read(file).unwrap();
    match event::decode(&bytes, name) {
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with(name),
                "{name}: the error must name the input: {msg}"
            );
            format!("error: {msg}\n")
        }
        Ok(batch) => {
            if batch.rejected.is_empty() {
                return format!("{name}: a corpus event must be bad, but every record decoded\n");
            }
            let head = format!(
                "decoded: {}, rejected: {}\n",
                batch.records.len(),
                batch.rejected.len()
            );
            head + &render_rejected(&batch.rejected)
        }
    }
}

#[test]
fn every_malformed_event_is_named_and_explained() {
    let files = corpus("events", "json");
    assert!(files.len() >= 100, "only {} malformed events", files.len());
    let diffs: Vec<String> = files
        .iter()
        .filter_map(|f| golden(f, &render_event(f)))
        .collect();
    let good: Vec<String> = files
        .iter()
        .map(|f| render_event(f))
        .filter(|r| r.contains("but every record decoded"))
        .collect();
    assert!(good.is_empty(), "{}", good.concat());
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

/// How a `tests/corpus/sources/` case is read: its name's prefix says.
fn source_for(name: &str) -> Source {
    let (prefix, _) = name.split_once('-').expect("<prefix>-<case>.json");
    match prefix {
        "kpl" => Source::default(),
        "gzip" => Source {
            decompress: Decompress::Gzip,
            ..Source::default()
        },
        "zstd" => Source {
            decompress: Decompress::Zstd,
            ..Source::default()
        },
        "auto" => Source {
            decompress: Decompress::Auto,
            ..Source::default()
        },
        "cwl" => Source {
            format: SourceFormat::CloudwatchLogs,
            ..Source::default()
        },
        _ => panic!("{name}: unknown prefix `{prefix}` (kpl, gzip, zstd, auto, cwl)"),
    }
}

/// What reading a well-formed event's payloads says: each unreadable one
/// fails alone, named by its sequence number, and its neighbours are read.
fn render_source(file: &Path) -> String {
    let name = file.file_name().unwrap().to_str().unwrap();
    let bytes = std::fs::read(file).unwrap();
    let batch = event::decode(&bytes, name).expect("a sources case is a well-formed event");
    assert!(
        batch.rejected.is_empty(),
        "{name}: the event itself must decode"
    );
    let n = batch.len();
    let read = source::expand(batch, &source_for(name));
    assert!(read.len() >= n, "{name}: a record was lost");
    if read.rejected.is_empty() {
        return format!("{name}: a corpus payload must be unreadable, but every one was read\n");
    }
    let head = format!(
        "read: {} records, unreadable: {}\n",
        read.records.len(),
        read.rejected.len()
    );
    head + &render_rejected(&read.rejected)
}

/// One line per rejected record: its slot, shard, sequence number and why.
fn render_rejected(rejected: &[event::Rejected]) -> String {
    let mut out = String::new();
    for r in rejected {
        assert!(!r.reason.is_empty());
        out.push_str(&format!(
            "#{} {}:{}: {}\n",
            r.index,
            r.shard_id.as_deref().unwrap_or("?"),
            r.sequence_number.as_deref().unwrap_or("?"),
            r.reason
        ));
    }
    out
}

#[test]
fn every_unreadable_payload_fails_alone_and_is_explained() {
    let files = corpus("sources", "json");
    assert!(files.len() >= 25, "only {} source cases", files.len());
    let rendered: Vec<(PathBuf, String)> = files
        .into_iter()
        .map(|f| {
            let r = render_source(&f);
            (f, r)
        })
        .collect();
    let readable: Vec<&str> = rendered
        .iter()
        .filter(|(_, r)| r.contains("but every one was read"))
        .map(|(_, r)| r.as_str())
        .collect();
    assert!(readable.is_empty(), "{}", readable.concat());
    let diffs: Vec<String> = rendered.iter().filter_map(|(f, r)| golden(f, r)).collect();
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

#[test]
fn every_bad_config_is_named_and_explained() {
    let files = corpus("configs", "toml");
    assert!(files.len() >= 50, "only {} bad configs", files.len());
    let dir = files[0].parent().unwrap().display().to_string();
    let diffs: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let msg = match config::load(f) {
                Ok(_) => panic!("{}: a corpus config must be refused", f.display()),
                Err(e) => e.to_string(),
            };
            assert!(
                msg.contains(&f.display().to_string()),
                "the error must name the file: {msg}"
            );
            golden(f, &format!("{}\n", msg.replace(&dir, "<corpus>")))
        })
        .collect();
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}
