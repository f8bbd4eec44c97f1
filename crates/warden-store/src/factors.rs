//! `FactorStore`: second factors, sign-in challenges and recovery codes. Every "use once" is a
//! conditional update, so concurrent attempts cannot both succeed.
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder,
    sea_query::{Expr, ExprTrait as _},
};
use warden_core::{
    Error,
    ids::{ChallengeId, FactorId, OrganizationId, UserId},
    model::{
        AuditEvent, Challenge, Notification, PendingCode, RecoveryCode, SecondFactor,
        SecondFactorMethod,
    },
    ports::FactorStore,
};

use crate::{
    SqlStore,
    audit::insert_audit,
    convert::uuid,
    internal,
    notifications::insert_notification,
    tables::{passkey_credentials, recovery_codes, second_factors, sign_in_challenges},
};

fn factor(row: &second_factors::Model) -> Result<SecondFactor, Error> {
    Ok(SecondFactor {
        id: FactorId(uuid(&row.id)?),
        organization_id: OrganizationId(uuid(&row.organization_id)?),
        user_id: UserId(uuid(&row.user_id)?),
        method: SecondFactorMethod::parse(&row.method)
            .ok_or_else(|| Error::internal(format!("stored method {:?}", row.method)))?,
        confirmed: row.confirmed,
        phone_number: row.phone_number.clone(),
        encrypted_secret: row.encrypted_secret.clone(),
        name: row.name.clone(),
        created_at: row.created_at,
    })
}

fn challenge(row: sign_in_challenges::Model) -> Result<Challenge, Error> {
    let code = match (row.code_hash, row.code_factor_id, row.code_expires_at) {
        (Some(hash), Some(factor), Some(expires_at)) => Some(PendingCode {
            hash,
            factor: FactorId(uuid(&factor)?),
            expires_at,
            failed_attempts: row.code_failed_attempts,
        }),
        _ => None,
    };
    Ok(Challenge {
        id: ChallengeId(uuid(&row.id)?),
        organization_id: OrganizationId(uuid(&row.organization_id)?),
        user_id: UserId(uuid(&row.user_id)?),
        created_at: row.created_at,
        expires_at: row.expires_at,
        failed_attempts: row.failed_attempts,
        code,
        completed: row.completed_at.is_some(),
    })
}

#[async_trait]
impl FactorStore for SqlStore {
    async fn create_factor(
        &self,
        new: &SecondFactor,
        confirmation: Option<(&PendingCode, &Notification)>,
        audit: &AuditEvent,
    ) -> Result<(), Error> {
        let txn = self.begin().await?;
        second_factors::Entity::insert(second_factors::ActiveModel {
            id: Set(new.id.to_string()),
            organization_id: Set(new.organization_id.to_string()),
            user_id: Set(new.user_id.to_string()),
            method: Set(new.method.as_str().to_owned()),
            confirmed: Set(new.confirmed),
            phone_number: Set(new.phone_number.clone()),
            encrypted_secret: Set(new.encrypted_secret.clone()),
            name: Set(new.name.clone()),
            last_used_step: Set(None),
            pending_code_hash: Set(confirmation.map(|(code, _)| code.hash.clone())),
            pending_code_expires_at: Set(confirmation.map(|(code, _)| code.expires_at)),
            failed_attempts: Set(0),
            created_at: Set(new.created_at),
        })
        .exec(&txn)
        .await
        .map_err(internal)?;
        if let Some((_, notification)) = confirmation {
            insert_notification(&txn, self.sealer.as_ref(), notification).await?;
        }
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(internal)
    }

    async fn list_factors(
        &self,
        organization: OrganizationId,
        user: UserId,
    ) -> Result<Vec<SecondFactor>, Error> {
        let rows = second_factors::Entity::find()
            .filter(second_factors::Column::OrganizationId.eq(organization.to_string()))
            .filter(second_factors::Column::UserId.eq(user.to_string()))
            .order_by_asc(second_factors::Column::Id)
            .all(&self.db)
            .await
            .map_err(internal)?;
        rows.iter().map(factor).collect()
    }

    async fn find_factor(
        &self,
        organization: OrganizationId,
        user: UserId,
        id: FactorId,
    ) -> Result<Option<(SecondFactor, Option<PendingCode>)>, Error> {
        let row = second_factors::Entity::find_by_id(id.to_string())
            .filter(second_factors::Column::OrganizationId.eq(organization.to_string()))
            .filter(second_factors::Column::UserId.eq(user.to_string()))
            .one(&self.db)
            .await
            .map_err(internal)?;
        let Some(row) = row else { return Ok(None) };
        let pending = match (&row.pending_code_hash, row.pending_code_expires_at) {
            (Some(hash), Some(expires_at)) => Some(PendingCode {
                hash: hash.clone(),
                factor: id,
                expires_at,
                failed_attempts: row.failed_attempts,
            }),
            _ => None,
        };
        Ok(Some((factor(&row)?, pending)))
    }

