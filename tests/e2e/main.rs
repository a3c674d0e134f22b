//! The end-to-end tests of the `ratelimitd` service, in one test binary:
//! real gRPC and HTTP sockets, the real binary, real `redis-server`
//! processes (the testkit). `support` is the harness: the service started
//! in process by the same composition root as `main` (with a manual clock),
//! or the binary itself.

mod support;

mod admin;
mod cli;
mod declared;
mod deploy;
mod docs_examples;
mod envoy_environment;
mod envoy_rls;
mod ext_authz;
mod grpc_e2e;
mod limits;
mod operations;
mod redis_e2e;
mod resilience_e2e;
mod robustness;
mod security;
mod telemetry;
