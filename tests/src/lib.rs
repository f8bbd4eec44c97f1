//! `TestServer`: the real Warden server on a free port, on a fresh database (a temporary SQLite file,
//! or a new PostgreSQL database when `DATABASE_URL` is set), dropped with the value.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support: a failed step should fail the test loudly"
)]

use std::{path::PathBuf, sync::Arc, time::Duration};

use sea_orm::{ConnectionTrait, Database};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{Request, metadata::MetadataValue, transport::Channel};
use warden_proto::v1::{
    self, api_key_service_client::ApiKeyServiceClient, audit_service_client::AuditServiceClient,
    auth_service_client::AuthServiceClient,
    authorization_service_client::AuthorizationServiceClient,
    group_service_client::GroupServiceClient,
    notification_service_client::NotificationServiceClient,
    organization_service_client::OrganizationServiceClient, role_service_client::RoleServiceClient,
    user_service_client::UserServiceClient,
};
use warden_server::{Config, ManualClock, config::Secret};

pub const OPERATOR_TOKEN: &str = "test-operator-token";
pub const PASSWORD: &str = "a long enough test passphrase";

/// Where one test's data lives; removed (or dropped, for PostgreSQL) on drop.
pub struct TestDatabase {
    pub url: String,
    dir: PathBuf,
    postgres: Option<(String, String)>, // (admin url, database name)
}

impl TestDatabase {
    pub async fn fresh() -> Self {
        let dir =
            std::env::temp_dir().join(format!("warden-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        match std::env::var("DATABASE_URL")
            .ok()
            .filter(|url| !url.is_empty())
        {
            None => Self {
                url: format!("sqlite://{}?mode=rwc", dir.join("warden.db").display()),
                dir,
                postgres: None,
            },
            Some(admin) => {
                let name = format!("warden_test_{}", uuid::Uuid::new_v4().simple());
                let db = Database::connect(&admin)
                    .await
                    .expect("DATABASE_URL must reach PostgreSQL");
                db.execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap();
                db.close().await.ok();
                let base = admin.split('?').next().unwrap();
                let url = format!("{}/{name}", &base[..base.rfind('/').unwrap()]);
                Self {
                    url,
                    dir,
                    postgres: Some((admin, name)),
                }
            }
        }
    }

    /// Runs one SQL statement against this test's database and returns the first column of the first row.
    pub async fn count(&self, table: &str) -> i64 {
        let db = Database::connect(&self.url).await.unwrap();
        let backend = db.get_database_backend();
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                backend,
                format!("SELECT COUNT(*) AS n FROM {table}"),
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "n").unwrap()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
        if let Some((admin, name)) = self.postgres.take() {
            // Drop runs inside the test's runtime: a thread with its own runtime may block on the drop.
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    if let Ok(db) = Database::connect(&admin).await {
                        db.execute_unprepared(&format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        ))
                        .await
                        .ok();
                    }
                });
            })
            .join()
            .ok();
        }
    }
}

pub struct TestServer {
    pub addr: std::net::SocketAddr,
    pub channel: Channel,
    pub db: TestDatabase,
    /// The server's clock: it starts at the real time and moves only with `advance`.
    pub clock: Arc<ManualClock>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), String>>>,
}

