//! Kafka log directories, read from disk in Kafka 3.x/4.x's own formats.
//!
//! - `meta.properties`: `node.id` (KRaft) or `broker.id` (ZooKeeper),
//!   `cluster.id`, `directory.id`.
//! - `<topic>-<partition>/`: segments `<20-digit base offset>.log` (+ index
//!   files), `partition.metadata` (`topic_id: <base64>`).
//! - `replication-offset-checkpoint` (high watermarks),
//!   `recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`: a
//!   version line (`0`), a count line, then `topic partition offset` lines.
//! - `<topic>-<partition>.<32 hex>-future/`: an intra-broker move in progress;
//!   `…-delete/`: a pending deletion; `…-stray/`: a stray log (KRaft).
//!
//! Everything is parsed defensively: a missing, half-written or foreign file
//! becomes a warning and the rest of the dir is still reported.
//!
//! The log end offset comes from the active segment: from the last entry of
//! its offset index (or the start), record-batch headers are skipped to the
//! end of the file; the scan position is cached so the next sample reads only
//! what was appended.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use guardian_proto::domain::KafkaUuid;

/// `meta.properties` of a log dir.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaProperties {
    pub broker_id: Option<i32>,
    pub cluster_id: Option<String>,
    pub directory_id: Option<String>,
}

/// One partition directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDir {
    pub topic: String,
    pub partition: i32,
    pub topic_id: Option<KafkaUuid>,
    pub future: bool,
    pub size_bytes: u64,
    pub segments: u32,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    /// -1 when the checkpoint does not list the partition.
    pub high_watermark: i64,
    pub recovery_point: i64,
    pub path: PathBuf,
    /// (size bytes, log end offset) at the previous sample, for rates.
    pub previous: Option<(u64, i64)>,
}

/// Everything read from one log dir.
#[derive(Debug, Clone, Default)]
pub struct LogDirScan {
    pub meta: MetaProperties,
    pub partitions: Vec<PartitionDir>,
    pub pending_deletions: Vec<String>,
    pub warnings: Vec<String>,
}

/// Where the last scan of a partition's active segment stopped.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScanPos {
    base: i64,
    pos: u64,
    leo: i64,
}

/// What is remembered of a partition dir between samples.
#[derive(Debug, Clone, Default)]
pub struct PartCache {
    /// The dir's mtime at the last listing, if it can be trusted then.
    dir_mtime: Option<Mtime>,
    /// (base offset, size) of every segment as of the last listing; the
    /// active (last) one's size is refreshed every sample.
    segments: Vec<(i64, u64)>,
    topic_id: Option<KafkaUuid>,
    /// Warnings of the last listing, repeated while the dir is unchanged.
    warnings: Vec<String>,
    scan: Option<ScanPos>,
    /// (size bytes, log end offset) at the last sample.
    last_sample: Option<(u64, i64)>,
}

/// A modification time in nanoseconds since the epoch.
type Mtime = i128;

/// One entry of a log dir, as listed. (Nearly every entry is a partition:
/// the other variants being small is not worth a box per partition.)
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
enum Entry {
    Partition {
        name: String,
        topic: String,
        partition: i32,
        future: bool,
        /// `topic partition`, as checkpoint lines name it.
        ckpt_key: String,
        cache: PartCache,
    },
    Delete(String),
    Stray(String),
    Foreign(String),
}

/// A log dir's listing, kept between samples. Every sample reads the
/// directory again (Kafka rewrites its checkpoint files in place by rename,
/// so the dir's mtime changes every few seconds), but while the
/// subdirectories come back in the same order with the same names, which
/// is compared without allocating, the parsed entries are reused as they are.
#[derive(Debug, Clone, Default)]
pub struct ScanCache {
    /// Subdirectory names in `getdents` order.
    dirents: Vec<Box<[u8]>>,
    /// The parsed entries, sorted by name.
    entries: Vec<Entry>,
}

/// A partition dir's cached listing is trusted only if the dir's mtime is
/// older than the listing by more than this: a change made in the same
/// timestamp tick as an earlier one, after the listing, would not move the
/// mtime.
const RACY_NS: Mtime = 1_000_000_000;

