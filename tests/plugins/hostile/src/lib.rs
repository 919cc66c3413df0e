#![allow(
    clippy::too_many_lines,
    reason = "benchmarks and test plugins read top to bottom"
)]
//! A `transform` plugin that misbehaves on purpose, for the sandbox tests.
//!
//! Build with `cargo build -p hostile --target wasm32-wasip2 --release`
//! (host/build.rs does it for the tests).
//!
//! Events whose payload contains `marker` trigger `mode`; the others pass
//! through unchanged. Modes: `spin` (loops forever), `hog` (allocates until
//! memory runs out), `recurse` (recurses until the stack runs out), `trap`
//! (panics), `amplify` (emits `count` outputs), `flood` (logs `count` lines),
//! `slow` (busy-waits `ms` milliseconds, then passes), `big` (emits one
//! output of `count` bytes), `sleep` (sleeps 10 minutes in
//! `std::thread::sleep`, a wait inside the host), `sleep-loop` (sleeps 1 ms
//! at a time, forever), `alias` (`outputs` outputs whose data all point at
//! one region of `count` bytes of its memory: small for the guest, huge for
//! a host that copied each), `leak` (asks the host for `count` clock
//! pollables and never drops them), `flaky` (fails its first `count` marked
//! events with `retry`, then passes them: a fault a retry gets past).
//!
//! Escape attempts, whose outputs say what the plugin could see: `env` (the
//! environment), `fs` (the root directory and `/etc/passwd`), `net` (a TCP
//! connection to `addr`), `print` (writes `marker` to stdout and stderr), and
//! `bad-utf8` (an attribute that is not UTF-8, where WIT wants a string).
//!
//! Lookups (any event, no marker needed): `lookup` reads the comma-separated
//! keys of the payload from table `marker` with one `get-many` and outputs
//! the rows as a JSON array (`null` for none, the error as a string);
//! `lookup-flood` asks `get-many` for the payload's key `count` times.
//!
//! Mode `echo` replaces every event by the JSON of every field the plugin
//! saw, and sets attribute `seen` (the SDK's packed batches are checked
//! with it).
//!
//! Mode `script` reads every event as `{"act": …, "n": …}` and does what it
//! says: `ok` (passes it on), `split` (`n` copies), `none` (no output),
//! `invalid` / `retry` (that failure; `invalid` with `reason` repeated `n`
//! times), `attr` (passes it on with attribute `attr: [name, value]`),
//! `trap` (panics). The property tests
//! script random failures with it.

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde::Deserialize;
use sluice_plugin::{Event, Failure, Output, Transform};

/// The step's settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    mode: String,
    #[serde(default = "default_marker")]
    marker: String,
    #[serde(default)]
    count: usize,
    #[serde(default)]
    ms: u64,
    #[serde(default)]
    outputs: usize,
    #[serde(default)]
    addr: String,
}

fn default_marker() -> String {
    "HOSTILE".into()
}

/// The misbehaving transform, and how many marked events it has failed
/// (`flaky`).
pub struct Hostile(Settings, std::cell::Cell<usize>);

impl Transform for Hostile {
    type Settings = Settings;

    fn init(s: Settings) -> Result<Self, String> {
        Ok(Hostile(s, std::cell::Cell::new(0)))
    }

    fn transform(&self, event: Event) -> Result<Vec<Output>, Failure> {
        match self.0.mode.as_str() {
            "script" => return script(event),
            "echo" => return Ok(vec![echo(&event)]),
            "lookup" => {
                let text = String::from_utf8_lossy(&event.data).into_owned();
                let keys: Vec<String> = text.split(',').map(str::to_owned).collect();
                let answer = match sluice_plugin::tables::get_many(&self.0.marker, &keys) {
                    Ok(rows) => serde_json::Value::Array(
                        rows.iter()
                            .map(|r| {
                                r.as_deref()
                                    .and_then(|t| serde_json::from_str(t).ok())
                                    .unwrap_or_default()
                            })
                            .collect(),
                    ),
                    Err(e) => serde_json::json!(e),
                };
                return Ok(vec![event.output(answer.to_string().into_bytes())]);
            }
            "lookup-flood" => {
                let key = String::from_utf8_lossy(&event.data).into_owned();
                let keys = vec![key; self.0.count];
                let rows = sluice_plugin::tables::get_many(&self.0.marker, &keys)
                    .map_err(Failure::Invalid)?;
                return Ok(vec![event.output(rows.len().to_string().into_bytes())]);
            }
            _ => {}
        }
        let hit = event
            .data
            .windows(self.0.marker.len().max(1))
            .any(|w| w == self.0.marker.as_bytes());
        if !hit {
            return Ok(vec![event.into_output()]);
        }
        match self.0.mode.as_str() {
            "spin" => loop {
                black_box(&event);
            },
            "hog" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(black_box(vec![1u8; 1 << 20]));
                }
            }
            "recurse" => Ok(vec![
                event.output(recurse(black_box(1)).to_le_bytes().to_vec()),
            ]),
            "trap" => panic!("hostile plugin: trap on marker record"),
            "flaky" if self.1.get() < self.0.count => {
                self.1.set(self.1.get() + 1);
                Err(Failure::Retry("hostile plugin: flaky, retry me".into()))
            }
            "flaky" => Ok(vec![event.into_output()]),
            "amplify" => Ok((0..self.0.count)
                .map(|_| event.output(b"x".to_vec()))
                .collect()),
            "flood" => {
                for i in 0..self.0.count {
                    sluice_plugin::info!("flood line {i}");
                }
                Ok(vec![event.into_output()])
            }
            "slow" => {
                let until = Instant::now() + Duration::from_millis(self.0.ms);
                while Instant::now() < until {
                    black_box(&event);
                }
                Ok(vec![event.into_output()])
            }
            "big" => Ok(vec![event.output(vec![b'x'; self.0.count])]),
            "alias" => Ok(alias(&event, self.0.count, self.0.outputs)),
            "leak" => {
                leak_pollables(self.0.count);
                Ok(vec![event.into_output()])
            }
            "sleep" => {
                std::thread::sleep(Duration::from_secs(600));
                Ok(vec![event.into_output()])
            }
            "sleep-loop" => loop {
                std::thread::sleep(Duration::from_millis(1));
            },
            "env" => {
                let vars: Vec<(String, String)> = std::env::vars().collect();
                let args: Vec<String> = std::env::args().collect();
                Ok(vec![event.output(
                    format!("env: {vars:?} args: {args:?}").into_bytes(),
                )])
            }
            "fs" => {
                let root = std::fs::read_dir("/").map(|d| d.count());
                let passwd = std::fs::read("/etc/passwd").map(|b| b.len());
                let write = std::fs::write("/tmp/sluice-escaped", b"x");
                Ok(vec![event.output(
                    format!("fs: {root:?} {passwd:?} {write:?}").into_bytes(),
                )])
            }
            "net" => {
                let conn = std::net::TcpStream::connect(&self.0.addr).map(|_| "connected");
                Ok(vec![event.output(format!("net: {conn:?}").into_bytes())])
            }
            "print" => {
                println!("{}", self.0.marker);
                eprintln!("{}", self.0.marker);
                Ok(vec![event.into_output()])
            }
            "bad-utf8" => {
                // Deliberately breaks the contract: WIT strings are UTF-8.
                #[allow(unsafe_code)]
                let value = unsafe { String::from_utf8_unchecked(vec![b'x', 0xff, 0xfe]) };
                Ok(vec![event.output(b"x".to_vec()).with_attribute("k", value)])
            }
            other => Err(Failure::Invalid(format!("unknown mode `{other}`"))),
        }
    }
}

