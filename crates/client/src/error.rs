//! What can go wrong, typed: the service refusing a request (a bug to fix)
//! apart from the service failing (which the on-error policy answers).

use std::sync::Arc;
use std::time::Duration;
use tonic::{Code, Status};

/// An error of [`Client::check`](crate::Client::check), or the failure an
/// [`OnError`](crate::OnError) policy decided for.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// INVALID_ARGUMENT: the message starts with the offending field
    /// (`limits[0].rate: ...`).
    #[error("ratelimitd refused the request: {0}")]
    InvalidArgument(String),
    /// FAILED_PRECONDITION: limits declared in a domain that does not accept
    /// them.
    #[error("ratelimitd refused the request: {0}")]
    FailedPrecondition(String),
    /// UNAUTHENTICATED or PERMISSION_DENIED: the service does not know the
    /// caller (no or an unknown bearer token or client certificate), or its
    /// identity may not check the domain or declare limits. The message
    /// says which.
    #[error("ratelimitd refused the caller: {0}")]
    Unauthorized(String),
    /// The service could not decide: UNAVAILABLE (also how connection
    /// errors arrive), DEADLINE_EXCEEDED, or any other status but the
    /// three above.
    #[error("ratelimitd could not decide: {}: {}", .0.code(), .0.message())]
    Unavailable(Status),
    /// No answer within the client's deadline.
    #[error("ratelimitd did not answer within {0:?}")]
    DeadlineExceeded(Duration),
    /// Not called: the client's circuit breaker is open.
    #[error("ratelimitd was not called: the client's circuit breaker is open")]
    BreakerOpen,
    /// The bearer token given to the builder is not printable ASCII.
    #[error("the bearer token is not printable ASCII")]
    InvalidToken,
    /// The address given to the builder is not a URI.
    #[error("invalid ratelimitd address {0:?}")]
    InvalidUri(String),
    /// [`ClientBuilder::connect`](crate::ClientBuilder::connect) could not
    /// connect.
    #[error("cannot connect to ratelimitd: {0}")]
    Connect(#[source] Arc<tonic::transport::Error>),
}

impl Error {
    /// True when the service failed (rather than refused the request): the
    /// errors the on-error policy decides for.
    pub fn is_service_failure(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_) | Self::DeadlineExceeded(_) | Self::BreakerOpen
        )
    }
}

impl From<Status> for Error {
    /// INVALID_ARGUMENT, FAILED_PRECONDITION, UNAUTHENTICATED and
    /// PERMISSION_DENIED are answers about the request or its caller; every
    /// other status means the service failed to decide (the same split in
    /// every ratelimitd client).
    fn from(status: Status) -> Self {
        match status.code() {
            Code::InvalidArgument => Self::InvalidArgument(status.message().to_string()),
            Code::FailedPrecondition => Self::FailedPrecondition(status.message().to_string()),
            Code::Unauthenticated | Code::PermissionDenied => {
                Self::Unauthorized(status.message().to_string())
            }
            _ => Self::Unavailable(status),
        }
    }
}
