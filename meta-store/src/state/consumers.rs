//! Consumer scheduling: worker pools, workers, bindings and their plans.
//! Owns the `Consumers` commands, its keys (tags `wp`, `ww`, `wb`, `wl`,
//! `wn`: [`super::keys`]), their values (JSON, see
//! `guardian_proto::consumers`) and their loading.
//!
//! Rules enforced at apply:
//! - a binding's cluster must be registered and each of its pools must
//!   exist (`NOT_FOUND` naming it); a worker's pool must exist;
//! - a pool is deleted only when no binding names it and no worker is in
//!   it (`FAILED_PRECONDITION` saying which);
//! - a plan's epoch must be above the current one (`FAILED_PRECONDITION`:
//!   a deposed leader's late plan is refused), its bindings must exist and
//!   every owner must be a worker of one of the binding's pools;
//! - a worker that leaves owns nothing afterwards (its partitions are
//!   dropped from every plan, under a new epoch);
//! - unbinding drops the binding's plan.

use std::collections::BTreeMap;

use guardian_proto::consumers::{
    BindingKey, BindingPlan, BindingRecord, ConsumersCmd, WorkerPool, WorkerRecord,
};

use super::keys::KeyReader;
use super::registry::Registry;
use super::Key;
use crate::error::StoreError;
use crate::types::{CommandResponse, Rejection};

/// A persisted item of the consumer domain (one `sm_data` key).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConsKey {
    Pool(String),
    Worker(String),
    Binding(BindingKey),
    Plan(BindingKey),
    /// The current plan epoch.
    Epoch,
}

impl From<ConsKey> for Key {
    fn from(k: ConsKey) -> Key {
        Key::Consumers(k)
    }
}

/// The tags of this domain's keys.
pub(crate) const TAGS: [&[u8; 2]; 5] = [b"wp", b"ww", b"wb", b"wl", b"wn"];

fn put_binding(out: &mut Vec<u8>, tag: &[u8; 2], k: &BindingKey) {
    out.extend_from_slice(tag);
    out.extend_from_slice(k.cluster.as_bytes());
    out.push(0);
    out.extend_from_slice(k.topic.as_bytes());
    out.push(0);
    out.extend_from_slice(k.group.as_bytes());
}

fn read_binding(r: &KeyReader) -> Result<BindingKey, StoreError> {
    let text = std::str::from_utf8(r.rest()).map_err(|e| r.bad(e))?;
    let mut it = text.splitn(3, '\0');
    match (it.next(), it.next(), it.next()) {
        (Some(c), Some(t), Some(g)) => Ok(BindingKey {
            cluster: c.to_string(),
            topic: t.to_string(),
            group: g.to_string(),
        }),
        _ => Err(r.bad("not cluster\\0topic\\0group")),
    }
}

impl ConsKey {
    /// The RocksDB key.
    pub fn bytes(&self, out: &mut Vec<u8>) {
        match self {
            ConsKey::Pool(n) => {
                out.extend_from_slice(b"wp");
                out.extend_from_slice(n.as_bytes());
            }
            ConsKey::Worker(id) => {
                out.extend_from_slice(b"ww");
                out.extend_from_slice(id.as_bytes());
            }
            ConsKey::Binding(k) => put_binding(out, b"wb", k),
            ConsKey::Plan(k) => put_binding(out, b"wl", k),
            ConsKey::Epoch => out.extend_from_slice(b"wn"),
        }
    }
}

/// Pools, workers, bindings, plans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consumers {
    pub pools: BTreeMap<String, WorkerPool>,
    pub workers: BTreeMap<String, WorkerRecord>,
    pub bindings: BTreeMap<BindingKey, BindingRecord>,
    pub plans: BTreeMap<BindingKey, BindingPlan>,
    /// The last plan epoch applied (0: none yet).
    pub epoch: u64,
}

fn not_found(what: String) -> CommandResponse {
    CommandResponse::Rejected(Rejection::NotFound { what })
}

fn precondition(reason: String) -> CommandResponse {
    CommandResponse::Rejected(Rejection::FailedPrecondition { reason })
}

