//! The procedure against the `kafka/` model, with the journal in the real
//! replicated state (`State::apply`): a clean run, then a crash at every
//! boundary — before each Kafka write, before each journal write, and
//! after a journal write whose answer was lost — each followed by a new
//! leader (fresh soft state) that must finish the same plan with the same
//! end state: placement (broker and dir), leader, throttles restored.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use guardian_kafka::model::ModelBroker;
use guardian_kafka::types::*;
use guardian_kafka::{ClusterMetadata, KafkaAdmin, KafkaError, KafkaModel};
use guardian_meta_store::state::State;
use guardian_meta_store::CommandResponse;
use guardian_proto::domain::{Cluster, Command, Request};
use guardian_proto::execution::*;

use super::procedure::{step, Journal, Soft, StepConfig};

const MB: i64 = 1 << 20;

/// The journal: the replicated state's apply, with crash points.
pub(super) struct MemJournal {
    st: Mutex<State>,
    writes: AtomicUsize,
    /// (write number, applied before the crash?)
    crash: Option<(usize, bool)>,
}

impl MemJournal {
    pub(super) fn apply(&self, cmd: ExecutionCmd) -> CommandResponse {
        // Through JSON, as the Raft log carries it.
        let cmd: ExecutionCmd = serde_json::from_slice(&serde_json::to_vec(&cmd).unwrap()).unwrap();
        let mut touched = Vec::new();
        self.st.lock().unwrap().apply(
            &Request::new(1, Command::Execution(Box::new(cmd))),
            &mut touched,
        )
    }

    pub(super) fn current(&self) -> (Execution, Vec<Task>) {
        let st = self.st.lock().unwrap();
        let e = st.executions.by_id.values().next().unwrap().clone();
        let t = st.executions.tasks_of(e.id).to_vec();
        (e, t)
    }
}

impl Journal for MemJournal {
    async fn update(&self, e: &Execution, tasks: Vec<Task>) -> Result<Execution, String> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst);
        let cmd = ExecutionCmd::Update {
            id: e.id,
            expect_version: e.version,
            execution: Box::new(e.clone()),
            tasks,
        };
        match self.crash {
            Some((at, false)) if n >= at => return Err("crashed before the journal".into()),
            Some((at, true)) if n == at => {
                self.apply(cmd);
                return Err("crashed after the journal, before its answer".into());
            }
            Some((at, true)) if n > at => return Err("crashed".into()),
            _ => {}
        }
        match self.apply(cmd) {
            CommandResponse::Execution(e) => Ok(*e),
            other => Err(format!("{other:?}")),
        }
    }
}

/// The model, failing every call once `budget` Kafka writes were made (a
/// leader that died there).
struct Crashy<'a> {
    k: &'a KafkaModel,
    budget: AtomicI64,
    writes: AtomicUsize,
}

impl Crashy<'_> {
    fn alive(&self) -> Result<(), KafkaError> {
        if self.budget.load(Ordering::SeqCst) < 0 {
            return Err(KafkaError::UnknownBroker { id: -1 });
        }
        Ok(())
    }
    fn write(&self) -> Result<(), KafkaError> {
        self.alive()?;
        self.writes.fetch_add(1, Ordering::SeqCst);
        if self.budget.fetch_sub(1, Ordering::SeqCst) <= 0 {
            self.budget.store(-1, Ordering::SeqCst);
            return Err(KafkaError::UnknownBroker { id: -1 });
        }
        Ok(())
    }
}

