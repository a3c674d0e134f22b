//! The listeners' resource limits: an oversized gRPC message or HTTP body
//! is refused while others are served; streams beyond a connection's limit
//! wait (as HTTP/2 has them) while other connections are served;
//! connections beyond the limit wait to be accepted.

use crate::support::{self, check, request, TestOptions, TestServer};
use bytes::Bytes;
use ratelimitd_server::api::limits::Limits;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::Code;

const POLICY: &str = "rules: [{name: all, domain: api, rate: 1000/m}]";

async fn start(limits: Limits) -> TestServer {
    TestServer::start_with(
        POLICY,
        TestOptions {
            limits,
            ..TestOptions::default()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_refused_and_others_are_served() {
    let server = start(Limits {
        max_message_bytes: 4096,
        ..Limits::default()
    })
    .await;
    let mut client = server.client().await;
    let mut huge = request("api", &[]);
    huge.headers.insert("x-padding".into(), "x".repeat(8192));
    let status = client.check_limit(huge).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange);
    assert_eq!(
        status.message(),
        "Error, decoded message length too large: found 8214 bytes, the limit is: 4096 bytes"
    );
    let fits = request("api", &[]);
    assert!(check(&mut client, &fits).await.allowed, "same connection");
    assert!(check(&mut server.client().await, &fits).await.allowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_http_body_gets_413_and_others_are_served() {
    let server = start(Limits {
        max_body_bytes: 1024,
        ..Limits::default()
    })
    .await;
    let padding = "x".repeat(2048);
    let huge = format!(r#"{{"domain": "api", "user": "{padding}"}}"#);
    let (status, _) = support::http(server.http_addr, "POST", "/v1/check", &huge).await;
    assert_eq!(status, 413);
    let (status, body) = support::http(
        server.http_addr,
        "POST",
        "/v1/check",
        r#"{"domain": "api"}"#,
    )
    .await;
    assert_eq!(
        (status, body.contains("\"allowed\":true")),
        (200, true),
        "{body}"
    );
}

/// A CheckLimit in domain `api` as gRPC frames it: the 5-byte prefix
/// (uncompressed, length) and the message (field 1, `domain`).
fn check_limit_frame() -> Vec<u8> {
    let message = [0x0a, 0x03, b'a', b'p', b'i'];
    let mut frame = vec![0, 0, 0, 0, message.len() as u8];
    frame.extend_from_slice(&message);
    frame
}

/// Streams beyond `max_concurrent_streams` on one connection wait for one
/// to end (the server advertises the limit; HTTP/2 clients queue), while
/// another connection is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_beyond_the_limit_wait_and_other_connections_are_served() {
    let server = start(Limits {
        max_concurrent_streams: 2,
        ..Limits::default()
    })
    .await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (sender, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    // The server's SETTINGS (its stream limit) arrive first.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut sender = sender.ready().await.unwrap();
    let call = || {
        http::Request::post(format!(
            "http://{}/ratelimit.v1.RateLimiter/CheckLimit",
            server.addr
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
    };
    // Two calls whose request bodies are not finished hold both streams.
    let frame = check_limit_frame();
    let mut held = Vec::new();
    for _ in 0..2 {
        let (response, mut body) = sender.send_request(call(), false).unwrap();
        body.send_data(Bytes::copy_from_slice(&frame[..3]), false)
            .unwrap();
        held.push((response, body));
        sender = sender.ready().await.unwrap();
    }
    // A third call, complete, is queued by the client for a free stream...
    let (third, _) = sender
        .send_request(call(), false)
        .map(|(response, mut body)| {
            body.send_data(Bytes::from(frame.clone()), true).unwrap();
            (response, body)
        })
        .unwrap();
    let mut third = tokio::spawn(third);
    let waiting = tokio::time::timeout(Duration::from_millis(300), &mut third).await;
    assert!(waiting.is_err(), "no answer while two streams are open");
    // ...while another connection is served.
    assert!(
        check(&mut server.client().await, &request("api", &[]))
            .await
            .allowed
    );
    // Finishing one held call answers it, and the third gets its stream.
    let (response, mut body) = held.pop().unwrap();
    body.send_data(Bytes::copy_from_slice(&frame[3..]), true)
        .unwrap();
    assert_grpc_ok(response.await.unwrap()).await;
    let third = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("answered once a stream is free");
    assert_grpc_ok(third.unwrap().unwrap()).await;
}

/// A successful gRPC answer: HTTP 200, a message, `grpc-status: 0`.
async fn assert_grpc_ok(response: http::Response<h2::RecvStream>) {
    assert_eq!(response.status(), 200);
    let mut answer = response.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = answer.data().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    let trailers = answer.trailers().await.unwrap().unwrap();
    assert_eq!(trailers["grpc-status"], "0");
    assert!(bytes.len() > 5, "a CheckLimitResponse");
}

/// Connections beyond `max_connections` wait to be accepted until one
/// closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let server = start(Limits {
        max_connections: 1,
        ..Limits::default()
    })
    .await;
    let first = TcpStream::connect(server.http_addr).await.unwrap();
    // Let the first be accepted (it takes the only slot).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut second = TcpStream::connect(server.http_addr).await.unwrap();
    second
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    let waiting = tokio::time::timeout(
        Duration::from_millis(300),
        second.read_to_string(&mut response),
    )
    .await;
    assert!(
        waiting.is_err(),
        "not accepted while the first is open: {response}"
    );
    drop(first);
    tokio::time::timeout(Duration::from_secs(5), second.read_to_string(&mut response))
        .await
        .expect("accepted once the first closed")
        .unwrap();
    assert_eq!(support::status_and_body(&response), (200, "ok".to_string()));
}
