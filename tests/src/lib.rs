//! `TestServer`: the real Warden server on a free port, on a fresh database (a temporary SQLite file,
//! or a new PostgreSQL database when `DATABASE_URL` is set), dropped with the value.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support: a failed step should fail the test loudly"
)]

mod redis;

use std::{path::PathBuf, sync::Arc, time::Duration};

pub use redis::TestRedis;

use sea_orm::{ConnectionTrait, Database};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{
    Request, Status,
    metadata::{AsciiMetadataValue, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, ClientTlsConfig},
};
use warden_proto::v1::{
    self, api_key_service_client::ApiKeyServiceClient, audit_service_client::AuditServiceClient,
    auth_service_client::AuthServiceClient,
    authorization_service_client::AuthorizationServiceClient,
    group_service_client::GroupServiceClient,
    notification_service_client::NotificationServiceClient,
    organization_service_client::OrganizationServiceClient, role_service_client::RoleServiceClient,
    scim_service_client::ScimServiceClient, user_service_client::UserServiceClient,
};
use warden_server::{Clock as _, Config, ManualClock, config::Secret};

pub const OPERATOR_TOKEN: &str = "test-operator-token-of-at-least-32-chars";
pub const PASSWORD: &str = "a long enough test passphrase";
/// The token of a caller who sends no `authorization` header (sign-in, accepting an invitation).
pub const ANONYMOUS: &str = "";

/// Adds `authorization: Bearer <token>` to every call of a client; [`ANONYMOUS`] adds nothing.
#[derive(Clone)]
pub struct Bearer(Option<AsciiMetadataValue>);

impl Bearer {
    pub fn new(token: &str) -> Self {
        Self(
            (!token.is_empty()).then(|| {
                MetadataValue::try_from(format!("Bearer {token}")).expect("a token is ASCII")
            }),
        )
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The channel of a typed test client: every call carries its caller's token.
pub type Authed = InterceptedService<Channel, Bearer>;

/// Where one test's data lives; removed (or dropped, for PostgreSQL) on drop.
pub struct TestDatabase {
    pub url: String,
    /// A private temporary directory, removed with the value.
    pub dir: PathBuf,
    postgres: Option<(String, String)>, // (admin url, database name)
    /// False for a replica's handle: the first value owns the files and the database.
    owns: bool,
}

impl TestDatabase {
    /// The same database and data directory for a second server, as another replica would share
    /// them; dropping it removes nothing.
    pub fn replica(&self) -> Self {
        Self {
            url: self.url.clone(),
            dir: self.dir.clone(),
            postgres: None,
            owns: false,
        }
    }

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
                owns: true,
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
                    owns: true,
                }
            }
        }
    }

    /// Runs one SQL statement against this test's database and returns the first column of the first row.
    /// The text values of one column, read straight from the database (for what is stored at rest).
    pub async fn texts(&self, sql: &str) -> Vec<Option<String>> {
        let db = Database::connect(&self.url).await.unwrap();
        let backend = db.get_database_backend();
        db.query_all_raw(sea_orm::Statement::from_string(backend, sql.to_owned()))
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get_by_index::<Option<String>>(0).unwrap())
            .collect()
    }

    /// The PostgreSQL database's name and an administrator's URL; `None` on SQLite.
    pub fn postgres(&self) -> Option<(&str, &str)> {
        self.postgres
            .as_ref()
            .map(|(admin, name)| (admin.as_str(), name.as_str()))
    }

    /// Holds the write lock on `organizations` until the value is dropped (rolled back): on
    /// PostgreSQL a table lock that readers pass, on SQLite the database's one write lock.
    pub async fn hold_write_lock(&self) -> WriteLock {
        use sea_orm::TransactionTrait as _;
        let db = Database::connect(&self.url).await.unwrap();
        let transaction = db.begin().await.unwrap();
        let statement = match db.get_database_backend() {
            sea_orm::DbBackend::Postgres => "LOCK TABLE organizations IN EXCLUSIVE MODE",
            _ => "CREATE TABLE write_lock_of_a_test (x INTEGER)",
        };
        transaction.execute_unprepared(statement).await.unwrap();
        WriteLock {
            _transaction: transaction,
            _db: db,
        }
    }

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
        if !self.owns {
            return;
        }
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