pub fn test_config(db: &TestDatabase) -> Config {
    Config {
        database_url: Some(db.url.clone()),
        redis_url: std::env::var("REDIS_URL")
            .ok()
            .filter(|url| !url.is_empty()),
        operator_token: Some(Secret(OPERATOR_TOKEN.into())),
        data_dir: db.dir.clone(),
        argon2_memory_kib: 256, // Cheap hashes in tests; production uses OWASP's parameters.
        argon2_iterations: 1,
        database_max_connections: 4,
        ..Config::default()
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_on(TestDatabase::fresh().await).await
    }

    /// Starts a server on an existing database, as a restart or a second replica would.
    pub async fn start_on(db: TestDatabase) -> Self {
        Self::start_with(db, |_| {}).await
    }

    /// Starts a server with a configuration changed by `adjust`.
    pub async fn start_with(db: TestDatabase, adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = test_config(&db);
        adjust(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind"); // Bound here, handed over: no race.
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let clock = Arc::new(ManualClock::starting_at(chrono::Utc::now()));
        let server_clock = clock.clone();
        let task = tokio::spawn(async move {
            warden_server::serve(listener, config, server_clock, async {
                stopped.await.ok();
            })
            .await
            .map_err(|error| {
                std::error::Error::source(&error)
                    .map(ToString::to_string)
                    .unwrap_or(error.to_string())
            })
        });
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy();
        let mut server = Self {
            addr,
            channel,
            db,
            clock,
            stop: Some(stop),
            task: Some(task),
        };
        server.wait_until_serving().await;
        server
    }

    async fn wait_until_serving(&mut self) {
        let mut health = tonic_health::pb::health_client::HealthClient::new(self.channel.clone());
        for _ in 0..300 {
            let request = tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            };
            if health.check(request).await.is_ok() {
                return;
            }
            if self.task.as_ref().is_some_and(JoinHandle::is_finished) {
                let outcome = self.task.take().unwrap().await.unwrap();
                panic!("server stopped during start-up: {outcome:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server did not start within 15 s");
    }

    /// Moves the server's clock forward: time passes without sleeping.
    pub fn advance(&self, by: Duration) {
        self.clock
            .advance(chrono::Duration::from_std(by).expect("a short duration"));
    }

    /// Stops the server, waits for it, and hands back its database for a restart.
    pub async fn stop(mut self) -> TestDatabase {
        self.stop.take().unwrap().send(()).ok();
        self.task.take().unwrap().await.unwrap().unwrap();
        let db = TestDatabase {
            url: self.db.url.clone(),
            dir: self.db.dir.clone(),
            postgres: self.db.postgres.take(),
        };
        self.db.dir = PathBuf::new(); // The returned value owns the files now.
        db
    }

    pub fn organizations(&self) -> OrganizationServiceClient<Channel> {
        OrganizationServiceClient::new(self.channel.clone())
    }
    pub fn users(&self) -> UserServiceClient<Channel> {
        UserServiceClient::new(self.channel.clone())
    }
    pub fn roles(&self) -> RoleServiceClient<Channel> {
        RoleServiceClient::new(self.channel.clone())
    }
    pub fn auth(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channel.clone())
    }
    pub fn api_keys(&self) -> ApiKeyServiceClient<Channel> {
        ApiKeyServiceClient::new(self.channel.clone())
    }
    pub fn authorization(&self) -> AuthorizationServiceClient<Channel> {
        AuthorizationServiceClient::new(self.channel.clone())
    }
    pub fn groups(&self) -> GroupServiceClient<Channel> {
        GroupServiceClient::new(self.channel.clone())
    }
    pub fn notifications(&self) -> NotificationServiceClient<Channel> {
        NotificationServiceClient::new(self.channel.clone())
    }
    pub fn audit(&self) -> AuditServiceClient<Channel> {
        AuditServiceClient::new(self.channel.clone())
    }

    /// The operator's view of the outbox.
    pub async fn pending_notifications(&self) -> Vec<v1::Notification> {
        let request = v1::ListPendingNotificationsRequest { page_size: 500 };
        let reply = self
            .notifications()
            .list_pending_notifications(with_token(OPERATOR_TOKEN, request))
            .await
            .unwrap();
        reply.into_inner().notifications
    }

    /// The token of the newest pending invitation sent to `email`.
    pub async fn invitation_token(&self, email: &str) -> String {
        let pending = self.pending_notifications().await;
        let invitation = pending
            .iter()
            .rev()
            .find(|n| n.recipient == email && n.kind() == v1::NotificationKind::Invitation)
            .unwrap_or_else(|| {
                panic!(
                    "no invitation for {email} in {} pending notifications",
                    pending.len()
                )
            });
        invitation.token.clone()
    }

    /// Invites `email` with `grants` as `inviter`; returns the PENDING user.
    pub async fn invite(
        &self,
        org: &TestOrg,
        inviter: &str,
        email: &str,
        grants: Vec<v1::Grant>,
    ) -> v1::User {
        let request = v1::InviteUserRequest {
            organization_id: org.id.clone(),
            email: email.into(),
            first_name: "Test".into(),
            last_name: email.split('@').next().unwrap().into(),
            grants,
            direct_permissions: vec![],
        };
        self.users()
            .invite_user(with_token(inviter, request))
            .await
            .expect("invite")
            .into_inner()
            .user
            .unwrap()
    }

    /// Invites, accepts and signs in a user with `grants`, invited by the owner.
    pub async fn member(&self, org: &TestOrg, email: &str, grants: Vec<v1::Grant>) -> TestUser {
        let user = self.invite(org, &org.owner_token, email, grants).await;
        let token = self.invitation_token(email).await;
        let request = v1::AcceptInvitationRequest {
            token,
            password: PASSWORD.into(),
        };
        self.users()
            .accept_invitation(request)
            .await
            .expect("accept");
        TestUser {
            id: user.id,
            email: email.into(),
            token: self.sign_in(email, PASSWORD).await.access_token,
        }
    }

    pub async fn create_entity(&self, org: &TestOrg, name: &str, parent: &str) -> String {
        let request = v1::CreateEntityRequest {
            organization_id: org.id.clone(),
            name: name.into(),
            parent_entity_id: parent.into(),
        };
        let reply = self
            .organizations()
            .create_entity(with_token(&org.owner_token, request))
            .await
            .unwrap();
        reply.into_inner().entity.unwrap().id
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> v1::SignInResponse {
        let request = v1::SignInRequest {
            email: email.into(),
            password: password.into(),
        };
        self.auth()
            .sign_in(request)
            .await
            .expect("sign in")
            .into_inner()
    }

    pub async fn sign_in_error(&self, email: &str, password: &str) -> tonic::Status {
        let request = v1::SignInRequest {
            email: email.into(),
            password: password.into(),
        };
        self.auth()
            .sign_in(request)
            .await
            .expect_err("sign-in should fail")
    }

    /// Creates an organisation with the operator token, signs its owner in and creates an API key.
    pub async fn create_organization(&self, name: &str) -> TestOrg {
        let email = format!("owner-{}@example.com", uuid::Uuid::new_v4().simple());
        let request = v1::CreateOrganizationRequest {
            name: name.into(),
            owner_email: email.clone(),
            owner_first_name: "Ada".into(),
            owner_last_name: "Lovelace".into(),
            owner_password: PASSWORD.into(),
        };
        let reply = self
            .organizations()
            .create_organization(with_token(OPERATOR_TOKEN, request))
            .await
            .unwrap();
        let reply = reply.into_inner();
        let id = reply.organization.unwrap().id;
        let owner_id = reply.owner.unwrap().id;
        let owner_token = self.sign_in(&email, PASSWORD).await.access_token;
        let key = v1::CreateApiKeyRequest {
            organization_id: id.clone(),
            name: "backend".into(),
        };
        let api_key = self
            .api_keys()
            .create_api_key(with_token(&owner_token, key))
            .await
            .unwrap()
            .into_inner()
            .secret;
        TestOrg {
            id,
            owner_id,
            owner_email: email,
            owner_token,
            api_key,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
    }
}

/// One organisation as the tests see it.
pub struct TestOrg {
    pub id: String,
    pub owner_id: String,
    pub owner_email: String,
    pub owner_token: String,
    pub api_key: String,
}

impl TestOrg {
    pub fn check(
        &self,
        user_id: &str,
        permission: &str,
        entity_id: &str,
    ) -> v1::CheckPermissionRequest {
        v1::CheckPermissionRequest {
            organization_id: self.id.clone(),
            user_id: user_id.into(),
            permission: permission.into(),
            entity_id: entity_id.into(),
            explain: true,
            consistency: None,
        }
    }
}

/// A signed-in member of an organisation.
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub token: String,
}

/// A grant of `role` on `entities`, or on all entities when there are none.
pub fn grant(role: &str, entities: &[&str]) -> v1::Grant {
    v1::Grant {
        role_id: role.into(),
        entity_ids: entities.iter().map(|id| id.to_string()).collect(),
        all_entities: entities.is_empty(),
    }
}

/// The TOTP code of a base32 secret at `unix_seconds`, as an authenticator app would show it.
pub fn totp_code(secret_base32: &str, unix_seconds: u64) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret_base32).expect("base32 secret");
    totp_rs::Builder::new()
        .with_secret(secret)
        .build_noncompliant()
        .generate(unix_seconds)
        .to_string()
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// `message` with `authorization: Bearer <token>`.
pub fn with_token<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    let value = MetadataValue::try_from(format!("Bearer {token}")).unwrap();
    request.metadata_mut().insert("authorization", value);
    request
}
