//! `NotificationStore`: the durable outbox. Rows are written by `insert_notification` inside the
//! transaction of the change that caused them, so a message exists exactly when its change does.
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, sea_query::Expr,
};
use warden_core::{
    Error,
    ids::{NotificationId, OrganizationId},
    model::{Notification, NotificationKind},
    ports::{NotificationStore, Sealer},
};

use crate::{SqlStore, convert::uuid, internal, tables::notifications};

/// A sealed secret, marked so that rows written before sealing began still read back.
const SEALED: &str = "sealed:";

pub(crate) async fn insert_notification(
    db: &impl ConnectionTrait,
    sealer: &dyn Sealer,
    notification: &Notification,
) -> Result<(), Error> {
    let seal = |secret: &Option<String>| {
        secret
            .as_deref()
            .map(|plain| sealer.seal(plain).map(|sealed| format!("{SEALED}{sealed}")))
            .transpose()
    };
    notifications::Entity::insert(notifications::ActiveModel {
        id: Set(notification.id.to_string()),
        organization_id: Set(notification.organization_id.to_string()),
        kind: Set(notification.kind.as_str().to_owned()),
        recipient: Set(notification.recipient.clone()),
        token: Set(seal(&notification.token)?),
        code: Set(seal(&notification.code)?),
        created_at: Set(notification.created_at),
        acknowledged_at: Set(None),
    })
    .exec(db)
    .await
    .map(|_| ())
    .map_err(internal)
}

#[async_trait]
impl NotificationStore for SqlStore {
    async fn pending_notifications(&self, limit: u64) -> Result<Vec<Notification>, Error> {
        let rows = notifications::Entity::find()
            .filter(notifications::Column::AcknowledgedAt.is_null())
            .order_by_asc(notifications::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(internal)?;
        let open = |stored: Option<String>| match stored {
            Some(text) => match text.strip_prefix(SEALED) {
                Some(sealed) => self.sealer.open(sealed).map(Some),
                None => Ok(Some(text)),
            },
            None => Ok(None),
        };
        rows.into_iter()
            .map(|row| {
                Ok(Notification {
                    id: NotificationId(uuid(&row.id)?),
                    organization_id: OrganizationId(uuid(&row.organization_id)?),
                    kind: NotificationKind::parse(&row.kind).ok_or_else(|| {
                        Error::internal(format!("stored notification kind {:?}", row.kind))
                    })?,
                    recipient: row.recipient,
                    token: open(row.token)?,
                    code: open(row.code)?,
                    created_at: row.created_at,
                })
            })
            .collect()
    }

    async fn acknowledge_notifications(
        &self,
        ids: &[NotificationId],
        at: DateTime<Utc>,
    ) -> Result<u64, Error> {
        let result = notifications::Entity::update_many()
            .col_expr(notifications::Column::AcknowledgedAt, Expr::value(at))
            .col_expr(
                notifications::Column::Token,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                notifications::Column::Code,
                Expr::value(Option::<String>::None),
            )
            .filter(notifications::Column::Id.is_in(ids.iter().map(ToString::to_string)))
            .filter(notifications::Column::AcknowledgedAt.is_null())
            .exec(&self.db)
            .await
            .map_err(internal)?;
        Ok(result.rows_affected)
    }
}
