//! `type = "dynamodb"`: each output one item of a DynamoDB table, written
//! with `BatchWriteItem`.

use serde::Deserialize;

use super::Format;
use super::iam::{Account, Permission, arn_or};
use super::{Context, Invalid};

/// The `[destinations.<name>]` table of a `dynamodb` destination.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DynamoDbConfig {
    /// `table = "clicks"`: the table's name or ARN
    /// (`arn:aws:dynamodb:<region>:<account>:table/<name>`).
    pub table: String,
    /// `format = "raw" | "envelope"`: the item is the output's JSON object
    /// (`raw`, the default) or its envelope (lineage fields and the payload
    /// under `data`). Default `raw`.
    #[serde(default)]
    pub format: Format,
    /// `max_in_flight = 16`: `BatchWriteItem` requests in flight at once.
    #[serde(default = "super::default_max_in_flight")]
    pub max_in_flight: usize,
}

/// A validated `dynamodb` destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoDbPlan {
    /// The table's name, or its ARN.
    pub table: String,
    /// What the item is made from.
    pub format: Format,
    /// Requests in flight at once.
    pub max_in_flight: usize,
}

impl DynamoDbPlan {
    /// `dynamodb:BatchWriteItem` and `dynamodb:DescribeTable` (the key
    /// schema, read at cold start) on the table.
    pub fn permissions(&self, account: Account<'_>) -> Vec<Permission> {
        vec![Permission::new(
            &["dynamodb:BatchWriteItem", "dynamodb:DescribeTable"],
            arn_or(&self.table, account, "dynamodb", "table/"),
        )]
    }
}

impl DynamoDbConfig {
    /// The table must be a table name (3–255 of `a-zA-Z0-9_.-`) or a
    /// DynamoDB table ARN.
    pub fn validate(self, _: Context<'_>) -> Result<DynamoDbPlan, Invalid> {
        let DynamoDbConfig {
            table,
            format,
            max_in_flight,
        } = self;
        let name = match table.strip_prefix("arn:") {
            Some(_) => table
                .split_once(":table/")
                .filter(|(head, _)| head.starts_with("arn:aws") && head.contains(":dynamodb:"))
                .map(|(_, name)| name),
            None => Some(table.as_str()),
        };
        let valid = name.is_some_and(|n| {
            (3..=255).contains(&n.len())
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        });
        if !valid {
            return Err(Invalid::new(
                "table",
                format!(
                    "`{table}` is not a table name (3 to 255 letters, digits, `_`, `.`, `-`) or a table ARN (`arn:aws:dynamodb:<region>:<account>:table/<name>`)"
                ),
            ));
        }
        Ok(DynamoDbPlan {
            table,
            format,
            max_in_flight: super::check_max_in_flight(max_in_flight)?,
        })
    }
}
