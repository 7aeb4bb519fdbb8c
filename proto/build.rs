//! Compiles `proto/` with protox (pure Rust), so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/custodian/v1/common.proto",
        "proto/custodian/v1/report.proto",
        "proto/custodian/v1/enrollment.proto",
        "proto/custodian/v1/agent.proto",
        "proto/custodian/v1/operator.proto",
        "proto/custodian/v1/register.proto",
        "proto/custodian/v1/audit.proto",
        "proto/custodian/v1/rollout.proto",
        "proto/custodian/v1/attestation.proto",
        "proto/custodian/v1/disposal.proto",
    ];
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    // prost and tonic-prost-build do not emit this themselves.
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
