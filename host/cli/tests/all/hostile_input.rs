//! What a hostile producer or an unpinned config can put in front of the
//! function, through the real `sluice` binary: the decoded batch stays within
//! one memory budget (peak RSS read from a child process), and a plugin file
//! that is not a Wasm binary is refused without quoting its bytes.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use host::source::Aggregator;

use crate::support::{Dir, event_json};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// `sluice run` of `event` through a pipeline without steps (`source` as
/// its `[source]`), outputs and dead letters to files; its peak RSS.
fn peak_rss(dir: &Path, source: &str, event: &str) -> u64 {
    std::fs::write(
        dir.join("pipeline.toml"),
        format!(
            "[source]\n{source}\n\
             [destinations.out]\ntype = \"file\"\npath = \"out.jsonl\"\n\
             [destinations.dlq]\ntype = \"file\"\npath = \"dlq.jsonl\"\n\
             [routing]\ndefault = \"out\"\ndead_letter = \"dlq\"\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("event.json"), event).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "--config", "pipeline.toml", "--event", "event.json"])
        .env("SLUICE_LOG", "error")
        .current_dir(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("peak RSS: "))
        .and_then(|l| l.strip_suffix(" bytes"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no peak RSS in the output:\n{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

/// The three shapes from issue 29, each in one event with one small
/// well-formed record after it. Peak RSS must stay under a fixed baseline
/// (the same command on a one-record event, plus three times what the
/// batch's decoding budget lets through: decoded, encoded for its
/// destination, and the decompressor's buffer growing to it) plus twice the
/// event's size. Before the budget, they took 781 MiB,
/// 816 MiB and 1 GiB.
#[test]
fn hostile_payloads_stay_within_the_batch_budget() {
    let dir = Dir::new("hostile-rss");
    let budget = host::config::raw::DEFAULT_MAX_BATCH_BYTES as u64;

    let mut kpl = Aggregator::new();
    let key = "k".repeat(400_000);
    for _ in 0..2000 {
        kpl.push(&key, vec![b'x'; 6]);
    }
    let kpl = kpl.finish();
    let bomb = gzip(&vec![0u8; 8 << 20]);
    let fine_logs = gzip(
        br#"{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","subscriptionFilters":[],"logEvents":[{"id":"1","timestamp":1,"message":"{}"}]}"#,
    );
    let logs = gzip(
        serde_json::json!({
            "messageType": "DATA_MESSAGE", "owner": "1", "logGroup": "g".repeat(1 << 20),
            "logStream": "s", "subscriptionFilters": [],
            "logEvents": (0..1000).map(|i| serde_json::json!({"id": i.to_string(), "timestamp": 1, "message": "m"})).collect::<Vec<_>>()
        })
        .to_string()
        .as_bytes(),
    );
    let shapes: [(&str, &str, Vec<Vec<u8>>); 3] = [
        (
            "one KPL aggregate, 2,000 user records under one 400 KB key",
            "",
            vec![kpl, b"{}".to_vec()],
        ),
        ("100 gzip bombs", "decompress = \"gzip\"", {
            let mut v = vec![bomb; 100];
            v.push(gzip(b"{}"));
            v
        }),
        (
            "CloudWatch Logs: a 1 MiB logGroup on 1,000 events",
            "format = \"cloudwatch-logs\"",
            vec![logs, fine_logs],
        ),
    ];
    for (what, source, payloads) in shapes {
        let event = event_json(&payloads);
        let baseline = peak_rss(&dir.0, source, &event_json([&payloads[payloads.len() - 1]]));
        let peak = peak_rss(&dir.0, source, &event);
        let bound = baseline + 3 * budget + 2 * event.len() as u64;
        eprintln!(
            "{what}: event {} KiB, peak RSS {} MiB (one-record baseline {} MiB, bound {} MiB)",
            event.len() >> 10,
            peak >> 20,
            baseline >> 20,
            bound >> 20
        );
        assert!(
            peak <= bound,
            "{what}: peak RSS {peak} bytes, more than {bound} (baseline {baseline} + 3 × budget + 2 × event)"
        );
        // Every record is accounted for: the well-formed one delivered, the
        // hostile ones dead-lettered with class `decode` naming why.
        let dlq = std::fs::read_to_string(dir.0.join("dlq.jsonl")).unwrap_or_default();
        assert!(dlq.lines().count() >= 1, "{what}: nothing dead-lettered");
        for line in dlq.lines() {
            let doc: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(doc["failure"]["class"], "decode", "{what}: {doc}");
        }
        let out = std::fs::read_to_string(dir.0.join("out.jsonl")).unwrap_or_default();
        assert!(
            out.lines().count() >= 1,
            "{what}: the well-formed record was not delivered"
        );
        let _ = std::fs::remove_file(dir.0.join("dlq.jsonl"));
        let _ = std::fs::remove_file(dir.0.join("out.jsonl"));
    }
}

/// A config may point a step at any file: one that is not a Wasm binary (a
/// secret, WAT text) is refused by its size, never quoted.
#[test]
fn a_plugin_that_is_not_a_wasm_binary_is_refused_without_quoting_it() {
    let dir = Dir::new("not-wasm");
    for (name, bytes) in [
        (
            "secret.wasm",
            &b"AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY\n"[..],
        ),
        ("text.wasm", &b"(component)"[..]),
    ] {
        std::fs::write(dir.0.join(name), bytes).unwrap();
        std::fs::write(
            dir.0.join("pipeline.toml"),
            format!(
                "[[steps]]\nname = \"s\"\nkind = \"filter\"\nplugin = \"{name}\"\n\
                 [destinations.out]\ntype = \"stdout\"\n[routing]\ndefault = \"out\"\n"
            ),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["check", "--config", "pipeline.toml"])
            .env("SLUICE_CACHE_DIR", "")
            .current_dir(&dir.0)
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{name}: {all}");
        assert!(
            all.contains(&format!("not a WebAssembly binary ({} bytes", bytes.len())),
            "{name}: {all}"
        );
        assert!(
            !all.contains("wJalrXUtnFEMI") && !all.contains("(component)"),
            "{name}: {all}"
        );
    }
}
