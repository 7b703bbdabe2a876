//! Human tables (default) and `-o json` for scripts. JSON field names are
//! snake_case and stable; lists print as arrays, single results as objects.

use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use guardian_proto::pb;
use serde_json::{json, Value};

use super::Format;

pub struct Output {
    pub format: Format,
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_header(header.to_vec());
    t
}

fn cluster_json(c: &pb::Cluster) -> Value {
    json!({
        "id": c.id, "name": c.name, "bootstrap_servers": c.bootstrap_servers, "idc": c.idc,
        "kafka_cluster_id": if c.kafka_cluster_id.is_empty() { Value::Null } else { json!(c.kafka_cluster_id) },
        "created_at_ms": c.created_at_ms,
    })
}

fn broker_json(b: &pb::Broker) -> Value {
    json!({
        "cluster": b.cluster, "broker_id": b.broker_id, "host": b.host, "rack": b.rack, "idc": b.idc,
        "reporter_endpoint": b.reporter_endpoint,
        "log_dirs": b.log_dirs.iter().map(|d| json!({"path": d.path, "capacity_bytes": d.capacity_bytes})).collect::<Vec<_>>(),
        "nic_bytes_per_sec": b.nic_bytes_per_sec, "cpu_cores": b.cpu_cores,
        "pool": if b.pool.is_empty() { Value::Null } else { json!(b.pool) },
        "registered_at_ms": b.registered_at_ms,
    })
}

fn tenant_json(t: &pb::TenantInfo) -> Value {
    let tenant = t.tenant.clone().unwrap_or_default();
    json!({
        "name": tenant.name, "description": tenant.description, "created_at_ms": tenant.created_at_ms,
        "pool": t.pool.iter().map(|p| json!({"cluster": p.cluster, "broker_id": p.broker_id})).collect::<Vec<_>>(),
    })
}

fn policy_json(p: &pb::PlacementPolicy) -> Value {
    let rpi: std::collections::BTreeMap<_, _> = p.replicas_per_idc.iter().collect();
    json!({
        "cluster": p.cluster, "topic": if p.topic.is_empty() { Value::Null } else { json!(p.topic) },
        "allowed_idcs": p.allowed_idcs, "allowed_racks": p.allowed_racks, "replicas_per_idc": rpi,
    })
}

fn node_json(n: &pb::NodeStatus) -> Value {
    json!({
        "id": n.id, "admin_addr": n.admin_addr, "raft_addr": n.raft_addr, "role": n.role,
        "term": n.term, "last_log_index": n.last_log_index, "last_applied_index": n.last_applied_index,
        "snapshot_index": n.snapshot_index, "purged_index": n.purged_index,
        "leader_id": if n.leader_id == 0 { Value::Null } else { json!(n.leader_id) },
        "initialized": n.initialized,
        "error": if n.error.is_empty() { Value::Null } else { json!(n.error) },
    })
}