fn now_ns() -> Mtime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as Mtime)
}

/// `mtime`, if it is old enough at `listed_at` to vouch for the listing.
fn trusted(mtime: Option<Mtime>, listed_at: Mtime) -> Option<Mtime> {
    mtime.filter(|m| m + RACY_NS < listed_at)
}

fn parse_properties(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| {
            let (k, v) = l.split_once('=').or_else(|| l.split_once(':'))?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// Reads `meta.properties`; `None` with a warning when absent or malformed.
pub fn read_meta(dir: &Path, warnings: &mut Vec<String>) -> MetaProperties {
    let p = dir.join("meta.properties");
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) => {
            warnings.push(format!("{}: {e}", p.display()));
            return MetaProperties::default();
        }
    };
    let props = parse_properties(&text);
    let id = props.get("node.id").or_else(|| props.get("broker.id"));
    let broker_id = match id.map(|v| v.parse::<i32>()) {
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => {
            warnings.push(format!(
                "{}: node.id/broker.id is not a number",
                p.display()
            ));
            None
        }
        None => {
            warnings.push(format!("{}: no node.id or broker.id", p.display()));
            None
        }
    };
    MetaProperties {
        broker_id,
        cluster_id: props.get("cluster.id").cloned(),
        directory_id: props.get("directory.id").cloned(),
    }
}

/// Reads an offset checkpoint file: (topic, partition) → offset. A missing
/// file is empty; a malformed one is a warning (valid lines before the
/// damage are kept).
pub fn read_checkpoint(path: &Path, warnings: &mut Vec<String>) -> String {
    match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            warnings.push(format!("{}: {e}", path.display()));
            String::new()
        }
    }
}

/// Offsets by `topic partition` (keys borrowed from `text` when written the
/// way Kafka writes them).
pub type Offsets<'a> = HashMap<Cow<'a, str>, i64>;

/// Parses a checkpoint file's text (see [`read_checkpoint`]); an empty text
/// is a missing file.
pub fn parse_checkpoint<'a>(text: &'a str, path: &Path, warnings: &mut Vec<String>) -> Offsets<'a> {
    let mut out = HashMap::new();
    if text.is_empty() {
        return out;
    }
    let mut lines = text.lines();
    let bad = |what: &str| format!("{}: {what}", path.display());
    match lines.next().map(str::trim) {
        Some("0") => {}
        other => {
            warnings.push(bad(&format!("unsupported version line {other:?}")));
            return out;
        }
    }
    let Some(Ok(count)) = lines.next().map(|l| l.trim().parse::<usize>()) else {
        warnings.push(bad("missing or bad entry count"));
        return out;
    };
    out.reserve(count.min(1 << 20));
    for (i, line) in lines.enumerate() {
        let mut f = line.split_whitespace();
        match (f.next(), f.next(), f.next(), f.next()) {
            (Some(t), Some(p), Some(o), None) => match (p.parse::<i32>(), o.parse::<i64>()) {
                (Ok(pn), Ok(o)) => {
                    // Kafka writes `topic partition offset` with single spaces.
                    let key = match line.rsplit_once(' ') {
                        Some((k, _))
                            if k.len() == t.len() + 1 + p.len()
                                && k.starts_with(t)
                                && pn.to_string() == p =>
                        {
                            Cow::Borrowed(k)
                        }
                        _ => Cow::Owned(format!("{t} {pn}")),
                    };
                    out.insert(key, o);
                }
                _ => {
                    warnings.push(bad(&format!("line {}: {line:?}", i + 3)));
                    return out;
                }
            },
            (None, ..) => {}
            _ => {
                warnings.push(bad(&format!("line {}: {line:?}", i + 3)));
                return out;
            }
        }
    }
    if out.len() != count {
        warnings.push(bad(&format!(
            "header says {count} entries, found {} (half-written?)",
            out.len()
        )));
    }
    out
}

