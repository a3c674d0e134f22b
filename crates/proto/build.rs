//! Compiles `proto/` with protox (pure Rust: no `protoc` needed on the machine)
//! and generates the tonic client and server, the messages' protobuf JSON
//! mapping (pbjson: what grpcurl and `POST /v1/check` speak) and the
//! descriptor set used by server reflection.
use prost::Message;
use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let file = proto_root.join("ratelimit/v1/ratelimit.proto");
    println!("cargo:rerun-if-changed={}", file.display());

    let descriptors = protox::compile([&file], [&proto_root])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let encoded = descriptors.encode_to_vec();
    fs::write(out_dir.join("ratelimit_descriptor.bin"), &encoded)?;
    // Response headers in name order: stable output for people and tests.
    let sorted_map = ".ratelimit.v1.CheckLimitResponse";
    tonic_prost_build::configure()
        .btree_map(sorted_map)
        .compile_fds(descriptors)?;
    pbjson_build::Builder::new()
        .register_descriptors(&encoded)?
        .btree_map([sorted_map])
        .build(&[".ratelimit.v1"])?;
    Ok(())
}
