//! Revisions: one sequence for the deployment, issued inside every write that can change an
//! authorization answer, as the last statements before its commit (SPEC §5).
//!
//! `revision_sequence` is one row: taking it orders those commits (revision N commits before N + 1
//! is issued), so "every change up to N" is a complete, gap-free prefix that a replica can poll
//! (`changes_after`). Each revision also sets its organisation's row in `organization_revisions`
//! (what a cached subject is keyed by) and appends what it changed to `revision_changes`.
//! The revision a request's writes were given is kept in its `receipt` for the consistency token.
use std::{cell::Cell, future::Future};

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
    sea_query::{Expr, OnConflict},
};
use warden_core::{Error, ids::OrganizationId, ports::Change};

use crate::{
    SqlStore,
    convert::uuid,
    internal,
    tables::{organization_revisions, revision_changes},
};

tokio::task_local! {
    static RECEIPT: Cell<Option<i64>>;
}

/// Runs `request` with a receipt: the last revision its writes were issued, if any.
pub async fn with_receipt<F: Future>(request: F) -> (F::Output, Option<i64>) {
    RECEIPT
        .scope(Cell::new(None), async {
            let output = request.await;
            (output, RECEIPT.with(Cell::get))
        })
        .await
}

/// The revision the current request's writes were issued so far (`None` outside a receipt).
pub fn receipt() -> Option<i64> {
    RECEIPT.try_with(Cell::get).ok().flatten()
}

/// What a revision changed: its organisation (`None` for all of them), its action and target.
pub(crate) struct Changed<'a> {
    pub organization: Option<OrganizationId>,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: &'a str,
    pub at: DateTime<Utc>,
}

/// Issues the next revision for `changed` inside the caller's transaction. Called last: the
/// sequence row stays locked until the commit, and no write waits on another while holding it.
pub(crate) async fn issue(db: &impl ConnectionTrait, changed: Changed<'_>) -> Result<i64, Error> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "UPDATE revision_sequence SET revision = revision + 1 WHERE id = 1 RETURNING revision",
        ))
        .await
        .map_err(internal)?
        .ok_or_else(|| Error::internal("revision_sequence has no row"))?;
    let revision: i64 = row.try_get("", "revision").map_err(internal)?;
    match changed.organization {
        Some(organization) => {
            organization_revisions::Entity::insert(organization_revisions::ActiveModel {
                organization_id: Set(organization.to_string()),
                revision: Set(revision),
            })
            .on_conflict(
                OnConflict::column(organization_revisions::Column::OrganizationId)
                    .update_column(organization_revisions::Column::Revision)
                    .to_owned(),
            )
            .exec_without_returning(db)
            .await
            .map_err(internal)?;
        }
        None => {
            organization_revisions::Entity::update_many()
                .col_expr(
                    organization_revisions::Column::Revision,
                    Expr::val(revision),
                )
                .exec(db)
                .await
                .map_err(internal)?;
        }
    }
    revision_changes::Entity::insert(revision_changes::ActiveModel {
        revision: Set(revision),
        organization_id: Set(changed.organization.map(|id| id.to_string())),
        action: Set(changed.action.to_owned()),
        target_type: Set(changed.target_type.to_owned()),
        target_id: Set(changed.target_id.to_owned()),
        created_at: Set(changed.at),
    })
    .exec_without_returning(db)
    .await
    .map_err(internal)?;
    let _ = RECEIPT.try_with(|receipt| receipt.set(Some(revision)));
    Ok(revision)
}

impl SqlStore {
    pub(crate) async fn all_revisions(&self) -> Result<(i64, Vec<(OrganizationId, i64)>), Error> {
        // The latest revision first: anything issued after it is delivered again by `changes_after`.
        let latest = self
            .db
            .query_one_raw(Statement::from_string(
                self.db.get_database_backend(),
                "SELECT revision FROM revision_sequence WHERE id = 1",
            ))
            .await
            .map_err(internal)?
            .ok_or_else(|| Error::internal("revision_sequence has no row"))?
            .try_get::<i64>("", "revision")
            .map_err(internal)?;
        let rows = organization_revisions::Entity::find()
            .all(&self.db)
            .await
            .map_err(internal)?;
        let organizations = rows
            .into_iter()
            .map(|row| Ok((OrganizationId(uuid(&row.organization_id)?), row.revision)))
            .collect::<Result<_, Error>>()?;
        Ok((latest, organizations))
    }

    pub(crate) async fn changes(&self, revision: i64, limit: u64) -> Result<Vec<Change>, Error> {
        let rows = revision_changes::Entity::find()
            .filter(revision_changes::Column::Revision.gt(revision))
            .order_by_asc(revision_changes::Column::Revision)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(internal)?;
        rows.into_iter()
            .map(|row| {
                Ok(Change {
                    revision: row.revision,
                    organization: row
                        .organization_id
                        .as_deref()
                        .map(uuid)
                        .transpose()?
                        .map(OrganizationId),
                    action: row.action,
                    target_type: row.target_type,
                    target_id: row.target_id,
                })
            })
            .collect()
    }
}
