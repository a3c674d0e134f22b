//! `ratelimitd bench`: a load generator for CheckLimit or Envoy's
//! ShouldRateLimit, reporting throughput and latency percentiles
//! (hdrhistogram).

use super::client::{connect, Connection};
use super::{BenchArgs, Target};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code as RlsCode;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use hdrhistogram::Histogram;
use ratelimitd_proto::v1::rate_limiter_client::RateLimiterClient;
use ratelimitd_proto::v1::{CheckLimitRequest, DescriptorEntry};
use serde_json::json;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Which API the load drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchApi {
    /// `ratelimit.v1.RateLimiter/CheckLimit`.
    CheckLimit,
    /// `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`.
    ShouldRateLimit,
}

/// One caller's client and reusable request.
enum Caller {
    Check(RateLimiterClient<Connection>, Box<CheckLimitRequest>),
    Rls(RateLimitServiceClient<Connection>, RateLimitRequest),
}

impl Caller {
    fn new(api: BenchApi, channel: Connection, plan: &BenchPlan) -> Self {
        match api {
            BenchApi::CheckLimit => Self::Check(
                RateLimiterClient::new(channel),
                Box::new(CheckLimitRequest {
                    domain: plan.domain.clone(),
                    descriptors: vec![DescriptorEntry {
                        key: plan.descriptor.clone(),
                        value: String::new(),
                    }],
                    ..CheckLimitRequest::default()
                }),
            ),
            BenchApi::ShouldRateLimit => Self::Rls(
                RateLimitServiceClient::new(channel),
                RateLimitRequest {
                    domain: plan.domain.clone(),
                    descriptors: vec![RateLimitDescriptor {
                        entries: vec![Entry {
                            key: plan.descriptor.clone(),
                            value: String::new(),
                        }],
                        ..RateLimitDescriptor::default()
                    }],
                    hits_addend: 0,
                },
            ),
        }
    }

    /// One call with the descriptor's value set to `value`: whether it was
    /// allowed.
    async fn call(&mut self, value: String) -> Result<bool, tonic::Status> {
        match self {
            Self::Check(client, request) => {
                request.descriptors[0].value = value;
                let response = client.check_limit(*request.clone()).await?;
                Ok(response.get_ref().allowed)
            }
            Self::Rls(client, request) => {
                request.descriptors[0].entries[0].value = value;
                let response = client.should_rate_limit(request.clone()).await?;
                Ok(response.get_ref().overall_code == RlsCode::Ok as i32)
            }
        }
    }
}

/// What load to send.
#[derive(Clone)]
pub struct BenchPlan {
    /// The server, and how to connect to it.
    pub target: Target,
    /// Concurrent callers.
    pub concurrency: usize,
    /// HTTP/2 connections the callers share.
    pub connections: usize,
    /// Measured duration.
    pub duration: Duration,
    /// Unmeasured warm-up before it.
    pub warmup: Duration,
    /// Distinct keys cycled through (the descriptor's values).
    pub keys: u64,
    /// Domain of every request.
    pub domain: String,
    /// Descriptor key whose value varies over `keys`.
    pub descriptor: String,
    /// The API driven.
    pub api: BenchApi,
}

/// What was measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// Requests completed in the measured period.
    pub requests: u64,
    /// Of which allowed.
    pub allowed: u64,
    /// Of which denied.
    pub denied: u64,
    /// Failed calls.
    pub errors: u64,
    /// Measured seconds.
    pub seconds: f64,
    /// Latency histogram in nanoseconds.
    pub latency: Histogram<u64>,
}

