//! Reporter snapshot cost at 10,000 partitions (goal: ≤ 50 ms to build,
//! reporter RSS ≤ 30 MB).
//!
//! `cargo bench -p guardian-reporter --bench snapshot -- [--partitions N] [--calls N]`
//!
//! Writes 4 Kafka log dirs holding N partitions (3 segments each, the
//! active one with 20 record batches and a preallocated index, checkpoints
//! listing every partition), starts the release `guardian-reporter` on them,
//! and calls `GetSnapshot` repeatedly, appending to 10 % of the partitions
//! and rewriting each dir's high-watermark checkpoint (as Kafka does every
//! 5 s: a .tmp file renamed over it) between calls. Reports the server-side build time (first call: full
//! scans; later: incremental; log dirs are scanned in parallel), the
//! reporter's CPU time per call (all threads), the call latency, the encoded
//! size, and the reporter process's RSS and peak RSS.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use guardian_proto::pb;
use guardian_proto::pb::reporter_client::ReporterClient;
use prost::Message;
use serde_json::json;

fn batches(log: &Path, mut base: i64, n: usize) -> i64 {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open log");
    let mut buf = Vec::new();
    for _ in 0..n {
        let body = 49 + 1000;
        buf.extend_from_slice(&base.to_be_bytes());
        buf.extend_from_slice(&(body as i32).to_be_bytes());
        buf.extend_from_slice(&0i32.to_be_bytes());
        buf.push(2);
        buf.extend_from_slice(&[0; 6]);
        buf.extend_from_slice(&9i32.to_be_bytes());
        buf.resize(buf.len() + body - 15, 0x62);
        base += 10;
    }
    f.write_all(&buf).expect("write");
    base
}

fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of `pid` in ms (clock ticks of 10 ms).
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<u64>() as f64 * 10.0
}

/// The 99th percentile, only from 100 samples on (below that it would just
/// be the maximum, reported as such): `null` otherwise.
fn p99(v: &mut [f64]) -> Option<f64> {
    (v.len() >= 100).then(|| pct(v, 0.99))
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |n: &str, d: usize| {
        args.iter()
            .position(|a| a == n)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (partitions, calls) = (arg("--partitions", 10_000), arg("--calls", 101));
    let root = tempfile::tempdir_in("/var/tmp")?;
    let dirs: Vec<_> = (0..4)
        .map(|i| root.path().join(format!("data-{i}")))
        .collect();
    let t = Instant::now();
    let mut ends = Vec::new();
    for (di, d) in dirs.iter().enumerate() {
        std::fs::create_dir_all(d)?;
        std::fs::write(
            d.join("meta.properties"),
            "node.id=1\nversion=1\ncluster.id=bench\n",
        )?;
        let mine: Vec<usize> = (0..partitions).filter(|p| p % 4 == di).collect();
        let mut ck = format!("0\n{}\n", mine.len());
        for &p in &mine {
            let (topic, part) = (format!("topic-{}", p / 50), p % 50);
            let pd = d.join(format!("{topic}-{part}"));
            std::fs::create_dir_all(&pd)?;
            std::fs::write(
                pd.join("partition.metadata"),
                "version: 0\ntopic_id: AAAAAAAAQACAAAAAAAAAAQ\n",
            )?;
            for base in [0i64, 1000] {
                std::fs::write(pd.join(format!("{base:020}.log")), vec![0x61; 4096])?;
            }
            let end = batches(&pd.join(format!("{:020}.log", 2000)), 2000, 20);
            std::fs::write(pd.join(format!("{:020}.index", 2000)), vec![0u8; 10 * 1024])?;
            ck.push_str(&format!("{topic} {part} {end}\n"));
            ends.push((pd, end));
        }
        for f in [
            "replication-offset-checkpoint",
            "recovery-point-offset-checkpoint",
            "log-start-offset-checkpoint",
        ] {
            std::fs::write(d.join(f), &ck)?;
        }
    }
    eprintln!(
        "wrote {partitions} partitions in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let bin = env!("CARGO_BIN_EXE_guardian-reporter");
    let mut cmd = Command::new(bin);
    for d in &dirs {
        cmd.arg("--log-dir").arg(d);
    }
    let mut child = cmd
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line)?;
    let addr = serde_json::from_str::<serde_json::Value>(&line)?["listening"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut c = ReporterClient::connect(format!("http://{addr}"))
        .await?
        .max_decoding_message_size(256 << 20);

    let (mut build_ms, mut call_ms) = (Vec::new(), Vec::new());
    let mut cpu_after_first = 0.0;
    let (mut first_build, mut bytes, mut warnings) = (0.0, 0, 0);
    for i in 0..calls {
        if i > 0 {
            // 10 % of the partitions got 2 more batches since the last call.
            for (pd, end) in ends.iter_mut().step_by(10) {
                *end = batches(&pd.join(format!("{:020}.log", 2000)), *end, 2);
            }
            // Kafka rewrites the high-watermark checkpoint every 5 s, by
            // writing a .tmp file and renaming it over the old one.
            for (di, d) in dirs.iter().enumerate() {
                let mut ck = String::new();
                let mut n = 0;
                for (pd, end) in ends.iter().skip(di).step_by(4) {
                    let name = pd.file_name().unwrap_or_default().to_string_lossy();
                    let (topic, part) = name.rsplit_once('-').unwrap_or_default();
                    ck.push_str(&format!("{topic} {part} {end}\n"));
                    n += 1;
                }
                let tmp = d.join("replication-offset-checkpoint.tmp");
                std::fs::write(&tmp, format!("0\n{n}\n{ck}"))?;
                std::fs::rename(&tmp, d.join("replication-offset-checkpoint"))?;
            }
        }
        let t = Instant::now();
        let s = c
            .get_snapshot(pb::GetSnapshotRequest {})
            .await?
            .into_inner();
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let n = s.partitions.as_ref().map_or(0, |p| p.partition.len());
        assert_eq!(n, partitions, "every partition reported");
        if i == 0 {
            cpu_after_first = cpu_ms(pid);
            first_build = s.build_ms;
            bytes = s.encoded_len();
            warnings = s.warnings.len();
        } else {
            build_ms.push(s.build_ms);
            call_ms.push(ms);
        }
    }
    let cpu_per_call = (cpu_ms(pid) - cpu_after_first) / (calls.max(2) - 1) as f64;
    let rss = status_kb(pid, "VmRSS:");
    let hwm = status_kb(pid, "VmHWM:");
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "{}",
        json!({
            "partitions": partitions, "calls": calls,
            "first_build_ms": first_build,
            "measured_calls": call_ms.len(),
            "build_ms_p50": pct(&mut build_ms.clone(), 0.5), "build_ms_p99": p99(&mut build_ms.clone()),
            "build_ms_max": pct(&mut build_ms, 1.0),
            "call_ms_p50": pct(&mut call_ms.clone(), 0.5), "call_ms_p99": p99(&mut call_ms.clone()),
            "call_ms_max": pct(&mut call_ms, 1.0),
            "reporter_cpu_ms_per_call": cpu_per_call,
            "snapshot_bytes": bytes, "bytes_per_partition": bytes as f64 / partitions as f64,
            "reporter_rss_mib": rss as f64 / 1024.0, "reporter_peak_rss_mib": hwm as f64 / 1024.0,
            "warnings": warnings,
        })
    );
    Ok(())
}
