//! Records the mapping gives up on (too old, out of retries): the ESM's
//! on-failure record, sent to the `--on-failure` destination (an SQS queue,
//! an S3 prefix or a file) or only logged when there is none.

use host::destination::Destination;
use host::event::Record;
use host::outcome::Routed;

use super::lanes::Run;
use super::{Pending, now_ms};
use crate::stream::esm::{self, Condition, Discarded};

/// Gives up on `gone`: its on-failure record goes to `on_failure`, or it is
/// only logged when there is none. An on-failure record that cannot be sent
/// ends the run (the checkpoint stays before these records, so a restart
/// tries them again): nothing is dropped silently.
pub(super) async fn discard(
    run: &mut Run<'_>,
    shard_id: &str,
    gone: &[Pending],
    condition: Condition,
    invoke_count: u32,
    function_error: bool,
) -> Result<(), String> {
    let (Some(first), Some(last)) = (gone.first(), gone.last()) else {
        return Ok(());
    };
    run.report.discarded += gone.len();
    tracing::warn!(
        shard = %shard_id,
        records = gone.len(),
        first = %first.record.sequence_number,
        last = %last.record.sequence_number,
        condition = condition.as_str(),
        on_failure = run.on_failure.as_ref().map(|d| d.describe()).unwrap_or_else(|| "none".into()),
        "discarding records, as the event source mapping does"
    );
    let Some(destination) = run.on_failure.as_ref() else {
        return Ok(());
    };
    let doc = esm::failure_record(
        run.source,
        &Discarded {
            shard_id,
            first: &first.record,
            last: &last.record,
            batch_size: gone.len(),
            condition,
            invoke_count,
            function_error,
        },
        now_ms(),
    );
    let routed = Routed {
        record: Record {
            shard_id: shard_id.to_owned(),
            sequence_number: first.record.sequence_number.clone(),
            sub_sequence_number: None,
            partition_key: first.record.partition_key.clone(),
            arrival_ms: first.record.arrival_ms.max(0) as u64,
            data: doc,
            attributes: Vec::new(),
        },
        slot: 0,
        output_index: 0,
        destinations: vec![0],
        host_attributes: Vec::new(),
    };
    let (failures, _) = host::dispatch::driver::deliver(destination.sink(), &[&routed], None).await;
    match failures.first() {
        None => Ok(()),
        Some(f) => Err(format!(
            "could not send the on-failure record of shard `{shard_id}` ({} to {}) to `{}`: {}",
            first.record.sequence_number,
            last.record.sequence_number,
            destination.describe(),
            f.reason
        )),
    }
}

/// The destination of `--on-failure`: an SQS queue URL (`https://…`), an
/// S3 prefix (`s3://bucket/prefix`: one object per discarded batch, under
/// `<prefix>/<shard>/<yyyy>/<mm>/<dd>/<first sequence number>.json`) or a
/// local file (JSON Lines). AWS clients come from the environment.
pub async fn on_failure_destination(
    location: &str,
    aws: &mut Option<host::aws::Aws>,
) -> Result<Destination, String> {
    use host::config::destination::{
        Context, DestinationKind, file::FileConfig, s3::S3Config, sqs::SqsConfig,
    };
    use host::config::{DestinationPlan, Format};
    let cx = Context {
        base: std::path::Path::new(""),
    };
    let invalid = |e: host::config::destination::Invalid| {
        format!("--on-failure `{location}`: {}: {}", e.field, e.message)
    };
    let kind = if location.starts_with("https://") || location.starts_with("http://") {
        DestinationKind::Sqs(
            SqsConfig {
                queue_url: location.to_owned(),
                message_group_id: None,
                max_message_bytes: host::config::destination::sqs::MAX_MESSAGE_BYTES,
                format: Format::Raw,
                max_in_flight: host::config::destination::DEFAULT_MAX_IN_FLIGHT,
                claim_check: None,
            }
            .validate(cx)
            .map_err(invalid)?,
        )
    } else if let Some(rest) = location.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_end_matches('/');
        let key = if prefix.is_empty() {
            "{shard}/{yyyy}/{mm}/{dd}/{first_seq}.json".to_owned()
        } else {
            format!("{prefix}/{{shard}}/{{yyyy}}/{{mm}}/{{dd}}/{{first_seq}}.json")
        };
        DestinationKind::S3(
            S3Config {
                bucket: bucket.to_owned(),
                key,
                format: Format::Raw,
                gzip: false,
                content_type: Some("application/json".into()),
                max_in_flight: host::config::destination::DEFAULT_MAX_IN_FLIGHT,
            }
            .validate(cx)
            .map_err(invalid)?,
        )
    } else {
        DestinationKind::File(
            FileConfig {
                path: location.into(),
                format: Format::Raw,
            }
            .validate(cx)
            .map_err(invalid)?,
        )
    };
    let plan = DestinationPlan {
        name: "on-failure".into(),
        kind,
    };
    if plan.kind.in_aws() {
        host::app::clients(aws).await;
    }
    Destination::open(&plan, aws.as_ref()).map_err(|e| e.to_string())
}
