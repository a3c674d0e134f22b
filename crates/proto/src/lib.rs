//! The ratelimitd gRPC contract (`proto/ratelimit/v1/ratelimit.proto`):
//! messages (with serde in the protobuf JSON mapping: lowerCamelCase names,
//! enums by name, 64-bit numbers as strings, defaults left out), the tonic
//! client and server, and the encoded descriptor set that server reflection
//! serves.

/// Package `ratelimit.v1`.
pub mod ratelimit {
    /// Version 1 of the API.
    pub mod v1 {
        tonic::include_proto!("ratelimit.v1");
        include!(concat!(env!("OUT_DIR"), "/ratelimit.v1.serde.rs"));
    }
}

pub use ratelimit::v1;

/// The encoded `FileDescriptorSet` of every file in `proto/`, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ratelimit_descriptor.bin"));

/// The fully qualified name of the `RateLimiter` service, as health and
/// reflection report it.
pub const RATE_LIMITER_SERVICE: &str = "ratelimit.v1.RateLimiter";
