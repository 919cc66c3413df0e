//! Lookup tables: the enrichment example against a 10,000-row table in
//! moto's S3 (every record's tier checked against an independent
//! computation); what plugins may read (`get`, `get-many`, grants, a
//! lookup bigger than the plugin's memory); bad tables named by file, line
//! and column; a refresh in a warm function, and one that fails.
//!
//! Run with: `cargo test -p sluice-cli --test all tables::` (moto from `tests/run`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use host::app::App;
use serde_json::{Value, json};

use crate::support::{self, Dir, Moto, sluice_against};

/// The tier the test's customers table gives customer `i`: an independent
/// computation the outputs are checked against.
fn tier_of(i: usize) -> &'static str {
    match (i * 7 + i / 3) % 10 {
        0 => "gold",
        1..=3 => "silver",
        _ => "bronze",
    }
}

/// One Kinesis event of `users` page views (`user_id` as given).
fn event_of(users: &[Value]) -> Vec<u8> {
    let records: Vec<Value> = users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let data = json!({"type": "page_view", "user_id": user, "url": format!("/p/{i}")});
            json!({
                "eventSource": "aws:kinesis",
                "eventID": format!("shardId-000000000000:{}", 1000 + i),
                "kinesis": {"partitionKey": "k", "sequenceNumber": format!("{}", 1000 + i),
                            "approximateArrivalTimestamp": 1_795_334_400.0,
                            "data": base64::engine::general_purpose::STANDARD.encode(data.to_string())}
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "Records": records })).unwrap()
}

/// The example pipeline (plugins as built), its table at `source` (and
/// `extra` table settings), every destination an envelope file.
fn example(source: &str, extra: &str) -> String {
    support::example_config("clickstream-enrich")
        .replace(
            "source = \"tables/customers.jsonl\"",
            &format!("source = \"{source}\"\n{extra}"),
        )
        .replace(
            "path = \"out/priority.jsonl\"",
            "path = \"out/priority.jsonl\"\nformat = \"envelope\"",
        )
        .replace(
            "path = \"out/standard.jsonl\"",
            "path = \"out/standard.jsonl\"\nformat = \"envelope\"",
        )
}

#[test]
fn the_example_enriches_against_a_10000_row_table_in_moto_s3() {
    let moto = Moto::start();
    let dir = Dir::new("tables-s3");
    let table: String = (0..10_000)
        .map(|i| {
            format!(
                "{{\"id\":\"u-{i}\",\"tier\":\"{}\",\"n\":{i}}}\n",
                tier_of(i)
            )
        })
        .collect();
    let pin = host::hex(&<sha2::Sha256 as sha2::Digest>::digest(table.as_bytes()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let aws = moto.aws().await;
        support::create_bucket(&aws, "tables").await;
        support::put(&aws, "tables", "customers.jsonl", table.into_bytes()).await;
    });
    // Users the table knows, some it does not, and keys of other types.
    let mut users: Vec<Value> = (0..1_200).map(|i| json!(format!("u-{}", i * 9))).collect();
    users.extend([json!(7), json!(null), json!({"id": "u-1"})]);
    std::fs::write(dir.0.join("event.json"), event_of(&users)).unwrap();
    std::fs::write(
        dir.0.join("pipeline.toml"),
        example(
            "s3://tables/customers.jsonl",
            &format!("sha256 = \"{pin}\""),
        ),
    )
    .unwrap();
    let out = sluice_against(&moto, &dir.0)
        .args(["run", "-c", "pipeline.toml", "-e", "event.json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let archive = std::fs::read_to_string(dir.0.join("out/archive.jsonl")).unwrap();
    let priority = std::fs::read_to_string(dir.0.join("out/priority.jsonl")).unwrap();
    let lines: Vec<Value> = archive
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), users.len(), "every record, once");
    let mut gold = 0;
    for (line, user) in lines.iter().zip(&users) {
        let data = &line["data"];
        assert_eq!(&data["user_id"], user);
        let known = user
            .as_str()
            .and_then(|u| u.strip_prefix("u-"))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n < 10_000);
        match known {
            Some(n) => {
                assert_eq!(data["customer"]["tier"], tier_of(n), "{line}");
                assert_eq!(data["customer"]["n"], n);
                gold += usize::from(tier_of(n) == "gold");
            }
            None => assert!(data.get("customer").is_none(), "{line}"),
        }
    }
    assert!(gold > 50);
    assert_eq!(
        priority.lines().count(),
        gold,
        "gold customers' events go to `priority`"
    );
}

