//! A loaded pipeline with its destinations: what the CLI (and, later, the
//! Lambda handler) runs batches through.

use std::path::Path;

use anyhow::Context as _;

use crate::config::{self, Plan};
use crate::dispatch::{self, DispatchReport};
use crate::event::Batch;
use crate::pipeline::{BatchOutcome, Pipeline};
use crate::plugin::Runtime;
use crate::sink::Sink;

/// One batch's result: the outcome per record and what each destination took.
#[derive(Debug)]
pub struct Report {
    /// What became of every record.
    pub outcome: BatchOutcome,
    /// Outputs delivered per destination.
    pub dispatch: DispatchReport,
}

/// A pipeline ready to process batches.
pub struct App {
    pipeline: Pipeline,
    sinks: Vec<Sink>,
}

impl App {
    /// Loads the config at `path`, compiles and starts every plugin, and opens
    /// every destination.
    pub fn load(path: &Path) -> anyhow::Result<App> {
        let plan = config::load(path)?;
        let sinks = plan
            .destinations
            .iter()
            .map(Sink::open)
            .collect::<Result<Vec<_>, _>>()?;
        App::with_sinks(plan, sinks)
    }

    /// Builds the pipeline of `plan` with the given sinks (indexed like
    /// `plan.destinations`).
    pub fn with_sinks(plan: Plan, sinks: Vec<Sink>) -> anyhow::Result<App> {
        anyhow::ensure!(
            sinks.len() == plan.destinations.len(),
            "{} sinks for {} destinations",
            sinks.len(),
            plan.destinations.len()
        );
        let runtime = Runtime::new()?;
        let pipeline = Pipeline::load(&runtime, plan)
            .with_context(|| "loading the pipeline's plugins".to_string())?;
        Ok(App { pipeline, sinks })
    }

    /// The validated config.
    pub fn plan(&self) -> &Plan {
        self.pipeline.plan()
    }

    /// The destinations, indexed like `plan().destinations`.
    pub fn sinks(&self) -> &[Sink] {
        &self.sinks
    }

    /// The pipeline (to reset plugin instances between fixture cases).
    pub fn pipeline_mut(&mut self) -> &mut Pipeline {
        &mut self.pipeline
    }

    /// Runs `batch` through the pipeline and delivers the outputs.
    pub async fn process(&mut self, batch: Batch) -> Report {
        let mut outcome = self.pipeline.run(batch);
        let dispatch =
            dispatch::dispatch(self.pipeline.plan(), &mut outcome, &mut self.sinks).await;
        Report { outcome, dispatch }
    }
}