impl KafkaAdmin for Crashy<'_> {
    async fn describe_cluster(&self) -> Result<ClusterDescription, KafkaError> {
        self.alive()?;
        self.k.describe_cluster().await
    }
    async fn metadata(&self) -> Result<ClusterMetadata, KafkaError> {
        self.alive()?;
        self.k.metadata().await
    }
    async fn create_topics(&self, t: &[NewTopic]) -> Result<PerItem<String, ()>, KafkaError> {
        self.write()?;
        self.k.create_topics(t).await
    }
    async fn create_partitions(
        &self,
        t: &[(String, i32)],
    ) -> Result<PerItem<String, ()>, KafkaError> {
        self.write()?;
        self.k.create_partitions(t).await
    }
    async fn delete_topics(&self, n: &[String]) -> Result<PerItem<String, ()>, KafkaError> {
        self.write()?;
        self.k.delete_topics(n).await
    }
    async fn describe_configs(
        &self,
        r: &ConfigResource,
        keys: &[&str],
    ) -> Result<Vec<ConfigEntry>, KafkaError> {
        self.alive()?;
        self.k.describe_configs(r, keys).await
    }
    async fn alter_configs(
        &self,
        r: &ConfigResource,
        ops: &[AlterConfigOp],
    ) -> Result<(), KafkaError> {
        self.write()?;
        self.k.alter_configs(r, ops).await
    }
    async fn alter_reassignments(
        &self,
        t: &[(TopicPartition, Option<Vec<i32>>)],
        rf: bool,
    ) -> Result<PerItem<TopicPartition, ()>, KafkaError> {
        self.write()?;
        self.k.alter_reassignments(t, rf).await
    }
    async fn list_reassignments(
        &self,
        p: &[TopicPartition],
    ) -> Result<Vec<Reassignment>, KafkaError> {
        self.alive()?;
        self.k.list_reassignments(p).await
    }
    async fn describe_log_dirs(&self, b: i32) -> Result<Vec<LogDirInfo>, KafkaError> {
        self.alive()?;
        self.k.describe_log_dirs(b).await
    }
    async fn alter_replica_log_dirs(
        &self,
        b: i32,
        m: &[(TopicPartition, String)],
    ) -> Result<PerItem<TopicPartition, LogDirMove>, KafkaError> {
        self.write()?;
        self.k.alter_replica_log_dirs(b, m).await
    }
    async fn elect_preferred_leaders(
        &self,
        p: &[TopicPartition],
    ) -> Result<PerItem<TopicPartition, Election>, KafkaError> {
        self.write()?;
        self.k.elect_preferred_leaders(p).await
    }
    async fn describe_client_quotas(
        &self,
        c: &[(String, QuotaMatch)],
        strict: bool,
    ) -> Result<Vec<QuotaEntry>, KafkaError> {
        self.alive()?;
        self.k.describe_client_quotas(c, strict).await
    }
    async fn alter_client_quotas(
        &self,
        c: &[QuotaChange],
    ) -> Result<PerItem<QuotaEntity, ()>, KafkaError> {
        self.write()?;
        self.k.alter_client_quotas(c).await
    }
    async fn list_offsets(
        &self,
        p: &[TopicPartition],
        spec: OffsetSpec,
    ) -> Result<PerItem<TopicPartition, i64>, KafkaError> {
        self.alive()?;
        self.k.list_offsets(p, spec).await
    }
    async fn list_groups(&self) -> Result<Vec<GroupListing>, KafkaError> {
        self.alive()?;
        self.k.list_groups().await
    }
    async fn describe_group(&self, g: &str) -> Result<GroupDescription, KafkaError> {
        self.alive()?;
        self.k.describe_group(g).await
    }
    async fn committed_offsets(&self, g: &str) -> Result<Vec<(TopicPartition, i64)>, KafkaError> {
        self.alive()?;
        self.k.committed_offsets(g).await
    }
}

fn task(index: u32, topic: &str, p: i32, original: &[i32], target: &[i32]) -> Task {
    Task {
        index,
        topic: topic.into(),
        topic_id: String::new(),
        partition: p,
        original: original.to_vec(),
        target: target.to_vec(),
        dirs: Vec::new(),
        leader: None,
        bytes: 0,
        state: TaskState::Pending,
        started_ms: 0,
        finished_ms: 0,
        reason: String::new(),
        attempts: 0,
        original_dirs: vec![],
    }
}

/// Topic `a`: four 10 MiB partitions on broker 1's d0; topic `b`: one
/// on [1, 2]. The operator throttles broker 2's leader rate to 1000 and
/// sets a cluster-default follower rate.
async fn cluster() -> KafkaModel {
    let k = KafkaModel::new(
        "m",
        (1..=3)
            .map(|b| ModelBroker::new(b, &format!("r{b}")))
            .collect(),
    )
    .manual_clock();
    for (name, assignment) in [("a", vec![vec![1]; 4]), ("b", vec![vec![1, 2]])] {
        k.create_topics(&[NewTopic {
            name: name.into(),
            assignment,
            configs: Vec::new(),
            ..Default::default()
        }])
        .await
        .unwrap();
    }
    let d0: Vec<_> = (0..4)
        .map(|p| (TopicPartition::new("a", p), "/data/1/d0".to_string()))
        .collect();
    k.alter_replica_log_dirs(1, &d0).await.unwrap();
    k.advance(Duration::from_secs(60));
    for p in 0..4 {
        k.produce(&TopicPartition::new("a", p), 1000, 10 * MB)
            .unwrap();
    }
    k.alter_configs(
        &ConfigResource::Broker(2),
        &[AlterConfigOp::Set(
            super::ledger::LEADER_RATE.into(),
            "1000".into(),
        )],
    )
    .await
    .unwrap();
    k.alter_configs(
        &ConfigResource::BrokerDefault,
        &[AlterConfigOp::Set(
            super::ledger::FOLLOWER_RATE.into(),
            "5000000".into(),
        )],
    )
    .await
    .unwrap();
    k
}

