//! `ThrottleStore`: attempt counters shared by every replica through the database. Each attempt
//! updates its rows inside one transaction (row locks on PostgreSQL, a single writer on SQLite), so
//! concurrent attempts are counted one after the other.
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, EntityTrait, QueryFilter,
    sea_query::{Expr, OnConflict},
};
use warden_core::{
    Error,
    ports::ThrottleStore,
    throttle::{self, Counter, Verdict},
};

use crate::{SqlStore, internal, tables::throttles};

#[async_trait]
impl ThrottleStore for SqlStore {
    async fn register_attempt(
        &self,
        keys: &[String],
        now: DateTime<Utc>,
    ) -> Result<Option<chrono::Duration>, Error> {
        let txn = self.begin().await?;
        let mut counters = Vec::with_capacity(keys.len());
        for key in keys {
            // Creates the row if needed, then touches it so PostgreSQL locks it until commit.
            throttles::Entity::insert(throttles::ActiveModel {
                key: Set(key.clone()),
                failures: Set(0),
                last_attempt_at: Set(DateTime::<Utc>::UNIX_EPOCH),
                locked_until: Set(None),
            })
            .on_conflict(
                OnConflict::column(throttles::Column::Key)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await
            .map_err(internal)?;
            throttles::Entity::update_many()
                .col_expr(
                    throttles::Column::Failures,
                    Expr::col(throttles::Column::Failures),
                )
                .filter(throttles::Column::Key.eq(key.as_str()))
                .exec(&txn)
                .await
                .map_err(internal)?;
            let row = throttles::Entity::find_by_id(key.clone())
                .one(&txn)
                .await
                .map_err(internal)?;
            let stored = row.map(|row| Counter {
                failures: row.failures,
                last_attempt_at: row.last_attempt_at,
                locked_until: row.locked_until,
            });
            match throttle::register(stored, now) {
                Verdict::Refused { retry_after } => return Ok(Some(retry_after)), // Rolled back: nothing counted.
                Verdict::Proceed(counter) => counters.push((key, counter)),
            }
        }
        for (key, counter) in counters {
            throttles::Entity::update_many()
                .col_expr(throttles::Column::Failures, Expr::value(counter.failures))
                .col_expr(
                    throttles::Column::LastAttemptAt,
                    Expr::value(counter.last_attempt_at),
                )
                .col_expr(
                    throttles::Column::LockedUntil,
                    Expr::value(counter.locked_until),
                )
                .filter(throttles::Column::Key.eq(key.as_str()))
                .exec(&txn)
                .await
                .map_err(internal)?;
        }
        txn.commit().await.map_err(internal)?;
        Ok(None)
    }

    async fn attempt_succeeded(&self, clear: &str, forgive: &str) -> Result<(), Error> {
        let txn = self.begin().await?;
        throttles::Entity::delete_many()
            .filter(throttles::Column::Key.eq(clear))
            .exec(&txn)
            .await
            .map_err(internal)?;
        if let Some(row) = throttles::Entity::find_by_id(forgive.to_owned())
            .one(&txn)
            .await
            .map_err(internal)?
        {
            let counter = throttle::forgive_one(Counter {
                failures: row.failures,
                last_attempt_at: row.last_attempt_at,
                locked_until: row.locked_until,
            });
            throttles::Entity::update_many()
                .col_expr(throttles::Column::Failures, Expr::value(counter.failures))
                .col_expr(
                    throttles::Column::LockedUntil,
                    Expr::value(counter.locked_until),
                )
                .filter(throttles::Column::Key.eq(forgive))
                .exec(&txn)
                .await
                .map_err(internal)?;
        }
        txn.commit().await.map_err(internal)
    }
}
