//! envoyproxy/ratelimit YAML files: every load error, and how request
//! descriptors walk the trees.

use ratelimitd_policy::{
    load_envoy_files, Algorithm, EnvoyConfig, EnvoyDescriptor, EnvoyFileOptions, EnvoyPlan,
    FailurePolicy, Unit,
};
use std::time::Duration;

fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(name, text)| (name.to_string(), text.to_string()))
        .collect()
}

fn load(text: &str) -> EnvoyConfig {
    load_envoy_files(
        &files(&[("config.yaml", text)]),
        EnvoyFileOptions::default(),
    )
    .unwrap_or_else(|errors| panic!("{errors}"))
    .config
}

fn errors(list: &[(&str, &str)]) -> String {
    load_envoy_files(&files(list), EnvoyFileOptions::default())
        .unwrap_err()
        .to_string()
}

fn one_error(text: &str) -> String {
    errors(&[("bad.yaml", text)])
}

/// What a descriptor gets, as a short string: `none`, `unlimited`, or the
/// matched limits as `name=N/unit` with the counter key's entry part.
fn plan(config: &EnvoyConfig, domain: &str, entries: &[(&str, &str)]) -> String {
    let descriptor = EnvoyDescriptor {
        entries,
        limit_override: None,
    };
    match config.plan(domain, descriptor) {
        EnvoyPlan::NoLimit => "none".into(),
        EnvoyPlan::Unlimited => "unlimited".into(),
        EnvoyPlan::Override { .. } => "override".into(),
        EnvoyPlan::Limited(matched) => matched
            .limits
            .iter()
            .map(|(limit, _)| {
                format!(
                    "{}={}",
                    limit.name.as_deref().unwrap_or("-"),
                    limit.requests_per_unit
                )
            })
            .collect::<Vec<_>>()
            .join(","),
    }
}

fn key(config: &EnvoyConfig, domain: &str, entries: &[(&str, &str)]) -> String {
    let descriptor = EnvoyDescriptor {
        entries,
        limit_override: None,
    };
    match config.plan(domain, descriptor) {
        EnvoyPlan::Limited(matched) => matched.limits[0].1.clone(),
        other => panic!("no limit: {other:?}"),
    }
}

const PRECEDENCE: &str = r#"
domain: web
descriptors:
  - key: path
    value: "/api/*"
    rate_limit: {name: api-wild, unit: second, requests_per_unit: 2}
  - key: path
    value: "/api/*/items"
    rate_limit: {name: items-wild, unit: second, requests_per_unit: 3}
  - key: path
    value: "/api/v1/items"
    rate_limit: {name: exact, unit: second, requests_per_unit: 4}
  - key: path
    rate_limit: {name: any-path, unit: second, requests_per_unit: 5}
  - key: path
    value: internal
  - key: user
    descriptors:
      - key: action
        value: upload
        rate_limit: {name: upload, unit: hour, requests_per_unit: 6}
      - key: action
        rate_limit: {name: other-action, unit: hour, requests_per_unit: 7}
  - key: plan
    value: free
    rate_limit: {name: free, unit: minute, requests_per_unit: 8}
    descriptors:
      - key: ip
        rate_limit: {unit: minute, requests_per_unit: 9}
"#;

#[test]
fn exact_beats_wildcards_which_go_in_declaration_order_then_key_only() {
    let config = load(PRECEDENCE);
    assert_eq!(
        plan(&config, "web", &[("path", "/api/v1/items")]),
        "exact=4"
    );
    // Both wildcards match: the one declared first wins.
    assert_eq!(
        plan(&config, "web", &[("path", "/api/v2/items")]),
        "api-wild=2"
    );
    assert_eq!(plan(&config, "web", &[("path", "/other")]), "any-path=5");
}

#[test]
fn a_whitelist_node_matches_and_limits_nothing() {
    let config = load(PRECEDENCE);
    // `internal` has neither rate_limit nor children: no fallback to the
    // key-only node.
    assert_eq!(plan(&config, "web", &[("path", "internal")]), "none");
}

