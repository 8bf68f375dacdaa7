//! Generate the gRPC code from ../../proto with protox (pure Rust: no protoc needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let file = root.join("quantfarm/v1/harness.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let fds = protox::compile([&file], [&root])?;
    tonic_prost_build::configure()
        // The consumers pick their own transport (tonic's `transport` feature).
        .build_transport(false)
        .compile_fds(fds)?;
    Ok(())
}
