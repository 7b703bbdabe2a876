// The build stamp, shared by controller/build.rs and cli/build.rs.

use std::hash::Hasher;
use std::path::Path;

/// Inputs of the binary, relative to either crate (both sit one level
/// below the workspace root): `cli/build.rs` includes this file, so the
/// library and the binary compute the same stamp.
const INPUTS: &[&str] = &[
    "../controller/src",
    "../controller/Cargo.toml",
    "../controller/build.rs",
    "../controller/stamp.rs",
    "../cli/src",
    "../cli/Cargo.toml",
    "../cli/build.rs",
    "../proto",
    "../meta-store/src",
    "../meta-store/Cargo.toml",
    "../planner/src",
    "../planner/Cargo.toml",
    "../Cargo.toml",
    "../Cargo.lock",
];

fn main() {
    // FNV-1a over (path, contents) of every file, in sorted order.
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    for input in INPUTS {
        println!("cargo:rerun-if-changed={input}");
        let mut files = Vec::new();
        walk(Path::new(input), &mut files);
        files.sort();
        for f in files {
            h.write(f.to_string_lossy().as_bytes());
            h.write(&std::fs::read(&f).unwrap_or_default());
        }
    }
    println!("cargo:rustc-env=GUARDIAN_BUILD_STAMP={:016x}", h.finish());
}

fn walk(p: &Path, out: &mut Vec<std::path::PathBuf>) {
    if p.is_dir() {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                walk(&e.path(), out);
            }
        }
    } else if p.is_file() {
        out.push(p.to_path_buf());
    }
}

struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}
