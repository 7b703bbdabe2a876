//! Tool caches outside the clone (Kafka's jars, the Python clients), each
//! keyed by the FNV-1a hash of the file that pins it, so a changed pin gets
//! its own cache and `cargo test --workspace` fills a missing one on its
//! own — once, under a lock file, whichever test binary gets there first.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// FNV-1a of `text`, as `.ci/run` computes it.
pub fn key(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// `dir`, filled by `fill` (given a scratch dir that is moved into place)
/// unless it is already complete. `what` names the cache in a panic.
pub fn filled(dir: PathBuf, what: &str, fill: impl FnOnce(&Path) -> Result<(), String>) -> PathBuf {
    let done = dir.join(".complete");
    if done.exists() {
        return dir;
    }
    let parent = dir.parent().expect("cache dir has a parent").to_path_buf();
    std::fs::create_dir_all(&parent)
        .unwrap_or_else(|e| panic!("creating {}: {e}", parent.display()));
    let lock = parent.join(".lock");
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(_) => break,
            Err(_) if done.exists() => return dir,
            Err(_) => {
                assert!(
                    Instant::now() < deadline,
                    "waited 600 s for {}",
                    lock.display()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    if !done.exists() {
        let tmp = dir.with_extension("part");
        let _ = std::fs::remove_dir_all(&tmp);
        if let Err(e) = fill(&tmp) {
            let _ = std::fs::remove_file(&lock);
            panic!(
                "filling the cache of {what} in {} failed: {e}",
                dir.display()
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir).expect("moving the cache into place");
        std::fs::write(&done, b"").expect("marking the cache complete");
    }
    let _ = std::fs::remove_file(&lock);
    dir
}