    async fn record_factor_failure(&self, id: FactorId) -> Result<i64, Error> {
        let txn = self.begin().await?;
        second_factors::Entity::update_many()
            .col_expr(
                second_factors::Column::FailedAttempts,
                Expr::col(second_factors::Column::FailedAttempts).add(1),
            )
            .filter(second_factors::Column::Id.eq(id.to_string()))
            .exec(&txn)
            .await
            .map_err(internal)?;
        let row = second_factors::Entity::find_by_id(id.to_string())
            .one(&txn)
            .await
            .map_err(internal)?;
        txn.commit().await.map_err(internal)?;
        Ok(row.map_or(0, |row| row.failed_attempts))
    }

    async fn confirm_factor(
        &self,
        id: FactorId,
        audit: &AuditEvent,
    ) -> Result<SecondFactor, Error> {
        let txn = self.begin().await?;
        second_factors::Entity::update_many()
            .col_expr(second_factors::Column::Confirmed, Expr::value(true))
            .col_expr(
                second_factors::Column::PendingCodeHash,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                second_factors::Column::PendingCodeExpiresAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(second_factors::Column::Id.eq(id.to_string()))
            .exec(&txn)
            .await
            .map_err(internal)?;
        insert_audit(&txn, audit).await?;
        let row = second_factors::Entity::find_by_id(id.to_string())
            .one(&txn)
            .await
            .map_err(internal)?;
        let row = row.ok_or(Error::NotFound("factor"))?;
        txn.commit().await.map_err(internal)?;
        factor(&row)
    }

    async fn remove_factor(
        &self,
        organization: OrganizationId,
        user: UserId,
        id: FactorId,
        audit: &AuditEvent,
    ) -> Result<(), Error> {
        let txn = self.begin().await?;
        // The passkey credential goes with its factor (the foreign key cascades on PostgreSQL;
        // SQLite may run without foreign keys enforced).
        passkey_credentials::Entity::delete_many()
            .filter(passkey_credentials::Column::FactorId.eq(id.to_string()))
            .filter(passkey_credentials::Column::OrganizationId.eq(organization.to_string()))
            .filter(passkey_credentials::Column::UserId.eq(user.to_string()))
            .exec(&txn)
            .await
            .map_err(internal)?;
        let deleted = second_factors::Entity::delete_many()
            .filter(second_factors::Column::Id.eq(id.to_string()))
            .filter(second_factors::Column::OrganizationId.eq(organization.to_string()))
            .filter(second_factors::Column::UserId.eq(user.to_string()))
            .exec(&txn)
            .await
            .map_err(internal)?;
        if deleted.rows_affected == 0 {
            return Err(Error::NotFound("factor"));
        }
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(internal)
    }

    async fn use_totp_step(&self, id: FactorId, step: i64) -> Result<bool, Error> {
        let used = second_factors::Entity::update_many()
            .col_expr(second_factors::Column::LastUsedStep, Expr::value(step))
            .filter(second_factors::Column::Id.eq(id.to_string()))
            .filter(
                Condition::any()
                    .add(second_factors::Column::LastUsedStep.is_null())
                    .add(second_factors::Column::LastUsedStep.lt(step)),
            )
            .exec(&self.db)
            .await
            .map_err(internal)?;
        Ok(used.rows_affected == 1)
    }

    async fn users_with_confirmed_factor(
        &self,
        organization: OrganizationId,
        users: &[UserId],
    ) -> Result<Vec<UserId>, Error> {
        let rows = second_factors::Entity::find()
            .filter(second_factors::Column::OrganizationId.eq(organization.to_string()))
            .filter(second_factors::Column::UserId.is_in(users.iter().map(ToString::to_string)))
            .filter(second_factors::Column::Confirmed.eq(true))
            .all(&self.db)
            .await
            .map_err(internal)?;
        let mut ids = rows
            .iter()
            .map(|row| uuid(&row.user_id).map(UserId))
            .collect::<Result<Vec<_>, _>>()?;
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    async fn create_challenge(&self, new: &Challenge) -> Result<(), Error> {
        sign_in_challenges::Entity::insert(sign_in_challenges::ActiveModel {
            id: Set(new.id.to_string()),
            organization_id: Set(new.organization_id.to_string()),
            user_id: Set(new.user_id.to_string()),
            created_at: Set(new.created_at),
            expires_at: Set(new.expires_at),
            failed_attempts: Set(0),
            code_hash: Set(None),
            code_factor_id: Set(None),
            code_expires_at: Set(None),
            code_failed_attempts: Set(0),
            completed_at: Set(None),
        })
        .exec(&self.db)
        .await
        .map(|_| ())
        .map_err(internal)
    }

    async fn find_challenge(&self, id: ChallengeId) -> Result<Option<Challenge>, Error> {
        let row = sign_in_challenges::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
            .map_err(internal)?;
        row.map(challenge).transpose()
    }

    async fn set_challenge_code(
        &self,
        id: ChallengeId,
        code: &PendingCode,
        notification: &Notification,
    ) -> Result<(), Error> {
        let txn = self.begin().await?;
        let updated = sign_in_challenges::Entity::update_many()
            .col_expr(
                sign_in_challenges::Column::CodeHash,
                Expr::value(code.hash.as_str()),
            )
            .col_expr(
                sign_in_challenges::Column::CodeFactorId,
                Expr::value(code.factor.to_string()),
            )
            .col_expr(
                sign_in_challenges::Column::CodeExpiresAt,
                Expr::value(code.expires_at),
            )
            .col_expr(
                sign_in_challenges::Column::CodeFailedAttempts,
                Expr::value(0i64),
            )
            .filter(sign_in_challenges::Column::Id.eq(id.to_string()))
            .filter(sign_in_challenges::Column::CompletedAt.is_null())
            .exec(&txn)
            .await
            .map_err(internal)?;
        if updated.rows_affected == 0 {
            return Err(Error::NotFound("challenge"));
        }
        insert_notification(&txn, self.sealer.as_ref(), notification).await?;
        txn.commit().await.map_err(internal)
    }

    async fn record_challenge_failure(&self, id: ChallengeId) -> Result<i64, Error> {
        let txn = self.begin().await?;
        sign_in_challenges::Entity::update_many()
            .col_expr(
                sign_in_challenges::Column::FailedAttempts,
                Expr::col(sign_in_challenges::Column::FailedAttempts).add(1),
            )
            .filter(sign_in_challenges::Column::Id.eq(id.to_string()))
            .exec(&txn)
            .await
            .map_err(internal)?;
        let row = sign_in_challenges::Entity::find_by_id(id.to_string())
            .one(&txn)
            .await
            .map_err(internal)?;
        txn.commit().await.map_err(internal)?;
        Ok(row.map_or(0, |row| row.failed_attempts))
    }

    async fn complete_challenge(&self, id: ChallengeId, at: DateTime<Utc>) -> Result<bool, Error> {
        let done = sign_in_challenges::Entity::update_many()
            .col_expr(sign_in_challenges::Column::CompletedAt, Expr::value(at))
            .filter(sign_in_challenges::Column::Id.eq(id.to_string()))
            .filter(sign_in_challenges::Column::CompletedAt.is_null())
            .exec(&self.db)
            .await
            .map_err(internal)?;
        Ok(done.rows_affected == 1)
    }

    async fn issue_recovery_code(
        &self,
        code: &RecoveryCode,
        audit: &AuditEvent,
    ) -> Result<(), Error> {
        let txn = self.begin().await?;
        recovery_codes::Entity::update_many()
            .col_expr(recovery_codes::Column::UsedAt, Expr::value(code.created_at))
            .filter(recovery_codes::Column::UserId.eq(code.user_id.to_string()))
            .filter(recovery_codes::Column::UsedAt.is_null())
            .exec(&txn)
            .await
            .map_err(internal)?;
        recovery_codes::Entity::insert(recovery_codes::ActiveModel {
            id: Set(code.id.to_string()),
            organization_id: Set(code.organization_id.to_string()),
            user_id: Set(code.user_id.to_string()),
            code_hash: Set(code.code_hash.clone()),
            created_at: Set(code.created_at),
            expires_at: Set(code.expires_at),
            used_at: Set(None),
        })
        .exec(&txn)
        .await
        .map_err(internal)?;
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(internal)
    }

    async fn has_recovery_code(
        &self,
        organization: OrganizationId,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let row = recovery_codes::Entity::find()
            .filter(recovery_codes::Column::OrganizationId.eq(organization.to_string()))
            .filter(recovery_codes::Column::UserId.eq(user.to_string()))
            .filter(recovery_codes::Column::UsedAt.is_null())
            .filter(recovery_codes::Column::ExpiresAt.gt(now))
            .one(&self.db)
            .await
            .map_err(internal)?;
        Ok(row.is_some())
    }

    async fn use_recovery_code(
        &self,
        organization: OrganizationId,
        user: UserId,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let used = recovery_codes::Entity::update_many()
            .col_expr(recovery_codes::Column::UsedAt, Expr::value(now))
            .filter(recovery_codes::Column::OrganizationId.eq(organization.to_string()))
            .filter(recovery_codes::Column::UserId.eq(user.to_string()))
            .filter(recovery_codes::Column::CodeHash.eq(code_hash))
            .filter(recovery_codes::Column::UsedAt.is_null())
            .filter(recovery_codes::Column::ExpiresAt.gt(now))
            .exec(&self.db)
            .await
            .map_err(internal)?;
        Ok(used.rows_affected == 1)
    }
}
