//! What a plugin's store holds, and the host imports it may call.
//!
//! The WASI context is deny-by-default: no preopened directories, an empty
//! environment, no arguments, no network and stdin empty. Components built by
//! `wasm32-wasip2`, componentize-js and componentize-py import WASI interfaces
//! even when they never use them; linking them this way lets such components
//! load while giving them no authority at all.
//!
//! Waiting is bounded too: `wasi:clocks/monotonic-clock` is replaced by
//! [`CappedClock`], whose `subscribe-duration` and `subscribe-instant` never
//! wait past the current call's deadline. A plugin that sleeps (Rust's
//! `std::thread::sleep`, Python's `time.sleep`, a `poll` on a clock) blocks
//! inside the host, where epoch interruption cannot reach it; with its sleep
//! cut at the deadline it wakes into guest code, where the epoch check stops
//! it (class `trap`, "timed out"), so the call ends at its budget.
//!
//! A step with `deterministic = true` gets a [`Replay`]: a wall clock
//! stopped at the arrival time of each call's first record, and randomness
//! seeded from the step's name and that record's identity, so that the same
//! call on the same records sees the same values.
//!
//! What a plugin prints to stdout or stderr (`console.log`, `print`, a
//! traceback, `printf`) is captured per call, bounded by
//! [`MAX_CAPTURE_BYTES`], and written to the host's structured logs line by
//! line, tagged with the step, the plugin and the stream, within the step's
//! `limits.max_log_lines`. The stderr of a call that trapped is also quoted in
//! the failure's reason: that is where a JavaScript exception or a Python
//! traceback ends up.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _, TryRng};
use sha2::{Digest as _, Sha256};
use wasmtime::ResourceLimiter;
use wasmtime::component::{HasData, Resource, ResourceTable};
use wasmtime_wasi::HostWallClock;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::{DynPollable, OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::Event;
use super::bindings::log::{Host as LogHost, Level};
use super::bindings::tables::{Host as TablesHost, TableError};

/// Elements a plugin's table may grow to (function pointers: far more than
/// any real plugin has; a table bomb traps here).
pub const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// WASI resources (streams, pollables) a plugin may hold at once: far more
/// than any real plugin needs, and a plugin that leaks them in a loop fails
/// its call here instead of growing the host's table without bound.
pub const MAX_WASI_RESOURCES: usize = 4096;

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
    limits: SandboxLimits,
    /// The step this instance serves (for log fields).
    pub step: String,
    /// The plugin's file name (for log fields).
    pub plugin: String,
    /// Log lines the plugin may still write in the current call.
    pub log_budget: usize,
    /// Log lines dropped in the current call because the budget ran out.
    pub logs_dropped: usize,
    /// When the current call's time is up: no wait the plugin asks for
    /// lasts past it.
    call_deadline: Option<Instant>,
    /// Set when a wait of the plugin's reached the call's deadline: the call
    /// has run out of time, even if the plugin returns before the epoch
    /// check catches it.
    out_of_time: Arc<AtomicBool>,
    /// The origin of the plugin's monotonic clock.
    clock_origin: Instant,
    /// The clock and randomness of a `deterministic` step.
    replay: Option<Replay>,
    /// The lookup tables the step may read.
    pub tables: crate::tables::Granted,
}

impl HostState {
    /// A store state with no ambient authority and at most `memory_bytes` of
    /// linear memory; `deterministic` gives it a [`Replay`] clock and
    /// randomness.
    pub fn new(step: &str, plugin: &str, memory_bytes: usize, deterministic: bool) -> HostState {
        let (stdout, stderr) = (Captured::default(), Captured::default());
        let mut builder = WasiCtx::builder();
        builder
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let replay = deterministic.then(|| Replay::new(step));
        if let Some(replay) = &replay {
            builder
                .wall_clock(replay.clone())
                .secure_random(replay.clone())
                .insecure_random(replay.clone())
                .insecure_random_seed(replay.insecure_seed());
        }
        let wasi = builder.build();
        HostState {
            wasi,
            stdout,
            stderr,
            table: {
                let mut table = ResourceTable::new();
                table.set_max_capacity(MAX_WASI_RESOURCES);
                table
            },
            limits: SandboxLimits::new(memory_bytes, MAX_TABLE_ELEMENTS),
            step: step.to_owned(),
            plugin: plugin.to_owned(),
            log_budget: 0,
            logs_dropped: 0,
            call_deadline: None,
            out_of_time: Arc::default(),
            clock_origin: Instant::now(),
            replay,
            tables: crate::tables::Granted::default(),
        }
    }

