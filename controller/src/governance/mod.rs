//! Live governance (leader only): every `governance.interval-ms` the
//! leader builds the throttle planner's input from live data
//! ([`inputs`]), runs `plan_throttles`, and reconciles what the plan
//! wants with the claims it holds ([`claims`]): a claim is created
//! (journaled through Raft, then written to Kafka and read back),
//! renewed while its cause persists, and removed — its prior value
//! restored — once the cause has been absent for
//! `release-after-rounds` rounds in a row, at its expiry (nobody renewed
//! it: a leader that stopped governing), or at `max-claim-ms` whatever
//! the cause. A value Guardian did not set is never changed; a claim
//! whose value someone else changed is dropped without restoring over
//! theirs. In `observe` mode claims are recorded and nothing is written.
//!
//! Replication throttles and the log-dir copy rate belong to an execution
//! while one is active on the cluster: governance releases its own first
//! and the executor's preflight waits for that (client quotas are
//! governance's alone). Every decision goes to the replicated event log
//! ([`events`]).

pub mod claims;
pub mod events;
pub mod healing;
pub mod inputs;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use guardian_kafka::KafkaAdmin;
use guardian_meta_store::CommandResponse;
use guardian_planner::model::ClusterModel;
use guardian_planner::throttle::{plan_throttles, ThrottleOptions, ThrottlePlan};
use guardian_proto::domain::Command;
use guardian_proto::governance::{Claim, ClaimState, GovernanceCmd, Retention, ThrottleTarget};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::executor::Executor;
use crate::leader::collector::Collector;
use crate::raft::Controller;
use crate::time::now_ms;
use claims::Want;
use events::EventLog;

/// What governance does with its decisions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Record what it would do (claims `observed`, events); write nothing.
    #[default]
    Observe,
    /// Write the throttles to Kafka.
    Enforce,
}

/// `[governance]`: the throttle loop and the event log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct GovernanceConfig {
    /// How often the leader plans throttles for every cluster.
    pub interval_ms: u64,
    /// `observe` (default) or `enforce`, for every cluster …
    pub mode: Mode,
    /// … except these (cluster name → mode).
    pub cluster_modes: BTreeMap<String, Mode>,
    /// A claim not renewed within this long is removed.
    pub claim_ttl_ms: u64,
    /// No claim lasts longer than this, whatever its cause.
    pub max_claim_ms: u64,
    /// Rounds in a row without its cause before a claim is removed.
    pub release_after_rounds: u32,
    /// Rounds in a row with its cause before a claim is made.
    pub confirm_rounds: u32,
    /// No throttle below this many bytes/s.
    pub min_rate: u64,
    /// A catching-up follower fetches at this × the partition's bytes-in.
    pub catch_up_factor: f64,
    /// Rounds in a row a disk must stay hot before its migrate-away
    /// becomes a rebalance proposal (0: never).
    pub migrate_after_rounds: u32,
    /// Events kept by the replicated log, and for how long.
    pub max_events: u32,
    pub events_max_age_ms: u64,
}

impl Default for GovernanceConfig {
    fn default() -> Self {
        GovernanceConfig {
            interval_ms: 10_000,
            mode: Mode::Observe,
            cluster_modes: BTreeMap::new(),
            claim_ttl_ms: 120_000,
            max_claim_ms: 3_600_000,
            release_after_rounds: 3,
            confirm_rounds: 2,
            min_rate: 1_000_000,
            catch_up_factor: 3.0,
            migrate_after_rounds: 6,
            max_events: 10_000,
            events_max_age_ms: 7 * 24 * 3_600_000,
        }
    }
}

impl GovernanceConfig {
    pub fn mode_of(&self, cluster: &str) -> Mode {
        self.cluster_modes
            .get(cluster)
            .copied()
            .unwrap_or(self.mode)
    }

    pub fn retention(&self) -> Retention {
        Retention {
            max_events: self.max_events,
            max_age_ms: self.events_max_age_ms,
        }
    }
}

