//! Storage traits the domain owns; `warden-store` implements them with sea-orm. Reads filter on the
//! organisation inside the query; each write is one transaction.
use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    Error,
    catalogue::PredefinedRole,
    decision::{EntityTree, Subject},
    entities::EntityChange,
    ids::{
        ApiKeyId, CeremonyId, ChallengeId, ClientCertificateMappingId, EntityId, FactorId, GroupId,
        InvitationId, NotificationId, OrganizationId, RoleId, ScimTokenId, SessionId, UserId,
    },
    model::{
        ApiKey, AuditEvent, AuditFilter, Ceremony, CeremonyKind, Challenge,
        ClientCertificateMapping, Entity, Grant, Group, Invitation, InvitationState,
        NewOrganization, NewUser, Notification, Organization, OrganizationSettings,
        PasskeyCredential, PasswordReset, PendingCode, RecoveryCode, RefreshOutcome, Role,
        ScimToken, ScimUserChange, SecondFactor, Session, SigningKey, SsoConfig, SsoIdentity, User,
        UserChange, UserFilter, UserMove, UserStatus,
    },
    rules::Affected,
    settings::SettingsChange,
    throttle::{BackOff, Budget},
    validate::Email,
};

/// A decision over everyone a role or group change affects, taken by the service (its rules are in
/// `rules` and `roles`) and applied by the store inside the write transaction, on what that
/// transaction reads: a concurrent grant or membership cannot slip past it.
pub type Verdict<'a> = &'a (dyn Fn(&Affected) -> Result<(), Error> + Send + Sync);

/// Seals secrets at rest under the deployment's secret key, so a copy of the database alone reveals
/// none of them (the outbox's tokens and codes, TOTP secrets).
pub trait Sealer: Send + Sync {
    fn seal(&self, plaintext: &str) -> Result<String, Error>;
    fn open(&self, sealed: &str) -> Result<String, Error>;
}

/// Makes an entity change's audit row from the entity before and after it.
pub type EntityAudit<'a> = dyn Fn(&Entity, &Entity) -> AuditEvent + Send + Sync + 'a;

/// Makes a settings change's audit row from the settings before and after it.
pub type SettingsAudit<'a> =
    dyn Fn(&OrganizationSettings, &OrganizationSettings) -> AuditEvent + Send + Sync + 'a;

#[async_trait]
pub trait OrganizationStore: Send + Sync {
    /// Writes the organisation, its predefined roles and its owner (with an `owner` grant on all
    /// entities) in one transaction. `EmailInUse` when the owner's email is taken anywhere.
    async fn create_organization(
        &self,
        new: &NewOrganization,
        roles: &[Role],
        audit: &AuditEvent,
    ) -> Result<(Organization, User), Error>;
    async fn find_organization(&self, id: OrganizationId) -> Result<Option<Organization>, Error>;
    /// `NotFound("parent_entity_id")` when the parent is not in the organisation;
    /// `FailedPrecondition` when it is itself a segment.
    async fn create_entity(&self, entity: &Entity, audit: &AuditEvent) -> Result<Entity, Error>;
    /// Applies `change` to the settings read inside one transaction that locks the organisation row,
    /// writes only the columns it names (never `sso_enabled`), and the audit row that `audit` makes
    /// of the settings before and after. When the change starts requiring a second factor
    /// (`users::locks_factorless`), `by` must hold a confirmed one, and every user of the
    /// organisation without one loses their sessions in the same transaction.
    async fn update_settings(
        &self,
        organization: OrganizationId,
        change: &SettingsChange,
        by: UserId,
        audit: &SettingsAudit<'_>,
    ) -> Result<Organization, Error>;
    /// Applies `change` to the entity read and locked inside one transaction, with the audit row
    /// `audit` makes of it before and after (a revision: archiving changes answers).
    /// `NotFound("entity")` outside the organisation; `FailedPrecondition` from `EntityChange::apply`.
    async fn change_entity(
        &self,
        organization: OrganizationId,
        entity: EntityId,
        change: &EntityChange,
        audit: &EntityAudit<'_>,
    ) -> Result<Entity, Error>;
    /// Every entity of the organisation, oldest first (ListEntities orders and pages the tree).
    async fn list_entities(&self, organization: OrganizationId) -> Result<Vec<Entity>, Error>;
    /// Makes an ACTIVE holder of `admin` the owner and the previous owner (if any) an admin on all
    /// entities, in one transaction that first locks the organisation, so concurrent changes run
    /// one after the other; the unique owner column keeps exactly one owner. With `from`, the
    /// transfer happens only while `from` is still the owner (`PermissionDenied` otherwise).
    /// `FailedPrecondition` when the new owner is not an active admin.
    async fn transfer_ownership(
        &self,
        organization: OrganizationId,
        from: Option<UserId>,
        new_owner: UserId,
        audit: &AuditEvent,
    ) -> Result<User, Error>;
}

