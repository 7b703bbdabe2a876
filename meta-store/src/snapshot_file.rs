//! The snapshot file: every `sm_data` key/value pair of one consistent
//! RocksDB view, streamed to disk so building, sending and installing a
//! snapshot never holds it in memory.
//!
//! Layout: the 8-byte magic `GRDSNAP2`, then records
//! `[key len u32][value len u32][key][value]` (big-endian lengths), then the
//! trailer `[0xFFFFFFFF][record count u64][crc32 of all record bytes u32]`.
//! A file is used only after the trailer has been read and checked.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use crate::error::{SnapshotFileError as E, StoreError};

const MAGIC: &[u8; 8] = b"GRDSNAP2";
const END: u32 = u32::MAX;
const BUF: usize = 1 << 20;
/// `[END u32][count u64][crc u32]`.
const TRAILER: u64 = 16;

/// Writes a snapshot file record by record.
pub struct SnapshotWriter {
    out: BufWriter<File>,
    count: u64,
    crc: crc32fast::Hasher,
}

impl SnapshotWriter {
    pub fn create(path: &Path) -> io::Result<Self> {
        let mut out = BufWriter::with_capacity(BUF, File::create(path)?);
        out.write_all(MAGIC)?;
        Ok(Self {
            out,
            count: 0,
            crc: crc32fast::Hasher::new(),
        })
    }

    pub fn put(&mut self, k: &[u8], v: &[u8]) -> io::Result<()> {
        let len = |n: usize| {
            u32::try_from(n)
                .ok()
                .filter(|n| *n != END)
                .ok_or_else(|| io::Error::other("record too large for a snapshot"))
        };
        let head = [len(k.len())?.to_be_bytes(), len(v.len())?.to_be_bytes()].concat();
        for part in [&head[..], k, v] {
            self.crc.update(part);
            self.out.write_all(part)?;
        }
        self.count += 1;
        Ok(())
    }

    /// Writes the trailer and syncs the file. Returns the record count.
    pub fn finish(mut self) -> io::Result<u64> {
        self.out.write_all(&END.to_be_bytes())?;
        self.out.write_all(&self.count.to_be_bytes())?;
        self.out.write_all(&self.crc.finalize().to_be_bytes())?;
        let f = self.out.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        Ok(self.count)
    }
}

