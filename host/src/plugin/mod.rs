//! The plugin runtime: compile components once, instantiate them in a sandbox.
//!
//! - [`Runtime`] owns the wasmtime [`Engine`] and the [`Linker`] that offers
//!   plugins exactly two things: the `sluice:plugin/log` import and a
//!   deny-by-default WASI (see [`host`]).
//! - [`Runtime::load`] reads a step's component, checks its pinned SHA-256,
//!   compiles it (or loads it precompiled) and checks, before anything runs,
//!   that every import is offered and that it exports the world its step
//!   declares.
//! - [`Precompiler`] compiles components ahead of time into native artifacts
//!   (`sluice precompile`). An artifact is tied to the wasmtime version, the
//!   engine settings and the target it was made for; wasmtime refuses any
//!   other, and Sluice loads one only when the config pins its SHA-256.
//! - [`Plugin::instantiate`] makes an [`Instance`] and calls its `init` with
//!   the step's settings. An instance serves many batches; the pipeline throws
//!   it away after a trap and makes a fresh one for the next batch.

pub mod bindings;
#[cfg(feature = "compiler")]
pub mod cache;
mod error;
pub mod host;
pub mod kind;
pub mod packed;

use std::path::Path;

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Precompiled, Store};

use crate::config::{Limits, Location, StepPlan};
use crate::event::Record;
pub use bindings::{Event, Failure, Output, Window};
pub use error::PluginError;
pub use host::HostState;

/// The wasmtime version Sluice is built with.
pub const WASMTIME_VERSION: &str = env!("SLUICE_WASMTIME_VERSION");

/// What a precompiled artifact records as its version: the Sluice and the
/// exact wasmtime version that made it. (Engine settings, target and CPU
/// features are recorded and checked by wasmtime besides.)
pub const ARTIFACT_VERSION: &str = concat!(
    "sluice-",
    env!("CARGO_PKG_VERSION"),
    "/wasmtime-",
    env!("SLUICE_WASMTIME_VERSION")
);

/// The WIT package this Sluice serves (`wit/plugin.wit`). Plugins built
/// against a semver-compatible version (`0.1.x`) load; others are refused
/// with [`PluginError::WitVersion`].
pub const WIT_PACKAGE: &str = "sluice:plugin@0.1.3";

/// How often the engine's epoch advances: the granularity of call timeouts.
pub const EPOCH_TICK: std::time::Duration = std::time::Duration::from_millis(1);

/// Wasm stack a plugin may use; deeper recursion traps.
pub const MAX_WASM_STACK: usize = 512 << 10;

/// How the engine is built. [`Default`] is what Sluice runs with.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Enforce `limits.timeout_ms` with epoch interruption (a ticker thread
    /// and a check in every loop and function of the guest). Turning it off
    /// exists to measure what it costs: without it a spinning plugin hangs.
    pub time_limits: bool,
    /// Where compiled plugins are cached: whole components, keyed by their
    /// bytes, and single functions, keyed by their code (see [`cache`]);
    /// `None` compiles every time. See [`RuntimeOptions::default_cache_dir`].
    pub cache_dir: Option<std::path::PathBuf>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            time_limits: true,
            cache_dir: RuntimeOptions::default_cache_dir(),
        }
    }
}

impl RuntimeOptions {
    /// The compilation cache for local use (the CLI, fixtures, tests), so a
    /// plugin is compiled once, not at every run: `SLUICE_CACHE_DIR` if set
    /// (empty turns the cache off), else `$XDG_CACHE_HOME/sluice` or
    /// `~/.cache/sluice`. Off in Lambda (`AWS_LAMBDA_RUNTIME_API` set), where
    /// a cold start has nothing cached: deploy with `sluice precompile`.
    pub fn default_cache_dir() -> Option<std::path::PathBuf> {
        use std::path::PathBuf;
        if let Some(dir) = std::env::var_os("SLUICE_CACHE_DIR") {
            return (!dir.is_empty()).then(|| PathBuf::from(dir));
        }
        if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
            return None;
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("sluice"))
    }
}

