//! What the Redis store is told: where the deployment is, credentials,
//! pool, timeouts, key prefix, clock and TLS; and how that becomes fred's
//! configuration, and a description safe for logs (no password).

use super::RedisTls;
use fred::prelude::{Config, Server, ServerConfig};
use std::time::Duration;

/// Where the Redis deployment is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTopology {
    /// One server: `redis://[user:password@]host:port[/db]`.
    Standalone {
        /// The server's URL.
        url: String,
    },
    /// The master of `service`, as the sentinels (`host:port`) report it.
    Sentinel {
        /// The monitored service's name.
        service: String,
        /// Sentinel addresses, `host:port`.
        sentinels: Vec<String>,
    },
    /// A Redis Cluster, discovered from any of `nodes` (`host:port`).
    Cluster {
        /// Seed nodes.
        nodes: Vec<String>,
    },
}

/// Whose clock the script decides with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeSource {
    /// The engine's clock, passed to the script (exact in tests; replicas
    /// agree within their clock skew).
    #[default]
    Engine,
    /// Redis's `TIME`: callers' clock skew cannot matter.
    Redis,
}

/// How to reach and use a Redis deployment.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// The backend's name in errors, health and metrics.
    pub name: String,
    /// Where it is.
    pub topology: RedisTopology,
    /// ACL user (overrides one in the URL).
    pub username: Option<String>,
    /// Password (overrides one in the URL).
    pub password: Option<String>,
    /// Connections shared by all requests (commands are pipelined on them).
    pub pool_size: usize,
    /// Longest wait for one command.
    pub command_timeout: Duration,
    /// Longest wait for the first connection.
    pub connect_timeout: Duration,
    /// Prepended to every key, so deployments can share one Redis. Must not
    /// contain `{` or `}`.
    pub key_prefix: String,
    /// Whose clock decides.
    pub time_source: TimeSource,
    /// TLS settings; also used, with the system's roots, for `rediss://`.
    pub tls: Option<RedisTls>,
}

impl RedisOptions {
    /// Options for `topology` with the defaults: 4 connections, 20 ms per
    /// command, 5 s to connect, prefix `rl:`, the engine's clock.
    pub fn new(name: &str, topology: RedisTopology) -> Self {
        Self {
            name: name.to_string(),
            topology,
            username: None,
            password: None,
            pool_size: 4,
            command_timeout: Duration::from_millis(20),
            connect_timeout: Duration::from_secs(5),
            key_prefix: "rl:".into(),
            time_source: TimeSource::Engine,
            tls: None,
        }
    }
}

/// `host:port` as fred's `Server`.
fn server(address: &str) -> Result<Server, String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("`{address}` is not host:port"))?;
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("`{address}` has no valid port"))?;
    Ok(Server::new(host, port))
}

/// fred's configuration for `options`: the topology, credentials that
/// override the URL's, and TLS (also for a `rediss://` URL without files).
pub(super) fn fred_config(options: &RedisOptions) -> Result<Config, String> {
    let mut config = match &options.topology {
        RedisTopology::Standalone { url } => {
            Config::from_url(url).map_err(|error| format!("bad URL `{url}`: {error}"))?
        }
        RedisTopology::Sentinel { service, sentinels } => Config {
            server: ServerConfig::Sentinel {
                hosts: sentinels
                    .iter()
                    .map(|s| server(s))
                    .collect::<Result<_, _>>()?,
                service_name: service.clone(),
                username: options.username.clone(),
                password: options.password.clone(),
            },
            ..Config::default()
        },
        RedisTopology::Cluster { nodes } => Config {
            server: ServerConfig::Clustered {
                hosts: nodes.iter().map(|n| server(n)).collect::<Result<_, _>>()?,
                policy: Default::default(),
            },
            ..Config::default()
        },
    };
    if options.username.is_some() {
        config.username = options.username.clone();
    }
    if options.password.is_some() {
        config.password = options.password.clone();
    }
    let rediss = matches!(&options.topology, RedisTopology::Standalone { url } if url.starts_with("rediss://"));
    config.tls = match (&options.tls, rediss) {
        (Some(tls), _) => Some(tls.connector()?.into()),
        (None, true) => Some(RedisTls::default().connector()?.into()),
        (None, false) => None,
    };
    Ok(config)
}

impl RedisTopology {
    /// Where it is, without any password: for logs, errors and `/config`.
    pub fn describe(&self) -> String {
        describe(self)
    }
}

/// Where `topology` is, without any password.
pub(super) fn describe(topology: &RedisTopology) -> String {
    match topology {
        RedisTopology::Standalone { url } => redact(url),
        RedisTopology::Sentinel { service, sentinels } => {
            format!("sentinel service `{service}` via {}", sentinels.join(", "))
        }
        RedisTopology::Cluster { nodes } => format!("cluster {}", nodes.join(", ")),
    }
}

/// A URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted_in_errors() {
        assert_eq!(
            redact("redis://app:s3cret@10.0.0.1:6379/0"),
            "redis://app:***@10.0.0.1:6379/0"
        );
        assert_eq!(redact("redis://10.0.0.1:6379"), "redis://10.0.0.1:6379");
    }
}