/// Splits `topic-partition`, `topic-partition.<hex>-future` and friends.
/// Returns (topic, partition, suffix) with suffix "", "future", "delete" or "stray".
pub fn parse_dir_name(name: &str) -> Option<(String, i32, &'static str)> {
    let (base, suffix) = if let Some(b) = name.strip_suffix("-future") {
        (b, "future")
    } else if let Some(b) = name.strip_suffix("-delete") {
        (b, "delete")
    } else if let Some(b) = name.strip_suffix("-stray") {
        (b, "stray")
    } else {
        (name, "")
    };
    let base = if suffix.is_empty() {
        base
    } else {
        // `<topic>-<partition>.<uuid as 32 hex chars>`
        let (b, id) = base.rsplit_once('.')?;
        if id.len() != 32 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        b
    };
    let (topic, p) = base.rsplit_once('-')?;
    let partition = p.parse::<i32>().ok().filter(|p| *p >= 0)?;
    if topic.is_empty() {
        return None;
    }
    Some((topic.to_string(), partition, suffix))
}

fn read_topic_id(dir: &Path, warnings: &mut Vec<String>) -> Option<KafkaUuid> {
    let p = dir.join("partition.metadata");
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            warnings.push(format!("{}: {e}", p.display()));
            return None;
        }
    };
    let props = parse_properties(&text);
    match props.get("topic_id").map(|v| v.parse::<KafkaUuid>()) {
        Some(Ok(id)) => Some(id),
        _ => {
            warnings.push(format!("{}: no valid topic_id", p.display()));
            None
        }
    }
}

/// Reads the last non-empty offset-index entry's log position (0 if none).
fn last_index_position(index: &Path) -> u64 {
    let Ok(bytes) = std::fs::read(index) else {
        return 0;
    };
    // 8-byte entries (relative offset u32, position u32); the active index is
    // preallocated and zero-filled past its last entry.
    bytes
        .chunks_exact(8)
        .enumerate()
        .rev()
        .find(|(i, e)| *i == 0 || e.iter().any(|b| *b != 0))
        .map(|(_, e)| u32::from_be_bytes([e[4], e[5], e[6], e[7]]) as u64)
        .unwrap_or(0)
}

/// Skips record batches from `pos` to the end of the `.log` file; returns
/// (position after the last complete batch, last offset in it).
fn scan_batches(log: &Path, mut pos: u64) -> std::io::Result<(u64, Option<i64>)> {
    let mut f = File::open(log)?;
    let len = f.metadata()?.len();
    let mut last = None;
    let mut head = [0u8; 27];
    while pos + 17 <= len {
        f.seek(SeekFrom::Start(pos))?;
        let n = (len - pos).min(27) as usize;
        f.read_exact(&mut head[..n])?;
        let base = i64::from_be_bytes(head[0..8].try_into().expect("8 bytes"));
        let size = i32::from_be_bytes(head[8..12].try_into().expect("4 bytes"));
        if size <= 0 {
            break; // zero-filled tail (preallocated) or damage
        }
        let next = pos + 12 + size as u64;
        if next > len {
            break; // a batch still being written
        }
        let magic = head[16];
        last = Some(if magic >= 2 && n >= 27 {
            base + i32::from_be_bytes(head[23..27].try_into().expect("4 bytes")) as i64
        } else {
            base // message format v0/v1: the wrapper carries the last offset
        });
        pos = next;
    }
    Ok((pos, last))
}

/// Reads one partition directory.
fn list_segments(dir: &Path, warnings: &mut Vec<String>) -> Vec<(i64, u64)> {
    let mut segments: Vec<(i64, u64)> = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(base) = name.strip_suffix(".log") {
                    match base.parse::<i64>() {
                        Ok(b) if base.len() == 20 => {
                            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                            segments.push((b, size));
                        }
                        _ => warnings.push(format!(
                            "{}: not a segment file name",
                            dir.join(&name).display()
                        )),
                    }
                }
            }
        }
        Err(e) => warnings.push(format!("{}: {e}", dir.display())),
    }
    segments.sort_unstable();
    segments
}

/// (size, mtime) of `rel` under the open log dir: `fstatat` walks only the
/// relative path (absolute-path lookups were the largest kernel cost).
fn stat_at(log_dir: &File, rel: &str) -> Option<(u64, Mtime)> {
    let st = nix::sys::stat::fstatat(log_dir, rel, nix::fcntl::AtFlags::empty()).ok()?;
    Some((st.st_size as u64, mtime_ns(st.st_mtime, st.st_mtime_nsec)))
}

