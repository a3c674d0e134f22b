//! How the policy plans requests: which rules apply (`precedence`), and
//! what they apply (`limits`). The helpers here load a policy and show a
//! plan compactly.

mod limits;
mod precedence;

use ratelimitd_policy::{load, Format, Plan, Policy, RequestAttributes};

fn policy(yaml: &str) -> Policy {
    load(yaml, Format::Yaml, "test.yaml", &[]).unwrap_or_else(|e| panic!("{e}"))
}

/// `(rule, tier, limit name, rate)` of every planned check.
fn applied(
    policy: &Policy,
    request: &RequestAttributes,
) -> Vec<(String, Option<String>, String, String)> {
    match policy.plan(request) {
        Plan::Checks(checks) => checks
            .iter()
            .map(|c| {
                (
                    c.rule.to_string(),
                    c.tier.map(str::to_string),
                    c.limit.name.clone(),
                    c.limit.rate.to_string(),
                )
            })
            .collect(),
        other => panic!("expected checks, got {other:?}"),
    }
}

fn rules_applied(policy: &Policy, request: &RequestAttributes) -> Vec<String> {
    applied(policy, request)
        .into_iter()
        .map(|(rule, ..)| rule)
        .collect()
}

fn keys(policy: &Policy, request: &RequestAttributes) -> Vec<String> {
    match policy.plan(request) {
        Plan::Checks(checks) => checks.into_iter().map(|c| c.key).collect(),
        other => panic!("expected checks, got {other:?}"),
    }
}
