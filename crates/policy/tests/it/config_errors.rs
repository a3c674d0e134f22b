//! Every configuration error names the file, the path inside it and the bad
//! value.

use ratelimitd_policy::{load, BackendKind, ConfigError, Format};

fn errors(yaml: &str) -> Vec<ConfigError> {
    match load(yaml, Format::Yaml, "conf/ratelimitd.yaml", &[]) {
        Ok(_) => panic!("expected errors for:\n{yaml}"),
        Err(errors) => errors.0,
    }
}

/// The single error's rendering.
fn error(yaml: &str) -> String {
    let all = errors(yaml);
    assert_eq!(all.len(), 1, "expected one error, got {all:#?}");
    all[0].to_string()
}

#[test]
fn unknown_keys_are_errors_at_every_level() {
    assert_eq!(
        error("colour: blue\n").split(", expected").next().unwrap(),
        "conf/ratelimitd.yaml: colour: unknown field `colour`"
    );
    assert!(error("settings: {shadow: true}\n")
        .starts_with("conf/ratelimitd.yaml: settings.shadow: unknown field `shadow`"));
    assert!(error("rules: [{name: a, rate: 1/m, limit: 3}]\n")
        .starts_with("conf/ratelimitd.yaml: rules[0].limit: unknown field `limit`"));
    assert!(
        error("rules: [{name: a, match: {paths: [/x]}, rate: 1/m}]\n")
            .starts_with("conf/ratelimitd.yaml: rules[0].match.paths: unknown field `paths`")
    );
    assert!(
        error("rules: [{name: a, limits: [{rate: 1/m, brust: 3}]}]\n")
            .starts_with("conf/ratelimitd.yaml: rules[0].limits[0].brust: unknown field `brust`")
    );
}

#[test]
fn type_and_choice_errors() {
    assert_eq!(
        error("settings: {ipv4_prefix: abc}\n"),
        "conf/ratelimitd.yaml: settings.ipv4_prefix: invalid type: string \"abc\", expected an integer"
    );
    assert_eq!(
        error("rules: [{name: a, limits: [{rate: 1/m, algorithm: leaky}]}]\n"),
        "conf/ratelimitd.yaml: rules[0].limits[0].algorithm: unknown algorithm `leaky`, expected one of: fixed_window, sliding_window, sliding_log, token_bucket, gcra"
    );
    assert_eq!(
        error("settings: {on_no_match: maybe}\n"),
        "conf/ratelimitd.yaml: settings.on_no_match: unknown on_no_match `maybe`, expected one of: allow, deny"
    );
    assert_eq!(
        error("store: {when_full: evict}\n"),
        "conf/ratelimitd.yaml: store.when_full: unknown when_full `evict`, expected one of: deny, allow"
    );
}

#[test]
fn malformed_yaml_names_the_position() {
    let message = error("rules: [\n");
    assert!(message.starts_with("conf/ratelimitd.yaml: "), "{message}");
    assert!(message.contains("line 2 column 1"), "{message}");
}

#[test]
fn environment_overrides_name_the_variable() {
    let result = load(
        "settings: {}\n",
        Format::Yaml,
        "conf/ratelimitd.yaml",
        &[("RATELIMITD_SETTINGS__SHADOW_MODE".into(), "maybe".into())],
    );
    assert_eq!(
        result.unwrap_err().to_string(),
        "environment variable RATELIMITD_SETTINGS__SHADOW_MODE=maybe: settings.shadow_mode: invalid type: string \"maybe\", expected a boolean"
    );
}

