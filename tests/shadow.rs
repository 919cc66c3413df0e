//! Shadow steps: a candidate plugin runs on a step's inputs after it and is
//! compared, never delivered. A trapping or spinning candidate leaves the
//! real outputs byte for byte and the invocation's time within its share,
//! and is counted in the step's EMF metrics (`ShadowCalls`,
//! `ShadowMismatches`, `ShadowFailures`).
//!
//! Run with: `cargo test -p sluice-cli --test all shadow::`.

use std::path::Path;
use std::time::{Duration, Instant};

use host::app::App;
use serde_json::Value;

use crate::support::{self, Dir};

/// The clickstream example (its plugins as built), every destination in
/// memory; `shadow` is added to the step named `step`.
fn pipeline(dir: &Path, step: &str, shadow: &str) -> String {
    let mut text = support::example_config("clickstream");
    if !shadow.is_empty() {
        let at = text.find(&format!("name = \"{step}\"")).unwrap();
        let end = at + text[at..].find("\n\n").unwrap();
        text.insert_str(end, &format!("\nshadow = {shadow}"));
    }
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let config = dir.join(format!("{step}-{n}.toml"));
    std::fs::write(&config, text).unwrap();
    config.to_str().unwrap().to_owned()
}

/// Each destination's outputs and the step documents of the EMF metrics,
/// after one invocation of `config` on the example event (with `deadline`).
async fn invoke(config: &str, deadline: Option<Instant>) -> (Vec<Vec<u8>>, Vec<Value>, Duration) {
    let (mut app, memory) = App::load_in_memory(config).await.unwrap();
    let event = support::event("events/example-kinesis-event.json");
    let started = Instant::now();
    let invoked = host::lambda::invoke(&mut app, &event, deadline)
        .await
        .unwrap();
    let took = started.elapsed();
    let invocation = host::metrics::Invocation {
        timestamp_ms: 0,
        duration: took,
        oldest_arrival_ms: None,
        cold_start: None,
        batch_item_failures: 0,
    };
    let docs = host::metrics::documents(app.plan(), &invoked.report, &invocation)
        .into_iter()
        .map(|d| serde_json::from_str::<Value>(&d.to_string()).unwrap())
        .filter(|d| d.get("Step").is_some())
        .collect();
    (memory.iter().map(|m| m.contents()).collect(), docs, took)
}

fn step<'a>(docs: &'a [Value], name: &str) -> &'a Value {
    docs.iter().find(|d| d["Step"] == name).unwrap()
}

#[tokio::test]
async fn a_trapping_shadow_changes_nothing_delivered_and_is_counted() {
    let dir = Dir::new("shadow-trap");
    let (want, plain, _) = invoke(&pipeline(&dir.0, "redact-pii", ""), None).await;
    assert!(step(&plain, "redact-pii").get("ShadowCalls").is_none());
    let trapping = format!(
        r#"{{ plugin = "{}", config = {{ mode = "trap", marker = "{{" }} }}"#,
        crate::test_plugins::HOSTILE
    );
    let (got, docs, _) = invoke(&pipeline(&dir.0, "redact-pii", &trapping), None).await;
    assert_eq!(got, want, "the real outputs, byte for byte");
    assert!(want.iter().any(|d| !d.is_empty()));
    let redact = step(&docs, "redact-pii");
    assert_eq!(redact["ShadowCalls"], 1);
    assert_eq!(redact["ShadowFailures"], redact["In"]);
    assert_eq!(redact["ShadowMismatches"], 0);
    assert_eq!(redact["Failed"], 0);
    assert!(step(&docs, "drop-bots").get("ShadowCalls").is_none());
}

#[tokio::test]
async fn a_spinning_shadow_takes_at_most_its_share_of_the_time() {
    let dir = Dir::new("shadow-spin");
    let (want, _, _) = invoke(&pipeline(&dir.0, "redact-pii", ""), None).await;
    let spinning = format!(
        r#"{{ plugin = "{}", config = {{ mode = "spin", marker = "{{" }}, limits = {{ timeout_ms = 20000 }}, time_share = 0.1 }}"#,
        crate::test_plugins::HOSTILE
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    let (got, docs, took) =
        invoke(&pipeline(&dir.0, "redact-pii", &spinning), Some(deadline)).await;
    assert_eq!(got, want);
    assert!(
        took < Duration::from_millis(1500),
        "a tenth of the 3 s left, not the shadow's 20 s: took {took:?}"
    );
    assert_eq!(
        step(&docs, "redact-pii")["ShadowFailures"],
        step(&docs, "redact-pii")["In"]
    );
}

#[tokio::test]
async fn mismatches_are_the_events_the_candidate_decides_otherwise() {
    let dir = Dir::new("shadow-compare");
    // The step's own plugin, with the step's settings: no mismatch.
    let same = format!(r#"{{ plugin = "{}" }}"#, crate::test_plugins::FILTER_FIELD);
    let (_, docs, _) = invoke(&pipeline(&dir.0, "drop-bots", &same), None).await;
    let filter = step(&docs, "drop-bots");
    assert_eq!(
        (
            &filter["ShadowCalls"],
            &filter["ShadowMismatches"],
            &filter["ShadowFailures"]
        ),
        (&Value::from(1), &Value::from(0), &Value::from(0))
    );
    // A candidate that keeps bots: the two bots of the example event.
    let keeps_bots = format!(
        r#"{{ plugin = "{}", config = {{ field = "bot", equals = "never", negate = true, keep_if_missing = true }} }}"#,
        crate::test_plugins::FILTER_FIELD
    );
    let (_, docs, _) = invoke(&pipeline(&dir.0, "drop-bots", &keeps_bots), None).await;
    assert_eq!(step(&docs, "drop-bots")["ShadowMismatches"], 2);
    assert_eq!(
        step(&docs, "drop-bots")["Dropped"],
        2,
        "the step still drops them"
    );
}

#[test]
fn shadow_rules_are_checked() {
    let dir = Dir::new("shadow-rules");
    let check = |shadow: &str| {
        let config = pipeline(&dir.0, "by-type", shadow);
        let text = std::fs::read_to_string(&config).unwrap();
        host::config::parse(&text, &host::config::Location::File(config.clone().into()))
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let share = check(&format!(
        r#"{{ plugin = "{}", time_share = 0.9 }}"#,
        crate::test_plugins::ROUTE_FIELD
    ))
    .unwrap_err();
    assert!(
        share.contains("steps[2] (`by-type`).shadow.time_share") && share.contains("at most 0.5"),
        "{share}"
    );
    let pin = check(&format!(
        r#"{{ plugin = "{}", sha256 = "abc" }}"#,
        crate::test_plugins::ROUTE_FIELD
    ))
    .unwrap_err();
    assert!(pin.contains("steps[2] (`by-type`).shadow.sha256"), "{pin}");
    let missing = host::config::load(Path::new(&pipeline(
        &dir.0,
        "by-type",
        r#"{ plugin = "missing.wasm" }"#,
    )))
    .unwrap_err()
    .to_string();
    assert!(
        missing.contains("steps[2] (`by-type`).shadow.plugin") && missing.contains("missing.wasm"),
        "{missing}"
    );
}
