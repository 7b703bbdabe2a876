//! Checked histories: what the clients of a robustness run observed, and
//! the checks run on it.
//!
//! - [`check_registers`]: linearizability per key of a register (set,
//!   remove, read) with the Wing–Gong search as Lowe improved it (linearize
//!   calls as early as possible, backtrack at a return whose call is not
//!   linearized yet, remember each (linearized set, state) seen so a dead
//!   end is never explored twice) — the algorithm of Porcupine and Knossos.
//!   An operation without an answer (a timeout, `UNAVAILABLE`, a broken
//!   connection) is open-ended: it may take effect at any point after its
//!   invocation, or never. Written here rather than taken from
//!   `stateright`: its tester searches per-thread queues without
//!   memoization, sized for its model checker's short histories, and a
//!   thread with an open call cannot go on; these histories run to
//!   thousands of operations per key with many open calls.
//! - [`check_grow_only_set`]: a read of a set that only grows (registered
//!   clusters, remote-log segments) holds every element whose add was
//!   acknowledged before the read began, and nothing whose add began after
//!   the read ended.

use std::collections::{BTreeMap, BTreeSet, HashSet};

/// Nanoseconds since the run began.
pub type Nanos = u64;

/// One register operation as a client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegOp {
    /// Set the key to a value unique in the run.
    Set(u64),
    /// Remove the key; the answer says whether it existed (`NOT_FOUND`).
    Remove,
    /// Read the key.
    Read,
}

/// What the register answered (`None` for an open-ended call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegOut {
    Done,
    Removed(bool),
    Value(Option<u64>),
}

/// One operation on one key.
#[derive(Debug, Clone)]
pub struct RegCall {
    pub key: String,
    pub op: RegOp,
    pub invoke: Nanos,
    /// `None`: no answer (indeterminate) — open-ended.
    pub complete: Option<(Nanos, RegOut)>,
}

/// The sequential register: `state` before, the call's answer → the state
/// after, or `None` if the answer is impossible from `state`.
fn step(state: Option<u64>, op: &RegOp, out: Option<&RegOut>) -> Option<Option<u64>> {
    match (op, out) {
        (RegOp::Set(v), None | Some(RegOut::Done)) => Some(Some(*v)),
        (RegOp::Remove, None) => Some(None),
        (RegOp::Remove, Some(RegOut::Removed(existed))) => {
            (*existed == state.is_some()).then_some(None)
        }
        (RegOp::Read, None) => Some(state),
        (RegOp::Read, Some(RegOut::Value(v))) => (*v == state).then_some(state),
        _ => None,
    }
}

/// The outcome of one key's check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// No order explains the answers; the message shows the calls the
    /// search could not place.
    Violation(String),
    /// The search ran out of its step budget (not a proof either way).
    Inconclusive,
}

/// Checks every key's history; returns the keys whose history is not
/// linearizable (or could not be decided within `budget` steps each).
pub fn check_registers(calls: &[RegCall], budget: u64) -> BTreeMap<String, Verdict> {
    let mut by_key: BTreeMap<&str, Vec<&RegCall>> = BTreeMap::new();
    for c in calls {
        by_key.entry(&c.key).or_default().push(c);
    }
    by_key
        .into_iter()
        .filter_map(|(k, v)| {
            let verdict = check_key(&v, budget);
            (verdict != Verdict::Linearizable).then(|| (k.to_string(), verdict))
        })
        .collect()
}

#[derive(Clone, Copy)]
struct Event {
    call: usize,
    is_return: bool,
}