fn plan() -> Vec<Task> {
    let mut t0 = task(0, "a", 0, &[1], &[2]);
    t0.dirs = vec![(2, "/data/2/d1".into())];
    t0.leader = Some(2);
    t0.bytes = 10 * MB as u64;
    let mut t1 = task(1, "a", 1, &[1], &[3]);
    t1.dirs = vec![(3, "/data/3/d0".into())];
    t1.bytes = 10 * MB as u64;
    let mut t2 = task(2, "a", 2, &[1], &[1]);
    t2.dirs = vec![(1, "/data/1/d1".into())];
    t2.bytes = 10 * MB as u64;
    let mut t3 = task(3, "b", 0, &[1, 2], &[2, 1]);
    t3.leader = Some(2);
    vec![t0, t1, t2, t3]
}

fn journal(crash: Option<(usize, bool)>) -> MemJournal {
    journal_at(crash, 50 * MB as u64)
}

fn journal_at(crash: Option<(usize, bool)>, rate: u64) -> MemJournal {
    journal_of(crash, rate, plan(), 1)
}

fn journal_of(
    crash: Option<(usize, bool)>,
    rate: u64,
    tasks: Vec<Task>,
    per_broker: u32,
) -> MemJournal {
    let mut e = header(Intent::Rebalance, tasks.len() as u32);
    e.throttle_rate = rate;
    e.max_tasks_per_broker = per_broker;
    approved(crash, e, tasks)
}

/// A draft execution of `intent` on cluster `m`, expecting `task_count` tasks.
pub(super) fn header(intent: Intent, task_count: u32) -> Execution {
    Execution {
        id: 0,
        cluster: "m".into(),
        kind: intent.kind().into(),
        intent,
        state: ExecState::Draft,
        paused: false,
        cancel_requested: false,
        reason: String::new(),
        created_ms: 0,
        updated_ms: 0,
        expires_ms: u64::MAX,
        started_ms: 0,
        finished_ms: 0,
        version: 0,
        task_count,
        proposed_by: String::new(),
        approved_by: String::new(),
        throttle_rate: 1,
        max_tasks_per_broker: 1,
        summary: PlanSummary::default(),
        ledger: Vec::new(),
        events: Vec::new(),
        roll: None,
    }
}

/// A journal holding `e` (with `tasks`), created and approved on
/// cluster `m`.
pub(super) fn approved(crash: Option<(usize, bool)>, e: Execution, tasks: Vec<Task>) -> MemJournal {
    let j = MemJournal {
        st: Mutex::new(State::default()),
        writes: AtomicUsize::new(0),
        crash,
    };
    let mut touched = Vec::new();
    j.st.lock().unwrap().apply(
        &Request::new(
            1,
            Command::AddCluster(Cluster {
                id: 0,
                name: "m".into(),
                bootstrap_servers: vec!["127.0.0.1:9092".into()],
                idc: "east".into(),
                kafka_cluster_id: None,
                created_at_ms: 0,
            }),
        ),
        &mut touched,
    );
    let created = j.apply(ExecutionCmd::Create {
        execution: Box::new(e),
        tasks,
    });
    let CommandResponse::Execution(e) = created else {
        panic!("{created:?}")
    };
    j.apply(ExecutionCmd::Control {
        id: e.id,
        action: Control::Approve,
        by: "test".into(),
    });
    j
}

pub(super) fn cfg() -> StepConfig {
    StepConfig {
        leader_wait_ms: 30_000,
        broker_grace_ms: 10_000,
        max_tasks_per_cluster: 50,
        max_tasks_per_disk: 2,
        max_bytes_per_disk: 1 << 40,
        max_bytes_per_broker: 1 << 40,
        adapt: super::procedure::Adapt {
            min: 100_000,
            max: 8 * MB as u64,
            step: 500_000,
            every_ms: 2_000,
            hot_util: 0.85,
            slow_produce_ms: 200.0,
        },
        restart_timeout_ms: 60_000,
    }
}

