//! The pipeline config: TOML in, a validated [`Plan`] out.
//!
//! [`raw`] holds the serde types, one per TOML table, with
//! `deny_unknown_fields` everywhere; [`parse`] [`validate`]s it into a
//! [`Plan`] in which every reference is resolved (the default route names a
//! defined destination, names are unique, plugin locations are resolved
//! against the config's). Validation is pure; [`load`] reads a local config
//! and checks that its plugin files exist. Each destination kind's table and
//! rules live in its own module under [`destination`].
//!
//! Errors name the file, the field path and what was expected, e.g.
//! ``pipeline.toml: steps[1] (`redact`): plugin `./redact.wasm` does not exist``.

pub mod destination;
pub mod location;
pub mod raw;
pub mod schema;
pub mod template;
mod validate;

use std::path::Path;

pub use destination::DestinationKind;
pub use destination::Format;
pub use location::Location;
pub use raw::{
    Decompress, Limits, MAX_WINDOW_STATE_BYTES, Metrics, OnError, Source, SourceFormat, StepKind,
};
pub use template::Template;

use crate::pattern::Filters;
use validate::{default_on_error, find_destination, names_of};
pub use validate::{parse_sha256, validate};

/// Something is wrong with a pipeline config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read pipeline config `{source_name}`: {error}")]
    Read {
        /// The config's location.
        source_name: String,
        /// Why.
        error: String,
    },
    /// The file is not valid TOML, or does not match the schema.
    #[error("{source_name}: {message}")]
    Parse {
        /// The config's location.
        source_name: String,
        /// The parser's message, with line, column and field.
        message: String,
    },
    /// The config parsed but a rule across fields is broken.
    #[error("{source_name}: {field}: {message}")]
    Invalid {
        /// The config's location.
        source_name: String,
        /// Where: a field path such as ``steps[1] (`redact`).plugin``.
        field: String,
        /// What is wrong and what was expected.
        message: String,
    },
}

/// A validated pipeline: what the runtime is built from.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Where the config came from.
    pub source: Location,
    /// Whether the config is as well protected as the function's code: read
    /// from a local file (the deployment package, a layer, your own disk), or
    /// from S3 with the SHA-256 that the function's environment pins
    /// (`SLUICE_CONFIG_SHA256`). Only a trusted config may name precompiled
    /// artifacts (native code) in S3.
    pub trusted: bool,
    /// How the stream's payloads are read before the first step (`[source]`).
    pub stream: raw::Source,
    /// The pre-filter (`[source] filters`), run after `stream` is read and
    /// before the first step.
    pub filters: Filters,
    /// The metrics each invocation prints (`[metrics]`).
    pub metrics: raw::Metrics,
    /// The steps, in order.
    pub steps: Vec<StepPlan>,
    /// The lookup tables (`[tables.<name>]`), by name.
    pub tables: Vec<TablePlan>,
    /// The destinations, sorted by name; a [`DestinationId`] indexes this.
    pub destinations: Vec<DestinationPlan>,
    /// Where records go when no `route` step chose for them.
    pub default_destination: Option<DestinationId>,
    /// Where failed records go under `on_error = "dead-letter"`.
    pub dead_letter: Option<DestinationId>,
}

/// Index of a destination in [`Plan::destinations`].
pub type DestinationId = usize;

/// One validated step.
#[derive(Debug, Clone)]
pub struct StepPlan {
    /// The step's unique name.
    pub name: String,
    /// Which world its plugin implements.
    pub kind: StepKind,
    /// Where the plugin's component is.
    pub plugin: Location,
    /// `plugin` as the config wrote it, when it reaches outside the
    /// config's own S3 prefix to a local file (an absolute path, or `..`
    /// above the config's folder): only a pinned config may do that (see
    /// [`Plan::check_unpinned`]).
    pub reaches_out: Option<String>,
    /// The expected SHA-256 of the component, if pinned.
    pub sha256: Option<[u8; 32]>,
    /// The step's `config` table as JSON text, handed to the plugin's `init`.
    pub settings_json: String,
    /// The plugin's sandbox limits.
    pub limits: Limits,
    /// What becomes of a record this step fails.
    pub on_error: OnError,
    /// `deterministic = true`: in each call, the plugin's wall clock
    /// (`wasi:clocks/wall-clock`) is stopped at the arrival time of the
    /// call's first record, and its randomness (`wasi:random`) comes from a
    /// generator seeded with the step's name and that record's shard and
    /// sequence number. A call on the same records sees the same clock and
    /// the same bytes, so a plugin whose outputs depend on them still makes
    /// the same outputs when Lambda retries the batch.
    pub deterministic: bool,
    /// An `aggregate` step: where its windows' outputs go, and the most
    /// bytes of state a window may hold (`limits.max_state_bytes`, or its
    /// share of Lambda's 1 MB). `None` for the other kinds.
    pub aggregate: Option<AggregatePlan>,
    /// The step's shadow: a candidate plugin compared with it, never
    /// delivered (see [`raw::Shadow`]).
    pub shadow: Option<ShadowPlan>,
    /// The tables its plugin may read (indexes into [`Plan::tables`]).
    pub tables: Vec<usize>,
}

