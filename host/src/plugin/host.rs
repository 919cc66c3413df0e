//! What a plugin's store holds, and the host imports it may call.
//!
//! The WASI context is deny-by-default: no preopened directories, an empty
//! environment, no arguments, no network and stdin empty. Components built by
//! `wasm32-wasip2`, componentize-js and componentize-py import WASI interfaces
//! even when they never use them; linking them this way lets such components
//! load while giving them no authority at all.
//!
//! What a plugin prints to stdout or stderr (`console.log`, `print`, a
//! traceback, `printf`) is captured per call, bounded by
//! [`MAX_CAPTURE_BYTES`], and written to the host's structured logs line by
//! line, tagged with the step, the plugin and the stream, within the step's
//! `limits.max_log_lines`. The stderr of a call that trapped is also quoted in
//! the failure's reason: that is where a JavaScript exception or a Python
//! traceback ends up.

use std::sync::{Arc, Mutex, PoisonError};

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::log::{Host as LogHost, Level};

/// Elements a plugin's table may grow to (function pointers: far more than
/// any real plugin has; a table bomb traps here).
pub const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// The longest log message a plugin may write; longer ones are truncated.
pub const MAX_LOG_BYTES: usize = 4096;

/// Bytes of stdout (and as much of stderr) a plugin may write per call; the
/// rest is counted and dropped, never an error for the plugin.
pub const MAX_CAPTURE_BYTES: usize = 64 << 10;

/// How much of a trapped call's stderr its failure reason quotes (the end).
pub const MAX_STDERR_IN_REASON: usize = 1024;

/// The state of one plugin instance's store.
pub struct HostState {
    wasi: WasiCtx,
    stdout: Captured,
    stderr: Captured,
    table: ResourceTable,
    limits: StoreLimits,
    /// The step this instance serves (for log fields).
    pub step: String,
    /// The plugin's file name (for log fields).
    pub plugin: String,
    /// Log lines the plugin may still write in the current call.
    pub log_budget: usize,
    /// Log lines dropped in the current call because the budget ran out.
    pub logs_dropped: usize,
}

impl HostState {
    /// A store state with no ambient authority and at most `memory_bytes` of
    /// linear memory.
    pub fn new(step: &str, plugin: &str, memory_bytes: usize) -> HostState {
        let (stdout, stderr) = (Captured::default(), Captured::default());
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        HostState {
            wasi,
            stdout,
            stderr,
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(memory_bytes)
                .table_elements(MAX_TABLE_ELEMENTS)
                .instances(64)
                .tables(64)
                .memories(64)
                .trap_on_grow_failure(true)
                .build(),
            step: step.to_owned(),
            plugin: plugin.to_owned(),
            log_budget: 0,
            logs_dropped: 0,
        }
    }

    /// The resource limiter wasmtime consults on memory and table growth.
    pub fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.limits
    }

    /// Writes what the plugin printed during the call to the logs (stdout at
    /// `info`, stderr at `warn`, within the call's log budget) and returns
    /// the end of its stderr, if it wrote any.
    pub fn flush_output(&mut self) -> Option<String> {
        let (out, out_dropped) = self.stdout.take();
        let (err, err_dropped) = self.stderr.take();
        for (stream, text, dropped) in
            [("stdout", &out, out_dropped), ("stderr", &err, err_dropped)]
        {
            for line in String::from_utf8_lossy(text).lines() {
                let line = line.trim_end();
                if line.is_empty() {
                    continue;
                }
                if self.log_budget == 0 {
                    self.logs_dropped += 1;
                    continue;
                }
                self.log_budget -= 1;
                let line = truncate(line, MAX_LOG_BYTES);
                let (step, plugin) = (self.step.as_str(), self.plugin.as_str());
                if stream == "stdout" {
                    tracing::info!(target: "sluice.plugin.stdout", step, plugin, stream, "{line}");
                } else {
                    tracing::warn!(target: "sluice.plugin.stderr", step, plugin, stream, "{line}");
                }
            }
            if dropped > 0 {
                tracing::warn!(step = %self.step, plugin = %self.plugin, stream, dropped_bytes = dropped,
                    limit = MAX_CAPTURE_BYTES, "plugin wrote more than the limit per call; the rest was dropped");
            }
        }
        let err = String::from_utf8_lossy(&err);
        let err = err.trim();
        (!err.is_empty()).then(|| {
            let mut start = err.len().saturating_sub(MAX_STDERR_IN_REASON);
            while !err.is_char_boundary(start) {
                start += 1;
            }
            let tail = err[start..]
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            if start > 0 {
                format!("…{tail}")
            } else {
                tail
            }
        })
    }
}

/// `text` cut to at most `max` bytes at a character boundary, marked when cut.
fn truncate(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… (truncated)", &text[..end]).into()
}

/// One of a plugin's output streams (stdout or stderr), kept in memory until
/// the host logs it after the call.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<CaptureBuf>>);

#[derive(Default)]
struct CaptureBuf {
    bytes: Vec<u8>,
    dropped: usize,
}

impl Captured {
    fn write(&self, bytes: &[u8]) {
        let mut buf = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let room = MAX_CAPTURE_BYTES.saturating_sub(buf.bytes.len());
        let kept = bytes.len().min(room);
        buf.bytes.extend_from_slice(&bytes[..kept]);
        buf.dropped += bytes.len() - kept;
    }

    /// What was written since the last `take`, and how many bytes were dropped.
    fn take(&self) -> (Vec<u8>, usize) {
        let mut buf = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let dropped = std::mem::take(&mut buf.dropped);
        (std::mem::take(&mut buf.bytes), dropped)
    }
}

impl IsTerminal for Captured {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Captured {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for Captured {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        Captured::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always accepts a write; what is over the limit is dropped.
        Ok(MAX_CAPTURE_BYTES)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Captured {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for Captured {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        Captured::write(&self, buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl LogHost for HostState {
    fn log(&mut self, level: Level, message: String) {
        if self.log_budget == 0 {
            self.logs_dropped += 1;
            return;
        }
        self.log_budget -= 1;
        let message = truncate(&message, MAX_LOG_BYTES);
        let (step, plugin) = (self.step.as_str(), self.plugin.as_str());
        match level {
            Level::Trace => tracing::trace!(target: "sluice.plugin.log", step, plugin, "{message}"),
            Level::Debug => tracing::debug!(target: "sluice.plugin.log", step, plugin, "{message}"),
            Level::Info => tracing::info!(target: "sluice.plugin.log", step, plugin, "{message}"),
            Level::Warn => tracing::warn!(target: "sluice.plugin.log", step, plugin, "{message}"),
            Level::Error => tracing::error!(target: "sluice.plugin.log", step, plugin, "{message}"),
        }
    }
}
