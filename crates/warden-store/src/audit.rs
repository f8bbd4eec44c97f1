//! `AuditStore`: the append-only audit log. Changes write their row inside their own transaction
//! with `insert_audit`; reads filter on the organisation inside the query.
use async_trait::async_trait;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use warden_core::{
    Error,
    ids::{AuditEventId, OrganizationId, UserId},
    model::{Actor, AuditEvent, AuditFilter},
    ports::AuditStore,
};

use crate::{SqlStore, convert::uuid, internal, tables::audit_events};

pub(crate) async fn insert_audit(
    db: &impl ConnectionTrait,
    event: &AuditEvent,
) -> Result<(), Error> {
    audit_events::Entity::insert(audit_events::ActiveModel {
        id: Set(event.id.to_string()),
        organization_id: Set(event.organization_id.to_string()),
        actor_user_id: Set(event.actor.user().map(|user| user.to_string())),
        actor_kind: Set(event.actor.kind().to_owned()),
        action: Set(event.action.clone()),
        target_type: Set(event.target_type.clone()),
        target_id: Set(event.target_id.clone()),
        created_at: Set(event.created_at),
        client_address: Set(event.client_address.clone()),
        user_agent: Set(event.user_agent.clone()),
        before_json: Set(event.before.clone()),
        after_json: Set(event.after.clone()),
    })
    .exec(db)
    .await
    .map(|_| ())
    .map_err(internal)
}

fn event(row: audit_events::Model) -> Result<AuditEvent, Error> {
    let actor = match (row.actor_kind.as_str(), row.actor_user_id.as_deref()) {
        ("user", Some(id)) => Actor::User(UserId(uuid(id)?)),
        ("operator", _) => Actor::Operator,
        ("api_key", _) => Actor::ApiKey,
        _ => Actor::Anonymous,
    };
    Ok(AuditEvent {
        id: AuditEventId(uuid(&row.id)?),
        organization_id: OrganizationId(uuid(&row.organization_id)?),
        actor,
        action: row.action,
        target_type: row.target_type,
        target_id: row.target_id,
        created_at: row.created_at,
        client_address: row.client_address,
        user_agent: row.user_agent,
        before: row.before_json,
        after: row.after_json,
    })
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn record_audit(&self, event: &AuditEvent) -> Result<(), Error> {
        insert_audit(&self.db, event).await
    }

    async fn list_audit_events(
        &self,
        organization: OrganizationId,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditEvent>, Error> {
        let mut query = audit_events::Entity::find()
            .filter(audit_events::Column::OrganizationId.eq(organization.to_string()));
        if let Some(actor) = filter.actor {
            query = query.filter(audit_events::Column::ActorUserId.eq(actor.to_string()));
        }
        if let Some(action) = &filter.action {
            query = query.filter(audit_events::Column::Action.eq(action.as_str()));
        }
        if let Some(target) = &filter.target_id {
            query = query.filter(audit_events::Column::TargetId.eq(target.as_str()));
        }
        if let Some(from) = filter.from {
            query = query.filter(audit_events::Column::CreatedAt.gte(from));
        }
        if let Some(until) = filter.until {
            query = query.filter(audit_events::Column::CreatedAt.lt(until));
        }
        if let Some(before) = filter.before_id {
            query = query.filter(audit_events::Column::Id.lt(before.to_string()));
        }
        let rows = query
            .order_by_desc(audit_events::Column::Id)
            .limit(filter.limit)
            .all(&self.db)
            .await
            .map_err(internal)?;
        rows.into_iter().map(event).collect()
    }
}
