//! Fuzzes pipeline config parsing and validation: any text in, a plan or an
//! error naming the file out; never a panic.
//!
//! Run with: `cd host/fuzz && cargo +nightly fuzz run parse_config`
#![no_main]

// sluice-core is pure (no wasmtime, no AWS SDK), so a fuzz build is quick.
use sluice_core::config;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Validation is pure: a local origin reads nothing from the disk.
    let origin = config::Location::File("fuzz/pipeline.toml".into());
    if let Err(e) = config::parse(text, &origin) {
        assert!(e.to_string().starts_with("fuzz/pipeline.toml"), "{e}");
    }
});
