//! The deployment example: the SAM template passes `cfn-lint`, and the
//! deployed pipeline config is valid once the stack's outputs are filled in.
//!
//! Run with `cargo test -p sluice-cli --test all deploy::` (needs `cfn-lint`: `tests/run` installs it).

use std::process::Command;

use host::config::{self, DestinationKind, Location};

#[test]
fn the_sam_template_passes_cfn_lint() {
    let template = crate::support::root().join("examples/deploy/template.yaml");
    let out = Command::new("cfn-lint")
        .arg(&template)
        .output()
        .expect("cannot run `cfn-lint`; `tests/run` installs it: pip install cfn-lint");
    assert!(
        out.status.success(),
        "cfn-lint found problems in {}:\n{}{}",
        template.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_deployed_pipeline_config_is_valid() {
    let text =
        std::fs::read_to_string(crate::support::root().join("examples/deploy/pipeline.toml"))
            .unwrap()
            .replace(
                "@ORDERS_QUEUE_URL@",
                "https://sqs.eu-west-1.amazonaws.com/123456789012/s-orders.fifo",
            )
            .replace(
                "@ANALYTICS_QUEUE_URL@",
                "https://sqs.eu-west-1.amazonaws.com/123456789012/s-analytics",
            )
            .replace("@ARCHIVE_BUCKET@", "s-archive");
    let origin = Location::parse("s3://config/clickstream/pipeline.toml").unwrap();
    let plan = config::parse(&text, &origin).unwrap();
    assert_eq!(
        plan.steps[1].plugin.to_string(),
        "s3://config/clickstream/plugins/redact.wasm"
    );
    let orders = &plan.destinations[plan.destination("orders").unwrap()];
    assert!(matches!(&orders.kind, DestinationKind::Sqs(q) if q.fifo));
}
