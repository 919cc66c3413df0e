//! `type = "eventbridge"`: each output one event on an EventBridge bus, sent
//! with `PutEvents`.

use serde::Deserialize;

use super::Format;
use super::iam::{Account, Permission, arn_or};
use super::{Context, Invalid};
use crate::config::template::{ATTRIBUTE, Template};

/// Placeholders of the `source` and `detail_type` templates.
pub const PLACEHOLDERS: &[&str] = &["partition_key", "shard", ATTRIBUTE];

/// The `[destinations.<name>]` table of an `eventbridge` destination.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBridgeConfig {
    /// `event_bus = "default"`: the bus's name or ARN. Default `default`.
    #[serde(default = "default_bus")]
    pub event_bus: String,
    /// `source = "sluice.clickstream"`: each event's `source`, a template
    /// with `{partition_key}`, `{shard}` and `{attr:NAME}`.
    pub source: String,
    /// `detail_type = "{attr:kind}"`: each event's `detail-type`, a template
    /// like `source`.
    pub detail_type: String,
    /// `format = "raw" | "envelope"`: the `detail` is the output's JSON
    /// (`raw`, the default) or its envelope. Default `raw`.
    #[serde(default)]
    pub format: Format,
    /// `max_in_flight = 16`: `PutEvents` requests in flight at once.
    #[serde(default = "super::default_max_in_flight")]
    pub max_in_flight: usize,
}

fn default_bus() -> String {
    "default".into()
}

/// A validated `eventbridge` destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBridgePlan {
    /// The bus's name or ARN.
    pub event_bus: String,
    /// The `source` template.
    pub source: Template,
    /// The `detail-type` template.
    pub detail_type: Template,
    /// How the detail is made.
    pub format: Format,
    /// Requests in flight at once.
    pub max_in_flight: usize,
}

impl EventBridgePlan {
    /// `events:PutEvents` on the bus.
    pub fn permissions(&self, account: Account<'_>) -> Vec<Permission> {
        vec![Permission::new(
            &["events:PutEvents"],
            arn_or(&self.event_bus, account, "events", "event-bus/"),
        )]
    }
}

impl EventBridgeConfig {
    /// The bus must be a name (1–256 of `a-zA-Z0-9/_.-`) or an events ARN;
    /// `source` and `detail_type` templates with their placeholders only.
    pub fn validate(self, _: Context<'_>) -> Result<EventBridgePlan, Invalid> {
        let EventBridgeConfig {
            event_bus,
            source,
            detail_type,
            format,
            max_in_flight,
        } = self;
        let valid = if event_bus.starts_with("arn:") {
            event_bus.starts_with("arn:aws") && event_bus.contains(":events:")
        } else {
            (1..=256).contains(&event_bus.len())
                && event_bus
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'.' | b'-'))
        };
        if !valid {
            return Err(Invalid::new(
                "event_bus",
                format!(
                    "`{event_bus}` is not an event bus name (1 to 256 letters, digits, `/`, `_`, `.`, `-`) or an event bus ARN"
                ),
            ));
        }
        let source =
            Template::parse(&source, PLACEHOLDERS).map_err(|m| Invalid::new("source", m))?;
        let detail_type = Template::parse(&detail_type, PLACEHOLDERS)
            .map_err(|m| Invalid::new("detail_type", m))?;
        Ok(EventBridgePlan {
            event_bus,
            source,
            detail_type,
            format,
            max_in_flight: super::check_max_in_flight(max_in_flight)?,
        })
    }
}