#[test]
fn validation_errors_name_path_and_value() {
    let cases: &[(&str, &str)] = &[
        ("rules: [{name: a, rate: 10/x}]", "rules[0].rate: `x` is not a unit (ms, s, m, h or d) (value: \"10/x\")"),
        ("rules: [{name: a, rate: ten/m}]", "rules[0].rate: `ten` is not a whole number of hits (value: \"ten/m\")"),
        ("rules: [{name: a, limits: [{rate: 10}]}]", "rules[0].limits[0].rate: a rate is `N/period`, e.g. `10/m`, `100/5m`, `1000/hour` (value: \"10\")"),
        ("rules: [{name: '', rate: 1/m}]", "rules[0].name: a rule needs a name (value: \"\")"),
        ("rules: [{name: a}]", "rules[0]: give exactly one of `rate`, `limits` or `unlimited: true`"),
        ("rules: [{name: a, rate: 1/m, unlimited: true}]", "rules[0]: give exactly one of `rate`, `limits` or `unlimited: true`"),
        ("rules: [{name: a, domain: '', rate: 1/m}]", "rules[0].domain: the domain must not be empty (omit it to match every domain) (value: \"\")"),
        ("rules: [{name: a, key: [cookie], rate: 1/m}]", "rules[0].key[0]: `cookie` is not a key part (ip, user, api_key, path, method, header:<name>, descriptor:<key>) (value: \"cookie\")"),
        ("rules: [{name: a, key: ['user|header:'], rate: 1/m}]", "rules[0].key[0]: `header:` is not a key part (ip, user, api_key, path, method, header:<name>, descriptor:<key>) (value: \"user|header:\")"),
        ("rules: [{name: a, match: {descriptors: [{key: ''}]}, rate: 1/m}]", "rules[0].match.descriptors[0].key: a descriptor key must not be empty (value: \"\")"),
        ("rules: [{name: a, match: {descriptors: [{key: k, regex: '('}]}, rate: 1/m}]", "rules[0].match.descriptors[0].regex: invalid regex"),
        ("rules: [{name: a, match: {descriptors: [{key: k, value: v, regex: v}]}, rate: 1/m}]", "rules[0].match.descriptors[0]: give `value` or `regex`, not both"),
        ("rules: [{name: a, match: {descriptors: [{key: k}, {key: k}]}, rate: 1/m}]", "rules[0].match.descriptors[1].key: this key is already matched in this condition (value: \"k\")"),
        ("rules: [{name: a, match: {path: /a, path_prefix: /b}, rate: 1/m}]", "rules[0].match: give `path` or `path_prefix`, not both"),
        ("rules: [{name: a, match: {methods: ['GE T']}, rate: 1/m}]", "rules[0].match.methods[0]: not an HTTP method (value: \"GE T\")"),
        ("rules: [{name: a, match: {client_ip: [10.0.0.0/33]}, rate: 1/m}]", "rules[0].match.client_ip[0]: not an IP address or CIDR network (value: \"10.0.0.0/33\")"),
        ("rules: [{name: a, skip_if: {client_ip: [nope]}, rate: 1/m}]", "rules[0].skip_if.client_ip[0]: not an IP address or CIDR network (value: \"nope\")"),
        ("skip: [{client_ip: [nope]}]", "skip[0].client_ip[0]: not an IP address or CIDR network (value: \"nope\")"),
        ("rules: [{name: a, limits: [{rate: 1/m}, {rate: 2/m}]}]", "rules[0].limits[0].name: name each limit of a rule with several limits"),
        ("rules: [{name: a, limits: [{name: x, rate: 1/m}, {name: x, rate: 2/m}]}]", "rules[0].limits[1].name: another limit of this rule has this name (value: \"x\")"),
        ("rules: [{name: a, limits: [{rate: 1/m, burst: 5}]}]", "rules[0].limits[0].burst: burst applies to token_bucket and gcra only (value: \"5\")"),
        ("rules: [{name: a, limits: [{rate: 1/m, algorithm: gcra, burst: 0}]}]", "rules[0].limits[0].burst: a burst of 0 admits nothing: use a rate of 0 to block (value: \"0\")"),
        ("rules: [{name: a, limits: [{rate: 1/m, algorithm: token_bucket, burst: 5, initial_tokens: 6}]}]", "rules[0].limits[0].initial_tokens: initial_tokens exceed the bucket's capacity (5) (value: \"6\")"),
        ("rules: [{name: a, limits: [{rate: 1/m, algorithm: gcra, initial_tokens: 1}]}]", "rules[0].limits[0].initial_tokens: initial_tokens applies to token_bucket only (value: \"1\")"),
        ("rules: [{name: a, limits: [{rate: 1/m, algorithm: gcra, count_denied: true}]}]", "rules[0].limits[0].count_denied: count_denied applies to fixed_window and sliding_window only (value: \"true\")"),
        ("rules: [{name: a, rate: 1/m, burst: 5}]", "rules[0].burst: burst applies to token_bucket and gcra only (value: \"5\")"),
        ("rules: [{name: a, rate: 1/m, algorithm: gcra, count_denied: true}]", "rules[0].count_denied: count_denied applies to fixed_window and sliding_window only (value: \"true\")"),
        ("rules: [{name: a, limits: [{rate: 1/m}], algorithm: gcra}]", "rules[0].algorithm: `algorithm` goes with `rate:`; each entry of `limits:` takes its own"),
        ("rules: [{name: a, unlimited: true, burst: 3}]", "rules[0].burst: `burst` goes with `rate:`; each entry of `limits:` takes its own"),
        ("rules: [{name: a, rate: 1/m, tiers: [{name: t, when: {users: [x]}, limits: [{rate: 2/m}], initial_tokens: 1}]}]", "rules[0].tiers[0].initial_tokens: `initial_tokens` goes with `rate:`; each entry of `limits:` takes its own"),
        ("rules: [{name: a, rate: 1/m, tiers: [{name: t, when: {users: [x]}}]}]", "rules[0].tiers[0]: give exactly one of `rate`, `limits` or `unlimited: true`"),
        ("rules: [{name: a, rate: 1/m, tiers: [{when: {users: [x]}, rate: 2/m}]}]", "rules[0].tiers[0].name: a tier needs a name (value: \"\")"),
        ("rules: [{name: a, rate: 1/m, group: ''}]", "rules[0].group: a group needs a name (value: \"\")"),
        ("settings: {ipv4_prefix: 33}", "settings.ipv4_prefix: an IPv4 prefix length is at most 32 (value: \"33\")"),
        ("settings: {ipv6_prefix: 129}", "settings.ipv6_prefix: an IPv6 prefix length is at most 128 (value: \"129\")"),
        ("settings: {request: {max_cost: 0}}", "settings.request.max_cost: must be at least 1 (value: \"0\")"),
        ("store: {max_keys: 0}", "store.max_keys: must be at least 1 (value: \"0\")"),
        ("backends: [{name: '', type: memory}]", "backends[0].name: a backend needs a name (value: \"\")"),
        ("backends: [{name: a, type: memory}, {name: a, type: memory}]", "backends[1].name: another backend has this name (value: \"a\")"),
        ("backends: [{name: a, type: etcd}]", "backends[0].type: a backend's type is `memory`, `redis` or `failover` (value: \"etcd\")"),
        ("backends: [{name: a, type: memory}, {name: f, type: failover, members: [a]}]", "backends[1].members: a failover chain needs at least two members"),
        ("backends: [{name: a, type: memory}, {name: f, type: failover, members: [a, b]}]", "backends[1].members[1]: no backend has this name (value: \"b\")"),
        ("backends: [{name: a, type: memory}, {name: f, type: failover, members: [a, a]}]", "backends[1].members[1]: listed twice in this chain (value: \"a\")"),
        ("backends: [{name: a, type: memory}, {name: f, type: failover, members: [a, g]}, {name: g, type: failover, members: [a, a]}]", "backends[1].members[1]: a failover chain cannot contain another chain (value: \"g\")"),
        ("backends: [{name: a, type: memory}, {name: b, type: memory}, {name: f, type: failover, members: [a, b], url: 'redis://h:1'}]", "backends[2].url: applies to redis backends only"),
        ("backends: [{name: a, type: redis, url: 'redis://h:1', members: [x]}]", "backends[0].members: applies to failover backends only"),
        ("backends: [{name: a, type: redis, url: 'redis://h:1', breaker: {failure_threshold: 0}}]", "backends[0].breaker.failure_threshold: must be at least 1 (value: \"0\")"),
        ("backends: [{name: a, type: redis, url: 'redis://h:1', breaker: {recovery_timeout: 5s, max_recovery_timeout: 2s}}]", "backends[0].breaker.max_recovery_timeout: must not be shorter than recovery_timeout (value: \"2s\")"),
        ("settings: {failure_policy: maybe}", "settings.failure_policy: unknown failure_policy `maybe`, expected one of: open, closed, local (value: \"maybe\")"),
        ("settings: {trusted_proxies: [10.0.0.0/8, proxy.internal]}", "settings.trusted_proxies[1]: not an IP address or CIDR network (value: \"proxy.internal\")"),
        ("settings: {ext_authz_domain: ''}", "settings.ext_authz_domain: must not be empty (value: \"\")"),
        ("settings: {local_replicas: 0}", "settings.local_replicas: must be at least 1 (value: \"0\")"),
        ("rules: [{name: r, rate: 1/m, failure_policy: sometimes}]", "rules[0].failure_policy: unknown failure_policy `sometimes`, expected one of: open, closed, local (value: \"sometimes\")"),
        ("backends: [{name: a, type: memory, url: 'redis://x:1'}]", "backends[0].url: applies to redis backends only (a memory backend is sized by `store:`)"),
        ("backends: [{name: a, type: redis}]", "backends[0]: a redis backend needs exactly one of `url`, `sentinel` or `cluster`"),
        ("backends: [{name: a, type: redis, url: 'redis://h:1', cluster: {nodes: ['h:1']}}]", "backends[0]: a redis backend needs exactly one of `url`, `sentinel` or `cluster`"),
        ("backends: [{name: a, type: redis, url: 'http://h:1'}]", "backends[0].url: a Redis URL starts with redis:// (or rediss:// for TLS) (value: \"http://h:1\")"),
        ("backends: [{name: a, type: redis, url: 'rediss://h:1', tls: {cert_file: c.pem}}]", "backends[0].tls: give both cert_file and key_file for a client certificate"),
        ("backends: [{name: a, type: memory, tls: {}}]", "backends[0].tls: applies to redis backends only (a memory backend is sized by `store:`)"),
        ("backends: [{name: a, type: memory, members: [b, c]}]", "backends[0].members: applies to failover backends only"),
        ("backends: [{name: a, type: redis, cluster: {nodes: [h1, 'h2:x']}}]", "backends[0].cluster.nodes[0]: not host:port (value: \"h1\")"),
        ("backends: [{name: a, type: redis, sentinel: {service: '', addresses: ['h:26379']}}]", "backends[0].sentinel.service: name the monitored service (value: \"\")"),
        ("backends: [{name: a, type: redis, sentinel: {service: m, addresses: []}}]", "backends[0].sentinel.addresses: give at least one host:port"),
        ("backends: [{name: a, type: redis, url: 'redis://h:1', pool_size: 0}]", "backends[0].pool_size: must be at least 1 (value: \"0\")"),
        ("backends: [{name: a, type: redis, url: 'redis://h:1', command_timeout: 0ms}]", "backends[0].command_timeout: must be longer than 0 (value: \"0ms\")"),
        ("backends: [{name: a, type: redis, url: 'redis://h:1', key_prefix: '{rl}'}]", "backends[0].key_prefix: must not contain braces (Redis Cluster hash tags) (value: \"{rl}\")"),
        ("backends: [{name: a, type: redis, url: 'redis://h:1', time_source: ntp}]", "backends[0].time_source: unknown time_source, expected one of: engine, redis (value: \"ntp\")"),
        ("backends: [{name: a, type: redis, url: 'redis://h:1', deny_cache: {max_entries: 0}}]", "backends[0].deny_cache.max_entries: must be at least 1 (`enabled: false` turns the cache off) (value: \"0\")"),
        ("backends: [{name: a, type: redis, url: 'redis://h:1', time_source: redis, deny_cache: {enabled: true}}]", "backends[0].deny_cache.enabled: a deny cache counts down on the service's clock, so it cannot answer for `time_source: redis` (value: \"true\")"),
        ("backends: [{name: a, type: memory, deny_cache: {}}]", "backends[0].deny_cache: applies to redis backends only (a memory backend is sized by `store:`)"),
        ("backends: [{name: local, type: memory}]\nrules: [{name: r, rate: 1/m, backend: redis}]", "rules[0].backend: no backend has this name (backends: local) (value: \"redis\")"),
        ("store: {sweep_interval: 0s}", "store.sweep_interval: the sweep interval must be longer than 0 (value: \"0s\")"),
        ("store: {sweep_interval: soon}", "store.sweep_interval: `soon` is not a unit (ms, s, m, h or d) (value: \"soon\")"),
    ];
    for (yaml, expected) in cases {
        let message = errors(yaml)[0].to_string();
        assert!(
            message.starts_with(&format!("conf/ratelimitd.yaml: {expected}")),
            "for {yaml}\n  got:      {message}\n  expected: conf/ratelimitd.yaml: {expected}"
        );
    }
}

