//! `ratelimitd check` and `inspect`: one CheckLimit (or Admin/Inspect) from
//! the shell.

use super::client::{connect, refused};
use super::{CheckArgs, InspectArgs};
use ratelimitd_proto::v1::admin_client::AdminClient;
use ratelimitd_proto::v1::rate_limiter_client::RateLimiterClient;
use ratelimitd_proto::v1::{
    check_limit_response::Code, limit_status::Failure, CheckLimitRequest, CheckLimitResponse,
    DescriptorEntry, InspectRequest,
};
use std::collections::HashMap;
use std::process::ExitCode;

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

pub async fn run_check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let input = args.request.input(args.cost);
    let response = check(&args.request.addr, &input).await?;
    print_decision(&response, args.request.json)
}

pub async fn run_inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let input = args.request.input(None);
    let response = inspect(&args.request.addr, &input, args.rule.as_deref()).await?;
    print_decision(&response, args.request.json)
}

/// Prints a decision; exit 0 when allowed, 3 when denied.
fn print_decision(response: &CheckLimitResponse, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        outln!("{}", to_json(response));
    } else {
        out!("{}", to_text(response));
    }
    Ok(if response.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
