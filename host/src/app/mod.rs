//! A loaded pipeline with its destinations: what the CLI and the Lambda
//! handler run batches through.
//!
//! [`App::load`] is the cold start: fetch the config (a path or `s3://`),
//! fetch every plugin it names, verify pins, compile and start the plugins,
//! open the destinations. Anything wrong fails here, once, with a message
//! naming the config field, step, plugin or destination.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};

use crate::aws::Aws;
use crate::config::{self, ConfigError, Location, Plan, StepPlan};
use crate::destination::Destination;
use crate::destination::memory::MemoryDestination;
use crate::dispatch::{self, DispatchReport};
use crate::event::Batch;
use crate::outcome::BatchOutcome;
use crate::pipeline::Pipeline;
use crate::plugin::{Plugin, PluginError, Runtime, hex};
use crate::tables::Tables;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;

mod window;

pub use crate::aws::{clients, fetch, fetch_from};

pub use window::WindowReport;

/// One batch's result: the outcome per record and what each destination took.
#[derive(Debug)]
pub struct Report {
    /// What became of every record.
    pub outcome: BatchOutcome,
    /// Outputs delivered per destination.
    pub dispatch: DispatchReport,
    /// The tumbling window, when the event had one: the state to hand back
    /// to Lambda and what the window's end made.
    pub window: Option<WindowReport>,
}

/// A pipeline ready to process batches.
pub struct App {
    /// Plugin calls run on a blocking thread: wasmtime-wasi's synchronous
    /// WASI (a guest's panic message goes to its stderr) must not run on an
    /// async task.
    pipeline: Arc<Mutex<Pipeline>>,
    plan: Plan,
    destinations: Vec<Destination>,
    /// The lookup tables, refreshed from here when due.
    tables: Tables,
    /// The AWS clients, when something lives in AWS (table refreshes).
    aws: Option<Aws>,
}

impl App {
    /// Cold start from `config`: a path or an `s3://bucket/key` URI, checked
    /// against the pin in [`CONFIG_PIN_VAR`] when that is set. AWS clients are
    /// created only if the config, a plugin or a destination lives in AWS.
    pub async fn load(config: &str) -> anyhow::Result<App> {
        let pin = std::env::var(CONFIG_PIN_VAR).ok();
        App::load_with(config, pin.as_deref(), None).await
    }

    /// Like [`App::load`], with the config's pin (64 hex digits of its
    /// SHA-256) and AWS clients (tests point them at a local endpoint) given
    /// by the caller.
    pub async fn load_with(
        config: &str,
        pin: Option<&str>,
        mut aws: Option<Aws>,
    ) -> anyhow::Result<App> {
        let plan = load_plan(config, pin, &mut aws).await?;
        App::from_plan(plan, aws).await
    }

    /// Fetches the plan's plugins, compiles them and opens its destinations.
    /// AWS clients are created (once) only when something lives in AWS; `aws`
    /// gives them (tests point them at a local endpoint).
    pub async fn from_plan(plan: Plan, aws: Option<Aws>) -> anyhow::Result<App> {
        App::build(plan, aws, None).await
    }

    /// Cold start from `config` (a path or `s3://`, checked as
    /// [`App::load`] checks it) with every destination replaced by an
    /// in-memory one that keeps its outputs in the `envelope` format:
    /// nothing is delivered anywhere. `sluice diff` and `sluice replay
    /// --dry-run` run pipelines this way. The memory destinations are
    /// indexed like `plan().destinations`.
    pub async fn load_in_memory(config: &str) -> anyhow::Result<(App, Vec<MemoryDestination>)> {
        let mut aws = None;
        let pin = std::env::var(CONFIG_PIN_VAR).ok();
        let plan = load_plan(config, pin.as_deref(), &mut aws).await?;
        let memory: Vec<MemoryDestination> = plan
            .destinations
            .iter()
            .map(|d| MemoryDestination::new(&d.name, config::Format::Envelope))
            .collect();
        let destinations = memory.iter().cloned().map(Destination::from).collect();
        let app = App::build(plan, aws, Some(destinations)).await?;
        Ok((app, memory))
    }

