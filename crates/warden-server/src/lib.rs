//! The Warden gRPC server: configuration, start-up (database, migrations, keys, catalogue) and the
//! tonic services of `warden.v1`, with reflection and health. `main.rs` and the tests call `serve`.
mod bad_tokens;
mod call;
mod commit_wait;
pub mod config;
mod convert;
mod crypto;
mod delivery;
mod factors;
mod grants;
mod guard;
mod health;
mod http;
mod input;
mod janitor;
mod known_keys;
mod passkeys;
mod requests;
mod secrets;
mod services;
mod state;
mod status;
pub mod telemetry;
mod tls;
mod tokens;

use std::{future::Future, path::Path, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use warden_authz::{Authorizer, RedisCache};
use warden_core::{
    Error,
    catalogue::Catalogue,
    password::PasswordPolicy,
    ports::{NotificationStore, PurgeStore, Store},
};
use warden_proto::v1::{
    api_key_service_server::ApiKeyServiceServer, audit_service_server::AuditServiceServer,
    auth_service_server::AuthServiceServer,
    authorization_service_server::AuthorizationServiceServer,
    group_service_server::GroupServiceServer,
    notification_service_server::NotificationServiceServer,
    organization_service_server::OrganizationServiceServer, role_service_server::RoleServiceServer,
    scim_service_server::ScimServiceServer, user_service_server::UserServiceServer,
};
use warden_store::SqlStore;

pub use warden_core::clock::{Clock, ManualClock, SystemClock};

pub use crate::config::Config;
use crate::{
    commit_wait::CommitWaitLayer,
    config::Secret,
    secrets::PasswordHasher,
    services::{
        api_keys::ApiKeys, audit::Audit, auth::Auth, authorization::Authorization, groups::Groups,
        notifications::Notifications, organizations::Organizations, roles::Roles,
        scim_tokens::ScimTokens, users::Users,
    },
    state::AppState,
    tokens::TokenService,
};

/// The bundled catalogue; `WARDEN_CATALOGUE_PATH` replaces it.
const DEFAULT_CATALOGUE: &str = include_str!("../../../catalogue/payments.toml");

/// gRPC messages above this size are refused before they are decoded.
pub(crate) const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Serves the v1 API on `listener`, and the HTTP API on `config.http_addr`, until `shutdown`
/// resolves; see `serve_listeners`.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let http = match config.http_addr {
        Some(address) => Some(TcpListener::bind(address).await.map_err(Error::internal)?),
        None => None,
    };
    serve_listeners(listener, http, config, clock, shutdown).await
}

