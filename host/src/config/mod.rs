//! The pipeline config: TOML in, a validated [`Plan`] out.
//!
//! [`raw`] holds the serde types, one per TOML table, with
//! `deny_unknown_fields` everywhere; [`load`] reads a file, parses it and
//! [`validate`]s it into a [`Plan`] in which every reference is resolved
//! (plugin files exist, the default route names a defined destination, names
//! are unique). The runtime is built from the plan only.
//!
//! Errors name the file, the field path and what was expected, e.g.
//! ``pipeline.toml: steps[1] (`redact`): plugin `./redact.wasm` does not exist``.

pub mod raw;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use raw::{Format, StepKind};

/// Something is wrong with a pipeline config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read pipeline config `{}`: {error}", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not valid TOML, or does not match the schema.
    #[error("{}: {message}", path.display())]
    Parse {
        /// The config file.
        path: PathBuf,
        /// The parser's message, with line, column and field.
        message: String,
    },
    /// The config parsed but a rule across fields is broken.
    #[error("{}: {field}: {message}", path.display())]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// Where: a field path such as ``steps[1] (`redact`).plugin``.
        field: String,
        /// What is wrong and what was expected.
        message: String,
    },
}

/// A validated pipeline: what the runtime is built from.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The config file it came from.
    pub source: PathBuf,
    /// The steps, in order.
    pub steps: Vec<StepPlan>,
    /// The destinations, sorted by name; a [`DestinationId`] indexes this.
    pub destinations: Vec<DestinationPlan>,
    /// Where records go when no `route` step chose for them.
    pub default_destination: Option<DestinationId>,
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
    pub plugin: PluginSource,
    /// The expected SHA-256 of the component, if pinned.
    pub sha256: Option<[u8; 32]>,
    /// The step's `config` table as JSON text, handed to the plugin's `init`.
    pub settings_json: String,
}

/// Where a plugin's component comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// A file on the local disk, resolved against the config's directory.
    File(PathBuf),
}

impl std::fmt::Display for PluginSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginSource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// One validated destination.
#[derive(Debug, Clone)]
pub struct DestinationPlan {
    /// The destination's name (its key under `[destinations]`).
    pub name: String,
    /// What it is.
    pub kind: DestinationKind,
}

/// The kinds of destination, with their resolved settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationKind {
    /// A local file, one output per line; resolved against the config's directory.
    File {
        /// The file.
        path: PathBuf,
        /// How outputs are encoded.
        format: Format,
    },
    /// The process's standard output.
    Stdout {
        /// How outputs are encoded.
        format: Format,
    },
}

impl Plan {
    /// The destination called `name`.
    pub fn destination(&self, name: &str) -> Option<DestinationId> {
        self.destinations
            .binary_search_by(|d| d.name.as_str().cmp(name))
            .ok()
    }

    /// The names of all destinations, comma-separated, for error messages.
    pub fn destination_names(&self) -> String {
        let names: Vec<_> = self
            .destinations
            .iter()
            .map(|d| format!("`{}`", d.name))
            .collect();
        names.join(", ")
    }
}

/// Reads, parses and validates the pipeline config at `path`.
pub fn load(path: &Path) -> Result<Plan, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        error,
    })?;
    parse(&text, path)
}

/// Parses and validates config `text`; `path` names it in errors and is the
/// base for relative paths.
pub fn parse(text: &str, path: &Path) -> Result<Plan, ConfigError> {
    let raw: raw::Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })?;
    validate(raw, path)
}