/// The wasmtime engine and linker shared by every plugin.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
}

/// The engine settings every plugin is compiled with. Precompiled artifacts
/// record them, and only load into an engine with the same settings.
fn engine_config(options: &RuntimeOptions) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // No component-model async: a synchronous call costs ~100 ns instead of ~350 ns.
    config.concurrency_support(false);
    // Timeouts: a ticker advances the epoch; each call gets a deadline in ticks.
    config.epoch_interruption(options.time_limits);
    config.max_wasm_stack(MAX_WASM_STACK);
    // Precompiled artifacts carry this and load only where it is the same.
    config
        .module_version(wasmtime::ModuleVersionStrategy::Custom(
            ARTIFACT_VERSION.into(),
        ))
        .expect("a short version string");
    #[cfg(feature = "compiler")]
    if let Some(dir) = &options.cache_dir {
        cache::enable(&mut config, dir);
    }
    // `SLUICE_PERFMAP=1` names the plugins' compiled functions for `perf`
    // (in /tmp/perf-<pid>.map): how BENCHMARKS.md's profile was taken.
    if std::env::var_os("SLUICE_PERFMAP").is_some_and(|v| v == "1") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config
}

impl Runtime {
    /// An engine tuned for one call per batch, and a linker that offers only
    /// logging and deny-by-default WASI.
    pub fn new() -> anyhow::Result<Runtime> {
        Runtime::with_options(RuntimeOptions::default())
    }

