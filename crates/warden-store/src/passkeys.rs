//! `PasskeyStore`: passkey credentials and WebAuthn ceremonies. A ceremony is spent by a
//! conditional update inside a transaction, so two replicas never both finish it.
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, sea_query::Expr,
};
use warden_core::{
    Error,
    ids::{CeremonyId, ChallengeId, FactorId, OrganizationId, UserId},
    model::{AuditEvent, Ceremony, CeremonyKind, PasskeyCredential, SecondFactor},
    ports::PasskeyStore,
};

use crate::{
    SqlStore,
    audit::insert_audit,
    convert::uuid,
    internal,
    tables::{passkey_credentials, second_factors, webauthn_ceremonies},
    unique_violation_as,
};

fn ceremony(row: webauthn_ceremonies::Model) -> Result<Ceremony, Error> {
    let id = |text: &Option<String>| text.as_deref().map(uuid).transpose();
    Ok(Ceremony {
        id: CeremonyId(uuid(&row.id)?),
        kind: CeremonyKind::parse(&row.kind)
            .ok_or_else(|| Error::internal(format!("stored ceremony kind {:?}", row.kind)))?,
        organization_id: id(&row.organization_id)?.map(OrganizationId),
        user_id: id(&row.user_id)?.map(UserId),
        challenge_id: id(&row.challenge_id)?.map(ChallengeId),
        state: row.state,
        created_at: row.created_at,
        expires_at: row.expires_at,
    })
}

fn passkey(row: passkey_credentials::Model) -> Result<PasskeyCredential, Error> {
    Ok(PasskeyCredential {
        factor_id: FactorId(uuid(&row.factor_id)?),
        organization_id: OrganizationId(uuid(&row.organization_id)?),
        user_id: UserId(uuid(&row.user_id)?),
        credential_id: row.credential_id,
        credential: row.credential,
        sign_count: row.sign_count,
    })
}

