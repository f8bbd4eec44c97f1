//! Domain records as the rest of the service sees them, whatever stores them.
use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::{
    ids::{
        ApiKeyId, AuditEventId, ChallengeId, ClientCertificateMappingId, EntityId, FactorId,
        GroupId, InvitationId, NotificationId, OrganizationId, PermissionKey, RoleId, ScimTokenId,
        SessionId, UserId,
    },
    validate::Email,
};

pub const DEFAULT_INVITATION_TTL_SECONDS: i64 = 7 * 24 * 3600;

#[derive(Clone, Debug, PartialEq)]
pub struct Organization {
    pub id: OrganizationId,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub settings: OrganizationSettings,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OrganizationSettings {
    pub invitation_ttl_seconds: i64,
    pub allowed_second_factors: Vec<SecondFactorMethod>,
    pub require_second_factor: bool,
    pub sso_enabled: bool,
    /// Some SCIM token is live: the identity provider provisions users and memberships (SPEC §5a).
    pub scim_enabled: bool,
}

impl Default for OrganizationSettings {
    fn default() -> Self {
        Self {
            invitation_ttl_seconds: DEFAULT_INVITATION_TTL_SECONDS,
            allowed_second_factors: vec![
                SecondFactorMethod::Totp,
                SecondFactorMethod::Email,
                SecondFactorMethod::Sms,
                SecondFactorMethod::Passkey,
            ],
            require_second_factor: false,
            sso_enabled: false,
            scim_enabled: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecondFactorMethod {
    Totp,
    Email,
    Sms,
    /// A WebAuthn credential (SPEC §4): a second factor, or a sign-in on its own.
    Passkey,
}

impl SecondFactorMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            SecondFactorMethod::Totp => "totp",
            SecondFactorMethod::Email => "email",
            SecondFactorMethod::Sms => "sms",
            SecondFactorMethod::Passkey => "passkey",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            SecondFactorMethod::Totp,
            SecondFactorMethod::Email,
            SecondFactorMethod::Sms,
            SecondFactorMethod::Passkey,
        ]
        .into_iter()
        .find(|method| method.as_str() == text)
    }
}

/// A legal entity (no parent) or a segment of one. The tree is two levels deep.
#[derive(Clone, Debug, PartialEq)]
pub struct Entity {
    pub id: EntityId,
    pub organization_id: OrganizationId,
    pub name: String,
    pub parent: Option<EntityId>,
    pub created_at: DateTime<Utc>,
    /// Set while archived: no grant covers it, and it cannot be granted, until restored.
    pub archived_at: Option<DateTime<Utc>>,
}

/// The lifecycle status as stored; EXPIRED and LOCKED are derived when read (SPEC §2,
/// `users::status_seen`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum UserStatus {
    Pending,
    Expired,
    Active,
    Suspended,
    Archived,
    Locked,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Pending => "pending",
            UserStatus::Expired => "expired",
            UserStatus::Active => "active",
            UserStatus::Suspended => "suspended",
            UserStatus::Archived => "archived",
            UserStatus::Locked => "locked",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            UserStatus::Pending,
            UserStatus::Expired,
            UserStatus::Active,
            UserStatus::Suspended,
            UserStatus::Archived,
            UserStatus::Locked,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// Where a grant applies: everywhere (full access, future entities included) or on listed entities,
/// each covering its segments.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Scope {
    All,
    Entities(BTreeSet<EntityId>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub role: RoleId,
    pub scope: Scope,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectGrant {
    pub permission: PermissionKey,
    pub scope: Scope,
}

#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub id: UserId,
    pub organization_id: OrganizationId,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub status: UserStatus,
    pub owner: bool,
    pub grants: Vec<Grant>,
    pub direct_grants: Vec<DirectGrant>,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
    /// The last use of any of the user's sessions, at most a minute behind (issue 16).
    pub last_active_at: Option<DateTime<Utc>>,
    pub invitation_expires_at: Option<DateTime<Utc>>,
}

/// An invited user before the first write.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub id: UserId,
    pub organization_id: OrganizationId,
    pub email: Email,
    pub first_name: String,
    pub last_name: String,
    pub grants: Vec<Grant>,
    pub direct_grants: Vec<DirectGrant>,
    pub created_at: DateTime<Utc>,
}

