//! The one documented configuration (SPEC §8), read from the environment and an optional TOML file
//! with figment; tests build a `Config` value and never touch the process environment.
use std::{net::SocketAddr, path::PathBuf};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

/// A secret string: serialises as itself, prints as `***`.
#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct Config {
    /// `WARDEN_LISTEN_ADDR`: where `warden` listens (the binary only; tests hand over a listener).
    pub listen_addr: SocketAddr,
    /// `WARDEN_HTTP_ADDR`: the HTTP listener of OpenID discovery, the JWKS and the AuthZEN API; it
    /// speaks TLS when the gRPC port does, with the same files. Default `127.0.0.1:8080`.
    pub http_addr: Option<SocketAddr>,
    /// `DATABASE_URL`: `postgres://…` or `sqlite://…`; unset means `sqlite://<data_dir>/warden.db`.
    pub database_url: Option<String>,
    /// `REDIS_URL`: the shared second level of the subject cache (`redis://…`, or a Redis Cluster's
    /// seed nodes separated by commas); unset, each replica caches in process only.
    pub redis_url: Option<String>,
    /// `WARDEN_OPERATOR_TOKEN`: unset means generated once into `<data_dir>/operator-token` (mode 0600).
    pub operator_token: Option<Secret>,
    /// `WARDEN_SECRET_KEY`: 32 bytes, base64url, sealing TOTP secrets at rest; every replica needs the
    /// same one. Unset means generated once into `<data_dir>/secret-key` (mode 0600).
    pub secret_key: Option<Secret>,
    /// `WARDEN_DATA_DIR`: the embedded database and generated operator token live here.
    pub data_dir: PathBuf,
    /// `WARDEN_CATALOGUE_PATH`: a deployment's own permission catalogue; unset means the bundled one.
    pub catalogue_path: Option<PathBuf>,
    /// `WARDEN_ISSUER` and `WARDEN_AUDIENCE`: the `iss` and `aud` of access tokens.
    pub issuer: String,
    pub audience: String,
    /// `WARDEN_ACCESS_TOKEN_TTL_SECONDS`: at most 900 (SPEC §4).
    pub access_token_ttl_seconds: u64,
    /// `WARDEN_REFRESH_TOKEN_TTL_SECONDS`: how long a session may be refreshed.
    pub refresh_token_ttl_seconds: u64,
    /// `WARDEN_PASSWORD_MIN_CHARS`: at least 8; default 15 (NIST SP 800-63B rev. 4, single factor).
    pub password_min_chars: usize,
    /// `WARDEN_ARGON2_MEMORY_KIB`, `WARDEN_ARGON2_ITERATIONS`: argon2id cost; defaults are OWASP's
    /// (19 MiB, 2 passes, 1 lane). Tests lower them.
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    /// `WARDEN_DATABASE_MAX_CONNECTIONS`: pool size per replica.
    pub database_max_connections: u32,
    /// `WARDEN_DELIVERY_INTERVAL_MS`: when set, a built-in worker drains the outbox this often and
    /// logs each message (without its secret). Unset: an external worker drains it over the API.
    pub delivery_interval_ms: Option<u64>,
    /// `WARDEN_UNAUTHENTICATED_RATE_PER_MINUTE`: calls per minute and source address to the RPCs
    /// that need no credentials (sign-in, invitations, resets, refresh), with the same burst.
    pub unauthenticated_rate_per_minute: u32,
    /// `WARDEN_PASSWORD_RESET_TTL_SECONDS`: how long a password-reset token stays valid.
    pub password_reset_ttl_seconds: u64,
    /// `WARDEN_FAILED_AUTHENTICATION_PER_MINUTE`: bearer tokens that authenticate nothing (a wrong
    /// operator token, a junk API key or JWT) per minute and source address; past it the address is
    /// refused with RESOURCE_EXHAUSTED before its token is even looked at.
    pub failed_authentication_per_minute: u32,
    /// `WARDEN_JANITOR_INTERVAL_MS`: how often each replica purges rows that stopped mattering a
    /// day ago (idle throttles, expired challenges and resets, used SSO tokens, ended sessions,
    /// acknowledged notifications).
    pub janitor_interval_ms: u64,
    /// `WARDEN_COMMIT_WAIT_MS`: the lease of each replica's copy of the revisions (SPEC §5). Every
    /// write that changes an answer is acknowledged this long after it commits, and replicas poll
    /// the change feed twice as often, so checks answer from memory and still never contradict an
    /// acknowledged write. 2 to 10000; default 50.
    pub commit_wait_ms: u64,
    /// `WARDEN_REDIS_TIMEOUT_MS`: the longest a check waits on Redis (connect or answer) before it
    /// loads from the database instead; 1 to 10000, default 50.
    pub redis_timeout_ms: u64,
    /// `WARDEN_CACHE_SUBJECTS`: compiled subjects each replica keeps in memory (a few hundred
    /// bytes each); past it the cache starts again empty. Size it to the users that check often.
    pub cache_subjects: usize,
    /// `WARDEN_SSO_MAX_ID_TOKEN_AGE_SECONDS`: an SSO ID token whose `iat` is older than this (plus
    /// the 30 s leeway) is refused, however late its `exp`; 1 to 86400.
    pub sso_max_id_token_age_seconds: u64,
    /// `WARDEN_EMAIL_CONFLICTS_PER_HOUR`: ALREADY_EXISTS answers to InviteUser per calling user and
    /// hour (with the same burst), each audited as `user.invitation_refused`; past it the caller is
    /// answered RESOURCE_EXHAUSTED, so no tenant can probe which addresses exist elsewhere.
    pub email_conflicts_per_hour: u32,
    /// `WARDEN_ACCOUNT_FREE_FAILURES`: consecutive failed password or code checks of one account
    /// before its back-off starts (1 s, doubling); default 4, so the 5th failure backs off and the
    /// 10th waits 32 s. A success clears the account.
    pub account_free_failures: i64,
    /// `WARDEN_ACCOUNT_MAX_BACKOFF_SECONDS`: the longest back-off of one account; default 900.
    pub account_max_backoff_seconds: i64,
    /// `WARDEN_ADDRESS_FAILURES_PER_WINDOW`: failed password or code checks from one source address
    /// (IPv6 per /64), across all accounts, before the address is refused until its window ends;
    /// default 100. Successes never count.
    pub address_failures_per_window: i64,
    /// `WARDEN_ADDRESS_WINDOW_SECONDS`: the window of that budget; default 900.
    pub address_window_seconds: i64,
    /// `WARDEN_TRUSTED_PROXIES`: comma-separated CIDRs (`10.0.0.0/8, fd00::/8`) of proxies whose
    /// `X-Forwarded-For` or `Forwarded` header names the client; the right-most address that is not
    /// a trusted proxy is the client. Empty (the default): the TCP peer is the client.
    pub trusted_proxies: String,
    /// `WARDEN_SECOND_FACTOR_SENDS_PER_USER_PER_HOUR`: second-factor enrolments and email or SMS
    /// codes sent per user and hour; default 5.
    pub second_factor_sends_per_user_per_hour: i64,
    /// `WARDEN_SECOND_FACTOR_SENDS_PER_ORGANIZATION_PER_HOUR`: the same per organisation; default 100.
    pub second_factor_sends_per_organization_per_hour: i64,
    /// `WARDEN_AUTHENTICATED_RATE_PER_MINUTE`: calls per minute of one signed-in user, with the same
    /// burst (per replica); default 600.
    pub authenticated_rate_per_minute: u32,
    /// `WARDEN_TLS_CERT_FILE` and `WARDEN_TLS_KEY_FILE`: PEM files (the chain, leaf first, and its
    /// private key); when both are set the gRPC port speaks TLS only. Re-read when they change
    /// (looked at most once a second), so a renewed certificate is served without a restart.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// `WARDEN_TLS_CLIENT_CA_FILE`: PEM CA certificates; when set (with TLS), every client must
    /// present a certificate chaining to one of them, unexpired, or its handshake fails. Read at
    /// start.
    pub tls_client_ca_file: Option<PathBuf>,
    /// `WARDEN_HEALTH_LISTEN_ADDR`: when set, a second, plaintext listener serving only
    /// `grpc.health.v1`, for probes that cannot speak TLS (the kubelet's gRPC probe).
    pub health_listen_addr: Option<SocketAddr>,
    /// `WARDEN_LOG_FORMAT`: `text` (the default, for people) or `json` (one object a line). The
    /// level comes from `RUST_LOG` (default `info`).
    pub log_format: LogFormat,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: an OTLP/gRPC collector (`http://collector:4317`); when set,
    /// traces and metrics go there. Unset: nothing is exported. The exporter also honours the other
    /// standard `OTEL_EXPORTER_OTLP_*` variables (headers, timeout) and `OTEL_RESOURCE_ATTRIBUTES`.
    pub otel_exporter_otlp_endpoint: Option<String>,
    /// `OTEL_SERVICE_NAME`: the `service.name` of every span and metric; default `warden`.
    pub otel_service_name: String,
    /// `OTEL_METRIC_EXPORT_INTERVAL`: milliseconds between metric exports; default 60000.
    pub otel_metric_export_interval: u64,
    /// `OTEL_BSP_SCHEDULE_DELAY`: milliseconds between span batch exports; default 5000.
    pub otel_bsp_schedule_delay: u64,
    /// `WARDEN_HEALTH_PROBE_INTERVAL_MS`: how often the health service asks the database
    /// `SELECT 1` (it answers NOT_SERVING while the database does not); default 1000.
    pub health_probe_interval_ms: u64,
    /// `WARDEN_SHUTDOWN_GRACE_MS`: after SIGTERM, how long in-flight RPCs may still run before the
    /// server exits anyway; default 10000.
    pub shutdown_grace_ms: u64,
    /// `WARDEN_WEBAUTHN_RP_ID`: the passkeys' relying-party id, the domain they are bound to
    /// (`example.com`); default `localhost`.
    pub webauthn_rp_id: String,
    /// `WARDEN_WEBAUTHN_ORIGINS`: comma-separated origins browsers may register and use passkeys
    /// from, each `https://` on the relying-party id or a subdomain (`http://` only for localhost);
    /// default `http://localhost:8080`.
    pub webauthn_origins: String,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// An operator token shorter than this is refused at start: it guards every organisation.