/// Users with their grants, and their lifecycle.
#[async_trait]
pub trait UserStore: Send + Sync {
    async fn find_user(
        &self,
        organization: OrganizationId,
        user: UserId,
    ) -> Result<Option<User>, Error>;
    /// Renames and/or replaces the grants of a user that is not archived.
    async fn update_user(
        &self,
        organization: OrganizationId,
        user: UserId,
        change: &UserChange,
        audit: &AuditEvent,
    ) -> Result<User, Error>;
    /// Moves a user from one of `from` to `to`; leaving ACTIVE revokes every session in the same
    /// transaction. `FailedPrecondition` when the user's status is not in `from`.
    async fn change_status(
        &self,
        organization: OrganizationId,
        user: UserId,
        from: &[UserStatus],
        to: UserStatus,
        audit: &AuditEvent,
    ) -> Result<User, Error>;
    /// Moves a user, with their password and factors, to another organisation in one transaction:
    /// every session ends; every grant, direct permission and group membership in the old
    /// organisation goes; their open sign-in challenges, password resets and SSO identities go with
    /// the old organisation; the new grants are written; `left` (in the old organisation) and
    /// `joined` (in the new) are audited, each issuing its organisation a revision.
    /// `NotFound("user")` outside `from`, `NotFound("target_organization_id")` for an unknown `to`,
    /// `FailedPrecondition` for the owner or a user whose status is not in `users::MOVABLE`.
    async fn move_user(
        &self,
        movement: &UserMove,
        left: &AuditEvent,
        joined: &AuditEvent,
    ) -> Result<User, Error>;
}

/// Listing and searching an organisation's users.
#[async_trait]
pub trait UserSearch: Send + Sync {
    /// Newest first, filtered by status, role, entity reached and text, before the cursor.
    async fn list_users(
        &self,
        organization: OrganizationId,
        filter: &UserFilter,
    ) -> Result<Vec<User>, Error>;
}

/// Invitations: how a user joins an organisation.
#[async_trait]
pub trait InvitationStore: Send + Sync {
    /// Writes a PENDING user, their first invitation, its notification and the audit row together.
    async fn invite_user(
        &self,
        user: &NewUser,
        invitation: &Invitation,
        notification: &Notification,
        audit: &AuditEvent,
    ) -> Result<User, Error>;
    /// Supersedes every earlier invitation of a PENDING user and writes a new one.
    /// `FailedPrecondition` when the user is not pending.
    async fn resend_invitation(
        &self,
        organization: OrganizationId,
        invitation: &Invitation,
        notification: &Notification,
        audit: &AuditEvent,
    ) -> Result<User, Error>;
    /// The invitation with this token hash, its state and its user.
    async fn find_invitation(
        &self,
        token_hash: &str,
    ) -> Result<Option<(Invitation, InvitationState, User)>, Error>;
    /// Spends a live invitation and activates its pending user with a password, atomically: a
    /// concurrent accept or resend makes this one fail with `FailedPrecondition`.
    async fn accept_invitation(
        &self,
        invitation: InvitationId,
        password_hash: &str,
        audit: &AuditEvent,
    ) -> Result<User, Error>;
}

