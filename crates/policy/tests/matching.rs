//! How the policy plans requests: precedence, tiers, skip, shadow, several
//! limits, isolation and groups.

use ratelimitd_policy::{load, Algorithm, Format, Plan, Policy, RequestAttributes};

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
fn several_limits_per_rule_in_declaration_order() {
    let p = policy(
        r#"
rules:
  - name: api
    key: [api_key]
    limits:
      - {name: burst, rate: 10/s, algorithm: token_bucket, burst: 20}
      - {name: sustained, rate: 1000/h, algorithm: sliding_window}
"#,
    );
    let request = RequestAttributes {
        api_key: "k1".into(),
        ..RequestAttributes::new("any")
    };
    assert_eq!(
        applied(&p, &request),
        [
            ("api".into(), None, "burst".into(), "10/s".into()),
            ("api".into(), None, "sustained".into(), "1000/h".into()),
        ]
    );
    let burst = &p.limits()[0];
    assert_eq!(
        (burst.algorithm, burst.burst, burst.initial_tokens),
        (Algorithm::TokenBucket, 20, 20)
    );
    assert_eq!(p.limits()[1].algorithm, Algorithm::SlidingWindow);
}

#[test]
fn tiers_replace_the_rate_and_the_first_matching_tier_wins() {
    // def get_rate(group, request): return '1000/h' if request.user.is_staff else '100/h'
    let p = policy(
        r#"
rules:
  - name: expensive
    key: [user]
    rate: 100/h
    tiers:
      - {name: staff, when: {descriptors: [{key: role, value: staff}]}, rate: 1000/h}
      - {name: partners, when: {headers: {X-Partner: "*"}}, rate: 500/h}
      - {name: ops, when: {users: [ops-bot]}, unlimited: true}
"#,
    );
    let user = |name: &str| RequestAttributes {
        user: name.into(),
        ..RequestAttributes::new("d")
    };
    assert_eq!(
        applied(&p, &user("bob")),
        [("expensive".into(), None, "default".into(), "100/h".into())]
    );
    assert_eq!(
        applied(
            &p,
            &user("ann")
                .descriptor("role", "staff")
                .header("x-partner", "p")
        ),
        [(
            "expensive".into(),
            Some("staff".into()),
            "default".into(),
            "1000/h".into()
        )]
    );
    assert_eq!(
        applied(&p, &user("pat").header("X-PARTNER", "p")),
        [(
            "expensive".into(),
            Some("partners".into()),
            "default".into(),
            "500/h".into()
        )]
    );
    assert_eq!(applied(&p, &user("ops-bot")), []);
    // The tier is part of the counter's identity.
    assert_ne!(
        keys(&p, &user("ann")),
        keys(&p, &user("ann").descriptor("role", "staff"))
    );
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

/// `rate:` with its algorithm and parameters beside it (as
/// `@rate_limit(rate='100/h', algorithm='token_bucket')` reads) is exactly
/// a one-element `limits:` list named `default`, on rules and tiers.
#[test]
fn a_rate_with_its_algorithm_is_a_one_limit_list() {
    let shorthand = policy(
        r#"
rules:
  - name: r
    rate: 10/s
    algorithm: token_bucket
    burst: 20
    initial_tokens: 5
    tiers: [{name: t, when: {users: [x]}, rate: 5/m, algorithm: sliding_window, count_denied: true}]
"#,
    );
    let list = policy(
        r#"
rules:
  - name: r
    limits: [{rate: 10/s, algorithm: token_bucket, burst: 20, initial_tokens: 5}]
    tiers: [{name: t, when: {users: [x]}, limits: [{rate: 5/m, algorithm: sliding_window, count_denied: true}]}]
"#,
    );
    let limits = |p: &Policy| {
        p.limits()
            .iter()
            .map(|l| {
                (
                    l.name.clone(),
                    l.rate,
                    l.algorithm,
                    l.burst,
                    l.initial_tokens,
                    l.count_denied,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(limits(&shorthand), limits(&list));
    assert_eq!(
        shorthand
            .limits()
            .iter()
            .map(|l| l.path.as_str())
            .collect::<Vec<_>>(),
        ["rules[0].rate", "rules[0].tiers[0].rate"]
    );
    let request = RequestAttributes::new("d");
    assert_eq!(applied(&shorthand, &request), applied(&list, &request));
}

#[test]
fn rules_are_isolated_unless_they_share_a_group() {
    let p = policy(
        r#"
rules:
  - {name: one, match: {path: /one}, key: [ip], rate: 5/m}
  - {name: two, match: {path: /two}, key: [ip], rate: 5/m}
  - {name: three, match: {path: /three}, key: [ip], rate: 5/m, group: shared}
  - {name: four, match: {path: /four}, key: [ip], rate: 5/m, group: shared}
"#,
    );
    let at = |path: &str| RequestAttributes {
        path: path.into(),
        client_ip: Some("192.0.2.7".parse().unwrap()),
        ..RequestAttributes::new("d")
    };
    assert_ne!(keys(&p, &at("/one")), keys(&p, &at("/two")));
    assert_eq!(keys(&p, &at("/three")), keys(&p, &at("/four")));
}

#[test]
fn counting_keys_default_to_matched_descriptor_values() {
    let p = policy(
        r#"
rules:
  - {name: per-route, match: {descriptors: [{key: route, value: "/api/*"}]}, rate: 5/m}
  - {name: global, match: {path: /flat}, rate: 5/m}
"#,
    );
    let route = |r: &str| RequestAttributes::new("d").descriptor("route", r);
    assert_ne!(keys(&p, &route("/api/a")), keys(&p, &route("/api/b")));
    let flat = |ip: &str| RequestAttributes {
        path: "/flat".into(),
        client_ip: Some(ip.parse().unwrap()),
        ..RequestAttributes::new("d")
    };
    assert_eq!(
        keys(&p, &flat("192.0.2.1")),
        keys(&p, &flat("192.0.2.2")),
        "one shared counter"
    );
}

#[test]
fn unlimited_rules_are_allow_list_entries() {
    let p = policy(
        r#"
rules:
  - {name: partners, match: {descriptors: [{key: client}]}, rate: 10/m}
  - {name: internal, match: {descriptors: [{key: client, value: internal}]}, unlimited: true}
"#,
    );
    let client = |c: &str| RequestAttributes::new("d").descriptor("client", c);
    assert_eq!(applied(&p, &client("internal")), []);
    assert_eq!(rules_applied(&p, &client("acme")), ["partners"]);
}

#[test]
fn rate_zero_is_a_valid_blocking_limit() {
    let p = policy("rules: [{name: blocked, match: {path: /admin}, rate: 0/m}]");
    let request = RequestAttributes {
        path: "/admin".into(),
        ..RequestAttributes::new("d")
    };
    assert_eq!(applied(&p, &request)[0].3, "0/m");
}

#[test]
fn toml_works_as_well_as_yaml() {
    let toml = r#"
[settings]
on_no_match = "deny"

[[rules]]
name = "login"
domain = "web"
key = ["ip"]
rate = "5/m"
[rules.match]
path = "/login"
methods = ["POST"]
"#;
    let p = load(toml, Format::Toml, "test.toml", &[]).unwrap();
    assert!(p.settings.deny_unmatched);
    let request = RequestAttributes {
        path: "/login".into(),
        method: "post".into(),
        client_ip: Some("192.0.2.1".parse().unwrap()),
        ..RequestAttributes::new("web")
    };
    assert_eq!(rules_applied(&p, &request), ["login"]);
}

#[test]
fn the_shipped_example_policy_is_valid() {
    let text = include_str!("../../../deploy/ratelimitd.example.yaml");
    let p = load(text, Format::Yaml, "deploy/ratelimitd.example.yaml", &[])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(p.rules().len() >= 5);
}

#[test]
fn rules_pick_their_backend_by_name_and_default_to_the_first() {
    use ratelimitd_policy::{BackendKind, RedisTopologySpec};
    let p = policy(
        r#"
backends:
  - {name: local, type: memory}
  - {name: shared, type: redis, url: "redis://10.0.0.5:6379", key_prefix: "app1:", time_source: redis}
  - {name: ha, type: redis, sentinel: {service: mymaster, addresses: ["10.0.0.6:26379"]}}
  - {name: big, type: redis, cluster: {nodes: ["10.0.0.7:7000", "10.0.0.8:7000"]}, pool_size: 8, command_timeout: 50ms}
rules:
  - {name: default, match: {path: /a}, rate: 1/m}
  - {name: global, match: {path: /b}, rate: 1/m, backend: shared}
"#,
    );
    let names: Vec<&str> = p.backends().iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["local", "shared", "ha", "big"]);
    assert_eq!((p.rules()[0].backend, p.rules()[1].backend), (0, 1));
    let BackendKind::Redis(shared) = &p.backends()[1].kind else {
        panic!()
    };
    assert_eq!(
        shared.topology,
        RedisTopologySpec::Standalone("redis://10.0.0.5:6379".into())
    );
    assert_eq!(
        (
            shared.key_prefix.as_str(),
            shared.redis_time,
            shared.pool_size
        ),
        ("app1:", true, 4)
    );
    assert_eq!(shared.command_timeout, std::time::Duration::from_millis(20));
    let BackendKind::Redis(big) = &p.backends()[3].kind else {
        panic!()
    };
    assert_eq!(
        (big.pool_size, big.command_timeout),
        (8, std::time::Duration::from_millis(50))
    );
    let request = RequestAttributes {
        path: "/b".into(),
        ..RequestAttributes::new("d")
    };
    let Plan::Checks(checks) = p.plan(&request) else {
        panic!()
    };
    assert_eq!(checks[0].backend, 1);
    assert_eq!(policy("rules: []").backends()[0].kind, BackendKind::Memory);
}
