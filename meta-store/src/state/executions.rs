//! Executions: the executor's durable procedures (plans carried out on a
//! Kafka cluster). Owns the `Execution` commands, its keys (tags `xe`,
//! `xt`, `xn`: [`super::keys`]), their values (JSON, see
//! `guardian_proto::execution`) and their loading.
//!
//! Rules enforced at apply (so every node refuses the same step):
//! - ids are assigned here, in order;
//! - at most one *active* execution (approved … verifying) per cluster;
//! - a proposal past its `expires_ms` cannot be approved;
//! - the executor's [`ExecutionCmd::Update`] names the version it was
//!   computed from and is refused if anything changed since (a deposed
//!   leader's late step, or an operator's control in between); it owns
//!   the state, reason, times, ledger, events and tasks, never the
//!   operator's flags or the plan;
//! - nothing changes a finished execution;
//! - no step is journaled on a frozen cluster (so none acts after the
//!   freeze is applied, whatever step was computed before it).

use std::collections::BTreeMap;

use guardian_proto::execution::{
    ClusterControls, Control, ControlsCmd, DrainState, ExecState, Execution, ExecutionCmd, Task,
};

use super::keys::KeyReader;
use super::registry::Registry;
use super::Key;
use crate::error::StoreError;
use crate::types::{CommandResponse, Rejection};

/// A persisted item of the executions domain (one `sm_data` key).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExecKey {
    /// An execution's header.
    Header(u64),
    /// One task (execution id, task index).
    Task(u64, u32),
    /// The next execution id.
    NextId,
    /// A cluster's standing controls.
    Controls(String),
}

impl From<ExecKey> for Key {
    fn from(k: ExecKey) -> Key {
        Key::Execution(k)
    }
}

/// The tags of this domain's keys.
pub(crate) const TAGS: [&[u8; 2]; 4] = [b"xe", b"xt", b"xn", b"xc"];

impl ExecKey {
    /// The RocksDB key.
    pub fn bytes(&self, out: &mut Vec<u8>) {
        match self {
            ExecKey::Header(id) => {
                out.extend_from_slice(b"xe");
                out.extend_from_slice(&id.to_be_bytes());
            }
            ExecKey::Task(id, i) => {
                out.extend_from_slice(b"xt");
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&i.to_be_bytes());
            }
            ExecKey::NextId => out.extend_from_slice(b"xn"),
            ExecKey::Controls(cluster) => {
                out.extend_from_slice(b"xc");
                out.extend_from_slice(cluster.as_bytes());
            }
        }
    }
}

/// Every execution with its tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executions {
    pub by_id: BTreeMap<u64, Execution>,
    /// Tasks per execution, by index.
    pub tasks: BTreeMap<u64, Vec<Task>>,
    pub next_id: u64,
    /// Per cluster: the operator's standing controls (absent = none).
    pub controls: BTreeMap<String, ClusterControls>,
}

impl Default for Executions {
    fn default() -> Self {
        Executions {
            by_id: BTreeMap::new(),
            tasks: BTreeMap::new(),
            next_id: 1,
            controls: BTreeMap::new(),
        }
    }
}

fn refuse(reason: impl Into<String>) -> CommandResponse {
    CommandResponse::Rejected(Rejection::FailedPrecondition {
        reason: reason.into(),
    })
}

fn not_found(id: u64) -> CommandResponse {
    CommandResponse::Rejected(Rejection::NotFound {
        what: format!("execution {id}"),
    })
}

impl Executions {
    /// The cluster's active execution (approved and not finished), if any.
    pub fn active_on(&self, cluster: &str) -> Option<&Execution> {
        self.by_id
            .values()
            .find(|e| e.cluster == cluster && e.state.active())
    }

    /// Executions the executor must drive: active ones, and proposals
    /// with a cancel pending never exist (they cancel at once).
    pub fn active(&self) -> impl Iterator<Item = &Execution> {
        self.by_id.values().filter(|e| e.state.active())
    }