/// Passwords, password resets and the bookkeeping of a sign-in.
#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// The user with this sign-in email, in any organisation, and their password hash if they have one.
    async fn find_credentials(
        &self,
        email: &Email,
    ) -> Result<Option<(User, Option<String>)>, Error>;
    /// Starts a session, records the last login and audits the sign-in, in one transaction.
    async fn record_sign_in(
        &self,
        session: &Session,
        refresh_hash: &str,
        audit: &AuditEvent,
    ) -> Result<(), Error>;
    /// Sets a password hash and revokes every session of the user except `keep`.
    async fn set_password(
        &self,
        organization: OrganizationId,
        user: UserId,
        password_hash: &str,
        keep: Option<SessionId>,
        audit: &AuditEvent,
    ) -> Result<(), Error>;
    async fn create_password_reset(
        &self,
        reset: &PasswordReset,
        notification: &Notification,
        audit: &AuditEvent,
    ) -> Result<(), Error>;
    /// The reset with this token hash and whether it was used already.
    async fn find_password_reset(
        &self,
        token_hash: &str,
    ) -> Result<Option<(PasswordReset, bool)>, Error>;
    /// Spends a live, unexpired reset: new password, every session revoked, every other reset of the
    /// user spent. `FailedPrecondition` when it is no longer live.
    async fn complete_password_reset(
        &self,
        reset: &PasswordReset,
        password_hash: &str,
        audit: &AuditEvent,
    ) -> Result<(), Error>;
}

