//! Fuzzes pipeline config parsing and validation: any text in, a plan or an
//! error naming the file out; never a panic.
//!
//! Run with: `cd host/fuzz && cargo +nightly fuzz run parse_config`
#![no_main]

// The config module is compiled in directly (it is pure: serde and toml only),
// so a fuzz build takes seconds instead of building wasmtime and the AWS SDK.
#[allow(dead_code, missing_docs)]
#[path = "../../src/config/mod.rs"]
mod config;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // An S3 origin: validation never touches the local file system.
    let origin = config::Location::S3 {
        bucket: "fuzz".into(),
        key: "pipeline.toml".into(),
    };
    if let Err(e) = config::parse(text, &origin) {
        assert!(e.to_string().starts_with("s3://fuzz/pipeline.toml"), "{e}");
    }
});
