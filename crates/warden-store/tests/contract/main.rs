//! The storage contract: one suite, run on SQLite always (a temporary file) and on PostgreSQL when
//! `DATABASE_URL` is set (a fresh database per test, dropped at the end), as quickwit runs one
//! metastore suite on every backend. It checks what the server relies on and cannot see itself:
//! tenancy filters, rollback on error, the unique owner and every single-use conditional update.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support: a failed step should fail the test loudly"
)]

mod ownership;
mod revisions;
mod role_grants;
mod rollback;
mod single_use;
mod subjects;
mod tenancy;

use std::{path::PathBuf, sync::Arc};

use chrono::{Duration, Utc};
use sea_orm::{ConnectionTrait, Database};
use uuid::Uuid;
use warden_core::{
    Error,
    catalogue::{ADMIN_ROLE, OWNER_ROLE, READ_ONLY_ROLE},
    ids::{
        AuditEventId, FactorId, InvitationId, NotificationId, OrganizationId, PermissionKey,
        RoleId, UserId,
    },
    model::{
        Actor, AuditEvent, AuditFilter, Grant, Invitation, NewOrganization, NewUser, Notification,
        NotificationKind, Organization, RecoveryCode, Role, Scope, SecondFactor,
        SecondFactorMethod, StatusFilter, User, UserFilter,
    },
    ports::{FactorStore, InvitationStore, OrganizationStore, UserSearch},
    validate::Email,
};
use warden_store::SqlStore;

/// Declares each contract test once per backend: `sqlite::<name>` and `postgres::<name>`.
macro_rules! contract_suite {
    ($($module:ident :: $test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    crate::$module::$test(&crate::TestStore::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    match crate::TestStore::postgres().await {
                        Some(store) => crate::$module::$test(&store).await,
                        None => eprintln!("DATABASE_URL is not set: not run on PostgreSQL"),
                    }
                }
            )*
        }
    };
}

