//! [`validate`]: the config's rules that span fields, one function per
//! section (destinations, steps, `[source]`, `[metrics]`, `[routing]`), and
//! the resolution of every reference into a [`Plan`]. Pure: nothing is read.
//!
//! Each section's check returns its error as `(field path, message)`;
//! [`validate`] adds the file's name.

use std::collections::BTreeMap;
use std::path::Path;

use super::raw::{self, StepKind};
use super::{
    AggregatePlan, ConfigError, DestinationId, DestinationPlan, Limits, Location,
    MAX_WINDOW_STATE_BYTES, OnError, Plan, ShadowPlan, StepPlan, destination,
};
use crate::pattern::{Filters, Pattern};

/// A broken rule: the field's path and what is wrong.
type Broken = (String, String);

/// Checks the rules that span fields and resolves every reference.
pub fn validate(raw: raw::Config, origin: &Location) -> Result<Plan, ConfigError> {
    let invalid = |(field, message): Broken| ConfigError::Invalid {
        source_name: origin.to_string(),
        field,
        message,
    };
    let destinations = destinations(raw.destinations, origin).map_err(invalid)?;
    let dead_letter = match &raw.routing.dead_letter {
        Some(name) => Some(
            named_destination(&destinations, name)
                .map_err(|m| invalid(("routing.dead_letter".into(), m)))?,
        ),
        None => None,
    };
    let mut steps = Vec::with_capacity(raw.steps.len());
    let mut seen = BTreeMap::new();
    for (i, step) in raw.steps.into_iter().enumerate() {
        crate::name::check(&step.name).map_err(|m| invalid((format!("steps[{i}].name"), m)))?;
        if let Some(first) = seen.insert(step.name.clone(), i) {
            return Err(invalid((
                format!("steps[{i}] (`{}`).name", step.name),
                format!(
                    "step name `{}` is already used by steps[{first}]",
                    step.name
                ),
            )));
        }
        steps.push(step_plan(i, step, origin, dead_letter, &destinations).map_err(invalid)?);
    }
    share_window_state(&mut steps).map_err(invalid)?;
    let tables = tables(raw.tables, origin, &mut steps).map_err(invalid)?;
    let filters = check_source(&raw.source).map_err(invalid)?;
    check_metrics(&raw.metrics).map_err(invalid)?;
    let default_destination =
        default_destination(raw.routing.default.as_deref(), &destinations, &steps)
            .map_err(invalid)?;
    Ok(Plan {
        source: origin.clone(),
        trusted: matches!(origin, Location::File(_)),
        filters,
        stream: raw.source,
        metrics: raw.metrics,
        steps,
        tables,
        destinations,
        default_destination,
        dead_letter,
    })
}

/// `[destinations.*]`: at least one, each named by the rule and valid for
/// its kind, S3 keys apart; sorted by name (a `BTreeMap`'s order).
fn destinations(
    tables: BTreeMap<String, destination::DestinationConfig>,
    origin: &Location,
) -> Result<Vec<DestinationPlan>, Broken> {
    if tables.is_empty() {
        return Err((
            "destinations".into(),
            "no destination is defined; add at least one `[destinations.<name>]` table".into(),
        ));
    }
    let base = match origin {
        Location::File(path) => path.parent().unwrap_or(Path::new(".")).to_owned(),
        Location::S3 { .. } => Default::default(),
    };
    let mut destinations = Vec::with_capacity(tables.len());
    for (name, table) in tables {
        let field = format!("destinations.{name}");
        crate::name::check(&name).map_err(|m| (field.clone(), m))?;
        let kind = table
            .validate(destination::Context { base: &base })
            .map_err(|e| (format!("{field}.{}", e.field), e.message))?;
        destinations.push(DestinationPlan { name, kind });
    }
    destination::s3::check_keys_apart(&destinations)
        .map_err(|(name, m)| (format!("destinations.{name}.key"), m))?;
    Ok(destinations)
}