fn mtime_ns(sec: i64, nsec: i64) -> Mtime {
    sec as Mtime * 1_000_000_000 + nsec as Mtime
}

/// Reads one partition directory. While the directory itself is unchanged
/// (same mtime: no segment rolled, deleted or renamed), only the active
/// segment is looked at, and only the bytes appended since the last sample.
/// (A dir modified within [`RACY_NS`] of its listing is listed again.)
#[allow(clippy::too_many_arguments)]
fn read_partition(
    log_dir: &File,
    name: &str,
    dir: &Path,
    topic: &str,
    partition: i32,
    future: bool,
    ckpt_key: &str,
    ckpt: &Checkpoints,
    c: &mut PartCache,
    warnings: &mut Vec<String>,
) -> PartitionDir {
    let mtime = stat_at(log_dir, name).map(|s| s.1);
    if mtime.is_none() || c.dir_mtime != mtime {
        let listed_at = now_ns();
        let mut w = Vec::new();
        c.segments = list_segments(dir, &mut w);
        c.topic_id = read_topic_id(dir, &mut w);
        c.warnings = w;
        c.dir_mtime = trusted(mtime, listed_at);
    } else if let Some(last) = c.segments.last_mut() {
        if let Some((size, _)) = stat_at(log_dir, &format!("{name}/{:020}.log", last.0)) {
            last.1 = size;
        }
    }
    warnings.extend(c.warnings.iter().cloned());
    let first_base = c.segments.first().map_or(0, |s| s.0);
    let log_start_offset = if future {
        first_base
    } else {
        ckpt.log_start.get(ckpt_key).copied().unwrap_or(first_base)
    };
    let log_end_offset = match c.segments.last() {
        None => log_start_offset,
        Some(&(base, size)) => {
            let prev = c.scan.filter(|s| s.base == base);
            match prev {
                // Nothing appended since the last sample.
                Some(s) if size <= s.pos => s.leo,
                _ => {
                    let start = match prev {
                        Some(s) => s.pos,
                        None => last_index_position(&dir.join(format!("{base:020}.index"))),
                    };
                    let log = dir.join(format!("{base:020}.log"));
                    match scan_batches(&log, start) {
                        Ok((pos, last)) => {
                            let leo = match (last, prev) {
                                (Some(l), _) => l + 1,
                                (None, Some(s)) => s.leo,
                                (None, None) => base,
                            };
                            c.scan = Some(ScanPos { base, pos, leo });
                            leo
                        }
                        Err(e) => {
                            warnings.push(format!("{}: {e}", log.display()));
                            base
                        }
                    }
                }
            }
        }
    };
    let size_bytes = c.segments.iter().map(|s| s.1).sum();
    let previous = c.last_sample.replace((size_bytes, log_end_offset));
    PartitionDir {
        topic_id: c.topic_id,
        size_bytes,
        previous,
        segments: c.segments.len() as u32,
        log_start_offset,
        log_end_offset,
        high_watermark: if future {
            -1
        } else {
            ckpt.hw.get(ckpt_key).copied().unwrap_or(-1)
        },
        recovery_point: ckpt.recovery.get(ckpt_key).copied().unwrap_or(-1),
        path: dir.to_path_buf(),
        topic: topic.to_string(),
        partition,
        future,
    }
}

struct Checkpoints<'a> {
    hw: Offsets<'a>,
    recovery: Offsets<'a>,
    log_start: Offsets<'a>,
}

/// Parses a log dir's subdirectory names into entries sorted by name, each
/// partition dir's cache carried over from `old` by name.
fn parse_listing(names: &[Box<[u8]>], old: Vec<Entry>) -> Vec<Entry> {
    let mut caches: HashMap<String, PartCache> = old
        .into_iter()
        .filter_map(|e| match e {
            Entry::Partition { name, cache, .. } => Some((name, cache)),
            _ => None,
        })
        .collect();
    let mut names: Vec<String> = names
        .iter()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    names.sort_unstable();
    // What is left in `caches` afterwards is gone (moved, deleted).
    names
        .into_iter()
        .map(|name| match parse_dir_name(&name) {
            Some((_, _, "delete")) => Entry::Delete(name),
            Some((_, _, "stray")) => Entry::Stray(name),
            Some((topic, partition, suffix)) => Entry::Partition {
                cache: caches.remove(&name).unwrap_or_default(),
                ckpt_key: format!("{topic} {partition}"),
                name,
                topic,
                partition,
                future: suffix == "future",
            },
            None => Entry::Foreign(name),
        })
        .collect()
}

