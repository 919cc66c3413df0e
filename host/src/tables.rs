//! The lookup tables of a pipeline (`[tables.NAME]`) at run time: loaded at
//! cold start (fetched, pin-checked and parsed, in parallel with the
//! plugins), held once, read by the plugins of the steps granted them
//! through the `sluice:plugin/tables` import, and refreshed in a warm
//! function when they are `refresh_seconds` old.
//!
//! A table's rows live in one [`Slot`]; a refresh parses the new file in
//! the background and swaps it in whole, so a lookup sees the old rows or
//! the new ones, never a mix. A refresh that fails keeps the old rows and
//! logs why.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};

use crate::aws::Aws;
use crate::config::{Location, Plan, StepPlan, TablePlan};
use crate::table::{Spec, Table};

/// One table: its plan and its current rows.
pub struct Slot {
    plan: TablePlan,
    rows: RwLock<Arc<Table>>,
    loaded_at: Mutex<Instant>,
    refreshing: AtomicBool,
}

impl Slot {
    /// The table `plan` describes, with its rows just loaded.
    fn new(plan: &TablePlan, rows: Table) -> Arc<Slot> {
        Arc::new(Slot {
            plan: plan.clone(),
            rows: RwLock::new(Arc::new(rows)),
            loaded_at: Mutex::new(Instant::now()),
            refreshing: AtomicBool::new(false),
        })
    }

    /// The rows a lookup reads now.
    pub fn rows(&self) -> Arc<Table> {
        self.rows.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.plan.name
    }
}

/// Every table of a pipeline, indexed like [`Plan::tables`].
#[derive(Clone, Default)]
pub struct Tables(Arc<[Arc<Slot>]>);

impl Tables {
    /// Fetches and parses every table of `plan` at once (each parse on a
    /// blocking thread); the first failure, in name order, fails the load.
    pub async fn load(plan: &Plan, aws: Option<&Aws>) -> anyhow::Result<Tables> {
        let loads = plan.tables.iter().map(|t| async move {
            let started = Instant::now();
            let table = load_one(t, aws).await?;
            tracing::info!(
                target: "sluice.tables",
                table = %t.name,
                rows = table.len(),
                bytes = table.bytes(),
                load_ms = started.elapsed().as_secs_f64() * 1e3,
                "table loaded"
            );
            Ok::<_, anyhow::Error>(Slot::new(t, table))
        });
        let slots = futures_util::future::join_all(loads)
            .await
            .into_iter()
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Tables(slots.into()))
    }

    /// Loads every table of a plan whose tables are all local files,
    /// without an async runtime (fixtures, `App::with_destinations`).
    pub fn load_local(plan: &Plan) -> anyhow::Result<Tables> {
        let mut slots = Vec::with_capacity(plan.tables.len());
        for t in &plan.tables {
            let Location::File(path) = &t.source else {
                anyhow::bail!(
                    "table `{}` is in S3; this run reads local files only",
                    t.name
                );
            };
            let bytes = std::fs::read(path)
                .with_context(|| format!("table `{}`: cannot read `{}`", t.name, path.display()))?;
            slots.push(Slot::new(t, parse(t, bytes)?));
        }
        Ok(Tables(slots.into()))
    }

    /// The tables `step` may read.
    pub fn granted(&self, step: &StepPlan) -> Granted {
        Granted {
            step: step.name.clone().into(),
            tables: step
                .tables
                .iter()
                .filter_map(|&i| self.0.get(i).cloned())
                .collect(),
        }
    }

    /// Starts a background reload of every table whose `refresh_seconds`
    /// have passed since it was loaded (one reload at a time per table).
    /// Lookups read the old rows until the new ones are in; a reload that
    /// fails keeps them and logs why.
    pub fn refresh_due(&self, aws: Option<&Aws>) {
        for slot in self.0.iter() {
            let Some(every) = slot.plan.refresh else {
                continue;
            };
            let due = slot
                .loaded_at
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .elapsed()
                >= every;
            if !due || slot.refreshing.swap(true, Ordering::AcqRel) {
                continue;
            }
            let (slot, aws) = (slot.clone(), aws.cloned());
            tokio::spawn(async move {
                match load_one(&slot.plan, aws.as_ref()).await {
                    Ok(table) => {
                        tracing::info!(target: "sluice.tables", table = %slot.plan.name, rows = table.len(), "table refreshed");
                        *slot.rows.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(table);
                    }
                    Err(e) => tracing::warn!(
                        target: "sluice.tables",
                        table = %slot.plan.name,
                        error = %format!("{e:#}"),
                        "the table's refresh failed; lookups keep reading the rows loaded before"
                    ),
                }
                *slot.loaded_at.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
                slot.refreshing.store(false, Ordering::Release);
            });
        }
    }

    /// The number of tables.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The table at `index` (as in [`Plan::tables`]).
    pub fn slot(&self, index: usize) -> Option<&Arc<Slot>> {
        self.0.get(index)
    }
}

/// Fetches, checks the pin of, and parses one table.
async fn load_one(t: &TablePlan, aws: Option<&Aws>) -> anyhow::Result<Table> {
    let bytes = crate::aws::fetch_from(&t.source, aws)
        .await
        .map_err(|e| anyhow::anyhow!("table `{}`: {e}", t.name))?;
    let t = t.clone();
    tokio::task::spawn_blocking(move || parse(&t, bytes))
        .await
        .context("the thread parsing a table failed")?
}

/// Checks the pin of a table's bytes and parses them.
fn parse(t: &TablePlan, bytes: Vec<u8>) -> anyhow::Result<Table> {
    if let Some(pin) = &t.sha256 {
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        anyhow::ensure!(
            &digest == pin,
            "table `{}`: `{}` does not match its sha256 pin (expected {}, got {})",
            t.name,
            t.source,
            crate::hex(pin),
            crate::hex(&digest)
        );
    }
    let source = t.source.to_string();
    let spec = Spec {
        name: &t.name,
        source: &source,
        format: t.format,
        key: &t.key,
        duplicates: t.duplicates,
        max_bytes: t.max_bytes,
    };
    Ok(crate::table::parse(&spec, &bytes)?)
}

/// The tables one step's plugin may read: what its instances' lookups see.
#[derive(Clone, Default)]
pub struct Granted {
    step: Arc<str>,
    tables: Arc<[Arc<Slot>]>,
}

impl Granted {
    /// The table named `name`, or why the step may not read it.
    pub fn table(&self, name: &str) -> Result<Arc<Table>, String> {
        match self.tables.iter().find(|s| s.name() == name) {
            Some(slot) => Ok(slot.rows()),
            None => Err(format!(
                "step `{}` may not read table `{name}`: {}",
                self.step,
                if self.tables.is_empty() {
                    "it was granted no table (list it in the table's `steps`)".to_owned()
                } else {
                    format!(
                        "it may read {}",
                        self.tables
                            .iter()
                            .map(|s| format!("`{}`", s.name()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            )),
        }
    }
}
