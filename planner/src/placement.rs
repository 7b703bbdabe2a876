//! The placement planner: where the replicas of a new topic go.
//!
//! Kafka places new partitions round-robin over brokers and, inside a broker,
//! on the log dir with the fewest partitions — blind to bytes and traffic.
//! [`place`] instead puts each replica on the usable disk of the topic's
//! tenant pool with the **lowest historical-median load** that has room for
//! the expected traffic, inside the topic's rack/IDC policy.
//!
//! # Algorithm
//! A disk's score is its worst normalised load across disk fill (used bytes
//! ÷ capacity), disk write (the larger of the measured median and the
//! model's replicas) and its broker's nw in and CPU, each divided by the
//! pool's mean, so 1.0 is an average disk. Disks sit in a min-heap by score;
//! for each replica the cheapest disk is popped, re-scored if its broker took
//! load since it was pushed (lazy update), and taken if it passes the
//! constraints (its broker not already used by this partition, a new rack when
//! the policy is rack-unique, an allowed IDC, a new IDC when the partition
//! still needs one to span `min_idcs`, and room: fill ≤ `max_disk_fill`, write
//! ≤ the disk's write budget, nw in ≤ the broker's capacity). Skipped disks go
//! back. The replica on the broker leading the fewest partitions becomes the
//! preferred leader.
//!
//! # Complexity
//! O(P · RF · (k + log D)) for P partitions, D disks, k disks skipped per pick
//! (bounded by RF · disks per broker in practice).
//!
//! # Errors
//! [`PlacementError::Invalid`] for a malformed request (field named),
//! [`PlacementError::UnknownPool`], and [`PlacementError::NoRoom`] naming the
//! partition and replica that cannot be placed.

use std::cmp::Reverse;
#[cfg(test)]
use std::collections::BTreeMap;
use std::collections::BinaryHeap;

use serde::{Deserialize, Serialize};

use crate::error::PlacementError;
use crate::model::{ClusterModel, PolicySpec, Replica};
use crate::stats::broker_usable;

/// A topic to create.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTopic {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u8,
    /// Expected bytes/s produced per partition.
    #[serde(default)]
    pub bytes_in_per_partition: f64,
    /// Expected bytes per partition at retention.
    #[serde(default)]
    pub size_per_partition: u64,
    #[serde(default)]
    pub pool: String,
    #[serde(default)]
    pub policy: PolicySpec,
    /// Hard fill limit of a disk (default 0.95).
    #[serde(default = "default_fill")]
    pub max_disk_fill: f64,
}

fn default_fill() -> f64 {
    0.95
}

/// Replica assignment per partition, in Kafka's terms; the first replica
/// of each is the preferred leader.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Placement {
    pub topic: String,
    /// Per partition: (broker id, log dir) per replica.
    pub partitions: Vec<Vec<(i32, String)>>,
    /// The same, as dense indices into the model.
    #[serde(skip)]
    pub replicas: Vec<Vec<Replica>>,
}

struct Scorer<'a> {
    m: &'a ClusterModel,
    used: Vec<f64>,
    write: Vec<f64>,
    nw_in: Vec<f64>,
    cpu: Vec<f64>,
    leaders: Vec<u32>,
    /// Pool means: fill, disk write, broker nw-in utilisation, CPU utilisation.
    mean: [f64; 4],
}

impl Scorer<'_> {
    fn score(&self, d: usize) -> f64 {
        let disk = &self.m.disks[d];
        let b = disk.broker as usize;
        let cap = self.m.brokers[b].capacity;
        let n = |x: f64, mean: f64| if mean > 0.0 { x / mean } else { x };
        n(self.used[d] / disk.capacity as f64, self.mean[0])
            .max(n(self.write[d], self.mean[1]))
            .max(n(self.nw_in[b] / cap[0].max(1.0), self.mean[2]))
            .max(n(self.cpu[b] / cap[2].max(1e-9), self.mean[3]))
    }
}

