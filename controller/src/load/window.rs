//! Load windows: the last hour of one measure, bucket by bucket (median,
//! p95), and its compact per-partition form.

use std::collections::VecDeque;

use guardian_meta_store::state::load::HISTORY_BUCKETS;

/// Buckets (one minute by default) over the last 60 buckets of one measure.
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// (bucket number, sum, samples), oldest first, at most 60.
    buckets: VecDeque<(u64, f64, u32)>,
    pub last: f64,
}

impl Window {
    pub fn push(&mut self, bucket: u64, v: f64) {
        self.last = v;
        match self.buckets.back_mut() {
            Some(b) if b.0 == bucket => {
                b.1 += v;
                b.2 += 1;
            }
            _ => self.buckets.push_back((bucket, v, 1)),
        }
        while self
            .buckets
            .front()
            .is_some_and(|b| b.0 + HISTORY_BUCKETS <= bucket)
        {
            self.buckets.pop_front();
        }
    }

    /// The mean of one bucket, if it has samples.
    pub fn bucket_mean(&self, bucket: u64) -> Option<f64> {
        self.buckets
            .iter()
            .find(|b| b.0 == bucket)
            .map(|(_, s, n)| s / (*n).max(1) as f64)
    }

    /// The oldest bucket held.
    pub fn first_bucket(&self) -> Option<u64> {
        self.buckets.front().map(|b| b.0)
    }

    /// Buckets kept.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Fills in recorded history (value × `scale`) for buckets not held.
    pub fn seed(&mut self, series: &[(u64, u64)], scale: f64) {
        for &(b, v) in series {
            if !self.buckets.iter().any(|x| x.0 == b) {
                self.buckets.push_back((b, v as f64 * scale, 1));
            }
        }
        self.buckets.make_contiguous().sort_by_key(|x| x.0);
        while self.buckets.len() as u64 > HISTORY_BUCKETS {
            self.buckets.pop_front();
        }
    }

    /// Percentile `p` (0..=1) of the per-minute means over the last hour.
    pub fn pct(&self, p: f64) -> f64 {
        let mut v: Vec<f64> = self
            .buckets
            .iter()
            .map(|(_, s, n)| s / (*n).max(1) as f64)
            .collect();
        if v.is_empty() {
            return 0.0;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() - 1) as f64 * p).round() as usize]
    }
}

/// A compact window for one partition (a federation holds millions): 60
/// `f32` bucket means in a ring, NaN where a bucket has no sample; the
/// current bucket accumulates. ≈ 260 bytes.
#[derive(Debug, Clone)]
pub struct PartWindow {
    last_bucket: u64,
    cur_sum: f32,
    cur_n: u16,
    vals: [f32; HISTORY_BUCKETS as usize],
}

impl Default for PartWindow {
    fn default() -> Self {
        Self {
            last_bucket: 0,
            cur_sum: 0.0,
            cur_n: 0,
            vals: [f32::NAN; HISTORY_BUCKETS as usize],
        }
    }
}

impl PartWindow {
    /// Moves the window's end to `bucket`, clearing the buckets skipped.
    fn advance(&mut self, bucket: u64) {
        let n = HISTORY_BUCKETS;
        if bucket <= self.last_bucket {
            return;
        }
        for b in (self.last_bucket + 1).max(bucket.saturating_sub(n - 1))..bucket {
            self.vals[(b % n) as usize] = f32::NAN;
        }
        self.last_bucket = bucket;
        self.cur_sum = 0.0;
        self.cur_n = 0;
    }

    /// Whether `bucket` is within the window.
    fn holds(&self, bucket: u64) -> bool {
        bucket <= self.last_bucket && bucket + HISTORY_BUCKETS > self.last_bucket
    }

    pub fn push(&mut self, bucket: u64, v: f64) {
        if bucket < self.last_bucket {
            return; // late sample of an old bucket
        }
        self.advance(bucket);
        self.cur_sum += v as f32;
        self.cur_n = self.cur_n.saturating_add(1);
        self.vals[(bucket % HISTORY_BUCKETS) as usize] = self.cur_sum / self.cur_n as f32;
    }

    /// Buckets with a sample.
    pub fn held(&self) -> usize {
        self.vals.iter().filter(|v| !v.is_nan()).count()
    }

    /// The mean of the bucket means held in `buckets`.
    pub fn mean_over(&self, buckets: std::ops::Range<u64>) -> Option<f64> {
        let (mut sum, mut n) = (0.0f64, 0u32);
        for b in buckets.filter(|&b| self.holds(b)) {
            let v = self.vals[(b % HISTORY_BUCKETS) as usize];
            if !v.is_nan() {
                sum += v as f64;
                n += 1;
            }
        }
        (n > 0).then(|| sum / n as f64)
    }

    /// Fills `buckets` with a recorded mean where the window has no sample
    /// of its own (a new leader seeding from the replicated history).
    pub fn seed(&mut self, buckets: std::ops::Range<u64>, v: f64) {
        for b in buckets {
            self.advance(b);
            let held = self.holds(b);
            let slot = &mut self.vals[(b % HISTORY_BUCKETS) as usize];
            if held && slot.is_nan() {
                *slot = v as f32;
            }
        }
    }

    /// Percentile `p` (0..=1) of the bucket means held.
    pub fn pct(&self, p: f64) -> f64 {
        let mut v: Vec<f32> = self.vals.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return 0.0;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() - 1) as f64 * p).round() as usize] as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_keeps_an_hour_of_minute_buckets() {
        let mut w = Window::default();
        for m in 0..90u64 {
            w.push(m, m as f64);
            w.push(m, m as f64 + 2.0);
        }
        assert_eq!(w.buckets.len(), 60);
        assert_eq!(w.last, 91.0);
        // Minute means 31..=90 (each minute: m and m+2 → m+1).
        assert_eq!(w.pct(0.0), 31.0);
        assert_eq!(w.pct(1.0), 90.0);
        assert_eq!(w.pct(0.5), 61.0);
    }

    #[test]
    fn partition_window_is_a_ring_of_bucket_means() {
        let mut w = PartWindow::default();
        for b in 0..100u64 {
            w.push(b, b as f64);
            w.push(b, b as f64 + 2.0);
        }
        // Buckets 40..=99, means b+1.
        assert_eq!(w.pct(0.0), 41.0);
        assert_eq!(w.pct(1.0), 100.0);
        w.push(150, 7.0); // buckets 91..=99 are still within the last 60
        assert_eq!((w.pct(0.0), w.pct(1.0)), (7.0, 100.0));
        w.push(300, 5.0); // a gap longer than the ring clears everything
        assert_eq!((w.pct(0.0), w.pct(1.0)), (5.0, 5.0));
        w.push(299, 1000.0); // late: ignored
        assert_eq!(w.pct(1.0), 5.0);
    }

    #[test]
    fn partition_window_seeds_only_buckets_it_lacks() {
        let mut w = PartWindow::default();
        w.push(12, 100.0);
        w.seed(10..15, 7.0); // 12 is its own; 13 and 14 move the end
        assert_eq!(w.mean_over(10..12), Some(7.0));
        assert_eq!(w.mean_over(12..13), Some(100.0));
        assert_eq!(w.mean_over(10..15), Some((7.0 * 4.0 + 100.0) / 5.0));
        assert_eq!(w.mean_over(20..25), None);
        w.push(14, 1.0); // the current bucket's own sample replaces the seed
        assert_eq!(w.mean_over(14..15), Some(1.0));
    }
}
