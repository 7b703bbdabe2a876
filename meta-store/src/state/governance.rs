//! Governance: the replicated event log and the throttle claims the
//! leader's governance loop holds. Owns the `Governance` commands, its
//! keys (tags `ge`, `gc`, `gn`: [`super::keys`]), their values (JSON, see
//! `guardian_proto::governance`) and their loading.
//!
//! Rules enforced at apply:
//! - event sequence numbers and claim ids are assigned here, in order,
//!   never reused;
//! - the log keeps at most `retention.max_events` events and none older
//!   than `retention.max_age_ms` (by the entry's time), oldest dropped
//!   first — the retention travels in the command, so every node trims
//!   the same;
//! - a claim is replaced only if it exists (`NOT_FOUND` otherwise).

use std::collections::BTreeMap;

use guardian_proto::governance::{Claim, EventRecord, GovernanceCmd, HostOverrides, Retention};

use super::keys::KeyReader;
use super::Key;
use crate::error::StoreError;
use crate::types::{CommandResponse, Rejection};

/// A persisted item of the governance domain (one `sm_data` key).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum GovKey {
    Event(u64),
    Claim(u64),
    /// The next event seq and claim id.
    Next,
    /// A broker's host overrides (cluster, broker).
    Host(String, i32),
}

impl From<GovKey> for Key {
    fn from(k: GovKey) -> Key {
        Key::Governance(k)
    }
}

/// The tags of this domain's keys.
pub(crate) const TAGS: [&[u8; 2]; 4] = [b"ge", b"gc", b"gn", b"gh"];

impl GovKey {
    /// The RocksDB key.
    pub fn bytes(&self, out: &mut Vec<u8>) {
        match self {
            GovKey::Event(seq) => {
                out.extend_from_slice(b"ge");
                out.extend_from_slice(&seq.to_be_bytes());
            }
            GovKey::Claim(id) => {
                out.extend_from_slice(b"gc");
                out.extend_from_slice(&id.to_be_bytes());
            }
            GovKey::Next => out.extend_from_slice(b"gn"),
            GovKey::Host(cluster, id) => super::keys::put_broker(out, b"gh", cluster, *id),
        }
    }
}

/// The event log and the claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Governance {
    pub events: BTreeMap<u64, EventRecord>,
    pub claims: BTreeMap<u64, Claim>,
    pub next_seq: u64,
    pub next_claim: u64,
    /// Per (cluster, broker): what the operator set for its host.
    pub hosts: BTreeMap<(String, i32), HostOverrides>,
}

impl Default for Governance {
    fn default() -> Self {
        Governance {
            events: BTreeMap::new(),
            claims: BTreeMap::new(),
            next_seq: 1,
            next_claim: 1,
            hosts: BTreeMap::new(),
        }
    }
}

impl Governance {
    pub fn apply(
        &mut self,
        c: &GovernanceCmd,
        now: u64,
        touched: &mut Vec<Key>,
    ) -> CommandResponse {
        match c {
            GovernanceCmd::Events { events, retention } => {
                for e in events {
                    let mut e = e.clone();
                    e.seq = self.next_seq;
                    self.next_seq += 1;
                    touched.push(GovKey::Event(e.seq).into());
                    self.events.insert(e.seq, e);
                }
                self.trim(retention, now, touched);
                touched.push(GovKey::Next.into());
                CommandResponse::Done
            }
            GovernanceCmd::PutClaim { claim } => {
                let mut claim = (**claim).clone();
                if claim.id == 0 {
                    claim.id = self.next_claim;
                    self.next_claim += 1;
                    touched.push(GovKey::Next.into());
                } else if !self.claims.contains_key(&claim.id) {
                    return not_found(claim.id);
                }
                touched.push(GovKey::Claim(claim.id).into());
                self.claims.insert(claim.id, claim.clone());
                CommandResponse::Claim(Box::new(claim))
            }
            GovernanceCmd::SetHost {
                cluster,
                broker,
                host,
            } => {
                let k = (cluster.clone(), *broker);
                if host.is_empty() {
                    self.hosts.remove(&k);
                } else {
                    self.hosts.insert(k, host.clone());
                }
                touched.push(GovKey::Host(cluster.clone(), *broker).into());
                CommandResponse::Done
            }
            GovernanceCmd::DropClaim { id } => {
                if self.claims.remove(id).is_none() {
                    return not_found(*id);
                }
                touched.push(GovKey::Claim(*id).into());
                CommandResponse::Done
            }
        }
    }