/// Serves the v1 API on `listener` and the HTTP API (`http/`) on `http` until `shutdown` resolves;
/// then reports NOT_SERVING, stops accepting, lets in-flight requests finish (for at most
/// `shutdown_grace_ms`) and flushes telemetry.
pub async fn serve_listeners(
    listener: TcpListener,
    http: Option<TcpListener>,
    config: Config,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let telemetry = telemetry::Telemetry::start(&config)?;
    let (state, sql) = start(&config, clock, &telemetry).await?;
    let state = Arc::new(state);
    let telemetry = Arc::new(telemetry);
    let (health, health_service) = tonic_health::server::health_reporter();
    health::set(&health, true).await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(warden_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(Error::internal)?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(warden_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(Error::internal)?;
    macro_rules! limited {
        ($server:ident, $service:expr) => {
            $server::new($service).max_decoding_message_size(MAX_MESSAGE_BYTES)
        };
    }
    // The worker dies with the server: aborting it is safe, an unacknowledged message is resent.
    let worker = config.delivery_interval_ms.map(|ms| {
        let store: Arc<dyn NotificationStore> = state.store.clone();
        tokio::spawn(delivery::run(
            store,
            Arc::new(delivery::LogNotifier),
            Duration::from_millis(ms.max(10)),
        ))
    });
    // Aborting mid-sweep is safe: each batch is one statement.
    let janitor = tokio::spawn(janitor::run(
        state.store.clone() as Arc<dyn PurgeStore>,
        state.clock.clone(),
        Duration::from_millis(config.janitor_interval_ms.max(10)),
    ));
    let poller = tokio::spawn(poll_revisions(state.authorizer.clone()));
    let address = listener.local_addr().map_err(Error::internal)?;
    let tls_files = config
        .tls_cert_file
        .clone()
        .zip(config.tls_key_file.clone())
        .map(|(cert, key)| tls::TlsFiles {
            cert,
            key,
            client_ca: config.tls_client_ca_file.clone(),
            http1: false,
        });
    let tls = tls_files.is_some();
    let incoming = tls::incoming(listener, tls_files.clone(), state.clock.clone())?;
    // Probes that cannot speak TLS ask this listener; it shares the health reporter, so it answers
    // exactly what the API port's health service answers.
    let health_only = match config.health_listen_addr {
        Some(health_address) => {
            let health_listener = TcpListener::bind(health_address)
                .await
                .map_err(Error::internal)?;
            tracing::info!(address = %health_address, "health checks served in plaintext");
            Some(tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(health_service.clone())
                    .serve_with_incoming(TcpListenerStream::new(health_listener)),
            ))
        }
        None => None,
    };
    let probe = tokio::spawn(health::probe(
        health.clone(),
        sql,
        Duration::from_millis(config.health_probe_interval_ms),
    ));
    let probe_stopper = probe.abort_handle();
    let (stopping, mut stopped) = tokio::sync::watch::channel(false);
    // A second tonic server with HTTP/1.1 on: the same TLS, request layer and graceful shutdown.
    let http_served = match http {
        Some(http_listener) => {
            let http_address = http_listener.local_addr().map_err(Error::internal)?;
            let tls_files = tls_files.map(|files| tls::TlsFiles {
                http1: true,
                ..files
            });
            let incoming = tls::incoming(http_listener, tls_files, state.clock.clone())?;
            let mut http_stopped = stopped.clone();
            tracing::info!(address = %http_address, tls, "http api serving");
            Some(
                tonic::transport::Server::builder()
                    .accept_http1(true)
                    .layer(requests::RpcLayer(telemetry.clone()))
                    // SCIM writes: answered a lease after they committed, as gRPC writes are.
                    .layer(CommitWaitLayer(state.authorizer.lease()))
                    .add_routes(http::router(state.clone(), tls))
                    .serve_with_incoming_shutdown(incoming, async move {
                        let _ = http_stopped.wait_for(|stopping| *stopping).await;
                    }),
            )
        }
        None => None,
    };
    let http_served = async move {
        match http_served {
            Some(served) => served.await.map_err(Error::internal),
            None => Ok(()),
        }
    };
    let shutdown = {
        let health = health.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down: not serving, finishing in-flight rpcs");
            probe.abort(); // Nothing may report SERVING again.
            health::set(&health, false).await;
            stopping.send_replace(true);
        }
    };
    tracing::info!(%address, tls, "warden serving");
    let served = tonic::transport::Server::builder()
        .layer(requests::RpcLayer(telemetry.clone()))
        .layer(CommitWaitLayer(state.authorizer.lease()))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(limited!(
            OrganizationServiceServer,
            Organizations(state.clone())
        ))
        .add_service(limited!(UserServiceServer, Users(state.clone())))
        .add_service(limited!(RoleServiceServer, Roles(state.clone())))
        .add_service(limited!(AuthServiceServer, Auth(state.clone())))
        .add_service(limited!(GroupServiceServer, Groups(state.clone())))
        .add_service(limited!(ApiKeyServiceServer, ApiKeys(state.clone())))
        .add_service(limited!(ScimServiceServer, ScimTokens(state.clone())))
        .add_service(limited!(
            AuthorizationServiceServer,
            Authorization(state.clone())
        ))
        .add_service(limited!(
            NotificationServiceServer,
            Notifications(state.clone())
        ))
        .add_service(limited!(AuditServiceServer, Audit(state.clone())))
        .serve_with_incoming_shutdown(incoming, shutdown);
    let served = async move {
        let (grpc, http) = tokio::join!(served, http_served);
        grpc.map_err(Error::internal).and(http)
    };
    let grace = Duration::from_millis(config.shutdown_grace_ms);
    let served = tokio::select! {
        served = served => served,
        () = async {
            let _ = stopped.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace_ms = config.shutdown_grace_ms, "rpcs still running after the grace period: stopping anyway");
            Ok(())
        }
    };
    if let Some(worker) = worker {
        worker.abort();
    }
    janitor.abort();
    poller.abort();
    if let Some(health_only) = health_only {
        health_only.abort();
    }
    probe_stopper.abort(); // Also when serving failed before any shutdown.
    telemetry.shutdown().await;
    tracing::info!("warden stopped");
    served
}