/// Steps `n` times (500 ms of model time each).
async fn steps(k: &KafkaModel, j: &MemJournal, soft: &mut Soft, now: &mut u64, n: usize) {
    for _ in 0..n {
        let (e, tasks) = j.current();
        if e.state.terminal() {
            return;
        }
        // A step may fail while a broker is down (Kafka refuses); the next retries.
        let _ = step(k, j, &e, &tasks, &cfg(), soft, *now).await;
        k.advance(Duration::from_millis(500));
        *now += 500;
    }
}

/// Steps until a reassignment is in flight (at most 20 steps).
async fn until_moving(k: &KafkaModel, j: &MemJournal, soft: &mut Soft, now: &mut u64) {
    for _ in 0..20 {
        steps(k, j, soft, now, 1).await;
        if !k.list_reassignments(&[]).await.unwrap().is_empty() {
            return;
        }
    }
    panic!(
        "no reassignment in flight after 20 steps: {:?}",
        j.current().0.events
    );
}

async fn drive<K: KafkaAdmin>(
    k: &K,
    model: &KafkaModel,
    j: &MemJournal,
    now: &mut u64,
    crashy: bool,
) -> bool {
    let cfg = cfg();
    let mut soft = Soft::default();
    for _ in 0..500 {
        let (e, tasks) = j.current();
        if e.state.terminal() {
            return false;
        }
        let r = step(k, j, &e, &tasks, &cfg, &mut soft, *now).await;
        if r.is_err() && crashy {
            return true;
        }
        r.unwrap_or_else(|err| panic!("step of a healthy leader: {err}"));
        model.advance(Duration::from_millis(500));
        *now += 500;
    }
    panic!("no end after 500 steps: {:?}", j.current().0);
}

/// The end state every run must reach.
async fn check(k: &KafkaModel, j: &MemJournal, what: &str) {
    let (e, tasks) = j.current();
    assert_eq!(e.state, ExecState::Done, "{what}: {:?}", e.events);
    assert!(
        tasks.iter().all(|t| t.state == TaskState::Done),
        "{what}: {tasks:?}"
    );
    let md = k.metadata().await.unwrap();
    let parts = |t: &str| {
        md.topics
            .iter()
            .find(|x| x.name == t)
            .unwrap()
            .partitions
            .clone()
    };
    let a = parts("a");
    assert_eq!(a[0].replicas, [2], "{what}");
    assert_eq!(a[0].leader, 2, "{what}");
    assert_eq!(a[1].replicas, [3], "{what}");
    assert_eq!(a[2].replicas, [1], "{what}");
    assert_eq!(a[3].replicas, [1], "{what}: untouched");
    let b = parts("b");
    assert_eq!(
        (b[0].replicas.clone(), b[0].leader),
        (vec![2, 1], 2),
        "{what}"
    );
    let dir_of = |broker: i32, p: i32| {
        let dirs = k.describe_log_dirs_on(broker).unwrap();
        let found: Vec<(String, bool)> = dirs
            .iter()
            .flat_map(|d| {
                d.replicas
                    .iter()
                    .filter(|r| r.topic == "a" && r.partition == p)
                    .map(|r| (d.path.clone(), r.is_future))
            })
            .collect();
        found
    };
    assert_eq!(
        dir_of(2, 0),
        [("/data/2/d1".to_string(), false)],
        "{what}: one copy, in its dir"
    );
    assert_eq!(dir_of(3, 1), [("/data/3/d0".to_string(), false)], "{what}");
    assert_eq!(dir_of(1, 2), [("/data/1/d1".to_string(), false)], "{what}");
    // The ledger restored exactly: per-entity overrides as before.
    use super::ledger::*;
    for b in 1..=3 {
        let r = ConfigResource::Broker(b);
        let got = k.describe_configs(&r, &BROKER_KEYS).await.unwrap();
        let ent = ThrottleEntity::Broker(b);
        let want_leader = (b == 2).then(|| "1000".to_string());
        assert_eq!(
            override_of(&got, LEADER_RATE, &ent),
            want_leader,
            "{what}: broker {b}"
        );
        assert_eq!(
            override_of(&got, FOLLOWER_RATE, &ent),
            None,
            "{what}: broker {b}"
        );
        assert_eq!(
            override_of(&got, DIR_RATE, &ent),
            None,
            "{what}: broker {b}"
        );
    }
    for t in ["a", "b"] {
        let r = ConfigResource::Topic(t.into());
        let got = k.describe_configs(&r, &TOPIC_KEYS).await.unwrap();
        let ent = ThrottleEntity::Topic {
            name: t.into(),
            id: String::new(),
        };
        for key in TOPIC_KEYS {
            assert_eq!(
                override_of(&got, key, &ent),
                None,
                "{what}: topic {t} {key}"
            );
        }
    }
}

