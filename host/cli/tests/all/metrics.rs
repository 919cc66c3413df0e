//! The CloudWatch metrics (EMF) each invocation prints: `sluice run
//! --metrics` on the example pipeline, every document validated against the
//! JSON schema of AWS's EMF specification (`tests/emf/schema.json`) and the
//! rules the schema cannot say (every metric and dimension a member of the
//! document), and the values checked against the batch's outcome.

use std::process::Command;

use crate::support::{Dir, root};

/// The EMF documents among the lines of `stdout`.
fn emf_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter(|l| l.starts_with(r#"{"_aws":"#))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Checks `doc` against the EMF specification: the schema, then the target
/// members (each metric a number or an array of at most 100 numbers, each
/// dimension a string member).
pub fn check_emf(doc: &serde_json::Value) {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/emf/schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the EMF schema compiles");
    let errors: Vec<String> = validator.iter_errors(doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{doc}: {errors:?}");
    for directive in doc["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
        for set in directive["Dimensions"].as_array().unwrap() {
            for d in set.as_array().unwrap() {
                let name = d.as_str().unwrap();
                assert!(
                    doc[name].is_string(),
                    "dimension `{name}` is not a string member: {doc}"
                );
            }
        }
        let metrics = directive["Metrics"].as_array().unwrap();
        assert!(metrics.len() <= 100, "at most 100 metrics per directive");
        for m in metrics {
            let name = m["Name"].as_str().unwrap();
            let ok = match &doc[name] {
                serde_json::Value::Number(_) => true,
                serde_json::Value::Array(values) => {
                    values.len() <= 100 && values.iter().all(serde_json::Value::is_number)
                }
                _ => false,
            };
            assert!(ok, "metric `{name}` has no numeric member: {doc}");
        }
    }
    assert!(
        doc.to_string().len() < 256 * 1024,
        "a log event holds at most 256 KB"
    );
}

/// `sluice run --metrics` on the clickstream example, with file destinations
/// in a scratch folder; returns what it printed.
fn run_example(name: &str, extra: &str) -> (String, std::process::ExitStatus) {
    let dir = Dir::new(name);
    let text = std::fs::read_to_string(root().join("examples/clickstream/pipeline.toml")).unwrap();
    let plugins = root().join("target/plugins");
    let text = text.replace("../../target/plugins", &plugins.display().to_string());
    let config = dir.0.join("clickstream.toml");
    std::fs::write(&config, format!("{extra}\n{text}")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "--metrics", "--config"])
        .arg(&config)
        .arg("--event")
        .arg(root().join("examples/clickstream/tests/not-json-payload/event.json"))
        .env_remove("AWS_LAMBDA_FUNCTION_NAME")
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status,
    )
}

#[test]
fn every_document_follows_the_emf_specification_and_adds_up() {
    let (stdout, _) = run_example("metrics", "");
    let docs = emf_lines(&stdout);
    // The pipeline, three steps, three destinations.
    assert_eq!(docs.len(), 7, "{stdout}");
    for doc in &docs {
        check_emf(doc);
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Sluice");
        assert_eq!(doc["Pipeline"], "clickstream", "the config file's name");
    }
    let top = &docs[0];
    assert_eq!(top["Records"], 3);
    assert_eq!(top["UserRecords"], 3);
    assert_eq!(top["Failed"], 1, "{top}");
    assert_eq!(top["HeldBack"], 1, "{top}");
    assert_eq!(top["BatchItemFailures"], 1);
    assert_eq!(top["ColdStart"], 1);
    assert!(top["IteratorAge"].as_f64().unwrap() > 0.0);
    assert!(top["InitDuration"].as_f64().unwrap() > 0.0);
    let steps: Vec<_> = docs.iter().filter(|d| d.get("Step").is_some()).collect();
    assert_eq!(
        steps
            .iter()
            .map(|d| d["Step"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["drop-bots", "redact-pii", "by-type"]
    );
    assert_eq!(steps[0]["In"], 3);
    assert_eq!(steps[0]["Failed"], 1, "the payload that is not JSON");
    let dests: Vec<_> = docs
        .iter()
        .filter(|d| d.get("Destination").is_some())
        .collect();
    let delivered: u64 = dests.iter().map(|d| d["Delivered"].as_u64().unwrap()).sum();
    assert_eq!(top["Outputs"], delivered);
    assert!(dests.iter().all(|d| d["Requests"].as_u64().unwrap() <= 1));
}

#[test]
fn metrics_can_be_renamed_and_turned_off() {
    let (stdout, _) = run_example(
        "metrics-named",
        "[metrics]\nnamespace = \"Acme/Streams\"\npipeline = \"clicks-prod\"\n",
    );
    let docs = emf_lines(&stdout);
    assert_eq!(
        docs[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "Acme/Streams"
    );
    assert!(docs.iter().all(|d| d["Pipeline"] == "clicks-prod"));
    let (stdout, _) = run_example("metrics-off", "[metrics]\nenabled = false\n");
    assert!(emf_lines(&stdout).is_empty(), "{stdout}");
}