    /// For a `deterministic` step: sets the clock and reseeds the randomness
    /// for a call on `batch`. Does nothing for other steps.
    pub fn replay(&self, batch: &[Event]) {
        if let Some(replay) = &self.replay {
            replay.arm(batch.first());
        }
    }

    /// Arms the next call: waits end at `deadline`.
    pub fn arm(&mut self, deadline: Option<Instant>) {
        self.call_deadline = deadline;
        self.out_of_time.store(false, Ordering::Relaxed);
    }

    /// Whether the plugin waited until the call's deadline: the call must
    /// fail as timed out, whatever it returned.
    pub fn ran_out_of_time(&self) -> bool {
        self.out_of_time.load(Ordering::Relaxed)
    }

    /// The plugin's view of `wasi:clocks/monotonic-clock`.
    pub fn clock(&mut self) -> CappedClock<'_> {
        CappedClock {
            table: &mut self.table,
            origin: self.clock_origin,
            deadline: self.call_deadline,
            out_of_time: &self.out_of_time,
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
                let line = crate::logging::plugin_text(&line);
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
pub(crate) fn truncate(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
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

/// The wall clock and randomness of a `deterministic = true` step, shared
/// by its WASI context's clock and generators and re-armed before every
/// call ([`HostState::replay`]).
///
/// In a call, `wasi:clocks/wall-clock` reads the arrival time of the call's
/// first record and does not move; `wasi:random` (secure and insecure)
/// yields a ChaCha stream seeded with SHA-256 of the step's name and that
/// record's shard, sequence number and sub-sequence number. The same call
/// on the same records therefore sees the same time and the same bytes.
/// `wasi:random/insecure-seed` is a function of the step's name.
#[derive(Clone)]
pub struct Replay {
    step: Arc<str>,
    state: Arc<Mutex<ReplayState>>,
}

struct ReplayState {
    now: Duration,
    rng: StdRng,
}

impl Replay {
    /// A replay for `step`, armed as for an empty call.
    pub fn new(step: &str) -> Replay {
        let replay = Replay {
            step: step.into(),
            state: Arc::new(Mutex::new(ReplayState {
                now: Duration::ZERO,
                rng: StdRng::from_seed([0; 32]),
            })),
        };
        replay.arm(None);
        replay
    }

    /// Sets the clock to `first`'s arrival time and reseeds the generator
    /// from its identity (or from the step's name alone for no record).
    pub fn arm(&self, first: Option<&Event>) {
        let mut seed = Sha256::new();
        seed.update(b"sluice replay\0");
        seed.update(self.step.as_bytes());
        if let Some(e) = first {
            seed.update(b"\0");
            seed.update(e.shard_id.as_bytes());
            seed.update(b"\0");
            seed.update(e.sequence_number.as_bytes());
            seed.update(b"\0");
            seed.update(
                e.sub_sequence_number
                    .map_or(u64::MAX, u64::from)
                    .to_le_bytes(),
            );
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.now = Duration::from_millis(first.map_or(0, |e| e.arrival_ms));
        state.rng = StdRng::from_seed(seed.finalize().into());
    }

    /// What `wasi:random/insecure-seed` returns: a function of the step's name.
    fn insecure_seed(&self) -> u128 {
        let digest = Sha256::digest(format!("sluice insecure seed\0{}", self.step));
        u128::from_le_bytes(digest[..16].try_into().expect("16 bytes"))
    }

    fn with_rng<T>(&self, f: impl FnOnce(&mut StdRng) -> T) -> T {
        f(&mut self
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .rng)
    }
}

impl HostWallClock for Replay {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn now(&self) -> Duration {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .now
    }
}

impl TryRng for Replay {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.with_rng(|r| r.next_u32()))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.with_rng(|r| r.next_u64()))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.with_rng(|r| r.fill_bytes(dst));
        Ok(())
    }
}

/// Most core instances, tables and memories one plugin instance may create
/// (a component is several core modules: the adapter, the language runtime,
/// the program); what they may hold in all is capped by [`SandboxLimits`].
pub const MAX_CORE_INSTANCES: usize = 64;

/// What one plugin instance may hold, **in all**: linear memory summed over
/// every memory of the component (not per memory, which would let a
/// component of 64 memories hold 64 × `memory_bytes`), and table elements
/// summed over every table. Growing past either traps.
#[derive(Debug)]
pub struct SandboxLimits {
    memory_bytes: usize,
    memory_used: usize,
    table_elements: usize,
    table_used: usize,
}

impl SandboxLimits {
    /// Limits of `memory_bytes` of linear memory and `table_elements` table
    /// elements in all.
    pub fn new(memory_bytes: usize, table_elements: usize) -> SandboxLimits {
        SandboxLimits {
            memory_bytes,
            memory_used: 0,
            table_elements,
            table_used: 0,
        }
    }