#[test]
fn duplicate_rule_names_and_inconsistent_groups() {
    assert_eq!(
        error("rules: [{name: a, rate: 1/m}, {name: a, rate: 2/m}]"),
        "conf/ratelimitd.yaml: rules[1].name: another rule has this name (value: \"a\")"
    );
    assert_eq!(
        error("rules: [{name: a, group: g, rate: 1/m}, {name: b, group: g, rate: 2/m}]"),
        "conf/ratelimitd.yaml: rules[1].rate: group `g` shares limit `default` with rules[0].rate, which declares it differently (value: \"2/m\")"
    );
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let all = errors(
        "rules: [{name: a, rate: 1/x}, {name: b, rate: 2/y}, {name: c, key: [nope], rate: 1/m}]",
    );
    let paths: Vec<&str> = all.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["rules[0].rate", "rules[1].rate", "rules[2].key[0]"]);
}

/// The README's example: a bad rate, an unknown algorithm and an unknown
/// key, in three rules, all reported in one run, in file order.
#[test]
fn unknown_keys_and_choices_do_not_hide_other_errors() {
    let all: Vec<String> = errors(
        "rules:\n  - {name: a, rate: 10/x}\n  - {name: b, limits: [{rate: 1/m, algorithm: leaky}]}\n  - {name: c, rate: 1/m, colour: blue}\n",
    )
    .iter()
    .map(|e| e.to_string().split(", expected one of `").next().unwrap().to_string())
    .collect();
    assert_eq!(
        all,
        [
            "conf/ratelimitd.yaml: rules[0].rate: `x` is not a unit (ms, s, m, h or d) (value: \"10/x\")",
            "conf/ratelimitd.yaml: rules[1].limits[0].algorithm: unknown algorithm `leaky`, expected one of: fixed_window, sliding_window, sliding_log, token_bucket, gcra",
            "conf/ratelimitd.yaml: rules[2].colour: unknown field `colour`",
        ]
    );
}

