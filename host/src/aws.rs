//! AWS clients, created once at cold start.
//!
//! They use the standard credential chain and region (environment, profile,
//! the Lambda execution role), honour `AWS_ENDPOINT_URL` (and the
//! per-service `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL_SQS`) for local
//! endpoints such as moto, switch S3 to path-style addressing when an
//! endpoint is set, and have explicit timeouts and retries so that no call
//! can hang an invocation.
//!
//! [`fetch`] reads what a config names (the config itself, a plugin, a
//! table) from disk or S3: the one way they are read.

use std::time::Duration;

use crate::config::Location;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;

/// Connecting to an AWS endpoint may take this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// One attempt of one call may take this long.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// One call, retries included, may take this long.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(15);
/// Attempts per call (the first one included) for transient errors.
pub const MAX_ATTEMPTS: u32 = 3;

/// The clients Sluice uses.
#[derive(Debug, Clone)]
pub struct Aws {
    /// S3: configs, plugins and the `s3` destination.
    pub s3: aws_sdk_s3::Client,
    /// SQS: the `sqs` destination.
    pub sqs: aws_sdk_sqs::Client,
    /// The shared configuration (region, credentials, endpoint, timeouts
    /// and retries) every other client is made from: a destination kind
    /// makes its own (`aws_sdk_kinesis::Client::new(&aws.shared)`).
    pub shared: std::sync::Arc<aws_config::SdkConfig>,
}

impl Aws {
    /// Loads the shared configuration from the environment and builds the clients.
    pub async fn from_env() -> Aws {
        Aws::build(aws_config::defaults(BehaviorVersion::latest())).await
    }

    /// Clients for an AWS-compatible endpoint (such as a local moto server)
    /// with static credentials: for tests and local runs.
    pub async fn for_endpoint(endpoint_url: &str, region: &str, access_key: &str) -> Aws {
        let credentials =
            aws_sdk_s3::config::Credentials::new(access_key, "secret", None, None, "sluice-static");
        Aws::build(
            aws_config::defaults(BehaviorVersion::latest())
                .endpoint_url(endpoint_url)
                .region(aws_config::Region::new(region.to_owned()))
                .credentials_provider(credentials),
        )
        .await
    }

    async fn build(loader: aws_config::ConfigLoader) -> Aws {
        let shared = loader
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .operation_timeout(OPERATION_TIMEOUT)
                    .build(),
            )
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(MAX_ATTEMPTS)
                    .with_initial_backoff(Duration::from_millis(100)),
            )
            .load()
            .await;
        let path_style =
            shared.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let s3 = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(path_style)
            .build();
        Aws {
            s3: aws_sdk_s3::Client::from_conf(s3),
            sqs: aws_sdk_sqs::Client::new(&shared),
            shared: std::sync::Arc::new(shared),
        }
    }

    /// Reads a whole S3 object.
    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
        let out = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| aws_sdk_s3::error::DisplayErrorContext(e).to_string())?;
        let body = out.body.collect().await.map_err(|e| e.to_string())?;
        Ok(body.into_bytes().to_vec())
    }
}

/// The AWS clients in `aws`, created from the environment the first time.
pub async fn clients(aws: &mut Option<Aws>) -> &Aws {
    if aws.is_none() {
        *aws = Some(Aws::from_env().await);
    }
    aws.as_ref().expect("just set")
}

/// Reads what `location` holds, from disk or S3 (creating the AWS clients in
/// `aws` the first time one is needed): the one way configs and plugins are
/// fetched.
pub async fn fetch(location: &Location, aws: &mut Option<Aws>) -> Result<Vec<u8>, String> {
    if matches!(location, Location::S3 { .. }) {
        clients(aws).await;
    }
    fetch_from(location, aws.as_ref()).await
}

/// Like [`fetch`], with the AWS clients already made (`None`: there are
/// none, and an S3 location is an error).
pub async fn fetch_from(location: &Location, aws: Option<&Aws>) -> Result<Vec<u8>, String> {
    match (location, aws) {
        (Location::File(path), _) => tokio::fs::read(path).await.map_err(|e| e.to_string()),
        (Location::S3 { bucket, key }, Some(aws)) => aws.get_object(bucket, key).await,
        (Location::S3 { .. }, None) => Err("no AWS clients were set up".into()),
    }
}
