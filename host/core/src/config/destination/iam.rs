//! What each destination kind needs from IAM: the actions and the resource
//! of its least-privilege statement, for `sluice iam` and the deploy
//! template.

/// Where the function runs, to write a resource ARN from a bare name.
/// `*` is a wildcard (any region, any account).
#[derive(Debug, Clone, Copy)]
pub struct Account<'a> {
    /// `aws`, `aws-cn`, `aws-us-gov`.
    pub partition: &'a str,
    /// The region, or `*`.
    pub region: &'a str,
    /// The account id, or `*`.
    pub account: &'a str,
}

impl Account<'_> {
    /// `arn:<partition>:<service>:<region>:<account>:<resource>`.
    pub fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:{}:{service}:{}:{}:{resource}",
            self.partition, self.region, self.account
        )
    }
}

/// One IAM statement a destination needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    /// The actions, e.g. `sqs:SendMessage`.
    pub actions: Vec<&'static str>,
    /// The resource ARN.
    pub resource: String,
}

impl Permission {
    /// `actions` on `resource`.
    pub fn new(actions: &[&'static str], resource: impl Into<String>) -> Permission {
        Permission {
            actions: actions.to_vec(),
            resource: resource.into(),
        }
    }
}

/// `name` when it is an ARN already, else the ARN `account` makes of it.
pub fn arn_or(name: &str, account: Account<'_>, service: &str, kind: &str) -> String {
    if name.starts_with("arn:") {
        name.to_owned()
    } else {
        account.arn(service, &format!("{kind}{name}"))
    }
}
