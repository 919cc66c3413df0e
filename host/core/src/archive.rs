//! Reading back what Sluice archived: the lines of an object the `s3` (or
//! `file`) destination wrote, as the records the function was given.
//!
//! An object is gzip (by its magic bytes) or plain, and holds one output per
//! line. A line in the `envelope` format gives back the record whole: shard,
//! sequence and sub-sequence numbers, partition key, arrival time,
//! attributes and the payload byte for byte (a JSON payload is embedded as
//! it was written, the rest is base64). Any other line is *raw JSON Lines*:
//! the line is the payload, and the lineage is lost. Such a record gets the
//! object's name as its shard, its line number as its sequence number,
//! [`RAW_PARTITION_KEY`] as its partition key and the object's time as its
//! arrival time, so that order per object, identity and errors still name
//! where it came from.

use std::io::Read as _;

use base64::Engine as _;
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::event::Record;

/// The partition key of a record read from a raw line (its producer's key
/// was not archived).
pub const RAW_PARTITION_KEY: &str = "replay";

/// One archived line, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    /// The record, with the lineage the line kept.
    pub record: Record,
    /// Which output of its input record the line was (`0` for a record
    /// archived as it came).
    pub output_index: u32,
    /// Whether the line was an envelope (full lineage) or raw JSON Lines.
    pub envelope: bool,
}

/// A line that could not be read: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{object}` line {line}: {reason}")]
pub struct LineError {
    /// The object (S3 key or file path).
    pub object: String,
    /// The line number, from 1.
    pub line: usize,
    /// What was wrong with it.
    pub reason: String,
    /// The line as it was (lossy UTF-8), for the dead-letter destination.
    pub raw: String,
}

/// An object that could not be read at all (a gzip stream that is corrupt
/// or inflates past the limit).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read `{object}`: {reason}")]
pub struct ObjectError {
    /// The object (S3 key or file path).
    pub object: String,
    /// Why.
    pub reason: String,
}

/// The object's bytes as text lines: gunzipped when they start with gzip's
/// magic bytes (concatenated members too), at most `max_bytes` once
/// inflated.
pub fn inflate(object: &str, bytes: Vec<u8>, max_bytes: u64) -> Result<Vec<u8>, ObjectError> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len() * 4);
    flate2::read::MultiGzDecoder::new(bytes.as_slice())
        .take(max_bytes + 1)
        .read_to_end(&mut out)
        .map_err(|e| ObjectError {
            object: object.to_owned(),
            reason: format!("not valid gzip: {e}"),
        })?;
    if out.len() as u64 > max_bytes {
        return Err(ObjectError {
            object: object.to_owned(),
            reason: format!("it inflates past {max_bytes} bytes"),
        });
    }
    Ok(out)
}

/// Every non-empty line of `text` (an inflated object named `object`,
/// written at `modified_ms`), read back in order, each with its line number
/// (from 1).
pub fn read_lines<'a>(
    object: &'a str,
    text: &'a [u8],
    modified_ms: u64,
) -> impl Iterator<Item = (usize, Result<Archived, LineError>)> + 'a {
    text.split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(move |(i, line)| (i + 1, read_line(object, i + 1, line, modified_ms)))
}

/// One line of `object` (line number `line`, from 1).
pub fn read_line(
    object: &str,
    line: usize,
    bytes: &[u8],
    modified_ms: u64,
) -> Result<Archived, LineError> {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    let error = |reason: String| LineError {
        object: object.to_owned(),
        line,
        reason,
        raw: String::from_utf8_lossy(bytes).into_owned(),
    };
    if let Ok(envelope) = serde_json::from_slice::<Envelope<'_>>(bytes) {
        return envelope.into_archived().map_err(error);
    }
    if serde_json::from_slice::<&RawValue>(bytes).is_err() {
        return Err(error(
            "neither an envelope nor a JSON line (raw archives must be JSON Lines)".into(),
        ));
    }
    Ok(Archived {
        record: Record {
            shard_id: object.to_owned(),
            sequence_number: format!("{line:020}"),
            sub_sequence_number: None,
            partition_key: RAW_PARTITION_KEY.to_owned(),
            arrival_ms: modified_ms,
            data: bytes.to_vec(),
            attributes: Vec::new(),
        },
        output_index: 0,
        envelope: false,
    })
}

