//! Compiles `voltlane/v1/*.proto` with protox (pure Rust, no `protoc` binary) and generates
//! prost messages plus tonic clients and servers. The encoded descriptor set is written to
//! `$OUT_DIR/voltlane_descriptor.bin` for tonic-reflection.

use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &[
    "voltlane/v1/types.proto",
    "voltlane/v1/auth.proto",
    "voltlane/v1/hub.proto",
    "voltlane/v1/ledger.proto",
    "voltlane/v1/channels.proto",
    "voltlane/v1/payments.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for p in PROTOS {
        println!("cargo:rerun-if-changed={p}");
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let fds = protox::compile(PROTOS, ["."])?;
    std::fs::write(out_dir.join("voltlane_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
