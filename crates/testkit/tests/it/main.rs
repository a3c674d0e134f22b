//! The test kit's integration tests, one binary: every topology against
//! real redis-server processes (`harness`), and the fault-injecting proxy
//! in front of one (`proxy`).

mod harness;
mod proxy;
mod support;
