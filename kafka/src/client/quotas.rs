//! DescribeClientQuotas and AlterClientQuotas, through any broker.

use std::collections::HashMap;

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, ApiKey, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};

use super::{s, KafkaClient, Route};
use crate::error::KafkaError;
use crate::types::{PerItem, QuotaChange, QuotaEntity, QuotaEntry, QuotaMatch};

const DESCRIBE_CLIENT_QUOTAS: (i16, i16) = (0, 1);
const ALTER_CLIENT_QUOTAS: (i16, i16) = (0, 1);

impl KafkaClient {
    /// Quota entries matching every component; `strict` leaves out
    /// entities that have other entity types too.
    pub async fn describe_client_quotas(
        &self,
        components: &[(String, QuotaMatch)],
        strict: bool,
    ) -> Result<Vec<QuotaEntry>, KafkaError> {
        let req = DescribeClientQuotasRequest::default()
            .with_strict(strict)
            .with_components(
                components
                    .iter()
                    .map(|(t, m)| {
                        let (kind, name) = match m {
                            QuotaMatch::Exact(n) => (0, Some(s(n))),
                            QuotaMatch::Default => (1, None),
                            QuotaMatch::Any => (2, None),
                        };
                        ComponentData::default()
                            .with_entity_type(s(t))
                            .with_match_type(kind)
                            .with_match(name)
                    })
                    .collect(),
            );
        let (_, r): (_, DescribeClientQuotasResponse) = self
            .call(
                Route::Any,
                ApiKey::DescribeClientQuotas,
                DESCRIBE_CLIENT_QUOTAS,
                |_| req.clone(),
                |_, _| Ok(()),
            )
            .await?;
        KafkaError::check_msg(
            "DescribeClientQuotas",
            "the filter",
            r.error_code,
            r.error_message.as_ref().map(|m| m.to_string()),
        )?;
        let mut out: Vec<QuotaEntry> = r
            .entries
            .unwrap_or_default()
            .iter()
            .map(|e| {
                let mut values: Vec<(String, f64)> = e
                    .values
                    .iter()
                    .map(|v| (v.key.to_string(), v.value))
                    .collect();
                values.sort_by(|a, b| a.0.cmp(&b.0));
                QuotaEntry {
                    entity: entity(
                        e.entity
                            .iter()
                            .map(|d| (&d.entity_type, d.entity_name.as_ref())),
                    ),
                    values,
                }
            })
            .collect();
        out.sort_by(|a, b| a.entity.cmp(&b.entity));
        Ok(out)
    }

    /// Sets (`Some`) or removes (`None`) quota values; one result per
    /// entity.
    pub async fn alter_client_quotas(
        &self,
        changes: &[QuotaChange],
    ) -> Result<PerItem<QuotaEntity, ()>, KafkaError> {
        let req = AlterClientQuotasRequest::default().with_entries(
            changes
                .iter()
                .map(|(entity, ops)| {
                    EntryData::default()
                        .with_entity(
                            entity
                                .0
                                .iter()
                                .map(|(t, n)| {
                                    EntityData::default()
                                        .with_entity_type(s(t))
                                        .with_entity_name(n.as_deref().map(s))
                                })
                                .collect(),
                        )
                        .with_ops(
                            ops.iter()
                                .map(|(k, v)| {
                                    OpData::default()
                                        .with_key(s(k))
                                        .with_value(v.unwrap_or(0.0))
                                        .with_remove(v.is_none())
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
        let (_, r): (_, AlterClientQuotasResponse) = self
            .call(
                Route::Any,
                ApiKey::AlterClientQuotas,
                ALTER_CLIENT_QUOTAS,
                |_| req.clone(),
                |_, _| Ok(()),
            )
            .await?;
        let mut got: HashMap<QuotaEntity, Result<(), KafkaError>> = HashMap::new();
        for e in &r.entries {
            let entity = entity(
                e.entity
                    .iter()
                    .map(|d| (&d.entity_type, d.entity_name.as_ref())),
            );
            let res = KafkaError::check_msg(
                "AlterClientQuotas",
                entity.to_string(),
                e.error_code,
                e.error_message.as_ref().map(|m| m.to_string()),
            );
            got.insert(entity, res);
        }
        Ok(changes
            .iter()
            .map(|(entity, _)| {
                let res = got.remove(&entity.clone().normalized()).unwrap_or_else(|| {
                    Err(KafkaError::Malformed {
                        addr: String::new(),
                        api: "AlterClientQuotas",
                        reason: format!("no result for {entity}"),
                    })
                });
                (entity.clone(), res)
            })
            .collect())
    }
}

/// A quota entity from Kafka's (type, name) pairs, sorted by type.
fn entity<'a>(
    pairs: impl Iterator<
        Item = (
            &'a kafka_protocol::protocol::StrBytes,
            Option<&'a kafka_protocol::protocol::StrBytes>,
        ),
    >,
) -> QuotaEntity {
    QuotaEntity(
        pairs
            .map(|(t, n)| (t.to_string(), n.map(|n| n.to_string())))
            .collect(),
    )
    .normalized()
}
