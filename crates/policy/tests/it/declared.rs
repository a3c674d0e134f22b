//! Limits declared by requests: the `declared:` section's errors, the gate,
//! overrides, and counter keys that no rule's can equal.

use ratelimitd_policy::{
    load, Algorithm, DeclareError, Declared, Format, Plan, Policy, RequestAttributes,
};

fn policy(yaml: &str) -> Policy {
    load(yaml, Format::Yaml, "d.yaml", &[]).unwrap_or_else(|errors| panic!("{errors}"))
}

fn errors(yaml: &str) -> Vec<String> {
    load(yaml, Format::Yaml, "d.yaml", &[])
        .unwrap_err()
        .0
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn declared<'a>(name: &'a str, key: &'a [String], rate: &'a str) -> Declared<'a> {
    Declared {
        name,
        key,
        rate,
        algorithm: None,
        burst: None,
        initial_tokens: None,
        count_denied: false,
        shadow: false,
    }
}

#[test]
fn the_section_reports_every_error_with_its_path() {
    assert_eq!(
        errors(
            "declared:\n  domains: ['']\n  max_per_request: 0\n  min_period: 2h\n  max_period: 1h\n  backend: nope\n  failure_policy: maybe\n  overrides:\n    - {name: a, rate: 1/m, unlimited: true}\n    - {name: '', block: true}\n    - {name: b, burst: 3, rate: 1/m}\n    - {name: c, algorithm: fixed_window, burst: 3}\n"
        ),
        [
            "d.yaml: declared.domains[0]: must not be empty (value: \"\")",
            "d.yaml: declared.max_per_request: must be at least 1 (value: \"0\")",
            "d.yaml: declared.max_period: must not be shorter than min_period (value: \"1h\")",
            "d.yaml: declared.overrides[0]: give exactly one of other parameters (`rate`, `algorithm`), `unlimited: true` or `block: true`",
            "d.yaml: declared.overrides[1].name: name the declared limits it applies to (value: \"\")",
            "d.yaml: declared.overrides[2].burst: goes with an `algorithm` (the declared algorithm's parameters stay the caller's)",
            "d.yaml: declared.overrides[3].burst: burst applies to token_bucket and gcra only (value: \"3\")",
            "d.yaml: declared.backend: no backend has this name (backends: memory) (value: \"nope\")",
            "d.yaml: declared.failure_policy: unknown failure_policy `maybe`, expected one of: open, closed, local (value: \"maybe\")",
        ]
    );
}

#[test]
fn nothing_declared_passes_any_domain_and_declaring_needs_an_accepting_one() {
    let p = policy("declared: {domains: [web]}");
    let elsewhere = RequestAttributes::new("api");
    assert_eq!(p.declare(&elsewhere, &[]), Ok(Vec::new()));
    let key = ["ip".to_string()];
    assert_eq!(
        p.declare(&elsewhere, &[declared("v", &key, "1/m")]),
        Err(DeclareError::NotAccepted("api".into()))
    );
}

/// A declared counter key and a rule's differ even when every name is the
/// same, and two domains' keys differ.
#[test]
fn declared_keys_never_equal_a_rules() {
    let p =
        policy("rules: [{name: pages, key: [user], rate: 1/m}]\ndeclared: {domains: [web, shop]}");
    let key = ["user".to_string()];
    let request = |domain: &str| RequestAttributes {
        user: "alice".into(),
        ..RequestAttributes::new(domain)
    };
    let rule_key = match p.plan(&request("web")) {
        Plan::Checks(checks) => checks[0].key.clone(),
        other => panic!("{other:?}"),
    };
    let declared_key = |domain: &str| {
        p.declare(&request(domain), &[declared("pages", &key, "1/m")])
            .unwrap()[0]
            .key
            .clone()
    };
    assert_ne!(rule_key, declared_key("web"));
    assert_ne!(declared_key("web"), declared_key("shop"));
    assert_eq!(
        declared_key("web"),
        "{20:declared3:web5:pages0:4:user5:alice}12:fixed_window",
        "the algorithm is part of the identity, the rate is not"
    );
}

#[test]
fn an_absent_key_part_means_the_limit_does_not_apply() {
    let p = policy("declared: {domains: [web]}");
    let key = ["user".to_string()];
    let anonymous = RequestAttributes::new("web");
    assert_eq!(
        p.declare(&anonymous, &[declared("v", &key, "1/m")]),
        Ok(Vec::new())
    );
}

#[test]
fn an_override_replacing_the_algorithm_brings_its_own_parameters() {
    let p = policy(
        "declared:\n  domains: [web]\n  overrides: [{name: 'up*', algorithm: token_bucket, burst: 40}]",
    );
    let key = ["ip".to_string()];
    let mut gcra = declared("uploads", &key, "10/m");
    gcra.algorithm = Some(Algorithm::Gcra);
    gcra.burst = Some(5);
    let request = RequestAttributes {
        client_ip: Some("192.0.2.1".parse().unwrap()),
        ..RequestAttributes::new("web")
    };
    let requested = [gcra];
    let checks = p.declare(&request, &requested).unwrap();
    let spec = &checks[0].spec;
    assert_eq!(
        (
            spec.algorithm,
            spec.rate.count,
            spec.burst,
            checks[0].overridden
        ),
        (Algorithm::TokenBucket, 10, 40, true)
    );
    assert_eq!(
        checks[0].label, "declared:*",
        "a glob names no metric label"
    );
}