pub const MIN_OPERATOR_TOKEN_CHARS: usize = 32;

impl Default for Config {
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            http_addr: Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
            database_url: None,
            redis_url: None,
            operator_token: None,
            secret_key: None,
            data_dir: PathBuf::from("./data"),
            catalogue_path: None,
            issuer: "warden".into(),
            audience: "warden".into(),
            access_token_ttl_seconds: 900,
            refresh_token_ttl_seconds: 30 * 24 * 3600,
            password_min_chars: 15,
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            database_max_connections: 10,
            delivery_interval_ms: None,
            unauthenticated_rate_per_minute: 120,
            password_reset_ttl_seconds: 3600,
            failed_authentication_per_minute: 30,
            janitor_interval_ms: 5 * 60 * 1000,
            commit_wait_ms: 50,
            redis_timeout_ms: 50,
            cache_subjects: warden_authz::DEFAULT_CACHED_SUBJECTS,
            sso_max_id_token_age_seconds: 600,
            email_conflicts_per_hour: 5,
            account_free_failures: 4,
            account_max_backoff_seconds: 15 * 60,
            address_failures_per_window: 100,
            address_window_seconds: 15 * 60,
            trusted_proxies: String::new(),
            second_factor_sends_per_user_per_hour: 5,
            second_factor_sends_per_organization_per_hour: 100,
            authenticated_rate_per_minute: 600,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            health_listen_addr: None,
            log_format: LogFormat::Text,
            otel_exporter_otlp_endpoint: None,
            otel_service_name: "warden".into(),
            otel_metric_export_interval: 60_000,
            otel_bsp_schedule_delay: 5_000,
            health_probe_interval_ms: 1_000,
            shutdown_grace_ms: 10_000,
            webauthn_rp_id: "localhost".into(),
            webauthn_origins: "http://localhost:8080".into(),
        }
    }
}