#[derive(Default)]
struct Tally {
    allowed: u64,
    denied: u64,
    errors: u64,
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// Runs the load and measures it.
pub async fn run(plan: &BenchPlan) -> anyhow::Result<BenchReport> {
    let mut channels = Vec::new();
    for _ in 0..plan.connections.max(1) {
        channels.push(connect(&plan.target).await?);
    }
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    let mut tasks = Vec::new();
    for worker in 0..plan.concurrency.max(1) {
        let channel = channels[worker % channels.len()].clone();
        let mut caller = Caller::new(plan.api, channel, plan);
        let plan = plan.clone();
        tasks.push(tokio::spawn(async move {
            let mut histogram = new_histogram();
            let mut tally = Tally::default();
            let mut sequence = worker as u64;
            let spread = Spread::new(plan.keys);
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let key = spread.key(sequence);
                sequence += plan.concurrency as u64;
                let result = caller.call(format!("key-{key}")).await;
                if sent < measure_from {
                    continue;
                }
                histogram.saturating_record(sent.elapsed().as_nanos() as u64);
                match result {
                    Ok(true) => tally.allowed += 1,
                    Ok(false) => tally.denied += 1,
                    Err(_) => tally.errors += 1,
                }
            }
            (histogram, tally)
        }));
    }
    let mut latency = new_histogram();
    let mut total = Tally::default();
    for task in tasks {
        let (histogram, tally) = task.await?;
        latency.add(histogram)?;
        total.allowed += tally.allowed;
        total.denied += tally.denied;
        total.errors += tally.errors;
    }
    Ok(BenchReport {
        requests: total.allowed + total.denied + total.errors,
        allowed: total.allowed,
        denied: total.denied,
        errors: total.errors,
        seconds: plan.duration.as_secs_f64(),
        latency,
    })
}

impl BenchReport {
    /// Requests per second.
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    fn micros_at(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1_000.0
    }

    /// The report for people.
    pub fn to_text(&self, plan: &BenchPlan) -> String {
        format!(
            "{} requests in {:.1} s over {} callers, {} connections, {} keys: {:.0} req/s\n\
             allowed {}, denied {}, errors {}\n\
             latency µs: p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
            self.requests,
            self.seconds,
            plan.concurrency,
            plan.connections,
            plan.keys,
            self.throughput(),
            self.allowed,
            self.denied,
            self.errors,
            self.micros_at(0.5),
            self.micros_at(0.9),
            self.micros_at(0.99),
            self.micros_at(0.999),
            self.latency.max() as f64 / 1_000.0,
        )
    }

    /// The report as one JSON object.
    pub fn to_json(&self, plan: &BenchPlan) -> serde_json::Value {
        json!({
            "api": format!("{:?}", plan.api),
            "requests": self.requests,
            "seconds": self.seconds,
            "requests_per_second": self.throughput().round(),
            "concurrency": plan.concurrency,
            "connections": plan.connections,
            "keys": plan.keys,
            "allowed": self.allowed,
            "denied": self.denied,
            "errors": self.errors,
            "latency_us": {
                "p50": self.micros_at(0.5),
                "p90": self.micros_at(0.9),
                "p99": self.micros_at(0.99),
                "p99_9": self.micros_at(0.999),
                "max": self.latency.max() as f64 / 1_000.0,
            },
        })
    }
}

/// Which key each call uses: a multiplicative stride coprime with the
/// number of keys spreads consecutive calls over the keys, and visits every
/// key once in each pass of `keys` calls (so N calls touch min(N, keys)
/// distinct keys).
#[derive(Clone, Copy)]
struct Spread {
    keys: u64,
    stride: u64,
}

impl Spread {
    fn new(keys: u64) -> Self {
        let keys = keys.max(1);
        let gcd = |mut a: u64, mut b: u64| {
            while b != 0 {
                (a, b) = (b, a % b);
            }
            a
        };
        let mut stride = 0x9E37_79B9_7F4A_7C15 % keys;
        while gcd(stride, keys) != 1 {
            stride += 1;
        }
        Self { keys, stride }
    }

    /// The key of call `sequence`.
    fn key(self, sequence: u64) -> u64 {
        let index = u128::from(sequence % self.keys) * u128::from(self.stride);
        (index % u128::from(self.keys)) as u64
    }
}

/// `ratelimitd bench`: runs the load, prints the report.
pub async fn run_bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let plan = BenchPlan {
        target: args.target,
        concurrency: args.concurrency,
        connections: args.connections,
        duration: args.duration,
        warmup: args.warmup,
        keys: args.keys,
        domain: args.domain,
        descriptor: args.descriptor,
        api: args.api,
    };
    let report = run(&plan).await?;
    if !args.json {
        outln!("{}", report.to_text(&plan));
    }
    outln!("{}", report.to_json(&plan));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::Spread;

    #[test]
    fn every_key_is_visited_once_per_pass() {
        for keys in [1, 2, 10, 1_000, 10_000, 65_536] {
            let spread = Spread::new(keys);
            let mut seen: Vec<u64> = (0..keys).map(|sequence| spread.key(sequence)).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..keys).collect::<Vec<_>>(), "{keys} keys");
        }
        assert_ne!(
            Spread::new(10_000).key(1),
            1,
            "consecutive calls are spread"
        );
    }
}