/// A pipeline of one `hostile` step (`settings`) reading table `t` (`rows`,
/// JSON Lines keyed by `id`, `table_settings` added) unless `granted` is
/// false; every output to memory.
async fn lookup_app(
    dir: &Path,
    settings: &str,
    rows: &str,
    table_settings: &str,
    granted: bool,
) -> anyhow::Result<(App, Vec<host::destination::memory::MemoryDestination>)> {
    std::fs::write(dir.join("t.jsonl"), rows).unwrap();
    let steps = if granted { "[\"look\"]" } else { "[\"other\"]" };
    std::fs::write(
        dir.join("pipeline.toml"),
        format!(
            r#"[[steps]]
name = "look"
kind = "transform"
plugin = "{hostile}"
config = {settings}

[[steps]]
name = "other"
kind = "filter"
plugin = "{filter}"
config = {{ field = "x", equals = 1, keep_if_missing = true }}

[tables.t]
source = "t.jsonl"
key = "id"
steps = {steps}
{table_settings}

[destinations.out]
type = "stdout"

[routing]
default = "out"
"#,
            hostile = crate::test_plugins::HOSTILE,
            filter = crate::test_plugins::FILTER_FIELD,
        ),
    )
    .unwrap();
    App::load_in_memory(dir.join("pipeline.toml").to_str().unwrap()).await
}

/// What the step made of each payload (the outputs' data).
async fn run(
    app: &mut App,
    memory: &[host::destination::memory::MemoryDestination],
    payloads: &[&str],
) -> Vec<String> {
    let event = support::event_json(payloads.iter().map(|p| p.as_bytes()));
    let batch = host::event::decode(event.as_bytes(), "test").unwrap();
    let report = app.process(batch, None).await;
    assert!(
        report.outcome.failures.is_empty(),
        "{:?}",
        report.outcome.failures
    );
    let text = String::from_utf8(memory[0].contents()).unwrap();
    memory[0].clear();
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["data"].to_string()
        })
        .collect()
}

