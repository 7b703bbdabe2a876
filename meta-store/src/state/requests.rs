//! Idempotent writes: the result of every successful write that carried a
//! client request id, so a retry of the same id (its first attempt
//! committed, but the answer was lost) gets that result back instead of a
//! second effect. Refused writes are not kept: they changed nothing, and
//! running one again is harmless.
//!
//! Bounded and deterministic (time is the entry's `now_ms`): a result is
//! kept [`MAX_AGE_MS`]; a client keeps its last [`MAX_PER_CLIENT`]; the
//! whole table at most [`MAX_RESULTS`], the oldest going first. Replicated
//! like any state: one `sm_data` key per result (tag `d\0`: client id,
//! seq), in snapshots, so a new leader answers retries the same way.

use std::collections::{BTreeMap, BTreeSet};

use guardian_proto::domain::{KafkaUuid, RequestId};
use guardian_proto::pb;
use prost::Message;

use super::keys::KeyReader;
use super::Key;
use crate::error::{decode, StoreError};
use crate::types::CommandResponse;

/// How long a result is kept for retries (ms of log time).
pub const MAX_AGE_MS: u64 = 10 * 60 * 1000;
/// Results kept per client (its most recent).
pub const MAX_PER_CLIENT: usize = 1024;
/// Results kept in all.
pub const MAX_RESULTS: usize = 100_000;

/// A persisted result (one `sm_data` key).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequestKey(pub RequestId);

impl From<RequestKey> for Key {
    fn from(k: RequestKey) -> Key {
        Key::Request(k)
    }
}

/// The tags of this domain's keys.
pub(crate) const TAGS: [&[u8; 2]; 1] = [b"d\0"];

impl RequestKey {
    /// The RocksDB key.
    pub fn bytes(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"d\0");
        out.extend_from_slice(&self.0.client.0);
        out.extend_from_slice(&self.0.seq.to_be_bytes());
    }
}

/// The kept results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requests {
    /// Per client: seq → (at_ms, result).
    clients: BTreeMap<KafkaUuid, BTreeMap<u64, (u64, CommandResponse)>>,
    /// (at_ms, id): the oldest first.
    by_age: BTreeSet<(u64, RequestId)>,
}

impl Requests {
    /// The result of `id`'s first attempt, if it succeeded and is kept.
    pub fn get(&self, id: &RequestId) -> Option<&CommandResponse> {
        self.clients.get(&id.client)?.get(&id.seq).map(|(_, r)| r)
    }

    /// How many results are kept.
    pub fn len(&self) -> usize {
        self.by_age.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_age.is_empty()
    }

    /// Keeps `resp` for `id` (applied at `now`), unless it is a refusal;
    /// then drops what is too old or too many. O(log n) per write.
    pub fn record(
        &mut self,
        id: RequestId,
        now: u64,
        resp: &CommandResponse,
        touched: &mut Vec<Key>,
    ) {
        if matches!(resp, CommandResponse::Rejected(_)) {
            return;
        }
        let mine = self.clients.entry(id.client).or_default();
        if let Some((at, _)) = mine.insert(id.seq, (now, resp.clone())) {
            self.by_age.remove(&(at, id));
        }
        self.by_age.insert((now, id));
        touched.push(RequestKey(id).into());
        // Too many for this client: its lowest sequence numbers go.
        while mine.len() > MAX_PER_CLIENT {
            if let Some((seq, (at, _))) = mine.pop_first() {
                let old = RequestId {
                    client: id.client,
                    seq,
                };
                self.by_age.remove(&(at, old));
                touched.push(RequestKey(old).into());
            }
        }
        // Too old, or too many in all: the oldest go.
        while let Some(&(at, old)) = self.by_age.first() {
            if at + MAX_AGE_MS > now && self.by_age.len() <= MAX_RESULTS {
                break;
            }
            self.by_age.remove(&(at, old));
            if let Some(c) = self.clients.get_mut(&old.client) {
                c.remove(&old.seq);
                if c.is_empty() {
                    self.clients.remove(&old.client);
                }
            }
            touched.push(RequestKey(old).into());
        }
    }

    /// The current value of `k`, encoded; `None` if it no longer exists.
    pub fn value_bytes(&self, k: &RequestKey) -> Option<Vec<u8>> {
        let (at, resp) = self.clients.get(&k.0.client)?.get(&k.0.seq)?;
        Some(
            pb::ClientRequestResult {
                at_ms: *at,
                response_json: serde_json::to_vec(resp).expect("a response encodes as JSON"),
            }
            .encode_to_vec(),
        )
    }