#[test]
fn only_the_node_of_the_last_entry_counts() {
    let config = load(PRECEDENCE);
    // user has no rate_limit of its own.
    assert_eq!(plan(&config, "web", &[("user", "ann")]), "none");
    assert_eq!(
        plan(&config, "web", &[("user", "ann"), ("action", "upload")]),
        "upload=6"
    );
    assert_eq!(
        plan(&config, "web", &[("user", "ann"), ("action", "delete")]),
        "other-action=7"
    );
    // Deeper than the tree: no limit, and no backtracking to `free`.
    assert_eq!(
        plan(
            &config,
            "web",
            &[("plan", "free"), ("ip", "1.2.3.4"), ("x", "y")]
        ),
        "none"
    );
    assert_eq!(plan(&config, "web", &[("plan", "free")]), "free=8");
    assert_eq!(
        plan(&config, "web", &[("plan", "free"), ("ip", "1.2.3.4")]),
        "-=9"
    );
    // A key the level does not know stops the walk.
    assert_eq!(plan(&config, "web", &[("plan", "paid")]), "none");
    assert_eq!(plan(&config, "web", &[("nope", "x")]), "none");
    assert_eq!(plan(&config, "other-domain", &[("path", "/x")]), "none");
}

#[test]
fn counters_are_per_value_except_exact_and_shared_wildcards() {
    let config = load(
        r#"
domain: d
descriptors:
  - key: k
    value: "a*"
    rate_limit: {unit: second, requests_per_unit: 1}
  - key: s
    value: "a*"
    share_threshold: true
    rate_limit: {unit: second, requests_per_unit: 1}
  - key: any
    rate_limit: {unit: second, requests_per_unit: 1}
"#,
    );
    assert_ne!(
        key(&config, "d", &[("k", "a1")]),
        key(&config, "d", &[("k", "a2")])
    );
    assert_eq!(
        key(&config, "d", &[("s", "a1")]),
        key(&config, "d", &[("s", "a2")])
    );
    assert_ne!(
        key(&config, "d", &[("any", "1")]),
        key(&config, "d", &[("any", "2")])
    );
    // Keys of envoy files cannot collide with policy rules' keys, and carry
    // the whole counter identity inside the cluster hash tag.
    let shared = key(&config, "d", &[("s", "a1")]);
    assert!(shared.starts_with("{envoy/1:d1:s2:a*}"), "{shared}");
}

#[test]
fn wildcards_match_anywhere_and_regex_values_are_ours() {
    let config = load(
        r#"
domain: d
descriptors:
  - key: path
    value: "/users/*/posts/*"
    rate_limit: {name: posts, unit: minute, requests_per_unit: 1}
  - key: path
    value_regex: "/v[0-9]+/.*"
    rate_limit: {name: versioned, unit: minute, requests_per_unit: 2}
"#,
    );
    assert_eq!(
        plan(&config, "d", &[("path", "/users/7/posts/9")]),
        "posts=1"
    );
    assert_eq!(plan(&config, "d", &[("path", "/v12/x")]), "versioned=2");
    assert_eq!(plan(&config, "d", &[("path", "/vx/x")]), "none");
}

#[test]
fn unlimited_shadow_quota_and_overrides_are_reported() {
    let config = load(
        r#"
domain: d
descriptors:
  - key: vip
    rate_limit: {unlimited: true}
  - key: trial
    shadow_mode: true
    quota_mode: true
    failure_policy: closed
    rate_limit: {unit: day, requests_per_unit: 3}
"#,
    );
    assert_eq!(plan(&config, "d", &[("vip", "x")]), "unlimited");
    let EnvoyPlan::Limited(matched) = config.plan(
        "d",
        EnvoyDescriptor {
            entries: &[("trial", "t")],
            limit_override: None,
        },
    ) else {
        panic!("trial is limited")
    };
    assert!(matched.shadow && matched.quota_mode);
    assert_eq!(matched.failure_policy, Some(FailurePolicy::Closed));
    let spec = &matched.limits[0].0.spec;
    assert_eq!(spec.rate.period, Duration::from_secs(86_400));
    assert_eq!(spec.algorithm, Algorithm::FixedWindow);
    assert!(spec.count_denied, "the reference service counts every hit");

    let overridden = config.plan(
        "d",
        EnvoyDescriptor {
            entries: &[("anything", "x")],
            limit_override: Some((42, Unit::Hour)),
        },
    );
    assert!(
        matches!(
            overridden,
            EnvoyPlan::Override {
                requests_per_unit: 42,
                unit: Unit::Hour,
                ..
            }
        ),
        "{overridden:?}"
    );
    // On an unknown domain an override applies no more than the files do.
    let unknown = config.plan(
        "elsewhere",
        EnvoyDescriptor {
            entries: &[("anything", "x")],
            limit_override: Some((42, Unit::Hour)),
        },
    );
    assert_eq!(unknown, EnvoyPlan::NoLimit);
}

