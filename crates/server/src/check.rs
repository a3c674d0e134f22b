//! `ratelimitd check` and `inspect`: one CheckLimit (or Admin/Inspect) from
//! the shell.

use ratelimitd_proto::v1::admin_client::AdminClient;
use ratelimitd_proto::v1::rate_limiter_client::RateLimiterClient;
use ratelimitd_proto::v1::{
    check_limit_response::Code, limit_status::Failure, CheckLimitRequest, CheckLimitResponse,
    DescriptorEntry, InspectRequest,
};
use std::collections::HashMap;
use tonic::transport::Channel;

/// Splits `k=v`.
pub fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{text}` is not key=value"))
}

/// What to ask.
#[derive(Debug, Clone, Default)]
pub struct CheckInput {
    /// Policy domain.
    pub domain: String,
    /// Descriptor entries, in order.
    pub descriptors: Vec<(String, String)>,
    /// Client IP.
    pub client_ip: String,
    /// User.
    pub user: String,
    /// API key.
    pub api_key: String,
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Cost (absent: 1).
    pub cost: Option<u32>,
}

impl CheckInput {
    /// The gRPC request.
    pub fn to_request(&self) -> CheckLimitRequest {
        CheckLimitRequest {
            domain: self.domain.clone(),
            descriptors: self
                .descriptors
                .iter()
                .map(|(key, value)| DescriptorEntry {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
            client_ip: self.client_ip.clone(),
            user: self.user.clone(),
            api_key: self.api_key.clone(),
            method: self.method.clone(),
            path: self.path.clone(),
            headers: self.headers.iter().cloned().collect::<HashMap<_, _>>(),
            cost: self.cost,
        }
    }
}

/// Sends one CheckLimit to `addr` (`host:port` or a URL).
pub async fn check(addr: &str, input: &CheckInput) -> anyhow::Result<CheckLimitResponse> {
    let mut client = RateLimiterClient::new(connect(addr).await?);
    let response = client.check_limit(input.to_request()).await;
    Ok(response.map_err(refused)?.into_inner())
}

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

/// Asks `addr` for the counters `input` would touch (only `rule`'s, if
/// given), consuming nothing.
pub async fn inspect(
    addr: &str,
    input: &CheckInput,
    rule: Option<&str>,
) -> anyhow::Result<CheckLimitResponse> {
    let mut client = AdminClient::new(connect(addr).await?);
    let request = InspectRequest {
        request: Some(input.to_request()),
        rule: rule.unwrap_or_default().to_string(),
    };
    Ok(client.inspect(request).await.map_err(refused)?.into_inner())
}

/// `http://` is added to a bare `host:port`.
fn endpoint(addr: &str) -> String {
    if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

/// The response in the protobuf JSON mapping, as grpcurl and `POST
/// /v1/check` show it (lowerCamelCase, enums by name, 64-bit numbers as
/// strings, defaults left out), indented.
pub fn to_json(response: &CheckLimitResponse) -> String {
    serde_json::to_string_pretty(response).expect("a response always serializes")
}

/// The response for people.
pub fn to_text(response: &CheckLimitResponse) -> String {
    let verdict = match response.code() {
        Code::Ok => "ALLOWED",
        Code::Unavailable => "DENIED (backend unavailable, failing closed)",
        Code::OverLimit | Code::Unspecified => "DENIED (over limit)",
    };
    let mut text = format!(
        "{verdict}{}{}\n",
        if response.shadowed {
            " [a shadow limit would deny]"
        } else {
            ""
        },
        if response.degraded {
            " [degraded: a backend failed]"
        } else {
            ""
        }
    );
    for s in &response.statuses {
        let tier = if s.tier.is_empty() {
            String::new()
        } else {
            format!(" tier={}", s.tier)
        };
        text.push_str(&format!(
            "  {}.{}{tier}: {}/{} remaining, resets in {} ms{}{}\n",
            s.rule,
            s.limit_name,
            s.remaining,
            s.limit,
            s.reset_after_ms,
            if s.over_limit {
                format!(", over limit, retry in {} ms", s.retry_after_ms)
            } else {
                String::new()
            },
            if s.shadow { " (shadow)" } else { "" },
        ));
        if s.failure() != Failure::None {
            text.push_str(&format!(
                "    backend {} failed: {}\n",
                s.backend,
                s.failure().as_str_name()
            ));
        }
    }
    for (name, value) in &response.headers {
        text.push_str(&format!("  {name}: {value}\n"));
    }
    text
}
