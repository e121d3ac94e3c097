//! Compiles `voltlane/v1/*.proto` with protox (pure Rust, no `protoc` binary) and generates
//! prost messages plus tonic clients and servers using `crate::codec::VoltlaneCodec`. The
//! encoded descriptor set is written to `$OUT_DIR/voltlane_descriptor.bin` for
//! tonic-reflection, and `$OUT_DIR/voltlane_wire_messages.rs` says which messages are requests
//! and which responses (the codec's decode errors depend on it).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &[
    "voltlane/v1/types.proto",
    "voltlane/v1/errors.proto",
    "voltlane/v1/auth.proto",
    "voltlane/v1/hub.proto",
    "voltlane/v1/ledger.proto",
    "voltlane/v1/channels.proto",
    "voltlane/v1/mediation.proto",
    "voltlane/v1/payments.proto",
    "voltlane/v1/sessions.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for p in PROTOS {
        println!("cargo:rerun-if-changed={p}");
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let fds = protox::compile(PROTOS, ["."])?;
    std::fs::write(out_dir.join("voltlane_descriptor.bin"), fds.encode_to_vec())?;
    std::fs::write(
        out_dir.join("voltlane_wire_messages.rs"),
        wire_messages(&fds)?,
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::codec::VoltlaneCodec")
        .compile_fds(fds)?;
    Ok(())
}

/// `impl WireMessage` for the input (request) and output (response) message of every method
/// of package `voltlane.v1`. A message used both ways is refused: its decode errors would be
/// ambiguous.
fn wire_messages(fds: &tonic_prost_build::FileDescriptorSet) -> Result<String, String> {
    const PACKAGE: &str = ".voltlane.v1.";
    let mut directions: BTreeMap<String, &str> = BTreeMap::new();
    let methods = fds
        .file
        .iter()
        .flat_map(|f| &f.service)
        .flat_map(|s| &s.method);
    for m in methods {
        for (ty, direction) in [(m.input_type(), "Request"), (m.output_type(), "Response")] {
            let name = ty
                .strip_prefix(PACKAGE)
                .ok_or_else(|| format!("method {} uses {ty} outside voltlane.v1", m.name()))?;
            match directions.insert(name.to_string(), direction) {
                Some(other) if other != direction => {
                    return Err(format!(
                        "voltlane.v1.{name} is both a request and a response message"
                    ))
                }
                _ => {}
            }
        }
    }
    let mut out = String::new();
    for (name, direction) in directions {
        writeln!(
            out,
            "impl WireMessage for crate::v1::{name} {{\n    \
             const NAME: &'static str = \"voltlane.v1.{name}\";\n    \
             const DIRECTION: Direction = Direction::{direction};\n}}"
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(out)
}