#[async_trait]
pub trait NotificationStore: Send + Sync {
    /// Oldest first, not yet acknowledged, across all organisations (the operator's outbox).
    async fn pending_notifications(&self, limit: u64) -> Result<Vec<Notification>, Error>;
    /// Marks these delivered and forgets their tokens and codes; returns how many were pending.
    async fn acknowledge_notifications(
        &self,
        ids: &[NotificationId],
        at: DateTime<Utc>,
    ) -> Result<u64, Error>;
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    /// For events that change nothing else (a failed sign-in); changes write theirs in their own transaction.
    async fn record_audit(&self, event: &AuditEvent) -> Result<(), Error>;
    /// Newest first.
    async fn list_audit_events(
        &self,
        organization: OrganizationId,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditEvent>, Error>;
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
    /// How many users who are not archived hold each of `roles`, directly or through a group; a
    /// role nobody holds is left out.
    async fn role_holder_counts(
        &self,
        organization: OrganizationId,
        roles: &[RoleId],
    ) -> Result<std::collections::HashMap<RoleId, u64>, Error>;
    /// The organisation's roles among `ids`, in no particular order; unknown ids are left out.
    async fn find_roles(
        &self,
        organization: OrganizationId,
        ids: &[RoleId],
    ) -> Result<Vec<Role>, Error>;
    /// `AlreadyExists("role name")` when the organisation has a role of that name.
    async fn create_role(&self, role: &Role, audit: &AuditEvent) -> Result<Role, Error>;
    /// Writes a custom role's name and description, and its permissions only when
    /// `replace_permissions` (a rename never writes back a stale permission list); its holders see
    /// the change at their next check. `FailedPrecondition` for a predefined role.
    /// When the permissions change, `verdict` first decides on `caller` and every holder (direct or
    /// through a group) inside the transaction; its refusal changes nothing.
    async fn update_role(
        &self,
        role: &Role,
        replace_permissions: bool,
        caller: UserId,
        verdict: Verdict<'_>,
        audit: &AuditEvent,
    ) -> Result<Role, Error>;
    /// Deletes a custom role and moves every user and group grant of it to `fallback` (the
    /// catalogue's fallback role, `read_only` in the payments catalogue), in one
    /// transaction, once `verdict` allowed it on `caller`, every holder (direct or through a group)
    /// and every scope the role is held at, as that transaction reads them. A grant of the role
    /// racing the deletion either comes first (and its holder is decided on and moved) or finds the
    /// role gone (`NotFound("role")`). `FailedPrecondition` for a predefined role.
    async fn delete_role(
        &self,
        organization: OrganizationId,
        role: &RoleId,
        fallback: &RoleId,
        caller: UserId,
        verdict: Verdict<'_>,
        audit: &AuditEvent,
    ) -> Result<(), Error>;
    /// Adds the catalogue's predefined roles an organisation lacks (unless a custom role has the
    /// name) and rewrites the permissions of every organisation's predefined roles from the
    /// catalogue, in one transaction, so a changed catalogue file reaches existing organisations at
    /// start. A predefined role the catalogue dropped loses its permissions (its grants stay).
    async fn sync_predefined_roles(
        &self,
        roles: &[PredefinedRole],
        at: DateTime<Utc>,
    ) -> Result<(), Error>;
    /// Every permission key that some role or direct grant refers to, to report vanished ones at start.
    async fn permission_keys_in_use(&self) -> Result<Vec<String>, Error>;
    /// The ids of predefined roles some user or group holds, to report those a catalogue dropped.
    async fn predefined_roles_held(&self) -> Result<Vec<String>, Error>;
}

#[async_trait]
pub trait GroupStore: Send + Sync {
    /// `AlreadyExists("group name")` for a taken name.
    async fn create_group(&self, group: &Group, audit: &AuditEvent) -> Result<Group, Error>;
    async fn find_group(
        &self,
        organization: OrganizationId,
        group: GroupId,
    ) -> Result<Option<Group>, Error>;
    /// Oldest first, after the cursor.
    async fn list_groups(
        &self,
        organization: OrganizationId,
        after: Option<GroupId>,
        limit: u64,
    ) -> Result<Vec<Group>, Error>;
    /// Changes the name and/or replaces the grants; when the grants change, `verdict` first decides
    /// on `caller` and every member inside the transaction.
    #[allow(
        clippy::too_many_arguments,
        reason = "one write, each argument a part of it"
    )]
    async fn update_group(
        &self,
        organization: OrganizationId,
        group: GroupId,
        name: Option<&str>,
        grants: Option<&[Grant]>,
        caller: UserId,
        verdict: Verdict<'_>,
        audit: &AuditEvent,
    ) -> Result<Group, Error>;
    /// Deletes the group once `verdict` allowed it on `caller` and every member, inside the
    /// transaction; a member added concurrently is either decided on or finds the group gone.
    async fn delete_group(
        &self,
        organization: OrganizationId,
        group: GroupId,
        caller: UserId,
        verdict: Verdict<'_>,
        audit: &AuditEvent,
    ) -> Result<(), Error>;
    /// Adding a member twice, or removing a non-member, changes nothing and succeeds.
    async fn set_membership(
        &self,
        organization: OrganizationId,
        group: GroupId,
        user: UserId,
        member: bool,
        audit: &AuditEvent,
    ) -> Result<Group, Error>;
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn find_session(&self, id: SessionId) -> Result<Option<Session>, Error>;
    /// Spends the presented refresh token and gives its session `new_hash`, atomically; a token
    /// already spent revokes its session (SPEC §4: no grace window).
    /// A rotation is a use: it records `now`, the client address and the user agent of `origin`
    /// (already bounded, `sign_in::bounded_origin`) on the session, and the user's last activity.
    async fn rotate_refresh_token(
        &self,
        presented_hash: &str,
        new_hash: &str,
        now: DateTime<Utc>,
        origin: (Option<String>, Option<String>),
    ) -> Result<RefreshOutcome, Error>;
    async fn revoke_session(&self, id: SessionId, at: DateTime<Utc>) -> Result<(), Error>;
    /// Records a call on `session` at `now` as its last use and its user's last activity, unless
    /// another replica recorded one within the minute (a conditional update).
    async fn record_session_use(&self, session: &Session, now: DateTime<Utc>) -> Result<(), Error>;
    /// The user's live sessions (neither revoked nor expired at `now`), newest first, before the
    /// cursor; filtered on the organisation inside the query.
    async fn list_sessions(
        &self,
        organization: OrganizationId,
        user: UserId,
        now: DateTime<Utc>,
        before: Option<SessionId>,
        limit: u64,
    ) -> Result<Vec<Session>, Error>;
    /// Ends the user's live sessions (only `only`, when given) with the audit row, in one
    /// transaction; the number ended. `NotFound("session")` when `only` is not a live session of
    /// that user in the organisation.
    async fn end_sessions(
        &self,
        organization: OrganizationId,
        user: UserId,
        only: Option<SessionId>,
        audit: &AuditEvent,
    ) -> Result<u64, Error>;
    /// Records that the session proved a password or factor again at `at`.
    async fn record_reauthentication(&self, id: SessionId, at: DateTime<Utc>) -> Result<(), Error>;
}

