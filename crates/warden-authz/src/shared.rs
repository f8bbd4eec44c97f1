//! The shared second level of the subject cache: Redis, or Redis Cluster, in production. A replica
//! that misses in memory asks it before the database, so a cold replica (a new pod, a restart, a
//! user not seen here yet) is spared the database when another replica loaded the subject already.
//!
//! Keys embed the organisation's revision (`warden:{<org>}:subject:<user>:<revision>`), so a change
//! makes old entries unreachable instead of racing deletes, and no Redis fault can change an answer:
//! a flushed, restarted, restored-from-an-older-snapshot or failed-over Redis only loses entries
//! (revisions come from the database, never from Redis). The hash tag keeps an organisation's keys
//! in one slot, so a batch's `MGET` and `SET` pipeline work unchanged on Redis Cluster. Every
//! operation has a timeout in milliseconds; after a failure a breaker skips Redis for a second,
//! so a dead or paused Redis costs one timeout per second, not one per check. Writes never touch
//! Redis.
use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use redis::{FromRedisValue, aio::ConnectionLike};
use warden_core::{
    Error,
    decision::Subject,
    ids::{OrganizationId, UserId},
};

/// The second level of the subject cache; a miss and a failure look the same to the caller.
#[async_trait]
pub trait SharedCache: Send + Sync {
    /// What is kept for each of `users` at `revision`: `None` for a miss.
    async fn get(
        &self,
        organization: OrganizationId,
        revision: i64,
        users: &[UserId],
    ) -> Vec<Option<Option<Subject>>>;
    async fn put(
        &self,
        organization: OrganizationId,
        revision: i64,
        subjects: &[(UserId, Arc<Option<Subject>>)],
    );
}

/// A backstop: entries of revisions nobody asks for any more expire.
const TTL_SECONDS: u64 = 3600;
/// How long Redis is skipped after a failure.
const BREAKER_OPEN: Duration = Duration::from_secs(1);

#[derive(Clone)]
enum Connection {
    Single(redis::aio::ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

pub struct RedisCache {
    target: Target,
    timeout: Duration,
    connection: RwLock<Option<Connection>>,
    /// Milliseconds after `started` until which Redis is skipped.
    open_until: AtomicU64,
    started: Instant,
}

enum Target {
    Single(redis::Client),
    Cluster(Box<redis::cluster::ClusterClient>),
}

impl RedisCache {
    /// `url` is one `redis://` URL, or several separated by commas for a Redis Cluster's seed
    /// nodes. Nothing connects yet: the first use does, so a Redis that is down delays no start.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, Error> {
        let invalid = |error: redis::RedisError| Error::invalid("redis_url", error.to_string());
        let nodes: Vec<&str> = url.split(',').map(str::trim).collect();
        let target = if nodes.len() > 1 {
            Target::Cluster(Box::new(
                redis::cluster::ClusterClient::builder(nodes)
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .build()
                    .map_err(invalid)?,
            ))
        } else {
            Target::Single(redis::Client::open(url).map_err(invalid)?)
        };
        Ok(Self {
            target,
            timeout,
            connection: RwLock::new(None),
            open_until: AtomicU64::new(0),
            started: Instant::now(),
        })
    }

    fn key(organization: OrganizationId, revision: i64, user: UserId) -> String {
        format!("warden:{{{organization}}}:subject:{user}:{revision}")
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn broken(&self) -> bool {
        self.now_ms() < self.open_until.load(Ordering::Relaxed)
    }

    fn trip(&self, error: &dyn std::fmt::Display) {
        let until = self.now_ms() + u64::try_from(BREAKER_OPEN.as_millis()).unwrap_or(1000);
        self.open_until.store(until, Ordering::Relaxed);
        tracing::warn!(%error, "redis unavailable; subjects load from the database for a second");
    }

    async fn connection(&self) -> Result<Connection, String> {
        if let Some(connection) = self
            .connection
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
        {
            return Ok(connection);
        }
        let connect = async {
            match &self.target {
                Target::Single(client) => {
                    let config = redis::aio::ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(self.timeout))
                        .set_response_timeout(Some(self.timeout))
                        .set_number_of_retries(1);
                    redis::aio::ConnectionManager::new_with_config(client.clone(), config)
                        .await
                        .map(Connection::Single)
                }
                Target::Cluster(client) => {
                    client.get_async_connection().await.map(Connection::Cluster)
                }
            }
        };
        let connection = tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| "connect timed out".to_owned())?
            .map_err(|error| error.to_string())?;
        *self
            .connection
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(connection.clone());
        Ok(connection)
    }

    /// Runs `command` within the timeout, unless the breaker is open; a failure trips it.
    async fn run<T: FromRedisValue + Send>(&self, command: Command) -> Option<T> {
        if self.broken() {
            return None;
        }
        let attempt = async {
            let connection = self.connection().await?;
            let outcome = match connection {
                Connection::Single(mut connection) => command.send(&mut connection).await,
                Connection::Cluster(mut connection) => command.send(&mut connection).await,
            };
            outcome.map_err(|error| error.to_string())
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(error)) => {
                self.trip(&error);
                None
            }
            Err(_) => {
                self.trip(&"timed out");
                None
            }
        }
    }
}

enum Command {
    One(redis::Cmd),
    Many(redis::Pipeline),
}

impl Command {
    async fn send<T: FromRedisValue, C: ConnectionLike + Send>(
        &self,
        connection: &mut C,
    ) -> redis::RedisResult<T> {
        match self {
            Command::One(command) => command.query_async(connection).await,
            Command::Many(pipeline) => pipeline.query_async(connection).await,
        }
    }
}

#[async_trait]
impl SharedCache for RedisCache {
    async fn get(
        &self,
        organization: OrganizationId,
        revision: i64,
        users: &[UserId],
    ) -> Vec<Option<Option<Subject>>> {
        let mut command = redis::cmd("MGET");
        for user in users {
            command.arg(Self::key(organization, revision, *user));
        }
        let values: Vec<Option<Vec<u8>>> =
            self.run(Command::One(command)).await.unwrap_or_default();
        let mut found: Vec<Option<Option<Subject>>> = values
            .into_iter()
            .map(|value| value.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
            .collect();
        found.resize(users.len(), None);
        found
    }

    async fn put(
        &self,
        organization: OrganizationId,
        revision: i64,
        subjects: &[(UserId, Arc<Option<Subject>>)],
    ) {
        let mut pipeline = redis::pipe();
        for (user, subject) in subjects {
            let Ok(value) = serde_json::to_vec(subject.as_ref()) else {
                continue;
            };
            pipeline
                .set_ex(Self::key(organization, revision, *user), value, TTL_SECONDS)
                .ignore();
        }
        let _: Option<()> = self.run(Command::Many(pipeline)).await;
    }
}
