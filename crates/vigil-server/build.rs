//! Compile the Open Inference Protocol's gRPC service with protox, a
//! pure-Rust protobuf compiler: building Vigil needs no protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/grpc_service.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        // Raw tensor bytes stay slices of the received buffer (no copy).
        .bytes(".inference")
        // The server is axum's: no tonic transport (`connect`) in the client.
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}
