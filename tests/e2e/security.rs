//! TLS, mutual TLS, certificate rotation, authentication and authorisation
//! on both ports, and secrets that never show: over real sockets, with
//! certificates made by `openssl` (the testkit).

use crate::support::{
    check_at, http_request, parse_response, request, HttpResponse, ServeProcess, TestOptions,
    TestServer,
};
use ratelimitd_proto::v1::admin_client::AdminClient;
use ratelimitd_proto::v1::rate_limiter_client::RateLimiterClient;
use ratelimitd_proto::v1::{BackendsRequest, CheckLimitRequest, DeclaredLimit};
use ratelimitd_server::tls::{ClientAuth, TlsFiles as ServerTls};
use ratelimitd_testkit::{RedisOptions, RedisServer, TlsFiles};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

fn server_tls(files: &TlsFiles, client_auth: Option<ClientAuth>) -> ServerTls {
    ServerTls {
        cert: files.server_cert.clone(),
        key: files.server_key.clone(),
        client_ca: client_auth.map(|_| files.ca_cert.clone()),
        client_auth: client_auth.unwrap_or(ClientAuth::Required),
    }
}

async fn tls_server(yaml: &str, tls: ServerTls) -> TestServer {
    TestServer::start_with(
        yaml,
        TestOptions {
            tls: Some(tls),
            ..TestOptions::default()
        },
    )
    .await
}

/// A gRPC channel over TLS trusting `ca`, presenting `client` if given.
async fn tls_channel(
    addr: SocketAddr,
    ca: &Path,
    client: Option<(&Path, &Path)>,
) -> Result<Channel, String> {
    let mut tls =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(std::fs::read(ca).unwrap()));
    if let Some((cert, key)) = client {
        tls = tls.identity(Identity::from_pem(
            std::fs::read(cert).unwrap(),
            std::fs::read(key).unwrap(),
        ));
    }
    Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .map_err(|error| format!("{error:?}"))
}

/// One CheckLimit on `channel` with `token` as a bearer token: the
/// decision's `allowed`, or the status code and message.
async fn check_on(
    channel: &Channel,
    token: Option<&str>,
    request: CheckLimitRequest,
) -> Result<bool, (tonic::Code, String)> {
    let mut call = tonic::Request::new(request);
    if let Some(token) = token {
        call.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    RateLimiterClient::new(channel.clone())
        .check_limit(call)
        .await
        .map(|response| response.into_inner().allowed)
        .map_err(|status| (status.code(), status.message().to_string()))
}

/// Connects over TLS (trusting `ca`, presenting `client`) and checks once.
async fn tls_check(
    addr: SocketAddr,
    ca: &Path,
    client: Option<(&Path, &Path)>,
) -> Result<bool, String> {
    let channel = tls_channel(addr, ca, client).await?;
    check_on(&channel, None, request("web", &[]))
        .await
        .map_err(|(code, message)| format!("{code:?}: {message}"))
}

/// A raw TLS connection (rustls, trusting `ca`, presenting `client`),
/// offering `alpn`.
async fn tls_stream(
    addr: SocketAddr,
    ca: &Path,
    client: Option<(&Path, &Path)>,
    alpn: &[u8],
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(cert)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
}

/// One HTTPS request: the response, or the I/O error that ended it.
async fn https(
    addr: SocketAddr,
    ca: &Path,
    client: Option<(&Path, &Path)>,
    path: &str,
    headers: &str,
    body: &str,
) -> Result<HttpResponse, String> {
    let mut stream = tls_stream(addr, ca, client, b"http/1.1")
        .await
        .map_err(|error| error.to_string())?;
    let method = if body.is_empty() { "GET" } else { "POST" };
    let text = http_request(addr, method, path, headers, body);
    // With TLS 1.3 a refused client certificate shows at the first read.
    use tokio::io::AsyncWriteExt;
    stream
        .write_all(text.as_bytes())
        .await
        .map_err(|error| error.to_string())?;
    let mut response = Vec::new();
    use tokio::io::AsyncReadExt;
    match stream.read_to_end(&mut response).await {
        Err(error) if response.is_empty() => Err(error.to_string()),
        _ if response.is_empty() => Err("closed without a response".into()),
        _ => Ok(parse_response(&String::from_utf8_lossy(&response))),
    }
}

const OPEN_POLICY: &str = "rules: []\n";

#[tokio::test]
async fn a_tls_listener_refuses_plaintext_and_serves_clients_trusting_its_ca() {
    let files = TlsFiles::generate();
    let server = tls_server(OPEN_POLICY, server_tls(&files, None)).await;

    // gRPC: a plaintext client gets no answer; a client trusting the CA does.
    let plaintext = RateLimiterClient::connect(format!("http://{}", server.addr)).await;
    let refused = match plaintext {
        Err(_) => true,
        Ok(mut client) => client.check_limit(request("web", &[])).await.is_err(),
    };
    assert!(refused, "a plaintext gRPC client was served");
    assert_eq!(tls_check(server.addr, &files.ca_cert, None).await, Ok(true));

    // HTTP: plaintext gets no HTTP answer; TLS does.
    let plain = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .unwrap();
    let mut plain = plain;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = plain
        .write_all(http_request(server.http_addr, "GET", "/healthz", "", "").as_bytes())
        .await;
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer).await;
    assert!(
        !String::from_utf8_lossy(&answer).starts_with("HTTP/1.1"),
        "a plaintext HTTP client was answered"
    );
    let healthz = https(server.http_addr, &files.ca_cert, None, "/healthz", "", "")
        .await
        .unwrap();
    assert_eq!((healthz.status, healthz.body.as_str()), (200, "ok"));

    // A client trusting another CA refuses the server.
    let other = TlsFiles::generate();
    assert!(tls_check(server.addr, &other.ca_cert, None).await.is_err());
    server.stop().await;
}