    pub fn tasks_of(&self, id: u64) -> &[Task] {
        self.tasks.get(&id).map_or(&[], |t| t.as_slice())
    }

    pub fn apply(
        &mut self,
        reg: &Registry,
        cmd: &ExecutionCmd,
        now: u64,
        touched: &mut Vec<Key>,
    ) -> CommandResponse {
        match cmd {
            ExecutionCmd::Create { execution, tasks } => {
                self.create(reg, execution, tasks, now, touched)
            }
            ExecutionCmd::AppendTasks { id, tasks } => self.append(*id, tasks, now, touched),
            ExecutionCmd::Update {
                id,
                expect_version,
                execution,
                tasks,
            } => self.update(*id, *expect_version, execution, tasks, now, touched),
            ExecutionCmd::Control { id, action, by } => {
                self.control(*id, *action, by, now, touched)
            }
            ExecutionCmd::Controls { cluster, cmd } => {
                self.set_controls(reg, cluster, cmd, touched)
            }
        }
    }

    /// Drops a removed cluster's controls (a cluster added again later
    /// under the name starts without them).
    pub fn forget_controls(&mut self, cluster: &str, touched: &mut Vec<Key>) {
        if self.controls.remove(cluster).is_some() {
            touched.push(ExecKey::Controls(cluster.to_string()).into());
        }
    }

    /// The cluster's controls (the defaults when none were set).
    pub fn controls_of(&self, cluster: &str) -> ClusterControls {
        self.controls.get(cluster).cloned().unwrap_or_default()
    }

    fn set_controls(
        &mut self,
        reg: &Registry,
        cluster: &str,
        cmd: &ControlsCmd,
        touched: &mut Vec<Key>,
    ) -> CommandResponse {
        let missing = |what: String| CommandResponse::Rejected(Rejection::NotFound { what });
        if !reg.clusters.contains_key(cluster) {
            return missing(format!("cluster {cluster:?}"));
        }
        let broker = |id: i32| reg.brokers.get(&(cluster.to_string(), id));
        let mut c = self.controls_of(cluster);
        match cmd {
            ControlsCmd::Freeze { frozen, reason } => {
                c.frozen = *frozen;
                c.frozen_reason = if *frozen {
                    reason.clone()
                } else {
                    String::new()
                };
            }
            ControlsCmd::ExcludeTopics { patterns, remove } => {
                for p in patterns {
                    let at = c.excluded_topics.iter().position(|x| x == p);
                    match (at, remove) {
                        (None, false) => c.excluded_topics.push(p.clone()),
                        (Some(i), true) => {
                            c.excluded_topics.remove(i);
                        }
                        _ => {}
                    }
                }
            }
            ControlsCmd::ExcludeBrokers { ids, remove } => {
                if let Some(id) = ids.iter().find(|&&id| broker(id).is_none()) {
                    return missing(format!("broker {id} of cluster {cluster:?}"));
                }
                for id in ids {
                    if *remove {
                        c.excluded_brokers.remove(id);
                    } else {
                        c.excluded_brokers.insert(*id);
                    }
                }
            }
            ControlsCmd::Maintenance { broker: id, on } => {
                if broker(*id).is_none() {
                    return missing(format!("broker {id} of cluster {cluster:?}"));
                }
                if *on {
                    c.maintenance.insert(*id);
                } else {
                    c.maintenance.remove(id);
                }
            }
            ControlsCmd::Decommission { broker: id, state } => {
                if broker(*id).is_none() {
                    return missing(format!("broker {id} of cluster {cluster:?}"));
                }
                match state {
                    Some(s) => {
                        let live =
                            c.decommission.len() + usize::from(!c.decommission.contains_key(id));
                        let brokers = reg.brokers.range(
                            (cluster.to_string(), i32::MIN)..=(cluster.to_string(), i32::MAX),
                        );
                        if *s == DrainState::Draining && live >= brokers.count() {
                            return refuse(format!(
                                "decommissioning broker {id} would leave cluster {cluster:?} without a broker to hold its replicas"
                            ));
                        }
                        c.decommission.insert(*id, *s);
                    }
                    None => {
                        c.decommission.remove(id);
                    }
                }
            }
            ControlsCmd::Release { broker: id, tenant } => {
                let Some(b) = broker(*id) else {
                    return missing(format!("broker {id} of cluster {cluster:?}"));
                };
                match tenant {
                    Some(t) => {
                        if b.pool.as_deref() != Some(t.as_str()) {
                            return refuse(format!(
                                "broker {id} is not in tenant {t:?}'s pool (its pool: {:?})",
                                b.pool.as_deref().unwrap_or("shared")
                            ));
                        }
                        c.releasing.insert(*id, t.clone());
                    }
                    None => {
                        c.releasing.remove(id);
                    }
                }
            }
            ControlsCmd::BindTopic { topic, tenant } => match tenant {
                Some(t) => {
                    if !reg.tenants.contains_key(t) {
                        return missing(format!("tenant {t:?}"));
                    }
                    c.topic_tenants.insert(topic.clone(), t.clone());
                }
                None => {
                    c.topic_tenants.remove(topic);
                }
            },
        }
        if c.is_empty() {
            self.controls.remove(cluster);
        } else {
            self.controls.insert(cluster.to_string(), c);
        }
        touched.push(ExecKey::Controls(cluster.to_string()).into());
        CommandResponse::Done
    }