#[tokio::test]
async fn plugins_read_granted_tables_many_keys_at_once() {
    let dir = Dir::new("tables-lookup");
    let rows = "{\"id\": \"a\", \"v\": 1}\n{\"id\": 2, \"v\": 2}\n";
    let (mut app, memory) = lookup_app(
        &dir.0,
        r#"{ mode = "lookup", marker = "t" }"#,
        rows,
        "",
        true,
    )
    .await
    .unwrap();
    let got = run(&mut app, &memory, &["a,2,zz", "2"]).await;
    assert_eq!(
        got,
        [
            r#"[{"id":"a","v":1},{"id":2,"v":2},null]"#,
            r#"[{"id":2,"v":2}]"#
        ]
    );
    // Another table than the step's: an error naming it, not a trap.
    let (mut app, memory) = lookup_app(
        &dir.0,
        r#"{ mode = "lookup", marker = "nope" }"#,
        rows,
        "",
        true,
    )
    .await
    .unwrap();
    let got = run(&mut app, &memory, &["a"]).await;
    assert_eq!(
        got,
        [r#""step `look` may not read table `nope`: it may read `t`""#]
    );
    // A step the table does not name.
    let (mut app, memory) = lookup_app(
        &dir.0,
        r#"{ mode = "lookup", marker = "t" }"#,
        rows,
        "",
        false,
    )
    .await
    .unwrap();
    let got = run(&mut app, &memory, &["a"]).await;
    assert_eq!(
        got,
        [
            r#""step `look` may not read table `t`: it was granted no table (list it in the table's `steps`)""#
        ]
    );
}

#[tokio::test]
async fn a_lookup_bigger_than_the_plugins_memory_traps_the_call_alone() {
    let dir = Dir::new("tables-flood");
    let rows = format!("{{\"id\": \"k\", \"pad\": \"{}\"}}\n", "x".repeat(4096));
    let (mut app, _memory) = lookup_app(
        &dir.0,
        r#"{ mode = "lookup-flood", marker = "t", count = 20000 }
limits = { memory_bytes = 16777216 }"#,
        &rows,
        "",
        true,
    )
    .await
    .unwrap();
    let event = support::event_json(["k"]);
    let batch = host::event::decode(event.as_bytes(), "test").unwrap();
    let report = app.process(batch, None).await;
    let failure = &report.outcome.failures[0];
    assert_eq!(failure.class.as_str(), "trap", "{failure:?}");
    assert!(
        failure
            .reason
            .contains("add up to more than the plugin's memory (16777216 bytes"),
        "{}",
        failure.reason
    );
}

#[tokio::test]
async fn bad_tables_fail_the_cold_start_naming_file_line_and_column() {
    let dir = Dir::new("tables-bad");
    let lookup = r#"{ mode = "lookup", marker = "t" }"#;
    let err = |rows: &'static str, settings: &'static str| {
        let dir = dir.0.clone();
        async move {
            let e = lookup_app(&dir, lookup, rows, settings, true)
                .await
                .err()
                .expect("refused");
            format!("{e:#}")
        }
    };
    let e = err("{\"id\": \"a\"}\n{\"id\": \"b\" \"v\": 1}\n", "").await;
    assert!(
        e.contains("table `t`: `") && e.contains("t.jsonl` line 2, column 12: expected `,` or `}`"),
        "{e}"
    );
    let e = err("{\"id\": \"a\"}\n{\"id\": \"a\"}\n", "").await;
    assert!(
        e.contains("line 2: key `a` is already the key of line 1"),
        "{e}"
    );
    let e = err("{\"id\": \"a\"}\n{\"id\": [1]}\n", "").await;
    assert!(
        e.contains("line 2, column 1: the key is `[1]`: expected a string or a number"),
        "{e}"
    );
    let e = err(
        "{\"id\": \"a\", \"pad\": \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}\n",
        "max_bytes = 50",
    )
    .await;
    assert!(
        e.contains("takes more than its max_bytes of 50 bytes (") && e.contains("bytes by line 1)"),
        "{e}"
    );
    let e = err(
        "{\"id\": \"a\"}\n",
        "sha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"",
    )
    .await;
    assert!(
        e.contains("does not match its sha256 pin (expected 0000"),
        "{e}"
    );
    // Duplicates are fine when the last row is to win.
    let (mut app, memory) = lookup_app(
        &dir.0,
        lookup,
        "{\"id\": \"a\", \"v\": 1}\n{\"id\": \"a\", \"v\": 2}\n",
        "duplicates = \"last\"",
        true,
    )
    .await
    .unwrap();
    assert_eq!(
        run(&mut app, &memory, &["a"]).await,
        [r#"[{"id":"a","v":2}]"#]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_function_refreshes_its_table_and_keeps_it_when_a_refresh_fails() {
    let dir = Dir::new("tables-refresh");
    let (mut app, memory) = lookup_app(
        &dir.0,
        r#"{ mode = "lookup", marker = "t" }"#,
        "{\"id\": \"a\", \"v\": 1}\n",
        "refresh_seconds = 1",
        true,
    )
    .await
    .unwrap();
    assert_eq!(
        run(&mut app, &memory, &["a"]).await,
        [r#"[{"id":"a","v":1}]"#]
    );
    std::fs::write(dir.0.join("t.jsonl"), "{\"id\": \"a\", \"v\": 2}\n").unwrap();
    // Until the refresh is due, the rows loaded at cold start.
    assert_eq!(
        run(&mut app, &memory, &["a"]).await,
        [r#"[{"id":"a","v":1}]"#]
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut seen = BTreeMap::new();
    for _ in 0..50 {
        let got = run(&mut app, &memory, &["a"]).await.remove(0);
        *seen.entry(got.clone()).or_insert(0) += 1;
        if got.contains("\"v\":2") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        seen.keys().any(|k| k.contains("\"v\":2")),
        "refreshed: {seen:?}"
    );
    // A refresh that fails keeps the rows it has.
    std::fs::write(dir.0.join("t.jsonl"), "not json\n").unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..10 {
        assert_eq!(
            run(&mut app, &memory, &["a"]).await,
            [r#"[{"id":"a","v":2}]"#]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn table_rules_are_checked() {
    let dir = Dir::new("tables-rules");
    let check = |table: &str| {
        let config = dir.0.join("p.toml");
        std::fs::write(
            &config,
            format!(
                "[[steps]]\nname = \"s\"\nkind = \"filter\"\nplugin = \"{}\"\n\n[tables.t]\n{table}\n\n[destinations.out]\ntype = \"stdout\"\n",
                crate::test_plugins::FILTER_FIELD
            ),
        )
        .unwrap();
        host::config::load(&config)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    std::fs::write(dir.0.join("t.csv"), "id,tier\n").unwrap();
    assert_eq!(
        check("source = \"t.csv\"\nkey = \"id\"\nsteps = [\"s\"]"),
        Ok(())
    );
    let e = check("source = \"t.csv\"\nkey = \"id\"\nsteps = [\"nope\"]").unwrap_err();
    assert!(
        e.contains("tables.t.steps: names step `nope`, which is not defined (steps: s)"),
        "{e}"
    );
    let e = check("source = \"t.csv\"\nkey = \"id\"\nsteps = []").unwrap_err();
    assert!(e.contains("tables.t.steps: names no step"), "{e}");
    let e = check("source = \"gone.jsonl\"\nkey = \"id\"\nsteps = [\"s\"]").unwrap_err();
    assert!(
        e.contains("tables.t.source: table file `") && e.contains("gone.jsonl` does not exist"),
        "{e}"
    );
    let e = check("source = \"t.csv\"\nkey = \"id\"\nsteps = [\"s\"]\nrefresh_seconds = 0")
        .unwrap_err();
    assert!(
        e.contains("tables.t.refresh_seconds: must be at least 1"),
        "{e}"
    );
}
