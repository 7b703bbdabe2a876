//! Load-generation helpers shared by the bench binaries: closed-loop clients
//! and latency percentiles.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One load run: operations, the items they carried, and per-op latencies.
#[derive(Debug, Default)]
pub struct Run {
    /// Successful operations (RPCs).
    pub writes: usize,
    /// Items carried by the successful operations (events, lookups; 1 per
    /// op for single writes).
    pub items: usize,
    pub secs: f64,
    pub lat_us: Vec<u64>,
    /// Operations that failed. A run with any is not a measurement of the
    /// rate it prints: [`Run::ensure_ok`] refuses it.
    pub errors: usize,
}

impl Run {
    /// An error if any operation failed (the first few were printed).
    pub fn ensure_ok(&self, name: &str) -> anyhow::Result<()> {
        if self.errors > 0 {
            anyhow::bail!(
                "{name}: {} of {} operations failed; the run measures nothing",
                self.errors,
                self.errors + self.writes
            );
        }
        Ok(())
    }

    /// Operations per second.
    pub fn rate(&self) -> f64 {
        self.writes as f64 / self.secs
    }
    /// Items per second.
    pub fn item_rate(&self) -> f64 {
        self.items as f64 / self.secs
    }
    /// Latency percentile `p` (0..=1), in ms.
    pub fn pct(&mut self, p: f64) -> f64 {
        self.lat_us.sort_unstable();
        if self.lat_us.is_empty() {
            return 0.0;
        }
        let i = ((self.lat_us.len() as f64 - 1.0) * p).round() as usize;
        self.lat_us[i] as f64 / 1000.0
    }
    pub fn mean(&self) -> f64 {
        self.lat_us.iter().sum::<u64>() as f64 / self.lat_us.len().max(1) as f64 / 1000.0
    }
    pub fn line(&mut self, name: &str) -> String {
        format!(
            "{name:<28} {:>9.0} writes/s  p50 {:>6.2} ms  p99 {:>6.2} ms  mean {:>6.2} ms  ({} writes in {:.1} s)",
            self.rate(),
            self.pct(0.5),
            self.pct(0.99),
            self.mean(),
            self.writes,
            self.secs
        )
    }
    /// A line for batched runs: items/s and per-RPC latency.
    pub fn items_line(&mut self, name: &str, unit: &str) -> String {
        format!(
            "{name:<34} {:>10.0} {unit}/s  ({:.0} RPC/s)  RPC p50 {:>6.2} ms  p99 {:>6.2} ms  ({} {unit} in {:.1} s)",
            self.item_rate(),
            self.rate(),
            self.pct(0.5),
            self.pct(0.99),
            self.items,
            self.secs
        )
    }
}

/// Runs `clients` closed loops of `op` for `secs`; `op(client, seq)` does
/// one operation and returns how many items it carried.
pub async fn drive<F, Fut>(clients: usize, secs: u64, op: F) -> Run
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<usize>> + Send,
{
    let op = Arc::new(op);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (op, stop) = (op.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut items = 0usize;
            let mut errors = 0usize;
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                match op(c, seq).await {
                    Ok(n) => {
                        lat.push(t.elapsed().as_micros() as u64);
                        items += n;
                    }
                    Err(e) => {
                        errors += 1;
                        if errors < 3 {
                            eprintln!("client {c}: {e:#}");
                        }
                    }
                }
                seq += 1;
            }
            (lat, items, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut run = Run::default();
    for t in tasks {
        let (lat, items, errors) = t.await.unwrap_or((Vec::new(), 0, 1));
        run.lat_us.extend(lat);
        run.items += items;
        run.errors += errors;
    }
    run.secs = start.elapsed().as_secs_f64();
    run.writes = run.lat_us.len();
    run
}

/// The filesystem type holding `dir` (the longest matching mount point in
/// `/proc/mounts`), e.g. `ext4` or `tmpfs`: fsync figures on tmpfs measure
/// nothing, so every bench prints it.
pub fn fs_type(dir: &Path) -> String {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_dev, at, ty) = (f.next()?, f.next()?, f.next()?);
            dir.starts_with(at).then(|| (at.len(), ty.to_string()))
        })
        .max_by_key(|(n, _)| *n)
        .map_or_else(|| "unknown".into(), |(_, ty)| ty)
}

/// `msg` as a request carrying a client request id, as `AdminClient` sends
/// every call (so the bench pays what real clients pay: the result kept
/// for retries), or none when `ids` is off (`--no-request-ids`). One client
/// id per writer (`salt` tells runs apart), `seq` per operation.
pub fn request<T>(msg: T, ids: bool, salt: u64, writer: usize, seq: u64) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if ids {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&salt.to_be_bytes());
        b[8..].copy_from_slice(&(writer as u64).to_be_bytes());
        let id = guardian_proto::domain::RequestId {
            client: guardian_proto::domain::KafkaUuid::from_random_bytes(b),
            seq,
        };
        if let Ok(v) = id.to_string().parse() {
            r.metadata_mut()
                .insert(guardian_controller::client::REQUEST_ID_KEY, v);
        }
    }
    r
}

/// A global allocator that counts allocations and bytes (for the benches'
/// "allocations per call"): `#[global_allocator] static A: CountingAlloc`.
pub struct CountingAlloc;

static ALLOCS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static ALLOC_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ALLOC_BYTES.fetch_add(l.size() as u64, std::sync::atomic::Ordering::Relaxed);
        unsafe { std::alloc::System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        unsafe { std::alloc::System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ALLOC_BYTES.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        unsafe { std::alloc::System.realloc(p, l, n) }
    }
}

/// (allocations, bytes allocated) so far, process-wide.
pub fn allocations() -> (u64, u64) {
    (
        ALLOCS.load(std::sync::atomic::Ordering::Relaxed),
        ALLOC_BYTES.load(std::sync::atomic::Ordering::Relaxed),
    )
}