    /// [`App::from_plan`], with `destinations` (indexed like the plan's)
    /// instead of those the plan describes when given.
    async fn build(
        plan: Plan,
        mut aws: Option<Aws>,
        destinations: Option<Vec<Destination>>,
    ) -> anyhow::Result<App> {
        let started = Instant::now();
        let in_aws = (destinations.is_none() && plan.destinations.iter().any(|d| d.kind.in_aws()))
            || plan
                .plugin_steps()
                .any(|(_, s, _)| matches!(s.plugin, Location::S3 { .. }))
            || plan
                .tables
                .iter()
                .any(|t| matches!(t.source, Location::S3 { .. }));
        if in_aws {
            clients(&mut aws).await;
        }
        // Every plugin fetched and compiled while the destinations read
        // their limits.
        let runtime = Arc::new(Runtime::new()?);
        let mut destinations = match destinations {
            Some(given) => given,
            None => plan
                .destinations
                .iter()
                .map(|d| Destination::open(d, aws.as_ref()))
                .collect::<Result<Vec<_>, _>>()?,
        };
        let limits =
            futures_util::future::join_all(destinations.iter_mut().map(Destination::read_limits));
        let (loads, tables, _) = futures_util::join!(
            fetch_and_compile(&plan, aws.as_ref(), runtime),
            Tables::load(&plan, aws.as_ref()),
            limits
        );
        let fetched = started.elapsed();
        let mut plugins = in_step_order(loads).await?.into_iter();
        let tables = tables.context("loading the pipeline's tables")?;
        let pipeline = Pipeline::load_with(plan, &tables, |_| {
            Ok(plugins.next().expect("one plugin per step"))
        })
        .context("loading the pipeline's plugins")?;
        tracing::info!(
            target: "sluice.app.load",
            steps = pipeline.plan().steps.len(),
            fetch_ms = fetched.as_secs_f64() * 1e3,
            total_ms = started.elapsed().as_secs_f64() * 1e3,
            "pipeline ready"
        );
        Ok(App::new(pipeline, destinations, tables, aws))
    }

    fn new(
        pipeline: Pipeline,
        destinations: Vec<Destination>,
        tables: Tables,
        aws: Option<Aws>,
    ) -> App {
        App {
            plan: pipeline.plan().clone(),
            pipeline: Arc::new(Mutex::new(pipeline)),
            destinations,
            tables,
            aws,
        }
    }

    /// Builds the pipeline of a local `plan` with the given destinations (indexed
    /// like `plan.destinations`): fixtures and tests use in-memory destinations.
    pub fn with_destinations(plan: Plan, destinations: Vec<Destination>) -> anyhow::Result<App> {
        anyhow::ensure!(
            destinations.len() == plan.destinations.len(),
            "{} destinations for {} destinations",
            destinations.len(),
            plan.destinations.len()
        );
        let runtime = Runtime::new()?;
        let tables = Tables::load_local(&plan).context("loading the pipeline's tables")?;
        let pipeline = Pipeline::load_with(plan, &tables, |step| runtime.load(step))
            .context("loading the pipeline's plugins")?;
        Ok(App::new(pipeline, destinations, tables, None))
    }

    /// The validated config.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The lookup tables, indexed like `plan().tables`.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// The destinations, indexed like `plan().destinations`.
    pub fn destinations(&self) -> &[Destination] {
        &self.destinations
    }

    /// Sets the X-Ray trace header of the invocation being served: SQS
    /// messages carry it as their `AWSTraceHeader` system attribute.
    pub fn set_trace_header(&mut self, header: Option<&str>) {
        for destination in &mut self.destinations {
            destination.set_trace_header(header);
        }
    }

    /// Throws away every plugin instance (fixture cases start fresh).
    pub fn reset(&mut self) {
        lock(&self.pipeline).reset();
    }

