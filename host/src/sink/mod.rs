//! Destinations: where routed outputs are delivered.
//!
//! [`Sink`] is the one seam between the pipeline and the outside world; each
//! kind of destination is a variant: a local [`file::FileSink`], standard
//! output, or a [`memory::MemorySink`] for tests and dry runs. [`encode`]
//! turns one output into one line in the destination's [`Format`].

pub mod file;
pub mod memory;

use std::io::Write as _;

use base64::Engine as _;
use serde::ser::{SerializeMap, Serializer};

use crate::config::{DestinationKind, DestinationPlan, Format};
use crate::pipeline::Routed;

/// A destination could not take a batch of outputs.
#[derive(Debug, thiserror::Error)]
#[error("destination `{destination}`: {message}")]
pub struct SinkError {
    /// The destination's name.
    pub destination: String,
    /// What went wrong.
    pub message: String,
}

/// A destination, ready to deliver.
#[derive(Debug)]
pub enum Sink {
    /// A local file (JSON Lines or raw lines).
    File(file::FileSink),
    /// Standard output.
    Stdout {
        /// The destination's name.
        name: String,
        /// The line format.
        format: Format,
    },
    /// An in-memory buffer (tests, `sluice test`, dry runs).
    Memory(memory::MemorySink),
}

impl Sink {
    /// Opens the destination described by `plan`. A file destination is
    /// truncated here, once, so a run's outputs replace the previous run's.
    pub fn open(plan: &DestinationPlan) -> Result<Sink, SinkError> {
        Ok(match &plan.kind {
            DestinationKind::File { path, format } => {
                Sink::File(file::FileSink::create(&plan.name, path, *format)?)
            }
            DestinationKind::Stdout { format } => Sink::Stdout {
                name: plan.name.clone(),
                format: *format,
            },
        })
    }

    /// The destination's name.
    pub fn name(&self) -> &str {
        match self {
            Sink::File(f) => f.name(),
            Sink::Stdout { name, .. } => name,
            Sink::Memory(m) => m.name(),
        }
    }

    /// Where it writes, for summaries: a path, `stdout` or `memory`.
    pub fn describe(&self) -> String {
        match self {
            Sink::File(f) => format!("file {}", f.path().display()),
            Sink::Stdout { .. } => "stdout".into(),
            Sink::Memory(_) => "memory".into(),
        }
    }

    /// Delivers `outputs` in order; all or nothing.
    pub async fn send(&mut self, outputs: &[&Routed]) -> Result<(), SinkError> {
        match self {
            Sink::File(f) => f.send(outputs),
            Sink::Stdout { name, format } => {
                let mut buf = Vec::with_capacity(outputs.len() * 256);
                for r in outputs {
                    encode(*format, r, &mut buf);
                }
                let mut out = std::io::stdout().lock();
                out.write_all(&buf)
                    .and_then(|()| out.flush())
                    .map_err(|e| SinkError {
                        destination: name.clone(),
                        message: format!("cannot write to stdout: {e}"),
                    })
            }
            Sink::Memory(m) => {
                m.send(outputs);
                Ok(())
            }
        }
    }
}

/// Appends one output to `buf` as one line (ending in `\n`) in `format`.
///
/// `raw` writes the payload bytes as they are; `envelope` writes a JSON
/// object: `shard_id`, `sequence_number`, `sub_sequence_number` (when set),
/// `output_index`, `partition_key`, `attributes` (an object, when any) and
/// `data` (the payload, when it is JSON) or `data_base64` (when it is not).
pub fn encode(format: Format, routed: &Routed, buf: &mut Vec<u8>) {
    match format {
        Format::Raw => buf.extend_from_slice(&routed.record.data),
        Format::Envelope => write_envelope(routed, buf),
    }
    buf.push(b'\n');
}

fn write_envelope(routed: &Routed, buf: &mut Vec<u8>) {
    struct Attributes<'a>(&'a [(String, String)]);
    impl serde::Serialize for Attributes<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(Some(self.0.len()))?;
            for (k, v) in self.0 {
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
        if !r.attributes.is_empty() {
            map.serialize_entry("attributes", &Attributes(&r.attributes))?;
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
            origin: 0,
            output_index: 1,
            destinations: vec![0],
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
