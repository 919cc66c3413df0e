//! Fuzzes Kinesis event decoding and `[source]` reading: any bytes in, an
//! error or a batch out that accounts for every record; never a panic; and
//! what decoding made never exceeds the batch budget (`max_batch_bytes`). Each
//! input is read as plain records, with KPL de-aggregation and `auto`
//! decompression, and as a CloudWatch Logs subscription, each time through a
//! pre-filter.
//!
//! Run with: `cd host/fuzz && cargo +nightly fuzz run decode_event`
#![no_main]

use sluice_core::config::{Decompress, Source, SourceFormat};
use sluice_core::event::{self, Batch};
use sluice_core::pattern::{Filters, Pattern};
use sluice_core::source;

/// Every slot is accounted for exactly once, and every failure says why.
fn check(batch: &Batch) {
    assert_eq!(batch.records.len(), batch.slot.len());
    let mut seen: Vec<usize> = batch.slot.clone();
    seen.extend(batch.rejected.iter().map(|r| r.index));
    seen.extend(batch.empty.iter().copied());
    seen.sort_unstable();
    assert!(seen.iter().enumerate().all(|(i, &s)| i == s), "a record lost or counted twice");
    for r in &batch.rejected {
        assert!(!r.reason.is_empty());
    }
    for r in &batch.records {
        assert!(!r.sequence_number.is_empty() && !r.shard_id.is_empty());
    }
}

/// A small batch budget, so that inputs reach it.
const BUDGET: usize = 256 << 10;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(batch) = event::decode(data, "fuzz") else {
        return;
    };
    check(&batch);
    let filters = Filters::new(vec![
        Pattern::parse(&serde_json::json!({"data": {"type": [{"anything-but": "x"}]}})).unwrap(),
        Pattern::parse(&serde_json::json!({"partitionKey": [{"prefix": "a"}]})).unwrap(),
    ]);
    let sources = [
        Source {
            decompress: Decompress::Auto,
            max_decompressed_bytes: 1 << 20,
            max_batch_bytes: BUDGET,
            ..Source::default()
        },
        Source {
            format: SourceFormat::CloudwatchLogs,
            max_decompressed_bytes: 1 << 20,
            max_batch_bytes: BUDGET,
            ..Source::default()
        },
    ];
    for s in &sources {
        let expanded = source::expand(batch.clone(), s);
        assert!(expanded.source.decoded_bytes <= BUDGET);
        // What the records decoding made hold (lineage moved, not copied,
        // for a record that was only decompressed).
        let held: usize = expanded
            .records
            .iter()
            .map(|r| match r.sub_sequence_number {
                None => 0,
                Some(_) => {
                    r.data.len()
                        + r.partition_key.len()
                        + r.shard_id.len()
                        + r.sequence_number.len()
                        + r.attributes.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
                }
            })
            .sum();
        assert!(held <= BUDGET, "decoded records hold {held} bytes, budget {BUDGET}");
        let read = source::prefilter(expanded, &filters);
        check(&read);
        assert!(read.len() >= batch.len(), "every Kinesis record keeps at least one slot");
    }
});
