//! The host: a log dir's device and filesystem, `/proc/diskstats`,
//! `/proc/meminfo`, `/proc/stat` and `/proc/net/dev`. Counters are raw; the
//! sampler turns differences between samples into rates.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Cumulative counters of one block device (`/proc/diskstats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskCounters {
    pub reads: u64,
    pub read_bytes: u64,
    pub writes: u64,
    pub write_bytes: u64,
    /// Milliseconds spent doing I/O.
    pub busy_ms: u64,
}

/// `/proc/diskstats` by (major, minor): (name, counters).
pub fn diskstats(text: &str) -> HashMap<(u32, u32), (String, DiskCounters)> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 14 {
            continue;
        }
        let n = |i: usize| f[i].parse::<u64>().unwrap_or(0);
        let (Ok(major), Ok(minor)) = (f[0].parse(), f[1].parse()) else {
            continue;
        };
        out.insert(
            (major, minor),
            (
                f[2].to_string(),
                DiskCounters {
                    reads: n(3),
                    read_bytes: n(5) * 512,
                    writes: n(7),
                    write_bytes: n(9) * 512,
                    busy_ms: n(12),
                },
            ),
        );
    }
    out
}

/// The (major, minor) device a path lives on.
pub fn device_of(path: &Path) -> std::io::Result<(u32, u32)> {
    let dev = std::fs::metadata(path)?.dev();
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff);
    Ok((major as u32, minor as u32))
}

/// (capacity, free) bytes of the filesystem holding `path`.
pub fn fs_space(path: &Path) -> std::io::Result<(u64, u64)> {
    let s = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    let frag = s.fragment_size() as u64;
    Ok((s.blocks() as u64 * frag, s.blocks_available() as u64 * frag))
}

/// `/proc/meminfo` fields used: MemTotal, MemAvailable, Cached, Dirty (bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemInfo {
    pub total: u64,
    pub available: u64,
    pub cached: u64,
    pub dirty: u64,
}

pub fn meminfo(text: &str) -> MemInfo {
    let mut m = MemInfo::default();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(k), Some(v)) = (f.next(), f.next()) else {
            continue;
        };
        let v = v.parse::<u64>().unwrap_or(0) * 1024;
        match k {
            "MemTotal:" => m.total = v,
            "MemAvailable:" => m.available = v,
            "Cached:" => m.cached = v,
            "Dirty:" => m.dirty = v,
            _ => {}
        }
    }
    m
}

/// `/proc/stat` first line: (busy jiffies, total jiffies), and the CPU count.
pub fn cpu(text: &str) -> ((u64, u64), u32) {
    let mut totals = (0, 0);
    let mut cpus = 0;
    for line in text.lines() {
        let mut f = line.split_whitespace();
        match f.next() {
            Some("cpu") => {
                let v: Vec<u64> = f.filter_map(|x| x.parse().ok()).collect();
                let total: u64 = v.iter().take(8).sum();
                let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
                totals = (total - idle.min(total), total);
            }
            Some(c) if c.starts_with("cpu") => cpus += 1,
            _ => {}
        }
    }
    (totals, cpus)
}

/// `/proc/net/dev`: (rx bytes, tx bytes) summed over interfaces but `lo`.
pub fn net(text: &str) -> (u64, u64) {
    let mut rx = 0;
    let mut tx = 0;
    for line in text.lines().skip(2) {
        let Some((iface, rest)) = line.split_once(':') else {
            continue;
        };
        if iface.trim() == "lo" {
            continue;
        }
        let v: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        rx += v.first().copied().unwrap_or(0);
        tx += v.get(8).copied().unwrap_or(0);
    }
    (rx, tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let ds = " 253       0 vda 100 0 2000 50 300 0 4000 60 0 700 110 0 0 0 0\n";
        let d = diskstats(ds);
        let (name, c) = &d[&(253, 0)];
        assert_eq!(name, "vda");
        assert_eq!(
            (c.reads, c.read_bytes, c.writes, c.write_bytes, c.busy_ms),
            (100, 2000 * 512, 300, 4000 * 512, 700)
        );
        let m = meminfo("MemTotal: 100 kB\nMemAvailable: 40 kB\nCached: 30 kB\nDirty: 2 kB\n");
        assert_eq!(
            m,
            MemInfo {
                total: 102400,
                available: 40960,
                cached: 30720,
                dirty: 2048
            }
        );
        let ((busy, total), cpus) =
            cpu("cpu 10 0 10 70 10 0 0 0 0 0\ncpu0 1 1 1 1\ncpu1 1 1 1 1\n");
        assert_eq!((busy, total, cpus), (20, 100, 2));
        let nd = "Inter-|\n face |\n    lo: 5 0 0 0 0 0 0 0 5 0\n  eth0: 100 1 0 0 0 0 0 0 200 2\n";
        assert_eq!(net(nd), (100, 200));
    }

    #[test]
    fn device_and_space_of_a_real_dir() {
        let d = tempfile::tempdir().unwrap();
        let (cap, free) = fs_space(d.path()).unwrap();
        assert!(cap > 0 && free <= cap);
        device_of(d.path()).unwrap();
    }
}
