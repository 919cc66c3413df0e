//! Destinations: where routed outputs are delivered.
//!
//! [`Destination`] is the one seam between the pipeline and the outside world; each
//! kind of destination is a variant: an [`sqs::SqsDestination`] queue, an
//! [`s3::S3Destination`] bucket, a local [`file::FileDestination`], standard output, or a
//! [`memory::MemoryDestination`] for tests and dry runs. [`encode`] turns one output
//! into one line in the destination's [`Format`].
//!
//! A send reports, per output, what was not delivered ([`SendFailure`]);
//! delivery is all-or-nothing only where the destination is (a file, an S3 object).

pub mod file;
pub mod memory;
pub mod s3;
pub mod sqs;

use std::io::Write as _;

use base64::Engine as _;
use serde::ser::{SerializeMap, Serializer};

use crate::aws::Aws;
use crate::config::{DestinationKind, DestinationPlan, Format};
use crate::outcome::Routed;

/// An output a destination did not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendFailure {
    /// Its position in the slice given to [`Destination::send`].
    pub output: usize,
    /// Why, naming the resource (queue URL, object key, file).
    pub reason: String,
    /// The destination refuses this content every time (SQS's
    /// `SenderFault = true`): the record fails with class `contract` under
    /// its policy instead of being retried.
    pub for_good: bool,
}

/// A destination could not take a batch of outputs.
#[derive(Debug, thiserror::Error)]
#[error("destination `{destination}`: {message}")]
pub struct DestinationError {
    /// The destination's name.
    pub destination: String,
    /// What went wrong.
    pub message: String,
}

/// A destination, ready to deliver.
#[derive(Debug)]
pub enum Destination {
    /// A local file (JSON Lines or raw lines).
    File(file::FileDestination),
    /// Standard output.
    Stdout {
        /// The destination's name.
        name: String,
        /// The line format.
        format: Format,
    },
    /// An in-memory buffer (tests, `sluice test`, dry runs).
    Memory(memory::MemoryDestination),
    /// An SQS queue.
    Sqs(sqs::SqsDestination),
    /// An S3 bucket.
    S3(s3::S3Destination),
}

impl Destination {
    /// Builds the destination `plan` describes (nothing is sent or written
    /// yet). SQS and S3 destinations need `aws`.
    pub fn open(
        plan: &DestinationPlan,
        aws: Option<&Aws>,
    ) -> Result<Destination, DestinationError> {
        let aws = || {
            aws.ok_or_else(|| DestinationError {
                destination: plan.name.clone(),
                message: "an AWS destination, but no AWS clients were set up".into(),
            })
        };
        let name = &plan.name;
        Ok(match &plan.kind {
            DestinationKind::Sqs(p) => {
                Destination::Sqs(sqs::SqsDestination::new(name, p, aws()?.sqs.clone()))
            }
            DestinationKind::S3(p) => {
                Destination::S3(s3::S3Destination::new(name, p, aws()?.s3.clone()))
            }
            DestinationKind::File(p) => Destination::File(file::FileDestination::new(name, p)),
            DestinationKind::Stdout(p) => Destination::Stdout {
                name: name.clone(),
                format: p.format,
            },
        })
    }

    /// Reads what the service itself says of the destination's limits, at
    /// cold start: an SQS queue's `MaximumMessageSize`, which lowers
    /// `max_message_bytes` when it is smaller. Needs `sqs:GetQueueAttributes`;
    /// without it, the configured limit stands (and a warning says so).
    pub async fn read_limits(&mut self) {
        if let Destination::Sqs(q) = self {
            q.read_queue_limit().await;
        }
    }

    /// The destination's name.
    pub fn name(&self) -> &str {
        match self {
            Destination::File(f) => f.name(),
            Destination::Stdout { name, .. } => name,
            Destination::Memory(m) => m.name(),
            Destination::Sqs(q) => q.name(),
            Destination::S3(b) => b.name(),
        }
    }

    /// Where it writes, for summaries: a path, `stdout` or `memory`.
    pub fn describe(&self) -> String {
        match self {
            Destination::File(f) => format!("file {}", f.path().display()),
            Destination::Stdout { .. } => "stdout".into(),
            Destination::Memory(_) => "memory".into(),
            Destination::Sqs(q) => format!("sqs {}", q.queue_url()),
            Destination::S3(b) => format!("s3://{}", b.bucket()),
        }
    }

    /// Why this destination would refuse `output` every time it is sent (it
    /// breaks the destination's rules), or `None`. Dispatch asks before
    /// sending, so such a record fails under its policy (class `contract`)
    /// instead of being retried forever.
    pub fn refusal(&self, output: &Routed) -> Option<String> {
        match self {
            Destination::Sqs(q) => q.refusal(output),
            Destination::S3(_)
            | Destination::File(_)
            | Destination::Stdout { .. }
            | Destination::Memory(_) => None,
        }
    }

    /// Sets the X-Ray trace header that SQS messages carry from now on
    /// (`AWSTraceHeader`); other destinations have nowhere to put it.
    pub fn set_trace_header(&mut self, header: Option<&str>) {
        if let Destination::Sqs(q) = self {
            q.set_trace_header(header);
        }
    }