/// Every field of `event` as JSON, with attribute `seen` added.
fn echo(event: &Event) -> Output {
    let fields = serde_json::json!({
        "partition_key": event.partition_key,
        "sequence_number": event.sequence_number,
        "sub_sequence_number": event.sub_sequence_number,
        "shard_id": event.shard_id,
        "arrival_ms": event.arrival_ms,
        "data": String::from_utf8_lossy(&event.data),
        "attributes": event.attributes,
    });
    let mut out = event.output(fields.to_string().into_bytes());
    out.attributes
        .push(("seen".into(), event.attributes.len().to_string()));
    out
}

/// One scripted event: what to do with it.
#[derive(Deserialize)]
struct Script {
    act: String,
    #[serde(default)]
    n: usize,
    /// `invalid`: the reason, repeated `n` times (default `scripted: invalid`).
    #[serde(default)]
    reason: Option<String>,
    /// `attr`: the attribute set on the output, `[name, value]`.
    #[serde(default)]
    attr: Option<(String, String)>,
}

fn script(event: Event) -> Result<Vec<Output>, Failure> {
    let s: Script = event.json()?;
    match s.act.as_str() {
        "ok" => Ok(vec![event.into_output()]),
        "split" => Ok((0..s.n).map(|_| event.output(event.data.clone())).collect()),
        "none" => Ok(Vec::new()),
        "invalid" => Err(Failure::Invalid(match s.reason {
            Some(reason) => reason.repeat(s.n.max(1)),
            None => "scripted: invalid".into(),
        })),
        "attr" => {
            let (name, value) = s.attr.unwrap_or_default();
            Ok(vec![event.into_output().with_attribute(name, value)])
        }
        "retry" => Err(Failure::Retry("scripted: retry".into())),
        "trap" => panic!("scripted: trap"),
        other => Err(Failure::Invalid(format!("unknown act `{other}`"))),
    }
}

/// Calls `wasi:clocks/monotonic-clock.subscribe-duration` `n` times and
/// drops none of the pollables: each stays in the host's resource table.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code, reason = "a raw WASI import, to leak its resources")]
fn leak_pollables(n: usize) {
    #[link(wasm_import_module = "wasi:clocks/monotonic-clock@0.2.6")]
    unsafe extern "C" {
        #[link_name = "subscribe-duration"]
        fn subscribe_duration(nanos: i64) -> i32;
    }
    for _ in 0..n {
        // SAFETY: the import takes a duration and returns a handle.
        black_box(unsafe { subscribe_duration(1_000_000_000) });
    }
}

/// Natively there is no WASI host to leak from.
#[cfg(not(target_arch = "wasm32"))]
fn leak_pollables(_: usize) {}

/// `outputs` outputs of `event` whose data are one and the same leaked
/// region of `bytes` bytes. The canonical ABI passes each list by pointer
/// and length, so the guest hands the host `outputs` × `bytes` of results
/// while holding `bytes`.
#[allow(
    unsafe_code,
    reason = "aliasing one buffer into many Vecs is the attack under test"
)]
fn alias(event: &Event, bytes: usize, outputs: usize) -> Vec<Output> {
    let region: &'static mut [u8] = Vec::leak(vec![b'x'; bytes]);
    let (ptr, len) = (region.as_mut_ptr(), region.len());
    (0..outputs)
        // SAFETY: none; the Vecs alias, and freeing them would be a double
        // free. The host must refuse them before the guest frees anything.
        .map(|_| event.output(unsafe { Vec::from_raw_parts(ptr, len, len) }))
        .collect()
}

#[allow(
    unconditional_recursion,
    reason = "recursing until the stack runs out is the point"
)]
fn recurse(n: u64) -> u64 {
    black_box(recurse(black_box(n + 1))) + 1
}

sluice_plugin::export_transform!(Hostile);