/// A validated `[tables.<name>]`.
#[derive(Debug, Clone)]
pub struct TablePlan {
    /// The table's name.
    pub name: String,
    /// Where its file is.
    pub source: Location,
    /// `source` as written, when it reaches outside the config's own S3
    /// prefix to a local file (as a step's plugin may only when pinned).
    pub reaches_out: Option<String>,
    /// How the file is written.
    pub format: crate::table::TableFormat,
    /// The key field or column.
    pub key: String,
    /// The expected SHA-256 of the file, if pinned.
    pub sha256: Option<[u8; 32]>,
    /// The steps that may read it (indexes into [`Plan::steps`]).
    pub steps: Vec<usize>,
    /// The most bytes the loaded table may take.
    pub max_bytes: usize,
    /// How old it may get in a warm function before it is loaded again.
    pub refresh: Option<std::time::Duration>,
    /// What a duplicate key means.
    pub duplicates: crate::table::Duplicates,
}

/// A step's validated `shadow`.
#[derive(Debug, Clone)]
pub struct ShadowPlan {
    /// The candidate as a step of its own: named `<step>.shadow`, of the
    /// step's kind, with its own plugin, pin, settings and limits.
    pub step: Box<StepPlan>,
    /// The most of the invocation's time left that one shadow call may take.
    pub time_share: f64,
}

/// What an `aggregate` step adds to a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregatePlan {
    /// The destinations of its windows' outputs.
    pub destinations: Vec<DestinationId>,
    /// The most bytes of state one window may hold.
    pub max_state_bytes: usize,
}

/// One validated destination.
#[derive(Debug, Clone)]
pub struct DestinationPlan {
    /// The destination's name (its key under `[destinations]`).
    pub name: String,
    /// What it is.
    pub kind: DestinationKind,
}

impl Plan {
    /// The least-privilege IAM policy document the function's role needs to
    /// deliver to this pipeline's destinations: one statement per AWS
    /// destination (`Sid` from its name), with only the actions its kind
    /// uses, on its resource alone.
    pub fn iam_policy(&self, account: destination::iam::Account<'_>) -> serde_json::Value {
        let statements: Vec<serde_json::Value> = self
            .destinations
            .iter()
            .flat_map(|d| {
                let sid: String = std::iter::once("Deliver".to_owned())
                    .chain(d.name.split(|c: char| !c.is_ascii_alphanumeric()).map(|w| {
                        let mut c = w.chars();
                        c.next()
                            .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                            .unwrap_or_default()
                    }))
                    .collect();
                d.kind.permissions(account).into_iter().map(move |p| {
                    serde_json::json!({
                        "Sid": sid,
                        "Effect": "Allow",
                        "Action": p.actions,
                        "Resource": p.resource,
                    })
                })
            })
            .collect();
        serde_json::json!({"Version": "2012-10-17", "Statement": statements})
    }

    /// The destination called `name`.
    pub fn destination(&self, name: &str) -> Option<DestinationId> {
        find_destination(&self.destinations, name)
    }

    /// The names of all destinations, comma-separated, for error messages.
    pub fn destination_names(&self) -> String {
        names_of(&self.destinations)
    }

    /// The policy for records that fail outside any step (undecodable
    /// records, routing): dead-letter when a dead-letter destination is set.
    pub fn default_on_error(&self) -> OnError {
        default_on_error(self.dead_letter)
    }
}

