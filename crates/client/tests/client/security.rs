//! TLS and a bearer token against the real service (`serve --tls-*`, an
//! `auth:` identity).

use crate::support::Service;
use ratelimitd_client::{Certificate, CheckLimitRequest, Client, ClientTlsConfig, Error};
use ratelimitd_testkit::TlsFiles;

/// `team-a-token`'s SHA-256.
const TOKEN_SHA256: &str = "06949cc40dd20849eda85dc8ba584ea93f025f083f115c82ab182512e0f64e39";

#[tokio::test]
async fn a_token_over_tls_names_the_identity_and_refusals_are_errors() {
    let files = TlsFiles::generate();
    let policy = format!(
        "auth:\n  identities:\n    - {{name: team-a, tokens: [{{sha256: {TOKEN_SHA256}}}], domains: [team-a]}}\n"
    );
    let (cert, key) = (files.server_cert.display(), files.server_key.display());
    let (cert, key) = (cert.to_string(), key.to_string());
    let service = Service::start_with(&policy, &["--tls-cert", &cert, "--tls-key", &key]);
    let address = service.uri.trim_start_matches("http://").to_string();
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(
        std::fs::read(&files.ca_cert).unwrap(),
    ));
    let client = |token: Option<&str>| {
        let mut builder = Client::builder(address.clone())
            .domain("team-a")
            .timeout(std::time::Duration::from_secs(5))
            .tls(tls.clone());
        if let Some(token) = token {
            builder = builder.bearer_token(token).unwrap();
        }
        builder.build().unwrap()
    };
    let team_a = client(Some("team-a-token"));
    assert!(
        team_a
            .check(CheckLimitRequest::default())
            .await
            .unwrap()
            .allowed
    );
    let other_domain = CheckLimitRequest {
        domain: "team-b".into(),
        ..CheckLimitRequest::default()
    };
    match team_a.check(other_domain).await {
        Err(Error::Unauthorized(message)) => {
            assert_eq!(
                message,
                "identity \"team-a\" may not check domain \"team-b\""
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    match client(None).check(CheckLimitRequest::default()).await {
        Err(Error::Unauthorized(message)) => {
            assert!(
                message.starts_with("anonymous callers are not allowed"),
                "{message}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // The token never shows in the client's Debug.
    let debug = format!("{:?}", client(Some("team-a-token")));
    assert!(!debug.contains("team-a-token"), "{debug}");
}
