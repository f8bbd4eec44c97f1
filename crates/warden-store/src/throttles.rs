//! `ThrottleStore`: attempt counters and quotas shared by every replica through the database. Each
//! call updates its rows inside one transaction (row locks on PostgreSQL, a single writer on
//! SQLite), so concurrent attempts are counted one after the other. The verdicts are
//! `warden_core::throttle`'s.
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    sea_query::{Expr, OnConflict},
};
use warden_core::{
    Error,
    ports::ThrottleStore,
    throttle::{BackOff, Budget, Counter, Verdict},
};

use crate::{SqlStore, internal, tables::throttles};

/// The counter under `key`, its row created if needed and touched so that PostgreSQL locks it until
/// commit. A fresh row reads as no counter.
async fn lock(txn: &DatabaseTransaction, key: &str) -> Result<Option<Counter>, Error> {
    throttles::Entity::insert(throttles::ActiveModel {
        key: Set(key.to_owned()),
        failures: Set(0),
        last_attempt_at: Set(DateTime::<Utc>::UNIX_EPOCH),
        locked_until: Set(None),
    })
    .on_conflict(
        OnConflict::column(throttles::Column::Key)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await
    .map_err(internal)?;
    throttles::Entity::update_many()
        .col_expr(
            throttles::Column::Failures,
            Expr::col(throttles::Column::Failures),
        )
        .filter(throttles::Column::Key.eq(key))
        .exec(txn)
        .await
        .map_err(internal)?;
    let row = throttles::Entity::find_by_id(key.to_owned())
        .one(txn)
        .await
        .map_err(internal)?;
    Ok(row.filter(|row| row.failures > 0).map(|row| Counter {
        failures: row.failures,
        last_attempt_at: row.last_attempt_at,
        locked_until: row.locked_until,
    }))
}

async fn write(txn: &DatabaseTransaction, key: &str, counter: Counter) -> Result<(), Error> {
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
        .filter(throttles::Column::Key.eq(key))
        .exec(txn)
        .await
        .map_err(internal)?;
    Ok(())
}

#[async_trait]
impl ThrottleStore for SqlStore {
    async fn begin_attempt(
        &self,
        account: &str,
        address: &str,
        back_off: BackOff,
        budget: Budget,
        now: DateTime<Utc>,
    ) -> Result<Option<chrono::Duration>, Error> {
        let txn = self.begin().await?;
        // Always the address first, then the account: concurrent attempts lock in one order.
        if let Some(retry_after) = budget.refusal(lock(&txn, address).await?, now) {
            return Ok(Some(retry_after)); // Rolled back: nothing counted.
        }
        match back_off.register(lock(&txn, account).await?, now) {
            Verdict::Refused { retry_after } => Ok(Some(retry_after)),
            Verdict::Proceed(counter) => {
                write(&txn, account, counter).await?;
                txn.commit().await.map_err(internal)?;
                Ok(None)
            }
        }
    }

    async fn attempt_failed(
        &self,
        address: &str,
        budget: Budget,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let txn = self.begin().await?;
        let counter = budget.spend(lock(&txn, address).await?, now);
        write(&txn, address, counter).await?;
        txn.commit().await.map_err(internal)
    }

    async fn attempt_succeeded(&self, account: &str) -> Result<(), Error> {
        throttles::Entity::delete_many()
            .filter(throttles::Column::Key.eq(account))
            .exec(&self.db)
            .await
            .map_err(internal)?;
        Ok(())
    }

    async fn spend_quota(
        &self,
        budgets: &[(String, Budget)],
        now: DateTime<Utc>,
    ) -> Result<Option<chrono::Duration>, Error> {
        let txn = self.begin().await?;
        let mut spent = Vec::with_capacity(budgets.len());
        for (key, budget) in budgets {
            match budget.take(lock(&txn, key).await?, now) {
                Verdict::Refused { retry_after } => return Ok(Some(retry_after)), // Rolled back.
                Verdict::Proceed(counter) => spent.push((key, counter)),
            }
        }
        for (key, counter) in spent {
            write(&txn, key, counter).await?;
        }
        txn.commit().await.map_err(internal)?;
        Ok(None)
    }
}
