//! Structured logs with `tracing`.
//!
//! In Lambda, logs are JSON lines on stdout, which CloudWatch reads, with
//! the keys Powertools for AWS Lambda's Logger writes (`level`, `message`,
//! `timestamp`, `service`, `cold_start`, `function_name`,
//! `function_memory_size`, `function_arn`, `function_request_id`,
//! `xray_trace_id`), so that CloudWatch Logs Insights queries and dashboards
//! written for Powertools work unchanged; an event's own fields (a plugin's
//! `step` and `plugin`, a failure's `sequence_number` …) sit next to them.
//! The CLI writes its logs to stderr (stdout holds the summary and the
//! `stdout` destination) as text, for a person: warnings, errors and what
//! plugins log; `-v` adds info (plugins loaded, timings), `-vv` debug.
//!
//! `SLUICE_LOG` sets the filter (default `info` in Lambda, e.g. `SLUICE_LOG=debug` or
//! `SLUICE_LOG=sluice.plugin.log=trace`); `SLUICE_LOG_FORMAT=json|text`
//! forces the format. In Lambda, `SLUICE_LOG_SAMPLE_RATE` (0 to 1, like
//! Powertools' `POWERTOOLS_LOGGER_SAMPLE_RATE`) turns debug logs on for
//! that share of invocations, chosen by request id; `POWERTOOLS_SERVICE_NAME`
//! names the `service` (default `sluice`).

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{OnceLock, RwLock};

use sha2::{Digest as _, Sha256};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{FmtSpan, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, reload};

/// Where the process runs, which decides where logs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The Lambda function: JSON on stdout.
    Lambda,
    /// The CLI: text on stderr, for a person: warnings, errors and what
    /// plugins log, unless `verbose` (`-v`: info, `-vv`: debug).
    Cli {
        /// How many `-v` flags were given.
        verbose: u8,
    },
}

impl Mode {
    /// The filter when `SLUICE_LOG` is not set.
    fn default_filter(self) -> &'static str {
        match self {
            Mode::Lambda | Mode::Cli { verbose: 1 } => "info",
            Mode::Cli { verbose: 0 } => "warn,sluice.plugin=info",
            Mode::Cli { .. } => "debug",
        }
    }
}

/// The invocation a Lambda log line belongs to.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// The Lambda request id.
    pub request_id: String,
    /// The invoked function's ARN.
    pub function_arn: String,
    /// The X-Ray trace header (`Root=…;Parent=…;Sampled=…`), if any.
    pub xray_trace_id: Option<String>,
    /// Whether this is the execution environment's first invocation.
    pub cold_start: bool,
}

/// The current invocation, for the log lines written during it.
static CURRENT: RwLock<Option<Invocation>> = RwLock::new(None);

/// Switches debug logs on or off for one invocation (log sampling).
type Sampler = Box<dyn Fn(bool) + Send + Sync>;
static SAMPLER: OnceLock<Sampler> = OnceLock::new();

/// Marks the start of an invocation: its log lines carry its request id,
/// ARN, trace id and cold-start flag. With `SLUICE_LOG_SAMPLE_RATE` set,
/// this also decides whether the invocation logs at debug level.
pub fn begin_invocation(invocation: Invocation) {
    if let Some(sampler) = SAMPLER.get() {
        sampler(sampled(&invocation.request_id, sample_rate()));
    }
    *CURRENT.write().unwrap_or_else(|p| p.into_inner()) = Some(invocation);
}

fn sample_rate() -> f64 {
    std::env::var("SLUICE_LOG_SAMPLE_RATE")
        .ok()
        .and_then(|r| r.trim().parse::<f64>().ok())
        .filter(|r| r.is_finite())
        .map_or(0.0, |r| r.clamp(0.0, 1.0))
}

/// Whether the invocation `request_id` is in the sampled share `rate`: the
/// same request id always gets the same answer.
pub fn sampled(request_id: &str, rate: f64) -> bool {
    let digest = Sha256::digest(request_id.as_bytes());
    let x = u64::from_be_bytes(digest[..8].try_into().unwrap_or_default());
    (x as f64 / u64::MAX as f64) < rate
}

/// Whether log lines are written as text (not JSON), where a plugin's
/// newline would start a line of its own.
static TEXT: AtomicBool = AtomicBool::new(false);

/// A plugin's text as a log message may carry it: in text mode, newlines
/// and other control characters are escaped (`\n`), so that a plugin cannot
/// write a line of its own, such as one CloudWatch would read as an EMF
/// metrics document. JSON mode escapes them already.
pub fn plugin_text(text: &str) -> Cow<'_, str> {
    if TEXT.load(Ordering::Relaxed) {
        escape_controls(text)
    } else {
        text.into()
    }
}