#[tokio::test]
async fn a_clean_run_reaches_the_plan() {
    let k = cluster().await;
    let j = journal(None);
    let mut now = 1_000;
    assert!(!drive(&k, &k, &j, &mut now, false).await);
    check(&k, &j, "clean run").await;
    // While it ran, the operator's stricter rate stayed in force.
    let (e, _) = j.current();
    let b2 = e
        .ledger
        .iter()
        .find(|l| l.entity == ThrottleEntity::Broker(2) && l.key == super::ledger::LEADER_RATE)
        .unwrap();
    assert_eq!(b2.prior.as_deref(), Some("1000"));
    assert_ne!(b2.written.as_deref(), Some(&*(50 * MB).to_string()));
}

/// Crash before each Kafka write of a clean run, then a new leader.
#[tokio::test]
async fn a_crash_before_any_kafka_write_is_recovered() {
    let total = {
        let k = cluster().await;
        let c = Crashy {
            k: &k,
            budget: AtomicI64::new(i64::MAX / 2),
            writes: AtomicUsize::new(0),
        };
        let j = journal(None);
        let mut now = 1_000;
        drive(&c, &k, &j, &mut now, false).await;
        c.writes.load(Ordering::SeqCst)
    };
    assert!(total > 5, "{total} Kafka writes");
    for at in 0..total {
        let k = cluster().await;
        let j = journal(None);
        let c = Crashy {
            k: &k,
            budget: AtomicI64::new(at as i64),
            writes: AtomicUsize::new(0),
        };
        let mut now = 1_000;
        assert!(
            drive(&c, &k, &j, &mut now, true).await,
            "crash at write {at}"
        );
        assert!(!drive(&k, &k, &j, &mut now, false).await);
        check(&k, &j, &format!("crash before Kafka write {at}")).await;
    }
}

/// Crash before each journal write, and after each (its answer lost).
#[tokio::test]
async fn a_crash_at_any_journal_write_is_recovered() {
    let total = {
        let k = cluster().await;
        let j = journal(None);
        let mut now = 1_000;
        drive(&k, &k, &j, &mut now, false).await;
        j.writes.load(Ordering::SeqCst)
    };
    assert!(total > 4, "{total} journal writes");
    for at in 0..total {
        for applied in [false, true] {
            let k = cluster().await;
            let j = journal(Some((at, applied)));
            let mut now = 1_000;
            assert!(drive(&k, &k, &j, &mut now, true).await, "crash at {at}");
            let j2 = MemJournal {
                st: Mutex::new(j.st.lock().unwrap().clone()),
                writes: AtomicUsize::new(0),
                crash: None,
            };
            assert!(!drive(&k, &k, &j2, &mut now, false).await);
            check(
                &k,
                &j2,
                &format!("crash at journal write {at} (applied: {applied})"),
            )
            .await;
        }
    }
}

