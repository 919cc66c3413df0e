//! The real `sluice` binary as a Lambda function, served by cargo-lambda's
//! Runtime API emulator (`cargo lambda watch --only-lambda-apis`) and invoked
//! with `cargo lambda invoke --data-file <kinesis event>`, with its config,
//! plugins and destinations in a moto server. The pipeline is deployed the
//! way the README says: `sluice precompile`, then upload its output folder.
//!
//! Run with `cargo test -p sluice-cli --test all lambda::` (needs `moto_server` and
//! `cargo-lambda`: `tests/run` installs both).

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the Runtime API emulator on a free port; returns it and the port.
fn runtime_api() -> (Proc, u16) {
    let port = free_port();
    let child = Command::new("cargo")
        .args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            "-A",
            "127.0.0.1",
            "-P",
            &port.to_string(),
        ])
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "cannot start `cargo lambda watch`; `tests/run` installs it: pip install cargo-lambda",
        );
    let proc = Proc(child);
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "cargo lambda watch did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (proc, port)
}

/// Starts the `sluice` binary as the function, as the Lambda service would.
fn function(port: u16, moto: &Moto, config: &str, pin: Option<&str>, log: &Path) -> Proc {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    if let Some(pin) = pin {
        command.env(host::app::CONFIG_PIN_VAR, pin);
    }
    let child = command
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{port}/.rt"),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", "_")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("SLUICE_CONFIG", config)
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env_remove("AWS_PROFILE")
        .env_remove("SLUICE_LOG_FORMAT")
        .env(
            "SLUICE_LOG",
            "info,sluice.lambda.invoke=debug,host::pipeline=debug,host::dispatch=debug",
        )
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting sluice");
    Proc(child)
}

/// `cargo lambda invoke --data-file <event>`; returns the response body.
fn invoke(port: u16, event: &Path) -> serde_json::Value {
    let out = Command::new("cargo")
        .args([
            "lambda",
            "invoke",
            "-A",
            "127.0.0.1",
            "-P",
            &port.to_string(),
            "--data-file",
        ])
        .arg(event)
        .current_dir(root())
        .output()
        .expect("running cargo lambda invoke");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo lambda invoke failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("response is not JSON ({e}): {stdout}"))
}