    fn trim(&mut self, r: &Retention, now: u64, touched: &mut Vec<Key>) {
        let cutoff = now.saturating_sub(r.max_age_ms);
        while let Some((&seq, e)) = self.events.first_key_value() {
            if self.events.len() <= r.max_events as usize && e.at_ms >= cutoff {
                break;
            }
            self.events.remove(&seq);
            touched.push(GovKey::Event(seq).into());
        }
    }

    /// Events after `after` (by seq), of `cluster` (empty: all), at most `limit`.
    pub fn events_after<'a>(
        &'a self,
        after: u64,
        cluster: &'a str,
        limit: usize,
    ) -> impl Iterator<Item = &'a EventRecord> {
        self.events
            .range(after.saturating_add(1)..)
            .map(|(_, e)| e)
            .filter(move |e| cluster.is_empty() || e.cluster == cluster)
            .take(limit)
    }

    /// The claims held on `cluster`.
    pub fn claims_of<'a>(&'a self, cluster: &'a str) -> impl Iterator<Item = &'a Claim> {
        self.claims.values().filter(move |c| c.cluster == cluster)
    }

    /// The current value of `k`, encoded; `None` if it no longer exists.
    pub fn value_bytes(&self, k: &GovKey) -> Option<Vec<u8>> {
        match k {
            GovKey::Event(seq) => self.events.get(seq).map(json),
            GovKey::Claim(id) => self.claims.get(id).map(json),
            GovKey::Host(c, b) => self.hosts.get(&(c.clone(), *b)).map(json),
            GovKey::Next => {
                let mut v = self.next_seq.to_be_bytes().to_vec();
                v.extend_from_slice(&self.next_claim.to_be_bytes());
                Some(v)
            }
        }
    }

    /// Loads one stored pair.
    pub fn load_kv(&mut self, k: &[u8], v: &[u8]) -> Result<(), StoreError> {
        let mut r = KeyReader::new(k);
        match &k[..2] {
            b"ge" => {
                let seq = r.u64()? as u64;
                let e: EventRecord = serde_json::from_slice(v).map_err(|e| r.bad(e))?;
                self.events.insert(seq, e);
            }
            b"gc" => {
                let id = r.u64()? as u64;
                let c: Claim = serde_json::from_slice(v).map_err(|e| r.bad(e))?;
                self.claims.insert(id, c);
            }
            b"gh" => {
                let (cluster, id) = r.cluster_broker()?;
                let h: HostOverrides = serde_json::from_slice(v).map_err(|e| r.bad(e))?;
                self.hosts.insert((cluster, id), h);
            }
            _ => {
                let b: [u8; 16] = v
                    .try_into()
                    .map_err(|_| r.bad("next ids are not 16 bytes"))?;
                self.next_seq = u64::from_be_bytes(b[..8].try_into().expect("8 bytes"));
                self.next_claim = u64::from_be_bytes(b[8..].try_into().expect("8 bytes"));
            }
        }
        Ok(())
    }
}

fn not_found(id: u64) -> CommandResponse {
    CommandResponse::Rejected(Rejection::NotFound {
        what: format!("throttle {id}"),
    })
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("governance records serialize")
}

#[cfg(test)]
mod tests {
    use guardian_proto::domain::{Command, Request};
    use guardian_proto::governance::*;

    use crate::state::State;
    use crate::types::CommandResponse;

    fn apply(st: &mut State, now: u64, cmd: GovernanceCmd) -> CommandResponse {
        let mut touched = Vec::new();
        st.apply(
            &Request::new(now, Command::Governance(Box::new(cmd))),
            &mut touched,
        )
    }

    fn event(at_ms: u64, text: &str) -> EventRecord {
        EventRecord {
            seq: 0,
            at_ms,
            cluster: "c".into(),
            kind: "throttle.set".into(),
            subject: "group g".into(),
            text: text.into(),
            figures: Default::default(),
        }
    }