fn bytes(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

impl Output {
    pub fn new(format: Format) -> Self {
        Self { format }
    }

    fn emit(&self, v: Value, t: impl FnOnce() -> String) {
        match self.format {
            Format::Json | Format::KafkaJson => println!("{v}"),
            Format::Table => println!("{}", t()),
        }
    }

    fn list(&self, items: Vec<Value>, single: bool, t: impl FnOnce() -> String) {
        let v = if single && items.len() == 1 {
            items.into_iter().next().unwrap_or(Value::Null)
        } else {
            Value::Array(items)
        };
        self.emit(v, t)
    }

    pub fn json_or_line(&self, v: Value, line: String) {
        self.emit(v, || line)
    }

    pub fn done(&self, msg: &str) {
        self.emit(json!({"ok": true, "message": msg}), || msg.to_string())
    }

    pub fn raft_status(&self, s: &pb::RaftStatusResponse) {
        let v = json!({
            "leader_id": if s.leader_id == 0 { Value::Null } else { json!(s.leader_id) },
            "term": s.term,
            "nodes": s.nodes.iter().map(node_json).collect::<Vec<_>>(),
        });
        self.emit(v, || {
            let mut t = table(&[
                "id", "role", "admin", "raft", "term", "last log", "applied", "snapshot",
            ]);
            for n in &s.nodes {
                t.add_row(vec![
                    n.id.to_string(),
                    if n.error.is_empty() {
                        n.role.clone()
                    } else {
                        format!("{} ({})", n.role, n.error)
                    },
                    n.admin_addr.clone(),
                    n.raft_addr.clone(),
                    n.term.to_string(),
                    n.last_log_index.to_string(),
                    n.last_applied_index.to_string(),
                    n.snapshot_index.to_string(),
                ]);
            }
            let leader = if s.leader_id == 0 {
                "none".to_string()
            } else {
                s.leader_id.to_string()
            };
            format!("leader: {leader}  term: {}\n{t}", s.term)
        })
    }

    pub fn membership(&self, m: &pb::MembershipResponse) {
        self.emit(
            json!({"voters": m.voters, "learners": m.learners, "log_index": m.log_index}),
            || format!("voters: {:?}  learners: {:?}", m.voters, m.learners),
        )
    }

    pub fn clusters(&self, cs: &[pb::Cluster], single: bool) {
        self.list(cs.iter().map(cluster_json).collect(), single, || {
            let mut t = table(&["id", "name", "idc", "bootstrap servers", "kafka cluster id"]);
            for c in cs {
                t.add_row(vec![
                    c.id.to_string(),
                    c.name.clone(),
                    c.idc.clone(),
                    c.bootstrap_servers.join(","),
                    c.kafka_cluster_id.clone(),
                ]);
            }
            t.to_string()
        })
    }

    pub fn brokers(&self, bs: &[pb::Broker], single: bool) {
        self.list(bs.iter().map(broker_json).collect(), single, || {
            let mut t = table(&[
                "cluster", "id", "host", "rack", "idc", "reporter", "log dirs", "pool",
            ]);
            for b in bs {
                t.add_row(vec![
                    b.cluster.clone(),
                    b.broker_id.to_string(),
                    b.host.clone(),
                    b.rack.clone(),
                    b.idc.clone(),
                    b.reporter_endpoint.clone(),
                    b.log_dirs
                        .iter()
                        .map(|d| format!("{} ({})", d.path, bytes(d.capacity_bytes)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if b.pool.is_empty() {
                        "-".into()
                    } else {
                        b.pool.clone()
                    },
                ]);
            }
            t.to_string()
        })
    }

    pub fn discovery(&self, name: &str, r: &pb::DiscoverClusterResponse) {
        let v = json!({
            "cluster": name,
            "kafka_cluster_id": r.kafka_cluster_id,
            "dry_run": r.dry_run,
            "changes": r.changes,
            "missing_broker_ids": r.missing_broker_ids,
            "brokers": r.brokers.iter().map(broker_json).collect::<Vec<_>>(),
        });
        self.emit(v, || {
            let verb = if r.dry_run { "would change" } else { "changed" };
            let mut out = format!("cluster {name}: Kafka cluster {}\n", r.kafka_cluster_id);
            if r.changes.is_empty() {
                out.push_str("no changes\n");
            } else {
                out.push_str(&format!("{verb}:\n"));
                for c in &r.changes {
                    out.push_str(&format!("  {c}\n"));
                }
            }
            for id in &r.missing_broker_ids {
                out.push_str(&format!(
                    "broker {id}: registered but not in the cluster (kept; `broker remove` to drop it)\n"
                ));
            }
            out.trim_end().to_string()
        })
    }

    pub fn tenants(&self, ts: &[pb::TenantInfo], single: bool) {
        self.list(ts.iter().map(tenant_json).collect(), single, || {
            let mut t = table(&["tenant", "description", "pool brokers"]);
            for ti in ts {
                let tenant = ti.tenant.clone().unwrap_or_default();
                t.add_row(vec![
                    tenant.name,
                    tenant.description,
                    ti.pool
                        .iter()
                        .map(|p| format!("{}/{}", p.cluster, p.broker_id))
                        .collect::<Vec<_>>()
                        .join(", "),
                ]);
            }
            t.to_string()
        })
    }

    pub fn pool(&self, ti: &pb::TenantInfo) {
        self.tenants(std::slice::from_ref(ti), true)
    }

    pub fn policies(&self, ps: &[pb::PlacementPolicy], single: bool) {
        self.list(ps.iter().map(policy_json).collect(), single, || {
            let mut t = table(&[
                "cluster",
                "topic",
                "allowed idcs",
                "allowed racks",
                "replicas per idc",
            ]);
            for p in ps {
                let mut rpi: Vec<_> = p
                    .replicas_per_idc
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                rpi.sort();
                t.add_row(vec![
                    p.cluster.clone(),
                    if p.topic.is_empty() {
                        "(cluster)".into()
                    } else {
                        p.topic.clone()
                    },
                    p.allowed_idcs.join(","),
                    p.allowed_racks.join(","),
                    rpi.join(","),
                ]);
            }
            t.to_string()
        })
    }

    pub fn ids(&self, kind: &str, ids: &[String]) {
        self.emit(json!({"kind": kind, "ids": ids}), || ids.join("\n"))
    }
}