/// An invitation token, stored only as its SHA-256 (the plain token goes out through the outbox).
#[derive(Clone, Debug)]
pub struct Invitation {
    pub id: InvitationId,
    pub organization_id: OrganizationId,
    pub user_id: UserId,
    pub token_hash: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Where an invitation stands, as read back by its token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvitationState {
    Live,
    Accepted,
    Superseded,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotificationKind {
    Invitation,
    EmailCode,
    SmsCode,
    PasswordReset,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Invitation => "invitation",
            NotificationKind::EmailCode => "email_code",
            NotificationKind::SmsCode => "sms_code",
            NotificationKind::PasswordReset => "password_reset",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            NotificationKind::Invitation,
            NotificationKind::EmailCode,
            NotificationKind::SmsCode,
            NotificationKind::PasswordReset,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }
}

/// A message in the durable outbox. It carries its token or code until acknowledged, then loses them.
#[derive(Clone, PartialEq)]
pub struct Notification {
    pub id: NotificationId,
    pub organization_id: OrganizationId,
    pub kind: NotificationKind,
    pub recipient: String,
    pub token: Option<String>,
    pub code: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for Notification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notification")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("organization_id", &self.organization_id)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("code", &self.code.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

/// Who did something: a user, the operator, an API key, or nobody signed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actor {
    User(UserId),
    Operator,
    ApiKey,
    /// An identity provider's SCIM token (SPEC §5a).
    ScimToken,
    Anonymous,
}

impl Actor {
    pub fn kind(self) -> &'static str {
        match self {
            Actor::User(_) => "user",
            Actor::Operator => "operator",
            Actor::ApiKey => "api_key",
            Actor::ScimToken => "scim_token",
            Actor::Anonymous => "anonymous",
        }
    }

    pub fn user(self) -> Option<UserId> {
        match self {
            Actor::User(user) => Some(user),
            Actor::Operator | Actor::ApiKey | Actor::ScimToken | Actor::Anonymous => None,
        }
    }
}

/// One audit record (SPEC §6). `before`/`after` are JSON without secrets.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEvent {
    pub id: AuditEventId,
    pub organization_id: OrganizationId,
    pub actor: Actor,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub created_at: DateTime<Utc>,
    pub client_address: Option<String>,
    pub user_agent: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// Filters of ListAuditEvents, combined with AND.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub actor: Option<UserId>,
    pub action: Option<String>,
    pub target_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub before_id: Option<AuditEventId>,
    pub limit: u64,
}

/// The status tabs of ListUsers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusFilter {
    /// Every status but archived.
    NotArchived,
    Is(UserStatus),
    /// Pending, expired or not.
    PendingOrExpired,
}

/// Filters of ListUsers, combined with AND; newest first.
#[derive(Clone, Debug)]
pub struct UserFilter {
    pub status: StatusFilter,
    pub role: Option<RoleId>,
    pub entity: Option<EntityId>,
    /// Lowercased substring of first name, last name or email.
    pub query: Option<String>,
    pub before_id: Option<UserId>,
    pub limit: u64,
    pub now: DateTime<Utc>,
}

/// The fields UpdateUser may replace; `None` leaves one as it is.
#[derive(Clone, Debug, Default)]
pub struct UserChange {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub grants: Option<Vec<Grant>>,
    pub direct_grants: Option<Vec<DirectGrant>>,
}