    /// Reloads `st` from the keys it would store.
    fn reload(st: &State) -> State {
        let mut keys = Vec::new();
        for seq in st.governance.events.keys() {
            keys.push(super::GovKey::Event(*seq));
        }
        for id in st.governance.claims.keys() {
            keys.push(super::GovKey::Claim(*id));
        }
        keys.push(super::GovKey::Next);
        let mut out = State::default();
        for k in keys {
            let key = crate::state::Key::Governance(k);
            let v = st.value_bytes(&key).unwrap();
            out.load_kv(&key.bytes(), &v).unwrap();
        }
        out
    }

    #[test]
    fn events_get_seqs_and_retention_trims_by_count_and_age() {
        let mut st = State::default();
        let keep = Retention {
            max_events: 3,
            max_age_ms: 10_000,
        };
        let evs: Vec<_> = (0..5).map(|i| event(1_000 + i, &format!("e{i}"))).collect();
        apply(
            &mut st,
            1_005,
            GovernanceCmd::Events {
                events: evs,
                retention: keep,
            },
        );
        let seqs: Vec<u64> = st.governance.events.keys().copied().collect();
        assert_eq!(seqs, [3, 4, 5]);
        // Age: at 11_003, events older than 1_003 go.
        apply(
            &mut st,
            11_003,
            GovernanceCmd::Events {
                events: vec![event(11_003, "late")],
                retention: keep,
            },
        );
        let texts: Vec<&str> = st
            .governance
            .events
            .values()
            .map(|e| e.text.as_str())
            .collect();
        assert_eq!(texts, ["e3", "e4", "late"]);
        assert_eq!(st.governance.events_after(4, "", 10).count(), 2);
        assert_eq!(st.governance.events_after(0, "other", 10).count(), 0);
        assert_eq!(reload(&st).governance, st.governance);
    }

    #[test]
    fn claims_get_ids_and_unknown_ones_are_named() {
        let mut st = State::default();
        let claim = Claim {
            id: 0,
            cluster: "c".into(),
            target: ThrottleTarget::ClientQuota {
                user: None,
                client_id: Some("reader".into()),
            },
            value: "1000000".into(),
            prior: None,
            state: ClaimState::Applying,
            owner: "governance".into(),
            reason: "why".into(),
            since_ms: 1,
            renewed_ms: 1,
            expires_ms: 2,
            hard_expiry_ms: 3,
            absent_rounds: 0,
        };
        let CommandResponse::Claim(c) = apply(
            &mut st,
            1,
            GovernanceCmd::PutClaim {
                claim: Box::new(claim.clone()),
            },
        ) else {
            panic!()
        };
        assert_eq!(c.id, 1);
        let mut missing = claim.clone();
        missing.id = 9;
        assert!(matches!(
            apply(
                &mut st,
                1,
                GovernanceCmd::PutClaim {
                    claim: Box::new(missing)
                }
            ),
            CommandResponse::Rejected(crate::types::Rejection::NotFound { .. })
        ));
        assert_eq!(reload(&st).governance, st.governance);

        // A cluster holding a claim cannot be removed (its throttle
        // would be orphaned on Kafka); once the claim is gone it can.
        let mut touched = Vec::new();
        let add = Command::AddCluster(guardian_proto::domain::Cluster {
            id: 0,
            name: "c".into(),
            bootstrap_servers: vec!["h:9092".into()],
            idc: "east".into(),
            kafka_cluster_id: None,
            created_at_ms: 0,
        });
        st.apply(&Request::new(1, add), &mut touched);
        let remove = Request::new(2, Command::RemoveCluster { name: "c".into() });
        let r = st.apply(&remove, &mut touched);
        let CommandResponse::Rejected(crate::types::Rejection::FailedPrecondition { reason }) = r
        else {
            panic!("{r:?}")
        };
        assert!(reason.contains("1 Guardian throttle"), "{reason}");

        apply(&mut st, 2, GovernanceCmd::DropClaim { id: 1 });
        assert!(st.governance.claims.is_empty());
        assert_eq!(st.apply(&remove, &mut touched), CommandResponse::Done);
        assert!(matches!(
            apply(&mut st, 2, GovernanceCmd::DropClaim { id: 1 }),
            CommandResponse::Rejected(_)
        ));
    }
}
