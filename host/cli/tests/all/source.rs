//! `[source]`: what real producers put on a stream. KPL aggregates made by
//! the real `aws-kinesis-agg` producer from PyPI (`tests/kpl/aggregate.py`;
//! `tests/run` installs it), gzip payloads and CloudWatch Logs subscription
//! data, through the `App` that `sluice run` and the Lambda handler use.

use std::io::Write as _;
use std::process::Command;

use base64::Engine as _;
use host::app::App;
use host::config::{self, Format, Location};
use host::destination::Destination;
use host::destination::memory::MemoryDestination;
use host::event;
use host::outcome::FailureClass;

use crate::support::root;

/// A pipeline without steps: every record goes to `out` (as an envelope,
/// with its lineage), failures to `dlq`.
fn app(source: &str) -> (App, MemoryDestination, MemoryDestination) {
    let text = format!(
        "[source]\n{source}\n\
         [destinations.out]\ntype = \"stdout\"\nformat = \"envelope\"\n\
         [destinations.dlq]\ntype = \"stdout\"\n\
         [routing]\ndefault = \"out\"\ndead_letter = \"dlq\"\n"
    );
    let plan = config::parse(&text, &Location::File("/tmp/source.toml".into())).unwrap();
    let (dlq, out) = (
        MemoryDestination::new("dlq", Format::Raw),
        MemoryDestination::new("out", Format::Envelope),
    );
    let destinations = vec![
        Destination::from(dlq.clone()),
        Destination::from(out.clone()),
    ];
    (
        App::with_destinations(plan, destinations).unwrap(),
        out,
        dlq,
    )
}

fn run(app: &mut App, json: &[u8]) -> host::app::Report {
    let batch = event::decode(json, "event.json").unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(app.process(batch, None))
}