impl Plan {
    /// Checks that every plugin given as a local file exists, so that a typo
    /// fails with the step's name before anything is loaded. (Reads the file
    /// system: [`validate`] does not.)
    pub fn check_local_plugins(&self) -> Result<(), ConfigError> {
        let base = match &self.source {
            Location::File(path) => path.parent().unwrap_or(Path::new("")),
            Location::S3 { .. } => Path::new(""),
        };
        for (i, step, field) in self.plugin_steps() {
            let Location::File(file) = &step.plugin else {
                continue;
            };
            if file.is_file() {
                continue;
            }
            // As written in the config: relative to its folder.
            let full = file.display().to_string();
            let written = full
                .strip_prefix(&format!("{}/", base.display()))
                .unwrap_or(&full);
            return Err(ConfigError::Invalid {
                source_name: self.source.to_string(),
                field: format!("steps[{i}] (`{}`).{field}", self.steps[i].name),
                message: format!("plugin `{written}` does not exist (resolved to `{full}`)"),
            });
        }
        for table in &self.tables {
            let Location::File(file) = &table.source else {
                continue;
            };
            if !file.is_file() {
                return Err(ConfigError::Invalid {
                    source_name: self.source.to_string(),
                    field: format!("tables.{}.source", table.name),
                    message: format!("table file `{}` does not exist", file.display()),
                });
            }
        }
        Ok(())
    }

    /// Refuses what a config from S3 without a pin (`SLUICE_CONFIG_SHA256`)
    /// may not do: name a plugin by an absolute local path, or by a relative
    /// path that climbs out of the config's own S3 prefix. Whoever can write
    /// that prefix may choose plugins and destinations, never make the
    /// function read its own files (`/proc/self/environ` holds its
    /// credentials). Plugins in S3 (any bucket the function's role may
    /// read) and paths inside the config's prefix are fine.
    pub fn check_unpinned(&self) -> Result<(), ConfigError> {
        let Location::S3 { bucket, key } = &self.source else {
            return Ok(());
        };
        let folder = key
            .rsplit_once('/')
            .map_or(String::new(), |(d, _)| format!("{d}/"));
        for (i, step, field) in self.plugin_steps() {
            let Some(written) = &step.reaches_out else {
                continue;
            };
            return Err(ConfigError::Invalid {
                source_name: self.source.to_string(),
                field: format!("steps[{i}] (`{}`).{field}", self.steps[i].name),
                message: format!(
                    "`{written}` reaches outside the config's own S3 prefix \
                     (`s3://{bucket}/{folder}`), but the config is not pinned \
                     (`SLUICE_CONFIG_SHA256`): an unpinned config from S3 may name plugins only \
                     in S3 (`s3://…`) or by a path inside its prefix. Pin the config, or upload \
                     the plugin beside it"
                ),
            });
        }
        if let Some(table) = self.tables.iter().find(|t| t.reaches_out.is_some()) {
            return Err(ConfigError::Invalid {
                source_name: self.source.to_string(),
                field: format!("tables.{}.source", table.name),
                message: format!(
                    "`{}` reaches outside the config's own S3 prefix (`s3://{bucket}/{folder}`), \
                     but the config is not pinned (`SLUICE_CONFIG_SHA256`): an unpinned config \
                     from S3 may name tables only in S3 or inside its prefix",
                    table.reaches_out.as_deref().unwrap_or_default()
                ),
            });
        }
        Ok(())
    }

    /// Every plugin the pipeline loads, in load order: each step's, then its
    /// shadow's; with the step's index and the field that names it.
    pub fn plugin_steps(&self) -> impl Iterator<Item = (usize, &StepPlan, &'static str)> {
        self.steps.iter().enumerate().flat_map(|(i, s)| {
            std::iter::once((i, s, "plugin"))
                .chain(s.shadow.as_ref().map(|sh| (i, &*sh.step, "shadow.plugin")))
        })
    }

    /// The policy for a record with an output that a destination would refuse
    /// every time (class `contract`): the `on_error` of the last step, the one
    /// that handed it to its destinations, or [`Plan::default_on_error`] when
    /// there are no steps.
    pub fn delivery_on_error(&self) -> OnError {
        self.steps
            .last()
            .map_or_else(|| self.default_on_error(), |s| s.on_error)
    }
}

/// Reads, parses and validates the pipeline config at `path`, and checks
/// that its local plugin files exist ([`Plan::check_local_plugins`]).
pub fn load(path: &Path) -> Result<Plan, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        source_name: path.display().to_string(),
        error: error.to_string(),
    })?;
    let plan = parse(&text, &Location::File(path.to_owned()))?;
    plan.check_local_plugins()?;
    Ok(plan)
}