/// Spends ceremony `id` if it is unused and open at `now`; the row as it was, or `None`.
async fn spend(
    txn: &DatabaseTransaction,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<webauthn_ceremonies::Model>, Error> {
    let spent = webauthn_ceremonies::Entity::update_many()
        .col_expr(webauthn_ceremonies::Column::UsedAt, Expr::value(now))
        .filter(webauthn_ceremonies::Column::Id.eq(id))
        .filter(webauthn_ceremonies::Column::UsedAt.is_null())
        .filter(webauthn_ceremonies::Column::ExpiresAt.gt(now))
        .exec(txn)
        .await
        .map_err(internal)?;
    if spent.rows_affected != 1 {
        return Ok(None);
    }
    webauthn_ceremonies::Entity::find_by_id(id.to_owned())
        .one(txn)
        .await
        .map_err(internal)
}

#[async_trait]
impl PasskeyStore for SqlStore {
    async fn create_ceremony(&self, new: &Ceremony) -> Result<(), Error> {
        let txn = self.begin().await?;
        if let Some(challenge) = new.challenge_id {
            // Only the newest options of a challenge count: earlier ones can no longer finish.
            webauthn_ceremonies::Entity::update_many()
                .col_expr(
                    webauthn_ceremonies::Column::UsedAt,
                    Expr::value(new.created_at),
                )
                .filter(webauthn_ceremonies::Column::ChallengeId.eq(challenge.to_string()))
                .filter(webauthn_ceremonies::Column::UsedAt.is_null())
                .exec(&txn)
                .await
                .map_err(internal)?;
        }
        webauthn_ceremonies::Entity::insert(webauthn_ceremonies::ActiveModel {
            id: Set(new.id.to_string()),
            kind: Set(new.kind.as_str().to_owned()),
            organization_id: Set(new.organization_id.map(|id| id.to_string())),
            user_id: Set(new.user_id.map(|id| id.to_string())),
            challenge_id: Set(new.challenge_id.map(|id| id.to_string())),
            state: Set(new.state.clone()),
            created_at: Set(new.created_at),
            expires_at: Set(new.expires_at),
            used_at: Set(None),
        })
        .exec(&txn)
        .await
        .map_err(internal)?;
        txn.commit().await.map_err(internal)
    }

    async fn take_ceremony(
        &self,
        id: CeremonyId,
        kind: CeremonyKind,
        now: DateTime<Utc>,
    ) -> Result<Option<Ceremony>, Error> {
        let txn = self.begin().await?;
        let row = spend(&txn, &id.to_string(), now).await?;
        txn.commit().await.map_err(internal)?;
        let found = row.map(ceremony).transpose()?;
        // Another kind's ceremony is spent all the same: it was presented where it does not belong.
        Ok(found.filter(|ceremony| ceremony.kind == kind))
    }

    async fn take_challenge_ceremony(
        &self,
        challenge: ChallengeId,
        now: DateTime<Utc>,
    ) -> Result<Option<Ceremony>, Error> {
        let txn = self.begin().await?;
        let newest = webauthn_ceremonies::Entity::find()
            .filter(webauthn_ceremonies::Column::ChallengeId.eq(challenge.to_string()))
            .filter(webauthn_ceremonies::Column::Kind.eq(CeremonyKind::SecondFactor.as_str()))
            .filter(webauthn_ceremonies::Column::UsedAt.is_null())
            .order_by_desc(webauthn_ceremonies::Column::CreatedAt)
            .one(&txn)
            .await
            .map_err(internal)?;
        let Some(newest) = newest else {
            return Ok(None);
        };
        let row = spend(&txn, &newest.id, now).await?;
        txn.commit().await.map_err(internal)?;
        row.map(ceremony).transpose()
    }

    async fn create_passkey(
        &self,
        factor: &SecondFactor,
        new: &PasskeyCredential,
        audit: &AuditEvent,
    ) -> Result<(), Error> {
        let txn = self.begin().await?;
        second_factors::Entity::insert(second_factors::ActiveModel {
            id: Set(factor.id.to_string()),
            organization_id: Set(factor.organization_id.to_string()),
            user_id: Set(factor.user_id.to_string()),
            method: Set(factor.method.as_str().to_owned()),
            confirmed: Set(factor.confirmed),
            phone_number: Set(None),
            encrypted_secret: Set(None),
            last_used_step: Set(None),
            pending_code_hash: Set(None),
            pending_code_expires_at: Set(None),
            failed_attempts: Set(0),
            name: Set(factor.name.clone()),
            created_at: Set(factor.created_at),
        })
        .exec(&txn)
        .await
        .map_err(internal)?;
        passkey_credentials::Entity::insert(passkey_credentials::ActiveModel {
            factor_id: Set(new.factor_id.to_string()),
            organization_id: Set(new.organization_id.to_string()),
            user_id: Set(new.user_id.to_string()),
            credential_id: Set(new.credential_id.clone()),
            credential: Set(new.credential.clone()),
            sign_count: Set(new.sign_count),
        })
        .exec(&txn)
        .await
        .map_err(unique_violation_as(Error::AlreadyExists("passkey")))?;
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(internal)
    }

    async fn list_passkeys(
        &self,
        organization: OrganizationId,
        user: UserId,
    ) -> Result<Vec<PasskeyCredential>, Error> {
        let rows = passkey_credentials::Entity::find()
            .filter(passkey_credentials::Column::OrganizationId.eq(organization.to_string()))
            .filter(passkey_credentials::Column::UserId.eq(user.to_string()))
            .order_by_asc(passkey_credentials::Column::FactorId)
            .all(&self.db)
            .await
            .map_err(internal)?;
        rows.into_iter().map(passkey).collect()
    }

    async fn find_passkey(&self, credential_id: &str) -> Result<Option<PasskeyCredential>, Error> {
        let row = passkey_credentials::Entity::find()
            .filter(passkey_credentials::Column::CredentialId.eq(credential_id))
            .one(&self.db)
            .await
            .map_err(internal)?;
        row.map(passkey).transpose()
    }

    async fn record_passkey_use(
        &self,
        factor: FactorId,
        credential: &str,
        sign_count: i64,
    ) -> Result<bool, Error> {
        // A counter of 0 means the authenticator keeps none (synced passkeys): nothing to order.
        let forward = if sign_count == 0 {
            Condition::all().add(passkey_credentials::Column::SignCount.eq(0))
        } else {
            Condition::all().add(passkey_credentials::Column::SignCount.lt(sign_count))
        };
        let updated = passkey_credentials::Entity::update_many()
            .col_expr(
                passkey_credentials::Column::Credential,
                Expr::value(credential),
            )
            .col_expr(
                passkey_credentials::Column::SignCount,
                Expr::value(sign_count),
            )
            .filter(passkey_credentials::Column::FactorId.eq(factor.to_string()))
            .filter(forward)
            .exec(&self.db)
            .await
            .map_err(internal)?;
        Ok(updated.rows_affected == 1)
    }
}