/// One `[[steps]]` entry (its name already checked): the plugin's location
/// and pin, its settings as JSON, its limits and its failure policy.
fn step_plan(
    i: usize,
    step: raw::Step,
    origin: &Location,
    dead_letter: Option<DestinationId>,
    destinations: &[DestinationPlan],
) -> Result<StepPlan, Broken> {
    let at = format!("steps[{i}] (`{}`)", step.name);
    if step.plugin.is_empty() {
        return Err((format!("{at}.plugin"), "must not be empty".into()));
    }
    let plugin = origin
        .join(&step.plugin)
        .map_err(|m| (format!("{at}.plugin"), m))?;
    let reaches_out = reaches_out(origin, &step.plugin).then(|| step.plugin.clone());
    let sha256 = step
        .sha256
        .as_deref()
        .map(parse_sha256)
        .transpose()
        .map_err(|m| (format!("{at}.sha256"), m))?;
    let settings_json = serde_json::to_string(&step.config).map_err(|e| {
        (
            format!("{at}.config"),
            format!("cannot be passed to the plugin as JSON: {e}"),
        )
    })?;
    check_limits(&step.limits).map_err(|(field, expected)| {
        (
            format!("{at}.limits.{field}"),
            format!("is out of range: expected {expected}"),
        )
    })?;
    let aggregate = aggregate_plan(&at, &step, destinations)?;
    let shadow = step
        .shadow
        .as_ref()
        .map(|sh| shadow_plan(&at, &step, sh, origin, settings_json.as_str()))
        .transpose()?;
    if step.on_error == Some(OnError::DeadLetter) && dead_letter.is_none() {
        return Err((
            format!("{at}.on_error"),
            "is `dead-letter` but `routing.dead_letter` names no destination".into(),
        ));
    }
    Ok(StepPlan {
        name: step.name,
        kind: step.kind,
        plugin,
        reaches_out,
        sha256,
        settings_json,
        limits: step.limits,
        on_error: step.on_error.unwrap_or(default_on_error(dead_letter)),
        deterministic: step.deterministic,
        aggregate,
        shadow,
        tables: Vec::new(),
    })
}

/// `[tables.*]`: each named by the rule, its source resolved, its steps
/// defined; each step (and its shadow) learns the tables it may read.
fn tables(
    raw: BTreeMap<String, raw::Table>,
    origin: &Location,
    steps: &mut [StepPlan],
) -> Result<Vec<super::TablePlan>, Broken> {
    let mut plans = Vec::with_capacity(raw.len());
    for (name, t) in raw {
        let at = format!("tables.{name}");
        crate::name::check(&name).map_err(|m| (at.clone(), m))?;
        if t.source.is_empty() {
            return Err((format!("{at}.source"), "must not be empty".into()));
        }
        let source = origin
            .join(&t.source)
            .map_err(|m| (format!("{at}.source"), m))?;
        if t.key.is_empty() {
            return Err((format!("{at}.key"), "must not be empty".into()));
        }
        let sha256 = t
            .sha256
            .as_deref()
            .map(parse_sha256)
            .transpose()
            .map_err(|m| (format!("{at}.sha256"), m))?;
        if t.steps.is_empty() {
            return Err((
                format!("{at}.steps"),
                "names no step: list the steps whose plugins read the table".into(),
            ));
        }
        let mut readers = Vec::with_capacity(t.steps.len());
        for step in &t.steps {
            let Some(i) = steps.iter().position(|s| &s.name == step) else {
                let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
                return Err((
                    format!("{at}.steps"),
                    format!(
                        "names step `{step}`, which is not defined (steps: {})",
                        names.join(", ")
                    ),
                ));
            };
            readers.push(i);
        }
        if t.refresh_seconds == Some(0) {
            return Err((format!("{at}.refresh_seconds"), "must be at least 1".into()));
        }
        let format = t.format.unwrap_or(if t.source.ends_with(".csv") {
            crate::table::TableFormat::Csv
        } else {
            crate::table::TableFormat::Jsonl
        });
        let index = plans.len();
        for &i in &readers {
            steps[i].tables.push(index);
            if let Some(shadow) = &mut steps[i].shadow {
                shadow.step.tables.push(index);
            }
        }
        plans.push(super::TablePlan {
            name,
            reaches_out: reaches_out(origin, &t.source).then(|| t.source.clone()),
            source,
            format,
            key: t.key,
            sha256,
            steps: readers,
            max_bytes: t.max_bytes,
            refresh: t.refresh_seconds.map(std::time::Duration::from_secs),
            duplicates: t.duplicates,
        });
    }
    Ok(plans)
}