    fn create(
        &mut self,
        reg: &Registry,
        e: &Execution,
        tasks: &[Task],
        now: u64,
        touched: &mut Vec<Key>,
    ) -> CommandResponse {
        if !reg.clusters.contains_key(&e.cluster) {
            return CommandResponse::Rejected(Rejection::NotFound {
                what: format!("cluster {:?}", e.cluster),
            });
        }
        if let Some(bad) = tasks
            .iter()
            .enumerate()
            .find(|(i, t)| t.index as usize != *i)
        {
            return CommandResponse::Rejected(Rejection::InvalidArgument {
                field: format!("tasks[{}].index", bad.0),
                reason: "task indexes must run 0, 1, 2, …".into(),
            });
        }
        if tasks.len() > e.task_count as usize {
            return CommandResponse::Rejected(Rejection::InvalidArgument {
                field: "task_count".into(),
                reason: format!("{} tasks sent, task_count {}", tasks.len(), e.task_count),
            });
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut e = e.clone();
        e.id = id;
        e.created_ms = now;
        e.updated_ms = now;
        e.version = 1;
        e.paused = false;
        e.cancel_requested = false;
        e.state = if tasks.len() == e.task_count as usize {
            ExecState::Proposed
        } else {
            ExecState::Draft
        };
        e.event(now, format!("proposed by {}", who(&e.proposed_by)));
        touched.push(ExecKey::NextId.into());
        touched.push(ExecKey::Header(id).into());
        touched.extend(tasks.iter().map(|t| Key::from(ExecKey::Task(id, t.index))));
        self.tasks.insert(id, tasks.to_vec());
        self.by_id.insert(id, e.clone());
        CommandResponse::Execution(Box::new(e))
    }

    fn append(
        &mut self,
        id: u64,
        tasks: &[Task],
        now: u64,
        touched: &mut Vec<Key>,
    ) -> CommandResponse {
        let Some(e) = self.by_id.get_mut(&id) else {
            return not_found(id);
        };
        if e.state != ExecState::Draft {
            return refuse(format!(
                "execution {id} is {}, not a draft: it takes no more tasks",
                e.state.name()
            ));
        }
        let have = self.tasks.entry(id).or_default();
        if let Some(bad) = tasks
            .iter()
            .enumerate()
            .find(|(i, t)| t.index as usize != have.len() + i)
        {
            return CommandResponse::Rejected(Rejection::InvalidArgument {
                field: format!("tasks[{}].index", bad.0),
                reason: format!("expected {}", have.len() + bad.0),
            });
        }
        if have.len() + tasks.len() > e.task_count as usize {
            return CommandResponse::Rejected(Rejection::InvalidArgument {
                field: "tasks".into(),
                reason: format!("more than task_count {}", e.task_count),
            });
        }
        touched.extend(tasks.iter().map(|t| Key::from(ExecKey::Task(id, t.index))));
        have.extend_from_slice(tasks);
        if have.len() == e.task_count as usize {
            e.state = ExecState::Proposed;
        }
        e.version += 1;
        e.updated_ms = now;
        touched.push(ExecKey::Header(id).into());
        CommandResponse::Execution(Box::new(e.clone()))
    }

    fn update(
        &mut self,
        id: u64,
        expect: u64,
        new: &Execution,
        tasks: &[Task],
        now: u64,
        touched: &mut Vec<Key>,
    ) -> CommandResponse {
        let frozen = self
            .by_id
            .get(&id)
            .and_then(|e| self.controls.get(&e.cluster))
            .is_some_and(|c| c.frozen);
        let Some(e) = self.by_id.get_mut(&id) else {
            return not_found(id);
        };
        if frozen {
            // Nothing is journaled, so nothing acts, while frozen.
            return refuse(format!(
                "cluster {:?} is frozen: execution {id} waits",
                e.cluster
            ));
        }
        if e.version != expect {
            return refuse(format!(
                "execution {id} is at version {}, the step was computed from {expect}",
                e.version
            ));
        }
        if !e.state.active() {
            return refuse(format!(
                "execution {id} is {}: the executor does not drive it",
                e.state.name()
            ));
        }
        if !(new.state.active() || new.state.terminal()) {
            return CommandResponse::Rejected(Rejection::InvalidArgument {
                field: "execution.state".into(),
                reason: format!("the executor cannot move to {}", new.state.name()),
            });
        }
        let have = self.tasks.entry(id).or_default();
        if let Some(t) = tasks.iter().find(|t| t.index as usize >= have.len()) {
            return CommandResponse::Rejected(Rejection::InvalidArgument {
                field: "tasks.index".into(),
                reason: format!("execution {id} has no task {}", t.index),
            });
        }
        for t in tasks {
            have[t.index as usize] = t.clone();
            touched.push(ExecKey::Task(id, t.index).into());
        }
        // The executor's fields; the operator's flags and the plan stay.
        e.state = new.state;
        e.reason = new.reason.clone();
        e.started_ms = new.started_ms;
        e.finished_ms = new.finished_ms;
        e.ledger = new.ledger.clone();
        e.events = new.events.clone();
        e.throttle_rate = new.throttle_rate;
        e.roll = new.roll.clone();
        // The executor may pause (a restart command that failed waits for
        // the operator); only an operator resumes.
        e.paused |= new.paused;
        if e.state.terminal() {
            e.paused = false;
        }
        e.version += 1;
        e.updated_ms = now;
        touched.push(ExecKey::Header(id).into());
        CommandResponse::Execution(Box::new(e.clone()))
    }

    fn control(
        &mut self,
        id: u64,
        action: Control,
        by: &str,
        now: u64,
        touched: &mut Vec<Key>,
    ) -> CommandResponse {
        let Some(cur) = self.by_id.get(&id) else {
            return not_found(id);
        };
        if cur.state.terminal() {
            return refuse(format!(
                "execution {id} is {}: nothing to {}",
                cur.state.name(),
                action.name()
            ));
        }
        if action == Control::Approve {
            if cur.state != ExecState::Proposed {
                return refuse(format!(
                    "execution {id} is {}, only a proposed execution can be approved",
                    cur.state.name()
                ));
            }
            if now > cur.expires_ms {
                return refuse(format!(
                    "execution {id} expired (its plan is too old to trust); propose again"
                ));
            }
            if let Some(other) = self.active_on(&cur.cluster) {
                return refuse(format!(
                    "execution {} is already running on cluster {:?}; one at a time per cluster",
                    other.id, cur.cluster
                ));
            }
        }
        let e = self.by_id.get_mut(&id).expect("checked above");
        let line = match action {
            Control::Approve => {
                e.state = ExecState::Approved;
                e.approved_by = by.to_string();
                format!("approved by {}", who(by))
            }
            Control::Cancel if !e.state.active() => {
                e.state = ExecState::Cancelled;
                e.finished_ms = now;
                e.reason = format!("cancelled by {} before it ran", who(by));
                format!("cancelled by {}", who(by))
            }
            Control::Cancel => {
                e.cancel_requested = true;
                format!("cancel requested by {}", who(by))
            }
            Control::Pause | Control::Resume if !e.state.active() => {
                return refuse(format!(
                    "execution {id} is {}: only a running execution can be paused or resumed",
                    e.state.name()
                ));
            }
            Control::Pause => {
                e.paused = true;
                format!("paused by {}", who(by))
            }
            Control::Resume => {
                e.paused = false;
                format!("resumed by {}", who(by))
            }
        };
        e.event(now, line);
        e.version += 1;
        e.updated_ms = now;
        touched.push(ExecKey::Header(id).into());
        CommandResponse::Execution(Box::new(e.clone()))
    }

    /// The current value of `k`, encoded; `None` if it no longer exists.
    pub fn value_bytes(&self, k: &ExecKey) -> Option<Vec<u8>> {
        match k {
            ExecKey::Header(id) => self.by_id.get(id).map(json),
            ExecKey::Task(id, i) => self.tasks.get(id)?.get(*i as usize).map(json),
            ExecKey::NextId => Some(self.next_id.to_be_bytes().to_vec()),
            ExecKey::Controls(cluster) => self.controls.get(cluster).map(json),
        }
    }

    /// Loads one stored pair (keys arrive in RocksDB order: every header
    /// before the tasks, tasks in index order).
    pub fn load_kv(&mut self, k: &[u8], v: &[u8]) -> Result<(), StoreError> {
        let mut r = KeyReader::new(k);
        match &k[..2] {
            b"xe" => {
                let id = r.u64()? as u64;
                let e: Execution = serde_json::from_slice(v).map_err(|e| r.bad(e))?;
                self.by_id.insert(id, e);
            }
            b"xt" => {
                let id = r.u64()? as u64;
                let i = r.u32()? as u32;
                let t: Task = serde_json::from_slice(v).map_err(|e| r.bad(e))?;
                let list = self.tasks.entry(id).or_default();
                if list.len() != i as usize {
                    return Err(r.bad(format!("task {i} follows {} tasks", list.len())));
                }
                list.push(t);
            }
            b"xc" => {
                let cluster = std::str::from_utf8(&k[2..]).map_err(|e| r.bad(e))?;
                let c: ClusterControls = serde_json::from_slice(v).map_err(|e| r.bad(e))?;
                self.controls.insert(cluster.to_string(), c);
            }
            _ => {
                let b: [u8; 8] = v.try_into().map_err(|_| r.bad("next id is not 8 bytes"))?;
                self.next_id = u64::from_be_bytes(b);
            }
        }
        Ok(())
    }
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("execution records serialize")
}

fn who(by: &str) -> &str {
    if by.is_empty() {
        "an operator"
    } else {
        by
    }
}

#[cfg(test)]
mod tests {
    use guardian_proto::domain::{Cluster, Command, Request};
    use guardian_proto::execution::*;

