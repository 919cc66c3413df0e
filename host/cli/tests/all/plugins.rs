//! Loading plugins: every way a component can be wrong is caught at start-up
//! with a message that names the step and the plugin.

use std::path::Path;

use crate::test_plugins::{FILTER_FIELD, HOSTILE, REDACT, ROUTE_FIELD};
use host::config::{self, Plan};
use host::pipeline::Pipeline;
use host::plugin::Runtime;

use crate::support::Dir;

fn plan(dir: &Path, kind: &str, plugin: &str, extra: &str) -> Plan {
    let text = format!(
        "[[steps]]\nname = \"the-step\"\nkind = \"{kind}\"\nplugin = {plugin:?}\n{extra}\n\
         [destinations.out]\ntype = \"stdout\"\n"
    );
    config::parse(&text, &config::Location::File(dir.join("pipeline.toml"))).unwrap()
}

fn load_error(plan: Plan) -> String {
    let runtime = Runtime::new().unwrap();
    match Pipeline::load(&runtime, plan) {
        Ok(_) => panic!("the pipeline loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_file_that_is_not_wasm_is_refused_with_its_name() {
    let dir = Dir::new("plugins-not-wasm");
    std::fs::write(dir.0.join("junk.wasm"), b"this is not webassembly").unwrap();
    let e = load_error(plan(&dir.0, "filter", "junk.wasm", ""));
    assert!(e.contains("step `the-step`"), "{e}");
    assert!(e.contains("junk.wasm"), "{e}");
    assert!(e.contains("is not a valid WebAssembly component"), "{e}");
}

#[test]
fn a_core_module_is_not_a_component() {
    let dir = Dir::new("plugins-core");
    std::fs::write(dir.0.join("core.wasm"), wat::parse_str("(module)").unwrap()).unwrap();
    let e = load_error(plan(&dir.0, "filter", "core.wasm", ""));
    assert!(
        e.contains("core.wasm` is not a valid WebAssembly component"),
        "{e}"
    );
}

#[test]
fn a_plugin_for_another_world_lacks_the_export() {
    let dir = Dir::new("plugins-world");
    let e = load_error(plan(
        &dir.0,
        "transform",
        FILTER_FIELD,
        "config = { field = \"a\", equals = 1 }",
    ));
    assert!(
        e.contains("step `the-step` is a `transform` step, but plugin"),
        "{e}"
    );
    assert!(e.contains("filter_field.wasm"), "{e}");
    assert!(e.contains("sluice:plugin/transform"), "{e}");
}

#[test]
fn an_import_sluice_does_not_offer_is_named() {
    let dir = Dir::new("plugins-import");
    let component = wat::parse_str(
        r#"(component
             (import "acme:secrets/vault@1.0.0" (instance (export "read" (func (result string))))))"#,
    )
    .unwrap();
    std::fs::write(dir.0.join("greedy.wasm"), component).unwrap();
    let e = load_error(plan(&dir.0, "filter", "greedy.wasm", ""));
    assert!(
        e.contains("greedy.wasm` needs an import Sluice does not offer"),
        "{e}"
    );
    assert!(e.contains("acme:secrets/vault@1.0.0"), "{e}");
}

#[test]
fn a_sha256_pin_that_does_not_match_is_refused() {
    let dir = Dir::new("plugins-pin");
    let e = load_error(plan(
        &dir.0,
        "route",
        ROUTE_FIELD,
        &format!("sha256 = \"{}\"", "0".repeat(64)),
    ));
    assert!(e.contains("has SHA-256"), "{e}");
    assert!(
        e.contains(&format!("the config pins {}", "0".repeat(64))),
        "{e}"
    );
}

#[test]
fn bad_settings_are_rejected_by_init_naming_the_step() {
    let dir = Dir::new("plugins-settings");
    let e = load_error(plan(
        &dir.0,
        "filter",
        FILTER_FIELD,
        "config = { field = \"type\" }",
    ));
    assert!(e.contains("step `the-step`: plugin"), "{e}");
    assert!(
        e.contains("rejected its config: missing `equals` (or `one_of`)"),
        "{e}"
    );

    let e = load_error(plan(
        &dir.0,
        "transform",
        REDACT,
        "config = { feilds = [\"email\"] }",
    ));
    assert!(
        e.contains("rejected its config: invalid settings: unknown field `feilds`"),
        "{e}"
    );
}

#[test]
fn the_example_plugins_load_for_their_own_kinds() {
    let dir = Dir::new("plugins-ok");
    let runtime = Runtime::new().unwrap();
    for (kind, plugin, cfg) in [
        (
            "filter",
            FILTER_FIELD,
            "config = { field = \"a\", equals = 1 }",
        ),
        ("transform", REDACT, ""),
        (
            "route",
            ROUTE_FIELD,
            "config = { field = \"a\", routes = {} }",
        ),
    ] {
        let plan = plan(&dir.0, kind, plugin, cfg);
        let loaded = runtime
            .load(&plan.steps[0])
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        // The Rust SDK exports the packed twin of its kind's world, and the
        // host takes it.
        assert_eq!(loaded.world(), format!("packed-{kind}"));
        Pipeline::load(&runtime, plan).unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
}

/// A packed batch hands the plugin every field of every event, as a
/// `list<event>` did: two `transform` steps (the hostile plugin's `echo`)
/// over records of two shards, with and without KPL sub-sequence numbers,
/// empty and non-ASCII payloads; the second step sees the attributes the
/// first set.
#[test]
fn a_packed_batch_hands_the_plugin_every_field_of_every_event() {
    use host::event::{Batch, Record};
    use serde_json::{Value, json};

    let dir = Dir::new("plugins-packed");
    let step = |name: &str| {
        format!(
            "[[steps]]\nname = \"{name}\"\nkind = \"transform\"\nplugin = {HOSTILE:?}\n\
             config = {{ mode = \"echo\" }}\n"
        )
    };
    let text = format!(
        "{}{}[destinations.out]\ntype = \"stdout\"\n",
        step("first"),
        step("second")
    );
    let plan = config::parse(&text, &config::Location::File(dir.0.join("p.toml"))).unwrap();
    let mut pipeline = Pipeline::load(&Runtime::new().unwrap(), plan).unwrap();
    let records: Vec<Record> = [
        ("shardId-000000000001", "4959001", None, "pk-a", "{\"a\":1}"),
        ("shardId-000000000001", "4959002", Some(0), "pk-b", ""),
        (
            "shardId-000000000001",
            "4959002",
            Some(1),
            "ключ",
            "héllo \u{0}",
        ),
        ("shardId-000000000007", "88", None, "pk-c", "x"),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (shard, seq, sub, key, data))| Record {
        shard_id: shard.into(),
        sequence_number: seq.into(),
        sub_sequence_number: sub,
        partition_key: key.into(),
        arrival_ms: 1_700_000_000_000 + i as u64,
        data: data.as_bytes().to_vec(),
        attributes: Vec::new(),
    })
    .collect();
    let batch = Batch {
        slot: (0..records.len()).collect(),
        records: records.clone(),
        ..Batch::default()
    };
    let outcome = pipeline.run(batch);
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert_eq!(outcome.routed.len(), records.len());
    for (routed, record) in outcome.routed.iter().zip(&records) {
        let lineage = |data: Value| {
            json!({
                "partition_key": record.partition_key,
                "sequence_number": record.sequence_number,
                "sub_sequence_number": record.sub_sequence_number,
                "shard_id": record.shard_id,
                "arrival_ms": record.arrival_ms,
                "data": data,
            })
        };
        let mut first = lineage(json!(String::from_utf8_lossy(&record.data)));
        first["attributes"] = json!([]);
        let mut second = lineage(json!(first.to_string()));
        second["attributes"] = json!([["seen", "0"]]);
        let seen: Value = serde_json::from_slice(&routed.record.data).unwrap();
        assert_eq!(seen, second, "record {}", record.sequence_number);
        assert_eq!(
            routed.record.attributes,
            [
                ("seen".to_owned(), "0".to_owned()),
                ("seen".to_owned(), "1".to_owned())
            ]
        );
    }
}

/// The SDK's JSON scanner as the plugins run it (built for wasm with
/// `simd128`) decides as `serde_json` does. `filter-field` keeps, drops or
/// fails each of several thousand payloads exactly as a
/// `serde_json::Value` of it says: the payloads put escaped quotes and
/// backslashes, `\u` escapes, raw quotes, control characters and non-ASCII
/// text at every offset of strings that span the 16-byte blocks the scanner
/// reads. (The scanner's unit tests run the native build, without SIMD.)
#[test]
fn the_wasm_json_scanner_decides_as_serde_json_does() {
    use serde_json::{Value, json};

    let dir = Dir::new("plugins-scanner");
    let specials = [
        r#"\""#, r"\\", r"\n", r"\u00e9", "\"", "\u{1}", "é", "\u{7f}", " ",
    ];
    let keys = [r#""x""#, r#""y""#, r#""\u0078""#, "1", "true"];
    let mut payloads = Vec::new();
    for len in 0..40 {
        for at in 0..=len {
            for (n, special) in specials.iter().enumerate() {
                let text = format!("{}{special}{}", "a".repeat(at), "b".repeat(len - at));
                let k = keys[(len + at + n) % keys.len()];
                payloads.push(format!(
                    r#"{{"pad":"{text}","k":{k},"z":["{text}",{{"q":"{text}"}}]}}"#
                ));
            }
        }
    }
    // `x` kept, anything else dropped, not JSON failed: as serde_json says.
    let expected: Vec<Option<bool>> = payloads
        .iter()
        .map(|p| {
            serde_json::from_str::<Value>(p)
                .ok()
                .map(|v| v.get("k") == Some(&json!("x")))
        })
        .collect();
    let kept = expected.iter().filter(|e| **e == Some(true)).count();
    let failed = expected.iter().filter(|e| e.is_none()).count();
    assert!(kept > 1000 && failed > 1000, "kept {kept}, failed {failed}");

    let plan = plan(
        &dir.0,
        "filter",
        FILTER_FIELD,
        "config = { field = \"k\", equals = \"x\" }\non_error = \"drop\"",
    );
    let runtime = Runtime::new().unwrap();
    let mut pipeline = Pipeline::load(&runtime, plan).unwrap();
    let batch =
        host::event::decode(crate::support::event_json(&payloads).as_bytes(), "event").unwrap();
    let outcome = pipeline.run(batch);
    let mut got = vec![Some(false); payloads.len()];
    for r in &outcome.routed {
        got[r.slot] = Some(true);
    }
    for f in &outcome.dropped {
        got[f.index] = None;
    }
    for (i, (got, expected)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(got, expected, "payload {}", payloads[i]);
    }
}
