//! Fuzzes Kinesis event decoding: any bytes in, an error or a batch out that
//! accounts for every record; never a panic.
//!
//! Run with: `cd host/fuzz && cargo +nightly fuzz run decode_event`
#![no_main]

// The decoder is compiled in directly (it is pure: serde and base64 only), so
// a fuzz build takes seconds instead of building wasmtime and the AWS SDK.
#[allow(dead_code, missing_docs)]
#[path = "../../src/event/mod.rs"]
mod event;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = event::decode(data, "fuzz") {
        assert_eq!(batch.records.len(), batch.slot.len());
        let mut seen: Vec<usize> = batch.slot.clone();
        seen.extend(batch.rejected.iter().map(|r| r.index));
        seen.sort_unstable();
        assert!(seen.iter().enumerate().all(|(i, &s)| i == s), "a record lost or counted twice");
        for r in &batch.rejected {
            assert!(!r.reason.is_empty());
        }
        for r in &batch.records {
            assert!(!r.sequence_number.is_empty() && !r.shard_id.is_empty());
        }
    }
});