#[test]
fn extensions_several_limits_algorithms_and_windows() {
    let config = load(
        r#"
domain: d
descriptors:
  - key: client
    limits:
      - {name: burst, requests_per_unit: 10, window: 10s, algorithm: token_bucket, burst: 20}
      - {name: sustained, requests_per_unit: 1000, unit: hour, algorithm: sliding_window, count_denied: false}
"#,
    );
    assert_eq!(
        plan(&config, "d", &[("client", "c")]),
        "burst=10,sustained=1000"
    );
    let EnvoyPlan::Limited(matched) = config.plan(
        "d",
        EnvoyDescriptor {
            entries: &[("client", "c")],
            limit_override: None,
        },
    ) else {
        panic!("limited")
    };
    let (burst, sustained) = (&matched.limits[0].0, &matched.limits[1].0);
    assert_eq!(burst.spec.algorithm, Algorithm::TokenBucket);
    assert_eq!((burst.spec.burst, burst.unit), (20, None));
    assert!(!burst.spec.count_denied);
    assert_eq!(sustained.unit, Some(Unit::Hour));
    assert!(!sustained.spec.count_denied);
    assert_ne!(matched.limits[0].1, matched.limits[1].1);
}

#[test]
fn every_reference_load_error_is_reported_with_file_and_path() {
    assert_eq!(
        one_error("descriptors: []"),
        "bad.yaml: domain: the domain must not be empty"
    );
    assert_eq!(
        errors(&[("a.yaml", "domain: x"), ("b.yaml", "domain: x")]),
        "b.yaml: domain: the domain is already configured in a.yaml (value: \"x\")"
    );
    assert_eq!(
        one_error(
            "domain: x\ndescriptors: [{key: '', rate_limit: {unit: second, requests_per_unit: 1}}]"
        ),
        "bad.yaml: descriptors[0].key: the descriptor key must not be empty"
    );
    assert_eq!(
        one_error("domain: x\ndescriptors: [{key: a, value: b}, {key: a, value: b}]"),
        "bad.yaml: descriptors[1]: another descriptor at this level has the same key and value (value: \"a\")"
    );
    assert_eq!(
        one_error("domain: x\ndescriptors: [{key: a}, {key: a, descriptors: [{key: c}]}]"),
        "bad.yaml: descriptors[1]: another descriptor at this level has the same key and value (value: \"a\")"
    );
    assert_eq!(
        one_error("domain: x\ndescriptors: [{key: a, rate_limit: {unit: fortnight, requests_per_unit: 1}}]"),
        "bad.yaml: descriptors[0].rate_limit.unit: unknown unit `fortnight`, expected one of: second, minute, hour, day, week, month, year (value: \"fortnight\")"
    );
    assert_eq!(
        one_error("domain: x\ndescriptors: [{key: a, rate_limit: {unlimited: true, unit: second}}]"),
        "bad.yaml: descriptors[0].rate_limit.unit: an unlimited rate limit must not have a unit (value: \"second\")"
    );
    assert_eq!(
        one_error("domain: x\ndescriptors: [{key: a, rate_limit: {unit: second, requests_per_unit: 1, replaces: [{name: ''}]}}]"),
        "bad.yaml: descriptors[0].rate_limit.replaces[0].name: a replaced limit needs a name"
    );
    assert_eq!(
        one_error("domain: x\ndescriptors: [{key: a, rate_limit: {name: me, unit: second, requests_per_unit: 1, replaces: [{name: me}]}}]"),
        "bad.yaml: descriptors[0].rate_limit.replaces[0].name: a limit cannot replace itself (value: \"me\")"
    );
    assert_eq!(
        one_error("domain: x\ndescriptors: [{key: a, value: exact, share_threshold: true, rate_limit: {unit: second, requests_per_unit: 1}}]"),
        "bad.yaml: descriptors[0].share_threshold: share_threshold needs a value with a `*` wildcard"
    );
    assert!(one_error("domain: x\ndescriptors: [{key: a").starts_with("bad.yaml: malformed YAML: "));
    assert_eq!(
        one_error("domain: x\ndescriptors: [{key: a, rate_limt: {unit: second}}]"),
        "bad.yaml: descriptors[0].rate_limt: unknown key `rate_limt` (value: \"rate_limt\")"
    );
}