    /// Runs `batch` through the pipeline and delivers the outputs, holding
    /// back what follows a failed record on its shard. No plugin call runs
    /// and nothing is sent past `deadline`; what was not done is reported as
    /// failed, to be retried.
    pub async fn process(&mut self, mut batch: Batch, deadline: Option<Instant>) -> Report {
        self.tables.refresh_due(self.aws.as_ref());
        let window = batch.window.take();
        let batch = crate::source::expand(batch, &self.plan.stream);
        let batch = crate::source::prefilter(batch, &self.plan.filters);
        let pipeline = self.pipeline.clone();
        let open = window.is_some();
        let run = tokio::task::spawn_blocking(move || {
            let mut pipeline = lock(&pipeline);
            pipeline.open_window(open);
            pipeline.run_until(batch, deadline)
        });
        let mut outcome = match run.await {
            Ok(outcome) => outcome,
            // The pipeline never panics on input; if it did, say so loudly.
            Err(e) => panic!("the pipeline thread failed: {e}"),
        };
        let mut dispatch =
            dispatch::dispatch(&self.plan, &mut outcome, &mut self.destinations, deadline).await;
        let window = match window {
            Some(w) => Some(
                self.close_window(w, &mut outcome, &mut dispatch, deadline)
                    .await,
            ),
            None => {
                if lock(&self.pipeline).aggregates() {
                    tracing::warn!(
                        "the event has no tumbling window, so the pipeline's aggregate steps \
                         folded nothing: set TumblingWindowInSeconds on the event source mapping"
                    );
                }
                None
            }
        };
        Report {
            outcome,
            dispatch,
            window,
        }
    }
}

/// A plugin being compiled on a blocking thread, or why its step has none.
type Load = Result<tokio::task::JoinHandle<Result<Plugin, PluginError>>, anyhow::Error>;

/// Fetches every plugin (each step's, then its shadow's) at once and compiles each (on a blocking
/// thread) as soon as it arrives; one [`Load`] per plugin, in [`Plan::plugin_steps`] order.
async fn fetch_and_compile(plan: &Plan, aws: Option<&Aws>, runtime: Arc<Runtime>) -> Vec<Load> {
    let steps: Vec<&StepPlan> = plan.plugin_steps().map(|(_, step, _)| step).collect();
    let mut fetches: FuturesUnordered<_> = steps
        .iter()
        .enumerate()
        .map(|(i, step)| async move { (i, fetch_from(&step.plugin, aws).await) })
        .collect();
    let mut loads: Vec<Option<Load>> = (0..steps.len()).map(|_| None).collect();
    // One plugin compiles at a time (Cranelift already uses every core for
    // one component): compiling several at once held their compilers'
    // memory together, 10 MiB more peak RSS for the example's three
    // plugins, and was no faster.
    let gate = Arc::new(std::sync::Mutex::new(()));
    while let Some((i, fetched)) = fetches.next().await {
        let step = steps[i];
        loads[i] = Some(match fetched {
            Err(error) => Err(PluginError::Read {
                step: step.name.clone(),
                plugin: step.plugin.to_string(),
                error,
            }
            .into()),
            Ok(bytes) => match refuse_untrusted_native_code(plan, step, &bytes) {
                Err(e) => Err(e.into()),
                Ok(()) => {
                    let (runtime, step, gate) = (runtime.clone(), step.clone(), gate.clone());
                    Ok(tokio::task::spawn_blocking(move || {
                        let _one_at_a_time = gate.lock();
                        runtime.load_bytes(&step, &step.plugin.to_string(), &bytes)
                    }))
                }
            },
        });
    }
    loads
        .into_iter()
        .map(|l| {
            l.unwrap_or_else(|| Err(anyhow::anyhow!("a plugin was neither fetched nor refused")))
        })
        .collect()
}

/// The compiled plugins in step order, or the first problem in step order
/// (as a sequential load would say it).
async fn in_step_order(loads: Vec<Load>) -> anyhow::Result<Vec<Plugin>> {
    let mut plugins = Vec::with_capacity(loads.len());
    for load in loads {
        let plugin = load?
            .await
            .context("the thread compiling a plugin failed")?
            .map_err(anyhow::Error::from)
            .context("loading the pipeline's plugins")?;
        plugins.push(plugin);
    }
    Ok(plugins)
}