    /// [`Runtime::new`] with `options`.
    pub fn with_options(options: RuntimeOptions) -> anyhow::Result<Runtime> {
        let engine = Engine::new(&engine_config(&options))
            .map_err(anyhow::Error::from)
            .context("creating the wasmtime engine")?;
        if options.time_limits {
            let weak = engine.weak();
            std::thread::Builder::new()
                .name("sluice-epoch".into())
                .spawn(move || {
                    // One tick per `EPOCH_TICK` of real time: sleeps run
                    // long, so the ticks due are counted from the clock
                    // (a 300 ms limit is 300 ms, not 300 sleeps).
                    let started = std::time::Instant::now();
                    let mut ticks: u128 = 0;
                    // Ends when the engine is gone.
                    while let Some(engine) = weak.upgrade() {
                        let due = started.elapsed().as_nanos() / EPOCH_TICK.as_nanos() + 1;
                        while ticks < due {
                            engine.increment_epoch();
                            ticks += 1;
                        }
                        drop(engine);
                        std::thread::sleep(EPOCH_TICK);
                    }
                })
                .context("starting the epoch ticker")?;
        }
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(anyhow::Error::from)
            .context("linking WASI")?;
        // Waits on the clock end at the call's deadline (see `host`).
        linker.allow_shadowing(true);
        wasmtime_wasi::p2::bindings::clocks::monotonic_clock::add_to_linker::<
            HostState,
            host::CappedClocks,
        >(&mut linker, HostState::clock)
        .map_err(anyhow::Error::from)
        .context("linking the capped monotonic clock")?;
        linker.allow_shadowing(false);
        bindings::log::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)
            .context("linking sluice:plugin/log")?;
        bindings::tables::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)
            .context("linking sluice:plugin/tables")?;
        Ok(Runtime { engine, linker })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Reads a local plugin file, then verifies, compiles and
    /// pre-instantiates it. (Plugins in S3 are fetched by the caller, which
    /// then calls [`Runtime::load_bytes`].)
    pub fn load(&self, step: &StepPlan) -> Result<Plugin, PluginError> {
        let location = step.plugin.to_string();
        let read_error = |error: String| PluginError::Read {
            step: step.name.clone(),
            plugin: location.clone(),
            error,
        };
        let bytes = match &step.plugin {
            Location::File(path) => std::fs::read(path).map_err(|e| read_error(e.to_string()))?,
            Location::S3 { .. } => {
                return Err(read_error("S3 plugins must be fetched first".into()));
            }
        };
        self.load_bytes(step, &location, &bytes)
    }

    /// Like [`Runtime::load`], with the component's bytes already in hand.
    pub fn load_bytes(
        &self,
        step: &StepPlan,
        location: &str,
        bytes: &[u8],
    ) -> Result<Plugin, PluginError> {
        let plugin = short_name(location);
        let name = || step.name.clone();
        check_pin(step, location, bytes)?;
        let _span = tracing::info_span!("sluice.plugin.load", step = %step.name, plugin).entered();
        let started = std::time::Instant::now();
        let precompiled = Engine::detect_precompiled(bytes).is_some();
        let component = if precompiled {
            // The digest was checked above; without a pin there is nothing to
            // check an artifact of native code against.
            if step.sha256.is_none() {
                return Err(PluginError::Unpinned {
                    step: name(),
                    plugin: location.to_owned(),
                });
            }
            load_precompiled(&self.engine, bytes).map_err(|error| PluginError::Precompiled {
                step: name(),
                plugin: location.to_owned(),
                error,
            })?
        } else {
            compile(&self.engine, bytes).map_err(|error| match error {
                Some(error) => PluginError::Compile {
                    step: name(),
                    plugin: location.to_owned(),
                    error: error.into(),
                },
                None => PluginError::NoCompiler {
                    step: name(),
                    plugin: location.to_owned(),
                },
            })?
        };
        check_wit_version(&self.engine, &component).map_err(|(found, compatible)| {
            PluginError::WitVersion {
                step: name(),
                plugin: location.to_owned(),
                found,
                compatible,
            }
        })?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|error| PluginError::Import {
                step: name(),
                plugin: location.to_owned(),
                error: error.into(),
            })?;
        let export_error = |error: wasmtime::Error| PluginError::Export {
            step: name(),
            plugin: location.to_owned(),
            kind: step.kind,
            error: error.into(),
        };
        // The packed twin of the kind's world if the plugin exports it (the
        // Rust SDK's), else the kind's own world; the error names the latter.
        let world = kind::world(step.kind, pre).map_err(export_error)?;
        tracing::info!(
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            bytes = bytes.len(),
            precompiled,
            world = world.name(),
            "plugin loaded"
        );
        Ok(Plugin {
            step: step.name.clone(),
            plugin: plugin.to_owned(),
            location: location.to_owned(),
            settings_json: step.settings_json.clone(),
            limits: step.limits,
            deterministic: step.deterministic,
            engine: self.engine.clone(),
            world,
            tables: crate::tables::Granted::default(),
        })
    }
}

/// Checks the version of every `sluice:plugin/…@<version>` interface the
/// component imports against [`WIT_PACKAGE`]: the same major version, or for
/// `0.x` the same minor one. `Err((found, compatible))` otherwise.
fn check_wit_version(engine: &Engine, component: &Component) -> Result<(), (String, String)> {
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut parts = v.split(['.', '-', '+']);
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    };
    let served = WIT_PACKAGE.rsplit_once('@').map_or("", |(_, v)| v);
    let (major, minor) = parse(served).expect("WIT_PACKAGE has a version");
    let compatible = if major == 0 {
        format!("0.{minor}.x")
    } else {
        format!("{major}.x")
    };
    for (name, _) in component.component_type().imports(engine) {
        let Some(version) = name
            .strip_prefix("sluice:plugin/")
            .and_then(|rest| rest.split_once('@'))
            .map(|(_, v)| v)
        else {
            continue;
        };
        let ok = match parse(version) {
            Some((0, m)) => major == 0 && m == minor,
            Some((other, _)) => other == major,
            None => false,
        };
        if !ok {
            return Err((version.to_owned(), compatible));
        }
    }
    Ok(())
}

