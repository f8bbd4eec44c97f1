//! Storage traits the domain owns; `warden-store` implements them with sea-orm. Reads filter on the
//! organisation inside the query; each write is one transaction.
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    Error,
    decision::{EntityTree, Subject},
    ids::{ApiKeyId, EntityId, OrganizationId, SessionId, UserId},
    model::{ApiKey, Entity, NewOrganization, Organization, Role, Session, SigningKey, User},
    validate::Email,
};

#[async_trait]
pub trait OrganizationStore: Send + Sync {
    /// Writes the organisation, its predefined roles and its owner (with an `owner` grant on all
    /// entities) in one transaction. `EmailInUse` when the owner's email is taken anywhere.
    async fn create_organization(
        &self,
        new: &NewOrganization,
        roles: &[Role],
    ) -> Result<(Organization, User), Error>;
    async fn find_organization(&self, id: OrganizationId) -> Result<Option<Organization>, Error>;
    /// `NotFound("parent_entity_id")` when the parent is not in the organisation;
    /// `FailedPrecondition` when it is itself a segment.
    async fn create_entity(&self, entity: &Entity) -> Result<Entity, Error>;
    /// Oldest first, after the cursor.
    async fn list_entities(
        &self,
        organization: OrganizationId,
        after: Option<EntityId>,
        limit: u64,
    ) -> Result<Vec<Entity>, Error>;
}

#[async_trait]
pub trait UserStore: Send + Sync {
    async fn find_user(
        &self,
        organization: OrganizationId,
        user: UserId,
    ) -> Result<Option<User>, Error>;
    /// The user with this sign-in email, in any organisation, and their password hash if they have one.
    async fn find_credentials(
        &self,
        email: &Email,
    ) -> Result<Option<(User, Option<String>)>, Error>;
    async fn record_sign_in(
        &self,
        user: UserId,
        session: &Session,
        refresh_hash: &str,
        at: DateTime<Utc>,
    ) -> Result<(), Error>;
}

#[async_trait]
pub trait RoleStore: Send + Sync {
    /// Predefined roles first (in catalogue order), then custom roles oldest first; `after` is the
    /// opaque sort key of the last role of the previous page.
    async fn list_roles(
        &self,
        organization: OrganizationId,
        after: Option<String>,
        limit: u64,
    ) -> Result<Vec<(String, Role)>, Error>;
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn find_session(&self, id: SessionId) -> Result<Option<Session>, Error>;
}

#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    async fn create_api_key(&self, key: &ApiKey, secret_hash: &str) -> Result<ApiKey, Error>;
    /// The key with this prefix and its secret hash, revoked or not.
    async fn find_api_key(&self, prefix: &str) -> Result<Option<(ApiKey, String)>, Error>;
    /// Newest first, after the cursor.
    async fn list_api_keys(
        &self,
        organization: OrganizationId,
        after: Option<ApiKeyId>,
        limit: u64,
    ) -> Result<Vec<ApiKey>, Error>;
    /// `NotFound` for another organisation's key; revoking twice keeps the first time.
    async fn revoke_api_key(
        &self,
        organization: OrganizationId,
        id: ApiKeyId,
        at: DateTime<Utc>,
    ) -> Result<ApiKey, Error>;
}

#[async_trait]
pub trait SigningKeyStore: Send + Sync {
    /// Newest first.
    async fn signing_keys(&self) -> Result<Vec<SigningKey>, Error>;
    async fn insert_signing_key(&self, key: &SigningKey) -> Result<(), Error>;
}

/// What the authorizer reads: one user's holdings and the organisation's entity tree.
#[async_trait]
pub trait SubjectSource: Send + Sync {
    /// `None` when the user is not in the organisation.
    async fn load_subject(
        &self,
        organization: OrganizationId,
        user: UserId,
    ) -> Result<Option<Subject>, Error>;
    async fn load_entity_tree(&self, organization: OrganizationId) -> Result<EntityTree, Error>;
}

/// Every store the server needs, as one object.
pub trait Store:
    OrganizationStore
    + UserStore
    + RoleStore
    + SessionStore
    + ApiKeyStore
    + SigningKeyStore
    + SubjectSource
{
}

impl<T> Store for T where
    T: OrganizationStore
        + UserStore
        + RoleStore
        + SessionStore
        + ApiKeyStore
        + SigningKeyStore
        + SubjectSource
{
}