impl Config {
    /// Defaults, then `WARDEN_CONFIG_FILE` (TOML, same keys as the fields), then the environment.
    pub fn from_env() -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Ok(path) = std::env::var("WARDEN_CONFIG_FILE") {
            figment = figment.merge(Toml::file(path));
        }
        let figment = figment
            .merge(
                Env::prefixed("WARDEN_")
                    .ignore(&["config_file"])
                    .filter(|key| !key.is_empty()),
            )
            .merge(Env::raw().only(&[
                "DATABASE_URL",
                "REDIS_URL",
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "OTEL_SERVICE_NAME",
                "OTEL_METRIC_EXPORT_INTERVAL",
                "OTEL_BSP_SCHEDULE_DELAY",
            ]));
        Self::from_figment(figment)
    }

    /// Extracts and checks a configuration; empty strings count as unset.
    pub fn from_figment(figment: Figment) -> Result<Self, Box<figment::Error>> {
        let mut config: Config = figment.extract().map_err(Box::new)?;
        config.database_url = config.database_url.filter(|url| !url.trim().is_empty());
        config.redis_url = config.redis_url.filter(|url| !url.trim().is_empty());
        config.operator_token = config
            .operator_token
            .filter(|token| !token.0.trim().is_empty());
        config.secret_key = config.secret_key.filter(|key| !key.0.trim().is_empty());
        config.tls_cert_file = config
            .tls_cert_file
            .filter(|path| !path.as_os_str().is_empty());
        config.tls_key_file = config
            .tls_key_file
            .filter(|path| !path.as_os_str().is_empty());
        config.otel_exporter_otlp_endpoint = config
            .otel_exporter_otlp_endpoint
            .filter(|url| !url.trim().is_empty());
        if config.otel_service_name.trim().is_empty() {
            config.otel_service_name = Config::default().otel_service_name;
        }
        config
            .check()
            .map_err(|reason| Box::new(figment::Error::from(reason)))?;
        Ok(config)
    }

    /// The limits every configuration must respect, whether read from the environment or built by
    /// a caller of `serve`: a bad value stops the start with its reason.
    pub fn check(&self) -> Result<(), String> {
        let config = self;
        if config
            .operator_token
            .as_ref()
            .is_some_and(|token| token.0.chars().count() < MIN_OPERATOR_TOKEN_CHARS)
        {
            return Err(format!(
                "operator_token: must be at least {MIN_OPERATOR_TOKEN_CHARS} characters"
            ));
        }
        if config.tls_cert_file.is_some() != config.tls_key_file.is_some() {
            return Err("tls_cert_file, tls_key_file: set both or neither".to_owned());
        }
        if config.tls_client_ca_file.is_some() && config.tls_cert_file.is_none() {
            return Err("tls_client_ca_file: needs tls_cert_file and tls_key_file".to_owned());
        }
        if config.email_conflicts_per_hour == 0 {
            return Err("email_conflicts_per_hour: must be at least 1".to_owned());
        }
        if config.failed_authentication_per_minute == 0 {
            return Err("failed_authentication_per_minute: must be at least 1".to_owned());
        }
        if config.access_token_ttl_seconds == 0 || config.access_token_ttl_seconds > 900 {
            return Err("access_token_ttl_seconds: must be 1 to 900".to_owned());
        }
        if config.password_min_chars < 8 {
            return Err("password_min_chars: must be at least 8".to_owned());
        }
        warden_core::network::TrustedProxies::parse(&config.trusted_proxies)?;
        let at_least_one = [
            (
                "account_max_backoff_seconds",
                config.account_max_backoff_seconds,
            ),
            (
                "address_failures_per_window",
                config.address_failures_per_window,
            ),
            ("address_window_seconds", config.address_window_seconds),
            (
                "second_factor_sends_per_user_per_hour",
                config.second_factor_sends_per_user_per_hour,
            ),
            (
                "second_factor_sends_per_organization_per_hour",
                config.second_factor_sends_per_organization_per_hour,
            ),
            (
                "authenticated_rate_per_minute",
                i64::from(config.authenticated_rate_per_minute),
            ),
        ];
        if let Some((name, _)) = at_least_one.iter().find(|(_, value)| *value < 1) {
            return Err(format!("{name}: must be at least 1"));
        }
        if config.account_free_failures < 0 {
            return Err("account_free_failures: must not be negative".to_owned());
        }
        if config.unauthenticated_rate_per_minute == 0 {
            return Err("unauthenticated_rate_per_minute: must be at least 1".to_owned());
        }
        if !(1..=10_000).contains(&config.redis_timeout_ms) {
            return Err("redis_timeout_ms: must be 1 to 10000".to_owned());
        }
        if !(1..=100_000_000).contains(&config.cache_subjects) {
            return Err("cache_subjects: must be 1 to 100000000".to_owned());
        }
        if !(2..=10_000).contains(&config.commit_wait_ms) {
            return Err("commit_wait_ms: must be 2 to 10000".to_owned());
        }
        if config.otel_metric_export_interval == 0 || config.otel_bsp_schedule_delay == 0 {
            return Err(
                "otel_metric_export_interval, otel_bsp_schedule_delay: must be at least 1"
                    .to_owned(),
            );
        }
        if config.health_probe_interval_ms == 0 {
            return Err("health_probe_interval_ms: must be at least 1".to_owned());
        }
        if !(1..=86_400).contains(&config.sso_max_id_token_age_seconds) {
            return Err("sso_max_id_token_age_seconds: must be 1 to 86400".to_owned());
        }
        crate::passkeys::parse_origins(&config.webauthn_rp_id, &config.webauthn_origins)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_from_the_given_map_and_empty_ones_count_as_unset() {
        let figment = Figment::from(Serialized::defaults(Config::default()))
            .merge(("listen_addr", "127.0.0.1:6000"))
            .merge(("database_url", ""))
            .merge(("operator_token", "s3cret-s3cret-s3cret-s3cret-s3cret"));
        let config = Config::from_figment(figment).unwrap();
        assert_eq!(config.listen_addr.port(), 6000);
        assert_eq!(config.database_url, None);
        assert_eq!(format!("{:?}", config.operator_token), "Some(***)");
    }

    #[test]
    fn an_operator_token_under_32_characters_is_refused() {
        let figment = Figment::from(Serialized::defaults(Config::default()))
            .merge(("operator_token", "x".repeat(31)));
        let error = Config::from_figment(figment).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("operator_token: must be at least 32")
        );
        let figment = Figment::from(Serialized::defaults(Config::default()))
            .merge(("operator_token", "x".repeat(32)));
        assert!(Config::from_figment(figment).is_ok());
    }

    #[test]
    fn a_tls_certificate_without_its_key_is_refused() {
        let figment = Figment::from(Serialized::defaults(Config::default()))
            .merge(("tls_cert_file", "/etc/warden/tls/tls.crt"))
            .merge(("tls_key_file", ""));
        let error = Config::from_figment(figment).unwrap_err();
        assert!(error.to_string().contains("set both or neither"), "{error}");
    }

    #[test]
    fn an_access_token_ttl_over_fifteen_minutes_is_refused() {
        let figment = Figment::from(Serialized::defaults(Config::default()))
            .merge(("access_token_ttl_seconds", 901));
        assert!(Config::from_figment(figment).is_err());
    }

    #[test]
    fn passkey_origins_must_belong_to_the_relying_party_id() {
        assert!(Config::default().check().is_ok(), "the localhost default");
        let figment = Figment::from(Serialized::defaults(Config::default()))
            .merge(("webauthn_rp_id", "example.com"))
            .merge(("webauthn_origins", "https://login.example.org"));
        let error = Config::from_figment(figment).unwrap_err();
        assert!(error.to_string().contains("webauthn_origins"), "{error}");
    }

    #[test]
    fn the_sso_id_token_age_defaults_to_ten_minutes_and_zero_is_refused() {
        assert_eq!(Config::default().sso_max_id_token_age_seconds, 600);
        let figment = Figment::from(Serialized::defaults(Config::default()))
            .merge(("sso_max_id_token_age_seconds", 0));
        assert!(Config::from_figment(figment).is_err());
    }
}