/// The destination of a move in flight dies and stays away past the grace
/// period: its task is cancelled in Kafka and fails with the reason, its
/// entries leave the topic's throttled-replica lists at once, the rest of
/// the plan goes on (but for a leader move to the dead broker, which the
/// min-ISR gate holds), its rates are restored once it is back; the
/// execution ends failed, naming the task.
#[tokio::test]
async fn a_destination_gone_past_the_grace_period_is_cancelled() {
    let k = cluster().await;
    let j = journal_at(None, MB as u64);
    let (mut soft, mut now) = (Soft::default(), 1_000);
    // Until a-0 (to broker 2) is copying.
    until_moving(&k, &j, &mut soft, &mut now).await;
    assert_eq!(k.list_reassignments(&[]).await.unwrap()[0].adding, [2]);
    k.set_alive(2, false);
    steps(&k, &j, &mut soft, &mut now, 8).await; // 4 s: within the grace period
    assert_eq!(
        j.current().1[0].state,
        TaskState::Submitted,
        "waits during the grace period"
    );
    steps(&k, &j, &mut soft, &mut now, 16).await; // past it
    let (e, tasks) = j.current();
    assert_eq!(tasks[0].state, TaskState::Failed, "{:?}", e.events);
    assert!(
        tasks[0].reason.contains("destination broker 2"),
        "{}",
        tasks[0].reason
    );
    let moving = k.list_reassignments(&[]).await.unwrap();
    assert!(
        !moving.iter().any(|r| r.topic == "a" && r.partition == 0),
        "{moving:?}"
    );
    let lists = k
        .describe_configs(
            &ConfigResource::Topic("a".into()),
            &super::ledger::TOPIC_KEYS,
        )
        .await
        .unwrap();
    for l in &lists {
        assert!(!l.value.clone().unwrap_or_default().contains(":2"), "{l:?}");
    }
    // The rest goes on, except b-0: moving its leadership to the dead
    // broker is held by the min-ISR gate (1 of 2 in sync, min ISR 1).
    steps(&k, &j, &mut soft, &mut now, 100).await;
    let (e, tasks) = j.current();
    assert_eq!(e.state, ExecState::Executing, "{:?}", e.events);
    assert_eq!(
        (tasks[1].state, tasks[2].state),
        (TaskState::Done, TaskState::Done)
    );
    assert_eq!(tasks[3].state, TaskState::Pending);
    assert!(e.events.iter().any(|v| v
        .text
        .contains("b-0 waits: 1 in sync, min.insync.replicas 1")));
    k.set_alive(2, true);
    steps(&k, &j, &mut soft, &mut now, 40).await;
    let (e, _) = j.current();
    assert_eq!(e.state, ExecState::Failed, "{:?}", e.events);
    assert!(e.reason.contains("1 tasks failed"), "{}", e.reason);
    let got = k
        .describe_configs(&ConfigResource::Broker(2), &super::ledger::BROKER_KEYS)
        .await
        .unwrap();
    let ent = ThrottleEntity::Broker(2);
    assert_eq!(
        super::ledger::override_of(&got, super::ledger::LEADER_RATE, &ent).as_deref(),
        Some("1000")
    );
    assert_eq!(
        super::ledger::override_of(&got, super::ledger::FOLLOWER_RATE, &ent),
        None
    );
}

/// A destination restarted within the grace period: nothing cancelled,
/// the plan completes exactly as a clean run.
#[tokio::test]
async fn a_destination_back_within_the_grace_period_loses_nothing() {
    let k = cluster().await;
    let j = journal_at(None, MB as u64);
    let (mut soft, mut now) = (Soft::default(), 1_000);
    until_moving(&k, &j, &mut soft, &mut now).await;
    k.set_alive(2, false);
    steps(&k, &j, &mut soft, &mut now, 8).await;
    k.set_alive(2, true);
    steps(&k, &j, &mut soft, &mut now, 200).await;
    check(&k, &j, "restart within the grace period").await;
    assert!(j.current().1.iter().all(|t| t.attempts == 1));
}

/// Rates follow live headroom: a broker whose disk runs hot halves its
/// rate (written to Kafka and read back), a healthy one adds a step; a
/// broker with no health data keeps the execution's rate.
#[tokio::test]
async fn rates_back_off_on_a_hot_disk_and_recover() {
    use super::ledger::{override_of, FOLLOWER_RATE};
    let k = cluster().await;
    let j = journal_at(None, MB as u64);
    let (mut soft, mut now) = (Soft::default(), 1_000);
    let rate_of = |b: i32| {
        let k = &k;
        async move {
            let got = k
                .describe_configs(&ConfigResource::Broker(b), &[FOLLOWER_RATE])
                .await
                .unwrap();
            override_of(&got, FOLLOWER_RATE, &ThrottleEntity::Broker(b))
        }
    };
    // Until a-0 (1 → 2) copies at the execution's rate.
    until_moving(&k, &j, &mut soft, &mut now).await;
    assert_eq!(rate_of(2).await.as_deref(), Some(&*MB.to_string()));
    soft.health.insert(
        2,
        super::procedure::Health {
            disk_util: 0.97,
            produce_p99_ms: None,
        },
    );
    soft.health.insert(
        1,
        super::procedure::Health {
            disk_util: 0.10,
            produce_p99_ms: Some(3.0),
        },
    );
    steps(&k, &j, &mut soft, &mut now, 5).await; // 2.5 s: one adaptation
    assert_eq!(
        rate_of(2).await.as_deref(),
        Some(&*(MB / 2).to_string()),
        "{:?}",
        j.current().0.events
    );
    assert_eq!(
        rate_of(1).await.as_deref(),
        Some(&*(MB + 500_000).to_string())
    );
    let events: Vec<String> = j
        .current()
        .0
        .events
        .iter()
        .map(|e| e.text.clone())
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e.contains("broker 2: throttle") && e.contains("backing off")),
        "{events:?}"
    );
    // Healthy again: it climbs back by steps.
    soft.health.insert(
        2,
        super::procedure::Health {
            disk_util: 0.2,
            produce_p99_ms: None,
        },
    );
    steps(&k, &j, &mut soft, &mut now, 5).await;
    assert_eq!(
        rate_of(2).await.as_deref(),
        Some(&*(MB / 2 + 500_000).to_string())
    );
    // And every rate is restored at the end.
    soft.health.clear();
    steps(&k, &j, &mut soft, &mut now, 300).await;
    check(&k, &j, "adaptive rates").await;
}