#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// Before a password or code check, atomically: `Some(retry_after)` while `address` has spent
    /// its `budget` of failures or `account` is in back-off (then nothing is counted); otherwise the
    /// attempt counts against the account until it succeeds. The address is charged only by
    /// `attempt_failed`, so a check that never finishes leaves no failure on it. Fails (closed) when
    /// the counters cannot be written.
    async fn begin_attempt(
        &self,
        account: &str,
        address: &str,
        back_off: BackOff,
        budget: Budget,
        now: DateTime<Utc>,
    ) -> Result<Option<chrono::Duration>, Error>;
    /// After a failed check: spends one of the address's budget of failures.
    async fn attempt_failed(
        &self,
        address: &str,
        budget: Budget,
        now: DateTime<Utc>,
    ) -> Result<(), Error>;
    /// After a success: forgets the account's failures; the address was never charged.
    async fn attempt_succeeded(&self, account: &str) -> Result<(), Error>;
    /// Spends one of every keyed budget atomically (a quota per user and per organisation), or
    /// none of them and `Some(retry_after)` when any is spent.
    async fn spend_quota(
        &self,
        budgets: &[(String, Budget)],
        now: DateTime<Utc>,
    ) -> Result<Option<chrono::Duration>, Error>;
}

#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    async fn create_api_key(
        &self,
        key: &ApiKey,
        secret_hash: &str,
        audit: &AuditEvent,
    ) -> Result<ApiKey, Error>;
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
    async fn touch_api_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> Result<(), Error>;
    async fn revoke_api_key(
        &self,
        organization: OrganizationId,
        id: ApiKeyId,
        at: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<ApiKey, Error>;
    /// `AlreadyExists` when the uri is mapped, by any organisation.
    async fn create_client_certificate_mapping(
        &self,
        mapping: &ClientCertificateMapping,
        audit: &AuditEvent,
    ) -> Result<ClientCertificateMapping, Error>;
    /// The mapping of a certificate's SAN URI, whichever organisation holds it.
    async fn find_client_certificate_mapping(
        &self,
        uri: &str,
    ) -> Result<Option<ClientCertificateMapping>, Error>;
    /// Newest first, after the cursor.
    async fn list_client_certificate_mappings(
        &self,
        organization: OrganizationId,
        after: Option<ClientCertificateMappingId>,
        limit: u64,
    ) -> Result<Vec<ClientCertificateMapping>, Error>;
    /// `NotFound` for another organisation's mapping.
    async fn delete_client_certificate_mapping(
        &self,
        organization: OrganizationId,
        id: ClientCertificateMappingId,
        audit: &AuditEvent,
    ) -> Result<ClientCertificateMapping, Error>;
}