impl Consumers {
    pub fn apply(
        &mut self,
        reg: &Registry,
        c: &ConsumersCmd,
        now: u64,
        touched: &mut Vec<Key>,
    ) -> CommandResponse {
        match c {
            ConsumersCmd::CreatePool { pool } => {
                if self.pools.contains_key(&pool.name) {
                    return CommandResponse::Rejected(Rejection::AlreadyExists {
                        what: format!("worker pool {:?}", pool.name),
                    });
                }
                let mut p = pool.clone();
                p.created_ms = now;
                touched.push(ConsKey::Pool(p.name.clone()).into());
                self.pools.insert(p.name.clone(), p);
                CommandResponse::Done
            }
            ConsumersCmd::DeletePool { name } => {
                if !self.pools.contains_key(name) {
                    return not_found(format!("worker pool {name:?}"));
                }
                let bound: Vec<String> = self
                    .bindings
                    .values()
                    .filter(|b| b.pools.iter().any(|s| &s.pool == name))
                    .map(|b| b.key.to_string())
                    .collect();
                if !bound.is_empty() {
                    return precondition(format!(
                        "worker pool {name:?} is bound to {} (guardian consumers unbind first)",
                        bound.join(", ")
                    ));
                }
                let workers = self.workers.values().filter(|w| &w.pool == name).count();
                if workers > 0 {
                    return precondition(format!(
                        "worker pool {name:?} still has {workers} worker(s)"
                    ));
                }
                self.pools.remove(name);
                touched.push(ConsKey::Pool(name.clone()).into());
                CommandResponse::Done
            }
            ConsumersCmd::Bind { binding } => {
                if !reg.clusters.contains_key(&binding.key.cluster) {
                    return not_found(format!("cluster {:?}", binding.key.cluster));
                }
                if let Some(s) = binding
                    .pools
                    .iter()
                    .find(|s| !self.pools.contains_key(&s.pool))
                {
                    return not_found(format!("worker pool {:?}", s.pool));
                }
                let mut b = binding.clone();
                b.created_ms = self.bindings.get(&b.key).map_or(now, |old| old.created_ms);
                touched.push(ConsKey::Binding(b.key.clone()).into());
                self.bindings.insert(b.key.clone(), b);
                CommandResponse::Done
            }
            ConsumersCmd::Unbind { key } => {
                if self.bindings.remove(key).is_none() {
                    return not_found(format!("binding {key}"));
                }
                touched.push(ConsKey::Binding(key.clone()).into());
                if self.plans.remove(key).is_some() {
                    touched.push(ConsKey::Plan(key.clone()).into());
                }
                CommandResponse::Done
            }
            ConsumersCmd::Join { worker } => {
                if !self.pools.contains_key(&worker.pool) {
                    return not_found(format!("worker pool {:?}", worker.pool));
                }
                let mut w = worker.clone();
                w.joined_ms = self
                    .workers
                    .get(&w.id)
                    .filter(|old| old.pool == w.pool)
                    .map_or(now, |old| old.joined_ms);
                touched.push(ConsKey::Worker(w.id.clone()).into());
                self.workers.insert(w.id.clone(), w);
                CommandResponse::Done
            }
            ConsumersCmd::Leave { id } => {
                if self.workers.remove(id).is_none() {
                    return not_found(format!("worker {id:?}"));
                }
                touched.push(ConsKey::Worker(id.clone()).into());
                // What it owned has no owner now, under a new epoch.
                let mut changed = false;
                for (k, p) in self.plans.iter_mut() {
                    let before = p.owners.len();
                    p.owners.retain(|_, w| w != id);
                    if p.owners.len() != before {
                        if !changed {
                            self.epoch += 1;
                            changed = true;
                        }
                        p.epoch = self.epoch;
                        touched.push(ConsKey::Plan(k.clone()).into());
                    }
                }
                if changed {
                    touched.push(ConsKey::Epoch.into());
                }
                CommandResponse::Done
            }
            ConsumersCmd::Plan { epoch, plans } => {
                if *epoch <= self.epoch {
                    return precondition(format!(
                        "plan epoch {epoch} is not above the current epoch {}",
                        self.epoch
                    ));
                }
                for (k, owners) in plans {
                    let Some(b) = self.bindings.get(k) else {
                        return not_found(format!("binding {k}"));
                    };
                    for (p, w) in owners {
                        match self.workers.get(w) {
                            None => {
                                return not_found(format!(
                                    "worker {w:?} (owner of {k} partition {p})"
                                ))
                            }
                            Some(x) if !b.pools.iter().any(|s| s.pool == x.pool) => {
                                return precondition(format!(
                                    "worker {w:?} is in pool {:?}, which {k} is not bound to",
                                    x.pool
                                ))
                            }
                            Some(_) => {}
                        }
                    }
                }
                self.epoch = *epoch;
                touched.push(ConsKey::Epoch.into());
                for (k, owners) in plans {
                    let p = self.plans.entry(k.clone()).or_default();
                    if &p.owners != owners {
                        p.owners = owners.clone();
                        p.epoch = *epoch;
                        touched.push(ConsKey::Plan(k.clone()).into());
                    }
                }
                CommandResponse::Done
            }
        }
    }

