//! Balance statistics per resource, computed the same way for a plan's
//! predicted batches and for the verifier's before/after table.
//!
//! Every resource is balanced *within a tenant pool* (pools are isolated:
//! a topic's replicas never leave its pool), on usable units only (alive,
//! not decommissioning, not failed). A unit's utilisation is its load over
//! its weight: disk bytes over capacity, network and CPU over the broker's
//! capacity, everything else over 1. `max_over_mean` is the worst pool's
//! `max utilisation / pool mean`; a pool whose mean is 0 is skipped.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::{BrokerLoad, ClusterModel, DiskLoad, Resource};

/// One resource's spread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Stat {
    /// Worst pool's max utilisation ÷ that pool's mean (1.0 = perfectly even).
    pub max_over_mean: f64,
    /// Worst pool's max ÷ min utilisation; `None` when some unit carries 0.
    pub max_over_min: Option<f64>,
    /// Total load over usable units (bytes, bytes/s, cores or a count).
    pub total: f64,
    /// Largest single unit's load.
    pub max: f64,
}

/// Weight of a disk for a disk resource.
#[inline]
pub(crate) fn disk_weight(m: &ClusterModel, d: usize, r: Resource) -> f64 {
    match r {
        Resource::DiskBytes => m.disks[d].capacity as f64,
        _ => 1.0,
    }
}

/// Weight of a broker for a broker resource.
#[inline]
pub(crate) fn broker_weight(m: &ClusterModel, b: usize, r: Resource) -> f64 {
    match r {
        Resource::NwIn | Resource::NwOut | Resource::Cpu => {
            let c = m.brokers[b].capacity[r.slot()];
            if c > 0.0 {
                c
            } else {
                1.0
            }
        }
        _ => 1.0,
    }
}

#[inline]
pub(crate) fn broker_usable(m: &ClusterModel, b: usize) -> bool {
    let br = &m.brokers[b];
    br.alive && !br.decommission
}

/// Statistics of every resource for the given loads. O(disks + brokers).
pub fn resource_stats(
    m: &ClusterModel,
    dl: &[DiskLoad],
    bl: &[BrokerLoad],
) -> BTreeMap<Resource, Stat> {
    let np = m.pools.len().max(1);
    let mut out = BTreeMap::new();
    for r in Resource::ALL {
        // Per pool: (sum load, sum weight, max util, min util, max load).
        let mut acc = vec![(0.0f64, 0.0f64, 0.0f64, f64::INFINITY, 0.0f64); np];
        let mut push = |pool: usize, load: f64, w: f64| {
            let a = &mut acc[pool];
            a.0 += load;
            a.1 += w;
            let u = load / w;
            a.2 = a.2.max(u);
            a.3 = a.3.min(u);
            a.4 = a.4.max(load);
        };
        if r.per_disk() {
            for (d, l) in dl.iter().enumerate() {
                if m.disk_usable(d as u32) {
                    let pool = m.brokers[m.disks[d].broker as usize].pool as usize;
                    push(pool, l[r.slot()], disk_weight(m, d, r));
                }
            }
        } else {
            for (b, l) in bl.iter().enumerate() {
                if broker_usable(m, b) {
                    push(
                        m.brokers[b].pool as usize,
                        l[r.slot()],
                        broker_weight(m, b, r),
                    );
                }
            }
        }
        let mut s = Stat {
            max_over_mean: 1.0,
            max_over_min: Some(1.0),
            total: 0.0,
            max: 0.0,
        };
        for &(sum, w, max_u, min_u, max_l) in &acc {
            s.total += sum;
            s.max = s.max.max(max_l);
            if w == 0.0 || sum <= 0.0 {
                continue;
            }
            let mean = sum / w;
            s.max_over_mean = s.max_over_mean.max(max_u / mean);
            s.max_over_min = match (s.max_over_min, min_u > 0.0) {
                (Some(cur), true) => Some(cur.max(max_u / min_u)),
                _ => None,
            };
        }
        out.insert(r, s);
    }
    out
}