/// SCIM 2.0 provisioning (SPEC §5a): the identity provider's tokens, and the writes only SCIM makes.
/// Creating or revoking a token mirrors "some token is live" into the organisation's settings
/// (`scim_enabled`) in the same transaction.
#[async_trait]
pub trait ScimStore: Send + Sync {
    async fn create_scim_token(
        &self,
        token: &ScimToken,
        secret_hash: &str,
        audit: &AuditEvent,
    ) -> Result<ScimToken, Error>;
    /// The token with this prefix and its secret's hash, revoked or not.
    async fn find_scim_token(&self, prefix: &str) -> Result<Option<(ScimToken, String)>, Error>;
    /// Newest first, before the cursor.
    async fn list_scim_tokens(
        &self,
        organization: OrganizationId,
        after: Option<ScimTokenId>,
        limit: u64,
    ) -> Result<Vec<ScimToken>, Error>;
    async fn revoke_scim_token(
        &self,
        organization: OrganizationId,
        id: ScimTokenId,
        at: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<ScimToken, Error>;
    /// Writes an ACTIVE user without invitation, with its external id. `EmailInUse` when the email
    /// is taken in any organisation.
    async fn provision_user(
        &self,
        user: &NewUser,
        external_id: Option<&str>,
        audit: &AuditEvent,
    ) -> Result<User, Error>;
    /// Replaces a user's email, names and external id (not archived users). `EmailInUse` when the
    /// new email is taken.
    async fn replace_scim_user(
        &self,
        organization: OrganizationId,
        user: UserId,
        change: &ScimUserChange,
        audit: &AuditEvent,
    ) -> Result<User, Error>;
    /// The external ids the identity provider gave the organisation's users or groups, by id.
    async fn external_ids(
        &self,
        organization: OrganizationId,
        resource_type: &str,
    ) -> Result<BTreeMap<String, String>, Error>;
    /// Records (or with `None` forgets) a group's external id; no audit row of its own: it is
    /// written beside the audited group write it belongs to.
    async fn set_external_id(
        &self,
        organization: OrganizationId,
        resource_type: &str,
        resource_id: &str,
        external_id: Option<&str>,
    ) -> Result<(), Error>;
}

#[async_trait]
pub trait SigningKeyStore: Send + Sync {
    /// Newest first.
    async fn signing_keys(&self) -> Result<Vec<SigningKey>, Error>;
    async fn insert_signing_key(&self, key: &SigningKey) -> Result<(), Error>;
}

/// Passkeys and their WebAuthn ceremonies (SPEC §4). Taking a ceremony is a conditional update, so
/// it is finished at most once, on any replica.
#[async_trait]
pub trait PasskeyStore: Send + Sync {
    /// Stores a begun ceremony; for a second factor it replaces the challenge's earlier ones.
    async fn create_ceremony(&self, ceremony: &Ceremony) -> Result<(), Error>;
    /// Spends the ceremony `id` of `kind` if it is unused and open at `now`, and returns it.
    async fn take_ceremony(
        &self,
        id: CeremonyId,
        kind: CeremonyKind,
        now: DateTime<Utc>,
    ) -> Result<Option<Ceremony>, Error>;
    /// Spends the newest open second-factor ceremony of a sign-in challenge, and returns it.
    async fn take_challenge_ceremony(
        &self,
        challenge: ChallengeId,
        now: DateTime<Utc>,
    ) -> Result<Option<Ceremony>, Error>;
    /// A confirmed PASSKEY factor and its credential, with its audit row, in one transaction;
    /// `AlreadyExists("passkey")` when the credential id is registered already (to anyone).
    async fn create_passkey(
        &self,
        factor: &SecondFactor,
        passkey: &PasskeyCredential,
        audit: &AuditEvent,
    ) -> Result<(), Error>;
    /// The user's passkeys, oldest first.
    async fn list_passkeys(
        &self,
        organization: OrganizationId,
        user: UserId,
    ) -> Result<Vec<PasskeyCredential>, Error>;
    /// The passkey with this credential id, in whichever organisation: the caller decides.
    async fn find_passkey(&self, credential_id: &str) -> Result<Option<PasskeyCredential>, Error>;
    /// Records an accepted assertion: the updated credential, when its counter moved forward (or
    /// the authenticator keeps none); false when a concurrent use got there first.
    async fn record_passkey_use(
        &self,
        factor: FactorId,
        credential: &str,
        sign_count: i64,
    ) -> Result<bool, Error>;
}

#[async_trait]
pub trait FactorStore: Send + Sync {
    /// Writes an unconfirmed factor, with the code that confirms it (email/SMS) and its notification.
    async fn create_factor(
        &self,
        factor: &SecondFactor,
        confirmation: Option<(&PendingCode, &Notification)>,
        audit: &AuditEvent,
    ) -> Result<(), Error>;
    /// The user's factors, oldest first.
    async fn list_factors(
        &self,
        organization: OrganizationId,
        user: UserId,
    ) -> Result<Vec<SecondFactor>, Error>;
    /// A factor of this user, with its pending confirmation code.
    async fn find_factor(
        &self,
        organization: OrganizationId,
        user: UserId,
        factor: FactorId,
    ) -> Result<Option<(SecondFactor, Option<PendingCode>)>, Error>;
    /// Counts a wrong confirmation code; returns the failures so far.
    async fn record_factor_failure(&self, factor: FactorId) -> Result<i64, Error>;
    async fn confirm_factor(
        &self,
        factor: FactorId,
        audit: &AuditEvent,
    ) -> Result<SecondFactor, Error>;
    async fn remove_factor(
        &self,
        organization: OrganizationId,
        user: UserId,
        factor: FactorId,
        audit: &AuditEvent,
    ) -> Result<(), Error>;
    /// Records that a TOTP step was used: false when it (or a later one) was used already (no replay).
    async fn use_totp_step(&self, factor: FactorId, step: i64) -> Result<bool, Error>;
    /// Users among `users` with at least one confirmed factor.
    async fn users_with_confirmed_factor(
        &self,
        organization: OrganizationId,
        users: &[UserId],
    ) -> Result<Vec<UserId>, Error>;

