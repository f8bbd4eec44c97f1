//! Compiles proto/ with protox (pure Rust, no system protoc) into tonic/prost code and a descriptor set.
use std::{env, fs, path::PathBuf};

use protox::prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let mut files: Vec<String> = fs::read_dir(root.join("warden/v1"))?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".proto"))
        .map(|name| format!("warden/v1/{name}"))
        .collect();
    files.sort();
    let fds = protox::compile(&files, [&root])?; // Keeps comments, so reflection shows them.
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("warden_descriptor.bin"), fds.encode_to_vec())?;
    // Type names let the server find each request's descriptor and check every string field of
    // every RPC at the edge, whatever the message.
    let mut config = prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds_with_config(fds, config)?;
    // tonic-prost-build prints no rerun-if-changed: without this, edits under proto/ are ignored.
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