/// The last round's picture of a cluster (leader soft state), served by
/// `guardian abnormal`.
#[derive(Debug, Clone, Serialize)]
pub struct Picture {
    pub at_ms: u64,
    pub mode: Mode,
    pub plan: ThrottlePlan,
    /// What could not be acted on, and why.
    pub cannot: Vec<String>,
    /// Inputs that were missing or stale.
    pub warnings: Vec<String>,
}

#[derive(Debug, Default)]
struct ClusterSoft {
    seen: inputs::Seen,
    record_size: inputs::RecordSize,
    picture: Option<Picture>,
    /// Reasons already named in the events.
    noted: BTreeSet<String>,
    /// Targets an operator cleared: not claimed again until then.
    cooldown: BTreeMap<ThrottleTarget, u64>,
    /// Targets wanted but not claimed yet: rounds in a row so far.
    confirming: BTreeMap<ThrottleTarget, u32>,
    /// Rounds in a row with a migrate-away, and the last proposal.
    hot_rounds: u32,
    proposed_ms: u64,
    healing: healing::HealingSoft,
}

/// The leader's governance loop.
pub struct Governance {
    pub cfg: GovernanceConfig,
    pub healing: healing::HealingConfig,
    pub events: Arc<EventLog>,
    executor: Arc<Executor>,
    collector: Arc<Collector>,
    soft: Mutex<BTreeMap<String, ClusterSoft>>,
}

fn gov(cmd: GovernanceCmd) -> Command {
    Command::Governance(Box::new(cmd))
}

impl Governance {
    pub fn new(
        cfg: GovernanceConfig,
        healing: healing::HealingConfig,
        events: Arc<EventLog>,
        executor: Arc<Executor>,
        collector: Arc<Collector>,
    ) -> Self {
        Governance {
            cfg,
            healing,
            events,
            executor,
            collector,
            soft: Default::default(),
        }
    }

    /// The last round's picture of `cluster` (leader only).
    pub fn picture(&self, cluster: &str) -> Option<Picture> {
        self.soft
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(cluster)
            .and_then(|s| s.picture.clone())
    }

    /// Forgets the soft state (a node that stops leading).
    pub fn clear(&self) {
        self.soft.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.events.clear();
    }