/// A step's `shadow`: a candidate of the step's kind (not `aggregate`),
/// with the step's settings and limits unless it has its own.
fn shadow_plan(
    at: &str,
    step: &raw::Step,
    shadow: &raw::Shadow,
    origin: &Location,
    step_settings: &str,
) -> Result<ShadowPlan, Broken> {
    let at = format!("{at}.shadow");
    if step.kind == StepKind::Aggregate {
        return Err((
            at,
            "an `aggregate` step cannot have a shadow (only filter, transform and route)".into(),
        ));
    }
    if !(shadow.time_share > 0.0 && shadow.time_share <= 0.5) {
        return Err((
            format!("{at}.time_share"),
            format!(
                "is {}: expected more than 0 and at most 0.5",
                shadow.time_share
            ),
        ));
    }
    let candidate = raw::Step {
        name: format!("{}.shadow", step.name),
        kind: step.kind,
        plugin: shadow.plugin.clone(),
        sha256: shadow.sha256.clone(),
        config: shadow.config.clone().unwrap_or_default(),
        limits: shadow.limits.unwrap_or(step.limits),
        on_error: Some(OnError::Drop),
        destinations: Vec::new(),
        deterministic: step.deterministic,
        shadow: None,
    };
    let own_settings = shadow.config.is_some();
    let mut plan = step_plan(0, candidate, origin, None, &[]).map_err(|(field, m)| {
        // `steps[0] (`x.shadow`).plugin` → `steps[i] (`x`).shadow.plugin`
        let rest = field.split_once(").").map_or(field.as_str(), |(_, r)| r);
        (format!("{at}.{rest}"), m)
    })?;
    if !own_settings {
        step_settings.clone_into(&mut plan.settings_json);
    }
    Ok(ShadowPlan {
        step: Box::new(plan),
        time_share: shadow.time_share,
    })
}