    use crate::state::State;
    use crate::types::{CommandResponse, Rejection};

    fn apply(st: &mut State, now: u64, cmd: ExecutionCmd) -> CommandResponse {
        let mut touched = Vec::new();
        st.apply(
            &Request::new(now, Command::Execution(Box::new(cmd))),
            &mut touched,
        )
    }

    fn task(i: u32) -> Task {
        Task {
            index: i,
            topic: "t".into(),
            topic_id: String::new(),
            partition: i as i32,
            original: vec![1],
            target: vec![2],
            dirs: vec![],
            leader: None,
            bytes: 10,
            state: TaskState::Pending,
            started_ms: 0,
            finished_ms: 0,
            reason: String::new(),
            attempts: 0,
            original_dirs: vec![],
        }
    }

    fn header(cluster: &str, tasks: u32) -> Box<Execution> {
        Box::new(Execution {
            id: 0,
            cluster: cluster.into(),
            kind: "rebalance".into(),
            intent: Intent::Rebalance,
            state: ExecState::Draft,
            paused: false,
            cancel_requested: false,
            reason: String::new(),
            created_ms: 0,
            updated_ms: 0,
            expires_ms: 1_000,
            started_ms: 0,
            finished_ms: 0,
            version: 0,
            task_count: tasks,
            proposed_by: String::new(),
            approved_by: String::new(),
            throttle_rate: 1,
            max_tasks_per_broker: 1,
            summary: PlanSummary::default(),
            ledger: vec![],
            events: vec![],
            roll: None,
        })
    }

