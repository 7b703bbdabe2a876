//! The rolling restart against the `kafka/` model, with real restart
//! commands (`sh -c`) and the journal in the real replicated state: every
//! batch's leadership leaves before its command runs and comes back
//! after; a broker still down holds the roll; a new leader re-runs a
//! command it did not see end; a failing command pauses the roll and a
//! cancel restores the replica order.

use std::path::Path;
use std::time::Duration;

use guardian_kafka::model::ModelBroker;
use guardian_kafka::types::NewTopic;
use guardian_kafka::{KafkaAdmin, KafkaModel};
use guardian_proto::execution::*;

use super::procedure::{step, Soft};
use super::tests::{approved, cfg, header, MemJournal};

const ASSIGNMENT: [[i32; 3]; 3] = [[1, 2, 3], [2, 3, 1], [3, 1, 2]];

async fn model() -> KafkaModel {
    let k = KafkaModel::new(
        "m",
        (1..=3)
            .map(|b| ModelBroker::new(b, &format!("r{b}")))
            .collect(),
    )
    .manual_clock();
    k.create_topics(&[NewTopic {
        name: "r".into(),
        assignment: ASSIGNMENT.iter().map(|a| a.to_vec()).collect(),
        configs: Vec::new(),
        ..Default::default()
    }])
    .await
    .unwrap();
    k
}

fn roll(batches: Vec<Vec<i32>>, command: String) -> MemJournal {
    let mut e = header(Intent::Roll { batch: 1, command }, 0);
    e.roll = Some(RollState {
        batches,
        ..Default::default()
    });
    approved(None, e, Vec::new())
}

/// (replicas, leader) of `r`'s partitions.
async fn layout(k: &KafkaModel) -> Vec<(Vec<i32>, i32)> {
    let md = k.metadata().await.unwrap();
    let t = md.topics.iter().find(|t| t.name == "r").unwrap();
    t.partitions
        .iter()
        .map(|p| (p.replicas.clone(), p.leader))
        .collect()
}

fn lines(f: &Path) -> Vec<String> {
    std::fs::read_to_string(f)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A command that records its broker, then waits for `done-<id>`.
fn waiting_command(dir: &Path) -> String {
    format!(
        "echo $GUARDIAN_BROKER_ID >> {d}/ran; while [ ! -f {d}/done-$GUARDIAN_BROKER_ID ]; do sleep 0.01; done",
        d = dir.display()
    )
}

async fn one(k: &KafkaModel, j: &MemJournal, soft: &mut Soft, now: &mut u64) -> Execution {
    let (e, tasks) = j.current();
    if !e.state.terminal() {
        let _ = step(k, j, &e, &tasks, &cfg(), soft, *now).await;
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    k.advance(Duration::from_millis(100));
    *now += 100;
    j.current().0
}

#[tokio::test]
async fn a_roll_restarts_each_batch_with_its_leadership_elsewhere() {
    let k = model().await;
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("ran");
    let j = roll(vec![vec![1], vec![2], vec![3]], waiting_command(dir.path()));
    let before = layout(&k).await;
    let mut soft = Soft::default();
    let mut now = 1_000u64;
    let mut failed_over = false;
    let mut down: Option<i32> = None;
    for _ in 0..3_000 {
        let e = one(&k, &j, &mut soft, &mut now).await;
        if e.state.terminal() {
            break;
        }
        let r = e.roll.clone().unwrap();
        let b = r.current()[0];
        let seen = lines(&ran);
        if r.phase == RollPhase::Restarting
            && seen.last().map(String::as_str) == Some(&b.to_string())
        {
            // The command runs: nothing it restarts leads anything.
            for (replicas, leader) in layout(&k).await {
                assert!(
                    leader != b || replicas.iter().all(|x| *x == b),
                    "broker {b} leads {replicas:?} while it restarts"
                );
            }
            if b == 2 && !failed_over {
                // The leader dies: a new one (fresh soft state) resumes.
                failed_over = true;
                soft = Soft::default();
                continue;
            }
            if down.is_none() {
                k.set_alive(b, false);
                down = Some(b);
                std::fs::write(dir.path().join(format!("done-{b}")), "").unwrap();
            }
        }
        if r.phase == RollPhase::Recovering && down == Some(b) {
            // Still down: the roll waits for it.
            for _ in 0..5 {
                let e = one(&k, &j, &mut soft, &mut now).await;
                assert_eq!(e.roll.as_ref().unwrap().phase, RollPhase::Recovering);
            }
            k.set_alive(b, true);
            down = None;
        }
    }
    let (e, _) = j.current();
    assert_eq!(e.state, ExecState::Done, "{:#?}", e.events);
    assert_eq!(lines(&ran), ["1", "2", "2", "3"], "{:#?}", e.events);
    assert!(
        e.events
            .iter()
            .any(|ev| ev.text.contains("started by an earlier leader")),
        "{:#?}",
        e.events
    );
    // Replica order and leaders as before the roll.
    assert_eq!(layout(&k).await, before, "{:#?}", e.events);
}

#[tokio::test]
async fn a_failing_command_pauses_the_roll_and_cancel_restores_the_order() {
    let k = model().await;
    let j = roll(
        vec![vec![1], vec![2]],
        "echo 'no such unit' >&2; exit 3".into(),
    );
    let before = layout(&k).await;
    let mut soft = Soft::default();
    let mut now = 1_000u64;
    let mut e = j.current().0;
    for _ in 0..500 {
        e = one(&k, &j, &mut soft, &mut now).await;
        if e.paused {
            break;
        }
    }
    assert!(e.paused, "{:#?}", e.events);
    let last = &e.events.last().unwrap().text;
    assert!(
        last.contains("broker 1") && last.contains("3") && last.contains("no such unit"),
        "{last}"
    );
    // Leadership is off broker 1 while it waits for the operator.
    assert!(layout(&k).await.iter().all(|(_, l)| *l != 1));
    j.apply(ExecutionCmd::Control {
        id: e.id,
        action: Control::Cancel,
        by: "op".into(),
    });
    for _ in 0..100 {
        e = one(&k, &j, &mut soft, &mut now).await;
        if e.state.terminal() {
            break;
        }
    }
    assert_eq!(e.state, ExecState::Cancelled, "{:#?}", e.events);
    assert_eq!(layout(&k).await, before, "{:#?}", e.events);
}
