//! What a matching rule applies: several limits, tiers, the `rate:`
//! shorthand, groups sharing counters, counting keys, unlimited and blocking
//! rules, backends; in YAML, TOML and the shipped example.

use super::{applied, keys, policy, rules_applied};
use ratelimitd_policy::{load, Algorithm, Format, Plan, Policy, RequestAttributes};

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
    let text = include_str!("../../../../../deploy/ratelimitd.example.yaml");
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