    /// Requests made to the destination so far, for the services that batch
    /// (SQS, S3); `None` for the local ones, where each send is one write.
    pub fn requests(&self) -> Option<usize> {
        match self {
            Destination::Sqs(q) => Some(q.requests()),
            Destination::S3(b) => Some(b.requests()),
            Destination::File(_) | Destination::Stdout { .. } | Destination::Memory(_) => None,
        }
    }

    /// Delivers `outputs` in order; returns those that were not delivered.
    pub async fn send(&mut self, outputs: &[&Routed]) -> Vec<SendFailure> {
        let all_failed = |reason: String| {
            (0..outputs.len())
                .map(|output| SendFailure {
                    for_good: false,
                    output,
                    reason: reason.clone(),
                })
                .collect()
        };
        match self {
            Destination::Sqs(q) => q.send(outputs).await,
            Destination::S3(b) => b.send(outputs).await,
            Destination::File(f) => match f.send(outputs) {
                Ok(()) => Vec::new(),
                Err(e) => all_failed(e.message),
            },
            Destination::Stdout { format, .. } => {
                let mut buf = Vec::with_capacity(outputs.len() * 256);
                for r in outputs {
                    encode(*format, r, &mut buf);
                }
                let mut out = std::io::stdout().lock();
                match out.write_all(&buf).and_then(|()| out.flush()) {
                    Ok(()) => Vec::new(),
                    Err(e) => all_failed(format!("cannot write to stdout: {e}")),
                }
            }
            Destination::Memory(m) => m.send(outputs),
        }
    }
}

/// Appends one output to `buf` as one line (ending in `\n`) in `format`.
///
/// `raw` writes the payload bytes as they are; `envelope` writes a JSON
/// object: `shard_id`, `sequence_number`, `sub_sequence_number` (when set),
/// `output_index`, `partition_key`, `attributes` (an object, when any: the
/// plugins' attributes, then Sluice's own, such as a dead letter's class) and
/// `data` (the payload, when it is JSON) or `data_base64` (when it is not).
pub fn encode(format: Format, routed: &Routed, buf: &mut Vec<u8>) {
    match format {
        Format::Raw => buf.extend_from_slice(&routed.record.data),
        Format::Envelope => write_envelope(routed, buf),
    }
    buf.push(b'\n');
}

fn write_envelope(routed: &Routed, buf: &mut Vec<u8>) {
    struct Attributes<'a>(&'a [(String, String)], &'a [(&'static str, String)]);
    impl serde::Serialize for Attributes<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(Some(self.0.len() + self.1.len()))?;
            for (k, v) in self.0 {
                map.serialize_entry(k, v)?;
            }
            for (k, v) in self.1 {
                map.serialize_entry(k, v)?;
            }
            map.end()
        }
    }
    let r = &routed.record;
    let mut ser = serde_json::Serializer::new(&mut *buf);
    // Writing into a Vec cannot fail, and every key is a string.
    let result = (|| {
        let mut map = ser.serialize_map(None)?;
        map.serialize_entry("shard_id", &r.shard_id)?;
        map.serialize_entry("sequence_number", &r.sequence_number)?;
        if let Some(sub) = r.sub_sequence_number {
            map.serialize_entry("sub_sequence_number", &sub)?;
        }
        map.serialize_entry("output_index", &routed.output_index)?;
        map.serialize_entry("partition_key", &r.partition_key)?;
        if !r.attributes.is_empty() || !routed.host_attributes.is_empty() {
            map.serialize_entry(
                "attributes",
                &Attributes(&r.attributes, &routed.host_attributes),
            )?;
        }
        match serde_json::from_slice::<&serde_json::value::RawValue>(&r.data) {
            Ok(json) => map.serialize_entry("data", json)?,
            Err(_) => map.serialize_entry(
                "data_base64",
                &base64::engine::general_purpose::STANDARD.encode(&r.data),
            )?,
        }
        map.end()
    })();
    debug_assert!(result.is_ok(), "serializing an envelope into a Vec failed");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Record;

    fn routed(data: &[u8]) -> Routed {
        Routed {
            record: Record {
                shard_id: "shardId-000000000000".into(),
                sequence_number: "42".into(),
                sub_sequence_number: None,
                partition_key: "pk".into(),
                arrival_ms: 0,
                data: data.to_vec(),
                attributes: vec![("k".into(), "v".into())],
            },
            slot: 0,
            output_index: 1,
            destinations: vec![0],
            host_attributes: Vec::new(),
        }
    }

    #[test]
    fn envelope_embeds_json_and_base64s_the_rest() {
        let mut buf = Vec::new();
        encode(Format::Envelope, &routed(br#"{"a": 1}"#), &mut buf);
        encode(Format::Envelope, &routed(&[0xff, 0x00]), &mut buf);
        let text = String::from_utf8(buf).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            r#"{"shard_id":"shardId-000000000000","sequence_number":"42","output_index":1,"partition_key":"pk","attributes":{"k":"v"},"data":{"a": 1}}"#
        );
        assert!(lines.next().unwrap().ends_with(r#""data_base64":"/wA="}"#));
    }

    #[test]
    fn raw_is_the_payload_and_a_newline() {
        let mut buf = Vec::new();
        encode(Format::Raw, &routed(b"hello"), &mut buf);
        assert_eq!(buf, b"hello\n");
    }
}