/// An envelope line, as `destination::encode` writes it.
#[derive(Deserialize)]
struct Envelope<'a> {
    shard_id: String,
    sequence_number: String,
    #[serde(default)]
    sub_sequence_number: Option<u32>,
    #[serde(default)]
    output_index: u32,
    partition_key: String,
    /// Envelopes written before it was added have none.
    #[serde(default)]
    arrival_ms: u64,
    #[serde(default)]
    attributes: Attributes,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    data_base64: Option<String>,
}

impl Envelope<'_> {
    fn into_archived(self) -> Result<Archived, String> {
        let data = match (self.data, self.data_base64) {
            (Some(json), None) => json.get().as_bytes().to_vec(),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("`data_base64` is not base64: {e}"))?,
            (Some(_), Some(_)) => {
                return Err("an envelope has `data` or `data_base64`, not both".into());
            }
            (None, None) => return Err("an envelope without `data` or `data_base64`".into()),
        };
        Ok(Archived {
            record: Record {
                shard_id: self.shard_id,
                sequence_number: self.sequence_number,
                sub_sequence_number: self.sub_sequence_number,
                partition_key: self.partition_key,
                arrival_ms: self.arrival_ms,
                data,
                attributes: self.attributes.0,
            },
            output_index: self.output_index,
            envelope: true,
        })
    }
}

/// An envelope's `attributes`, in the order written.
#[derive(Default)]
struct Attributes(Vec<(String, String)>);

impl<'de> Deserialize<'de> for Attributes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = Attributes;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of string attributes")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Attributes, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(pair) = map.next_entry::<String, String>()? {
                    pairs.push(pair);
                }
                Ok(Attributes(pairs))
            }
        }
        d.deserialize_map(Pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<Result<Archived, LineError>> {
        read_lines("clicks/a.jsonl", text.as_bytes(), 7)
            .map(|(_, l)| l)
            .collect()
    }

    #[test]
    fn an_envelope_gives_the_record_back_byte_for_byte() {
        let got = lines(
            r#"{"shard_id":"shardId-1","sequence_number":"42","sub_sequence_number":3,"output_index":1,"partition_key":"u-1","arrival_ms":1700000000500,"attributes":{"b":"2","a":"1"},"data":{"x": [1, 2]}}"#,
        );
        let a = got[0].as_ref().unwrap();
        assert!(a.envelope);
        assert_eq!(a.output_index, 1);
        assert_eq!(a.record.shard_id, "shardId-1");
        assert_eq!(a.record.sequence_number, "42");
        assert_eq!(a.record.sub_sequence_number, Some(3));
        assert_eq!(a.record.arrival_ms, 1_700_000_000_500);
        assert_eq!(a.record.data, br#"{"x": [1, 2]}"#);
        assert_eq!(
            a.record.attributes,
            vec![("b".into(), "2".into()), ("a".into(), "1".into())]
        );
    }

    #[test]
    fn base64_payloads_and_raw_lines() {
        let got = lines(
            "{\"shard_id\":\"s\",\"sequence_number\":\"1\",\"partition_key\":\"p\",\"data_base64\":\"/wA=\"}\n\n{\"plain\":true}\r\n",
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].as_ref().unwrap().record.data, [0xff, 0x00]);
        let raw = got[1].as_ref().unwrap();
        assert!(!raw.envelope);
        assert_eq!(raw.record.shard_id, "clicks/a.jsonl");
        assert_eq!(raw.record.sequence_number, format!("{:020}", 3));
        assert_eq!(raw.record.arrival_ms, 7);
        assert_eq!(raw.record.data, br#"{"plain":true}"#);
    }

    #[test]
    fn a_bad_line_names_the_object_and_line() {
        let got = lines("{\"ok\":1}\nnot json\n");
        let e = got[1].as_ref().unwrap_err();
        assert_eq!(e.line, 2);
        assert_eq!(
            e.to_string(),
            "`clicks/a.jsonl` line 2: neither an envelope nor a JSON line (raw archives must be JSON Lines)"
        );
        let bad = lines(
            r#"{"shard_id":"s","sequence_number":"1","partition_key":"p","data_base64":"%%"}"#,
        );
        assert!(bad[0].as_ref().unwrap_err().reason.contains("not base64"));
    }

    #[test]
    fn gzip_is_inflated_within_the_limit() {
        use std::io::Write as _;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&[b'{'; 10]).unwrap();
        let bytes = gz.finish().unwrap();
        assert_eq!(inflate("o", bytes.clone(), 10).unwrap().len(), 10);
        assert!(
            inflate("o", bytes, 9)
                .unwrap_err()
                .to_string()
                .contains("inflates past 9 bytes")
        );
        assert_eq!(inflate("o", b"plain".to_vec(), 1).unwrap(), b"plain");
    }
}