    /// The current value of `k`, encoded; `None` if it no longer exists.
    pub fn value_bytes(&self, k: &ConsKey) -> Option<Vec<u8>> {
        match k {
            ConsKey::Pool(n) => self.pools.get(n).map(json),
            ConsKey::Worker(id) => self.workers.get(id).map(json),
            ConsKey::Binding(b) => self.bindings.get(b).map(json),
            ConsKey::Plan(b) => self.plans.get(b).map(json),
            ConsKey::Epoch => Some(self.epoch.to_be_bytes().to_vec()),
        }
    }

    /// Loads one stored pair.
    pub fn load_kv(&mut self, k: &[u8], v: &[u8]) -> Result<(), StoreError> {
        let r = KeyReader::new(k);
        let text = || std::str::from_utf8(r.rest()).map_err(|e| r.bad(e));
        match &k[..2] {
            b"wp" => {
                let p: WorkerPool = serde_json::from_slice(v).map_err(|e| r.bad(e))?;
                self.pools.insert(text()?.to_string(), p);
            }
            b"ww" => {
                let w: WorkerRecord = serde_json::from_slice(v).map_err(|e| r.bad(e))?;
                self.workers.insert(text()?.to_string(), w);
            }
            b"wb" => {
                let b: BindingRecord = serde_json::from_slice(v).map_err(|e| r.bad(e))?;
                self.bindings.insert(read_binding(&r)?, b);
            }
            b"wl" => {
                let p: BindingPlan = serde_json::from_slice(v).map_err(|e| r.bad(e))?;
                self.plans.insert(read_binding(&r)?, p);
            }
            b"wn" => {
                let b: [u8; 8] = v.try_into().map_err(|_| r.bad("epoch is not 8 bytes"))?;
                self.epoch = u64::from_be_bytes(b);
            }
            _ => return Err(r.bad("not a consumers key")),
        }
        Ok(())
    }
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("consumer records serialize")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use guardian_proto::consumers::*;
    use guardian_proto::domain::{Cluster, Command, Request};

    use super::ConsKey;
    use crate::state::{Key, State};
    use crate::types::CommandResponse;

    fn apply(st: &mut State, now: u64, cmd: ConsumersCmd) -> (CommandResponse, Vec<Key>) {
        let mut touched = Vec::new();
        let r = st.apply(
            &Request::new(now, Command::Consumers(Box::new(cmd))),
            &mut touched,
        );
        (r, touched)
    }

    fn ok(st: &mut State, cmd: ConsumersCmd) {
        let (r, _) = apply(st, 10, cmd);
        assert_eq!(r, CommandResponse::Done);
    }

    fn refused(st: &mut State, cmd: ConsumersCmd) -> String {
        match apply(st, 10, cmd).0 {
            CommandResponse::Rejected(r) => r.to_string(),
            other => panic!("{other:?}"),
        }
    }

    fn pool(name: &str) -> ConsumersCmd {
        ConsumersCmd::CreatePool {
            pool: WorkerPool {
                name: name.into(),
                description: String::new(),
                created_ms: 0,
            },
        }
    }

    fn key(topic: &str) -> BindingKey {
        BindingKey {
            cluster: "c".into(),
            topic: topic.into(),
            group: "g".into(),
        }
    }

    fn bind(topic: &str, pools: &[(&str, u32)]) -> ConsumersCmd {
        ConsumersCmd::Bind {
            binding: BindingRecord {
                key: key(topic),
                pools: pools
                    .iter()
                    .map(|(p, r)| PoolShare {
                        pool: p.to_string(),
                        ratio: *r,
                    })
                    .collect(),
                created_ms: 0,
            },
        }
    }

    fn join(id: &str, pool: &str) -> ConsumersCmd {
        ConsumersCmd::Join {
            worker: WorkerRecord {
                id: id.into(),
                pool: pool.into(),
                capacity: 2.0,
                labels: BTreeMap::new(),
                joined_ms: 0,
            },
        }
    }

    fn plan(epoch: u64, topic: &str, owners: &[(i32, &str)]) -> ConsumersCmd {
        ConsumersCmd::Plan {
            epoch,
            plans: vec![(
                key(topic),
                owners.iter().map(|(p, w)| (*p, w.to_string())).collect(),
            )],
        }
    }

    /// Reloads the consumer domain from the keys it would store.
    fn reload(st: &State) -> State {
        let c = &st.consumers;
        let mut keys: Vec<ConsKey> = Vec::new();
        keys.extend(c.pools.keys().cloned().map(ConsKey::Pool));
        keys.extend(c.workers.keys().cloned().map(ConsKey::Worker));
        keys.extend(c.bindings.keys().cloned().map(ConsKey::Binding));
        keys.extend(c.plans.keys().cloned().map(ConsKey::Plan));
        keys.push(ConsKey::Epoch);
        let mut out = State::default();
        for k in keys {
            let k = Key::Consumers(k);
            out.load_kv(&k.bytes(), &st.value_bytes(&k).unwrap())
                .unwrap();
        }
        out
    }

