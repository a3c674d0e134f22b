//! `ratelimitd check`, `inspect` and `reset`: one CheckLimit (or
//! Admin/Inspect, Admin/Reset) from the shell.

use super::client::{connect, refused};
use super::{CheckArgs, InspectArgs, RequestArgs, Target};
use ratelimitd_proto::v1::admin_client::AdminClient;
use ratelimitd_proto::v1::rate_limiter_client::RateLimiterClient;
use ratelimitd_proto::v1::{
    check_limit_response::Code, limit_status::Failure, CheckLimitRequest, CheckLimitResponse,
    DeclaredLimit, DescriptorEntry, InspectRequest, ResetRequest, ResetResponse,
};
use std::collections::HashMap;
use std::process::ExitCode;

/// Splits `k=v`.
pub fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{text}` is not key=value"))
}

/// Sends one CheckLimit to `target`.
async fn check(target: &Target, request: CheckLimitRequest) -> anyhow::Result<CheckLimitResponse> {
    let mut client = RateLimiterClient::new(connect(target).await?);
    let response = client.check_limit(request).await;
    Ok(response.map_err(refused)?.into_inner())
}

/// Asks `target` for the counters `request` would touch (only `rule`'s, if
/// given), consuming nothing.
async fn inspect(
    target: &Target,
    request: CheckLimitRequest,
    rule: Option<&str>,
) -> anyhow::Result<CheckLimitResponse> {
    let mut client = AdminClient::new(connect(target).await?);
    let request = InspectRequest {
        request: Some(request),
        rule: rule.unwrap_or_default().to_string(),
    };
    Ok(client.inspect(request).await.map_err(refused)?.into_inner())
}

/// Asks `target` to delete the counters `request` would touch (only
/// `rule`'s, if given).
async fn reset(
    target: &Target,
    request: CheckLimitRequest,
    rule: Option<&str>,
) -> anyhow::Result<ResetResponse> {
    let mut client = AdminClient::new(connect(target).await?);
    let request = ResetRequest {
        request: Some(request),
        rule: rule.unwrap_or_default().to_string(),
    };
    Ok(client.reset(request).await.map_err(refused)?.into_inner())
}

/// The response in the protobuf JSON mapping, as grpcurl and `POST
/// /v1/check` show it (lowerCamelCase, enums by name, 64-bit numbers as
/// strings, defaults left out), indented.
fn to_json(response: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(response).expect("a response always serializes")
}

/// The response for people.
fn to_text(response: &CheckLimitResponse) -> String {
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

/// `ratelimitd check`.
pub async fn run_check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let request = args.request.to_request(args.cost);
    let response = check(&args.request.target, request).await?;
    print_decision(&response, args.request.json)
}

/// `ratelimitd inspect`.
pub async fn run_inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let request = args.request.to_request(None);
    let response = inspect(&args.request.target, request, args.rule.as_deref()).await?;
    print_decision(&response, args.request.json)
}

/// `ratelimitd reset`: prints each counter and whether it was deleted;
/// exit 0 (nothing to delete is no error).
pub async fn run_reset(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let request = args.request.to_request(None);
    let response = reset(&args.request.target, request, args.rule.as_deref()).await?;
    if args.request.json {
        outln!("{}", to_json(&response));
    } else if response.counters.is_empty() {
        outln!("no limit applies: nothing to reset");
    } else {
        for counter in &response.counters {
            let tier = if counter.tier.is_empty() {
                String::new()
            } else {
                format!(" tier={}", counter.tier)
            };
            outln!(
                "  {}.{}{tier} in {}: {}",
                counter.rule,
                counter.limit_name,
                counter.backend,
                if counter.deleted {
                    "reset"
                } else {
                    "nothing to reset"
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

impl RequestArgs {
    /// The CheckLimit request the options describe.
    fn to_request(&self, cost: Option<u32>) -> CheckLimitRequest {
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
            client_ip: self.ip.clone(),
            peer_ip: self.peer_ip.clone(),
            forwarded_for: self.forwarded_for.clone(),
            user: self.user.clone(),
            api_key: self.api_key.clone(),
            method: self.method.clone(),
            path: self.path.clone(),
            headers: self.headers.iter().cloned().collect::<HashMap<_, _>>(),
            cost,
            limits: self.declared.clone(),
        }
    }
}

/// Parses `--declare`: a `DeclaredLimit` in its protobuf JSON form, as the
/// HTTP API takes it.
pub fn declared_limit(text: &str) -> Result<DeclaredLimit, String> {
    serde_json::from_str(text).map_err(|error| format!("not a declared limit: {error}"))
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