#[test]
fn every_problem_in_every_file_is_reported_and_nothing_loads() {
    let text = errors(&[
        ("one.yaml", "domain: one\ndescriptors: [{key: a, rate_limit: {unit: sec, requests_per_unit: 1}}]"),
        ("good.yaml", "domain: good\ndescriptors: [{key: a, rate_limit: {unit: second, requests_per_unit: 1}}]"),
        ("two.yaml", "domain: two\ndescriptors: [{key: a, rate_limit: {unit: second, requests_per_unit: -1}}, {key: ''}]"),
    ]);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            "one.yaml: descriptors[0].rate_limit.unit: unknown unit `sec`, expected one of: second, minute, hour, day, week, month, year (value: \"sec\")",
            "two.yaml: descriptors[0].rate_limit.requests_per_unit: expected a whole number from 0 to 4294967295 (value: \"-1\")",
            "two.yaml: descriptors[1].key: the descriptor key must not be empty",
        ]
    );
}

#[test]
fn known_keys_out_of_place_are_warnings_as_the_reference_ignores_them() {
    let loaded = load_envoy_files(
        &files(&[(
            "w.yaml",
            "domain: w\nshadow_mode: true\ndescriptors: [{key: a, unit: minute}]",
        )]),
        EnvoyFileOptions::default(),
    )
    .unwrap();
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "w.yaml: shadow_mode: this key has no effect here; ignored",
            "w.yaml: descriptors[0].unit: this key has no effect here; ignored",
        ]
    );
}

#[test]
fn our_extension_keys_out_of_place_are_errors_naming_where_they_belong() {
    let text = errors(&[(
        "x.yaml",
        "domain: x\nalgorithm: gcra\ndescriptors:\n  - key: a\n    burst: 20\n    rate_limit: {unit: second, requests_per_unit: 5, value_regex: \"a.*\"}",
    )]);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            "x.yaml: algorithm: `algorithm` has no effect here: it belongs in a `rate_limit` or an entry of `limits` (value: \"gcra\")",
            "x.yaml: descriptors[0].burst: `burst` has no effect here: it belongs in a `rate_limit` or an entry of `limits` (value: \"20\")",
            "x.yaml: descriptors[0].rate_limit.value_regex: `value_regex` has no effect here: it belongs on a descriptor (value: \"a.*\")",
        ]
    );
}

/// A node's `failure_policy` takes the words, and gives the error, of the
/// policy file's.
#[test]
fn a_descriptors_failure_policy_is_read_as_in_the_policy_file() {
    assert_eq!(
        one_error("domain: x\ndescriptors: [{key: a, failure_policy: maybe}]"),
        "bad.yaml: descriptors[0].failure_policy: unknown failure_policy `maybe`, expected one of: open, closed, local (value: \"maybe\")"
    );
}

#[test]
fn values_may_be_numbers_and_zero_blocks() {
    let config = load(
        "domain: n\ndescriptors: [{key: code, value: 404, rate_limit: {unit: second, requests_per_unit: 0}}]",
    );
    assert_eq!(plan(&config, "n", &[("code", "404")]), "-=0");
}

