//! `PurgeStore`: deletes rows that no longer matter (SPEC §7), in bounded batches. Each batch is one
//! short statement; on PostgreSQL the rows are picked `FOR UPDATE SKIP LOCKED`, so replicas sweeping
//! at the same time split the work instead of waiting on each other.
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DbBackend,
    sea_query::{
        Alias, Condition, Expr, ExprTrait as _, LockBehavior, LockType, Query, SelectStatement,
    },
};
use warden_core::{Error, ports::PurgeStore};

use crate::{SqlStore, internal};

fn col(name: &str) -> Expr {
    Expr::col(Alias::new(name))
}

/// Sessions that ended (revoked or expired) before `cutoff`.
fn ended_sessions(cutoff: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(col("revoked_at").lt(cutoff))
        .add(col("expires_at").lt(cutoff))
}

impl SqlStore {
    /// Deletes at most `batch` rows of `table` (primary key `key`) that match `condition`.
    async fn purge_batch(
        &self,
        table: &str,
        key: &str,
        condition: Condition,
        batch: u64,
    ) -> Result<u64, Error> {
        let mut chosen: SelectStatement = Query::select()
            .column(Alias::new(key))
            .from(Alias::new(table))
            .cond_where(condition)
            .limit(batch)
            .to_owned();
        if self.db.get_database_backend() == DbBackend::Postgres {
            chosen.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        let delete = Query::delete()
            .from_table(Alias::new(table))
            .and_where(col(key).in_subquery(chosen))
            .to_owned();
        let result = self.db.execute(&delete).await.map_err(internal)?;
        Ok(result.rows_affected())
    }
}

#[async_trait]
impl PurgeStore for SqlStore {
    async fn purge(
        &self,
        now: DateTime<Utc>,
        cutoff: DateTime<Utc>,
        batch: u64,
    ) -> Result<u64, Error> {
        let ended_session_ids = Query::select()
            .column(Alias::new("id"))
            .from(Alias::new("sessions"))
            .cond_where(ended_sessions(cutoff))
            .to_owned();
        // Spent refresh tokens go before their sessions (they reference them): once a session has
        // ended, replaying its old refresh tokens finds nothing to refresh anyway.
        let sweeps: [(&str, &str, Condition); 8] = [
            (
                "throttles",
                "key",
                Condition::all().add(col("last_attempt_at").lt(cutoff)).add(
                    Condition::any()
                        .add(col("locked_until").is_null())
                        .add(col("locked_until").lt(now)),
                ),
            ),
            (
                "sign_in_challenges",
                "id",
                Condition::all().add(col("expires_at").lt(cutoff)),
            ),
            (
                "webauthn_ceremonies",
                "id",
                Condition::all().add(col("expires_at").lt(cutoff)),
            ),
            (
                "sso_used_tokens",
                "token_hash",
                Condition::all().add(col("expires_at").lt(cutoff)),
            ),
            (
                "spent_refresh_tokens",
                "token_hash",
                Condition::all().add(col("session_id").in_subquery(ended_session_ids)),
            ),
            ("sessions", "id", ended_sessions(cutoff)),
            (
                "password_resets",
                "id",
                Condition::all().add(col("expires_at").lt(cutoff)),
            ),
            (
                "notifications",
                "id",
                Condition::all().add(col("acknowledged_at").lt(cutoff)),
            ),
        ];
        let mut purged = 0;
        for (table, key, condition) in sweeps {
            purged += self.purge_batch(table, key, condition, batch).await?;
        }
        Ok(purged)
    }
}