fn lines(destination: &MemoryDestination) -> Vec<serde_json::Value> {
    String::from_utf8(destination.contents())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// An event of KPL aggregates made by the real producer, per `specs` (see
/// `tests/kpl/aggregate.py`).
fn kpl_event(name: &str, specs: &[&str]) -> Vec<u8> {
    let path = std::env::temp_dir().join(format!("sluice-kpl-{name}-{}.json", std::process::id()));
    let out = Command::new("python3")
        .arg(root().join("tests/kpl/aggregate.py"))
        .arg(&path)
        .args(specs)
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "tests/kpl/aggregate.py failed (needs `pip install aws-kinesis-agg`, which tests/run does):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    json
}

#[test]
fn kpl_aggregates_of_1_5_and_500_user_records_and_a_full_one_are_split() {
    let json = kpl_event("sizes", &["1", "5", "500", "full", "hashed:2"]);
    let (mut app, out, dlq) = app("");
    let report = run(&mut app, &json);
    let outcome = &report.outcome;
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert_eq!(outcome.source.kinesis_records, 5);
    assert_eq!(outcome.source.aggregates, 5);
    let delivered = lines(&out);
    let full = delivered
        .iter()
        .filter(|l| l["sequence_number"] == "400")
        .count();
    assert!(
        full > 90,
        "a full aggregate holds ~95 records of 10 KiB: {full}"
    );
    assert_eq!(outcome.records_in, 1 + 5 + 500 + full + 2);
    assert_eq!(delivered.len(), outcome.records_in);
    assert!(dlq.contents().is_empty());
    // Every user record: its own partition key, the aggregate's sequence
    // number, its index as sub-sequence number, its data as produced.
    for (k, n) in [(0, 1), (1, 5), (2, 500)] {
        let seq = format!("{}00", k + 1);
        let users: Vec<_> = delivered
            .iter()
            .filter(|l| l["sequence_number"] == seq.as_str())
            .collect();
        assert_eq!(users.len(), n);
        for (i, u) in users.iter().enumerate() {
            assert_eq!(u["sub_sequence_number"], i, "{u}");
            assert_eq!(u["partition_key"], format!("user-{}", i % 7), "{u}");
            assert_eq!(
                u["data"],
                serde_json::json!({"record": k, "user": i}),
                "{u}"
            );
            assert_eq!(u["shard_id"], "shardId-000000000000");
        }
    }
    // The explicit hash key goes with the record as an attribute.
    let hashed: Vec<_> = delivered
        .iter()
        .filter(|l| l["sequence_number"] == "500")
        .collect();
    assert_eq!(
        hashed[1]["attributes"]["kinesis.explicit-hash-key"],
        (2u128.pow(100) + 1).to_string()
    );
    let summary = host::summary::render(app.plan(), outcome, &report.dispatch);
    assert!(
        summary.starts_with(
            "kinesis records: 5 (KPL aggregates: 5, decompressed: 0, control messages: 0)\n"
        ),
        "{summary}"
    );
}

/// An aggregate whose MD5 does not match fails alone, with a reason naming
/// the problem and its sequence number, and is dead-lettered as Lambda sent
/// it; the aggregates around it are delivered.
#[test]
fn a_corrupt_aggregate_fails_alone_and_is_dead_lettered_raw() {
    let json = kpl_event("corrupt", &["2", "corrupt:3", "2"]);
    let (mut app, out, dlq) = app("");
    let report = run(&mut app, &json);
    let outcome = &report.outcome;
    assert_eq!(outcome.records_in, 5);
    assert_eq!(lines(&out).len(), 4);
    let dead = &outcome.dead_letters;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let f = &dead[0].failure;
    assert_eq!(f.class, FailureClass::Decode);
    assert_eq!(f.sequence_number.as_deref(), Some("200"));
    assert!(f.reason.contains("KPL aggregate"), "{}", f.reason);
    assert!(f.reason.contains("MD5 does not match"), "{}", f.reason);
    let letter: serde_json::Value =
        serde_json::from_str(String::from_utf8(dlq.contents()).unwrap().trim()).unwrap();
    let original = &letter["kinesis_record"];
    let sent: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(
        original["kinesis"]["data"],
        sent["Records"][1]["kinesis"]["data"]
    );
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn event_of(payloads: &[Vec<u8>]) -> Vec<u8> {
    let records: Vec<serde_json::Value> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| {
            serde_json::json!({
                "eventID": format!("shardId-000000000000:{}00", i + 1),
                "kinesis": {
                    "partitionKey": "k",
                    "sequenceNumber": format!("{}00", i + 1),
                    "data": base64::engine::general_purpose::STANDARD.encode(p),
                    "approximateArrivalTimestamp": 1700000000.0,
                }
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "Records": records })).unwrap()
}

#[test]
fn gzip_payloads_are_read_and_a_bomb_fails_its_record() {
    let bomb = gzip(&vec![b'0'; 4 << 20]);
    let json = event_of(&[
        gzip(br#"{"a":1}"#),
        br#"{"b":2}"#.to_vec(),
        bomb,
        gzip(br#"{"c":3}"#),
    ]);
    let (mut app, out, _dlq) = app("decompress = \"auto\"\nmax_decompressed_bytes = 1048576");
    let report = run(&mut app, &json);
    let data: Vec<_> = lines(&out).into_iter().map(|l| l["data"].clone()).collect();
    assert_eq!(
        data,
        [
            serde_json::json!({"a": 1}),
            serde_json::json!({"b": 2}),
            serde_json::json!({"c": 3})
        ]
    );
    let f = &report.outcome.dead_letters[0].failure;
    assert_eq!(f.sequence_number.as_deref(), Some("300"));
    assert!(f.reason.contains("more than 1048576 bytes"), "{}", f.reason);
    assert_eq!(report.outcome.source.decompressed, 2);
}

#[test]
fn cloudwatch_logs_subscription_data_is_one_event_per_log_event() {
    let control = br#"{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1700000000000,"message":"CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."}]}"#;
    let data = |n: usize| {
        let events: Vec<serde_json::Value> = (0..n)
            .map(|i| serde_json::json!({"id": format!("e{i}"), "timestamp": 1700000000000u64 + i as u64, "message": format!("line {i}")}))
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "messageType": "DATA_MESSAGE", "owner": "123456789012",
            "logGroup": "/aws/lambda/orders", "logStream": "2026/12/02/[$LATEST]abc",
            "subscriptionFilters": ["to-kinesis"], "logEvents": events,
        }))
        .unwrap()
    };
    let json = event_of(&[gzip(control), gzip(&data(3)), gzip(&data(2))]);
    let (mut app, out, _dlq) = app("format = \"cloudwatch-logs\"");
    let report = run(&mut app, &json);
    let outcome = &report.outcome;
    assert!(outcome.failures.is_empty() && outcome.dead_letters.is_empty());
    assert_eq!(outcome.source.control_messages, 1);
    assert_eq!(outcome.records_in, 1 + 3 + 2);
    assert_eq!(
        outcome.filtered, 1,
        "the control message counts as filtered"
    );
    let delivered = lines(&out);
    assert_eq!(delivered.len(), 5);
    assert_eq!(
        delivered[0]["data_base64"],
        base64::engine::general_purpose::STANDARD.encode("line 0")
    );
    assert_eq!(delivered[2]["sub_sequence_number"], 2);
    assert_eq!(delivered[2]["attributes"]["logGroup"], "/aws/lambda/orders");
    assert_eq!(delivered[2]["attributes"]["id"], "e2");
    assert_eq!(delivered[2]["attributes"]["timestamp"], "1700000000002");
    assert_eq!(delivered[3]["sequence_number"], "300");
}

#[test]
fn source_settings_out_of_range_are_config_errors() {
    let e = config::parse(
        "[source]\nformat = \"cloudwatch-logs\"\ndecompress = \"zstd\"\n[destinations.out]\ntype = \"stdout\"\n",
        &Location::File("/tmp/x.toml".into()),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("source.decompress"), "{e}");
    let e = config::parse(
        "[source]\nmax_decompressed_bytes = 0\n[destinations.out]\ntype = \"stdout\"\n",
        &Location::File("/tmp/x.toml".into()),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("source.max_decompressed_bytes"), "{e}");
}

#[test]
fn the_pre_filter_drops_records_before_any_step_and_counts_them_as_filtered() {
    let json = event_of(&[
        br#"{"type":"click","user":{"tier":"gold"}}"#.to_vec(),
        br#"{"type":"view","user":{"tier":"gold"}}"#.to_vec(),
        gzip(br#"{"type":"click","user":{"tier":"free"}}"#),
        b"not json at all".to_vec(),
        br#"{"type":"purchase","amount":250}"#.to_vec(),
    ]);
    // Clicks by paying users, or purchases over 100: a JSON string and a
    // TOML table, as the config allows.
    let (mut app, out, dlq) = app("decompress = \"auto\"\n\
         filters = [\n\
           '{\"data\": {\"type\": [\"click\"], \"user\": {\"tier\": [{\"anything-but\": \"free\"}]}}}',\n\
           { data = { type = [\"purchase\"], amount = [{ numeric = [\">\", 100] }] } },\n\
         ]");
    let report = run(&mut app, &json);
    let outcome = &report.outcome;
    assert!(outcome.failures.is_empty() && dlq.contents().is_empty());
    assert_eq!(outcome.records_in, 5);
    assert_eq!(outcome.source.prefiltered, 3);
    assert_eq!(
        outcome.filtered, 3,
        "pre-filtered records count as filtered"
    );
    let seqs: Vec<_> = lines(&out)
        .into_iter()
        .map(|l| l["sequence_number"].clone())
        .collect();
    assert_eq!(seqs, ["100", "500"]);
    let summary = host::summary::render(app.plan(), outcome, &report.dispatch);
    assert!(
        summary.contains("pre-filter (2 patterns, no plugin call): dropped 3"),
        "{summary}"
    );
}

#[test]
fn a_bad_pattern_is_a_config_error_naming_the_filter_and_the_path() {
    let e = config::parse(
        "[source]\nfilters = ['{\"data\": {\"a\": [1]}}', '{\"data\": {\"user\": {\"id\": [{\"wildcard\": \"u-*\"}]}}}']\n\
         [destinations.out]\ntype = \"stdout\"\n",
        &Location::File("/tmp/x.toml".into()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("source.filters[1]: data.user.id[0]: `wildcard`"),
        "{e}"
    );
}

/// `sluice filter-criteria` on a config of its own.
fn filter_criteria(source: &str) -> std::process::Output {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = crate::support::Dir::new(&format!("filter-criteria-{n}"));
    let config = dir.0.join("pipeline.toml");
    std::fs::write(
        &config,
        format!("[source]\n{source}\n[destinations.out]\ntype = \"stdout\"\n"),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["filter-criteria", "--config"])
        .arg(&config)
        .output()
        .unwrap()
}

#[test]
fn filter_criteria_prints_the_patterns_for_lambda() {
    let out = filter_criteria(
        "deaggregate = false\nfilters = [{ data = { type = [\"click\"] } }, '{\"data\": {\"n\": [{\"numeric\": [\">=\", 3]}]}}']",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let criteria: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        criteria,
        serde_json::json!({"Filters": [
            {"Pattern": r#"{"data":{"type":["click"]}}"#},
            {"Pattern": r#"{"data":{"n":[{"numeric":[">=",3]}]}}"#},
        ]})
    );
    // Each pattern, parsed back, is the pattern Sluice runs.
    for f in criteria["Filters"].as_array().unwrap() {
        let text = f["Pattern"].as_str().unwrap();
        host::pattern::Pattern::parse(&serde_json::from_str(text).unwrap()).unwrap();
    }
}

#[test]
fn filter_criteria_refuses_what_lambda_cannot_see() {
    let filters = "filters = [{ data = { type = [\"click\"] } }]";
    for (source, says) in [
        (String::new(), "deaggregate = true"),
        (
            format!("deaggregate = false\ndecompress = \"gzip\"\n{filters}"),
            "compressed",
        ),
        (
            format!("deaggregate = false\nformat = \"cloudwatch-logs\"\n{filters}"),
            "CloudWatch Logs",
        ),
        (
            "deaggregate = false\nfilters = [{ partitionKey = [\"k\"] }]".to_owned(),
            "`data` only",
        ),
        ("deaggregate = false".to_owned(), "is empty"),
    ] {
        let source = if source.is_empty() {
            filters.to_owned()
        } else {
            source
        };
        let out = filter_criteria(&source);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && out.stdout.is_empty(), "{source}");
        assert!(
            err.contains(says) && err.contains("pipeline.toml"),
            "{source}: {err}"
        );
    }
}

/// The batch's decoding budget, as a property: random KPL aggregates (of
/// plain, gzip and CloudWatch Logs user records), gzip payloads and
/// CloudWatch Logs documents, read with a random `max_batch_bytes`. What the
/// decoded records hold (payloads, keys, lineage and attributes, every byte
/// of which decoding made) never exceeds the budget; the peak that
/// `[source]` reports never does either; and every Kinesis record ends as
/// decoded records, or failed with class-`decode` reason naming it, or empty.
#[test]
fn decoding_never_exceeds_the_batch_budget() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    #[derive(Debug, Clone)]
    enum Payload {
        /// User records: (key length, data length, gzip it).
        Kpl(Vec<(usize, usize, bool)>),
        Gzip(usize),
        /// Log events: (message length), and the log group's length.
        Logs(Vec<usize>, usize),
    }
    fn logs(events: &[usize], group: usize) -> Vec<u8> {
        gzip(
            serde_json::json!({
                "messageType": "DATA_MESSAGE", "owner": "1", "logGroup": "g".repeat(group),
                "logStream": "s", "subscriptionFilters": [],
                "logEvents": events.iter().enumerate().map(|(i, n)| serde_json::json!({"id": i.to_string(), "timestamp": 1, "message": "m".repeat(*n)})).collect::<Vec<_>>()
            })
            .to_string()
            .as_bytes(),
        )
    }
    fn bytes(p: &Payload, cloudwatch: bool) -> Vec<u8> {
        match p {
            Payload::Kpl(users) => {
                let mut agg = host::source::Aggregator::new();
                for (i, &(key, data, zipped)) in users.iter().enumerate() {
                    let body = if cloudwatch {
                        logs(&[data, data / 2], key)
                    } else if zipped {
                        gzip(&vec![b'a'; data])
                    } else {
                        vec![b'p'; data.max(1)]
                    };
                    agg.push(&format!("{i}{}", "k".repeat(key)), body);
                }
                agg.finish()
            }
            Payload::Gzip(n) if cloudwatch => logs(&[*n], 8),
            Payload::Gzip(n) => gzip(&vec![b'z'; *n]),
            Payload::Logs(events, group) if cloudwatch => logs(events, *group),
            Payload::Logs(events, _) => gzip(&vec![b'l'; events.iter().sum::<usize>() + 1]),
        }
    }
    let payload = prop_oneof![
        prop::collection::vec((0usize..300, 0usize..20_000, any::<bool>()), 1..20)
            .prop_map(Payload::Kpl),
        (0usize..200_000).prop_map(Payload::Gzip),
        (prop::collection::vec(0usize..5_000, 1..40), 0usize..600)
            .prop_map(|(e, g)| Payload::Logs(e, g)),
    ];
    let strategy = (
        prop::collection::vec(payload, 1..12),
        1usize..400_000,
        any::<bool>(),
    );
    TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    })
    .run(&strategy, |(payloads, budget, cloudwatch)| {
        let source: config::Source = toml::from_str(&format!(
            "max_batch_bytes = {budget}\ndecompress = \"auto\"\n{}",
            if cloudwatch {
                "format = \"cloudwatch-logs\""
            } else {
                ""
            }
        ))
        .unwrap();
        let raw: Vec<Vec<u8>> = payloads.iter().map(|p| bytes(p, cloudwatch)).collect();
        let batch = event::decode(crate::support::event_json(&raw).as_bytes(), "e").unwrap();
        let out = host::source::expand(batch, &source);
        let held: usize = out
            .records
            .iter()
            // A record that was only decompressed keeps the lineage it
            // came with (moved, not copied): its payload is what decoding made.
            .map(|r| {
                if r.sub_sequence_number.is_none() {
                    r.data.len()
                } else {
                    r.data.len()
                        + r.partition_key.len()
                        + r.shard_id.len()
                        + r.sequence_number.len()
                        + r.attributes
                            .iter()
                            .map(|(k, v)| k.len() + v.len())
                            .sum::<usize>()
                }
            })
            .sum();
        prop_assert!(
            held <= budget,
            "decoded records hold {held} bytes, budget {budget}"
        );
        prop_assert!(out.source.decoded_bytes <= budget);
        // Every Kinesis record: one or more decoded records, failed, or empty.
        let mut slots: Vec<usize> = out.slot.clone();
        slots.extend(out.rejected.iter().map(|r| r.index));
        slots.extend(out.empty.iter().copied());
        slots.sort_unstable();
        prop_assert!(slots.iter().enumerate().all(|(i, &s)| i == s), "{slots:?}");
        for r in &out.rejected {
            prop_assert!(r.sequence_number.is_some() && !r.reason.is_empty());
        }
        Ok(())
    })
    .unwrap();
}