    async fn create_challenge(&self, challenge: &Challenge) -> Result<(), Error>;
    async fn find_challenge(&self, challenge: ChallengeId) -> Result<Option<Challenge>, Error>;
    /// Replaces the challenge's pending code and queues its notification.
    async fn set_challenge_code(
        &self,
        challenge: ChallengeId,
        code: &PendingCode,
        notification: &Notification,
    ) -> Result<(), Error>;
    /// Counts a wrong code; returns the failures so far.
    async fn record_challenge_failure(&self, challenge: ChallengeId) -> Result<i64, Error>;
    /// Marks the challenge done; false when it was done already (a concurrent completion won).
    async fn complete_challenge(
        &self,
        challenge: ChallengeId,
        at: DateTime<Utc>,
    ) -> Result<bool, Error>;

    /// Stores a new recovery code and spends every earlier unused one of the user.
    async fn issue_recovery_code(
        &self,
        code: &RecoveryCode,
        audit: &AuditEvent,
    ) -> Result<(), Error>;
    async fn has_recovery_code(
        &self,
        organization: OrganizationId,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<bool, Error>;
    /// Spends a live recovery code of the user with this hash; false when there is none.
    async fn use_recovery_code(
        &self,
        organization: OrganizationId,
        user: UserId,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, Error>;
}

#[async_trait]
pub trait SsoStore: Send + Sync {
    /// Stores the configuration and mirrors `enabled` into the organisation's settings, in one transaction.
    async fn configure_sso(
        &self,
        config: &SsoConfig,
        audit: &AuditEvent,
    ) -> Result<Organization, Error>;
    async fn find_sso(&self, organization: OrganizationId) -> Result<Option<SsoConfig>, Error>;
    /// Whether the user has an identity at the organisation's provider.
    async fn is_sso_linked(
        &self,
        organization: OrganizationId,
        user: UserId,
    ) -> Result<bool, Error>;
    /// Finds the user of an identity, links it to the user with its verified email on the first
    /// sign-in, or provisions a user with the default role, in one transaction that also spends the
    /// token. The configuration (enabled, email domains, default role) is read again inside that
    /// transaction; `config` names the organisation. `Unauthenticated` for a replayed token, an
    /// unverified email with no link, an address outside the email domains or of another
    /// organisation (`sso::not_accepted`), a user holding more than the default role, or an email
    /// already linked to another identity; `FailedPrecondition` when SSO was turned off meanwhile.
    async fn sso_sign_in(
        &self,
        config: &SsoConfig,
        identity: &SsoIdentity,
        new_user_id: UserId,
        audit: &AuditEvent,
    ) -> Result<User, Error>;
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
    /// The subjects of `users` (each `None` when not in the organisation), in as many queries as
    /// one: what a batch of checks loads for its misses.
    async fn load_subjects(
        &self,
        organization: OrganizationId,
        users: &[UserId],
    ) -> Result<Vec<(UserId, Option<Subject>)>, Error>;
    /// The ids of the organisation's users after `after`, ascending, at most `limit`: the
    /// candidates a lookup of subjects pages through, a batch at a time.
    async fn user_ids(
        &self,
        organization: OrganizationId,
        after: Option<UserId>,
        limit: u64,
    ) -> Result<Vec<UserId>, Error>;
    /// The organisation's revision: the last revision that changed it; `None` when there is no
    /// such organisation.
    async fn revision(&self, organization: OrganizationId) -> Result<Option<i64>, Error>;
    /// The latest revision issued, and every organisation's revision as of (at least) it.
    async fn revisions(&self) -> Result<(i64, Vec<(OrganizationId, i64)>), Error>;
    /// The changes after `revision`, oldest first, at most `limit`: a gap-free prefix, because
    /// revisions commit in order.
    async fn changes_after(&self, revision: i64, limit: u64) -> Result<Vec<Change>, Error>;
}

/// What one revision changed (SPEC §5): replicas read these to learn what to forget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub revision: i64,
    /// `None` when every organisation changed (the predefined roles were synchronised).
    pub organization: Option<OrganizationId>,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
}

/// Every store the server needs, as one object.
/// Deletes rows that stopped mattering: idle throttles, expired challenges, used SSO tokens, ended
/// sessions with their spent refresh tokens, expired resets and acknowledged notifications.
#[async_trait]
pub trait PurgeStore: Send + Sync {
    /// At most `batch` rows of each kind that stopped mattering before `cutoff` (throttles also
    /// must not be in back-off at `now`); returns how many went.
    async fn purge(
        &self,
        now: DateTime<Utc>,
        cutoff: DateTime<Utc>,
        batch: u64,
    ) -> Result<u64, Error>;
}

pub trait Store:
    OrganizationStore
    + UserStore
    + UserSearch
    + InvitationStore
    + CredentialStore
    + RoleStore
    + SessionStore
    + ApiKeyStore
    + SigningKeyStore
    + SubjectSource
    + NotificationStore
    + AuditStore
    + GroupStore
    + ThrottleStore
    + FactorStore
    + PasskeyStore
    + SsoStore
    + ScimStore
    + PurgeStore
{
}

impl<T> Store for T where
    T: OrganizationStore
        + UserStore
        + UserSearch
        + InvitationStore
        + CredentialStore
        + RoleStore
        + SessionStore
        + ApiKeyStore
        + SigningKeyStore
        + SubjectSource
        + NotificationStore
        + AuditStore
        + GroupStore
        + ThrottleStore
        + FactorStore
        + PasskeyStore
        + SsoStore
        + ScimStore
        + PurgeStore
{
}