    /// Linear memory held now, summed over every memory.
    pub fn memory_used(&self) -> usize {
        self.memory_used
    }

    /// The most linear memory the instance may hold.
    pub fn max_bytes(&self) -> usize {
        self.memory_bytes
    }
}

/// Moves `used` from `current` to `desired` if the total stays within
/// `limit` (and `desired` within the item's own `maximum`); else the total
/// it would have reached.
fn grow(
    used: &mut usize,
    limit: usize,
    (current, desired, maximum): (usize, usize, Option<usize>),
) -> Result<(), usize> {
    let total = (*used - current.min(*used)).saturating_add(desired);
    if total > limit || maximum.is_some_and(|max| desired > max) {
        return Err(total);
    }
    *used = total;
    Ok(())
}

impl ResourceLimiter for SandboxLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let limit = self.memory_bytes;
        grow(&mut self.memory_used, limit, (current, desired, maximum)).map_err(|total| {
            wasmtime::format_err!(
                "plugin memory would grow to {total} bytes across its memories; the limit is {limit} (`limits.memory_bytes`)"
            )
        })?;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error.context("the plugin's memory could not grow"))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let limit = self.table_elements;
        grow(&mut self.table_used, limit, (current, desired, maximum)).map_err(|total| {
            wasmtime::format_err!(
                "plugin tables would grow to {total} elements in all; the limit is {limit}"
            )
        })?;
        Ok(true)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error.context("the plugin's table could not grow"))
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_CORE_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_CORE_INSTANCES
    }
}

/// `wasi:clocks/monotonic-clock` for a plugin: real time, but a wait it
/// subscribes to ends at the current call's deadline at the latest.
pub struct CappedClock<'a> {
    table: &'a mut ResourceTable,
    origin: Instant,
    deadline: Option<Instant>,
    out_of_time: &'a Arc<AtomicBool>,
}

/// Links [`CappedClock`] as `wasi:clocks/monotonic-clock`.
pub struct CappedClocks;

impl HasData for CappedClocks {
    type Data<'a> = CappedClock<'a>;
}

impl CappedClock<'_> {
    /// A pollable that is ready after `wait`, or at the call's deadline if
    /// that comes first.
    fn sleep(&mut self, wait: Duration) -> wasmtime::Result<Resource<DynPollable>> {
        let now = Instant::now();
        if self.deadline.is_some_and(|d| d <= now) {
            // Asking to wait once its time is up: stop the call here.
            self.out_of_time.store(true, Ordering::Relaxed);
            return Err(wasmtime::Trap::Interrupt.into());
        }
        let wanted = now.checked_add(wait);
        let (until, cut) = match (wanted, self.deadline) {
            (Some(w), Some(d)) if d < w => (Some(d), true),
            (None, Some(d)) => (Some(d), true),
            (w, _) => (w, false),
        };
        let sleep = Sleep {
            until: until
                .filter(|&u| u > now)
                .map(tokio::time::Instant::from_std),
            forever: until.is_none(),
            yielded: false,
            cut: cut.then(|| self.out_of_time.clone()),
        };
        let resource = self.table.push(sleep)?;
        wasmtime_wasi::p2::subscribe(self.table, resource)
    }
}