#[tokio::test(flavor = "current_thread")]
async fn the_sluice_binary_serves_kinesis_invocations_under_the_runtime_api() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    create_bucket(&aws, "config").await;
    create_bucket(&aws, "archive").await;
    let orders = create_queue(&aws, "orders.fifo").await;
    let analytics = create_queue(&aws, "analytics").await;
    let config = clickstream_config(&format!(
        "[destinations.orders]\ntype = \"sqs\"\nqueue_url = \"{orders}\"\n\
         [destinations.analytics]\ntype = \"sqs\"\nqueue_url = \"{analytics}\"\n\
         [destinations.archive]\ntype = \"s3\"\nbucket = \"archive\"\n\
         key = \"clicks/{{yyyy}}/{{mm}}/{{dd}}/{{shard}}-{{first_seq}}-{{last_seq}}.jsonl.gz\"\nformat = \"envelope\"\ngzip = true\n"
    ));
    let (uri, pin) = deploy_precompiled(&aws, "config", "clickstream", &config).await;

    let (_api, port) = runtime_api();
    let log = std::env::temp_dir().join(format!("sluice-lambda-{}.log", std::process::id()));
    let _function = function(port, &moto, &uri, Some(&pin), &log);

    // Everything delivered: an empty failure list.
    let examples = root().join("examples/clickstream");
    let response = invoke(port, &examples.join("events/example-kinesis-event.json"));
    assert_eq!(response, serde_json::json!({"batchItemFailures": []}));
    assert_eq!(drain(&aws, &orders).await.len(), 3);
    assert_eq!(drain(&aws, &analytics).await.len(), 3);
    assert_eq!(keys(&aws, "archive").await.len(), 2, "one object per shard");

    // A record the filter rejects: Lambda is told to retry from it, and the
    // record after it on the same shard is held back.
    let response = invoke(port, &examples.join("tests/not-json-payload/event.json"));
    assert_eq!(
        response,
        serde_json::json!({"batchItemFailures": [
            {"itemIdentifier": "49590338271490256608559692538361571095921575989136588801"}
        ]})
    );
    assert_eq!(
        drain(&aws, &analytics).await.len(),
        1,
        "only the record before the failure"
    );

    let logs = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect();
    let ready = lines
        .iter()
        .find(|l| l["message"] == "ready")
        .unwrap_or_else(|| panic!("no JSON `ready` log line on stdout:\n{logs}"));
    eprintln!(
        "cold start (config and plugins from moto): {} ms",
        ready["init_ms"]
    );
    // Powertools Logger's keys, on every line written during an invocation.
    let done: Vec<_> = lines
        .iter()
        .filter(|l| l["message"] == "batch done")
        .collect();
    assert_eq!(done.len(), 2, "{logs}");
    for (i, l) in done.iter().enumerate() {
        assert_eq!(l["level"], "INFO");
        assert_eq!(l["service"], "sluice");
        assert_eq!(l["function_name"], "_");
        assert_eq!(l["function_memory_size"], 512);
        assert_eq!(l["cold_start"], i == 0, "{l}");
        for key in ["timestamp", "function_arn", "function_request_id"] {
            assert!(l[key].is_string(), "`{key}` missing: {l}");
        }
    }
    assert_ne!(
        done[0]["function_request_id"],
        done[1]["function_request_id"]
    );
    // The metrics: one EMF document for the pipeline, one per step and per
    // destination, after each invocation.
    let emf: Vec<_> = lines.iter().filter(|l| l.get("_aws").is_some()).collect();
    assert_eq!(emf.len(), 2 * (1 + 3 + 3), "{logs}");
    emf.iter().for_each(|d| crate::metrics::check_emf(d));
    let tops: Vec<_> = emf.iter().filter(|d| d.get("Records").is_some()).collect();
    assert_eq!(tops[0]["Records"], 8);
    assert_eq!(tops[0]["ColdStart"], 1);
    assert!(tops[0]["InitDuration"].as_f64().unwrap() > 0.0);
    assert_eq!(tops[1]["ColdStart"], 0);
    assert_eq!(tops[1]["BatchItemFailures"], 1);
    assert_eq!(tops[0]["Pipeline"], "_", "the function's name");
    // At debug level, one line per step and per destination as its span
    // closes, with its duration and the invocation's request id.
    let closed = |span: &str| -> Vec<&serde_json::Value> {
        lines
            .iter()
            .filter(|l| l["message"] == "close" && l["span"] == span)
            .collect()
    };
    let steps = closed("sluice.pipeline.step");
    assert_eq!(steps.len(), 2 * 3, "{logs}");
    assert_eq!(steps[0]["step"], "drop-bots");
    assert!(
        steps
            .iter()
            .all(|l| l["time.busy"].is_string() && l["function_request_id"].is_string())
    );
    let sends = closed("sluice.dispatch.send");
    assert!(sends.iter().any(|l| l["destination"] == "orders"), "{logs}");
    assert!(logs.contains("\"message\":\"record failed\""), "{logs}");
    let loaded: Vec<_> = logs
        .lines()
        .filter(|l| l.contains("\"message\":\"plugin loaded\""))
        .collect();
    assert_eq!(loaded.len(), 3, "{logs}");
    assert!(
        loaded.iter().all(|l| l.contains("\"precompiled\":true")),
        "every plugin is loaded precompiled:\n{logs}"
    );
    let _ = std::fs::remove_file(&log);
}

