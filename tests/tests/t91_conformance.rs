//! The admin client's conformance suite (`guardian_tests::conformance`):
//! the same assertions on real Kafka (1 controller + 3 brokers, two log
//! dirs each) and on the in-memory model, so the two cannot drift.

use std::time::Duration;

use guardian_kafka::model::ModelBroker;
use guardian_kafka::{KafkaClient, KafkaModel};
use guardian_tests::conformance;
use guardian_tests::kafka::{KafkaCluster, Layout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_passes_the_suite() {
    let m = KafkaModel::new(
        "model-cluster",
        vec![
            ModelBroker::new(1, "r1"),
            ModelBroker::new(2, "r2"),
            ModelBroker::new(3, "r3"),
        ],
    );
    conformance::run_all(&m, "t91m").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kafka_passes_the_suite() {
    let k = KafkaCluster::start(Layout::ControllerAndThreeBrokers).await;
    let a = KafkaClient::new(&k.bootstrap(), Duration::from_secs(20));
    conformance::run_all(&a, "t91k").await;
}
