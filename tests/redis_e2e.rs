//! ratelimitd processes sharing one real Redis: exact limits across
//! replicas, and clear startup errors when Redis is not there.

mod support;

use ratelimitd_server::check::{check, CheckInput};
use ratelimitd_testkit::{require_redis, RedisServer};
use std::io::Write;
use support::ServeProcess;

fn config_file(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("ratelimitd.yaml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_sharing_redis_admit_exactly_the_limit() {
    if !require_redis() {
        return;
    }
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(
        &dir,
        &format!(
            r#"
backends:
  - {{name: shared, type: redis, url: "{}", command_timeout: 2s}}
rules:
  - name: hundred
    domain: api
    match: {{descriptors: [{{key: tenant}}]}}
    limits: [{{rate: 100/m, algorithm: sliding_log}}]
"#,
            redis.url()
        ),
    );
    let replicas = [
        ServeProcess::spawn(&["--config", &config]),
        ServeProcess::spawn(&["--config", &config]),
    ];
    let mut clients = Vec::new();
    for client in 0..16 {
        let addr = replicas[client % 2].addr.clone();
        clients.push(tokio::spawn(async move {
            let input = CheckInput {
                domain: "api".into(),
                descriptors: vec![("tenant".into(), "acme".into())],
                ..CheckInput::default()
            };
            let mut admitted = 0;
            for _ in 0..20 {
                if check(&addr, &input).await.unwrap().allowed {
                    admitted += 1;
                }
            }
            admitted
        }));
    }
    let mut admitted = 0;
    for client in clients {
        admitted += client.await.unwrap();
    }
    assert_eq!(admitted, 100, "320 requests through two replicas");
    let keys = redis.cli(&["KEYS", "rl:*"]);
    assert_eq!(keys.lines().count(), 1, "{keys}");
    let ttl: i64 = redis.cli(&["PTTL", keys.trim()]).parse().unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "PTTL {ttl}");
}

#[test]
fn serve_names_the_backend_when_redis_is_unreachable_or_refuses() {
    if !require_redis() {
        return;
    }
    let redis =
        RedisServer::start_with(ratelimitd_testkit::RedisOptions::default().with_password("right"));
    let dir = tempfile::tempdir().unwrap();
    let serve = |url: &str| {
        let config = config_file(
            &dir,
            &format!(
                "backends: [{{name: primary, type: redis, url: \"{url}\", connect_timeout: 1s}}]\nrules: []\n"
            ),
        );
        std::process::Command::new(support::BINARY)
            .args(["serve", "--grpc-addr", "127.0.0.1:0", "--config", &config])
            .output()
            .unwrap()
    };
    let refused = serve(&format!("redis://:wrong@{}", redis.addr()));
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!(
            "ratelimitd: backend primary: cannot connect to redis://:***@{}",
            redis.addr()
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("wrong"),
        "the password is not printed: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let port = redis.port();
    drop(redis);
    let unreachable = serve(&format!("redis://127.0.0.1:{port}"));
    assert_eq!(unreachable.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert!(
        stderr.contains(&format!(
            "ratelimitd: backend primary: cannot connect to redis://127.0.0.1:{port}"
        )),
        "{stderr}"
    );
}