/// Several unknown keys at several levels, and semantic errors elsewhere;
/// an object with a value taken out reports only that (its other checks
/// would run on defaults: `burst` is no error once `algorithm` is gone).
#[test]
fn every_unknown_key_is_reported_and_consequences_are_not() {
    let all: Vec<String> = errors(
        "colour: blue\nsettings: {shadow: true, ipv4_prefix: 40}\nrules:\n  - {name: a, rate: 1/m, colour: red, size: 3}\n  - {name: b, limits: [{rate: 1/m, algorithm: leaky, burst: 5}]}\n  - {name: '', rate: 1/m}\n",
    )
    .iter()
    .map(|e| e.to_string().split(", expected one of").next().unwrap().to_string())
    .collect();
    assert_eq!(
        all,
        [
            "conf/ratelimitd.yaml: settings.shadow: unknown field `shadow`",
            "conf/ratelimitd.yaml: rules[0].colour: unknown field `colour`",
            "conf/ratelimitd.yaml: rules[0].size: unknown field `size`",
            "conf/ratelimitd.yaml: rules[1].limits[0].algorithm: unknown algorithm `leaky`",
            "conf/ratelimitd.yaml: rules[2].name: a rule needs a name (value: \"\")",
            "conf/ratelimitd.yaml: colour: unknown field `colour`",
        ]
    );
}

/// A Redis backend's deny cache is on unless turned off, or unless Redis's
/// clock decides (which the cache cannot count down on).
#[test]
fn deny_caches_are_on_by_default_where_they_can_be() {
    let cache = |backend: &str| {
        let yaml = format!("backends: [{{name: a, type: redis, url: 'redis://h:1'{backend}}}]");
        let policy = load(&yaml, Format::Yaml, "conf/ratelimitd.yaml", &[]).unwrap();
        match &policy.backends()[0].kind {
            BackendKind::Redis(spec) => spec.deny_cache.map(|cache| cache.max_entries),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(cache(""), Some(100_000));
    assert_eq!(cache(", deny_cache: {max_entries: 500}"), Some(500));
    assert_eq!(cache(", deny_cache: {enabled: false}"), None);
    assert_eq!(cache(", time_source: redis"), None);
    assert_eq!(
        cache(", time_source: redis, deny_cache: {enabled: false}"),
        None
    );
}