    fn with_cluster() -> State {
        let mut st = State::default();
        let add = Command::AddCluster(Cluster {
            id: 0,
            name: "c".into(),
            bootstrap_servers: vec!["h:9092".into()],
            idc: "east".into(),
            kafka_cluster_id: None,
            created_at_ms: 0,
        });
        st.apply(&Request::new(1, add), &mut Vec::new());
        st
    }

    #[test]
    fn pools_bindings_and_workers_are_checked_against_what_exists() {
        let mut st = with_cluster();
        ok(&mut st, pool("p"));
        assert_eq!(
            refused(&mut st, pool("p")),
            "worker pool \"p\" already exists"
        );
        assert_eq!(
            refused(&mut st, bind("t", &[("p", 70), ("q", 30)])),
            "worker pool \"q\" not found"
        );
        ok(&mut st, pool("q"));
        ok(&mut st, bind("t", &[("p", 70), ("q", 30)]));
        let mut other = bind("t", &[("p", 1)]);
        if let ConsumersCmd::Bind { binding } = &mut other {
            binding.key.cluster = "nope".into();
        }
        assert_eq!(refused(&mut st, other), "cluster \"nope\" not found");
        assert_eq!(
            refused(&mut st, join("w1", "r")),
            "worker pool \"r\" not found"
        );
        ok(&mut st, join("w1", "p"));
        ok(&mut st, join("w2", "q"));
        // A pool in use stays.
        assert!(
            refused(&mut st, ConsumersCmd::DeletePool { name: "q".into() })
                .contains("is bound to c/t/g")
        );
        ok(&mut st, ConsumersCmd::Unbind { key: key("t") });
        assert_eq!(
            refused(&mut st, ConsumersCmd::DeletePool { name: "q".into() }),
            "worker pool \"q\" still has 1 worker(s)"
        );
        ok(&mut st, ConsumersCmd::Leave { id: "w2".into() });
        ok(&mut st, ConsumersCmd::DeletePool { name: "q".into() });
        assert_eq!(
            refused(&mut st, ConsumersCmd::Leave { id: "w2".into() }),
            "worker \"w2\" not found"
        );
        // Malformed input names the field.
        let r = refused(&mut st, bind("t", &[("p", 0)]));
        assert_eq!(r, "invalid pools[0].ratio: must be > 0");
        assert_eq!(reload(&st).consumers, st.consumers);
    }

    #[test]
    fn plans_need_a_higher_epoch_and_owners_in_the_bound_pools() {
        let mut st = with_cluster();
        ok(&mut st, pool("p"));
        ok(&mut st, pool("q"));
        ok(&mut st, bind("t", &[("p", 1)]));
        ok(&mut st, join("w1", "p"));
        ok(&mut st, join("w2", "p"));
        ok(&mut st, join("w3", "q"));
        let (r, touched) = apply(&mut st, 20, plan(1, "t", &[(0, "w1"), (1, "w2")]));
        assert_eq!(r, CommandResponse::Done);
        assert!(touched.contains(&Key::Consumers(ConsKey::Plan(key("t")))));
        // A deposed leader's late plan: refused.
        assert_eq!(
            refused(&mut st, plan(1, "t", &[(0, "w2")])),
            "plan epoch 1 is not above the current epoch 1"
        );
        assert_eq!(
            refused(&mut st, plan(2, "t", &[(0, "w3")])),
            "worker \"w3\" is in pool \"q\", which c/t/g is not bound to"
        );
        assert_eq!(
            refused(&mut st, plan(2, "t", &[(0, "gone")])),
            "worker \"gone\" (owner of c/t/g partition 0) not found"
        );
        assert_eq!(
            refused(&mut st, plan(2, "u", &[(0, "w1")])),
            "binding c/u/g not found"
        );
        assert_eq!(st.consumers.epoch, 1);
        // A worker that leaves owns nothing afterwards, under a new epoch.
        ok(&mut st, ConsumersCmd::Leave { id: "w2".into() });
        let p = &st.consumers.plans[&key("t")];
        assert_eq!(p.owners, BTreeMap::from([(0, "w1".to_string())]));
        assert_eq!((p.epoch, st.consumers.epoch), (2, 2));
        assert_eq!(reload(&st).consumers, st.consumers);
        // Unbinding drops the plan.
        ok(&mut st, ConsumersCmd::Unbind { key: key("t") });
        assert!(st.consumers.plans.is_empty());
    }
}