#[tokio::test]
async fn mutual_tls_refuses_clients_without_a_certificate_or_from_another_ca() {
    let files = TlsFiles::generate();
    let other = TlsFiles::generate();
    let server = tls_server(OPEN_POLICY, server_tls(&files, Some(ClientAuth::Required))).await;
    let ours = Some((files.client_cert.as_path(), files.client_key.as_path()));
    let theirs = Some((other.client_cert.as_path(), other.client_key.as_path()));

    assert_eq!(tls_check(server.addr, &files.ca_cert, ours).await, Ok(true));
    assert!(tls_check(server.addr, &files.ca_cert, None).await.is_err());
    assert!(tls_check(server.addr, &files.ca_cert, theirs)
        .await
        .is_err());

    let healthz = |client| https(server.http_addr, &files.ca_cert, client, "/healthz", "", "");
    assert_eq!(healthz(ours).await.unwrap().status, 200);
    assert!(healthz(None).await.is_err());
    assert!(healthz(theirs).await.is_err());
    server.stop().await;
}

#[tokio::test]
async fn a_rotated_certificate_is_served_to_new_connections_while_open_ones_go_on() {
    let files = TlsFiles::generate();
    let server = tls_server(OPEN_POLICY, server_tls(&files, None)).await;
    let served = |stream: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>| {
        stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    };
    let open = tls_channel(server.addr, &files.ca_cert, None)
        .await
        .unwrap();
    assert_eq!(check_on(&open, None, request("web", &[])).await, Ok(true));
    let before = tls_stream(server.addr, &files.ca_cert, None, b"h2")
        .await
        .unwrap();
    let old_cert = served(&before);

    let new_pem = files.rotate_server();
    let new_cert = CertificateDer::from_pem_slice(new_pem.as_bytes())
        .unwrap()
        .to_vec();
    assert_ne!(old_cert, new_cert);
    for port in [server.addr, server.http_addr] {
        let alpn: &[u8] = if port == server.addr {
            b"h2"
        } else {
            b"http/1.1"
        };
        let after = tls_stream(port, &files.ca_cert, None, alpn).await.unwrap();
        assert_eq!(
            served(&after),
            new_cert,
            "port {port} serves the old certificate"
        );
    }
    // The connection opened before the rotation still works.
    assert_eq!(check_on(&open, None, request("web", &[])).await, Ok(true));

    // A rotation to files that do not fit keeps the last good ones.
    std::fs::write(&files.server_key, "not a key").unwrap();
    let after = tls_stream(server.addr, &files.ca_cert, None, b"h2")
        .await
        .unwrap();
    assert_eq!(served(&after), new_cert);
    server.stop().await;
}