/// Compiles a binary `.wasm` component with Cranelift; `Err(None)` in a
/// Sluice built without the `compiler` feature. Only the binary format is
/// read (never WAT text), and the error for bytes that are not Wasm names
/// their size, never their content: a config may point at any file.
#[cfg(feature = "compiler")]
fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component, Option<wasmtime::Error>> {
    if !bytes.starts_with(b"\0asm") {
        return Err(Some(wasmtime::Error::msg(format!(
            "it is not a WebAssembly binary ({} bytes that do not start with `\\0asm`)",
            bytes.len()
        ))));
    }
    Component::from_binary(engine, bytes).map_err(Some)
}

/// Compiles a `.wasm` component with Cranelift; `Err(None)` in a Sluice
/// built without the `compiler` feature.
#[cfg(not(feature = "compiler"))]
fn compile(_: &Engine, _: &[u8]) -> Result<Component, Option<wasmtime::Error>> {
    Err(None)
}

/// Loads a precompiled component artifact.
///
/// wasmtime checks that the artifact was made by this wasmtime version, with
/// these engine settings, for this architecture and CPU features, and refuses
/// it otherwise. What it cannot check is that the native code inside is the
/// code `sluice precompile` wrote: the caller has checked the artifact
/// against the config's SHA-256 pin before calling this.
#[allow(
    unsafe_code,
    reason = "loading precompiled native code is unsafe by nature"
)]
fn load_precompiled(engine: &Engine, bytes: &[u8]) -> anyhow::Result<Component> {
    match Engine::detect_precompiled(bytes) {
        Some(Precompiled::Component) => {}
        Some(Precompiled::Module) => {
            anyhow::bail!("it is a precompiled core module, not a component")
        }
        None => anyhow::bail!("it is not a precompiled artifact"),
    }
    // SAFETY: `bytes` were made by `Engine::precompile_component` (wasmtime
    // verifies the header: version, settings, target) and match the SHA-256
    // the operator pinned in the pipeline config.
    let component = unsafe { Component::deserialize(engine, bytes) };
    component.map_err(anyhow::Error::from)
}

/// Compiles plugins ahead of time: what `sluice precompile` runs.
///
/// The engine has the settings of a [`Runtime`] with the same
/// [`RuntimeOptions`]; the code is generated for `target` and its baseline
/// CPU (no features detected from the machine doing the compiling), so an
/// artifact runs on any CPU of that architecture.
#[cfg(feature = "compiler")]
pub struct Precompiler {
    engine: Engine,
    target: String,
}

#[cfg(feature = "compiler")]
impl Precompiler {
    /// The triple `sluice precompile` compiles for by default: the one this
    /// Sluice was built for.
    pub const HOST_TARGET: &str = env!("SLUICE_HOST_TARGET");

    /// A precompiler for `target` (a Rust target triple, e.g.
    /// `aarch64-unknown-linux-gnu`; `None` for [`Precompiler::HOST_TARGET`]).
    pub fn new(options: RuntimeOptions, target: Option<&str>) -> anyhow::Result<Precompiler> {
        let target = target.unwrap_or(Self::HOST_TARGET).to_owned();
        let mut config = engine_config(&options);
        config
            .target(&target)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("unsupported target `{target}`"))?;
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("creating a wasmtime engine for `{target}`"))?;
        Ok(Precompiler { engine, target })
    }

    /// The target triple the code is generated for.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Whether artifacts are for the machine this runs on (so they can be
    /// loaded back and checked here).
    pub fn is_host(&self) -> bool {
        self.target == Self::HOST_TARGET
    }

    /// Compiles a component into an artifact.
    pub fn precompile(&self, component: &[u8]) -> anyhow::Result<Vec<u8>> {
        self.engine
            .precompile_component(component)
            .map_err(anyhow::Error::from)
    }
}

