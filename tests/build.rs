//! Compiles the benchmark's echo service (`custodian.bench.v1`, kept with
//! the other proto files under `proto/proto/`) with protox, like
//! `proto/build.rs`, so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fds = protox::compile(["custodian/bench/v1/echo.proto"], ["../proto/proto"])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    // prost and tonic-prost-build do not emit this themselves.
    println!("cargo:rerun-if-changed=../proto/proto/custodian/bench");
    Ok(())
}