    /// Loads one stored pair of this domain.
    pub fn load_kv(&mut self, k: &[u8], v: &[u8]) -> Result<(), StoreError> {
        let mut rest = KeyReader::new(k);
        let client = rest.uuid()?;
        let seq = rest.u64()? as u64;
        let r: pb::ClientRequestResult = decode("client request result", v)?;
        let resp: CommandResponse =
            serde_json::from_slice(&r.response_json).map_err(|e| rest.bad(e))?;
        self.clients
            .entry(client)
            .or_default()
            .insert(seq, (r.at_ms, resp));
        self.by_age.insert((r.at_ms, RequestId { client, seq }));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use guardian_proto::domain::{Command, IdKind, KafkaUuid, Request, Tenant};

    use super::*;
    use crate::state::State;

    fn id(client: u8, seq: u64) -> RequestId {
        RequestId {
            client: KafkaUuid::from_random_bytes([client; 16]),
            seq,
        }
    }

    fn tenant(name: &str) -> Command {
        Command::CreateTenant(Tenant {
            name: name.into(),
            description: String::new(),
            created_at_ms: 0,
        })
    }

    type Kv = BTreeMap<Vec<u8>, Vec<u8>>;

    fn run(
        st: &mut State,
        kv: &mut Kv,
        now: u64,
        c: Command,
        rid: Option<RequestId>,
    ) -> CommandResponse {
        let mut touched = Vec::new();
        let out = st.apply(&Request::new(now, c).with_id(rid), &mut touched);
        for k in touched {
            match st.value_bytes(&k) {
                Some(v) => kv.insert(k.bytes(), v),
                None => kv.remove(&k.bytes()),
            };
        }
        out
    }

    fn reload(kv: &Kv) -> State {
        let mut st = State::default();
        for (k, v) in kv {
            st.load_kv(k, v).unwrap();
        }
        st
    }

    #[test]
    fn a_retried_request_gets_its_first_result_and_changes_nothing() {
        let (mut st, mut kv) = (State::default(), Kv::new());
        let first = run(&mut st, &mut kv, 10, tenant("t1"), Some(id(1, 1)));
        assert!(matches!(&first, CommandResponse::Tenant(t) if t.created_at_ms == 10));
        let before = st.registry.clone();
        // The retry: same id, later; applied again it would be ALREADY_EXISTS.
        let again = run(&mut st, &mut kv, 20, tenant("t1"), Some(id(1, 1)));
        assert_eq!(again, first);
        assert_eq!(st.registry, before);
        // Without an id, or with another one, it is a new request.
        assert!(matches!(
            run(&mut st, &mut kv, 30, tenant("t1"), Some(id(1, 2))),
            CommandResponse::Rejected(_)
        ));
        assert!(matches!(
            run(&mut st, &mut kv, 30, tenant("t1"), None),
            CommandResponse::Rejected(_)
        ));
        // Refusals are not kept: seq 2 runs again (and is refused again).
        assert_eq!(st.requests.len(), 1);
        // Kept across a restart / snapshot install.
        let back = reload(&kv);
        assert_eq!(back, st);
        let mut back = back;
        let mut kv2 = kv.clone();
        assert_eq!(
            run(&mut back, &mut kv2, 40, tenant("t1"), Some(id(1, 1))),
            first
        );
    }

    #[test]
    fn an_id_allocation_retry_gets_the_same_ids() {
        let mut st = State::default();
        let mut kv = Kv::new();
        let ids = vec![KafkaUuid::from_random_bytes([9; 16])];
        let cmd = || Command::AllocateIds {
            kind: IdKind::Topic,
            ids: ids.clone(),
        };
        let first = run(&mut st, &mut kv, 1, cmd(), Some(id(2, 7)));
        assert_eq!(first, CommandResponse::Ids(ids.clone()));
        assert_eq!(run(&mut st, &mut kv, 2, cmd(), Some(id(2, 7))), first);
        assert_eq!(st.registry.issued.len(), 1);
    }

    #[test]
    fn results_are_bounded_by_age_and_per_client_count() {
        let (mut st, mut kv) = (State::default(), Kv::new());
        for seq in 0..(MAX_PER_CLIENT as u64 + 10) {
            run(
                &mut st,
                &mut kv,
                1,
                tenant(&format!("a{seq}")),
                Some(id(1, seq)),
            );
        }
        // Client 1 keeps its most recent MAX_PER_CLIENT.
        assert_eq!(st.requests.len(), MAX_PER_CLIENT);
        assert!(st.requests.get(&id(1, 9)).is_none());
        assert!(st.requests.get(&id(1, 10)).is_some());
        // Another client, MAX_AGE_MS later: everything older goes.
        run(
            &mut st,
            &mut kv,
            1 + MAX_AGE_MS,
            tenant("b"),
            Some(id(2, 0)),
        );
        assert_eq!(st.requests.len(), 1);
        // What is stored matches what is kept.
        assert_eq!(kv.keys().filter(|k| k.starts_with(b"d\0")).count(), 1);
        assert_eq!(reload(&kv).requests, st.requests);
    }
}