const MERGING: EnvoyFileOptions = EnvoyFileOptions {
    merge_domains: true,
    count_denied: true,
};

/// The reference's own pair, `merge_domain_key1.yaml` and
/// `merge_domain_key2.yaml`: one domain, a key each.
const MERGE_KEY1: &str = "domain: merge\ndescriptors:\n  - key: key1\n    rate_limit: {unit: minute, requests_per_unit: 10}\n";
const MERGE_KEY2: &str = "domain: merge\ndescriptors:\n  - key: key2\n    rate_limit: {unit: hour, requests_per_unit: 20}\n";

#[test]
fn merged_domains_take_the_descriptors_of_every_file() {
    let config = load_envoy_files(
        &files(&[("key1.yaml", MERGE_KEY1), ("key2.yaml", MERGE_KEY2)]),
        MERGING,
    )
    .unwrap_or_else(|errors| panic!("{errors}"))
    .config;
    assert_eq!(plan(&config, "merge", &[("key1", "a")]), "-=10");
    assert_eq!(plan(&config, "merge", &[("key2", "b")]), "-=20");
}

#[test]
fn merged_domains_refuse_a_descriptor_defined_twice_naming_both_files() {
    let again = "domain: merge\ndescriptors:\n  - key: key1\n    rate_limit: {unit: second, requests_per_unit: 1}\n";
    let error = load_envoy_files(
        &files(&[("key1.yaml", MERGE_KEY1), ("again.yaml", again)]),
        MERGING,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        error,
        "again.yaml: descriptors: domain `merge`: this descriptor is already defined in key1.yaml (value: \"key1\")"
    );
}

#[test]
fn without_merging_a_second_file_of_a_domain_is_the_reference_error() {
    assert_eq!(
        errors(&[("key1.yaml", MERGE_KEY1), ("key2.yaml", MERGE_KEY2)]),
        "key2.yaml: domain: the domain is already configured in key1.yaml (value: \"merge\")"
    );
}

#[test]
fn metric_keys_are_the_reference_stats_keys() {
    let config = load(
        r#"
domain: web
descriptors:
  - key: path
    value: "/api/*"
    rate_limit: {unit: minute, requests_per_unit: 5}
  - key: path
    value: "/v2/*"
    value_to_metric: true
    rate_limit: {unit: minute, requests_per_unit: 5}
  - key: remote_address
    rate_limit: {unit: minute, requests_per_unit: 5}
  - key: tenant
    value: "t-*"
    share_threshold: true
    descriptors:
      - key: user
        detailed_metric: true
        rate_limit: {unit: minute, requests_per_unit: 5}
  - key: plan
    value: gold
    descriptors:
      - key: user
        detailed_metric: true
        rate_limit: {unit: minute, requests_per_unit: 5}
"#,
    );
    let key = |entries: &[(&str, &str)], is_override: bool| {
        config.metric_key("web", entries, is_override)
    };
    assert_eq!(
        key(&[("path", "/api/x")], false).as_deref(),
        Some("web.path_/api/*")
    );
    assert_eq!(
        key(&[("path", "/v2/x")], false).as_deref(),
        Some("web.path_/v2/x")
    );
    assert_eq!(
        key(&[("remote_address", "10.1.2.3")], false).as_deref(),
        Some("web.remote_address")
    );
    assert_eq!(
        key(&[("tenant", "t-1"), ("user", "a:b")], false).as_deref(),
        Some("web.tenant_t-*.user_a_b")
    );
    assert_eq!(
        key(&[("plan", "gold"), ("user", "bob")], false).as_deref(),
        Some("web.plan_gold.user_bob")
    );
    assert_eq!(
        key(&[("remote_address", "10.1.2.3")], true).as_deref(),
        Some("web.remote_address_10_1_2_3")
    );
    assert_eq!(key(&[("nothing", "x")], false), None);
    assert_eq!(
        config.metric_key("other", &[("path", "/api/x")], false),
        None
    );
}
