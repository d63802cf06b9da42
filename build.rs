//! Compiles the wire contract in `proto/` with protox (no system `protoc`) and
//! writes the descriptor set for gRPC reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/google/rpc/error_details.proto",
        "proto/passerelle/v1/common.proto",
        "proto/passerelle/v1/vacancies.proto",
        "proto/passerelle/v1/shortages.proto",
        "proto/passerelle/v1/supply.proto",
        "proto/passerelle/v1/analytics.proto",
        "proto/passerelle/v1/federation.proto",
        "proto/passerelle/v1/admin.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("passerelle_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
