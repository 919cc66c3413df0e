//! Runs every golden-file case under `examples/` through the real plugins.
//!
//! Add a case by adding a folder `examples/<pipeline>/tests/<case>/` with an
//! `event.json`, then run `BLESS=1 cargo test -p host --test fixtures` and
//! review the new `expected/` files. See `host::fixture` for the convention.

use std::path::Path;

#[test]
fn fixture_cases_match_their_expected_outputs() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let bless = std::env::var_os("BLESS").is_some_and(|v| v != "0");
    let suites = host::fixture::suites(&examples).expect("listing example pipelines");
    assert!(
        !suites.is_empty(),
        "no pipeline with tests/ under {}",
        examples.display()
    );

    let mut cases = 0;
    let mut report = String::new();
    for suite in suites {
        for case in host::fixture::run_suite(&suite, bless).expect("running fixture cases") {
            cases += 1;
            for (file, diff) in &case.mismatches {
                report.push_str(&format!("\n{}: {file}\n{diff}", case.dir.display()));
            }
        }
    }
    assert!(
        cases >= 6,
        "expected at least 6 fixture cases, found {cases}"
    );
    assert!(
        report.is_empty(),
        "fixture outputs differ from expected/ (re-bless with BLESS=1 if the change is intended):{report}"
    );
}

/// A case whose plugin output changes must fail with a diff that shows the change.
#[test]
fn a_changed_output_fails_the_case_with_a_readable_diff() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/clickstream");
    let suite = std::env::temp_dir().join(format!("sluice-fixture-diff-{}", std::process::id()));
    let case = suite.join("tests/page-views");
    std::fs::create_dir_all(case.join("expected")).unwrap();
    let config = std::fs::read_to_string(src.join("pipeline.toml"))
        .unwrap()
        .replace(
            "../../target/plugins/filter_field.wasm",
            host::built_plugins::FILTER_FIELD,
        )
        .replace(
            "../../target/plugins/redact.wasm",
            host::built_plugins::REDACT,
        )
        .replace(
            "../../target/plugins/route_field.wasm",
            host::built_plugins::ROUTE_FIELD,
        )
        // "Break" the redaction: mask instead of hash.
        .replace("mode = \"hash\"", "mode = \"mask\"");
    std::fs::write(suite.join("pipeline.toml"), config).unwrap();
    let from = src.join("tests/page-views");
    std::fs::copy(from.join("event.json"), case.join("event.json")).unwrap();
    for f in ["analytics.jsonl", "archive.jsonl", "summary.txt"] {
        std::fs::copy(from.join("expected").join(f), case.join("expected").join(f)).unwrap();
    }

    let results = host::fixture::run_suite(&suite, false).unwrap();
    let _ = std::fs::remove_dir_all(&suite);
    assert_eq!(results.len(), 1);
    let mismatches = &results[0].mismatches;
    let files: Vec<_> = mismatches.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        files,
        ["analytics.jsonl", "archive.jsonl"],
        "summary.txt must still match"
    );
    let diff = &mismatches[0].1;
    assert!(diff.contains("--- expected/analytics.jsonl"), "{diff}");
    assert!(
        diff.lines()
            .any(|l| l.starts_with('+') && l.contains(r#""email":"[redacted]""#)),
        "{diff}"
    );
    assert!(diff.lines().any(|l| l.starts_with('-')), "{diff}");
}
