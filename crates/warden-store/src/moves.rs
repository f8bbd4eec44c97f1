//! Moving a user to another organisation (SPEC §2, operator only), in one transaction: the person
//! keeps their password and factors, and leaves nothing in the old organisation that could still
//! sign them in there or allow them anything.
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, sea_query::Expr,
};
use warden_core::{
    Error,
    model::{AuditEvent, User, UserMove, UserStatus},
    users::MOVABLE,
};

use crate::{
    SqlStore,
    audit::insert_audit,
    grants::replace_grants,
    internal,
    sessions::revoke_sessions,
    tables::{
        direct_permissions, group_members, organizations, password_resets, recovery_codes,
        second_factors, sign_in_challenges, sso_identities, user_grants, users,
    },
    users::{missing_or, reload_user},
};

impl SqlStore {
    pub(crate) async fn move_user_now(
        &self,
        movement: &UserMove,
        left: &AuditEvent,
        joined: &AuditEvent,
    ) -> Result<User, Error> {
        let (user, from, to) = (
            movement.user.to_string(),
            movement.from.to_string(),
            movement.to.to_string(),
        );
        let txn = self.begin().await?;
        // The old organisation's row first, as ownership changes lock it: a concurrent transfer to
        // this user runs wholly before or after, and `owner_of IS NULL` below sees its outcome.
        organizations::Entity::find_by_id(from.clone())
            .lock_exclusive()
            .one(&txn)
            .await
            .map_err(internal)?
            .ok_or(Error::NotFound("user"))?;
        organizations::Entity::find_by_id(to.clone())
            .lock_shared()
            .one(&txn)
            .await
            .map_err(internal)?
            .ok_or(Error::NotFound("target_organization_id"))?;
        let moved = users::Entity::update_many()
            .col_expr(users::Column::OrganizationId, Expr::value(to.as_str()))
            .filter(users::Column::Id.eq(user.as_str()))
            .filter(users::Column::OrganizationId.eq(from.as_str()))
            .filter(users::Column::OwnerOf.is_null())
            .filter(users::Column::Status.is_in(MOVABLE.iter().map(|status| status.as_str())))
            .exec(&txn)
            .await
            .map_err(internal)?;
        if moved.rows_affected == 0 {
            return Err(missing_or(&txn, movement.from, movement.user, refusal).await);
        }
        // Every session of the old organisation ends with the move (SPEC §2).
        revoke_sessions(&txn, movement.user, None, left.created_at).await?;
        leave_old_organisation(&txn, &user, left).await?;
        bring_factors(&txn, &user, &to).await?;
        replace_grants::<user_grants::Entity>(&txn, movement.to, &user, &movement.grants).await?;
        replace_grants::<direct_permissions::Entity>(
            &txn,
            movement.to,
            &user,
            &movement.direct_grants,
        )
        .await?;
        // Both organisations' answers change: each row issues its organisation a revision.
        insert_audit(&txn, left).await?;
        insert_audit(&txn, joined).await?;
        let moved = reload_user(&txn, movement.to, movement.user).await?;
        txn.commit().await.map_err(internal)?;
        Ok(moved)
    }
}

/// Why a user of the old organisation did not move.
fn refusal(row: users::Model) -> Error {
    if row.owner_of.is_some() {
        return Error::FailedPrecondition("user: is the owner; hand ownership over first".into());
    }
    if row.status == UserStatus::Pending.as_str() {
        return Error::FailedPrecondition(
            "user: has a pending invitation; delete it and invite them in the other organisation"
                .into(),
        );
    }
    Error::FailedPrecondition(format!("user: is {}", row.status))
}

/// Drops what tied the user to the old organisation besides grants: group memberships, sign-in
/// challenges under way, unused password resets and SSO identities (its identity provider's).
async fn leave_old_organisation(
    db: &impl ConnectionTrait,
    user: &str,
    left: &AuditEvent,
) -> Result<(), Error> {
    group_members::Entity::delete_many()
        .filter(group_members::Column::UserId.eq(user))
        .exec(db)
        .await
        .map_err(internal)?;
    sign_in_challenges::Entity::delete_many()
        .filter(sign_in_challenges::Column::UserId.eq(user))
        .exec(db)
        .await
        .map_err(internal)?;
    password_resets::Entity::update_many()
        .col_expr(
            password_resets::Column::UsedAt,
            Expr::value(left.created_at),
        )
        .filter(password_resets::Column::UserId.eq(user))
        .filter(password_resets::Column::UsedAt.is_null())
        .exec(db)
        .await
        .map_err(internal)?;
    sso_identities::Entity::delete_many()
        .filter(sso_identities::Column::UserId.eq(user))
        .exec(db)
        .await
        .map_err(internal)?;
    Ok(())
}

/// The person's second factors and recovery codes come along to `to`.
async fn bring_factors(db: &impl ConnectionTrait, user: &str, to: &str) -> Result<(), Error> {
    second_factors::Entity::update_many()
        .col_expr(second_factors::Column::OrganizationId, Expr::value(to))
        .filter(second_factors::Column::UserId.eq(user))
        .exec(db)
        .await
        .map_err(internal)?;
    recovery_codes::Entity::update_many()
        .col_expr(recovery_codes::Column::OrganizationId, Expr::value(to))
        .filter(recovery_codes::Column::UserId.eq(user))
        .exec(db)
        .await
        .map_err(internal)?;
    Ok(())
}