/// Reads and validates the pipeline config at `config`, checked against
/// `pin` (the checks of a cold start): an unpinned config from S3 may not
/// reach outside its prefix, local plugin and table files must exist, and a
/// pinned config is trusted.
async fn load_plan(config: &str, pin: Option<&str>, aws: &mut Option<Aws>) -> anyhow::Result<Plan> {
    let (text, origin) = read_config(config, aws).await?;
    let pinned = check_config_pin(&text, &origin, pin)?;
    let mut plan = config::parse(&text, &origin)?;
    if !pinned {
        plan.check_unpinned()?;
    }
    plan.check_local_plugins()?;
    plan.trusted |= pinned;
    Ok(plan)
}

/// Reads the pipeline config at `config` (a path or `s3://bucket/key`).
/// Returns its text and where it came from.
pub async fn read_config(
    config: &str,
    aws: &mut Option<Aws>,
) -> anyhow::Result<(String, Location)> {
    let origin =
        Location::parse(config).map_err(|m| anyhow::anyhow!("pipeline config location: {m}"))?;
    let read_error = |error: String| ConfigError::Read {
        source_name: origin.to_string(),
        error,
    };
    let bytes = fetch(&origin, aws).await.map_err(read_error)?;
    let text = String::from_utf8(bytes).map_err(|e| read_error(format!("not UTF-8 text: {e}")))?;
    Ok((text, origin))
}

/// The environment variable that pins the pipeline config's SHA-256 (64 hex
/// digits). The deploy template sets it, so changing it takes
/// `lambda:UpdateFunctionConfiguration`, not just write access to the config's
/// S3 prefix. A config that does not match fails the cold start; only a
/// pinned (or local) config may name precompiled artifacts in S3.
pub const CONFIG_PIN_VAR: &str = "SLUICE_CONFIG_SHA256";

/// Checks the config's text against `pin`: `Ok(true)` when it matches,
/// `Ok(false)` when there is no pin, an error naming both digests otherwise.
fn check_config_pin(text: &str, origin: &Location, pin: Option<&str>) -> anyhow::Result<bool> {
    let Some(pin) = pin.map(str::trim).filter(|p| !p.is_empty()) else {
        return Ok(false);
    };
    let expected = config::parse_sha256(&pin.to_ascii_lowercase())
        .map_err(|m| anyhow::anyhow!("`{CONFIG_PIN_VAR}`: {m}"))?;
    let actual: [u8; 32] = Sha256::digest(text.as_bytes()).into();
    anyhow::ensure!(
        actual == expected,
        "pipeline config `{origin}` has SHA-256 {}, but the function's environment pins {} \
         (`{CONFIG_PIN_VAR}`): refusing to start. Whoever changes the config must also update \
         the pin, which takes a change to the function's configuration",
        hex(&actual),
        hex(&expected)
    );
    Ok(true)
}

/// Refuses a precompiled artifact (native code) fetched from S3 when the
/// config that names it is not trusted: whoever can write the config's S3
/// prefix could otherwise run native code with the function's role, which a
/// `.wasm` plugin can never do.
fn refuse_untrusted_native_code(
    plan: &Plan,
    step: &StepPlan,
    bytes: &[u8],
) -> Result<(), PluginError> {
    let native = wasmtime::Engine::detect_precompiled(bytes).is_some();
    if native && !plan.trusted && matches!(step.plugin, Location::S3 { .. }) {
        return Err(PluginError::UntrustedNative {
            step: step.name.clone(),
            plugin: step.plugin.to_string(),
            config: plan.source.to_string(),
        });
    }
    Ok(())
}

/// Reads a step's plugin bytes from disk or S3 (see [`fetch`]).
pub async fn fetch_plugin(step: &StepPlan, aws: &mut Option<Aws>) -> Result<Vec<u8>, PluginError> {
    fetch(&step.plugin, aws)
        .await
        .map_err(|error| PluginError::Read {
            step: step.name.clone(),
            plugin: step.plugin.to_string(),
            error,
        })
}

fn lock(pipeline: &Mutex<Pipeline>) -> std::sync::MutexGuard<'_, Pipeline> {
    pipeline.lock().unwrap_or_else(|p| p.into_inner())
}