/// An `aggregate` step's destinations (one at least, each defined) and its
/// state cap as written (shared out by [`share_window_state`]); the other
/// kinds may have neither.
fn aggregate_plan(
    at: &str,
    step: &raw::Step,
    destinations: &[DestinationPlan],
) -> Result<Option<AggregatePlan>, Broken> {
    if step.kind != StepKind::Aggregate {
        if !step.destinations.is_empty() {
            return Err((
                format!("{at}.destinations"),
                format!(
                    "only an `aggregate` step has destinations of its own; a `{}` step's \
                     outputs go where a `route` step or `routing.default` sends them",
                    step.kind
                ),
            ));
        }
        if step.limits.max_state_bytes.is_some() {
            return Err((
                format!("{at}.limits.max_state_bytes"),
                "is for `aggregate` steps only".into(),
            ));
        }
        return Ok(None);
    }
    if step.destinations.is_empty() {
        return Err((
            format!("{at}.destinations"),
            "is required for an `aggregate` step: name where each window's outputs go, e.g. \
             `destinations = [\"page-views\"]`"
                .into(),
        ));
    }
    let mut ids = Vec::with_capacity(step.destinations.len());
    for (k, name) in step.destinations.iter().enumerate() {
        let id = named_destination(destinations, name)
            .map_err(|m| (format!("{at}.destinations[{k}]"), m))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(Some(AggregatePlan {
        destinations: ids,
        max_state_bytes: step.limits.max_state_bytes.unwrap_or(0),
    }))
}

/// Shares Lambda's 1 MB of window state among the aggregate steps: a step
/// with `limits.max_state_bytes` keeps it, the others split what is left
/// equally; the total may not pass 1 MB.
fn share_window_state(steps: &mut [StepPlan]) -> Result<(), Broken> {
    let set: usize = steps
        .iter()
        .filter_map(|s| s.aggregate.as_ref())
        .map(|a| a.max_state_bytes)
        .sum();
    let unset = steps
        .iter()
        .filter(|s| s.aggregate.as_ref().is_some_and(|a| a.max_state_bytes == 0))
        .count();
    if set > MAX_WINDOW_STATE_BYTES || (unset > 0 && set >= MAX_WINDOW_STATE_BYTES) {
        let (i, step) = steps
            .iter()
            .enumerate()
            .rfind(|(_, s)| s.aggregate.is_some())
            .expect("a step with state");
        return Err((
            format!("steps[{i}] (`{}`).limits.max_state_bytes", step.name),
            format!(
                "the aggregate steps' states add up to {set} bytes, more than the \
                 {MAX_WINDOW_STATE_BYTES} bytes of window state Lambda carries (each step \
                 without `max_state_bytes` needs a share too)"
            ),
        ));
    }
    let share = (MAX_WINDOW_STATE_BYTES - set) / unset.max(1);
    for a in steps.iter_mut().filter_map(|s| s.aggregate.as_mut()) {
        if a.max_state_bytes == 0 {
            a.max_state_bytes = share;
        }
    }
    Ok(())
}

/// A step's `limits`: the first field out of range, and its range.
fn check_limits(l: &Limits) -> Result<(), (&'static str, &'static str)> {
    let checks: [(&str, bool, &str); 4] = [
        (
            "timeout_ms",
            (1..=900_000).contains(&l.timeout_ms),
            "1 to 900000",
        ),
        (
            "memory_bytes",
            ((1 << 20)..=(4 << 30)).contains(&l.memory_bytes),
            "1048576 (1 MiB) to 4294967296 (4 GiB)",
        ),
        (
            "max_outputs_per_event",
            l.max_outputs_per_event >= 1,
            "at least 1",
        ),
        ("max_output_bytes", l.max_output_bytes >= 1, "at least 1"),
    ];
    match checks.iter().find(|(_, ok, _)| !ok) {
        Some((field, _, expected)) => Err((field, expected)),
        None => Ok(()),
    }
}

/// `[routing] default`: the destination named, the only one, or none when a
/// `route` step chooses (required otherwise).
fn default_destination(
    name: Option<&str>,
    destinations: &[DestinationPlan],
    steps: &[StepPlan],
) -> Result<Option<DestinationId>, Broken> {
    match name {
        Some(name) => named_destination(destinations, name)
            .map(Some)
            .map_err(|m| ("routing.default".into(), m)),
        None if destinations.len() == 1 => Ok(Some(0)),
        None if !steps.iter().any(|s| s.kind == StepKind::Route) => Err((
            "routing.default".into(),
            "is required: there is no `route` step and more than one destination".into(),
        )),
        None => Ok(None),
    }
}

/// Checks `[source]` and reads its filter patterns. (A CloudWatch Logs
/// subscription is gzip: `decompress = "none"` reads it as gzip, `"zstd"`
/// cannot.)
fn check_source(source: &raw::Source) -> Result<Filters, Broken> {
    use raw::{Decompress, SourceFormat};
    if source.max_decompressed_bytes == 0 {
        return Err((
            "source.max_decompressed_bytes".into(),
            "must be at least 1".into(),
        ));
    }
    if source.max_batch_bytes == 0 {
        return Err(("source.max_batch_bytes".into(), "must be at least 1".into()));
    }
    if source.format == SourceFormat::CloudwatchLogs && source.decompress == Decompress::Zstd {
        return Err((
            "source.decompress".into(),
            "is `zstd`, but CloudWatch Logs subscription data is gzip: use `gzip` or `auto`".into(),
        ));
    }
    let mut patterns = Vec::with_capacity(source.filters.len());
    for (i, f) in source.filters.iter().enumerate() {
        let field = format!("source.filters[{i}]");
        let json = match f {
            toml::Value::String(text) => serde_json::from_str(text)
                .map_err(|e| (field.clone(), format!("is not JSON: {e}")))?,
            toml::Value::Table(_) => serde_json::to_value(f)
                .map_err(|e| (field.clone(), format!("cannot be read as JSON: {e}")))?,
            other => {
                return Err((
                    field,
                    format!("is `{other}`: give a pattern as a JSON string or a table"),
                ));
            }
        };
        patterns.push(Pattern::parse(&json).map_err(|m| (field, m))?);
    }
    Ok(Filters::new(patterns))
}

/// Checks `[metrics]` against CloudWatch's limits.
fn check_metrics(metrics: &raw::Metrics) -> Result<(), Broken> {
    let ns = &metrics.namespace;
    if ns.is_empty() || ns.len() > 255 || ns.starts_with("AWS/") || ns.starts_with(':') {
        return Err((
            "metrics.namespace".into(),
            format!(
                "`{ns}` is not a CloudWatch namespace: use 1 to 255 characters, not starting \
                 with `AWS/` (reserved) or `:`"
            ),
        ));
    }
    if let Some(p) = &metrics.pipeline
        && (p.is_empty() || p.len() > 1024)
    {
        return Err((
            "metrics.pipeline".into(),
            "must be 1 to 1024 characters (a CloudWatch dimension value)".into(),
        ));
    }
    Ok(())
}

/// Parses a SHA-256 digest written as 64 hex digits.
pub fn parse_sha256(hex: &str) -> Result<[u8; 32], String> {
    let bad = || format!("`{hex}` is not a SHA-256 digest: expected 64 hex digits");
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// Whether `reference` (a step's `plugin`), resolved against a config in
/// S3 at `origin`, leaves the config's folder: an absolute local path, or
/// `..` above the folder. References from a local config never do (the
/// config is as trusted as the files beside it).
fn reaches_out(origin: &Location, reference: &str) -> bool {
    if !matches!(origin, Location::S3 { .. }) || reference.starts_with("s3://") {
        return false;
    }
    if Path::new(reference).is_absolute() || reference.starts_with('\\') {
        return true;
    }
    let mut depth = 0usize;
    for segment in reference.split(['/', '\\']) {
        match segment {
            "" | "." => {}
            ".." if depth == 0 => return true,
            ".." => depth -= 1,
            _ => depth += 1,
        }
    }
    false
}

pub(super) fn default_on_error(dead_letter: Option<DestinationId>) -> OnError {
    if dead_letter.is_some() {
        OnError::DeadLetter
    } else {
        OnError::Retry
    }
}

/// `destinations` is sorted by name.
pub(super) fn find_destination(
    destinations: &[DestinationPlan],
    name: &str,
) -> Option<DestinationId> {
    destinations
        .binary_search_by(|d| d.name.as_str().cmp(name))
        .ok()
}

/// The destination called `name`, or a message listing the defined ones.
fn named_destination(
    destinations: &[DestinationPlan],
    name: &str,
) -> Result<DestinationId, String> {
    find_destination(destinations, name).ok_or_else(|| {
        format!(
            "names destination `{name}`, which is not defined (defined: {})",
            names_of(destinations)
        )
    })
}

pub(super) fn names_of(destinations: &[DestinationPlan]) -> String {
    let names: Vec<_> = destinations
        .iter()
        .map(|d| format!("`{}`", d.name))
        .collect();
    names.join(", ")
}
