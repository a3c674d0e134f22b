//! Which rules apply to a request: the most specific of competing rules,
//! rules constraining different things stacking, skip lists and `skip_if`,
//! and shadow rules beside enforced ones.

use super::{applied, policy, rules_applied};
use ratelimitd_policy::{load, Format, Plan, Policy, RequestAttributes};

const PRECEDENCE: &str = r#"
rules:
  - name: any-tenant
    domain: api
    match: {descriptors: [{key: tenant}]}
    rate: 1/m
  - name: a-tenants
    domain: api
    match: {descriptors: [{key: tenant, value: "a*"}]}
    rate: 2/m
  - name: ab-tenants
    domain: api
    match: {descriptors: [{key: tenant, value: "ab*"}]}
    rate: 3/m
  - name: acme
    domain: api
    match: {descriptors: [{key: tenant, value: acme}]}
    rate: 4/m
  - name: regex-tenants
    domain: api
    match: {descriptors: [{key: tenant, regex: "z[0-9]+"}]}
    rate: 5/m
"#;

#[test]
fn exact_beats_wildcard_beats_key_only() {
    let p = policy(PRECEDENCE);
    let tenant = |t: &str| RequestAttributes::new("api").descriptor("tenant", t);
    assert_eq!(rules_applied(&p, &tenant("acme")), ["acme"]);
    assert_eq!(
        rules_applied(&p, &tenant("abc")),
        ["ab-tenants"],
        "longer literal wins"
    );
    assert_eq!(rules_applied(&p, &tenant("axe")), ["a-tenants"]);
    assert_eq!(rules_applied(&p, &tenant("z42")), ["regex-tenants"]);
    assert_eq!(rules_applied(&p, &tenant("zed")), ["any-tenant"]);
    assert_eq!(p.plan(&RequestAttributes::new("api")), Plan::NoMatch);
    assert_eq!(
        p.plan(&tenant("acme").clone_with_domain("web")),
        Plan::NoMatch
    );
}

trait WithDomain {
    fn clone_with_domain(&self, domain: &str) -> RequestAttributes;
}
impl WithDomain for RequestAttributes {
    fn clone_with_domain(&self, domain: &str) -> RequestAttributes {
        RequestAttributes {
            domain: domain.into(),
            ..self.clone()
        }
    }
}

#[test]
fn equal_specificity_goes_to_the_earlier_rule() {
    let p = policy(
        r#"
rules:
  - {name: first, match: {descriptors: [{key: k, value: "x*"}]}, rate: 1/m}
  - {name: second, match: {descriptors: [{key: k, value: "*y"}]}, rate: 1/m}
"#,
    );
    let request = RequestAttributes::new("d").descriptor("k", "xy");
    assert_eq!(rules_applied(&p, &request), ["first"]);
}

#[test]
fn middleware_path_rates_pick_the_longest_prefix_and_default() {
    // RATELIMIT_MIDDLEWARE = {DEFAULT_RATE: 100/m, RATE_LIMITS: {/api/auth/: 10/m, /api/: 200/h}}
    let p = policy(
        r#"
rules:
  - {name: default, domain: web, match: {path_prefix: /}, key: [ip], rate: 100/m}
  - {name: api, domain: web, match: {path_prefix: /api/}, key: [ip], rate: 200/h}
  - {name: auth, domain: web, match: {path_prefix: /api/auth/}, key: [ip], rate: 10/m}
  - {name: login-page, domain: web, match: {path: /api/auth/login}, key: [ip], rate: 3/m}
"#,
    );
    let at = |path: &str| RequestAttributes {
        path: path.into(),
        client_ip: Some("10.0.0.1".parse().unwrap()),
        ..RequestAttributes::new("web")
    };
    assert_eq!(rules_applied(&p, &at("/api/auth/token")), ["auth"]);
    assert_eq!(rules_applied(&p, &at("/api/orders")), ["api"]);
    assert_eq!(rules_applied(&p, &at("/about")), ["default"]);
    assert_eq!(
        rules_applied(&p, &at("/api/auth/login")),
        ["login-page"],
        "exact path wins"
    );
}

