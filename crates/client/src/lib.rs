//! A client of [ratelimitd](https://github.com/ratelimitd/ratelimitd)'s
//! `CheckLimit`: ask whether a request may go through, with a deadline, a
//! circuit breaker and a chosen behaviour when the service is down; and,
//! with the `tower` feature, a [`RateLimitLayer`] for axum and other tower
//! HTTP servers.
//!
//! ```no_run
//! use ratelimitd_client::{CheckLimitRequest, Client, Limit, OnError};
//! # async fn run() -> Result<(), ratelimitd_client::Error> {
//! let client = Client::builder("localhost:8081").domain("web").on_error(OnError::Open).build()?;
//! let decision = client
//!     .check(CheckLimitRequest {
//!         peer_ip: "192.0.2.1".into(),
//!         limits: vec![Limit::new("views.login", "5/m").key("ip").into()],
//!         ..Default::default()
//!     })
//!     .await?;
//! if !decision.allowed {
//!     println!("429, retry in {:?}", decision.retry_after);
//! }
//! # Ok(()) }
//! ```
//!
//! The limits a request declares are decided by the service together with
//! its policy's rules, atomically; the policy's `declared:` section must
//! accept the domain, and its overrides win.
//!
//! **When the service fails** (UNAVAILABLE, which is also how connection
//! errors arrive, DEADLINE_EXCEEDED, no answer within the deadline, or any
//! other status but two) the [`OnError`] policy decides, and the decision
//! says [`Source::Fallback`], `degraded`, with the error. INVALID_ARGUMENT
//! and FAILED_PRECONDITION are an [`Error`]: a bug to fix, never hidden by
//! the policy.
//! After `failure_threshold` consecutive failures the breaker opens: no
//! call for `recovery_timeout` (doubling after each failed probe, up to
//! `max_recovery_timeout`), one probe when half open; so while the service
//! is down the deadline is paid a bounded number of times.

mod breaker;
mod client;
mod decision;
mod denials;
mod error;
mod limit;
mod local;
#[cfg(feature = "tower")]
mod tower;

pub use breaker::BreakerState;
pub use client::{Client, ClientBuilder, OnError, OnErrorFn};
pub use decision::{Code, Decision, Source};
pub use error::Error;
pub use limit::Limit;
pub use ratelimitd_proto::v1::limit_status::{Algorithm, Failure};
pub use ratelimitd_proto::v1::{CheckLimitRequest, DeclaredLimit, DescriptorEntry, LimitStatus};
/// TLS settings for [`ClientBuilder::tls`] (tonic's, with rustls and ring).
pub use tonic::transport::{Certificate, ClientTlsConfig, Identity};
#[cfg(feature = "tower")]
pub use tower::{RateLimit, RateLimitLayer};
