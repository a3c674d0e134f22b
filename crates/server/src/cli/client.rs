//! What every client command shares: a channel to the service, and the
//! service's or the transport's errors as plain sentences.

use tonic::transport::Channel;

/// A channel to `addr`, or a plain sentence saying why there is none.
pub async fn connect(addr: &str) -> anyhow::Result<Channel> {
    let unreachable = |cause: &dyn std::error::Error| {
        // The innermost cause says it best ("Connection refused ...");
        // the layers above repeat "transport error: tcp connect error".
        let mut innermost = cause;
        while let Some(source) = innermost.source() {
            innermost = source;
        }
        anyhow::anyhow!("cannot reach ratelimitd at {addr}: {innermost}")
    };
    Channel::from_shared(endpoint(addr))
        .map_err(|error| unreachable(&error))?
        .connect()
        .await
        .map_err(|error| unreachable(&error))
}

/// A call the service answered with an error, as a plain sentence.
pub fn refused(status: tonic::Status) -> anyhow::Error {
    match status.code() {
        tonic::Code::InvalidArgument => {
            anyhow::anyhow!("the request is invalid: {}", status.message())
        }
        code => anyhow::anyhow!("ratelimitd answered {code:?}: {}", status.message()),
    }
}

/// `http://` is added to a bare `host:port`.
fn endpoint(addr: &str) -> String {
    if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}