/// A test's open write transaction: dropping it rolls back and releases the lock.
pub struct WriteLock {
    _transaction: sea_orm::DatabaseTransaction,
    _db: sea_orm::DatabaseConnection,
}

pub struct TestServer {
    pub addr: std::net::SocketAddr,
    /// The HTTP API's base URL (`http://127.0.0.1:<port>`, or `https://` when TLS is on).
    pub http_url: String,
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
        commit_wait_ms: 10, // Short, so writes return quickly; the guarantee holds at any lease.
        http_addr: None,    // `launch` hands over a listener on a free port instead.
        ..Config::default()
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_on(TestDatabase::fresh().await).await
    }

    /// Two replicas on one fresh database (a writer and a reader), each configured by `adjust`.
    pub async fn replicas(adjust: impl Fn(&mut Config)) -> (Self, Self) {
        let db = TestDatabase::fresh().await;
        let replica_db = db.replica();
        let writer = Self::start_with(db, &adjust).await;
        let reader = Self::start_with(replica_db, &adjust).await;
        (writer, reader)
    }

    /// A custom role of `org` with `permissions`, created by its owner; returns its id.
    pub async fn create_role(&self, org: &TestOrg, name: &str, permissions: &[&str]) -> String {
        self.roles(&org.owner_token)
            .create_role(v1::CreateRoleRequest {
                organization_id: org.id.clone(),
                name: name.into(),
                description: String::new(),
                permissions: permissions.iter().map(|key| (*key).to_owned()).collect(),
            })
            .await
            .expect("create role")
            .into_inner()
            .role
            .unwrap()
            .id
    }

    /// Replaces a custom role's permissions as `org`'s owner.
    pub async fn set_role_permissions(&self, org: &TestOrg, role_id: &str, permissions: &[&str]) {
        self.roles(&org.owner_token)
            .update_role(v1::UpdateRoleRequest {
                organization_id: org.id.clone(),
                role_id: role_id.into(),
                permissions: permissions.iter().map(|key| (*key).to_owned()).collect(),
                update_mask: update_mask(&["permissions"]),
                ..Default::default()
            })
            .await
            .expect("update role");
    }

    /// Starts a server on a fresh database with one of the catalogues in `catalogue/` (its file
    /// name without `.toml`), as `WARDEN_CATALOGUE_PATH` would.
    pub async fn with_catalogue(name: &str) -> Self {
        let path = catalogue_path(name);
        Self::start_with(TestDatabase::fresh().await, |config| {
            config.catalogue_path = Some(path)
        })
        .await
    }

    /// Starts a server on an existing database, as a restart or a second replica would.
    pub async fn start_on(db: TestDatabase) -> Self {
        Self::start_with(db, |_| {}).await
    }

    /// Starts a server with a configuration changed by `adjust`.
    pub async fn start_with(db: TestDatabase, adjust: impl FnOnce(&mut Config)) -> Self {
        match Self::try_start_with(db, adjust).await {
            Ok(server) => server,
            Err(outcome) => panic!("server stopped during start-up: {outcome}"),
        }
    }

    /// Like `start_with`, but a server that refuses to start hands back its reason.
    pub async fn try_start_with(
        db: TestDatabase,
        adjust: impl FnOnce(&mut Config),
    ) -> Result<Self, String> {
        Self::launch(db, adjust, None).await
    }

    /// Starts a server whose configuration serves TLS; the test clients speak TLS with `tls`.
    pub async fn start_tls(
        db: TestDatabase,
        adjust: impl FnOnce(&mut Config),
        tls: ClientTlsConfig,
    ) -> Self {
        match Self::launch(db, adjust, Some(tls)).await {
            Ok(server) => server,
            Err(outcome) => panic!("server stopped during start-up: {outcome}"),
        }
    }

    async fn launch(
        db: TestDatabase,
        adjust: impl FnOnce(&mut Config),
        tls: Option<ClientTlsConfig>,
    ) -> Result<Self, String> {
        let mut config = test_config(&db);
        adjust(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind"); // Bound here, handed over: no race.
        let addr = listener.local_addr().expect("local addr");
        let http_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
        let http_addr = http_listener.local_addr().expect("local addr");
        let http_url = match tls {
            None => format!("http://{http_addr}"),
            Some(_) => format!("https://{http_addr}"),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let clock = Arc::new(ManualClock::starting_at(chrono::Utc::now()));
        let server_clock = clock.clone();
        let task = tokio::spawn(async move {
            let stopped = async {
                stopped.await.ok();
            };
            warden_server::serve_listeners(
                listener,
                Some(http_listener),
                config,
                server_clock,
                stopped,
            )
            .await
            .map_err(|error| {
                std::error::Error::source(&error)
                    .map(ToString::to_string)
                    .unwrap_or(error.to_string())
            })
        });
        let channel = match tls {
            None => Channel::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect_lazy(),
            Some(tls) => Channel::from_shared(format!("https://{addr}"))
                .unwrap()
                .tls_config(tls)
                .unwrap()
                .connect_lazy(),
        };
        let mut server = Self {
            addr,
            http_url,
            channel,
            db,
            clock,
            stop: Some(stop),
            task: Some(task),
        };
        server.wait_until_serving().await?;
        Ok(server)
    }

    async fn wait_until_serving(&mut self) -> Result<(), String> {
        let mut health = tonic_health::pb::health_client::HealthClient::new(self.channel.clone());
        for _ in 0..300 {
            let request = tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            };
            if health.check(request).await.is_ok() {
                return Ok(());
            }
            if self.task.as_ref().is_some_and(JoinHandle::is_finished) {
                let outcome = self.task.take().unwrap().await.unwrap();
                return Err(format!("{outcome:?}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server did not start within 15 s");
    }

    /// The server's "now" in Unix seconds: TOTP codes and ID-token times are computed from it, so a
    /// slow run never crosses a step the server does not see.
    pub fn unix_now(&self) -> u64 {
        u64::try_from(self.clock.now().timestamp()).expect("after 1970")
    }

    /// Moves the server's clock forward: time passes without sleeping.
    pub fn advance(&self, by: Duration) {
        self.clock
            .advance(chrono::Duration::from_std(by).expect("a short duration"));
    }

    /// Signals shutdown (as SIGTERM does) without waiting; `stop` then waits for the server.
    pub fn signal_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
    }

    /// Stops the server, waits for it, and hands back its database for a restart.
    pub async fn stop(mut self) -> TestDatabase {
        self.signal_shutdown();
        self.task.take().unwrap().await.unwrap().unwrap();
        let db = TestDatabase {
            url: self.db.url.clone(),
            dir: self.db.dir.clone(),
            postgres: self.db.postgres.take(),
            owns: self.db.owns,
        };
        self.db.dir = PathBuf::new(); // The returned value owns the files now.
        db
    }

    // Typed clients whose calls carry `token` (an access token, an API key, the operator token or
    // ANONYMOUS), so a test reads as the caller's scenario.
    pub fn organizations(&self, token: &str) -> OrganizationServiceClient<Authed> {
        OrganizationServiceClient::with_interceptor(self.channel.clone(), Bearer::new(token))
    }
    pub fn users(&self, token: &str) -> UserServiceClient<Authed> {
        UserServiceClient::with_interceptor(self.channel.clone(), Bearer::new(token))
    }
    pub fn roles(&self, token: &str) -> RoleServiceClient<Authed> {
        RoleServiceClient::with_interceptor(self.channel.clone(), Bearer::new(token))
    }
    pub fn auth(&self, token: &str) -> AuthServiceClient<Authed> {
        AuthServiceClient::with_interceptor(self.channel.clone(), Bearer::new(token))
    }
    pub fn api_keys(&self, token: &str) -> ApiKeyServiceClient<Authed> {
        ApiKeyServiceClient::with_interceptor(self.channel.clone(), Bearer::new(token))
    }
    pub fn authorization(&self, token: &str) -> AuthorizationServiceClient<Authed> {
        AuthorizationServiceClient::with_interceptor(self.channel.clone(), Bearer::new(token))
    }
    pub fn scim(&self, token: &str) -> ScimServiceClient<Authed> {
        ScimServiceClient::with_interceptor(self.channel.clone(), Bearer::new(token))
    }

    /// A SCIM token of `org`, created by its owner; returns (token id, secret).
    pub async fn scim_token(&self, org: &TestOrg) -> (String, String) {
        let request = v1::CreateScimTokenRequest {
            organization_id: org.id.clone(),
            name: "okta".into(),
        };
        let reply = self
            .scim(&org.owner_token)
            .create_scim_token(request)
            .await
            .expect("create scim token")
            .into_inner();
        (reply.scim_token.expect("token").id, reply.secret)
    }

    pub fn groups(&self, token: &str) -> GroupServiceClient<Authed> {
        GroupServiceClient::with_interceptor(self.channel.clone(), Bearer::new(token))
    }
    pub fn notifications(&self, token: &str) -> NotificationServiceClient<Authed> {
        NotificationServiceClient::with_interceptor(self.channel.clone(), Bearer::new(token))
    }
    pub fn audit(&self, token: &str) -> AuditServiceClient<Authed> {
        AuditServiceClient::with_interceptor(self.channel.clone(), Bearer::new(token))
    }

    /// The decision on `permission` for `user_id` on `entity_id` ("" for organisation-wide), asked
    /// with the organisation's API key.
    pub async fn decide(
        &self,
        org: &TestOrg,
        user_id: &str,
        permission: &str,
        entity_id: &str,
    ) -> v1::CheckPermissionResponse {
        self.authorization(&org.api_key)
            .check_permission(org.check(user_id, permission, entity_id))
            .await
            .expect("check")
            .into_inner()
    }

    /// A user of `org` as its owner reads them.
    pub async fn get_user(&self, org: &TestOrg, user_id: &str) -> v1::User {
        let mut users = self.users(&org.owner_token);
        let reply = users.get_user(org.get_user(user_id)).await;
        reply.expect("get user").into_inner().user.unwrap()
    }

    /// Changes `org`'s settings as its owner; only the fields set in `change` are touched.
    pub async fn update_settings(
        &self,
        org: &TestOrg,
        change: v1::UpdateOrganizationSettingsRequest,
    ) -> v1::OrganizationSettings {
        let request = v1::UpdateOrganizationSettingsRequest {
            organization_id: org.id.clone(),
            ..change
        };
        let reply = self
            .organizations(&org.owner_token)
            .update_organization_settings(request)
            .await
            .expect("update settings");
        reply.into_inner().organization.unwrap().settings.unwrap()
    }

    /// The operator's view of the outbox.
    pub async fn pending_notifications(&self) -> Vec<v1::Notification> {
        let request = v1::ListPendingNotificationsRequest { page_size: 500 };
        let reply = self
            .notifications(OPERATOR_TOKEN)
            .list_pending_notifications(request)
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
        self.users(inviter)
            .invite_user(org.invite_user(email, grants))
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
        self.users(ANONYMOUS)
            .accept_invitation(accept(&token, PASSWORD))
            .await
            .expect("accept");
        TestUser {
            id: user.id,
            email: email.into(),
            token: self.sign_in(email, PASSWORD).await.access_token,
        }
    }

    pub async fn create_entity(&self, org: &TestOrg, name: &str, parent: &str) -> String {
        let reply = self
            .organizations(&org.owner_token)
            .create_entity(org.create_entity(name, parent))
            .await
            .unwrap();
        reply.into_inner().entity.unwrap().id
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> v1::SignInResponse {
        let request = v1::SignInRequest {
            email: email.into(),
            password: password.into(),
        };
        self.auth(ANONYMOUS)
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
        self.auth(ANONYMOUS)
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
            .organizations(OPERATOR_TOKEN)
            .create_organization(request)
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
            .api_keys(&owner_token)
            .create_api_key(key)
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

/// Requests scoped to this organisation; a test changes what it is about with `..org.request()`.
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

    pub fn get_organization(&self) -> v1::GetOrganizationRequest {
        v1::GetOrganizationRequest {
            organization_id: self.id.clone(),
        }
    }

    pub fn create_entity(&self, name: &str, parent_entity_id: &str) -> v1::CreateEntityRequest {
        v1::CreateEntityRequest {
            organization_id: self.id.clone(),
            name: name.into(),
            parent_entity_id: parent_entity_id.into(),
        }
    }

    pub fn invite_user(&self, email: &str, grants: Vec<v1::Grant>) -> v1::InviteUserRequest {
        v1::InviteUserRequest {
            organization_id: self.id.clone(),
            email: email.into(),
            first_name: "Test".into(),
            last_name: email.split('@').next().unwrap_or_default().into(),
            grants,
            direct_permissions: vec![],
        }
    }

    pub fn get_user(&self, user_id: &str) -> v1::GetUserRequest {
        v1::GetUserRequest {
            organization_id: self.id.clone(),
            user_id: user_id.into(),
        }
    }

    /// Lists every user but the archived, newest first, in one default page.
    pub fn list_users(&self) -> v1::ListUsersRequest {
        v1::ListUsersRequest {
            organization_id: self.id.clone(),
            ..Default::default()
        }
    }

    /// An update of `user_id` that touches only the fields named in `mask`.
    pub fn update_user(&self, user_id: &str, mask: &[&str]) -> v1::UpdateUserRequest {
        v1::UpdateUserRequest {
            organization_id: self.id.clone(),
            user_id: user_id.into(),
            update_mask: update_mask(mask),
            ..Default::default()
        }
    }

    pub fn suspend_user(&self, user_id: &str) -> v1::SuspendUserRequest {
        v1::SuspendUserRequest {
            organization_id: self.id.clone(),
            user_id: user_id.into(),
        }
    }

    pub fn restore_user(&self, user_id: &str) -> v1::RestoreUserRequest {
        v1::RestoreUserRequest {
            organization_id: self.id.clone(),
            user_id: user_id.into(),
        }
    }

    pub fn delete_user(&self, user_id: &str) -> v1::DeleteUserRequest {
        v1::DeleteUserRequest {
            organization_id: self.id.clone(),
            user_id: user_id.into(),
        }
    }

    pub fn resend_invitation(&self, user_id: &str) -> v1::ResendInvitationRequest {
        v1::ResendInvitationRequest {
            organization_id: self.id.clone(),
            user_id: user_id.into(),
        }
    }

    pub fn create_group(&self, name: &str, grants: Vec<v1::Grant>) -> v1::CreateGroupRequest {
        v1::CreateGroupRequest {
            organization_id: self.id.clone(),
            name: name.into(),
            grants,
        }
    }

    pub fn add_group_member(&self, group_id: &str, user_id: &str) -> v1::AddGroupMemberRequest {
        v1::AddGroupMemberRequest {
            organization_id: self.id.clone(),
            group_id: group_id.into(),
            user_id: user_id.into(),
        }
    }

    /// Lists the audit log, newest first, in one default page.
    pub fn list_audit_events(&self) -> v1::ListAuditEventsRequest {
        v1::ListAuditEventsRequest {
            organization_id: self.id.clone(),
            ..Default::default()
        }
    }
}

/// A signed-in member of an organisation.
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub token: String,
}

/// The path of `catalogue/<name>.toml` in this repository.
pub fn catalogue_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../catalogue/{name}.toml"))
}

/// A direct permission on `entities`, or on all entities when there are none.
pub fn direct(permission: &str, entities: &[&str]) -> v1::DirectPermission {
    v1::DirectPermission {
        permission: permission.into(),
        entity_ids: entities.iter().map(|id| id.to_string()).collect(),
        all_entities: entities.is_empty(),
    }
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

/// Accepting an invitation with `token`, choosing `password`.
pub fn accept(token: &str, password: &str) -> v1::AcceptInvitationRequest {
    v1::AcceptInvitationRequest {
        token: token.into(),
        password: password.into(),
    }
}

/// The field mask of an update that touches only `paths`.
pub fn update_mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|path| path.to_string()).collect(),
    })
}