/// Wing–Gong–Lowe on one key, starting from an absent key.
fn check_key(calls: &[&RegCall], budget: u64) -> Verdict {
    let n = calls.len();
    // Events in time order; at a tie, invocations before returns (two
    // calls that touch in time may have overlapped). Open-ended calls
    // return after everything.
    let mut events: Vec<(Nanos, u8, Event)> = Vec::with_capacity(2 * n);
    for (i, c) in calls.iter().enumerate() {
        events.push((
            c.invoke,
            0,
            Event {
                call: i,
                is_return: false,
            },
        ));
        let t = c.complete.as_ref().map_or(Nanos::MAX, |(t, _)| *t);
        events.push((
            t,
            1,
            Event {
                call: i,
                is_return: true,
            },
        ));
    }
    events.sort_by_key(|(t, o, e)| (*t, *o, e.call));
    let m = events.len();
    // A doubly linked list over the events, with a head sentinel at m.
    let mut next: Vec<usize> = (1..=m).collect();
    let mut prev: Vec<usize> = Vec::with_capacity(m + 1);
    prev.push(m);
    prev.extend(0..m.saturating_sub(1));
    next.push(0); // head.next
    prev.push(m.saturating_sub(1));
    if m == 0 {
        return Verdict::Linearizable;
    }
    next[m - 1] = m; // tail → sentinel (the end)
    let mut ret_of = vec![0usize; n];
    for (i, (_, _, e)) in events.iter().enumerate() {
        if e.is_return {
            ret_of[e.call] = i;
        }
    }
    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, i: usize| {
        let (p, nx) = (prev[i], next[i]);
        next[p] = nx;
        prev[nx] = p;
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, i: usize| {
        let (p, nx) = (prev[i], next[i]);
        next[p] = i;
        prev[nx] = i;
    };
    let words = n.div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, Option<u64>)> = HashSet::new();
    let mut stack: Vec<(usize, Option<u64>)> = Vec::new();
    let mut state: Option<u64> = None;
    let mut cur = next[m];
    let mut steps = 0u64;
    // The deepest dead end: how many calls were placed, the call that
    // could not be, and the state it met (for the violation's message).
    let mut deepest: (usize, usize, Option<u64>) = (0, 0, None);
    while next[m] != m {
        steps += 1;
        if steps > budget {
            return Verdict::Inconclusive;
        }
        if cur == m {
            // Past the end with calls left: only open-ended calls remain
            // unplaced ahead of us; they may never have taken effect.
            return Verdict::Linearizable;
        }
        let e = events[cur].2;
        if !e.is_return {
            let c = calls[e.call];
            let out = c.complete.as_ref().map(|(_, o)| o);
            let after = step(state, &c.op, out);
            let mut placed = false;
            if let Some(s2) = after {
                let mut lin = linearized.clone();
                lin[e.call / 64] |= 1 << (e.call % 64);
                if seen.insert((lin.clone(), s2)) {
                    stack.push((cur, state));
                    state = s2;
                    linearized = lin;
                    unlink(&mut next, &mut prev, cur);
                    unlink(&mut next, &mut prev, ret_of[e.call]);
                    cur = next[m];
                    placed = true;
                }
            }
            if !placed {
                cur = next[cur];
            }
        } else {
            // A return whose call is not placed: undo the last placement.
            if calls[e.call].complete.is_none() {
                // Only open-ended calls are left from here on.
                return Verdict::Linearizable;
            }
            if stack.len() >= deepest.0 {
                deepest = (stack.len(), e.call, state);
            }
            let Some((ci, s)) = stack.pop() else {
                return Verdict::Violation(describe(calls, deepest));
            };
            let call = events[ci].2.call;
            state = s;
            linearized[call / 64] &= !(1 << (call % 64));
            relink(&mut next, &mut prev, ret_of[call]);
            relink(&mut next, &mut prev, ci);
            cur = next[ci];
        }
    }
    Verdict::Linearizable
}

fn describe(calls: &[&RegCall], (placed, stuck, state): (usize, usize, Option<u64>)) -> String {
    let show = |c: &RegCall| match &c.complete {
        Some((t, o)) => format!(
            "{:?}@[{:.3}ms,{:.3}ms]→{o:?}",
            c.op,
            c.invoke as f64 / 1e6,
            *t as f64 / 1e6
        ),
        None => format!("{:?}@[{:.3}ms,open]", c.op, c.invoke as f64 / 1e6),
    };
    let c = calls[stuck];
    let end = c.complete.as_ref().map_or(Nanos::MAX, |(t, _)| *t);
    // The writes that could have been ordered around it.
    let near: Vec<String> = calls
        .iter()
        .filter(|w| !matches!(w.op, RegOp::Read))
        .filter(|w| {
            let wend = w.complete.as_ref().map_or(Nanos::MAX, |(t, _)| *t);
            w.invoke <= end && wend >= c.invoke.saturating_sub(50_000_000)
        })
        .take(8)
        .map(|w| show(w))
        .collect();
    format!(
        "no linearization of {} calls: at best {placed} placed, then {} finds the key at {state:?}; writes around it: [{}]",
        calls.len(),
        show(c),
        near.join(", ")
    )
}