/// A compiled, pre-linked plugin for one step: cheap to instantiate.
pub struct Plugin {
    step: String,
    plugin: String,
    location: String,
    settings_json: String,
    limits: Limits,
    deterministic: bool,
    engine: Engine,
    world: Box<dyn kind::World>,
    tables: crate::tables::Granted,
}

impl Plugin {
    /// The plugin's short name (its file name), as logs and outcomes show it.
    pub fn name(&self) -> &str {
        &self.plugin
    }

    /// The step's name.
    pub fn step(&self) -> &str {
        &self.step
    }

    /// The step's sandbox limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The world of `sluice:plugin` the plugin exports: its kind's
    /// (`filter`, `transform`, `route`) or that kind's packed twin
    /// (`packed-filter`, …), which the host prefers.
    pub fn world(&self) -> &'static str {
        self.world.name()
    }

    /// Lets the plugin's instances read `tables` (those its step was
    /// granted); instances made after this see them.
    pub fn grant(&mut self, tables: crate::tables::Granted) {
        self.tables = tables;
    }

    /// Instantiates the plugin in a fresh sandbox and calls its `init`.
    pub fn instantiate(&self) -> Result<Instance, PluginError> {
        self.instantiate_within(self.limits.timeout_ms)
    }

    /// Like [`Plugin::instantiate`], with `init` given at most `timeout_ms`
    /// (and never more than `limits.timeout_ms`): a restart during an
    /// invocation gets no more than the time left before its deadline.
    pub fn instantiate_within(&self, timeout_ms: u64) -> Result<Instance, PluginError> {
        let mut store = Store::new(
            &self.engine,
            HostState::new(
                &self.step,
                &self.plugin,
                self.limits.memory_bytes,
                self.deterministic,
            ),
        );
        store.data_mut().tables = self.tables.clone();
        store.limiter(|s| s.limiter());
        // What the host may copy out of the guest in one call (its results,
        // or one log line): no more than its memory may hold. wasmtime counts
        // it before it allocates, so outputs that all point at one region of
        // the plugin's memory cannot make the host allocate outputs × region.
        store.set_hostcall_fuel(self.limits.memory_bytes);
        store.epoch_deadline_trap();
        prepare_call(
            &mut store,
            &self.limits,
            timeout_ms.clamp(1, self.limits.timeout_ms),
        );
        let started = self.world.start(&mut store, &self.settings_json);
        let started = match started {
            Ok(_) if store.data().ran_out_of_time() => Err(wasmtime::Trap::Interrupt.into()),
            other => other,
        };
        let stderr = after_call(&mut store, &self.limits);
        let (bound, init) = started.map_err(|error| PluginError::Instantiate {
            step: self.step.clone(),
            plugin: self.location.clone(),
            error: with_stderr(error, stderr).into(),
        })?;
        init.map_err(|message| PluginError::Init {
            step: self.step.clone(),
            plugin: self.location.clone(),
            message,
        })?;
        Ok(Instance {
            store,
            bound,
            limits: self.limits,
        })
    }
}

/// Arms the deadline (`timeout_ms`) and the log budget for the next guest call.
fn prepare_call(store: &mut Store<HostState>, limits: &Limits, timeout_ms: u64) {
    let ticks = timeout_ms.div_ceil(EPOCH_TICK.as_millis() as u64).max(1);
    store.set_epoch_deadline(ticks);
    let state = store.data_mut();
    state.arm(std::time::Instant::now().checked_add(std::time::Duration::from_millis(timeout_ms)));
    state.log_budget = limits.max_log_lines;
    state.logs_dropped = 0;
}

/// A running plugin: a store and the bindings of its world.
pub struct Instance {
    store: Store<HostState>,
    bound: Box<dyn kind::Bound>,
    limits: Limits,
}

/// What wasmtime says when a guest hands the host more data in one call
/// than [`wasmtime::Store::set_hostcall_fuel`] allows.
const HOSTCALL_FUEL_EXHAUSTED: &str = "fuel allocated for hostcalls has been exhausted";