contract_suite! {
    tenancy::users_of_another_organization_are_invisible_and_untouchable,
    tenancy::roles_groups_and_entities_of_another_organization_are_invisible,
    tenancy::api_keys_of_another_organization_are_invisible,
    tenancy::audit_events_of_another_organization_are_invisible,
    tenancy::factors_and_recovery_codes_of_another_organization_are_invisible,
    rollback::invite_with_a_taken_email_leaves_no_invitation_notification_or_audit_row,
    rollback::invite_failing_after_the_user_row_leaves_no_user,
    rollback::user_change_whose_audit_row_fails_changes_neither_names_nor_grants,
    rollback::group_whose_audit_row_fails_is_not_created,
    rollback::transfer_whose_audit_row_fails_keeps_the_owner,
    revisions::concurrent_writes_issue_revisions_a_poller_reads_without_gaps,
    revisions::a_write_that_fails_issues_no_revision,
    revisions::sign_ins_issue_no_revision,
    role_grants::a_deleted_role_cannot_be_granted_to_users_or_groups,
    role_grants::a_grant_racing_the_deletion_of_its_role_leaves_no_grant_naming_it,
    ownership::concurrent_transfers_leave_exactly_one_owner,
    ownership::concurrent_transfers_to_one_admin_leave_them_the_only_owner,
    ownership::transfer_racing_a_suspension_leaves_exactly_one_owner,
    single_use::an_invitation_is_accepted_once,
    single_use::concurrent_accepts_of_one_invitation_succeed_once,
    single_use::a_refresh_token_rotates_once_and_its_reuse_revokes_the_session,
    single_use::concurrent_rotations_of_one_refresh_token_rotate_once,
    single_use::a_password_reset_completes_once,
    single_use::concurrent_completions_of_one_password_reset_succeed_once,
    single_use::a_totp_step_is_used_once_and_never_an_earlier_one,
    single_use::concurrent_uses_of_one_totp_step_succeed_once,
    single_use::a_recovery_code_is_used_once,
    single_use::concurrent_uses_of_one_recovery_code_succeed_once,
    single_use::a_challenge_completes_once,
    single_use::concurrent_completions_of_one_challenge_succeed_once,
    single_use::an_sso_token_signs_in_once,
    single_use::concurrent_sign_ins_with_one_sso_token_succeed_once,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_subjects_load_in_three_queries_whatever_they_hold() {
    subjects::subjects_load_in_three_queries_whatever_they_hold(TestStore::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_subjects_load_in_three_queries_whatever_they_hold() {
    match TestStore::postgres().await {
        Some(store) => subjects::subjects_load_in_three_queries_whatever_they_hold(store).await,
        None => eprintln!("DATABASE_URL is not set: not run on PostgreSQL"),
    }
}

/// A migrated store on a database of its own; the database goes with the value.
pub struct TestStore {
    pub store: SqlStore,
    _database: Scratch, // Dropped after `store`.
}

impl std::ops::Deref for TestStore {
    type Target = SqlStore;
    fn deref(&self) -> &SqlStore {
        &self.store
    }
}

/// A stand-in for the server's XChaCha20-Poly1305 box: what the store must do with it (seal on
/// write, open on read) shows just as well with a reversible transformation.
struct ReversedSealer;

impl warden_core::ports::Sealer for ReversedSealer {
    fn seal(&self, plaintext: &str) -> Result<String, warden_core::Error> {
        Ok(plaintext.chars().rev().collect())
    }
    fn open(&self, sealed: &str) -> Result<String, warden_core::Error> {
        Ok(sealed.chars().rev().collect())
    }
}

impl TestStore {
    pub async fn sqlite() -> Self {
        let dir =
            std::env::temp_dir().join(format!("warden-store-test-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("warden.db").display());
        let database = Scratch::Sqlite(dir);
        Self {
            store: SqlStore::connect(&url, 4, Arc::new(ReversedSealer))
                .await
                .unwrap(),
            _database: database,
        }
    }

    /// A new database `warden_store_test_<uuid>` on the `DATABASE_URL` server; the database that
    /// URL names is only used to create and drop it, never migrated.
    pub async fn postgres() -> Option<Self> {
        let admin = std::env::var("DATABASE_URL")
            .ok()
            .filter(|url| !url.is_empty())?;
        let name = format!("warden_store_test_{}", Uuid::new_v4().simple());
        let db = Database::connect(&admin)
            .await
            .expect("DATABASE_URL must reach PostgreSQL");
        db.execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        db.close().await.ok();
        let base = admin.split('?').next().unwrap();
        let url = format!("{}/{name}", &base[..base.rfind('/').unwrap()]);
        let database = Scratch::Postgres { admin, name }; // From here on, a failure still drops it.
        Some(Self {
            store: SqlStore::connect(&url, 4, Arc::new(ReversedSealer))
                .await
                .unwrap(),
            _database: database,
        })
    }
}

/// Where one test's data lives: removed, or dropped, on drop.
enum Scratch {
    Sqlite(PathBuf),
    Postgres { admin: String, name: String },
}

impl Drop for Scratch {
    fn drop(&mut self) {
        match self {
            Scratch::Sqlite(dir) => {
                std::fs::remove_dir_all(dir).ok();
            }
            Scratch::Postgres { admin, name } => {
                let (admin, name) = (admin.clone(), name.clone());
                // Drop runs inside the test's runtime: a thread with its own runtime may block on it.
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
}

/// An organisation made by `create_organization`: its id and its owner.
pub struct Org {
    pub id: OrganizationId,
    pub owner: UserId,
}

/// What `invite_user` writes, before it is written.
pub struct Invite {
    pub user: NewUser,
    pub invitation: Invitation,
    pub notification: Notification,
    pub audit: AuditEvent,
}

pub fn email(label: &str) -> Email {
    Email::parse(
        "email",
        &format!("{label}-{}@example.com", Uuid::new_v4().simple()),
    )
    .unwrap()
}

pub fn audit(organization: OrganizationId, action: &str) -> AuditEvent {
    AuditEvent {
        id: AuditEventId::generate(),
        organization_id: organization,
        actor: Actor::Operator,
        action: action.to_owned(),
        target_type: "test".to_owned(),
        target_id: String::new(),
        created_at: Utc::now(),
        client_address: None,
        user_agent: None,
        before: None,
        after: None,
    }
}

/// A verdict that allows every role or group change: the store's contract, not the rules.
pub fn allow(_: &warden_core::rules::Affected) -> Result<(), Error> {
    Ok(())
}

pub fn on_all(role: &str) -> Grant {
    Grant {
        role: RoleId::new(role),
        scope: Scope::All,
    }
}

pub fn notification(organization: OrganizationId, kind: NotificationKind) -> Notification {
    Notification {
        id: NotificationId::generate(),
        organization_id: organization,
        kind,
        recipient: "someone@example.com".to_owned(),
        token: Some("plain token".to_owned()),
        code: None,
        created_at: Utc::now(),
    }
}

pub fn everyone(now: chrono::DateTime<Utc>) -> UserFilter {
    UserFilter {
        status: StatusFilter::NotArchived,
        role: None,
        entity: None,
        query: None,
        before_id: None,
        limit: 500,
        now,
    }
}

pub fn all_events() -> AuditFilter {
    AuditFilter {
        limit: 500,
        ..AuditFilter::default()
    }
}

/// Exactly one of two attempts at a single-use step won.
pub fn exactly_one<T: std::fmt::Debug>(outcomes: [T; 2], won: impl Fn(&T) -> bool) {
    let wins = outcomes.iter().filter(|outcome| won(outcome)).count();
    assert_eq!(wins, 1, "{outcomes:?}");
}

impl TestStore {
    /// An organisation with the predefined roles the store refers to, and its active owner.
    pub async fn organization(&self) -> Org {
        let id = OrganizationId::generate();
        let roles = [OWNER_ROLE, ADMIN_ROLE, READ_ONLY_ROLE].map(|role| Role {
            id: RoleId::new(role),
            organization_id: id,
            name: role.to_owned(),
            description: String::new(),
            permissions: vec![PermissionKey::new("users.read")],
            predefined: true,
        });
        let new = NewOrganization {
            organization: Organization {
                id,
                name: "Acme".to_owned(),
                created_at: Utc::now(),
                settings: Default::default(),
            },
            owner_id: UserId::generate(),
            owner_email: email("owner"),
            owner_first_name: "Olive".to_owned(),
            owner_last_name: "Owner".to_owned(),
            owner_password_hash: "owner hash".to_owned(),
        };
        let (organization, owner) = self
            .create_organization(&new, &roles, &audit(id, "organization.created"))
            .await
            .unwrap();
        assert!(owner.owner);
        Org {
            id: organization.id,
            owner: owner.id,
        }
    }

    pub fn invitation(&self, organization: OrganizationId, grants: Vec<Grant>) -> Invite {
        let user = NewUser {
            id: UserId::generate(),
            organization_id: organization,
            email: email("invitee"),
            first_name: "Ivy".to_owned(),
            last_name: "Invitee".to_owned(),
            grants,
            direct_grants: vec![],
            created_at: Utc::now(),
        };
        let invitation = Invitation {
            id: InvitationId::generate(),
            organization_id: organization,
            user_id: user.id,
            token_hash: format!("invitation {}", Uuid::new_v4()),
            created_at: Utc::now(),
            expires_at: Utc::now() + Duration::days(1),
        };
        Invite {
            user,
            invitation,
            notification: notification(organization, NotificationKind::Invitation),
            audit: audit(organization, "user.invited"),
        }
    }

    pub async fn invite(&self, invite: &Invite) -> Result<User, Error> {
        self.invite_user(
            &invite.user,
            &invite.invitation,
            &invite.notification,
            &invite.audit,
        )
        .await
    }

    /// An ACTIVE user holding `admin` on all entities: invited, then accepted.
    pub async fn active_admin(&self, organization: OrganizationId) -> UserId {
        let invite = self.invitation(organization, vec![on_all(ADMIN_ROLE)]);
        self.invite(&invite).await.unwrap();
        let audit = audit(organization, "invitation.accepted");
        self.accept_invitation(invite.invitation.id, "admin hash", &audit)
            .await
            .unwrap()
            .id
    }

    /// Every user of the organisation who is flagged owner.
    pub async fn owners(&self, organization: OrganizationId) -> Vec<User> {
        let users = self
            .list_users(organization, &everyone(Utc::now()))
            .await
            .unwrap();
        users.into_iter().filter(|user| user.owner).collect()
    }

    /// A TOTP factor of the organisation's owner, not yet confirmed.
    pub async fn totp_factor(&self, org: &Org) -> FactorId {
        let factor = SecondFactor {
            id: FactorId::generate(),
            organization_id: org.id,
            user_id: org.owner,
            method: SecondFactorMethod::Totp,
            confirmed: false,
            phone_number: None,
            encrypted_secret: Some("sealed".to_owned()),
            name: None,
            created_at: Utc::now(),
        };
        self.create_factor(&factor, None, &audit(org.id, "factor.added"))
            .await
            .unwrap();
        factor.id
    }

    /// A live recovery code of the organisation's owner; returns its hash.
    pub async fn recovery_code(&self, org: &Org) -> String {
        let code = RecoveryCode {
            id: Uuid::now_v7(),
            organization_id: org.id,
            user_id: org.owner,
            code_hash: format!("recovery {}", Uuid::new_v4()),
            created_at: Utc::now(),
            expires_at: Utc::now() + Duration::days(1),
        };
        self.issue_recovery_code(&code, &audit(org.id, "recovery_code.issued"))
            .await
            .unwrap();
        code.code_hash
    }
}
