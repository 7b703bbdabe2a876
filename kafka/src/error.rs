//! Typed errors of the Kafka client: each names the broker address or the
//! API (and, for a Kafka error, its code and the resource).

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr}: no answer to {api} within {deadline:?}")]
    Timeout {
        addr: String,
        api: &'static str,
        deadline: Duration,
    },
    /// The broker sent something this client cannot read.
    #[error("{addr}: malformed {api} response: {reason}")]
    Malformed {
        addr: String,
        api: &'static str,
        reason: String,
    },
    /// No version of `api` both sides support.
    #[error("{addr} does not support {api} v{min}–v{max} (it offers {offered})")]
    Unsupported {
        addr: String,
        api: &'static str,
        min: i16,
        max: i16,
        offered: String,
    },
    /// A broker id the cluster's Metadata does not list.
    #[error("broker {id} is not in the cluster's metadata")]
    UnknownBroker { id: i32 },
    /// A refusal made by this client before sending (e.g. a reassignment
    /// that would change the replication factor, on a broker too old to
    /// refuse it itself).
    #[error("{api} on {resource}: {reason}")]
    Refused {
        api: &'static str,
        resource: String,
        reason: String,
    },
    /// A configuration this client cannot use (e.g. an unsupported SASL
    /// mechanism), naming the key.
    #[error("config {key}: {reason}")]
    Config { key: &'static str, reason: String },
    /// Kafka answered with an error code (and, when it sent one, its message).
    #[error("{api} on {resource}: Kafka error {code} ({name})")]
    Kafka {
        api: &'static str,
        resource: String,
        code: i16,
        name: String,
    },
}

impl KafkaError {
    /// Worth another attempt within the call's deadline: a lost or refused
    /// connection (a broker restarting), or a Kafka error Kafka marks
    /// retriable (`NOT_CONTROLLER`, `LEADER_NOT_AVAILABLE`,
    /// `NOT_COORDINATOR`, `REQUEST_TIMED_OUT`, …). `REPLICA_NOT_AVAILABLE`
    /// from AlterReplicaLogDirs and `ELECTION_NOT_NEEDED` never get here:
    /// they are outcomes, not errors.
    pub fn is_retriable(&self) -> bool {
        match self {
            KafkaError::Connect { .. } | KafkaError::Io { .. } => true,
            // UNKNOWN_TOPIC_OR_PARTITION is retriable to Kafka (metadata
            // spreads); to an operator's admin call it is the answer.
            KafkaError::Kafka { code: 3, .. } => false,
            KafkaError::Kafka { code, .. } => {
                kafka_protocol::error::ResponseError::try_from_code(*code)
                    .is_some_and(|e| e.is_retriable())
            }
            _ => false,
        }
    }

    /// The broker could not be reached or the connection broke.
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            KafkaError::Connect { .. } | KafkaError::Io { .. } | KafkaError::Timeout { .. }
        )
    }

    /// The Kafka error code, for a Kafka error.
    pub fn code(&self) -> Option<i16> {
        match self {
            KafkaError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// [`KafkaError::check`] keeping the broker's message, when it sent one.
    pub(crate) fn check_msg(
        api: &'static str,
        resource: impl Into<String>,
        code: i16,
        message: Option<String>,
    ) -> Result<(), KafkaError> {
        let resource = resource.into();
        match message.filter(|m| !m.is_empty()) {
            Some(m) => Self::check(api, format!("{resource} ({m})"), code),
            None => Self::check(api, resource, code),
        }
    }

    /// The Kafka error's name (`TopicAlreadyExists`), for a Kafka error.
    pub fn kafka_name(&self) -> Option<&str> {
        match self {
            KafkaError::Kafka { name, .. } => Some(name),
            _ => None,
        }
    }

    /// A Kafka error code as an error, or `None` for 0.
    pub(crate) fn check(
        api: &'static str,
        resource: impl Into<String>,
        code: i16,
    ) -> Result<(), KafkaError> {
        if code == 0 {
            return Ok(());
        }
        let name = kafka_protocol::error::ResponseError::try_from_code(code)
            .map_or_else(|| "NONE".to_string(), |e| e.to_string());
        Err(KafkaError::Kafka {
            api,
            resource: resource.into(),
            code,
            name,
        })
    }
}