/// A call whose results add up to more than the plugin's memory may hold
/// (`limits.memory_bytes`): they were refused before the host copied them.
#[derive(Debug)]
pub struct ResultsTooBig {
    /// The limit, in bytes.
    pub limit: usize,
}

impl std::fmt::Display for ResultsTooBig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the plugin's results add up to more than {} bytes (`limits.memory_bytes`), more than \
             its memory can hold: outputs that point at the same memory count once per output",
            self.limit
        )
    }
}

impl std::error::Error for ResultsTooBig {}

/// A guest call that did not return: a trap, or a contract violation.
pub type CallError = wasmtime::Error;

/// Logs what the plugin printed during the call, reports what the call's log
/// budget dropped, and returns the end of the call's stderr.
fn after_call(store: &mut Store<HostState>, limits: &Limits) -> Option<String> {
    let stderr = store.data_mut().flush_output();
    let state = store.data();
    if state.logs_dropped > 0 {
        tracing::warn!(
            step = %state.step,
            plugin = %state.plugin,
            dropped = state.logs_dropped,
            limit = limits.max_log_lines,
            "plugin logged more than its limit per call; the rest were dropped"
        );
    }
    stderr
}

/// The end of what a plugin wrote to stderr during a call that failed (a
/// JavaScript exception, a Python traceback, a C `abort` message), attached
/// to the call's error.
#[derive(Debug)]
pub struct Stderr(pub String);

impl std::fmt::Display for Stderr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the plugin's stderr ends: {}", self.0)
    }
}

fn with_stderr(error: CallError, stderr: Option<String>) -> CallError {
    match stderr {
        Some(text) => error.context(Stderr(text)),
        None => error,
    }
}

/// One line saying why a call trapped: the trap (without the Wasm
/// backtrace, which is logged) and the end of the plugin's stderr.
pub fn trap_reason(error: &CallError) -> String {
    let what = match error.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => error.root_cause().to_string(),
    };
    match error.downcast_ref::<Stderr>() {
        Some(stderr) => format!("{what}; {stderr}"),
        None => what,
    }
}

impl Instance {
    /// Runs one guest call with the deadline and log budget armed: at most
    /// `timeout_ms`, and never longer than the step's `limits.timeout_ms`.
    fn guarded<R>(
        &mut self,
        batch: &mut [Event],
        timeout_ms: u64,
        call: impl FnOnce(&dyn kind::Bound, &mut Store<HostState>, &mut [Event]) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        prepare_call(
            &mut self.store,
            &self.limits,
            timeout_ms.min(self.limits.timeout_ms),
        );
        self.store.data().replay(batch);
        let mut r = call(&*self.bound, &mut self.store, batch);
        if r.is_ok() && self.store.data().ran_out_of_time() {
            // It slept until its deadline and returned before the epoch
            // check caught it: out of time all the same.
            r = Err(wasmtime::Trap::Interrupt.into());
        }
        if let Err(e) = &r
            && e.downcast_ref::<wasmtime::Trap>().is_none()
            && e.root_cause().to_string().contains(HOSTCALL_FUEL_EXHAUSTED)
        {
            r = Err(ResultsTooBig {
                limit: self.limits.memory_bytes,
            }
            .into());
        }
        let stderr = after_call(&mut self.store, &self.limits);
        r.map_err(|e| with_stderr(e, stderr))
    }

