//! Domain records as the rest of the service sees them, whatever stores them.
use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::{
    ids::{ApiKeyId, EntityId, OrganizationId, PermissionKey, RoleId, SessionId, UserId},
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
}

impl Default for OrganizationSettings {
    fn default() -> Self {
        Self {
            invitation_ttl_seconds: DEFAULT_INVITATION_TTL_SECONDS,
            allowed_second_factors: vec![
                SecondFactorMethod::Totp,
                SecondFactorMethod::Email,
                SecondFactorMethod::Sms,
            ],
            require_second_factor: false,
            sso_enabled: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecondFactorMethod {
    Totp,
    Email,
    Sms,
}

impl SecondFactorMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            SecondFactorMethod::Totp => "totp",
            SecondFactorMethod::Email => "email",
            SecondFactorMethod::Sms => "sms",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            SecondFactorMethod::Totp,
            SecondFactorMethod::Email,
            SecondFactorMethod::Sms,
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
}

/// The lifecycle status as stored; EXPIRED and LOCKED are derived when read (SPEC §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
#[derive(Clone, Debug, PartialEq, Eq)]
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
    pub invitation_expires_at: Option<DateTime<Utc>>,
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

#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub id: SessionId,
    pub organization_id: OrganizationId,
    pub user_id: UserId,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
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
