//! The AWS SDK client and the small runtime that drives it, so that `Kms` stays synchronous.

use std::future::Future;
use std::time::Duration;

use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::config::{BehaviorVersion, Region};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

use super::AwsKmsOptions;
use crate::kms::KmsError;

/// First retry delay; the SDK's standard strategy doubles it per attempt, with full jitter.
pub(crate) const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
/// Cap on one retry delay.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A current-thread tokio runtime owned by one `AwsKms`. Callers on several threads may
/// block on it at once; tokio lets one of them drive I/O while the others wait.
pub(crate) struct Driver {
    /// `None` only during drop.
    rt: Option<tokio::runtime::Runtime>,
}

impl Driver {
    pub(crate) fn new() -> Result<Driver, KmsError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("sealdb-aws-kms")
            .build()
            .map_err(|e| {
                KmsError::Unavailable(format!("cannot start the AWS KMS client runtime: {e}"))
            })?;
        Ok(Driver { rt: Some(rt) })
    }

    /// Runs `fut` to completion on this runtime and returns its result.
    pub(crate) fn block_on<T: Send>(
        &self,
        fut: impl Future<Output = Result<T, KmsError>> + Send,
    ) -> Result<T, KmsError> {
        let rt = self
            .rt
            .as_ref()
            .ok_or_else(|| KmsError::Unavailable("the AWS KMS client is shut down".into()))?;
        if tokio::runtime::Handle::try_current().is_err() {
            return rt.block_on(fut);
        }
        // Called from inside the application's own tokio runtime, where blocking its thread
        // on another runtime would panic: drive the call from a short-lived helper thread.
        std::thread::scope(|s| s.spawn(|| rt.block_on(fut)).join()).unwrap_or_else(|_| {
            Err(KmsError::Unavailable(
                "the AWS KMS client thread panicked".into(),
            ))
        })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Dropping a runtime inside an async context panics; shutting down in the
        // background never does. Only idle pooled connections are left to close.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// The timeouts: each attempt (connect included) is bounded by `timeout`; the whole call,
/// retries and their backoff included, by `max_attempts * timeout + (max_attempts - 1) *
/// MAX_BACKOFF`.
pub(crate) fn timeout_config(opts: &AwsKmsOptions) -> TimeoutConfig {
    let attempts = opts.max_attempts.max(1);
    let total = opts
        .timeout
        .saturating_mul(attempts)
        .saturating_add(MAX_BACKOFF.saturating_mul(attempts - 1));
    TimeoutConfig::builder()
        .connect_timeout(opts.timeout)
        .operation_attempt_timeout(opts.timeout)
        .operation_timeout(total)
        .build()
}

/// Standard retries (throttling, 5xx, connection errors, timeouts) with backoff.
pub(crate) fn retry_config(opts: &AwsKmsOptions) -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(opts.max_attempts.max(1))
        .with_initial_backoff(INITIAL_BACKOFF)
        .with_max_backoff(MAX_BACKOFF)
}

/// Builds the SDK client: credentials and (unless given) the region from the standard
/// chain (environment variables, shared config and credentials files, SSO-less profiles,
/// web identity, container and instance metadata), over hyper + rustls (ring).
/// Returns the client and the region it resolved.
pub(crate) async fn connect(
    opts: &AwsKmsOptions,
) -> Result<(aws_sdk_kms::Client, String), KmsError> {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(timeout_config(opts))
        .retry_config(retry_config(opts));
    if let Some(region) = &opts.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(url) = &opts.endpoint_url {
        loader = loader.endpoint_url(url.clone());
    }
    let conf = loader.load().await;
    let region = conf.region().map(|r| r.to_string()).ok_or_else(|| {
        KmsError::InvalidArgument(
            "no AWS region: set AwsKmsOptions::region, AWS_REGION or a profile region".into(),
        )
    })?;
    Ok((aws_sdk_kms::Client::new(&conf), region))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_timeout_bounds_every_attempt_and_backoff() {
        let mut opts = AwsKmsOptions::new("alias/sealdb");
        opts.timeout = Duration::from_secs(2);
        opts.max_attempts = 3;
        let t = timeout_config(&opts);
        assert_eq!(t.connect_timeout(), Some(Duration::from_secs(2)));
        assert_eq!(t.operation_attempt_timeout(), Some(Duration::from_secs(2)));
        assert_eq!(t.operation_timeout(), Some(Duration::from_secs(6 + 10)));
        assert_eq!(retry_config(&opts).max_attempts(), 3);
        opts.max_attempts = 0;
        assert_eq!(
            timeout_config(&opts).operation_timeout(),
            Some(Duration::from_secs(2))
        );
        assert_eq!(retry_config(&opts).max_attempts(), 1);
    }

    #[test]
    fn block_on_works_inside_another_runtime() -> Result<(), KmsError> {
        let driver = Driver::new()?;
        assert_eq!(driver.block_on(async { Ok(7) })?, 7);
        let outer = Driver::new()?;
        let inner = outer.block_on(async { driver.block_on(async { Ok(8) }) })?;
        assert_eq!(inner, 8);
        Ok(())
    }
}