/// Checks the rules that span fields and resolves every reference.
pub fn validate(raw: raw::Config, path: &Path) -> Result<Plan, ConfigError> {
    let base = path.parent().unwrap_or(Path::new("."));
    let invalid = |field: String, message: String| ConfigError::Invalid {
        path: path.to_owned(),
        field,
        message,
    };

    if raw.destinations.is_empty() {
        return Err(invalid(
            "destinations".into(),
            "no destination is defined; add at least one `[destinations.<name>]` table".into(),
        ));
    }
    let mut destinations = Vec::with_capacity(raw.destinations.len());
    for (name, dest) in raw.destinations {
        let field = format!("destinations.{name}");
        check_name(&name).map_err(|m| invalid(field.clone(), m))?;
        let kind = match dest {
            raw::Destination::File { path: file, format } => {
                if file.as_os_str().is_empty() {
                    return Err(invalid(format!("{field}.path"), "must not be empty".into()));
                }
                DestinationKind::File {
                    path: base.join(file),
                    format,
                }
            }
            raw::Destination::Stdout { format } => DestinationKind::Stdout { format },
        };
        destinations.push(DestinationPlan { name, kind });
    }
    // BTreeMap iteration order: already sorted by name.

    let mut steps = Vec::with_capacity(raw.steps.len());
    let mut seen = BTreeMap::new();
    for (i, step) in raw.steps.into_iter().enumerate() {
        let at = format!("steps[{i}] (`{}`)", step.name);
        check_name(&step.name).map_err(|m| invalid(format!("steps[{i}].name"), m))?;
        if let Some(first) = seen.insert(step.name.clone(), i) {
            return Err(invalid(
                format!("{at}.name"),
                format!(
                    "step name `{}` is already used by steps[{first}]",
                    step.name
                ),
            ));
        }
        if step.plugin.is_empty() {
            return Err(invalid(format!("{at}.plugin"), "must not be empty".into()));
        }
        let plugin = if let Some(rest) = step.plugin.strip_prefix("s3://") {
            return Err(invalid(
                format!("{at}.plugin"),
                format!(
                    "`s3://{rest}`: plugins from S3 are loaded by the Lambda function only; locally, name a file"
                ),
            ));
        } else {
            let file = base.join(&step.plugin);
            if !file.is_file() {
                return Err(invalid(
                    format!("{at}.plugin"),
                    format!(
                        "plugin `{}` does not exist (resolved to `{}`)",
                        step.plugin,
                        file.display()
                    ),
                ));
            }
            PluginSource::File(file)
        };
        let sha256 = step
            .sha256
            .as_deref()
            .map(parse_sha256)
            .transpose()
            .map_err(|m| invalid(format!("{at}.sha256"), m))?;
        let settings_json = serde_json::to_string(&step.config).map_err(|e| {
            invalid(
                format!("{at}.config"),
                format!("cannot be passed to the plugin as JSON: {e}"),
            )
        })?;
        steps.push(StepPlan {
            name: step.name,
            kind: step.kind,
            plugin,
            sha256,
            settings_json,
        });
    }

    let mut plan = Plan {
        source: path.to_owned(),
        steps,
        destinations,
        default_destination: None,
    };
    match raw.routing.default {
        Some(name) => {
            let id = plan.destination(&name).ok_or_else(|| {
                invalid(
                    "routing.default".into(),
                    format!(
                        "names destination `{name}`, which is not defined (defined: {})",
                        plan.destination_names()
                    ),
                )
            })?;
            plan.default_destination = Some(id);
        }
        None if plan.destinations.len() == 1 => plan.default_destination = Some(0),
        None if !plan.steps.iter().any(|s| s.kind == StepKind::Route) => {
            return Err(invalid(
                "routing.default".into(),
                "is required: there is no `route` step and more than one destination".into(),
            ));
        }
        None => {}
    }
    Ok(plan)
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid name: use 1 to 64 letters, digits, `-` or `_`"
        ))
    }
}

fn parse_sha256(hex: &str) -> Result<[u8; 32], String> {
    let bad = || format!("`{hex}` is not a SHA-256 digest: expected 64 hex digits");
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text, Path::new("/nonexistent/pipeline.toml"))
            .unwrap_err()
            .to_string()
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
        let e = err(
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
    fn single_destination_is_the_default() {
        let plan = parse(
            "[destinations.out]\ntype = \"stdout\"\n",
            Path::new("p.toml"),
        )
        .unwrap();
        assert_eq!(plan.default_destination, Some(0));
    }
}
