//! `AuditStore`: the append-only audit log. Changes write their row inside their own transaction
//! with `insert_audit`; reads filter on the organisation inside the query.
use async_trait::async_trait;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use warden_core::{
    Error,
    audit::Action,
    ids::{AuditEventId, OrganizationId, UserId},
    model::{Actor, AuditEvent, AuditFilter},
    ports::AuditStore,
};

use crate::{
    SqlStore,
    convert::uuid,
    internal,
    revisions::{self, Changed},
    tables::audit_events,
};

/// Writes the audit row of a change, and bumps its organisation's revision when the change can alter
/// an authorization answer: every write that can is audited, so none commits without its bump.
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
    .map_err(internal)?;
    // The revision last: its row stays locked until the commit (`revisions::issue`).
    if changes_answers(&event.action) {
        revisions::issue(
            db,
            Changed {
                organization: Some(event.organization_id),
                action: &event.action,
                target_type: &event.target_type,
                target_id: &event.target_id,
                at: event.created_at,
            },
        )
        .await?;
    }
    Ok(())
}

fn event(row: audit_events::Model) -> Result<AuditEvent, Error> {
    let actor = match (row.actor_kind.as_str(), row.actor_user_id.as_deref()) {
        ("user", Some(id)) => Actor::User(UserId(uuid(id)?)),
        ("operator", _) => Actor::Operator,
        ("api_key", _) => Actor::ApiKey,
        ("scim_token", _) => Actor::ScimToken,
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
        // A transaction even for one row: a revision, when issued, must commit with its feed row.
        let txn = self.begin().await?;
        insert_audit(&txn, event).await?;
        txn.commit().await.map_err(internal)
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

/// Sign-ins, password changes, reset requests, refused invitations and ended sessions change no authorization answer; everything else
/// audited does (grants, roles, groups, statuses, factors, settings, keys, ownership, provisioning).
fn changes_answers(action: &str) -> bool {
    ![
        Action::SignedIn,
        Action::SignInFailed,
        Action::InvitationRefused,
        Action::PasswordChanged,
        Action::PasswordReset,
        Action::PasswordResetRequested,
        // Sessions are read per call, never cached with a revision.
        Action::SessionRevoked,
        Action::SignedOutEverywhere,
    ]
    .iter()
    .any(|quiet| quiet.as_str() == action)
}