/// A user moving to another organisation (SPEC §2): the grants they get there, already checked
/// against that organisation's roles and entities.
#[derive(Clone, Debug)]
pub struct UserMove {
    pub user: UserId,
    pub from: OrganizationId,
    pub to: OrganizationId,
    pub grants: Vec<Grant>,
    pub direct_grants: Vec<DirectGrant>,
}

/// What a SCIM replace of a user writes: the email (the SCIM `userName`), names, external id.
#[derive(Clone, Debug)]
pub struct ScimUserChange {
    pub email: Email,
    pub first_name: String,
    pub last_name: String,
    pub external_id: Option<String>,
}

/// Users who inherit the group's grants.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub id: GroupId,
    pub organization_id: OrganizationId,
    pub name: String,
    pub grants: Vec<Grant>,
    pub members: Vec<UserId>,
    pub created_at: DateTime<Utc>,
}

/// A password-reset token, stored only as its SHA-256 (the plain token goes out through the outbox).
#[derive(Clone, Debug)]
pub struct PasswordReset {
    pub id: uuid::Uuid,
    pub organization_id: OrganizationId,
    pub user_id: UserId,
    pub token_hash: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What presenting a refresh token did.
#[derive(Clone, Debug, PartialEq)]
pub enum RefreshOutcome {
    /// The token was current: it is spent now, and the session carries the new one.
    Rotated(Session),
    /// The token had been spent already: its whole session is revoked (reuse detection).
    Reused,
    /// No such token, or its session has ended.
    Invalid,
}

/// An enrolled second factor. The TOTP secret is stored encrypted; codes are stored hashed.
#[derive(Clone, PartialEq)]
pub struct SecondFactor {
    pub id: FactorId,
    pub organization_id: OrganizationId,
    pub user_id: UserId,
    pub method: SecondFactorMethod,
    pub confirmed: bool,
    pub phone_number: Option<String>,
    /// TOTP only: the secret, encrypted with the server's secret key.
    pub encrypted_secret: Option<String>,
    /// Passkeys only: the name the user gave it.
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for SecondFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecondFactor")
            .field("id", &self.id)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// A one-time code waiting to be typed: its hash, what it is for and until when.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingCode {
    pub hash: String,
    pub factor: FactorId,
    pub expires_at: DateTime<Utc>,
    pub failed_attempts: i64,
}

/// A sign-in whose password was right and which waits for a second factor.
#[derive(Clone, Debug, PartialEq)]
pub struct Challenge {
    pub id: ChallengeId,
    pub organization_id: OrganizationId,
    pub user_id: UserId,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub failed_attempts: i64,
    pub code: Option<PendingCode>,
    pub completed: bool,
}

/// An admin-issued, single-use code that completes one sign-in (SPEC §4).
#[derive(Clone, Debug)]
pub struct RecoveryCode {
    pub id: uuid::Uuid,
    pub organization_id: OrganizationId,
    pub user_id: UserId,
    pub code_hash: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// An organisation's OpenID Connect provider (SPEC §4).
#[derive(Clone, Debug, PartialEq)]
pub struct SsoConfig {
    pub organization_id: OrganizationId,
    pub enabled: bool,
    pub issuer: String,
    pub client_id: String,
    /// The provider's RFC 7517 JWK set, as configured.
    pub jwks_json: String,
    /// Given on all entities to users provisioned just in time.
    pub default_role: RoleId,
    /// Lowercase domains whose addresses are provisioned or linked by email; empty means none.
    pub email_domains: Vec<String>,
    /// The owner's opt-in to a default role granting users.write or security.write.
    pub allow_privileged_default_role: bool,
}

/// A verified ID token's identity, as sign-in uses it.
#[derive(Clone, Debug)]
pub struct SsoIdentity {
    pub issuer: String,
    pub subject: String,
    /// Present only when the provider says `email_verified: true`.
    pub verified_email: Option<Email>,
    pub first_name: String,
    pub last_name: String,
    /// SHA-256 of the ID token and its expiry: each token signs in once.
    pub token_hash: String,
    pub token_expires_at: DateTime<Utc>,
}

/// What creating an organisation writes, in one transaction.
#[derive(Clone, Debug)]
pub struct NewOrganization {
    pub organization: Organization,
    pub owner_id: UserId,
    pub owner_email: Email,
    pub owner_first_name: String,
    pub owner_last_name: String,
    pub owner_password_hash: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Role {
    pub id: RoleId,
    pub organization_id: OrganizationId,
    pub name: String,
    pub description: String,
    pub permissions: Vec<PermissionKey>,
    pub predefined: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub organization_id: OrganizationId,
    pub name: String,
    /// The public start of the secret, which finds the key without scanning hashes.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// An identity provider's SCIM bearer token (SPEC §5a): like an API key, stored as a hash.
#[derive(Clone, Debug, PartialEq)]
pub struct ScimToken {
    pub id: ScimTokenId,
    pub organization_id: OrganizationId,
    pub name: String,
    /// The public start of the secret, which finds the token without scanning hashes.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A client certificate's SAN URI that authenticates as its organisation's service principal
/// (mutual TLS), an alternative to an API key.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientCertificateMapping {
    pub id: ClientCertificateMappingId,
    pub organization_id: OrganizationId,
    pub name: String,
    /// Unique across organisations: one certificate identity is one principal.
    pub uri: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub id: SessionId,
    pub organization_id: OrganizationId,
    pub user_id: UserId,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// When the session last proved a password or a factor (sign-in, or a re-proof); `None` for
    /// sessions older than the record.
    pub authenticated_at: Option<DateTime<Utc>>,
    /// The last refresh, or the last call at most a minute apart (`sign_in::USE_RECORDED_EVERY`).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Of the sign-in or the latest refresh, bounded (`Session::with_origin`).
    pub client_address: Option<String>,
    pub user_agent: Option<String>,
}

/// An Ed25519 key that signs access tokens; every replica reads the same rows.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    /// PKCS#8 DER of the private key.
    pub private_der: Vec<u8>,
    /// The 32-byte public key.
    pub public_key: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("private_der", &"***")
            .finish()
    }
}

/// What a WebAuthn ceremony proves when it finishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CeremonyKind {
    /// A signed-in user registers a passkey.
    Registration,
    /// A passkey completes a sign-in challenge (second factor).
    SecondFactor,
    /// A passkey signs in alone.
    SignIn,
}

impl CeremonyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CeremonyKind::Registration => "registration",
            CeremonyKind::SecondFactor => "second_factor",
            CeremonyKind::SignIn => "sign_in",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            CeremonyKind::Registration,
            CeremonyKind::SecondFactor,
            CeremonyKind::SignIn,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }
}

/// A begun WebAuthn ceremony: the relying party's state (its challenge inside) kept in the
/// database, so any replica can finish it; single use, bound to its kind and user (SPEC §4).
#[derive(Clone, Debug, PartialEq)]
pub struct Ceremony {
    pub id: crate::ids::CeremonyId,
    pub kind: CeremonyKind,
    /// The organisation it is bound to; `None` for a passkey sign-in without a hint.
    pub organization_id: Option<OrganizationId>,
    /// The user it is bound to; `None` for a passkey sign-in (the credential names the user).
    pub user_id: Option<UserId>,
    /// For a second factor: the sign-in challenge it completes.
    pub challenge_id: Option<ChallengeId>,
    /// The WebAuthn library's serialised state.
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A registered passkey: the public key credential behind a PASSKEY factor.
#[derive(Clone, Debug, PartialEq)]
pub struct PasskeyCredential {
    pub factor_id: FactorId,
    pub organization_id: OrganizationId,
    pub user_id: UserId,
    /// The credential id, base64url without padding; unique across organisations.
    pub credential_id: String,
    /// The WebAuthn library's serialised credential (public key, counter, flags).
    pub credential: String,
    /// The last signature counter accepted.
    pub sign_count: i64,
}
