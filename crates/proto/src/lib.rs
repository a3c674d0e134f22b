//! The ratelimitd gRPC contract (`proto/ratelimit/v1/ratelimit.proto`):
//! messages, the tonic client and server, and the encoded descriptor set that
//! server reflection serves.

/// Package `ratelimit.v1`.
pub mod ratelimit {
    /// Version 1 of the API.
    pub mod v1 {
        tonic::include_proto!("ratelimit.v1");
    }
}

pub use ratelimit::v1;

/// The encoded `FileDescriptorSet` of every file in `proto/`, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ratelimit_descriptor.bin"));

/// The fully qualified name of the `RateLimiter` service, as health and
/// reflection report it.
pub const RATE_LIMITER_SERVICE: &str = "ratelimit.v1.RateLimiter";