/// The deploy path: the config and its plugins go through `sluice
/// precompile`, and its output folder is uploaded under `prefix`. Returns
/// the config's URI and the pin `sluice precompile` printed for it.
async fn deploy_precompiled(
    aws: &host::aws::Aws,
    bucket: &str,
    prefix: &str,
    config: &str,
) -> (String, String) {
    let dir = std::env::temp_dir().join(format!("sluice-deploy-{}-{prefix}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    for path in [
        crate::test_plugins::FILTER_FIELD,
        crate::test_plugins::REDACT,
        crate::test_plugins::ROUTE_FIELD,
    ] {
        let name = Path::new(path).file_name().unwrap();
        std::fs::copy(path, dir.join("plugins").join(name)).unwrap();
    }
    std::fs::write(dir.join("pipeline.toml"), config).unwrap();
    let out = dir.join("build");
    let stdout = sluice_precompile(&dir.join("pipeline.toml"), &out);
    let pin = stdout
        .lines()
        .find_map(|l| l.split_once("SLUICE_CONFIG_SHA256="))
        .map(|(_, pin)| pin.trim().to_owned())
        .unwrap_or_else(|| panic!("sluice precompile printed no pin:\n{stdout}"));
    for entry in std::fs::read_dir(out.join("plugins")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(name.ends_with(".cwasm"), "{name}");
        let key = format!("{prefix}/plugins/{name}");
        put(aws, bucket, &key, std::fs::read(&path).unwrap()).await;
    }
    let config = std::fs::read(out.join("pipeline.toml")).unwrap();
    put(aws, bucket, &format!("{prefix}/pipeline.toml"), config).await;
    let _ = std::fs::remove_dir_all(&dir);
    (format!("s3://{bucket}/{prefix}/pipeline.toml"), pin)
}

#[tokio::test(flavor = "current_thread")]
async fn a_bad_config_fails_the_cold_start_with_a_clear_message() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    create_bucket(&aws, "config").await;
    put(
        &aws,
        "config",
        "pipeline.toml",
        b"[[steps]]\nname = \"x\"\nkind = \"map\"\n".to_vec(),
    )
    .await;
    let (_api, port) = runtime_api();
    let log = std::env::temp_dir().join(format!("sluice-lambda-bad-{}.log", std::process::id()));
    let function = function(port, &moto, "s3://config/pipeline.toml", None, &log);
    let logs = failed_cold_start(function, &log);
    assert!(logs.contains("s3://config/pipeline.toml"), "{logs}");
    assert!(logs.contains("unknown variant `map`"), "{logs}");
    let _ = std::fs::remove_file(&log);
}

/// Waits for a function whose cold start must fail; returns its logs, which
/// say so.
fn failed_cold_start(mut function: Proc, log: &Path) -> String {
    let started = Instant::now();
    let status = loop {
        if let Some(status) = function.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the cold start must end"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let logs = std::fs::read_to_string(log).unwrap();
    assert!(logs.contains("cold start failed"), "{logs}");
    logs
}

/// Precompiled artifacts are native code: in S3 they load only when the
/// function's environment pins the config that names them, so that write
/// access to the config's prefix is not enough to run native code with the
/// function's role.
#[tokio::test(flavor = "current_thread")]
async fn precompiled_plugins_in_s3_need_the_config_pinned_in_the_environment() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    create_bucket(&aws, "config").await;
    create_bucket(&aws, "archive").await;
    let config = clickstream_config(&["orders", "analytics", "archive"].map(|d| {
        format!(
            "[destinations.{d}]\ntype = \"s3\"\nbucket = \"archive\"\nkey = \"{d}/{{shard}}-{{first_seq}}.jsonl\"\n"
        )
    }).concat());
    let (uri, pin) = deploy_precompiled(&aws, "config", "pinned", &config).await;
    let (_api, port) = runtime_api();
    let log = std::env::temp_dir().join(format!("sluice-lambda-pin-{}.log", std::process::id()));

    let logs = failed_cold_start(function(port, &moto, &uri, None, &log), &log);
    assert!(
        logs.contains("is precompiled native code from S3, and the config `s3://config/pinned/pipeline.toml` that names it is not pinned"),
        "{logs}"
    );
    assert!(logs.contains("SLUICE_CONFIG_SHA256"), "{logs}");

    let wrong = format!("{}0", &pin[..63]);
    let wrong = if wrong == pin {
        format!("{}1", &pin[..63])
    } else {
        wrong
    };
    let logs = failed_cold_start(function(port, &moto, &uri, Some(&wrong), &log), &log);
    assert!(
        logs.contains(&format!(
            "has SHA-256 {pin}, but the function's environment pins {wrong}"
        )),
        "{logs}"
    );
    let _ = std::fs::remove_file(&log);
}
