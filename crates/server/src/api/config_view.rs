//! The running configuration as JSON (`GET /config`), secrets redacted:
//! Redis passwords never appear, URLs lose their password, callers' token
//! hashes are counted, not shown.

use crate::config::redis_options;
use crate::state::ServiceState;
use ratelimitd_policy::{
    Algorithm, AuthSettings, BackendKind, DeclaredSettings, LimitSpec, Permissions,
};
use serde_json::{json, Value};

/// What is in force now.
pub fn running_config(state: &ServiceState) -> Value {
    let running = state.running();
    let loaded = &running.policy;
    let policy = &loaded.policy;
    let backends = policy.backends();
    let backend_name = |index: usize| backends[index].name.clone();
    let envoy = running.envoy.as_ref().map(|envoy| {
        json!({
            "origin": envoy.origin,
            "backend": backend_name(policy.envoy.backend),
            "failure_policy": policy.envoy.failure_policy.as_str(),
            "response_headers": policy.envoy.response_headers.is_some(),
            "files": envoy.config.files().iter()
                .map(|(file, domain)| json!({"file": file, "domain": domain}))
                .collect::<Vec<_>>(),
            "limits": envoy.config.limits().iter()
                .map(|limit| json!({"file": limit.file, "limit": limit_json(&limit.spec)}))
                .collect::<Vec<_>>(),
        })
    });
    json!({
        "origin": loaded.origin,
        "settings": {
            "shadow_mode": policy.settings.shadow_mode,
            "on_no_match": if policy.settings.deny_unmatched { "deny" } else { "allow" },
            "failure_policy": policy.settings.failure_policy.as_str(),
            "local_replicas": policy.settings.local_replicas,
            "trusted_proxies": policy.settings.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>(),
        },
        "backends": backends.iter().map(|backend| match &backend.kind {
            BackendKind::Memory => json!({"name": backend.name, "type": "memory"}),
            BackendKind::Redis(spec) => json!({
                "name": backend.name,
                "type": "redis",
                "at": redis_options(&backend.name, spec).topology.describe(),
                "username": spec.username,
                "password": spec.password.as_ref().map(|_| "***"),
                "command_timeout_ms": spec.command_timeout.as_millis() as u64,
                "key_prefix": spec.key_prefix,
                "deny_cache": spec.deny_cache.map(|cache| json!({"max_entries": cache.max_entries})),
            }),
            BackendKind::Failover(members) => json!({
                "name": backend.name,
                "type": "failover",
                "members": members.iter().map(|&m| backend_name(m)).collect::<Vec<_>>(),
            }),
        }).collect::<Vec<_>>(),
        "rules": policy.rules().iter().map(|rule| json!({
            "name": rule.name,
            "shadow": rule.shadow,
            "backend": backend_name(rule.backend),
            "failure_policy": rule.failure_policy.as_str(),
        })).collect::<Vec<_>>(),
        "limits": policy.limits().iter().map(limit_json).collect::<Vec<_>>(),
        "envoy": envoy,
        "declared": declared_json(&policy.declared, &backend_name),
        "auth": auth_json(&policy.auth),
    })
}

/// The `auth:` section: identities and permissions, with how many tokens
/// each has but never their hashes.
fn auth_json(auth: &AuthSettings) -> Value {
    let permissions = |p: &Permissions| json!({"domains": p.domains, "declare_limits": p.declare_limits, "operator": p.operator});
    json!({
        "configured": auth.configured,
        "identities": auth.identities.iter().map(|identity| json!({
            "name": identity.name,
            "tokens": identity.tokens.len(),
            "certificate_names": identity.certificate_names,
            "permissions": permissions(&identity.permissions),
        })).collect::<Vec<_>>(),
        "anonymous": auth.anonymous.as_ref().map(permissions),
        "metrics_by_identity": auth.metrics_by_identity,
    })
}

/// The `declared:` section in the configuration file's words.
fn declared_json(declared: &DeclaredSettings, backend_name: &dyn Fn(usize) -> String) -> Value {
    let mut domains: Vec<&String> = declared.domains.iter().collect();
    domains.sort();
    let mut named: Vec<&String> = declared.labels.keys().collect();
    named.sort();
    json!({
        "domains": domains,
        "max_per_request": declared.max_per_request,
        "algorithms": declared.algorithms.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        "max_count": declared.max_count,
        "min_period_ms": declared.min_period.as_millis() as u64,
        "max_period_ms": declared.max_period.as_millis() as u64,
        "backend": backend_name(declared.backend),
        "failure_policy": declared.failure_policy.as_str(),
        "named_in_metrics": named,
    })
}

/// A limit in the configuration file's words, with only the parameters its
/// algorithm takes.
fn limit_json(spec: &LimitSpec) -> Value {
    let mut limit = json!({
        "path": spec.path,
        "name": spec.name,
        "rate": spec.rate.to_string(),
        "algorithm": spec.algorithm.as_str(),
    });
    match spec.algorithm {
        Algorithm::TokenBucket => {
            limit["burst"] = spec.burst.into();
            limit["initial_tokens"] = spec.initial_tokens.into();
        }
        Algorithm::Gcra => limit["burst"] = spec.burst.into(),
        Algorithm::FixedWindow | Algorithm::SlidingWindow => {
            limit["count_denied"] = spec.count_denied.into();
        }
        Algorithm::SlidingLog => {}
    }
    limit
}
