//! Builders for hand-made clusters in unit tests.

use crate::model::{
    BrokerSpec, ClusterSpec, DiskSpec, GroupSpec, PartitionSpec, PolicySpec, PositionSpec,
    ReplicaSpec, TopicSpec,
};

pub const GB: u64 = 1_000_000_000;
pub const MB: f64 = 1e6;

/// A broker with `disks` log dirs `/d0`, `/d1`, … of `cap` bytes each.
pub fn broker(id: i32, rack: &str, disks: usize, cap: u64) -> BrokerSpec {
    BrokerSpec {
        id,
        rack: rack.into(),
        idc: "idc0".into(),
        pool: String::new(),
        alive: true,
        decommission: false,
        excluded: false,
        nw_in_capacity: 1e12,
        nw_out_capacity: 1e12,
        cpu_capacity: 1e6,
        page_cache_bytes: GB,
        write_rate: 0.0,
        disks: (0..disks)
            .map(|d| DiskSpec {
                dir: format!("/d{d}"),
                capacity_bytes: cap,
                ..DiskSpec::default()
            })
            .collect(),
    }
}

/// A partition with replicas `(broker, dir index)`, the first leading.
pub fn part(partition: i32, replicas: &[(i32, usize)], size: u64, bytes_in: f64) -> PartitionSpec {
    PartitionSpec {
        partition,
        replicas: replicas
            .iter()
            .map(|&(b, d)| ReplicaSpec {
                broker: b,
                dir: format!("/d{d}"),
                lag_bytes: 0,
            })
            .collect(),
        leader: None,
        size_bytes: size,
        bytes_in,
        bytes_out: 0.0,
        disk_read: 0.0,
        messages_in: 0.0,
        cpu: 0.0,
        future: None,
    }
}

pub fn topic(name: &str, partitions: Vec<PartitionSpec>) -> TopicSpec {
    TopicSpec {
        pinned: false,
        name: name.into(),
        pool: String::new(),
        policy: PolicySpec::default(),
        partitions,
    }
}

pub fn cluster(brokers: Vec<BrokerSpec>, topics: Vec<TopicSpec>) -> ClusterSpec {
    ClusterSpec {
        name: "test".into(),
        brokers,
        topics,
        groups: Vec::new(),
        follower_cpu_fraction: 0.3,
    }
}

pub fn group(name: &str, positions: &[(&str, i32, u64, f64)]) -> GroupSpec {
    GroupSpec {
        name: name.into(),
        user: format!("user-{name}"),
        client_id: format!("client-{name}"),
        positions: positions
            .iter()
            .map(|&(t, p, lag, rate)| PositionSpec {
                topic: t.into(),
                partition: p,
                lag_bytes: lag,
                rate,
            })
            .collect(),
    }
}