/// Keeps this replica's copy of the revisions current: twice per lease, so the lease stays fresh
/// while the database answers; when it does not, checks read the database (and fail with it).
async fn poll_revisions(authorizer: Authorizer) {
    let mut every = tokio::time::interval(authorizer.lease() / 2);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(error) = authorizer.poll().await {
            tracing::warn!(%error, "revision poll failed; checks read the database until it recovers");
        }
    }
}

/// Everything before the first RPC: fails fast, with the reason, when anything is missing.
async fn start(
    config: &Config,
    clock: Arc<dyn Clock>,
    telemetry: &telemetry::Telemetry,
) -> Result<(AppState, Arc<SqlStore>), Error> {
    config.check().map_err(Error::internal)?;
    let database_url = match &config.database_url {
        Some(url) => url.clone(),
        None => {
            let file = private_file(&config.data_dir, "warden.db")?;
            format!("sqlite://{}?mode=rwc", file.display())
        }
    };
    let sealer = crypto::SecretBox::new(&match &config.secret_key {
        Some(key) => key.0.clone(),
        None => secret_file(
            &config.data_dir,
            "secret-key",
            crypto::SecretBox::generate_key,
        )?,
    })?;
    let store = Arc::new(
        SqlStore::connect(
            &database_url,
            config.database_max_connections,
            Arc::new(sealer.clone()),
        )
        .await?,
    );
    let catalogue = load_catalogue(config.catalogue_path.as_deref())?;
    // The catalogue file is the truth for predefined roles, in every organisation, from every start.
    warden_core::ports::RoleStore::sync_predefined_roles(
        store.as_ref(),
        catalogue.predefined_roles(),
        clock.now(),
    )
    .await?;
    report_orphans(store.as_ref(), &catalogue).await?;
    let operator_token = match &config.operator_token {
        Some(token) => token.clone(),
        None => Secret(secret_file(&config.data_dir, "operator-token", || {
            Ok(format!("wop_{}", secrets::random_token(32)?))
        })?),
    };
    let operator_token_hash = secrets::sha256_hex(&operator_token.0);
    let tokens = TokenService::load(
        store.clone() as Arc<dyn warden_core::ports::SigningKeyStore>,
        config.issuer.clone(),
        config.audience.clone(),
        config.access_token_ttl_seconds,
        sealer.clone(),
        clock.now(),
    )
    .await?;
    let sql = store.clone();
    let store: Arc<dyn Store> = store;
    // Only exported traces need the spans around the authorizer's reads: the hot path stays bare.
    let source: Arc<dyn warden_core::ports::SubjectSource> = match &telemetry.metrics {
        Some(metrics) => {
            let pool = sql.clone();
            metrics.observe_pool(move || pool.pool_use());
            Arc::new(telemetry::TracedSource(store.clone()))
        }
        None => store.clone(),
    };
    let catalogue = Arc::new(catalogue);
    let mut authorizer = Authorizer::new(
        source,
        catalogue.clone(),
        Duration::from_millis(config.commit_wait_ms),
    )
    .with_capacity(config.cache_subjects);
    if let Some(url) = &config.redis_url {
        let timeout = Duration::from_millis(config.redis_timeout_ms);
        authorizer = authorizer.with_shared(Arc::new(RedisCache::new(url, timeout)?));
    }
    let state = AppState {
        clock,
        authorizer,
        metrics: telemetry.metrics.clone(),
        store,
        catalogue,
        tokens,
        passwords: PasswordHasher::new(config.argon2_memory_kib, config.argon2_iterations)?,
        policy: PasswordPolicy::new(config.password_min_chars, 256),
        sealer,
        operator_token_hash,
        reset_ttl: chrono::Duration::seconds(
            i64::try_from(config.password_reset_ttl_seconds).map_err(Error::internal)?,
        ),
        sso_max_token_age: chrono::Duration::seconds(
            i64::try_from(config.sso_max_id_token_age_seconds).map_err(Error::internal)?,
        ),
        limiter: guard::limiter(config.unauthenticated_rate_per_minute),
        limits: guard::Limits::new(config).map_err(Error::internal)?,
        bad_tokens: bad_tokens::BadTokens::new(config.failed_authentication_per_minute),
        email_conflicts: guard::per_user_per_hour(config.email_conflicts_per_hour),
        api_key_touches: Default::default(),
        known_keys: Default::default(),
        known_mappings: Default::default(),
        relying_party: passkeys::RelyingParty::new(
            &config.webauthn_rp_id,
            &config.webauthn_origins,
        )
        .map_err(Error::internal)?,
        refresh_ttl: chrono::Duration::seconds(
            i64::try_from(config.refresh_token_ttl_seconds).map_err(Error::internal)?,
        ),
    };
    Ok((state, sql))
}

