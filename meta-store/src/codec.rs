//! openraft ⇄ protobuf encoding: log entries, votes, membership and snapshot
//! metadata, used both on disk (RocksDB values) and on the wire (the Raft peer
//! API). Lives here, not in `guardian-proto`, because that crate must not
//! depend on openraft.

use std::collections::{BTreeMap, BTreeSet};

use guardian_proto::conv::{required, ConvError};
use guardian_proto::domain::Request;
use guardian_proto::pb;
use openraft::{CommittedLeaderId, EntryPayload};

use crate::types::{
    Entry, GuardianNode, LogId, Membership, NodeId, SnapshotMeta, StoredMembership, Vote,
};

pub fn log_id_to_pb(l: &LogId) -> pb::LogId {
    pb::LogId {
        term: l.leader_id.term,
        node_id: l.leader_id.node_id,
        index: l.index,
    }
}

pub fn log_id_from_pb(l: &pb::LogId) -> LogId {
    LogId::new(CommittedLeaderId::new(l.term, l.node_id), l.index)
}

pub fn opt_log_id_to_pb(l: &Option<LogId>) -> Option<pb::LogId> {
    l.as_ref().map(log_id_to_pb)
}

pub fn opt_log_id_from_pb(l: &Option<pb::LogId>) -> Option<LogId> {
    l.as_ref().map(log_id_from_pb)
}

pub fn vote_to_pb(v: &Vote) -> pb::Vote {
    pb::Vote {
        term: v.leader_id.term,
        node_id: v.leader_id.node_id,
        committed: v.committed,
    }
}

pub fn vote_from_pb(v: &pb::Vote) -> Vote {
    if v.committed {
        Vote::new_committed(v.term, v.node_id)
    } else {
        Vote::new(v.term, v.node_id)
    }
}

pub fn node_to_pb(n: &GuardianNode) -> pb::Node {
    pb::Node {
        raft_addr: n.raft_addr.clone(),
        admin_addr: n.admin_addr.clone(),
    }
}

pub fn node_from_pb(n: pb::Node) -> GuardianNode {
    GuardianNode {
        raft_addr: n.raft_addr,
        admin_addr: n.admin_addr,
    }
}

pub fn membership_to_pb(m: &Membership) -> pb::Membership {
    pb::Membership {
        configs: m
            .get_joint_config()
            .iter()
            .map(|c| pb::NodeIdSet {
                ids: c.iter().copied().collect(),
            })
            .collect(),
        nodes: m.nodes().map(|(id, n)| (*id, node_to_pb(n))).collect(),
    }
}

pub fn membership_from_pb(m: pb::Membership) -> Membership {
    let configs: Vec<BTreeSet<NodeId>> = m
        .configs
        .into_iter()
        .map(|c| c.ids.into_iter().collect())
        .collect();
    let nodes: BTreeMap<NodeId, GuardianNode> = m
        .nodes
        .into_iter()
        .map(|(id, n)| (id, node_from_pb(n)))
        .collect();
    Membership::new(configs, nodes)
}

pub fn stored_membership_to_pb(m: &StoredMembership) -> pb::StoredMembership {
    pb::StoredMembership {
        log_id: opt_log_id_to_pb(m.log_id()),
        membership: Some(membership_to_pb(m.membership())),
    }
}

pub fn stored_membership_from_pb(m: pb::StoredMembership) -> StoredMembership {
    StoredMembership::new(
        opt_log_id_from_pb(&m.log_id),
        m.membership.map(membership_from_pb).unwrap_or_default(),
    )
}

pub fn entry_to_pb(e: &Entry) -> pb::Entry {
    let payload = match &e.payload {
        EntryPayload::Blank => pb::entry::Payload::Blank(pb::Blank {}),
        EntryPayload::Normal(r) => pb::entry::Payload::NormalEncoded(r.encoded()),
        EntryPayload::Membership(m) => pb::entry::Payload::Membership(membership_to_pb(m)),
    };
    pb::Entry {
        log_id: Some(log_id_to_pb(&e.log_id)),
        payload: Some(payload),
    }
}

pub fn entry_from_pb(e: pb::Entry) -> Result<Entry, ConvError> {
    let log_id = log_id_from_pb(&required(e.log_id, "entry.log_id")?);
    let payload = match required(e.payload, "entry.payload")? {
        pb::entry::Payload::Blank(_) => EntryPayload::Blank,
        pb::entry::Payload::Normal(r) => EntryPayload::Normal(Request::try_from(r)?),
        pb::entry::Payload::NormalEncoded(b) => EntryPayload::Normal(Request::decode_cached(b)?),
        pb::entry::Payload::Membership(m) => EntryPayload::Membership(membership_from_pb(m)),
    };
    Ok(Entry { log_id, payload })
}

pub fn snapshot_meta_to_pb(m: &SnapshotMeta) -> pb::SnapshotMeta {
    pb::SnapshotMeta {
        last_log_id: opt_log_id_to_pb(&m.last_log_id),
        last_membership: Some(stored_membership_to_pb(&m.last_membership)),
        snapshot_id: m.snapshot_id.clone(),
    }
}

pub fn snapshot_meta_from_pb(m: pb::SnapshotMeta) -> SnapshotMeta {
    SnapshotMeta {
        last_log_id: opt_log_id_from_pb(&m.last_log_id),
        last_membership: m
            .last_membership
            .map(stored_membership_from_pb)
            .unwrap_or_default(),
        snapshot_id: m.snapshot_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guardian_proto::domain::Command;

    #[test]
    fn entry_round_trips() {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            1,
            GuardianNode {
                raft_addr: "a:1".into(),
                admin_addr: "a:2".into(),
            },
        );
        let m = Membership::new(vec![[1u64].into_iter().collect()], nodes);
        let log_id = LogId::new(CommittedLeaderId::new(3, 1), 9);
        for payload in [
            EntryPayload::Blank,
            EntryPayload::Membership(m),
            EntryPayload::Normal(Request::new(5, Command::DeleteTenant { name: "t".into() })),
        ] {
            let e = Entry { log_id, payload };
            let back = entry_from_pb(entry_to_pb(&e)).unwrap();
            assert_eq!(format!("{back:?}"), format!("{e:?}"));
        }
    }

    #[test]
    fn vote_round_trips() {
        for v in [Vote::new(4, 2), Vote::new_committed(5, 3)] {
            assert_eq!(vote_from_pb(&vote_to_pb(&v)), v);
        }
    }
}
