//! DescribeConfigs and IncrementalAlterConfigs. A BROKER resource goes to
//! that broker (any other answers "Unexpected broker id"), or to a KRaft
//! controller when the broker cannot be reached and controllers are
//! configured; TOPIC and the broker default go through any broker.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ApiKey, DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};

use super::{s, KafkaClient, Route};
use crate::error::KafkaError;
use crate::types::{AlterConfigOp, ConfigEntry, ConfigResource, ConfigSource, ConfigSynonym};

const DESCRIBE_CONFIGS: (i16, i16) = (1, 4);
const INCREMENTAL_ALTER_CONFIGS: (i16, i16) = (0, 1);

impl KafkaClient {
    /// The configs named in `keys` (every config when empty), each with its
    /// source and the layers that set it.
    pub async fn describe_configs(
        &self,
        resource: &ConfigResource,
        keys: &[&str],
    ) -> Result<Vec<ConfigEntry>, KafkaError> {
        let req = DescribeConfigsRequest::default()
            .with_include_synonyms(true)
            .with_resources(vec![DescribeConfigsResource::default()
                .with_resource_type(resource.kind())
                .with_resource_name(s(&resource.name()))
                .with_configuration_keys(
                    (!keys.is_empty()).then(|| keys.iter().map(|k| s(k)).collect()),
                )]);
        let (_, r): (_, DescribeConfigsResponse) = self
            .call(
                route(resource),
                ApiKey::DescribeConfigs,
                DESCRIBE_CONFIGS,
                |_| req.clone(),
                |_, _| Ok(()),
            )
            .await?;
        let res = r.results.first().ok_or_else(|| KafkaError::Malformed {
            addr: String::new(),
            api: "DescribeConfigs",
            reason: "no result for the resource".into(),
        })?;
        KafkaError::check_msg(
            "DescribeConfigs",
            resource.to_string(),
            res.error_code,
            res.error_message.as_ref().map(|m| m.to_string()),
        )?;
        let mut out: Vec<ConfigEntry> = res
            .configs
            .iter()
            .map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.as_ref().map(|v| v.to_string()),
                source: ConfigSource::from_code(c.config_source),
                read_only: c.read_only,
                sensitive: c.is_sensitive,
                synonyms: c
                    .synonyms
                    .iter()
                    .map(|y| ConfigSynonym {
                        name: y.name.to_string(),
                        value: y.value.as_ref().map(|v| v.to_string()),
                        source: ConfigSource::from_code(y.source),
                    })
                    .collect(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// IncrementalAlterConfigs on one resource.
    pub async fn alter_configs(
        &self,
        resource: &ConfigResource,
        ops: &[AlterConfigOp],
    ) -> Result<(), KafkaError> {
        let configs = ops
            .iter()
            .map(|op| {
                let (code, value) = match op {
                    AlterConfigOp::Set(_, v) => (0, Some(s(v))),
                    AlterConfigOp::Delete(_) => (1, None),
                    AlterConfigOp::Append(_, v) => (2, Some(s(v))),
                    AlterConfigOp::Subtract(_, v) => (3, Some(s(v))),
                };
                AlterableConfig::default()
                    .with_name(s(op.name()))
                    .with_config_operation(code)
                    .with_value(value)
            })
            .collect();
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(resource.kind())
                .with_resource_name(s(&resource.name()))
                .with_configs(configs),
        ]);
        let (_, r): (_, IncrementalAlterConfigsResponse) = self
            .call(
                route(resource),
                ApiKey::IncrementalAlterConfigs,
                INCREMENTAL_ALTER_CONFIGS,
                |_| req.clone(),
                |_, _| Ok(()),
            )
            .await?;
        for res in &r.responses {
            KafkaError::check_msg(
                "IncrementalAlterConfigs",
                resource.to_string(),
                res.error_code,
                res.error_message.as_ref().map(|m| m.to_string()),
            )?;
        }
        Ok(())
    }
}

/// A BROKER resource goes to its broker (or the controllers); the rest to
/// any broker.
fn route(resource: &ConfigResource) -> Route {
    match resource {
        ConfigResource::Broker(id) => Route::BrokerOrControllers(*id),
        _ => Route::Any,
    }
}