#[test]
fn rules_constraining_different_things_stack() {
    // Stacked decorators: @ratelimit(key='ip', rate='10/m', group='anon')
    //                     @ratelimit(key='user', rate='100/m', group='auth')
    let p = policy(
        r#"
rules:
  - {name: per-ip, domain: web, match: {path: /api/view}, key: [ip], rate: 10/m}
  - {name: per-user, domain: web, match: {path: /api/view, methods: [get, post]}, key: [user], rate: 100/m}
"#,
    );
    let request = RequestAttributes {
        path: "/api/view".into(),
        method: "GET".into(),
        user: "alice".into(),
        client_ip: Some("10.0.0.1".parse().unwrap()),
        ..RequestAttributes::new("web")
    };
    assert_eq!(rules_applied(&p, &request), ["per-ip", "per-user"]);
    let anonymous = RequestAttributes {
        user: String::new(),
        ..request.clone()
    };
    assert_eq!(
        rules_applied(&p, &anonymous),
        ["per-ip"],
        "a rule whose key is absent does not apply"
    );
    let delete = RequestAttributes {
        method: "DELETE".into(),
        ..request
    };
    assert_eq!(rules_applied(&p, &delete), ["per-ip"]);
}

#[test]
fn skip_lists_and_skip_if() {
    // SKIP_PATHS and skip_if=lambda req: req.user.is_staff
    let p = policy(
        r#"
skip:
  - {path_prefix: /health}
  - {client_ip: [10.0.0.0/8, "2001:db8::/32", "::ffff:172.16.0.0/108"]}
rules:
  - name: api
    key: [ip]
    rate: 10/m
    skip_if: {headers: {x-staff: "true"}}
"#,
    );
    let request = |path: &str, ip: &str| RequestAttributes {
        path: path.into(),
        client_ip: Some(ip.parse().unwrap()),
        ..RequestAttributes::new("web")
    };
    assert_eq!(p.plan(&request("/health/live", "192.0.2.1")), Plan::Skipped);
    assert_eq!(p.plan(&request("/x", "10.9.9.9")), Plan::Skipped);
    assert_eq!(p.plan(&request("/x", "2001:db8::5")), Plan::Skipped);
    // An IPv4-mapped address is the IPv4 client it maps.
    assert_eq!(p.plan(&request("/x", "::ffff:10.1.2.3")), Plan::Skipped);
    // A mapped network written in the file is the IPv4 network it maps.
    assert_eq!(p.plan(&request("/x", "172.16.5.5")), Plan::Skipped);
    assert_eq!(rules_applied(&p, &request("/x", "172.32.0.1")), ["api"]);
    assert_eq!(rules_applied(&p, &request("/x", "192.0.2.1")), ["api"]);
    assert_eq!(
        rules_applied(&p, &request("/x", "::ffff:192.0.2.1")),
        ["api"]
    );
    assert_eq!(
        applied(&p, &request("/x", "192.0.2.1").header("X-Staff", "true")),
        []
    );
}

#[test]
fn shadow_per_rule_and_globally() {
    let yaml = r#"
rules:
  - {name: shadowed, match: {descriptors: [{key: a}]}, rate: 1/m, shadow: true}
  - {name: enforced, match: {descriptors: [{key: b}]}, rate: 1/m}
"#;
    let request = RequestAttributes::new("d")
        .descriptor("a", "1")
        .descriptor("b", "2");
    let shadows = |p: &Policy| match p.plan(&request) {
        Plan::Checks(checks) => checks.iter().map(|c| c.shadow).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(shadows(&policy(yaml)), [true, false]);
    let global = format!("settings: {{shadow_mode: true}}\n{yaml}");
    assert_eq!(shadows(&policy(&global)), [true, true]);
    let from_env = load(
        yaml,
        Format::Yaml,
        "test.yaml",
        &[("RATELIMITD_SETTINGS__SHADOW_MODE".into(), "true".into())],
    )
    .unwrap();
    assert_eq!(shadows(&from_env), [true, true]);
}

/// A shadow rule more specific than an enforced one on the same path does
/// not take the enforced one out of force: both apply, each its own way.
#[test]
fn a_shadow_rule_never_switches_off_an_enforced_one() {
    let p = policy(
        r#"
rules:
  - {name: pages, match: {path_prefix: /}, key: [ip], rate: 100/m}
  - {name: search-trial, match: {path: /search}, key: [ip], rate: 30/m, shadow: true}
  - {name: search-trial-2, match: {path: "/sea*"}, key: [ip], rate: 10/m, shadow: true}
"#,
    );
    let at = |path: &str| RequestAttributes {
        path: path.into(),
        client_ip: Some("192.0.2.7".parse().unwrap()),
        ..RequestAttributes::new("web")
    };
    let rules = |path: &str| match p.plan(&at(path)) {
        Plan::Checks(checks) => checks
            .iter()
            .map(|c| format!("{}{}", c.rule, if c.shadow { " (shadow)" } else { "" }))
            .collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    // Enforced rules compete among themselves, shadow rules among theirs.
    assert_eq!(rules("/search"), ["pages", "search-trial (shadow)"]);
    assert_eq!(rules("/seaside"), ["pages", "search-trial-2 (shadow)"]);
    assert_eq!(rules("/other"), ["pages"]);
}