#[tokio::test]
async fn tls_configuration_errors_name_the_file_and_the_problem() {
    let files = TlsFiles::generate();
    let other = TlsFiles::generate();
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let error = |tls: ServerTls| tls.server_config(&[b"h2"]).unwrap_err().to_string();
    let with = |cert: &PathBuf, key: &PathBuf, ca: Option<&PathBuf>| ServerTls {
        cert: cert.clone(),
        key: key.clone(),
        client_ca: ca.cloned(),
        client_auth: ClientAuth::Required,
    };
    let missing = dir.path().join("missing.crt");
    assert_eq!(
        error(with(&missing, &files.server_key, None)),
        format!(
            "TLS certificate file {}: cannot read it: No such file or directory (os error 2)",
            missing.display()
        )
    );
    assert_eq!(
        error(with(&empty, &files.server_key, None)),
        format!(
            "TLS certificate file {}: no certificate in it (expecting PEM `-----BEGIN CERTIFICATE-----`)",
            empty.display()
        )
    );
    assert_eq!(
        error(with(&files.server_cert, &files.server_cert, None)),
        format!(
            "TLS key file {}: no private key in it (no items found; expecting PEM `-----BEGIN PRIVATE KEY-----`)",
            files.server_cert.display()
        )
    );
    assert_eq!(
        error(with(&files.server_cert, &other.server_key, None)),
        format!(
            "TLS key file {} does not match the certificate in {}",
            other.server_key.display(),
            files.server_cert.display()
        )
    );
    assert_eq!(
        error(with(&files.server_cert, &files.server_key, Some(&empty))),
        format!(
            "TLS client CA file {}: no certificate in it (expecting PEM `-----BEGIN CERTIFICATE-----`)",
            empty.display()
        )
    );
}

