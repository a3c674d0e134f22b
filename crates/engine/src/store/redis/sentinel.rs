//! Where a sentinel-managed service's master is, for a pipelined lane: the
//! steps of Redis's guidelines for sentinel clients. Ask each sentinel in
//! turn for the master's address, connect to it, and check with `ROLE` that
//! it is a master still (a sentinel may not have seen a failover yet).
//!
//! The pool's fred clients find the master on their own; a lane looks again
//! each time it opens, and a failover ends it (the sentinels disconnect the
//! old master's clients when they demote it, and a `READONLY` reply ends it
//! too), so the thread takes the pool until a lane to the new master is up.

use super::resp::{self, Stream};
use fred::prelude::TlsConnector;
use fred::types::config::Server;
use redis_protocol::resp2::types::OwnedFrame;
use std::time::Duration;

/// The sentinels of one service, and how to reach and log in to them.
#[derive(Clone)]
pub(super) struct Sentinels {
    pub hosts: Vec<Server>,
    pub service: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl Sentinels {
    /// The master's `host` and `port` as the first sentinel that answers
    /// reports it, each given an equal share of `timeout` (so one that does
    /// not answer at all leaves time for the others); the error names every
    /// sentinel's failure.
    pub(super) async fn master(
        &self,
        tls: Option<&TlsConnector>,
        timeout: Duration,
    ) -> Result<(String, u16), String> {
        let share = timeout / u32::try_from(self.hosts.len().max(1)).unwrap_or(u32::MAX);
        let mut failures = Vec::new();
        for sentinel in &self.hosts {
            let error = match tokio::time::timeout(share, self.ask(sentinel, tls)).await {
                Ok(Ok(master)) => return Ok(master),
                Ok(Err(error)) => error,
                Err(_) => format!("no answer within {share:?}"),
            };
            failures.push(format!("{}:{}: {error}", sentinel.host, sentinel.port));
        }
        Err(format!(
            "no sentinel named the master of `{}` ({})",
            self.service,
            failures.join("; ")
        ))
    }

    async fn ask(
        &self,
        sentinel: &Server,
        tls: Option<&TlsConnector>,
    ) -> Result<(String, u16), String> {
        let name = sentinel.tls_server_name.as_deref();
        let mut stream =
            resp::open(&sentinel.host, sentinel.port, tls.map(|tls| (tls, name))).await?;
        resp::log_in(
            &mut stream,
            self.username.as_deref(),
            self.password.as_deref(),
        )
        .await?;
        let reply = resp::command(
            &mut stream,
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", &self.service],
        )
        .await?;
        let OwnedFrame::Array(address) = reply else {
            return Err("does not know the service".into());
        };
        match address.as_slice() {
            [host, port] => {
                let host = resp::text(host).ok_or("a host that is not text")?;
                let port = resp::text(port)
                    .and_then(|port| port.parse().ok())
                    .ok_or("a port that is not a number")?;
                Ok((host.to_string(), port))
            }
            _ => Err(format!("an address of {} parts", address.len())),
        }
    }
}

/// Refuses a server that is no longer a master.
pub(super) async fn check_master(stream: &mut Box<dyn Stream>) -> Result<(), String> {
    let reply = resp::command(stream, &["ROLE"]).await?;
    let OwnedFrame::Array(items) = &reply else {
        return Err(format!("ROLE: unexpected reply {reply:?}"));
    };
    match items.first().and_then(resp::text) {
        Some("master") => Ok(()),
        role => Err(format!(
            "the sentinels' master is a {} now",
            role.unwrap_or("server of unknown role")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratelimitd_testkit::{
        free_port, require_redis, RedisOptions, RedisSentinelSet, RedisServer,
    };

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_master_passes_and_a_replica_is_refused() {
        if !require_redis() {
            return;
        }
        let master = RedisServer::start();
        let replica = RedisServer::start_with(RedisOptions::default().with_args([
            "--replicaof".to_owned(),
            "127.0.0.1".to_owned(),
            master.port().to_string(),
        ]));
        runtime().block_on(async {
            let mut to_master = resp::open("127.0.0.1", master.port(), None).await.unwrap();
            assert_eq!(check_master(&mut to_master).await, Ok(()));
            let mut to_replica = resp::open("127.0.0.1", replica.port(), None).await.unwrap();
            assert_eq!(
                check_master(&mut to_replica).await,
                Err("the sentinels' master is a slave now".to_string())
            );
        });
    }

    /// A sentinel that takes the connection but never answers has its share
    /// of the time; the next one names the master.
    #[test]
    fn a_silent_sentinel_leaves_time_for_the_next() {
        if !require_redis() {
            return;
        }
        let set = RedisSentinelSet::start();
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let silent_port = silent.local_addr().unwrap().port();
        let (host, port) = set.sentinel_addrs()[0]
            .rsplit_once(':')
            .map(|(host, port)| (host.to_string(), port.parse().unwrap()))
            .unwrap();
        let sentinels = Sentinels {
            hosts: vec![
                Server::new("127.0.0.1", silent_port),
                Server::new(host, port),
            ],
            service: set.service_name().to_string(),
            username: None,
            password: None,
        };
        let asked = runtime().block_on(async {
            tokio::time::timeout(
                Duration::from_secs(3),
                sentinels.master(None, Duration::from_secs(2)),
            )
            .await
        });
        let (host, port) = asked.expect("an answer within the 2 s given").unwrap();
        assert_eq!(format!("{host}:{port}"), set.master_addr());
    }

    #[test]
    fn no_answer_names_every_sentinel() {
        let ports = [free_port(), free_port()];
        let sentinels = Sentinels {
            hosts: ports
                .iter()
                .map(|port| Server::new("127.0.0.1", *port))
                .collect(),
            service: "mymaster".into(),
            username: None,
            password: None,
        };
        let error = runtime()
            .block_on(sentinels.master(None, Duration::from_secs(2)))
            .unwrap_err();
        let [first, second] = ports;
        assert!(
            error.starts_with(&format!(
                "no sentinel named the master of `mymaster` (127.0.0.1:{first}: "
            )) && error.contains(&format!("; 127.0.0.1:{second}: ")),
            "{error}"
        );
    }
}