/// Reads the log dir's subdirectories; reparses them only if they are not
/// exactly the cached ones, in the same order.
fn refresh_listing(dir_file: &File, cache: &mut ScanCache) -> nix::Result<()> {
    use nix::dir::{Dir, Type};
    use nix::fcntl::OFlag;
    use nix::sys::stat::SFlag;
    let mut d = Dir::openat(
        dir_file,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    let mut same = 0usize; // leading names equal to the cache's
    let mut fresh: Option<Vec<Box<[u8]>>> = None;
    for ent in d.iter() {
        let ent = ent?;
        let name = ent.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let is_dir = match ent.file_type() {
            Some(t) => t == Type::Directory,
            None => {
                nix::sys::stat::fstatat(dir_file, ent.file_name(), nix::fcntl::AtFlags::empty())
                    .is_ok_and(|st| {
                        let t = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
                        t == SFlag::S_IFDIR
                    })
            }
        };
        if !is_dir {
            continue;
        }
        match &mut fresh {
            None if cache.dirents.get(same).is_some_and(|n| **n == *name) => same += 1,
            None => {
                let mut v = cache.dirents[..same].to_vec();
                v.push(name.into());
                fresh = Some(v);
            }
            Some(v) => v.push(name.into()),
        }
    }
    if fresh.is_none() && same < cache.dirents.len() {
        fresh = Some(cache.dirents[..same].to_vec());
    }
    if let Some(names) = fresh {
        cache.entries = parse_listing(&names, std::mem::take(&mut cache.entries));
        cache.dirents = names;
    }
    Ok(())
}

/// Scans one log dir. The parsed listing is reused while the subdirectories
/// are unchanged; each partition dir costs two `fstatat`s while unchanged
/// (the dir, then the active segment), and only appended bytes are read.
pub fn scan_log_dir(dir: &Path, cache: &mut ScanCache) -> LogDirScan {
    let mut out = LogDirScan::default();
    let w = &mut out.warnings;
    out.meta = read_meta(dir, w);
    let texts = [
        "replication-offset-checkpoint",
        "recovery-point-offset-checkpoint",
        "log-start-offset-checkpoint",
    ]
    .map(|f| {
        let p = dir.join(f);
        let t = read_checkpoint(&p, w);
        (p, t)
    });
    let ckpt = Checkpoints {
        hw: parse_checkpoint(&texts[0].1, &texts[0].0, w),
        recovery: parse_checkpoint(&texts[1].1, &texts[1].0, w),
        log_start: parse_checkpoint(&texts[2].1, &texts[2].0, w),
    };
    let dir_file = match File::open(dir) {
        Ok(f) => f,
        Err(e) => {
            out.warnings.push(format!("{}: {e}", dir.display()));
            return out;
        }
    };
    if let Err(e) = refresh_listing(&dir_file, cache) {
        *cache = ScanCache::default();
        out.warnings.push(format!("{}: {e}", dir.display()));
        return out;
    }
    for e in &mut cache.entries {
        match e {
            Entry::Delete(name) => out
                .pending_deletions
                .push(format!("{}/{name}", dir.display())),
            Entry::Stray(name) => out.warnings.push(format!(
                "{}: stray log (not assigned here)",
                dir.join(name).display()
            )),
            Entry::Foreign(name) => out.warnings.push(format!(
                "{}: not a partition directory",
                dir.join(name).display()
            )),
            Entry::Partition {
                name,
                topic,
                partition,
                future,
                ckpt_key,
                cache,
            } => {
                let p = read_partition(
                    &dir_file,
                    name,
                    &dir.join(&*name),
                    topic,
                    *partition,
                    *future,
                    ckpt_key,
                    &ckpt,
                    cache,
                    &mut out.warnings,
                );
                out.partitions.push(p);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names() {
        assert_eq!(parse_dir_name("orders-3"), Some(("orders".into(), 3, "")));
        assert_eq!(
            parse_dir_name("my-topic.v2-10"),
            Some(("my-topic.v2".into(), 10, ""))
        );
        let hex = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            parse_dir_name(&format!("a-b-7.{hex}-future")),
            Some(("a-b".into(), 7, "future"))
        );
        assert_eq!(
            parse_dir_name(&format!("t-0.{hex}-delete")),
            Some(("t".into(), 0, "delete"))
        );
        assert_eq!(parse_dir_name("lost+found"), None);
        assert_eq!(parse_dir_name("t-x"), None);
        assert_eq!(parse_dir_name("t-0.abc-future"), None);
    }

    #[test]
    fn checkpoints_and_damage() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("cp");
        std::fs::write(&p, "0\n2\na 0 10\nb-c 3 7\n").unwrap();
        let mut w = Vec::new();
        let read = |p: &Path, w: &mut Vec<String>| {
            let text = read_checkpoint(p, w);
            parse_checkpoint(&text, p, w)
                .into_iter()
                .map(|(k, v)| (k.into_owned(), v))
                .collect::<HashMap<String, i64>>()
        };
        let m = read(&p, &mut w);
        assert_eq!(m["b-c 3"], 7);
        assert!(w.is_empty());
        // Extra spaces and leading zeros: the same key.
        std::fs::write(&p, "0\n1\nx  007\t5\n").unwrap();
        assert_eq!(read(&p, &mut w)["x 7"], 5);
        std::fs::write(&p, "0\n3\na 0 10\nb 1").unwrap();
        let m = read(&p, &mut w);
        assert_eq!(m.len(), 1);
        assert_eq!(w.len(), 1, "{w:?}");
        std::fs::write(&p, "\u{0}\u{1}garbage").unwrap();
        read(&p, &mut w);
        assert_eq!(w.len(), 2);
        assert!(read(&d.path().join("missing"), &mut w).is_empty());
        assert_eq!(w.len(), 2, "a missing checkpoint is not a warning");
    }

    #[test]
    fn meta_properties() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("meta.properties"),
            "#\n#Tue\nnode.id=4\nversion=1\ncluster.id=abc\ndirectory.id=xyz\n",
        )
        .unwrap();
        let mut w = Vec::new();
        let m = read_meta(d.path(), &mut w);
        assert_eq!(m.broker_id, Some(4));
        assert_eq!(m.cluster_id.as_deref(), Some("abc"));
        assert!(w.is_empty());
    }

    #[test]
    fn listing_follows_created_removed_and_renamed_partition_dirs() {
        let d = tempfile::tempdir().unwrap();
        let mk = |n: &str| std::fs::create_dir(d.path().join(n)).unwrap();
        mk("t-0");
        mk("t-1");
        std::fs::write(d.path().join("not-a-dir-0"), b"x").unwrap();
        let mut cache = ScanCache::default();
        let names = |cache: &mut ScanCache| {
            let s = scan_log_dir(d.path(), cache);
            s.partitions
                .iter()
                .map(|p| format!("{}-{}", p.topic, p.partition))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&mut cache), ["t-0", "t-1"]);
        assert_eq!(names(&mut cache), ["t-0", "t-1"], "unchanged: reused");
        mk("t-2");
        assert_eq!(names(&mut cache), ["t-0", "t-1", "t-2"]);
        std::fs::remove_dir(d.path().join("t-0")).unwrap();
        assert_eq!(names(&mut cache), ["t-1", "t-2"]);
        // Same number of dirs, one renamed: reparsed.
        std::fs::rename(d.path().join("t-2"), d.path().join("u-5")).unwrap();
        assert_eq!(names(&mut cache), ["t-1", "u-5"]);
        mk("lost+found");
        let s = scan_log_dir(d.path(), &mut cache);
        assert!(
            s.warnings.iter().any(|w| w.contains("lost+found")),
            "{:?}",
            s.warnings
        );
    }
}