/// Reads `<data_dir>/<name>`, creating it (mode 0600) with `make()` the first time. `name` is a
/// secret of the embedded default: production passes it in the environment instead.
fn secret_file(
    data_dir: &Path,
    name: &str,
    make: impl FnOnce() -> Result<String, Error>,
) -> Result<String, Error> {
    use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _};
    private_dir(data_dir)?;
    let path = data_dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(value) if !value.trim().is_empty() => {
            tracing::info!(path = %path.display(), "{name} read from file");
            return Ok(value.trim().to_owned());
        }
        Ok(_) => return Err(Error::internal(format!("{} is empty", path.display()))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(Error::internal(error)),
    }
    let value = make()?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(Error::internal)?;
    file.write_all(value.as_bytes()).map_err(Error::internal)?;
    tracing::info!(path = %path.display(), "{name} generated");
    Ok(value)
}

/// The data directory holds the embedded database and generated secrets: only the server's user
/// may enter it (0700), whatever the umask.
fn private_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir).map_err(Error::internal)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(Error::internal)
}

/// `<dir>/<name>` created if missing and readable by the server's user only (0600). SQLite gives its
/// `-wal` and `-shm` files the mode of the database file.
fn private_file(dir: &Path, name: &str) -> Result<std::path::PathBuf, Error> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    private_dir(dir)?;
    let path = dir.join(name);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .map_err(Error::internal)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(Error::internal)?;
    Ok(path)
}

/// The catalogue at `path`, or the bundled payments catalogue. A file that fails validation stops
/// the server with a message naming the file, the line and the key.
fn load_catalogue(path: Option<&std::path::Path>) -> Result<Catalogue, Error> {
    let (name, text) = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|err| Error::invalid("catalogue", format!("{}: {err}", path.display())))?;
            (path.display().to_string(), text)
        }
        None => (
            "catalogue/payments.toml (bundled)".to_owned(),
            DEFAULT_CATALOGUE.to_owned(),
        ),
    };
    let catalogue = Catalogue::from_toml(&text).and_then(|catalogue| {
        catalogue.ensure_serves_warden()?;
        Ok(catalogue)
    });
    catalogue.map_err(|err| match err {
        Error::Invalid { reason, .. } => Error::invalid("catalogue", format!("{name}: {reason}")),
        other => other,
    })
}

/// Grants a catalogue change orphaned: permissions that roles or direct grants still name, and
/// predefined roles still held, that the catalogue no longer has. They allow nothing new (checks
/// know only catalogue keys) and nothing is deleted, so putting the old file back restores them;
/// the log says which, so an operator can move their holders.
async fn report_orphans(store: &SqlStore, catalogue: &Catalogue) -> Result<(), Error> {
    use warden_core::ports::RoleStore;
    let permissions: Vec<String> = (store.permission_keys_in_use().await?)
        .into_iter()
        .filter(|key| catalogue.permission(key).is_none())
        .collect();
    let roles: Vec<String> = (store.predefined_roles_held().await?)
        .into_iter()
        .filter(|id| catalogue.predefined_role(id).is_none())
        .collect();
    if !permissions.is_empty() || !roles.is_empty() {
        tracing::warn!(
            ?permissions,
            ?roles,
            "the catalogue orphans existing grants: these permissions and predefined roles are \
             held but not in the catalogue"
        );
    }
    Ok(())
}
