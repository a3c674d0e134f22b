//! The `auth:` section and secrets kept in files or the environment: every
//! error names the file, the key and the value (never a secret's value).

use ratelimitd_policy::{load, BackendKind, Format, Permissions, Policy, SecretSource};

const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn policy(yaml: &str) -> Policy {
    load(yaml, Format::Yaml, "conf.yaml", &[]).unwrap_or_else(|errors| panic!("{errors}"))
}

fn errors(yaml: &str) -> Vec<String> {
    match load(yaml, Format::Yaml, "conf.yaml", &[]) {
        Ok(_) => panic!("expected errors for:\n{yaml}"),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn without_an_auth_section_everyone_may_do_everything() {
    let auth = policy("rules: []").auth;
    assert!(!auth.configured);
    assert!(auth.identities.is_empty());
    assert_eq!(auth.anonymous, Some(Permissions::everything()));
}

#[test]
fn identities_compile_with_their_permissions() {
    let auth = policy(&format!(
        "auth:
  identities:
    - name: team-a
      tokens: [{{sha256: {HASH}}}]
      certificate_names: [spiffe://cluster.local/ns/team-a/sa/app]
      domains: [team-a, team-a-*]
      declare_limits: true
  anonymous: {{domains: [public]}}
  metrics_by_identity: true
"
    ))
    .auth;
    assert!(auth.configured && auth.metrics_by_identity);
    let team_a = &auth.identities[0];
    assert_eq!(team_a.name, "team-a");
    assert_eq!(team_a.tokens[0].token_hashes()[0][0], 0x9f);
    assert!(team_a.permissions.declare_limits && !team_a.permissions.operator);
    assert!(team_a.permissions.may_check("team-a-batch"));
    let anonymous = auth.anonymous.unwrap();
    assert!(anonymous.may_check("public") && !anonymous.may_check("team-a"));
    assert!(!anonymous.declare_limits && !anonymous.operator);
}

#[test]
fn every_auth_error_names_its_path_and_value() {
    assert_eq!(
        errors(
            "auth:
  identities:
    - name: anonymous
      tokens: [{sha256: abc}]
    - name: ops
    - name: ops
      certificate_names: [ops.internal, '']
      tokens: [{sha256: x, sha256_env: Y}, {}]
      domains: ['']
    - name: other
      certificate_names: [ops.internal]
"
        ),
        [
            "conf.yaml: auth.identities[0].name: `anonymous` is the name of callers no identity matches (value: \"anonymous\")",
            "conf.yaml: auth.identities[0].tokens[0].sha256: line 1: not a SHA-256 hash (64 hex digits, as `sha256sum` prints) (value: \"abc\")",
            "conf.yaml: auth.identities[1]: an identity needs `tokens` or `certificate_names` to be recognised by",
            "conf.yaml: auth.identities[2].name: another identity has this name (value: \"ops\")",
            "conf.yaml: auth.identities[2].certificate_names[1]: a certificate name cannot be empty (value: \"\")",
            "conf.yaml: auth.identities[2].tokens[0]: give one of `sha256`, `sha256_file` and `sha256_env`",
            "conf.yaml: auth.identities[2].tokens[1]: give one of `sha256`, `sha256_file` and `sha256_env`",
            "conf.yaml: auth.identities[2].domains[0]: a domain cannot be empty (`*` is every domain) (value: \"\")",
            "conf.yaml: auth.identities[3].certificate_names[0]: identity \"ops\" already has this certificate name (value: \"ops.internal\")",
        ]
    );
}

#[test]
fn secrets_are_read_through_the_loaders_reader_and_errors_name_the_source() {
    let mut policy = policy(
        "backends:
  - {name: a, type: redis, url: 'redis://127.0.0.1:1', password_file: /run/secrets/redis}
  - {name: b, type: redis, url: 'redis://127.0.0.1:2', password_env: REDIS_B_PASSWORD}
  - {name: c, type: redis, url: 'redis://127.0.0.1:3', password: inline}
auth:
  identities:
    - name: team-a
      tokens: [{sha256_env: TEAM_A_TOKEN_SHA256}, {sha256_file: /missing}]
",
    );
    let read = |source: &SecretSource| match source {
        SecretSource::File(path) if path == "/run/secrets/redis" => Ok("s3cret\n".to_string()),
        SecretSource::Env(name) if name == "REDIS_B_PASSWORD" => Ok("from-env".to_string()),
        SecretSource::Env(name) if name == "TEAM_A_TOKEN_SHA256" => Ok("not-a-hash".to_string()),
        _ => Err("cannot read it: No such file or directory".to_string()),
    };
    let errors: Vec<String> = policy
        .resolve_secrets("conf.yaml", &read)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            "conf.yaml: auth.identities[0].tokens[0].sha256_env: line 1: not a SHA-256 hash (64 hex digits, as `sha256sum` prints) (value: \"TEAM_A_TOKEN_SHA256\")",
            "conf.yaml: auth.identities[0].tokens[1].sha256_file: cannot read it: No such file or directory (value: \"/missing\")",
        ]
    );
    let passwords: Vec<&str> = policy
        .backends()
        .iter()
        .map(|backend| match &backend.kind {
            BackendKind::Redis(spec) => spec.password.as_ref().unwrap().expose(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(passwords, ["s3cret", "from-env", "inline"]);
}

#[test]
fn a_password_comes_from_one_place_only() {
    assert_eq!(
        errors(
            "backends:
  - {name: a, type: redis, url: 'redis://h:1', password: x, password_env: X}
  - {name: m, type: memory, password_file: /x}
"
        ),
        [
            "conf.yaml: backends[0]: give one of `password`, `password_file` and `password_env`",
            "conf.yaml: backends[1].password_file: applies to redis backends only (a memory backend is sized by `store:`)",
        ]
    );
}
