//! What every client command shares: a channel to the service (TLS and a
//! bearer token as the command line says), and the service's or the
//! transport's errors as plain sentences.

use super::Target;
use anyhow::Context;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// A channel that sends the bearer token, if any, with every call.
pub type Connection = InterceptedService<Channel, Bearer>;

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A connection to `target`, or a plain sentence saying why there is none.
pub async fn connect(target: &Target) -> anyhow::Result<Connection> {
    let bearer = match &target.token {
        None => Bearer(None),
        Some(token) => Bearer(Some(
            format!("Bearer {token}")
                .parse()
                .context("the token is not printable ASCII")?,
        )),
    };
    let channel = channel(target).await?;
    Ok(InterceptedService::new(channel, bearer))
}

/// The TLS settings of `target`, when it asks for TLS.
fn tls(target: &Target) -> anyhow::Result<Option<ClientTlsConfig>> {
    let uses_tls =
        target.tls_ca.is_some() || target.tls_cert.is_some() || target.addr.starts_with("https://");
    if !uses_tls {
        return Ok(None);
    }
    let read = |path: &std::path::Path, what: &str| {
        std::fs::read(path).with_context(|| format!("cannot read the {what} {}", path.display()))
    };
    let mut tls = ClientTlsConfig::new();
    if let Some(ca) = &target.tls_ca {
        tls = tls.ca_certificate(Certificate::from_pem(read(ca, "CA file")?));
    }
    match (&target.tls_cert, &target.tls_key) {
        (Some(cert), Some(key)) => {
            tls = tls.identity(Identity::from_pem(
                read(cert, "client certificate")?,
                read(key, "client key")?,
            ));
        }
        (None, None) => {}
        _ => anyhow::bail!("--tls-cert and --tls-key go together"),
    }
    if let Some(name) = &target.tls_server_name {
        tls = tls.domain_name(name);
    }
    Ok(Some(tls))
}

async fn channel(target: &Target) -> anyhow::Result<Channel> {
    let addr = &target.addr;
    let tls = tls(target)?;
    let unreachable = |cause: &dyn std::error::Error| {
        // The innermost cause says it best ("Connection refused ...");
        // the layers above repeat "transport error: tcp connect error".
        let mut innermost = cause;
        while let Some(source) = innermost.source() {
            innermost = source;
        }
        anyhow::anyhow!("cannot reach ratelimitd at {addr}: {innermost}")
    };
    let mut endpoint =
        Channel::from_shared(endpoint(addr, tls.is_some())).map_err(|error| unreachable(&error))?;
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls)?;
    }
    endpoint
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

/// `http://` (`https://` with TLS) is added to a bare `host:port`.
fn endpoint(addr: &str, tls: bool) -> String {
    if addr.contains("://") {
        addr.to_string()
    } else if tls {
        format!("https://{addr}")
    } else {
        format!("http://{addr}")
    }
}