/// One add to a grow-only set.
#[derive(Debug, Clone)]
pub struct SetAdd {
    pub element: String,
    pub invoke: Nanos,
    /// When its acknowledgement arrived; `None` if it never did.
    pub acked: Option<Nanos>,
}

/// One successful read of the set (only the run's own elements).
#[derive(Debug, Clone)]
pub struct SetRead {
    pub invoke: Nanos,
    pub complete: Nanos,
    pub elements: BTreeSet<String>,
}

/// The grow-only set checks; one line per violation (at most `limit`).
pub fn check_grow_only_set(
    what: &str,
    adds: &[SetAdd],
    reads: &[SetRead],
    limit: usize,
) -> Vec<String> {
    let by_element: BTreeMap<&str, &SetAdd> =
        adds.iter().map(|a| (a.element.as_str(), a)).collect();
    let mut out = Vec::new();
    for r in reads {
        for a in adds {
            if a.acked.is_some_and(|t| t < r.invoke) && !r.elements.contains(&a.element) {
                out.push(format!(
                    "{what}: {} acknowledged at {:.1} ms is missing from a read begun at {:.1} ms",
                    a.element,
                    a.acked.unwrap_or_default() as f64 / 1e6,
                    r.invoke as f64 / 1e6
                ));
            }
        }
        for e in &r.elements {
            match by_element.get(e.as_str()) {
                None => out.push(format!(
                    "{what}: a read returned {e}, which no client added"
                )),
                Some(a) if a.invoke > r.complete => out.push(format!(
                    "{what}: a read ended at {:.1} ms returned {e}, added only at {:.1} ms",
                    r.complete as f64 / 1e6,
                    a.invoke as f64 / 1e6
                )),
                _ => {}
            }
        }
        if out.len() >= limit {
            out.truncate(limit);
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(op: RegOp, invoke: u64, complete: Option<(u64, RegOut)>) -> RegCall {
        RegCall {
            key: "k".into(),
            op,
            invoke,
            complete,
        }
    }

    fn verdict(calls: &[RegCall]) -> Verdict {
        check_registers(calls, 1_000_000)
            .remove("k")
            .unwrap_or(Verdict::Linearizable)
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let h = [
            call(RegOp::Set(1), 0, Some((10, RegOut::Done))),
            call(RegOp::Read, 20, Some((30, RegOut::Value(Some(1))))),
            call(RegOp::Remove, 40, Some((50, RegOut::Removed(true)))),
            call(RegOp::Read, 60, Some((70, RegOut::Value(None)))),
            call(RegOp::Remove, 80, Some((90, RegOut::Removed(false)))),
        ];
        assert_eq!(verdict(&h), Verdict::Linearizable);
    }

    #[test]
    fn stale_read_after_a_completed_write_is_a_violation() {
        let h = [
            call(RegOp::Set(1), 0, Some((10, RegOut::Done))),
            call(RegOp::Set(2), 20, Some((30, RegOut::Done))),
            call(RegOp::Read, 40, Some((50, RegOut::Value(Some(1))))),
        ];
        assert!(matches!(verdict(&h), Verdict::Violation(_)), "{h:?}");
    }

    #[test]
    fn concurrent_write_may_be_seen_or_not() {
        // Read overlaps Set(2): either value is fine.
        for seen in [1, 2] {
            let h = [
                call(RegOp::Set(1), 0, Some((10, RegOut::Done))),
                call(RegOp::Set(2), 20, Some((60, RegOut::Done))),
                call(RegOp::Read, 30, Some((40, RegOut::Value(Some(seen))))),
            ];
            assert_eq!(verdict(&h), Verdict::Linearizable, "{seen}");
        }
        // ...but once one read saw 2, a later read may not see 1.
        let h = [
            call(RegOp::Set(1), 0, Some((10, RegOut::Done))),
            call(RegOp::Set(2), 20, Some((100, RegOut::Done))),
            call(RegOp::Read, 30, Some((40, RegOut::Value(Some(2))))),
            call(RegOp::Read, 50, Some((60, RegOut::Value(Some(1))))),
        ];
        assert!(matches!(verdict(&h), Verdict::Violation(_)));
    }

    #[test]
    fn open_ended_write_may_land_late_or_never() {
        let late = [
            call(RegOp::Set(1), 0, Some((10, RegOut::Done))),
            call(RegOp::Set(2), 20, None),
            call(RegOp::Read, 30, Some((40, RegOut::Value(Some(1))))),
            call(RegOp::Read, 500, Some((510, RegOut::Value(Some(2))))),
        ];
        assert_eq!(verdict(&late), Verdict::Linearizable);
        let never = [
            call(RegOp::Set(1), 0, Some((10, RegOut::Done))),
            call(RegOp::Set(2), 20, None),
            call(RegOp::Read, 900, Some((910, RegOut::Value(Some(1))))),
        ];
        assert_eq!(verdict(&never), Verdict::Linearizable);
        // A value nobody wrote is never explained.
        let phantom = [
            call(RegOp::Set(1), 0, Some((10, RegOut::Done))),
            call(RegOp::Read, 30, Some((40, RegOut::Value(Some(7))))),
        ];
        assert!(matches!(verdict(&phantom), Verdict::Violation(_)));
        // An open write cannot be seen before it was invoked.
        let early = [
            call(RegOp::Read, 0, Some((10, RegOut::Value(Some(3))))),
            call(RegOp::Set(3), 20, None),
        ];
        assert!(matches!(verdict(&early), Verdict::Violation(_)));
    }

    #[test]
    fn remove_answers_must_match_the_state() {
        let h = [
            call(RegOp::Set(1), 0, Some((10, RegOut::Done))),
            call(RegOp::Remove, 20, Some((30, RegOut::Removed(false)))),
        ];
        assert!(matches!(verdict(&h), Verdict::Violation(_)));
    }

    #[test]
    fn many_concurrent_calls_are_decided_within_budget() {
        // 8 clients × 200 overlapping sets and reads of the latest value.
        let mut h = Vec::new();
        let mut last = None;
        for i in 0..1600u64 {
            let t = i * 10;
            if i % 2 == 0 {
                h.push(call(RegOp::Set(i), t, Some((t + 35, RegOut::Done))));
                last = Some(i);
            } else {
                h.push(call(RegOp::Read, t, Some((t + 38, RegOut::Value(last)))));
            }
        }
        assert_eq!(verdict(&h), Verdict::Linearizable);
    }

    #[test]
    fn grow_only_set_checks() {
        let adds = vec![
            SetAdd {
                element: "a".into(),
                invoke: 0,
                acked: Some(10),
            },
            SetAdd {
                element: "b".into(),
                invoke: 100,
                acked: None,
            },
        ];
        let ok = SetRead {
            invoke: 20,
            complete: 30,
            elements: ["a".to_string()].into(),
        };
        assert!(check_grow_only_set("s", &adds, &[ok], 10).is_empty());
        let lost = SetRead {
            invoke: 20,
            complete: 30,
            elements: BTreeSet::new(),
        };
        assert_eq!(check_grow_only_set("s", &adds, &[lost], 10).len(), 1);
        let early = SetRead {
            invoke: 20,
            complete: 30,
            elements: ["a".to_string(), "b".to_string()].into(),
        };
        assert_eq!(check_grow_only_set("s", &adds, &[early], 10).len(), 1);
        let phantom = SetRead {
            invoke: 20,
            complete: 30,
            elements: ["a".to_string(), "z".to_string()].into(),
        };
        assert_eq!(check_grow_only_set("s", &adds, &[phantom], 10).len(), 1);
    }
}