/// Parses and validates config `text`; `origin` names it in errors and is the
/// base for relative references. Pure: nothing is read (see [`load`]).
pub fn parse(text: &str, origin: &Location) -> Result<Plan, ConfigError> {
    let raw: raw::Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
        source_name: origin.to_string(),
        message: e.to_string().trim_end().to_owned(),
    })?;
    validate(raw, origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text, &Location::File("/nonexistent/pipeline.toml".into()))
            .unwrap_err()
            .to_string()
    }

    fn missing_plugin_err(text: &str) -> String {
        let plan = parse(text, &Location::File("/nonexistent/pipeline.toml".into())).unwrap();
        plan.check_local_plugins().unwrap_err().to_string()
    }

    #[test]
    fn the_iam_policy_grants_each_destination_its_kinds_actions_on_it_alone() {
        let text = r#"
[destinations.orders-queue]
type = "sqs"
queue_url = "https://sqs.eu-west-1.amazonaws.com/111122223333/orders.fifo"
[destinations.archive]
type = "s3"
bucket = "acme-archive"
key = "clicks/{shard}/{first_seq}.jsonl"
[destinations.next]
type = "kinesis"
stream = "clicks-enriched"
[destinations.lake]
type = "firehose"
delivery_stream = "clicks-to-lake"
[destinations.bus]
type = "eventbridge"
source = "s"
detail_type = "d"
[destinations.topic]
type = "sns"
topic_arn = "arn:aws:sns:eu-west-1:111122223333:clicks"
[destinations.table]
type = "dynamodb"
table = "arn:aws:dynamodb:eu-west-1:111122223333:table/clicks"
[destinations.local]
type = "stdout"
[routing]
default = "local"
"#;
        let plan = parse(text, &Location::File("/p/pipeline.toml".into())).unwrap();
        let account = destination::iam::Account {
            partition: "aws",
            region: "eu-west-1",
            account: "111122223333",
        };
        let policy = plan.iam_policy(account);
        let got: Vec<(String, Vec<String>, String)> = policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["Sid"].as_str().unwrap().to_owned(),
                    s["Action"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|a| a.as_str().unwrap().to_owned())
                        .collect(),
                    s["Resource"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let want = [
            (
                "DeliverOrdersQueue",
                &["sqs:SendMessage", "sqs:GetQueueAttributes"][..],
                "arn:aws:sqs:eu-west-1:111122223333:orders.fifo",
            ),
            (
                "DeliverArchive",
                &["s3:PutObject"],
                "arn:aws:s3:::acme-archive/clicks/*",
            ),
            (
                "DeliverNext",
                &["kinesis:PutRecords"],
                "arn:aws:kinesis:eu-west-1:111122223333:stream/clicks-enriched",
            ),
            (
                "DeliverLake",
                &["firehose:PutRecordBatch"],
                "arn:aws:firehose:eu-west-1:111122223333:deliverystream/clicks-to-lake",
            ),
            (
                "DeliverBus",
                &["events:PutEvents"],
                "arn:aws:events:eu-west-1:111122223333:event-bus/default",
            ),
            (
                "DeliverTopic",
                &["sns:Publish"],
                "arn:aws:sns:eu-west-1:111122223333:clicks",
            ),
            (
                "DeliverTable",
                &["dynamodb:BatchWriteItem", "dynamodb:DescribeTable"],
                "arn:aws:dynamodb:eu-west-1:111122223333:table/clicks",
            ),
        ];
        // Destinations come in name order.
        let mut want: Vec<(String, Vec<String>, String)> = want
            .iter()
            .map(|(s, a, r)| {
                (
                    s.to_string(),
                    a.iter().map(|a| a.to_string()).collect(),
                    r.to_string(),
                )
            })
            .collect();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(policy["Version"], "2012-10-17");
    }

    #[test]
    fn unknown_field_is_named_with_its_line() {
        let e = err("[destinations.out]\ntype = \"stdout\"\nfromat = \"raw\"\n");
        assert!(e.contains("unknown field `fromat`"), "{e}");
        // Tagged tables are buffered, so the parser points at the table header.
        assert!(e.contains("[destinations.out]"), "{e}");
        assert!(e.starts_with("/nonexistent/pipeline.toml:"), "{e}");
    }

    #[test]
    fn missing_plugin_file_names_step_and_path() {
        let e = missing_plugin_err(
            "[[steps]]\nname = \"redact\"\nkind = \"transform\"\nplugin = \"./redact.wasm\"\n\
             [destinations.out]\ntype = \"stdout\"\n",
        );
        assert!(e.contains("steps[0] (`redact`).plugin"), "{e}");
        assert!(e.contains("plugin `./redact.wasm` does not exist"), "{e}");
    }

    #[test]
    fn default_route_must_name_a_defined_destination() {
        let e = err(
            "[destinations.out]\ntype = \"stdout\"\n[destinations.b]\ntype = \"stdout\"\n\
             [routing]\ndefault = \"archive\"\n",
        );
        assert!(e.contains("routing.default"), "{e}");
        assert!(
            e.contains("`archive`, which is not defined (defined: `b`, `out`)"),
            "{e}"
        );
    }

    #[test]
    fn wrong_kind_lists_the_choices() {
        let e = err("[[steps]]\nname = \"x\"\nkind = \"map\"\nplugin = \"x.wasm\"\n");
        assert!(e.contains("unknown variant `map`"), "{e}");
        assert!(e.contains("filter"), "{e}");
    }

    #[test]
    fn bad_sha256_is_named() {
        assert!(parse_sha256("abc").unwrap_err().contains("64 hex digits"));
        assert_eq!(parse_sha256(&"ab".repeat(32)).unwrap(), [0xab; 32]);
    }

    #[test]
    fn two_s3_destinations_cannot_write_the_same_keys() {
        let s3 = |name: &str, key: &str| {
            format!("[destinations.{name}]\ntype = \"s3\"\nbucket = \"b\"\nkey = \"{key}\"\n")
        };
        let text = format!(
            "{}{}[routing]\ndefault = \"one\"\n",
            s3("one", "x/{shard}-{first_seq}.jsonl"),
            s3("two", "x/{shard}-{first_seq}.jsonl")
        );
        let e = err(&text);
        assert!(e.contains("destinations.two.key"), "{e}");
        assert!(
            e.contains(
                "destinations `one` (`x/{shard}-{first_seq}.jsonl`) and `two` \
                 (`x/{shard}-{first_seq}.jsonl`) can write the same object of `s3://b`"
            ),
            "{e}"
        );
        let apart = format!(
            "{}{}[routing]\ndefault = \"one\"\n",
            s3("one", "{destination}/{shard}-{first_seq}.jsonl"),
            s3("two", "{destination}/{shard}-{first_seq}.jsonl")
        );
        parse(&apart, &Location::File("p.toml".into())).unwrap();
        let other_key = format!(
            "{}{}[routing]\ndefault = \"one\"\n",
            s3("one", "a/{shard}-{first_seq}.jsonl"),
            s3("two", "b/{shard}-{first_seq}.jsonl")
        );
        parse(&other_key, &Location::File("p.toml".into())).unwrap();
    }

    #[test]
    fn single_destination_is_the_default() {
        let plan = parse(
            "[destinations.out]\ntype = \"stdout\"\n",
            &Location::File("p.toml".into()),
        )
        .unwrap();
        assert_eq!(plan.default_destination, Some(0));
    }

    #[test]
    fn an_unpinned_config_from_s3_cannot_name_local_files() {
        let origin = Location::parse("s3://b/pipelines/clicks/pipeline.toml").unwrap();
        let config = |plugin: &str| {
            format!(
                "[[steps]]\nname = \"x\"\nkind = \"filter\"\nplugin = \"{plugin}\"\n\
                 [destinations.out]\ntype = \"stdout\"\n[routing]\ndefault = \"out\"\n"
            )
        };
        for bad in [
            "/proc/self/environ",
            "../secrets.wasm",
            "a/../../b.wasm",
            "./../x.wasm",
        ] {
            let plan = parse(&config(bad), &origin).unwrap();
            let e = plan.check_unpinned().unwrap_err().to_string();
            assert!(
                e.contains("steps[0] (`x`).plugin")
                    && e.contains(&format!("`{bad}` reaches outside the config's own S3 prefix (`s3://b/pipelines/clicks/`)")),
                "{bad}: {e}"
            );
        }
        for good in [
            "p.wasm",
            "plugins/p.wasm",
            "a/../p.wasm",
            "s3://other/p.wasm",
        ] {
            let plan = parse(&config(good), &origin).unwrap();
            plan.check_unpinned().unwrap();
        }
        // A local config is as trusted as the files beside it.
        let plan = parse(&config("/opt/p.wasm"), &Location::File("p.toml".into())).unwrap();
        plan.check_unpinned().unwrap();
    }
}