/// `text` with every control character escaped as Rust writes it (`\n`,
/// `\u{1b}`): one line, whatever it held.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// Installs the global subscriber. Calling it twice is harmless.
pub fn init(mode: Mode) {
    let default = mode.default_filter();
    let filter =
        move || EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let json = match std::env::var("SLUICE_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => mode == Mode::Lambda,
    };
    TEXT.store(!json, Ordering::Relaxed);
    let result = match (mode, json) {
        (Mode::Lambda, true) => {
            let (layer, handle) = reload::Layer::new(filter());
            let sampler: Sampler = Box::new(move |debug| {
                let f = if debug {
                    EnvFilter::new("debug")
                } else {
                    filter()
                };
                let _ = handle.reload(f);
            });
            let _ = SAMPLER.set(sampler);
            // Span fields as JSON, and one line when each span closes, with
            // its duration (`time.busy`, `time.idle`): a step
            // (`sluice.pipeline.step`) or a destination
            // (`sluice.dispatch.send`), at debug level.
            let fmt = tracing_subscriber::fmt::layer()
                .fmt_fields(JsonFields::new())
                .with_span_events(FmtSpan::CLOSE)
                .event_format(Powertools::from_env())
                .with_writer(std::io::stdout);
            tracing_subscriber::registry()
                .with(fmt.with_filter(layer))
                .try_init()
                .map_err(|e| e.to_string())
        }
        (Mode::Lambda, false) => tracing_subscriber::fmt()
            .with_env_filter(filter())
            .try_init()
            .map_err(|e| e.to_string()),
        (Mode::Cli { .. }, true) => tracing_subscriber::fmt()
            .with_env_filter(filter())
            .json()
            .with_current_span(false)
            .with_writer(std::io::stderr)
            .try_init()
            .map_err(|e| e.to_string()),
        (Mode::Cli { .. }, false) => tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            .try_init()
            .map_err(|e| e.to_string()),
    };
    // Already installed (tests call this more than once): keep the first.
    drop(result);
}

/// Formats each event as one JSON object with Powertools Logger's keys.
pub struct Powertools {
    service: String,
    function_name: Option<String>,
    function_memory_size: Option<u64>,
}

impl Powertools {
    /// The formatter for this Lambda function (its name and memory size
    /// from the Lambda environment).
    pub fn from_env() -> Powertools {
        Powertools {
            service: std::env::var("POWERTOOLS_SERVICE_NAME")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "sluice".into()),
            function_name: std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok(),
            function_memory_size: std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
                .ok()
                .and_then(|m| m.parse().ok()),
        }
    }
}

/// An event's fields as JSON values.
#[derive(Default)]
struct Fields(serde_json::Map<String, serde_json::Value>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

impl<S, N> FormatEvent<S, N> for Powertools
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut line = fields.0;
        // The innermost span (a step, a destination): its name and fields.
        if let Some(span) = ctx.event_scope().and_then(|mut scope| scope.next()) {
            line.insert("span".into(), span.name().into());
            let extensions = span.extensions();
            let span_fields = extensions
                .get::<FormattedFields<N>>()
                .and_then(|f| serde_json::from_str::<serde_json::Value>(f).ok());
            if let Some(serde_json::Value::Object(map)) = span_fields {
                for (k, v) in map {
                    line.entry(k).or_insert(v);
                }
            }
        }
        let message = line.remove("message").unwrap_or_default();
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("message".into(), message);
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .into(),
        );
        line.insert("service".into(), self.service.clone().into());
        line.insert("target".into(), meta.target().into());
        if let Some(name) = &self.function_name {
            line.insert("function_name".into(), name.clone().into());
        }
        if let Some(size) = self.function_memory_size {
            line.insert("function_memory_size".into(), size.into());
        }
        let current = CURRENT.read().unwrap_or_else(|p| p.into_inner());
        match &*current {
            Some(inv) => {
                line.insert("cold_start".into(), inv.cold_start.into());
                line.insert("function_arn".into(), inv.function_arn.clone().into());
                line.insert("function_request_id".into(), inv.request_id.clone().into());
                if let Some(trace) = &inv.xray_trace_id {
                    line.insert("xray_trace_id".into(), trace.clone().into());
                }
            }
            // Before the first invocation: the cold start itself.
            None => {
                line.insert("cold_start".into(), true.into());
            }
        }
        drop(current);
        let text = serde_json::to_string(&line).map_err(|_| std::fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_follows_the_rate_and_the_request_id() {
        let ids: Vec<String> = (0..10_000).map(|i| format!("req-{i}")).collect();
        let share = |rate| ids.iter().filter(|id| sampled(id, rate)).count();
        assert_eq!(share(0.0), 0);
        assert_eq!(share(1.0), ids.len());
        let tenth = share(0.1);
        assert!((800..1200).contains(&tenth), "{tenth}");
        assert_eq!(sampled("req-7", 0.5), sampled("req-7", 0.5));
    }

    #[test]
    fn control_characters_are_escaped_into_one_line() {
        let forged = "ok\n{\"_aws\":{\"CloudWatchMetrics\":[]}}\r\u{1b}[2J";
        let escaped = escape_controls(forged);
        assert!(!escaped.contains(['\n', '\r', '\u{1b}']), "{escaped}");
        assert_eq!(
            escaped,
            "ok\\n{\"_aws\":{\"CloudWatchMetrics\":[]}}\\r\\u{1b}[2J"
        );
        assert!(matches!(escape_controls("plain"), Cow::Borrowed("plain")));
    }
}
