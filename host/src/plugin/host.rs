//! What a plugin's store holds, and the host imports it may call.
//!
//! The WASI context is deny-by-default: no preopened directories, an empty
//! environment, no arguments, no network, stdin empty and stdout/stderr
//! discarded. Components built by `wasm32-wasip2` toolchains import WASI
//! interfaces even when they never use them; linking them this way lets such
//! components load while giving them no authority at all.

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::log::{Host as LogHost, Level};

/// Elements a plugin's table may grow to (function pointers: far more than
/// any real plugin has; a table bomb traps here).
pub const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// The longest log message a plugin may write; longer ones are truncated.
pub const MAX_LOG_BYTES: usize = 4096;

/// The state of one plugin instance's store.
pub struct HostState {
    wasi: WasiCtx,
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
        let wasi = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        HostState {
            wasi,
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
        let mut message = message;
        if message.len() > MAX_LOG_BYTES {
            let mut end = MAX_LOG_BYTES;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push_str("… (truncated)");
        }
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