    fn state() -> State {
        let mut st = State::default();
        let mut touched = Vec::new();
        for name in ["c", "d"] {
            st.apply(
                &Request::new(
                    1,
                    Command::AddCluster(Cluster {
                        id: 0,
                        name: name.into(),
                        bootstrap_servers: vec!["h:9092".into()],
                        idc: "east".into(),
                        kafka_cluster_id: None,
                        created_at_ms: 0,
                    }),
                ),
                &mut touched,
            );
        }
        st
    }

    fn exec(r: CommandResponse) -> Execution {
        match r {
            CommandResponse::Execution(e) => *e,
            other => panic!("{other:?}"),
        }
    }

    fn refused(r: CommandResponse) -> String {
        match r {
            CommandResponse::Rejected(Rejection::FailedPrecondition { reason }) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// Chunks make a draft a proposal; approval is once, unexpired, one
    /// active execution per cluster; the executor's update is a CAS on
    /// the version; nothing changes a finished execution; the whole domain
    /// loads back from its stored keys.
    fn controls(st: &mut State, cluster: &str, cmd: ControlsCmd) -> CommandResponse {
        apply(
            st,
            2,
            ExecutionCmd::Controls {
                cluster: cluster.into(),
                cmd,
            },
        )
    }

    /// A cluster's controls: unknown names are `NOT_FOUND`, a drain that
    /// would leave no broker or a release of a broker outside the pool is
    /// refused, and what is stored loads back the same.
    #[test]
    fn controls_are_checked_at_apply_and_survive_a_reload() {
        let mut st = state();
        for id in [1, 2] {
            st.apply(
                &Request::new(
                    1,
                    Command::AddBroker(guardian_proto::domain::Broker {
                        cluster: "c".into(),
                        broker_id: id,
                        host: "h".into(),
                        rack: "r1".into(),
                        idc: String::new(),
                        reporter_endpoint: "h:9300".into(),
                        log_dirs: vec![guardian_proto::domain::LogDir {
                            path: "/d".into(),
                            capacity_bytes: 1 << 40,
                        }],
                        nic_bytes_per_sec: 0,
                        cpu_cores: 0,
                        pool: None,
                        registered_at_ms: 0,
                    }),
                ),
                &mut Vec::new(),
            );
        }
        let not_found =
            |r: CommandResponse| matches!(r, CommandResponse::Rejected(Rejection::NotFound { .. }));
        let frozen = ControlsCmd::Freeze {
            frozen: true,
            reason: "incident".into(),
        };
        assert!(not_found(controls(&mut st, "nope", frozen.clone())));
        assert!(not_found(controls(
            &mut st,
            "c",
            ControlsCmd::Maintenance {
                broker: 9,
                on: true
            }
        )));
        assert!(not_found(controls(
            &mut st,
            "c",
            ControlsCmd::BindTopic {
                topic: "t".into(),
                tenant: Some("nobody".into())
            }
        )));
        let drain = |b| ControlsCmd::Decommission {
            broker: b,
            state: Some(DrainState::Draining),
        };
        assert_eq!(controls(&mut st, "c", drain(1)), CommandResponse::Done);
        assert!(refused(controls(&mut st, "c", drain(2))).contains("without a broker"));
        assert!(refused(controls(
            &mut st,
            "c",
            ControlsCmd::Release {
                broker: 2,
                tenant: Some("t".into())
            }
        ))
        .contains("not in tenant"));
        assert_eq!(controls(&mut st, "c", frozen), CommandResponse::Done);
        assert_eq!(
            controls(
                &mut st,
                "c",
                ControlsCmd::ExcludeTopics {
                    patterns: vec!["pay.*".into(), "pay.*".into()],
                    remove: false
                }
            ),
            CommandResponse::Done
        );
        let c = st.executions.controls_of("c");
        assert!(c.frozen && c.excluded_topics == ["pay.*"], "{c:?}");
        assert_eq!(c.decommission[&1], DrainState::Draining);

        // Persisted and loaded back: the same controls.
        let key = super::ExecKey::Controls("c".into());
        let mut bytes = Vec::new();
        key.bytes(&mut bytes);
        let v = st.executions.value_bytes(&key).unwrap();
        let mut loaded = super::Executions::default();
        loaded.load_kv(&bytes, &v).unwrap();
        assert_eq!(loaded.controls_of("c"), c);

        // Back to the defaults: nothing stored.
        for cmd in [
            ControlsCmd::Freeze {
                frozen: false,
                reason: String::new(),
            },
            ControlsCmd::ExcludeTopics {
                patterns: vec!["pay.*".into()],
                remove: true,
            },
            ControlsCmd::Decommission {
                broker: 1,
                state: None,
            },
        ] {
            assert_eq!(controls(&mut st, "c", cmd), CommandResponse::Done);
        }
        assert!(st.executions.value_bytes(&key).is_none());

        // A removed cluster's controls go with it.
        let frozen_d = ControlsCmd::Freeze {
            frozen: true,
            reason: String::new(),
        };
        assert_eq!(controls(&mut st, "d", frozen_d), CommandResponse::Done);
        let mut touched = Vec::new();
        let r = st.apply(
            &Request::new(3, Command::RemoveCluster { name: "d".into() }),
            &mut touched,
        );
        assert_eq!(r, CommandResponse::Done);
        assert!(st.executions.controls.is_empty());
        assert!(touched.contains(&super::ExecKey::Controls("d".into()).into()));
    }

    #[test]
    fn the_procedure_rules_hold_at_apply() {
        let mut st = state();
        let e = exec(apply(
            &mut st,
            10,
            ExecutionCmd::Create {
                execution: header("c", 3),
                tasks: vec![task(0)],
            },
        ));
        assert_eq!((e.id, e.state), (1, ExecState::Draft));
        let bad = apply(
            &mut st,
            11,
            ExecutionCmd::AppendTasks {
                id: 1,
                tasks: vec![task(2)],
            },
        );
        assert!(
            matches!(
                bad,
                CommandResponse::Rejected(Rejection::InvalidArgument { .. })
            ),
            "{bad:?}"
        );
        let e = exec(apply(
            &mut st,
            11,
            ExecutionCmd::AppendTasks {
                id: 1,
                tasks: vec![task(1), task(2)],
            },
        ));
        assert_eq!(e.state, ExecState::Proposed);
        // A second proposal on the same cluster, one on another.
        let e2 = exec(apply(
            &mut st,
            12,
            ExecutionCmd::Create {
                execution: header("c", 1),
                tasks: vec![task(0)],
            },
        ));
        let e3 = exec(apply(
            &mut st,
            12,
            ExecutionCmd::Create {
                execution: header("d", 1),
                tasks: vec![task(0)],
            },
        ));
        let approve = |id| ExecutionCmd::Control {
            id,
            action: Control::Approve,
            by: "op".into(),
        };
        // Expired.
        assert!(refused(apply(&mut st, 2_000, approve(1))).contains("expired"));
        let e = exec(apply(&mut st, 20, approve(1)));
        assert_eq!(
            (e.state, e.approved_by.as_str()),
            (ExecState::Approved, "op")
        );
        assert!(refused(apply(&mut st, 21, approve(e2.id))).contains("already running"));
        exec(apply(&mut st, 21, approve(e3.id)));
        assert!(refused(apply(&mut st, 22, approve(1))).contains("only a proposed"));

        // The executor's step: CAS on the version.
        let mut step = e.clone();
        step.state = ExecState::Executing;
        let upd = |x: &Execution, tasks: Vec<Task>| ExecutionCmd::Update {
            id: x.id,
            expect_version: x.version,
            execution: Box::new(x.clone()),
            tasks,
        };
        let mut t0 = task(0);
        t0.state = TaskState::Submitted;
        let after = exec(apply(&mut st, 30, upd(&step, vec![t0])));
        assert_eq!(after.state, ExecState::Executing);
        assert_eq!(st.executions.tasks_of(1)[0].state, TaskState::Submitted);
        // A late step computed from the old version is refused.
        assert!(refused(apply(&mut st, 31, upd(&step, vec![]))).contains("version"));
        // The operator's pause in between refuses the executor's stale step too.
        let paused = exec(apply(
            &mut st,
            32,
            ExecutionCmd::Control {
                id: 1,
                action: Control::Pause,
                by: "op".into(),
            },
        ));
        assert!(paused.paused);
        assert!(refused(apply(&mut st, 33, upd(&after, vec![]))).contains("version"));
        // The executor cannot clear the operator's flag.
        let mut unpause = paused.clone();
        unpause.paused = false;
        assert!(exec(apply(&mut st, 34, upd(&unpause, vec![]))).paused);

        // Cancel of a proposal ends it at once; of a running one, asks.
        let c2 = exec(apply(
            &mut st,
            40,
            ExecutionCmd::Control {
                id: e2.id,
                action: Control::Cancel,
                by: "op".into(),
            },
        ));
        assert_eq!(c2.state, ExecState::Cancelled);
        assert!(refused(apply(
            &mut st,
            41,
            ExecutionCmd::Control {
                id: e2.id,
                action: Control::Resume,
                by: "op".into()
            }
        ))
        .contains("cancelled"));
        let c1 = exec(apply(
            &mut st,
            42,
            ExecutionCmd::Control {
                id: 1,
                action: Control::Cancel,
                by: "op".into(),
            },
        ));
        assert!(c1.cancel_requested && c1.state == ExecState::Executing);

        // Stored keys load back to the same domain.
        let mut keys = Vec::new();
        for id in st.executions.by_id.keys() {
            keys.push(super::ExecKey::Header(*id));
            for t in st.executions.tasks_of(*id) {
                keys.push(super::ExecKey::Task(*id, t.index));
            }
        }
        keys.push(super::ExecKey::NextId);
        let mut kv: Vec<(Vec<u8>, Vec<u8>)> = keys
            .iter()
            .map(|k| {
                let mut b = Vec::new();
                k.bytes(&mut b);
                (b, st.executions.value_bytes(k).unwrap())
            })
            .collect();
        kv.sort();
        let mut back = State::default();
        for (k, v) in &kv {
            back.load_kv(k, v).unwrap();
        }
        assert_eq!(back.executions, st.executions);
    }
}