/// Auto-approval holds only within every bound, and is off by default.
#[test]
fn auto_approve_bounds() {
    use super::AutoApprove;
    let tasks = plan();
    let now = 13 * 3_600_000; // 13:00 UTC
    assert!(AutoApprove::default().refuses(&tasks, now).is_some());
    let ok = AutoApprove {
        enabled: true,
        max_bytes: 100 * MB as u64,
        max_partitions: 10,
        max_brokers: 3,
        hours: vec![12, 13],
        time_zone: "UTC".into(),
    };
    assert_eq!(ok.refuses(&tasks, now), None);
    // The same instant is 21:00 at UTC+08:00: outside a 12–13 window there.
    let east = AutoApprove {
        time_zone: "UTC+08:00".into(),
        ..ok.clone()
    };
    assert!(east
        .refuses(&tasks, now)
        .unwrap()
        .contains("hour 21 (UTC+08:00)"));
    assert_eq!(
        AutoApprove {
            hours: vec![21],
            ..east
        }
        .refuses(&tasks, now),
        None
    );
    let r = |a: AutoApprove| a.refuses(&tasks, now).unwrap();
    assert!(r(AutoApprove {
        max_bytes: MB as u64,
        ..ok.clone()
    })
    .contains("max-bytes"));
    assert!(r(AutoApprove {
        max_partitions: 2,
        ..ok.clone()
    })
    .contains("max-partitions"));
    assert!(r(AutoApprove {
        max_brokers: 2,
        ..ok.clone()
    })
    .contains("max-brokers"));
    assert!(r(AutoApprove {
        hours: vec![2],
        ..ok.clone()
    })
    .contains("hour 13"));
}

/// The per-disk budgets: two moves onto one dir run one after the other
/// when the dir allows one task, or fewer bytes than both.
#[tokio::test]
async fn a_disk_budget_serialises_moves_onto_one_dir() {
    let two = || {
        let mut v = plan();
        v.truncate(2);
        v[1].target = vec![2];
        v[1].dirs = vec![(2, "/data/2/d1".into())];
        v
    };
    for (tasks_per_disk, bytes_per_disk) in [(1, 1u64 << 40), (5, 15 * MB as u64)] {
        let k = cluster().await;
        let j = journal_of(None, MB as u64, two(), 5);
        let mut c = cfg();
        c.max_tasks_per_disk = tasks_per_disk;
        c.max_bytes_per_disk = bytes_per_disk;
        let (mut soft, mut now) = (Soft::default(), 1_000);
        let mut most = 0;
        for _ in 0..400 {
            let (e, tasks) = j.current();
            if e.state.terminal() {
                break;
            }
            step(&k, &j, &e, &tasks, &c, &mut soft, now).await.unwrap();
            let running = j
                .current()
                .1
                .iter()
                .filter(|t| t.state == TaskState::Submitted)
                .count();
            most = most.max(running);
            k.advance(Duration::from_millis(500));
            now += 500;
        }
        assert_eq!(j.current().0.state, ExecState::Done);
        assert_eq!(
            most, 1,
            "per disk {tasks_per_disk} tasks / {bytes_per_disk} bytes"
        );
    }
}
