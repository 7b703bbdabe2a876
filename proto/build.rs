use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        // SAFETY: build scripts are single-threaded.
        unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let protos = [
        "guardian/v1/types.proto",
        "guardian/v1/remote_log.proto",
        "guardian/v1/reporter.proto",
        "guardian/v1/state.proto",
        "guardian/v1/raft.proto",
        "guardian/v1/admin.proto",
        "guardian/v1/consumers.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    tonic_prost_build::configure()
        // Pre-encoded requests inside log entries: shared, not copied.
        .bytes(".guardian.v1.Entry.normal_encoded")
        .file_descriptor_set_path(out.join("guardian_descriptor.bin"))
        .compile_protos(&protos, &["."])?;
    Ok(())
}