impl monotonic_clock::Host for CappedClock<'_> {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        Ok(self.origin.elapsed().as_nanos() as u64)
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        Ok(1)
    }

    fn subscribe_instant(
        &mut self,
        when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let now = self.origin.elapsed().as_nanos() as u64;
        self.sleep(Duration::from_nanos(when.saturating_sub(now)))
    }

    fn subscribe_duration(
        &mut self,
        duration: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.sleep(Duration::from_nanos(duration))
    }
}

/// A wait on the monotonic clock: until an instant, or, for a zero wait,
/// one yield to the runtime (as wasmtime-wasi's own clock does, so that a
/// guest polling in a loop does not starve other pollables).
struct Sleep {
    until: Option<tokio::time::Instant>,
    /// A wait too long to represent, with no call deadline to cut it.
    forever: bool,
    yielded: bool,
    /// Cut at the call's deadline: reaching it flags the call out of time.
    cut: Option<Arc<AtomicBool>>,
}

#[wasmtime_wasi::async_trait]
impl Pollable for Sleep {
    async fn ready(&mut self) {
        match self.until {
            Some(until) => tokio::time::sleep_until(until).await,
            None if self.forever => std::future::pending().await,
            None if !self.yielded => {
                self.yielded = true;
                tokio::task::yield_now().await;
            }
            None => {}
        }
        if let Some(flag) = &self.cut {
            flag.store(true, Ordering::Relaxed);
        }
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
        let message = crate::logging::plugin_text(&message);
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

/// What one call of a lookup may hand the plugin: no more than its memory
/// may hold (`limits.memory_bytes`).
fn lookup_budget(state: &HostState) -> usize {
    state.limits.max_bytes()
}

impl TablesHost for HostState {
    fn get(
        &mut self,
        table: String,
        key: String,
    ) -> wasmtime::Result<Result<Option<String>, TableError>> {
        let rows = match self.tables.table(&table) {
            Ok(rows) => rows,
            Err(message) => return Ok(Err(TableError::NotGranted(message))),
        };
        Ok(Ok(rows.get(&key).map(str::to_owned)))
    }

    fn get_many(
        &mut self,
        table: String,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<Option<String>>, TableError>> {
        let rows = match self.tables.table(&table) {
            Ok(rows) => rows,
            Err(message) => return Ok(Err(TableError::NotGranted(message))),
        };
        let budget = lookup_budget(self);
        let mut used = 0usize;
        let mut found = Vec::with_capacity(keys.len());
        for key in &keys {
            let row = rows.get(key);
            used += row.map_or(0, str::len) + 16;
            if used > budget {
                wasmtime::bail!(
                    "table `{table}`: {} keys' rows add up to more than the plugin's memory \
                     ({budget} bytes, `limits.memory_bytes`); look them up in smaller groups",
                    keys.len()
                );
            }
            found.push(row.map(str::to_owned));
        }
        Ok(Ok(found))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_capped_across_all_memories_not_per_memory() {
        let mut limits = SandboxLimits::new(100, 10);
        // Two memories of 40: fine; a third of 40 would make 120.
        assert!(limits.memory_growing(0, 40, None).unwrap());
        assert!(limits.memory_growing(0, 40, None).unwrap());
        let e = limits.memory_growing(0, 40, None).unwrap_err().to_string();
        assert!(
            e.contains("120 bytes across its memories; the limit is 100"),
            "{e}"
        );
        // Growing one of them counts only the growth.
        assert!(limits.memory_growing(40, 60, None).unwrap());
        assert_eq!(limits.memory_used(), 100);
        assert!(limits.memory_growing(60, 61, None).is_err());
        // Tables alike.
        assert!(limits.table_growing(0, 6, None).unwrap());
        assert!(limits.table_growing(0, 5, None).is_err());
    }
}
