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
