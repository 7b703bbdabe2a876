//! Python clients for the tests (`tests/python/requirements.txt`, pinned
//! with hashes): a virtualenv in `$GUARDIAN_PYTHON_ENV`, else
//! `/var/tmp/guardian-py/<hash of the requirements>`, made with
//! `python3 -m venv` and `pip install --require-hashes` when missing (as
//! `.ci/run` does).

use std::path::{Path, PathBuf};
use std::process::Command;

const REQUIREMENTS: &str = include_str!("../python/requirements.txt");

/// The virtualenv's directory (not made).
pub fn env_dir() -> PathBuf {
    if let Ok(d) = std::env::var("GUARDIAN_PYTHON_ENV") {
        return PathBuf::from(d);
    }
    PathBuf::from(format!(
        "/var/tmp/guardian-py/{}",
        crate::cache::key(REQUIREMENTS)
    ))
}

/// The virtualenv's `python`, the pinned packages installed.
pub fn python() -> PathBuf {
    let dir = crate::cache::filled(env_dir(), "the Python clients", |tmp| {
        run(Command::new("python3").args(["-m", "venv"]).arg(tmp))?;
        let req = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/requirements.txt");
        run(Command::new(tmp.join("bin/pip"))
            .args(["install", "-q", "--require-hashes", "-r"])
            .arg(req))
    });
    // A venv's scripts name the directory it was made in: `python` is a
    // symlink and works from the moved directory; pip's shebang would not.
    dir.join("bin/python")
}

/// A script of `tests/python/` run with the virtualenv's Python: (exit
/// code, stdout, stderr).
pub fn script(name: &str, args: &[&str]) -> (i32, String, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name);
    let out = Command::new(python())
        .arg(path)
        .args(args)
        .output()
        .expect("running python");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