    /// Calls the plugin's export (`filter`, `transform` or `route`: its
    /// world's one) on the batch, for at most `timeout_ms` (and at most the
    /// step's `limits.timeout_ms`). One [`Decision`] per event, or why the
    /// plugin failed it. `Err` means the call itself failed (a trap, a
    /// timeout, results too big): the instance must not be used again (the
    /// pipeline re-runs the events on fresh instances to find the ones that
    /// make it fail).
    ///
    /// `batch` is `&mut` for the packed worlds: each payload is moved into
    /// the packed batch for the call and back after it, never copied.
    pub fn call(
        &mut self,
        batch: &mut [Event],
        timeout_ms: u64,
    ) -> Result<Vec<Result<Decision, Failure>>, CallError> {
        let mut results = self.guarded(batch, timeout_ms, |bound, store, batch| {
            bound.call(store, batch)
        })?;
        self.bound_reasons(&mut results);
        Ok(results)
    }

    /// Bounds the failure reasons of a call's results ([`bound_reason`]),
    /// against the call's log budget.
    fn bound_reasons<T>(&mut self, results: &mut [Result<T, Failure>]) {
        let budget = &mut self.store.data_mut().log_budget;
        for r in results {
            if let Err(Failure::Invalid(reason) | Failure::Retry(reason)) = r {
                bound_reason(reason, budget);
            }
        }
    }
}

/// The longest failure reason a plugin may give while its call's log budget
/// lasts ([`host::MAX_LOG_BYTES`], as a log line), and after it is spent.
const MAX_REASON_BYTES: [usize; 2] = [host::MAX_LOG_BYTES, 256];

/// Bounds a plugin's failure reason as a log line is bounded: it goes into
/// logs, summaries and dead letters. Each reason counts against the call's
/// log budget (`limits.max_log_lines`); once that is spent, reasons are cut
/// shorter still. Control characters are escaped, so a reason is one line.
fn bound_reason(reason: &mut String, budget: &mut usize) {
    let max = MAX_REASON_BYTES[usize::from(*budget == 0)];
    *budget = budget.saturating_sub(1);
    let escaped = crate::logging::escape_controls(reason);
    if escaped.len() > max || matches!(escaped, std::borrow::Cow::Owned(_)) {
        *reason = host::truncate(&escaped, max).into_owned();
    }
}

/// A decoded record as a plugin sees it.
impl From<Record> for Event {
    fn from(r: Record) -> Event {
        Event {
            partition_key: r.partition_key,
            sequence_number: r.sequence_number,
            sub_sequence_number: r.sub_sequence_number,
            shard_id: r.shard_id,
            arrival_ms: r.arrival_ms,
            data: r.data,
            attributes: r.attributes,
        }
    }
}

/// An event back as a record (an output, or the original for a dead letter).
impl From<Event> for Record {
    fn from(e: Event) -> Record {
        Record {
            shard_id: e.shard_id,
            sequence_number: e.sequence_number,
            sub_sequence_number: e.sub_sequence_number,
            partition_key: e.partition_key,
            arrival_ms: e.arrival_ms,
            data: e.data,
            attributes: e.attributes,
        }
    }
}

/// What a plugin made of one event; the variant is its world's.
#[derive(Debug)]
pub enum Decision {
    /// A filter's answer: keep the event or drop it.
    Keep(bool),
    /// A transform's outputs (none: the event is dropped).
    Outputs(Vec<Output>),
    /// A route's destination names (none: the default destination).
    Routes(Vec<String>),
}

/// The last path segment of a plugin location: `plugins/redact.wasm` → `redact.wasm`.
fn short_name(location: &str) -> &str {
    let trimmed = location.trim_end_matches('/');
    Path::new(trimmed)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(trimmed)
}

/// Checks `bytes` against the step's `sha256` pin, if it has one.
pub fn check_pin(step: &StepPlan, location: &str, bytes: &[u8]) -> Result<(), PluginError> {
    if let Some(expected) = &step.sha256 {
        let actual: [u8; 32] = Sha256::digest(bytes).into();
        if &actual != expected {
            return Err(PluginError::Digest {
                step: step.name.clone(),
                plugin: location.to_owned(),
                expected: hex(expected),
                actual: hex(&actual),
            });
        }
    }
    Ok(())
}

pub(crate) use sluice_core::hex;
