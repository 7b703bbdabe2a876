//! Lag signals: a window of samples per group partition and a
//! Burrow-style status over it (pure; the leader's scheduler samples).
//!
//! Burrow rates a partition over its last 10 commits. Guardian samples the
//! group's committed offset and the partition's log end every
//! `consumers.lag-sample-ms` and keeps the last [`WINDOW`] samples. Over
//! that window, in this order:
//!
//! - `ERR`: the last read failed, or the committed offset went backwards;
//! - `OK`: any sample with lag 0 (caught up at some point in the window), or
//!   fewer than two samples;
//! - `STOP`: the committed offset did not move over the window, the lag is
//!   not 0, and no worker runs the partition (nobody consumes it);
//! - `STALL`: the same, but a worker runs it (it is consuming and stuck),
//!   or the group is not one Guardian schedules (it cannot tell);
//! - `WARN`: the offset moves but the lag grew between every two samples;
//! - `OK` otherwise.
//!
//! A group's status is its worst partition's (`ERR` > `STOP` > `STALL` >
//! `WARN` > `OK`).

use std::collections::VecDeque;

use serde::Serialize;

/// Samples kept per partition (Burrow's window is 10 commits).
pub const WINDOW: usize = 10;

/// One reading of a group partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// Wall clock, ms.
    pub at_ms: u64,
    /// The group's committed offset (-1: none).
    pub committed: i64,
    /// The partition's log end offset.
    pub log_end: i64,
}

impl Sample {
    pub fn lag(&self) -> i64 {
        if self.committed < 0 {
            self.log_end.max(0)
        } else {
            (self.log_end - self.committed).max(0)
        }
    }
}

/// The status of a partition (or a group: its worst partition's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LagStatus {
    Ok,
    Warn,
    Stall,
    Stop,
    Err,
}

impl LagStatus {
    pub fn name(self) -> &'static str {
        match self {
            LagStatus::Ok => "OK",
            LagStatus::Warn => "WARN",
            LagStatus::Stall => "STALL",
            LagStatus::Stop => "STOP",
            LagStatus::Err => "ERR",
        }
    }

    pub const ALL: [LagStatus; 5] = [
        LagStatus::Ok,
        LagStatus::Warn,
        LagStatus::Stall,
        LagStatus::Stop,
        LagStatus::Err,
    ];
}

/// The window of one group partition.
#[derive(Debug, Clone, Default)]
pub struct Window {
    samples: VecDeque<Sample>,
    /// The last read failed (cleared by the next good sample).
    pub error: Option<String>,
}

impl Window {
    pub fn push(&mut self, s: Sample) {
        if self.samples.len() == WINDOW {
            self.samples.pop_front();
        }
        self.samples.push_back(s);
        self.error = None;
    }

    pub fn latest(&self) -> Option<&Sample> {
        self.samples.back()
    }

    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter()
    }

    /// The status over the window; `running`: a worker reports running it
    /// (`None`: not a scheduled group).
    pub fn status(&self, running: Option<bool>) -> LagStatus {
        if self.error.is_some() {
            return LagStatus::Err;
        }
        let s: Vec<&Sample> = self.samples.iter().collect();
        if s.windows(2).any(|w| w[1].committed < w[0].committed) {
            return LagStatus::Err;
        }
        if s.len() < 2 || s.iter().any(|x| x.lag() == 0) {
            return LagStatus::Ok;
        }
        let first = s[0];
        let last = s[s.len() - 1];
        if first.committed == last.committed {
            return match running {
                Some(false) => LagStatus::Stop,
                _ => LagStatus::Stall,
            };
        }
        if s.windows(2).all(|w| w[1].lag() > w[0].lag()) {
            return LagStatus::Warn;
        }
        LagStatus::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(points: &[(i64, i64)]) -> Window {
        let mut w = Window::default();
        for (i, &(committed, log_end)) in points.iter().enumerate() {
            w.push(Sample {
                at_ms: i as u64 * 1000,
                committed,
                log_end,
            });
        }
        w
    }

    #[test]
    fn burrow_rules_in_order() {
        // Caught up once in the window: OK even if it lags now.
        assert_eq!(
            window(&[(10, 10), (10, 50), (10, 90)]).status(Some(true)),
            LagStatus::Ok
        );
        // Offsets stuck with lag: stalled when someone runs it, stopped
        // when nobody does, stalled when Guardian cannot tell.
        let stuck = window(&[(10, 20), (10, 30), (10, 40)]);
        assert_eq!(stuck.status(Some(true)), LagStatus::Stall);
        assert_eq!(stuck.status(Some(false)), LagStatus::Stop);
        assert_eq!(stuck.status(None), LagStatus::Stall);
        // Moving, but the lag grows at every step.
        assert_eq!(
            window(&[(10, 20), (15, 30), (20, 40)]).status(Some(true)),
            LagStatus::Warn
        );
        // Moving and the lag not always growing.
        assert_eq!(
            window(&[(10, 20), (15, 30), (28, 35)]).status(Some(true)),
            LagStatus::Ok
        );
        // A rewind, or a failed read, is an error.
        assert_eq!(
            window(&[(10, 20), (5, 30)]).status(Some(true)),
            LagStatus::Err
        );
        let mut w = window(&[(10, 20), (15, 30)]);
        w.error = Some("coordinator not available".into());
        assert_eq!(w.status(Some(true)), LagStatus::Err);
        // Too little to judge.
        assert_eq!(window(&[(10, 20)]).status(Some(false)), LagStatus::Ok);
    }

    #[test]
    fn the_window_keeps_the_last_samples_and_a_good_read_clears_an_error() {
        let pts: Vec<(i64, i64)> = (0..25).map(|i| (i, i + 5)).collect();
        let mut w = window(&pts);
        assert_eq!(w.samples().count(), WINDOW);
        assert_eq!(w.samples().next().unwrap().committed, 15);
        w.error = Some("x".into());
        w.push(Sample {
            at_ms: 0,
            committed: 30,
            log_end: 30,
        });
        assert!(w.error.is_none());
        assert_eq!(w.latest().unwrap().lag(), 0);
        // No commit yet: the whole log is the lag.
        let none = Sample {
            at_ms: 0,
            committed: -1,
            log_end: 7,
        };
        assert_eq!(none.lag(), 7);
    }

    #[test]
    fn statuses_order_worst_last() {
        let worst = [LagStatus::Warn, LagStatus::Err, LagStatus::Ok]
            .into_iter()
            .max()
            .unwrap();
        assert_eq!(worst, LagStatus::Err);
        assert!(LagStatus::Stop > LagStatus::Stall);
    }
}