/// Reads `path` record by record into `f`, then checks the trailer. Returns
/// the record count. Any damage (short file, bad magic, count or checksum
/// mismatch, trailing bytes) is an error.
pub fn read_records(
    path: &Path,
    mut f: impl FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    let name = || path.display().to_string();
    let ctx = |source: io::Error| E::Io {
        path: name(),
        source,
    };
    let file = File::open(path).map_err(ctx)?;
    let size = file.metadata().map_err(ctx)?.len();
    let mut r = BufReader::with_capacity(BUF, file);
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).map_err(ctx)?;
    if &magic != MAGIC {
        return Err(E::NotASnapshot { path: name() }.into());
    }
    let mut crc = crc32fast::Hasher::new();
    let (mut key, mut val) = (Vec::new(), Vec::new());
    let mut count = 0u64;
    let mut u32buf = [0u8; 4];
    // Bytes read so far; lengths are trusted only up to what is left before
    // the trailer, so a damaged length never asks for more than the file.
    let mut pos = MAGIC.len() as u64;
    loop {
        r.read_exact(&mut u32buf).map_err(ctx)?;
        let klen = u32::from_be_bytes(u32buf);
        if klen == END {
            break;
        }
        let mut vbuf = [0u8; 4];
        r.read_exact(&mut vbuf).map_err(ctx)?;
        let vlen = u32::from_be_bytes(vbuf);
        pos += 8;
        let left = size.saturating_sub(pos + TRAILER);
        let want = u64::from(klen) + u64::from(vlen);
        if want > left {
            return Err(E::RecordTooLong {
                path: name(),
                record: count,
                klen,
                vlen,
                left,
            }
            .into());
        }
        pos += want;
        key.resize(klen as usize, 0);
        val.resize(vlen as usize, 0);
        r.read_exact(&mut key).map_err(ctx)?;
        r.read_exact(&mut val).map_err(ctx)?;
        crc.update(&u32buf);
        crc.update(&vbuf);
        crc.update(&key);
        crc.update(&val);
        f(&key, &val)?;
        count += 1;
    }
    let mut n = [0u8; 8];
    r.read_exact(&mut n).map_err(ctx)?;
    r.read_exact(&mut u32buf).map_err(ctx)?;
    if u64::from_be_bytes(n) != count {
        return Err(E::CountMismatch {
            path: name(),
            said: u64::from_be_bytes(n),
            read: count,
        }
        .into());
    }
    if u32::from_be_bytes(u32buf) != crc.finalize() {
        return Err(E::Checksum { path: name() }.into());
    }
    if r.read(&mut [0u8; 1]).map_err(ctx)? != 0 {
        return Err(E::TrailingBytes { path: name() }.into());
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        let mut w = SnapshotWriter::create(&p).unwrap();
        w.put(b"a", b"1").unwrap();
        w.put(b"bb", b"").unwrap();
        assert_eq!(w.finish().unwrap(), 2);
        let mut got = Vec::new();
        let n = read_records(&p, |k, v| {
            got.push((k.to_vec(), v.to_vec()));
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            got,
            vec![(b"a".to_vec(), b"1".to_vec()), (b"bb".to_vec(), vec![])]
        );

        let bytes = std::fs::read(&p).unwrap();
        // Truncated.
        std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
        assert!(read_records(&p, |_, _| Ok(())).is_err());
        // A flipped value byte.
        let mut flipped = bytes.clone();
        flipped[8 + 8 + 1] ^= 0xff;
        std::fs::write(&p, &flipped).unwrap();
        assert!(read_records(&p, |_, _| Ok(()))
            .unwrap_err()
            .to_string()
            .contains("checksum"));
    }

    fn damaged(bytes: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, bytes).unwrap();
        let mut seen = 0;
        let e = read_records(&p, |_, _| {
            seen += 1;
            Ok(())
        })
        .unwrap_err()
        .to_string();
        e.strip_prefix(&format!("snapshot file {}: ", p.display()))
            .map(str::to_string)
            .unwrap_or_else(|| e.replace(&p.display().to_string(), "PATH"))
    }

    /// Every kind of damage is refused with its own reason, and no length
    /// field is believed beyond the bytes the file has left.
    #[test]
    fn bad_magic_counts_lengths_and_trailing_bytes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        let mut w = SnapshotWriter::create(&p).unwrap();
        w.put(b"key", b"value").unwrap();
        w.put(b"k2", b"v2").unwrap();
        w.finish().unwrap();
        let good = std::fs::read(&p).unwrap();
        // magic 8 | klen 4 | vlen 4 | "key" | "value" | klen | vlen | "k2" "v2" | END | count | crc
        let second = 8 + 8 + 3 + 5;
        let trailer = good.len() - 16;

        let mut b = good.clone();
        b[0] = b'X';
        assert_eq!(damaged(&b), "PATH is not a Guardian snapshot file");

        // A flipped high byte of the first key length: 16 MiB + 3 claimed.
        let mut b = good.clone();
        b[8] = 0x01;
        assert_eq!(
            damaged(&b),
            format!(
                "record 0 claims 16777219 + 5 bytes, {} left before the trailer",
                good.len() - 16 - 16
            )
        );
        // The largest value length there is, on the second record.
        let mut b = good.clone();
        b[second + 4..second + 8].copy_from_slice(&0xFFFF_FFFEu32.to_be_bytes());
        assert_eq!(
            damaged(&b),
            format!(
                "record 1 claims 2 + 4294967294 bytes, {} left before the trailer",
                4
            )
        );
        // A count that disagrees with the records.
        let mut b = good.clone();
        b[trailer + 4..trailer + 12].copy_from_slice(&3u64.to_be_bytes());
        assert_eq!(damaged(&b), "trailer says 3 records, read 2");
        // Bytes after the trailer.
        let mut b = good.clone();
        b.push(0);
        assert_eq!(damaged(&b), "bytes after the trailer");
        // Cut short: the last record no longer fits before a whole trailer.
        assert_eq!(
            damaged(&good[..good.len() - 2]),
            "record 1 claims 2 + 2 bytes, 2 left before the trailer"
        );
        // A file that ends inside the magic.
        assert!(damaged(&good[..5]).contains("failed to fill whole buffer"));
        // An empty file.
        assert!(damaged(&[]).contains("failed to fill whole buffer"));
    }
}
