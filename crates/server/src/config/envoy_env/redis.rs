//! A Redis backend from the reference service's `REDIS_*` (or
//! `REDIS_PERSECOND_*`) variables, in its URL formats:
//!
//! - `SINGLE`: `host:port` (or a `redis://` / `rediss://` URL);
//! - `SENTINEL`: `master-name,sentinel1:port,sentinel2:port,...`;
//! - `CLUSTER`: `node1:port,node2:port,...` (seed nodes).
//!
//! `REDIS_AUTH` is `password` or `user:password`, as the reference reads it.

use super::vars::Vars;
use serde_json::{json, Map, Value};

/// Roughly what one denial costs the deny cache, to turn the reference's
/// `LOCAL_CACHE_SIZE_IN_BYTES` into a number of entries.
pub(super) const DENY_CACHE_ENTRY_BYTES: usize = 128;

/// The policy's `backends:` entry named `name` for the variables starting
/// with `prefix` (`REDIS_` or `REDIS_PERSECOND_`).
pub(super) fn backend(vars: &mut Vars, prefix: &str, name: &str, url: &str) -> Value {
    let mut backend = Map::new();
    backend.insert("name".into(), json!(name));
    backend.insert("type".into(), json!("redis"));
    let socket = vars.text(&format!("{prefix}SOCKET_TYPE"));
    if socket
        .as_deref()
        .is_some_and(|s| !s.eq_ignore_ascii_case("tcp"))
    {
        vars.error(
            &format!("{prefix}SOCKET_TYPE"),
            socket.as_deref().unwrap_or_default(),
            "only tcp is supported: set it to tcp and give host:port in the URL",
        );
    }
    let kind = vars
        .text(&format!("{prefix}TYPE"))
        .unwrap_or_else(|| "SINGLE".into());
    let url_variable = format!("{prefix}URL");
    match kind.to_ascii_uppercase().as_str() {
        "SINGLE" => {
            let tls = vars.flag(&format!("{prefix}TLS"));
            backend.insert("url".into(), json!(standalone_url(url, tls)));
        }
        "SENTINEL" => match url.split_once(',') {
            Some((service, sentinels)) if !service.is_empty() && !sentinels.is_empty() => {
                backend.insert(
                    "sentinel".into(),
                    json!({"service": service, "addresses": addresses(sentinels)}),
                );
            }
            _ => vars.error(
                &url_variable,
                url,
                "with REDIS_TYPE=SENTINEL: <master name>,<sentinel1 host:port>,...",
            ),
        },
        "CLUSTER" => {
            backend.insert("cluster".into(), json!({"nodes": addresses(url)}));
        }
        _ => vars.error(
            &format!("{prefix}TYPE"),
            &kind,
            "expected SINGLE, SENTINEL or CLUSTER",
        ),
    }
    if let Some(auth) = vars.text(&format!("{prefix}AUTH")) {
        match auth.split_once(':') {
            Some((user, password)) => {
                backend.insert("username".into(), json!(user));
                backend.insert("password".into(), json!(password));
            }
            None => {
                backend.insert("password".into(), json!(auth));
            }
        }
    }
    if let Some(size) = vars.number(&format!("{prefix}POOL_SIZE")) {
        backend.insert("pool_size".into(), json!(size));
    }
    if let Some(timeout) = vars.duration(&format!("{prefix}TIMEOUT")) {
        backend.insert("command_timeout".into(), json!(timeout));
        backend.insert("connect_timeout".into(), json!(timeout));
    }
    if let Some(prefix) = vars.text("CACHE_KEY_PREFIX") {
        backend.insert("key_prefix".into(), json!(prefix));
    }
    if vars.flag(&format!("{prefix}TLS")) {
        let mut tls = Map::new();
        for (variable, field) in [
            ("REDIS_TLS_CACERT", "ca_file"),
            ("REDIS_TLS_CLIENT_CERT", "cert_file"),
            ("REDIS_TLS_CLIENT_KEY", "key_file"),
        ] {
            if let Some(path) = vars.text(variable) {
                tls.insert(field.into(), json!(path));
            }
        }
        backend.insert("tls".into(), Value::Object(tls));
    }
    let cache_bytes = vars.number("LOCAL_CACHE_SIZE_IN_BYTES").unwrap_or(0);
    backend.insert(
        "deny_cache".into(),
        if cache_bytes == 0 {
            json!({"enabled": false})
        } else {
            json!({"enabled": true, "max_entries": (cache_bytes / DENY_CACHE_ENTRY_BYTES).max(1)})
        },
    );
    Value::Object(backend)
}

/// A standalone server's URL: a `redis://` or `rediss://` URL as given,
/// else `host:port` made one (`rediss://` with `REDIS_TLS`).
fn standalone_url(url: &str, tls: bool) -> String {
    if url.contains("://") {
        url.to_string()
    } else if tls {
        format!("rediss://{url}")
    } else {
        format!("redis://{url}")
    }
}

/// `a:1, b:2` → `["a:1", "b:2"]`.
fn addresses(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|address| !address.is_empty())
        .map(str::to_string)
        .collect()
}
