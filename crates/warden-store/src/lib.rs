//! Persistence for Warden: sea-orm entities, migrations and the `warden-core` storage traits, for
//! SQLite (the embedded default) and PostgreSQL from the same code.
mod api_keys;
mod audit;
mod convert;
mod credentials;
mod factors;
mod grants;
mod groups;
mod invitations;
mod janitor;
mod migration;
mod moves;
mod notifications;
mod organizations;
mod passkeys;
mod revisions;
mod roles;
mod scim;
mod search;
mod sessions;
mod signing_keys;
mod sso;
mod subjects;
mod tables;
mod throttles;
mod users;

pub use revisions::{receipt, with_receipt};

use std::{sync::Arc, time::Duration};

use sea_orm::{
    AccessMode, ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, IsolationLevel, SqlErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use warden_core::{Error, ports::Sealer};

/// The storage of one Warden deployment; cheap to clone (a connection pool).
#[derive(Clone)]
pub struct SqlStore {
    db: DatabaseConnection,
    /// Seals the outbox's tokens and codes at rest; only `pending_notifications` opens them.
    sealer: Arc<dyn Sealer>,
}

impl SqlStore {
    /// Connects to `url` (`sqlite://…?mode=rwc` or `postgres://…`) and applies pending migrations.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        sealer: Arc<dyn Sealer>,
    ) -> Result<Self, Error> {
        let mut options = ConnectOptions::new(url);
        options
            .max_connections(max_connections)
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(5))
            .sqlx_logging(false)
            // WAL lets readers go on while one writer commits; writers wait up to 5 s for each other.
            .map_sqlx_sqlite_opts(|options| {
                options
                    .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(5))
            });
        let db = Database::connect(options).await.map_err(internal)?;
        migration::Migrator::up(&db, None).await.map_err(internal)?;
        Ok(Self { db, sealer })
    }

    /// A write transaction. On SQLite it takes the write lock at BEGIN (IMMEDIATE), so a transaction
    /// that reads before it writes waits for a concurrent writer instead of failing with "database is
    /// locked"; PostgreSQL ignores the mode.
    pub(crate) async fn begin(&self) -> Result<DatabaseTransaction, Error> {
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        self.db.begin_with_options(options).await.map_err(internal)
    }

    /// A read-only snapshot: what a multi-query read sees is one state of the database
    /// (REPEATABLE READ on PostgreSQL; a deferred transaction on SQLite reads one WAL snapshot).
    pub(crate) async fn snapshot(&self) -> Result<DatabaseTransaction, Error> {
        let (isolation, access) = match self.db.get_database_backend() {
            DbBackend::Postgres => (
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            ),
            _ => (None, None),
        };
        self.db
            .begin_with_config(isolation, access)
            .await
            .map_err(internal)
    }

    /// Calls `observe` with every statement the store runs from now on: how the storage contract
    /// counts the queries of a read.
    pub fn observe_queries(&mut self, observe: impl Fn(&str) + Send + Sync + 'static) {
        self.db
            .set_metric_callback(move |info| observe(&info.statement.sql));
    }

    pub async fn ping(&self) -> Result<(), Error> {
        self.db.ping().await.map_err(internal)
    }

    /// The pool's open connections and how many of them are idle, read without a query.
    pub fn pool_use(&self) -> (u32, usize) {
        match self.db.get_database_backend() {
            sea_orm::DbBackend::Postgres => {
                let pool = self.db.get_postgres_connection_pool();
                (pool.size(), pool.num_idle())
            }
            sea_orm::DbBackend::Sqlite => {
                let pool = self.db.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle())
            }
            _ => (0, 0), // Only PostgreSQL and SQLite are built in.
        }
    }
}

/// The cause goes to the log through `Error::Internal`; the caller sees "internal error".
pub(crate) fn internal(error: DbErr) -> Error {
    Error::internal(error)
}

/// For a write that a unique index can refuse: the violation becomes `taken`, the conflict the
/// caller means (`EmailInUse`, `AlreadyExists("group name")`, a replayed token); any other failure
/// is internal.
pub(crate) fn unique_violation_as(taken: Error) -> impl FnOnce(DbErr) -> Error {
    move |error| match error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => taken,
        _ => internal(error),
    }
}
