//! Compiles the API's protos with protox, a pure-Rust protobuf compiler, so that building
//! the gateway needs no system `protoc`. The encoded descriptor set is kept in OUT_DIR for
//! the gRPC reflection service.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/fspc/gateway/v1/gateway.proto",
        "proto/fspc/gateway/v1/withholding.proto",
        "proto/fspc/gateway/v1/suspense.proto",
        "proto/fspc/gateway/v1/terminations.proto",
        "proto/fspc/gateway/v1/orders.proto",
        "proto/fspc/gateway/v1/credit.proto",
        "proto/fspc/gateway/v1/explain.proto",
        "proto/fspc/gateway/v1/ledger.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    // sqlx::migrate! embeds the migrations at compile time: a changed or new migration must
    // rebuild the crate (as sqlx documents for stable Rust).
    println!("cargo:rerun-if-changed=migrations");
    let descriptors = protox::compile(protos, ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("gateway_descriptor.bin"), prost::Message::encode_to_vec(&descriptors))?;
    // The CLI's `--json` prints answers by the proto's own JSON mapping (prost-reflect over
    // the descriptor set above), so the messages need no serde derive.
    // Type names let it find each message's descriptor.
    let mut config = prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure().compile_fds_with_config(descriptors, config)?;
    Ok(())
}