/// SHA-256 in hex, as `sha256sum` prints it.
fn sha256_hex(token: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn auth_policy() -> String {
    format!(
        "declared:
  domains: [team-a, team-b]
auth:
  metrics_by_identity: true
  identities:
    - name: team-a
      tokens: [{{sha256: {}}}]
      domains: [team-a, team-a-*]
    - name: team-b
      certificate_names: [spiffe://cluster.local/ns/team-b/sa/app]
      domains: [team-b]
      declare_limits: true
    - name: ops
      tokens: [{{sha256: {}}}]
      domains: ['*']
      operator: true
",
        sha256_hex("team-a-token"),
        sha256_hex("ops-token")
    )
}

fn declaring(domain: &str) -> CheckLimitRequest {
    CheckLimitRequest {
        limits: vec![DeclaredLimit {
            name: "v".into(),
            key: vec!["ip".into()],
            rate: "5/m".into(),
            ..DeclaredLimit::default()
        }],
        client_ip: "10.0.0.1".into(),
        ..request(domain, &[])
    }
}

fn denied(message: &str) -> Result<bool, (tonic::Code, String)> {
    Err((tonic::Code::PermissionDenied, message.to_string()))
}

#[tokio::test]
async fn tokens_and_certificate_identities_get_exactly_their_permissions() {
    let files = TlsFiles::generate();
    let (team_b_cert, team_b_key) = files.issue_client(
        "team-b",
        "team-b app",
        "URI:spiffe://cluster.local/ns/team-b/sa/app",
    );
    let team_b = Some((team_b_cert.as_path(), team_b_key.as_path()));
    let server = tls_server(
        &auth_policy(),
        server_tls(&files, Some(ClientAuth::Optional)),
    )
    .await;
    let plain = tls_channel(server.addr, &files.ca_cert, None)
        .await
        .unwrap();
    let certified = tls_channel(server.addr, &files.ca_cert, team_b)
        .await
        .unwrap();
    let (team_a, ops) = (Some("team-a-token"), Some("ops-token"));

    // Authentication.
    assert_eq!(
        check_on(&plain, None, request("team-a", &[])).await,
        Err((
            tonic::Code::Unauthenticated,
            "anonymous callers are not allowed: send a bearer token (authorization: Bearer …) or a client certificate of a known identity".into()
        ))
    );
    assert_eq!(
        check_on(&plain, Some("guess"), request("team-a", &[])).await,
        Err((
            tonic::Code::Unauthenticated,
            "the bearer token matches no identity".into()
        ))
    );
    let (other_cert, other_key) =
        files.issue_client("stranger", "stranger", "DNS:stranger.internal");
    let stranger = tls_channel(
        server.addr,
        &files.ca_cert,
        Some((other_cert.as_path(), other_key.as_path())),
    )
    .await
    .unwrap();
    assert_eq!(
        check_on(&stranger, None, request("team-a", &[])).await,
        Err((
            tonic::Code::Unauthenticated,
            "the client certificate (names: stranger.internal, stranger) matches no identity, and anonymous callers are not allowed".into()
        ))
    );

    // Domains: CheckLimit.
    assert_eq!(
        check_on(&plain, team_a, request("team-a", &[])).await,
        Ok(true)
    );
    assert_eq!(
        check_on(&plain, team_a, request("team-a-batch", &[])).await,
        Ok(true)
    );
    assert_eq!(
        check_on(&plain, team_a, request("team-b", &[])).await,
        denied("identity \"team-a\" may not check domain \"team-b\"")
    );
    assert_eq!(
        check_on(&certified, None, request("team-b", &[])).await,
        Ok(true)
    );
    assert_eq!(
        check_on(&certified, None, request("team-a", &[])).await,
        denied("identity \"team-b\" may not check domain \"team-a\"")
    );
    // Declared limits.
    assert_eq!(
        check_on(&plain, team_a, declaring("team-a")).await,
        denied("identity \"team-a\" may not declare limits (the request's `limits`)")
    );
    assert_eq!(
        check_on(&certified, None, declaring("team-b")).await,
        Ok(true)
    );

    // ShouldRateLimit.
    use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
    use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
    let mut rls = tonic::Request::new(RateLimitRequest {
        domain: "team-b".into(),
        ..RateLimitRequest::default()
    });
    rls.metadata_mut()
        .insert("authorization", "Bearer team-a-token".parse().unwrap());
    let status = RateLimitServiceClient::new(plain.clone())
        .should_rate_limit(rls)
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (
            tonic::Code::PermissionDenied,
            "identity \"team-a\" may not check domain \"team-b\""
        )
    );

    // Admin: operators only.
    let backends = |channel: &Channel, token: Option<&str>| {
        let mut call = tonic::Request::new(BackendsRequest {});
        if let Some(token) = token {
            call.metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        let mut client = AdminClient::new(channel.clone());
        async move {
            client
                .backends(call)
                .await
                .map(|_| true)
                .map_err(|status| (status.code(), status.message().to_string()))
        }
    };
    assert_eq!(
        backends(&plain, team_a).await,
        denied("identity \"team-a\" is not an operator, which calling /ratelimit.v1.Admin/Backends needs")
    );
    assert_eq!(backends(&plain, ops).await, Ok(true));

    // Health needs no credentials.
    let health = tonic_health::pb::health_client::HealthClient::new(plain.clone())
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await;
    assert!(health.is_ok());

    // HTTP: the same identities, 401 and 403.
    let ca = &files.ca_cert;
    let post = |client, token: &str, path: &'static str, body: String| {
        let headers = if token.is_empty() {
            String::new()
        } else {
            format!("authorization: Bearer {token}\r\n")
        };
        async move {
            https(server.http_addr, ca, client, path, &headers, &body)
                .await
                .unwrap()
        }
    };
    let team_b_body = r#"{"domain":"team-b"}"#.to_string();
    let response = post(None, "", "/v1/check", team_b_body.clone()).await;
    assert_eq!(response.status, 401);
    assert_eq!(response.header("www-authenticate"), Some("Bearer"));
    let response = post(None, "team-a-token", "/v1/check", team_b_body.clone()).await;
    assert_eq!(
        (response.status, response.body.as_str()),
        (
            403,
            r#"{"code":"PERMISSION_DENIED","message":"identity \"team-a\" may not check domain \"team-b\""}"#
        )
    );
    assert_eq!(post(team_b, "", "/v1/check", team_b_body).await.status, 200);
    let json = r#"{"domain":"team-b","descriptors":[]}"#.to_string();
    assert_eq!(post(None, "team-a-token", "/json", json).await.status, 403);
    let config = |token: &'static str| async move {
        let headers = format!("authorization: Bearer {token}\r\n");
        https(server.http_addr, ca, None, "/config", &headers, "")
            .await
            .unwrap()
    };
    let response = config("team-a-token").await;
    assert_eq!(
        (response.status, response.body.as_str()),
        (
            403,
            r#"{"code":"PERMISSION_DENIED","message":"identity \"team-a\" is not an operator, which /config needs"}"#
        )
    );
    let response = config("ops-token").await;
    assert_eq!(response.status, 200);
    // Identities show in /config, their token hashes never.
    let config: serde_json::Value = serde_json::from_str(&response.body).unwrap();
    assert_eq!(
        config["auth"]["identities"][0],
        serde_json::json!({
            "name": "team-a",
            "tokens": 1,
            "certificate_names": [],
            "permissions": {"domains": ["team-a", "team-a-*"], "declare_limits": false, "operator": false},
        })
    );
    assert!(
        !response.body.contains(&sha256_hex("ops-token")),
        "{}",
        response.body
    );
    let metrics = https(server.http_addr, ca, None, "/metrics", "", "")
        .await
        .unwrap();
    assert_eq!(metrics.status, 200);
    for line in [
        r#"ratelimitd_auth_calls_total{identity="team-a",result="permission_denied"} 7"#,
        r#"ratelimitd_auth_calls_total{identity="*",result="unauthenticated"} 4"#,
    ] {
        assert!(
            metrics.body.contains(line),
            "no {line} in\n{}",
            metrics.body
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn anonymous_callers_get_the_anonymous_permissions_only() {
    let server = TestServer::start(&format!(
        "{}  anonymous: {{domains: [public]}}\n",
        auth_policy()
    ))
    .await;
    let channel = server.channel().await;
    assert_eq!(
        check_on(&channel, None, request("public", &[])).await,
        Ok(true)
    );
    assert_eq!(
        check_on(&channel, None, request("team-a", &[])).await,
        denied("identity \"anonymous\" may not check domain \"team-a\"")
    );
    // A token still names its identity.
    assert_eq!(
        check_on(&channel, Some("team-a-token"), request("team-a", &[])).await,
        Ok(true)
    );
    let (status, body) = crate::support::http(server.http_addr, "GET", "/config", "").await;
    assert_eq!(
        (status, body.as_str()),
        (
            403,
            r#"{"code":"PERMISSION_DENIED","message":"identity \"anonymous\" is not an operator, which /config needs"}"#
        )
    );
    server.stop().await;
}

#[tokio::test]
async fn redis_passwords_from_a_file_and_the_environment_reach_redis_and_never_show() {
    if !ratelimitd_testkit::require_programs(&["redis-server"], "apt-get install redis-server") {
        return;
    }
    let file_password = "file-s3cret-7f1c";
    let env_password = "env-s3cret-93ab";
    let by_file = RedisServer::start_with(RedisOptions::default().with_password(file_password));
    let by_env = RedisServer::start_with(RedisOptions::default().with_password(env_password));
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("redis-password");
    std::fs::write(&password_file, format!("{file_password}\n")).unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "settings: {{failure_policy: closed}}
backends:
  - {{name: by-file, type: redis, url: '{}', password_file: '{}', command_timeout: 2s}}
  - {{name: by-env, type: redis, url: '{}', password_env: RL_TEST_REDIS_PASSWORD, command_timeout: 2s}}
rules:
  - {{name: a, domain: a, backend: by-file, key: [ip], limits: [{{rate: 2/m}}]}}
  - {{name: b, domain: b, backend: by-env, key: [ip], limits: [{{rate: 2/m}}]}}
",
            by_file.url(),
            password_file.display(),
            by_env.url()
        ),
    )
    .unwrap();
    let service = ServeProcess::spawn_with_env(
        &["--config", policy.to_str().unwrap(), "--log", "debug"],
        &[("RL_TEST_REDIS_PASSWORD", env_password)],
    );
    for (domain, redis) in [("a", &by_file), ("b", &by_env)] {
        let asked = CheckLimitRequest {
            client_ip: "10.1.1.1".into(),
            ..request(domain, &[])
        };
        let decision = check_at(&service.addr, &asked).await;
        assert!(decision.allowed, "{domain}: {decision:?}");
        // The counter is in that Redis: the password reached it.
        let keys = redis.cli(&["KEYS", "*"]);
        assert!(
            keys.contains("{"),
            "no counter in {domain}'s Redis: {keys:?}"
        );
    }
    let (status, config) =
        crate::support::http(service.http_addr.parse().unwrap(), "GET", "/config", "").await;
    assert_eq!(status, 200);
    assert!(config.contains(r#""password":"***""#), "{config}");
    let mut log = service.startup_log.join("\n");
    log.push_str(&service.startup_line);
    while let Ok(line) = service.log.try_recv() {
        log.push_str(&line);
    }
    // A policy without `auth:` says at start that it is open.
    assert!(
        log.contains("no auth: section: every caller is anonymous and may do everything"),
        "{log}"
    );
    for secret in [file_password, env_password] {
        assert!(
            !config.contains(secret),
            "/config shows a password: {config}"
        );
        assert!(!log.contains(secret), "the log shows a password: {log}");
    }
}

#[tokio::test]
async fn auth_reloads_with_the_policy_and_a_bad_reload_keeps_it() {
    use ratelimitd_server::service::reload::reload;
    let server = TestServer::start_with(
        &auth_policy(),
        TestOptions {
            no_watch: true,
            ..TestOptions::default()
        },
    )
    .await;
    let channel = server.channel().await;
    let team_a = Some("team-a-token");
    assert_eq!(
        check_on(&channel, team_a, request("shared", &[])).await,
        denied("identity \"team-a\" may not check domain \"shared\"")
    );
    let policy = server.sources().policy_file.unwrap();
    std::fs::write(
        &policy,
        auth_policy().replace("[team-a, team-a-*]", "[team-a, shared]"),
    )
    .unwrap();
    reload(&server.state, &server.sources()).unwrap();
    assert_eq!(
        check_on(&channel, team_a, request("shared", &[])).await,
        Ok(true)
    );

    std::fs::write(
        &policy,
        auth_policy().replace("domains: [team-a, team-a-*]", "domains: ['']"),
    )
    .unwrap();
    let errors = reload(&server.state, &server.sources())
        .unwrap_err()
        .to_string();
    assert!(
        errors.ends_with("auth.identities[0].domains[0]: a domain cannot be empty (`*` is every domain) (value: \"\")"),
        "{errors}"
    );
    assert_eq!(
        check_on(&channel, team_a, request("shared", &[])).await,
        Ok(true)
    );
    server.stop().await;
}
