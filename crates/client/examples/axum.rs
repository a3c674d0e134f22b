//! An axum app limited by ratelimitd: `/` declares 5 a minute per client
//! address, `/search` 10 a minute per user (the `x-user` header, a stand-in
//! for your authentication) or per address for anonymous callers.
//!
//! ```sh
//! cargo run -p ratelimitd-server -- serve        # the example policy accepts declared limits in `web`
//! cargo run -p ratelimitd-client --example axum  # on 127.0.0.1:3000 (APP_ADDR); RATELIMITD_ADDR: the service
//! for i in 1 2 3 4 5 6; do curl -si localhost:3000/ | head -1; done
//! ```

use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::{Extension, Router};
use ratelimitd_client::{Client, Decision, Limit, RateLimitLayer};
use std::net::SocketAddr;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let service = std::env::var("RATELIMITD_ADDR").unwrap_or_else(|_| "127.0.0.1:8081".into());
    let address = std::env::var("APP_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    // Lazily connected: the app starts (and fails open) while the service is down.
    let client = Client::builder(service).domain("web").build()?;
    let peer = |parts: &http::request::Parts| {
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip())
    };
    let home = Router::new().route("/", get(hello)).layer(
        RateLimitLayer::new(client.clone())
            .limit(Limit::new("example.home", "5/m").key("ip"))
            .peer_ip(peer),
    );
    let search = Router::new().route("/search", get(hello)).layer(
        RateLimitLayer::new(client)
            .limit(Limit::new("example.search", "10/m").key("user|ip"))
            .request(|parts, request| {
                if let Some(user) = parts.headers.get("x-user").and_then(|v| v.to_str().ok()) {
                    request.user = user.to_string();
                }
            })
            .peer_ip(peer),
    );
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!("listening on http://{address}");
    axum::serve(
        listener,
        home.merge(search)
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

/// The decision the layer made, in the request's extensions.
async fn hello(Extension(decision): Extension<Decision>) -> String {
    match decision.remaining {
        Some(remaining) => format!("hello; {remaining} left\n"),
        None => format!("hello; {:?} decided without a limit\n", decision.source),
    }
}