    /// Plans every cluster every `interval-ms` and flushes the event log
    /// every 250 ms, until `stop`.
    pub async fn run(self: Arc<Self>, ctl: Controller, stop: CancellationToken) {
        let mut flush = tokio::time::interval(Duration::from_millis(250));
        let mut round = tokio::time::interval(Duration::from_millis(self.cfg.interval_ms.max(100)));
        round.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = flush.tick() => self.events.flush(&ctl).await,
                _ = round.tick() => {
                    let (clusters, ungoverned): (Vec<String>, Vec<String>) = {
                        let st = ctl.state();
                        st.registry
                            .clusters
                            .keys()
                            .filter(|c| {
                                st.registry.brokers.keys().any(|(bc, _)| bc == *c)
                                    || st.governance.claims_of(c).next().is_some()
                            })
                            .cloned()
                            .partition(|c| st.registry.brokers.keys().any(|(bc, _)| bc == c))
                    };
                    for c in ungoverned {
                        if let Err(e) = self.release_all(&ctl, &c).await {
                            self.note(&c, "governance", &c, format!("lifting throttles failed: {e}"));
                        }
                    }
                    for c in clusters {
                        let t = std::time::Instant::now();
                        let r = tokio::select! {
                            _ = stop.cancelled() => return,
                            r = self.round(&ctl, &c) => r,
                        };
                        crate::metrics::METRICS
                            .governance_round_seconds
                            .observe(crate::metrics::since(t));
                        if let Err(e) = r {
                            self.note(&c, "governance", &c, format!("governance round failed: {e}"));
                        }
                    }
                }
            }
        }
        self.events.flush(&ctl).await;
    }

    /// An event named once per distinct text (until the text changes).
    fn note(&self, cluster: &str, kind: &str, subject: &str, text: String) {
        let fresh = self
            .soft
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(cluster.to_string())
            .or_default()
            .noted
            .insert(text.clone());
        if fresh {
            self.events.record(cluster, kind, subject, text, &[]);
        }
    }

    /// A cluster whose brokers were all removed is no longer governed:
    /// each of its claims is removed (the prior value restored) so none
    /// outlives the registration.
    async fn release_all(&self, ctl: &Controller, cluster: &str) -> Result<(), ApiError> {
        let k = self.executor.client(ctl, cluster)?;
        let held: Vec<Claim> = ctl.state().governance.claims_of(cluster).cloned().collect();
        for c in held {
            self.remove(
                ctl,
                &*k,
                &c,
                "the cluster has no registered broker left: Guardian no longer governs it",
            )
            .await?;
        }
        Ok(())
    }

    /// One round on one cluster.
    pub async fn round(&self, ctl: &Controller, cluster: &str) -> Result<(), ApiError> {
        let now = now_ms();
        let mode = self.cfg.mode_of(cluster);
        let k = self.executor.client(ctl, cluster)?;
        let (mut live, controls) = self.executor.live(ctl, cluster, &k).await?;
        if controls.frozen {
            return Ok(()); // a frozen cluster: no actuation at all
        }
        let mut heal = {
            let mut s = self.soft.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut s.entry(cluster.to_string()).or_default().healing)
        };
        let healed = healing::step(
            &self.healing,
            ctl,
            &self.executor,
            &self.events,
            cluster,
            &live,
            &mut heal,
            now,
        )
        .await;
        {
            let mut s = self.soft.lock().unwrap_or_else(|p| p.into_inner());
            s.entry(cluster.to_string()).or_default().healing = heal;
        }
        if let Err(e) = healed {
            self.note(
                cluster,
                "healing",
                cluster,
                format!("healing step failed: {e}"),
            );
        }
        let (mut seen, mut record_size) = {
            let mut s = self.soft.lock().unwrap_or_else(|p| p.into_inner());
            let s = s.entry(cluster.to_string()).or_default();
            (
                std::mem::take(&mut s.seen),
                std::mem::take(&mut s.record_size),
            )
        };
        let groups = inputs::groups(&*k, &live.spec, &mut seen, &mut record_size, now).await;
        {
            let mut s = self.soft.lock().unwrap_or_else(|p| p.into_inner());
            let s = s.entry(cluster.to_string()).or_default();
            s.seen = seen;
            s.record_size = record_size.clone();
        }
        let (groups, group_notes) = groups.map_err(|e| ApiError::FailedPrecondition {
            reason: format!("consumer groups of Kafka cluster {cluster:?}: {e}"),
        })?;
        let hosts: BTreeMap<i32, _> = {
            let st = ctl.state();
            st.governance
                .hosts
                .range((cluster.to_string(), i32::MIN)..=(cluster.to_string(), i32::MAX))
                .map(|((_, b), h)| (*b, h.clone()))
                .collect()
        };
        {
            let load = self
                .collector
                .state
                .read()
                .unwrap_or_else(|p| p.into_inner());
            let of: BTreeMap<i32, &crate::load::BrokerLoad> = load.brokers_of(cluster).collect();
            inputs::enrich(&mut live, &of, &hosts);
        }
        live.spec.groups = groups;
        // What each client must keep up with: the bytes-in of what it reads.
        let bytes_in: BTreeMap<(&str, i32), f64> = live
            .spec
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| ((t.name.as_str(), p.partition), p.bytes_in))
            })
            .collect();
        let mut floor: BTreeMap<String, f64> = BTreeMap::new();
        for g in &live.spec.groups {
            let f = floor.entry(g.client_id.clone()).or_default();
            *f += g
                .positions
                .iter()
                .map(|p| {
                    bytes_in
                        .get(&(p.topic.as_str(), p.partition))
                        .copied()
                        .unwrap_or(0.0)
                })
                .sum::<f64>();
        }
        let compute = std::time::Instant::now();
        let model =
            ClusterModel::from_spec(&live.spec).map_err(|e| ApiError::FailedPrecondition {
                reason: format!("the throttle model of {cluster:?}: {e}"),
            })?;
        let opts = ThrottleOptions {
            now_ms: now,
            ttl_ms: self.cfg.claim_ttl_ms,
            catch_up_factor: self.cfg.catch_up_factor,
            min_rate: self.cfg.min_rate as f64,
        };
        let plan = plan_throttles(&model, &opts);
        let mut compute_s = crate::metrics::since(compute);
        let execution = ctl.state().executions.active_on(cluster).map(|e| e.id);
        let quotas = k.describe_client_quotas(&[], false).await.map_err(|e| {
            ApiError::FailedPrecondition {
                reason: format!("DescribeClientQuotas of {cluster:?}: {e}"),
            }
        })?;
        let held: Vec<ThrottleTarget> = ctl
            .state()
            .governance
            .claims_of(cluster)
            .map(|c| c.target.clone())
            .collect();
        let compute = std::time::Instant::now();
        let (wants, mut cannot) = claims::wants(
            &plan,
            &quotas,
            &held,
            &|c| floor.get(c).copied().unwrap_or(0.0),
            execution.is_none(),
        );
        compute_s += crate::metrics::since(compute);
        crate::metrics::METRICS
            .governance_compute_seconds
            .observe(compute_s);
        cannot.extend(group_notes);
        for c in &cannot {
            self.note(cluster, "throttle.cannot", cluster, c.clone());
        }
        self.reconcile(ctl, &*k, cluster, wants, mode, execution, now)
            .await?;
        self.migrate_away(ctl, cluster, &plan, now).await;
        let mut s = self.soft.lock().unwrap_or_else(|p| p.into_inner());
        s.entry(cluster.to_string()).or_default().picture = Some(Picture {
            at_ms: now,
            mode,
            plan,
            cannot,
            warnings: live.warnings,
        });
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn reconcile<K: KafkaAdmin>(
        &self,
        ctl: &Controller,
        k: &K,
        cluster: &str,
        wants: Vec<Want>,
        mode: Mode,
        execution: Option<u64>,
        now: u64,
    ) -> Result<(), ApiError> {
        let held: Vec<Claim> = ctl.state().governance.claims_of(cluster).cloned().collect();
        let cooldown: BTreeMap<ThrottleTarget, u64> = {
            let mut s = self.soft.lock().unwrap_or_else(|p| p.into_inner());
            let s = s.entry(cluster.to_string()).or_default();
            s.cooldown.retain(|_, until| *until > now);
            s.cooldown.clone()
        };
        let (renew, fresh) = claims::diff(&held, &wants);
        for (c, wanted) in held.iter().zip(&renew) {
            let wanted = wanted.map(|i| &wants[i]);
            let replication = !matches!(c.target, ThrottleTarget::ClientQuota { .. });
            match wanted {
                _ if now >= c.hard_expiry_ms => {
                    self.remove(
                        ctl,
                        k,
                        c,
                        &format!(
                            "held for governance.max-claim-ms ({} ms): removed whatever its cause",
                            self.cfg.max_claim_ms
                        ),
                    )
                    .await?;
                    self.cool(cluster, &c.target, now + self.cfg.claim_ttl_ms);
                }
                _ if replication && execution.is_some() => {
                    self.remove(
                        ctl,
                        k,
                        c,
                        &format!(
                            "execution {} takes over the cluster's replication throttles",
                            execution.unwrap_or(0)
                        ),
                    )
                    .await?;
                }
                Some(w) => self.renew(ctl, k, c, w, mode, now).await?,
                None => {
                    let mut c = c.clone();
                    c.absent_rounds += 1;
                    if c.absent_rounds >= self.cfg.release_after_rounds || now >= c.expires_ms {
                        let why = if now >= c.expires_ms {
                            "expired: not renewed".to_string()
                        } else {
                            format!("its cause was absent {} rounds in a row", c.absent_rounds)
                        };
                        self.remove(ctl, k, &c, &why).await?;
                    } else {
                        put(ctl, c).await?;
                    }
                }
            }
        }
        let mut create = Vec::new();
        {
            let mut s = self.soft.lock().unwrap_or_else(|p| p.into_inner());
            let s = s.entry(cluster.to_string()).or_default();
            let fresh: Vec<&Want> = fresh
                .iter()
                .map(|i| &wants[*i])
                .filter(|w| !cooldown.contains_key(&w.target))
                .collect();
            // Hysteresis on the way in: a cause seen `confirm-rounds` in a row.
            s.confirming
                .retain(|t, _| fresh.iter().any(|w| w.target == *t));
            for w in fresh {
                let n = s.confirming.entry(w.target.clone()).or_default();
                *n += 1;
                if *n >= self.cfg.confirm_rounds.max(1) {
                    s.confirming.remove(&w.target);
                    create.push(w.clone());
                }
            }
        }
        for w in create {
            self.create(ctl, k, cluster, w, mode, now).await?;
        }
        Ok(())
    }

    fn cool(&self, cluster: &str, t: &ThrottleTarget, until: u64) {
        self.soft
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(cluster.to_string())
            .or_default()
            .cooldown
            .insert(t.clone(), until);
    }

    async fn create<K: KafkaAdmin>(
        &self,
        ctl: &Controller,
        k: &K,
        cluster: &str,
        w: Want,
        mode: Mode,
        now: u64,
    ) -> Result<(), ApiError> {
        let kafka = |e: guardian_kafka::KafkaError| ApiError::FailedPrecondition {
            reason: format!("{}: {e}", w.target),
        };
        let prior = claims::current(k, &w.target).await.map_err(kafka)?;
        if let Some(p) = &prior {
            let theirs_stricter = p
                .parse::<f64>()
                .ok()
                .zip(w.value.parse::<f64>().ok())
                .is_some_and(|(a, b)| a <= b);
            let list = matches!(w.target, ThrottleTarget::TopicConfig { .. });
            if list || theirs_stricter || matches!(w.target, ThrottleTarget::ClientQuota { .. }) {
                self.note(
                    cluster,
                    "throttle.cannot",
                    &w.target.to_string(),
                    format!(
                        "{} is already {p} (not Guardian's): left alone ({})",
                        w.target, w.reason
                    ),
                );
                return Ok(());
            }
        }
        let mut c = Claim {
            id: 0,
            cluster: cluster.to_string(),
            target: w.target.clone(),
            value: w.value.clone(),
            prior,
            state: if mode == Mode::Enforce {
                ClaimState::Applying
            } else {
                ClaimState::Observed
            },
            owner: "governance".into(),
            reason: w.reason.clone(),
            since_ms: now,
            renewed_ms: now,
            expires_ms: now + self.cfg.claim_ttl_ms,
            hard_expiry_ms: now + self.cfg.max_claim_ms,
            absent_rounds: 0,
        };
        c = put(ctl, c).await?;
        if mode == Mode::Observe {
            self.events.record(
                cluster,
                "throttle.observed",
                &w.target.to_string(),
                format!(
                    "observe mode: would set {} = {} ({})",
                    w.target, w.value, w.reason
                ),
                &[("rate", w.rate)],
            );
            return Ok(());
        }
        self.apply(ctl, k, c).await?;
        self.events.record(
            cluster,
            "throttle.set",
            &w.target.to_string(),
            format!("{} = {} ({})", w.target, w.value, w.reason),
            &[("rate", w.rate)],
        );
        Ok(())
    }

    /// Writes a journaled claim's value and reads it back.
    async fn apply<K: KafkaAdmin>(
        &self,
        ctl: &Controller,
        k: &K,
        mut c: Claim,
    ) -> Result<Claim, ApiError> {
        let kafka = |e: guardian_kafka::KafkaError| ApiError::FailedPrecondition {
            reason: format!("{}: {e}", c.target),
        };
        claims::set(k, &c.target, Some(&c.value))
            .await
            .map_err(kafka)?;
        let deadline = now_ms() + 3_000;
        loop {
            let cur = claims::current(k, &c.target).await.map_err(kafka)?;
            if claims::same(cur.as_deref(), Some(&c.value)) {
                break;
            }
            if now_ms() > deadline {
                return Err(ApiError::FailedPrecondition {
                    reason: format!(
                        "{} = {} did not read back (read {cur:?})",
                        c.target, c.value
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        c.state = ClaimState::Applied;
        put(ctl, c).await
    }

    async fn renew<K: KafkaAdmin>(
        &self,
        ctl: &Controller,
        k: &K,
        c: &Claim,
        w: &Want,
        mode: Mode,
        now: u64,
    ) -> Result<(), ApiError> {
        let mut c = c.clone();
        c.renewed_ms = now;
        c.expires_ms = now + self.cfg.claim_ttl_ms;
        c.absent_rounds = 0;
        c.reason = w.reason.clone();
        // Hysteresis: the value follows the plan only when it moves by
        // more than a fifth (lists: any change).
        let (old, new) = (c.value.parse::<f64>().ok(), w.value.parse::<f64>().ok());
        let moved = match (old, new) {
            (Some(a), Some(b)) => (a - b).abs() > 0.2 * a.max(1.0),
            _ => !claims::same(Some(&c.value), Some(&w.value)),
        };
        let rewrite = moved || (mode == Mode::Enforce && c.state != ClaimState::Applied);
        if moved {
            self.events.record(
                &c.cluster,
                "throttle.renewed",
                &c.target.to_string(),
                format!("{} {} → {} ({})", c.target, c.value, w.value, w.reason),
                &[("rate", w.rate)],
            );
            c.value = w.value.clone();
        }
        match (mode, c.state) {
            (Mode::Observe, ClaimState::Applied | ClaimState::Applying) => {
                // Switched to observe: what Guardian wrote goes.
                self.restore(k, &c).await?;
                c.state = ClaimState::Observed;
                put(ctl, c).await?;
            }
            (Mode::Enforce, _) if rewrite => {
                c.state = ClaimState::Applying;
                let c = put(ctl, c).await?;
                self.apply(ctl, k, c).await?;
            }
            _ => {
                put(ctl, c).await?;
            }
        }
        Ok(())
    }

    /// Puts the prior value back if Guardian's is still in force.
    async fn restore<K: KafkaAdmin>(&self, k: &K, c: &Claim) -> Result<bool, ApiError> {
        let kafka = |e: guardian_kafka::KafkaError| ApiError::FailedPrecondition {
            reason: format!("{}: {e}", c.target),
        };
        let cur = claims::current(k, &c.target).await.map_err(kafka)?;
        if claims::same(cur.as_deref(), Some(&c.value)) {
            claims::set(k, &c.target, c.prior.as_deref())
                .await
                .map_err(kafka)?;
            Ok(true)
        } else if claims::same(cur.as_deref(), c.prior.as_deref()) {
            Ok(true) // never written, or already restored
        } else {
            self.events.record(
                &c.cluster,
                "throttle.conflict",
                &c.target.to_string(),
                format!(
                    "{} is {cur:?}, not Guardian's {}: someone else changed it; left alone",
                    c.target, c.value
                ),
                &[],
            );
            Ok(false)
        }
    }

    /// Removes a claim: its prior value restored (enforce), then dropped.
    pub async fn remove<K: KafkaAdmin>(
        &self,
        ctl: &Controller,
        k: &K,
        c: &Claim,
        why: &str,
    ) -> Result<(), ApiError> {
        if c.state != ClaimState::Observed {
            self.restore(k, c).await?;
        }
        match ctl.write(gov(GovernanceCmd::DropClaim { id: c.id })).await {
            // Already gone (a retried removal): fine.
            Ok(_) | Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        self.events.record(
            &c.cluster,
            "throttle.removed",
            &c.target.to_string(),
            format!(
                "{} removed, {} ({why}; held {} s)",
                c.target,
                match (&c.state, &c.prior) {
                    (ClaimState::Observed, _) => "nothing was written (observe mode)".to_string(),
                    (_, Some(p)) => format!("the prior value {p} restored"),
                    (_, None) => "no override left (there was none)".to_string(),
                },
                now_ms().saturating_sub(c.since_ms) / 1000
            ),
            &[],
        );
        Ok(())
    }

    /// An operator's `throttle clear`: removed now, not claimed again for
    /// one claim TTL.
    pub async fn clear_claim(&self, ctl: &Controller, id: u64) -> Result<Claim, ApiError> {
        let c = ctl
            .state()
            .governance
            .claims
            .get(&id)
            .cloned()
            .ok_or_else(|| ApiError::NotFound {
                what: format!("throttle {id}"),
            })?;
        let k = self.executor.client(ctl, &c.cluster)?;
        self.remove(ctl, &*k, &c, "cleared by an operator").await?;
        self.cool(&c.cluster, &c.target, now_ms() + self.cfg.claim_ttl_ms);
        Ok(c)
    }

    /// A disk that throttling cannot cool, round after round, becomes a
    /// rebalance proposal (approved only under the executor's policy).
    async fn migrate_away(&self, ctl: &Controller, cluster: &str, plan: &ThrottlePlan, now: u64) {
        let (rounds, last) = {
            let mut s = self.soft.lock().unwrap_or_else(|p| p.into_inner());
            let s = s.entry(cluster.to_string()).or_default();
            s.hot_rounds = if plan.migrate_away.is_empty() {
                0
            } else {
                s.hot_rounds + 1
            };
            (s.hot_rounds, s.proposed_ms)
        };
        let n = self.cfg.migrate_after_rounds;
        if n == 0 || rounds < n || now.saturating_sub(last) < 10 * self.cfg.claim_ttl_ms {
            return;
        }
        let busy = ctl
            .state()
            .executions
            .by_id
            .values()
            .any(|e| e.cluster == cluster && !e.state.terminal());
        if busy {
            return;
        }
        let why: Vec<String> = plan
            .migrate_away
            .iter()
            .map(|m| format!("broker {} {}: {}", m.broker, m.dir, m.reason))
            .collect();
        let r = crate::executor::ProposeRequest {
            cluster: cluster.to_string(),
            by: "governance".into(),
            note: Some(format!(
                "migrate-away: a disk stayed over its write budget for {rounds} rounds: {}",
                why.join("; ")
            )),
            ..Default::default()
        };
        match self.executor.propose(ctl, &r).await {
            Ok(p) => {
                let id = p.execution.as_ref().map_or(0, |e| e.id);
                self.events.record(
                    cluster,
                    "proposal",
                    &format!("execution {id}"),
                    format!(
                        "migrate-away proposed as execution {id} ({} moves): {}",
                        p.tasks.len(),
                        why.join("; ")
                    ),
                    &[("tasks", p.tasks.len() as f64)],
                );
            }
            Err(e) => self.note(
                cluster,
                "proposal",
                cluster,
                format!("migrate-away could not be proposed: {e}"),
            ),
        }
        let mut s = self.soft.lock().unwrap_or_else(|p| p.into_inner());
        s.entry(cluster.to_string()).or_default().proposed_ms = now;
    }
}

async fn put(ctl: &Controller, c: Claim) -> Result<Claim, ApiError> {
    match ctl
        .write(gov(GovernanceCmd::PutClaim { claim: Box::new(c) }))
        .await?
    {
        CommandResponse::Claim(c) => Ok(*c),
        other => Err(crate::api::unexpected_response(other)),
    }
}