/// Places a new topic. See the module docs.
pub fn place(m: &ClusterModel, t: &NewTopic) -> Result<Placement, PlacementError> {
    let invalid = |field: &str, reason: &str| PlacementError::Invalid {
        field: field.into(),
        reason: reason.into(),
    };
    if t.name.is_empty() {
        return Err(invalid("name", "must not be empty"));
    }
    if t.partitions == 0 {
        return Err(invalid("partitions", "must be ≥ 1"));
    }
    if t.replication_factor == 0 {
        return Err(invalid("replication_factor", "must be ≥ 1"));
    }
    if !(t.bytes_in_per_partition.is_finite() && t.bytes_in_per_partition >= 0.0) {
        return Err(invalid(
            "bytes_in_per_partition",
            "must be a finite number ≥ 0",
        ));
    }
    if !(t.max_disk_fill > 0.0 && t.max_disk_fill <= 1.0) {
        return Err(invalid("max_disk_fill", "must be in (0, 1]"));
    }
    let pool =
        m.pools
            .iter()
            .position(|p| *p == t.pool)
            .ok_or_else(|| PlacementError::UnknownPool {
                pool: t.pool.clone(),
            })? as u32;
    let allowed_idcs: Vec<u32> = t
        .policy
        .idcs
        .iter()
        .filter_map(|i| m.idcs.iter().position(|x| x == i).map(|x| x as u32))
        .collect();
    if !t.policy.idcs.is_empty() && allowed_idcs.is_empty() {
        return Err(invalid("policy.idcs", "none of these IDCs exists"));
    }

    let loads = m.loads(&m.replicas, &m.leaders());
    let mut sc = Scorer {
        m,
        used: loads.disk.iter().map(|l| l[0]).collect(),
        write: m
            .disks
            .iter()
            .zip(&loads.disk)
            .map(|(d, l)| d.write_median.max(l[1]))
            .collect(),
        nw_in: loads.broker.iter().map(|l| l[0]).collect(),
        cpu: loads.broker.iter().map(|l| l[2]).collect(),
        leaders: loads.broker.iter().map(|l| l[3] as u32).collect(),
        mean: [0.0; 4],
    };
    let usable: Vec<usize> = (0..m.disks.len())
        .filter(|&d| {
            let b = &m.brokers[m.disks[d].broker as usize];
            m.disk_usable(d as u32)
                && b.pool == pool
                && !b.excluded
                && (allowed_idcs.is_empty() || allowed_idcs.contains(&b.idc))
        })
        .collect();
    let (mut sum, mut w) = ([0.0f64; 4], [0.0f64; 4]);
    for &d in &usable {
        sum[0] += sc.used[d];
        w[0] += m.disks[d].capacity as f64;
        sum[1] += sc.write[d];
        w[1] += 1.0;
    }
    for b in 0..m.brokers.len() {
        if broker_usable(m, b) && m.brokers[b].pool == pool {
            let cap = m.brokers[b].capacity;
            sum[2] += sc.nw_in[b];
            w[2] += cap[0].max(1.0);
            sum[3] += sc.cpu[b];
            w[3] += cap[2].max(1e-9);
        }
    }
    for i in 0..4 {
        sc.mean[i] = if w[i] > 0.0 { sum[i] / w[i] } else { 0.0 };
    }
    let need_idcs = t
        .policy
        .min_idcs
        .max(1)
        .min(t.replication_factor as u32)
        .min(m.pool_idcs.get(pool as usize).copied().unwrap_or(0)) as usize;
    // Ties (equal load, e.g. an empty cluster or unknown rates) go to the
    // broker, then the disk, holding the fewest replicas.
    let mut on_broker = vec![0u32; m.brokers.len()];
    let mut on_disk = vec![0u32; m.disks.len()];
    for r in &m.replicas {
        on_broker[r.broker as usize] += 1;
        on_disk[r.disk as usize] += 1;
    }
    type Key = Reverse<(u64, u32, u32, u32)>;
    let key = |sc: &Scorer, on_broker: &[u32], on_disk: &[u32], d: usize| -> Key {
        let b = m.disks[d].broker as usize;
        Reverse((
            sc.score(d).max(0.0).to_bits(),
            on_broker[b],
            on_disk[d],
            d as u32,
        ))
    };
    let mut heap: BinaryHeap<Key> = usable
        .iter()
        .map(|&d| key(&sc, &on_broker, &on_disk, d))
        .collect();
    let bytes_in = t.bytes_in_per_partition;
    let size = t.size_per_partition as f64;
    let cpu = bytes_in / 40e6;
    let rf = t.replication_factor as usize;
    let mut out = Placement {
        topic: t.name.clone(),
        partitions: Vec::with_capacity(t.partitions as usize),
        replicas: Vec::with_capacity(t.partitions as usize),
    };
    let mut skipped = Vec::new();
    for p in 0..t.partitions {
        let mut chosen: Vec<Replica> = Vec::with_capacity(rf);
        let mut idcs: Vec<u32> = Vec::with_capacity(rf);
        for slot in 0..rf {
            let must_new_idc = need_idcs.saturating_sub(idcs.len()) >= rf - slot;
            let mut pick = None;
            while let Some(popped) = heap.pop() {
                let d = (popped.0).3 as usize;
                let now = key(&sc, &on_broker, &on_disk, d);
                if now < popped {
                    // Its key grew (Reverse: smaller = worse) since pushed.
                    heap.push(now);
                    continue;
                }
                let disk = &m.disks[d];
                let b = disk.broker as usize;
                let br = &m.brokers[b];
                let ok = chosen.iter().all(|r| {
                    r.broker as usize != b
                        && !(t.policy.rack_unique && m.brokers[r.broker as usize].rack == br.rack)
                }) && (!must_new_idc || !idcs.contains(&br.idc))
                    && sc.used[d] + size <= disk.capacity as f64 * t.max_disk_fill
                    && (disk.write_budget <= 0.0 || sc.write[d] + bytes_in <= disk.write_budget)
                    && (br.capacity[0] <= 0.0 || sc.nw_in[b] + bytes_in <= br.capacity[0]);
                skipped.push(now);
                if ok {
                    pick = Some(d);
                    break;
                }
            }
            let Some(d) = pick else {
                return Err(PlacementError::NoRoom {
                    topic: t.name.clone(),
                    partition: p as i32,
                    replica: slot,
                    pool: t.pool.clone(),
                    candidates: usable.len(),
                });
            };
            let b = m.disks[d].broker as usize;
            on_broker[b] += 1;
            on_disk[d] += 1;
            sc.used[d] += size;
            sc.write[d] += bytes_in;
            sc.nw_in[b] += bytes_in;
            sc.cpu[b] += cpu * m.follower_cpu_fraction;
            chosen.push(Replica {
                broker: b as u32,
                disk: d as u32,
            });
            let idc = m.brokers[b].idc;
            if !idcs.contains(&idc) {
                idcs.push(idc);
            }
            heap.extend(skipped.drain(..));
        }
        // Preferred leader: the broker leading the fewest partitions.
        let lead = (0..chosen.len())
            .min_by_key(|&i| (sc.leaders[chosen[i].broker as usize], i))
            .unwrap_or(0);
        chosen.swap(0, lead);
        let lb = chosen[0].broker as usize;
        sc.leaders[lb] += 1;
        sc.cpu[lb] += cpu * (1.0 - m.follower_cpu_fraction);
        out.partitions.push(
            chosen
                .iter()
                .map(|r| {
                    (
                        m.brokers[r.broker as usize].id,
                        m.disks[r.disk as usize].dir.clone(),
                    )
                })
                .collect(),
        );
        out.replicas.push(chosen);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ClusterSpec;
    use crate::testkit::*;

    fn topic_req(partitions: u32, rf: u8) -> NewTopic {
        NewTopic {
            name: "new".into(),
            partitions,
            replication_factor: rf,
            bytes_in_per_partition: MB,
            size_per_partition: GB,
            pool: String::new(),
            policy: PolicySpec::default(),
            max_disk_fill: 0.95,
        }
    }

    /// Broker 1's only disk is the fullest: one partition × RF 2 goes to 2 and 3,
    /// and the emptier disk of broker 3.
    fn spec() -> ClusterSpec {
        let mut b3 = broker(3, "c", 2, 100 * GB);
        b3.disks[0].write_median = 20.0 * MB;
        cluster(
            vec![broker(1, "a", 1, 100 * GB), broker(2, "b", 1, 100 * GB), b3],
            vec![topic(
                "old",
                vec![
                    part(0, &[(1, 0)], 60 * GB, MB),
                    part(1, &[(2, 0)], 10 * GB, MB),
                    part(2, &[(3, 0)], 10 * GB, MB),
                ],
            )],
        )
    }

    #[test]
    fn lowest_historical_load_wins() {
        let m = ClusterModel::from_spec(&spec()).unwrap();
        let p = place(&m, &topic_req(1, 2)).unwrap();
        let mut got = p.partitions[0].clone();
        got.sort();
        assert_eq!(got, vec![(2, "/d0".to_string()), (3, "/d1".to_string())]);
    }

    #[test]
    fn rack_unique_and_leaders_spread() {
        let brokers = (1..=6)
            .map(|i| broker(i, &format!("r{}", i % 3), 2, 100 * GB))
            .collect();
        let m = ClusterModel::from_spec(&cluster(brokers, Vec::new())).unwrap();
        let p = place(&m, &topic_req(12, 3)).unwrap();
        let mut leaders = BTreeMap::new();
        for r in &p.replicas {
            let mut racks: Vec<u32> = r
                .iter()
                .map(|x| m.brokers[x.broker as usize].rack)
                .collect();
            racks.sort();
            racks.dedup();
            assert_eq!(racks.len(), 3);
            *leaders.entry(r[0].broker).or_insert(0) += 1;
        }
        assert_eq!(leaders.len(), 6);
        assert!(leaders.values().all(|&n| n == 2), "{leaders:?}");
        // 36 replicas over 12 disks: 3 each.
        let mut per_disk = BTreeMap::new();
        for r in p.replicas.iter().flatten() {
            *per_disk.entry(r.disk).or_insert(0) += 1;
        }
        assert!(per_disk.values().all(|&n| n == 3), "{per_disk:?}");
    }

    #[test]
    fn errors_name_the_problem() {
        let m = ClusterModel::from_spec(&spec()).unwrap();
        let e = place(&m, &topic_req(0, 1)).unwrap_err();
        assert!(e.to_string().starts_with("partitions:"), "{e}");
        let mut t = topic_req(1, 4);
        let e = place(&m, &t).unwrap_err();
        assert!(
            matches!(e, PlacementError::NoRoom { replica: 3, .. }),
            "{e}"
        );
        t = topic_req(1, 1);
        t.pool = "nope".into();
        assert!(matches!(
            place(&m, &t),
            Err(PlacementError::UnknownPool { .. })
        ));
        t = topic_req(1, 1);
        t.size_per_partition = 200 * GB;
        assert!(matches!(place(&m, &t), Err(PlacementError::NoRoom { .. })));
    }

    #[test]
    fn deterministic() {
        let m = ClusterModel::from_spec(&spec()).unwrap();
        assert_eq!(place(&m, &topic_req(50, 2)), place(&m, &topic_req(50, 2)));
    }
}
