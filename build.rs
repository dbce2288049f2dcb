//! Compiles the API's protos with protox, a pure-Rust protobuf compiler, so that building
//! the gateway needs no system `protoc`. The encoded descriptor set is kept in OUT_DIR for
//! the gRPC reflection service.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/fspc/gateway/v1/gateway.proto"];
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(protos, ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("gateway_descriptor.bin"), prost::Message::encode_to_vec(&descriptors))?;
    // Messages derive Serialize so the CLI's `--json` prints the server's answer as it is.
    tonic_prost_build::configure().type_attribute(".fspc.gateway.v1", "#[derive(serde::Serialize)]").compile_fds(descriptors)?;
    Ok(())
}
