//! Generate the gRPC code from ../../proto with protox (pure Rust: no protoc needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not with env!(): the build-script binary is cached by a hash that
    // does not include the checkout's path, so a clone elsewhere sharing the target
    // directory would otherwise look for the .proto file under the first clone's path.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")?;
    let root = std::path::Path::new(&manifest_dir).join("../../proto");
    let file = root.join("quantfarm/v1/harness.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let fds = protox::compile([&file], [&root])?;
    tonic_prost_build::configure()
        // The consumers pick their own transport (tonic's `transport` feature).
        .build_transport(false)
        .compile_fds(fds)?;
    Ok(())
}
