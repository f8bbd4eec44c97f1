//! The user lifecycle (SPEC §2) as pure rules: which status each step leaves from and arrives at,
//! who may not be acted on, when an invitation can be accepted and which status a caller sees. The
//! store applies each transition as one conditional update, so a race still ends in one winner.
use chrono::{DateTime, Utc};

use crate::{
    Error,
    audit::Action,
    decision::{EntityTree, Subject},
    ids::{OrganizationId, UserId},
    model::{
        Invitation, InvitationState, NewUser, OrganizationSettings, Scope, User, UserChange,
        UserStatus,
    },
    rules::{self, Wanted},
};

/// A step of the lifecycle that an admin takes on another user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    Suspend,
    Restore,
    Delete,
    /// A new invitation for a user who has not joined yet; their status stays PENDING.
    Resend,
}

impl Lifecycle {
    /// The stored statuses this step leaves from. EXPIRED is stored as PENDING, so a lapsed
    /// invitation can be resent and deleted.
    pub fn from(self) -> &'static [UserStatus] {
        match self {
            Lifecycle::Suspend => &[UserStatus::Active],
            Lifecycle::Restore => &[UserStatus::Suspended],
            Lifecycle::Delete => &[
                UserStatus::Pending,
                UserStatus::Active,
                UserStatus::Suspended,
            ],
            Lifecycle::Resend => &[UserStatus::Pending],
        }
    }

    /// The stored status this step arrives at.
    pub fn to(self) -> UserStatus {
        match self {
            Lifecycle::Suspend => UserStatus::Suspended,
            Lifecycle::Delete => UserStatus::Archived,
            Lifecycle::Restore => UserStatus::Active,
            Lifecycle::Resend => UserStatus::Pending,
        }
    }

    pub fn action(self) -> Action {
        match self {
            Lifecycle::Suspend => Action::UserSuspended,
            Lifecycle::Restore => Action::UserRestored,
            Lifecycle::Delete => Action::UserDeleted,
            Lifecycle::Resend => Action::InvitationResent,
        }
    }

    /// A user cannot suspend, restore or delete themselves: it would lock the organisation out by
    /// accident (SPEC §2). Resending only ever concerns someone who has not joined.
    pub fn ensure_not_self(self, caller: UserId, target: UserId) -> Result<(), Error> {
        let verb = match self {
            Lifecycle::Suspend => "suspend",
            Lifecycle::Restore => "restore",
            Lifecycle::Delete => "delete",
            Lifecycle::Resend => return Ok(()),
        };
        if caller == target {
            return Err(Error::FailedPrecondition(format!(
                "you cannot {verb} yourself"
            )));
        }
        Ok(())
    }

    /// The status `target` arrives at, or why this step does not apply to it now.
    pub fn apply_to(self, target: &User) -> Result<UserStatus, Error> {
        if self.from().contains(&target.status) {
            return Ok(self.to());
        }
        Err(Error::FailedPrecondition(match self {
            Lifecycle::Resend => "user: only pending or expired invitations can be resent".into(),
            Lifecycle::Suspend | Lifecycle::Restore | Lifecycle::Delete => {
                format!("user: is {}", target.status.as_str())
            }
        }))
    }
}

/// While SSO or SCIM is on, the identity provider owns the user list: nobody invites, edits or
/// deletes users here (SPEC §4, §5a).
pub fn ensure_managed_here(settings: &OrganizationSettings) -> Result<(), Error> {
    if settings.sso_enabled || settings.scim_enabled {
        return Err(Error::ManagedByIdp);
    }
    Ok(())
}

/// While SCIM is on, the identity provider also owns group membership (SPEC §5a); the groups'
/// grants stay editable here, which is how IdP groups map to roles and entities.
pub fn ensure_membership_managed_here(settings: &OrganizationSettings) -> Result<(), Error> {
    if settings.scim_enabled {
        return Err(Error::ManagedByIdp);
    }
    Ok(())
}

/// The owner's grants change only with ownership (SPEC §1): never through UpdateUser.
pub fn ensure_access_editable(target: &User) -> Result<(), Error> {
    if target.owner {
        return Err(Error::FailedPrecondition(
            "the owner's access changes only with ownership".into(),
        ));
    }
    Ok(())
}

/// The stored statuses a user can be moved to another organisation from: someone who joined.
pub const MOVABLE: &[UserStatus] = &[UserStatus::Active, UserStatus::Suspended];

/// Why `user` cannot move to `to` now (SPEC §2, "move to another organisation"): the owner stays
/// until ownership is handed over, an invitation never accepted is resent or deleted instead, an
/// archived user is kept for audit where they were. The store re-checks the same inside its
/// transaction.
pub fn ensure_movable(user: &User, to: OrganizationId) -> Result<(), Error> {
    if user.organization_id == to {
        return Err(Error::invalid(
            "target_organization_id",
            "is the user's own organisation",
        ));
    }
    if user.owner {
        return Err(Error::FailedPrecondition(
            "user: is the owner; hand ownership over first".into(),
        ));
    }
    match user.status {
        UserStatus::Pending | UserStatus::Expired => Err(Error::FailedPrecondition(
            "user: has a pending invitation; delete it and invite them in the other organisation"
                .into(),
        )),
        status if !MOVABLE.contains(&status) => Err(Error::FailedPrecondition(format!(
            "user: is {}",
            status.as_str()
        ))),
        _ => Ok(()),
    }
}

/// An invitation is accepted once, only while it is the newest one, unexpired at `now`, and its user
/// is still pending (SPEC §2). Refusals name the invitation and change nothing.
pub fn ensure_acceptable(
    state: InvitationState,
    invitation: &Invitation,
    user: &User,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let refusal = match state {
        InvitationState::Accepted => "invitation: already accepted",
        InvitationState::Superseded => "invitation: superseded by a newer invitation",
        InvitationState::Live if invitation.expires_at <= now => "invitation: expired",
        InvitationState::Live if user.status != UserStatus::Pending => {
            "invitation: no longer valid"
        }
        InvitationState::Live => return Ok(()),
    };
    Err(Error::FailedPrecondition(refusal.into()))
}

/// What the organisation's second-factor rule says of one user, as far as a reply looked it up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FactorStanding {
    /// The organisation does not require a second factor, or the reply does not consult it
    /// (replies to writes show the lifecycle status only).
    NotRequired,
    /// Required, and the user has confirmed one.
    Covered,
    /// Required, and the user has none: they are LOCKED until they set one up.
    Missing,
}

impl FactorStanding {
    pub fn of(required: bool, has_confirmed_factor: bool) -> Self {
        match (required, has_confirmed_factor) {
            (false, _) => FactorStanding::NotRequired,
            (true, true) => FactorStanding::Covered,
            (true, false) => FactorStanding::Missing,
        }
    }
}

/// The status a caller sees at `now` (SPEC §2): a pending user whose invitation lapsed is EXPIRED,
/// and an active user the organisation requires a second factor of, who has none, is LOCKED. Both are
/// derived here and never stored.
pub fn status_seen(user: &User, now: DateTime<Utc>, factor: FactorStanding) -> UserStatus {
    match (user.status, user.invitation_expires_at) {
        (UserStatus::Pending, Some(expires_at)) if expires_at <= now => UserStatus::Expired,
        _ => status_decided(user, factor),
    }
}

/// The status a decision sees: LOCKED as in `status_seen`, without the clock (a pending user is
/// denied whether or not their invitation lapsed).
pub fn status_decided(user: &User, factor: FactorStanding) -> UserStatus {
    match (user.status, factor) {
        (UserStatus::Active, FactorStanding::Missing) => UserStatus::Locked,
        (status, _) => status,
    }
}

/// Whether a settings change is the one that starts requiring a second factor: the moment every
/// user without one becomes LOCKED and loses their sessions (SPEC §2).
pub fn locks_factorless(before: &OrganizationSettings, after: &OrganizationSettings) -> bool {
    !before.require_second_factor && after.require_second_factor
}

/// Whoever starts requiring a second factor must hold one, or they would lock themselves out with
/// everyone else.
pub fn ensure_may_require_second_factor(caller_has_factor: bool) -> Result<(), Error> {
    if !caller_has_factor {
        return Err(Error::FailedPrecondition(
            "require_second_factor: set up a second factor of your own first".into(),
        ));
    }
    Ok(())
}

/// Reading a user needs `users.read` wherever their access reaches, so an admin of one legal entity
/// reads its people; someone with no access at all needs it organisation-wide.
pub fn reading_needs(target: Option<&Subject>) -> Vec<Wanted> {
    let wanted: Vec<Wanted> = target
        .map(|subject| {
            subject
                .holdings
                .iter()
                .map(|holding| Wanted::new("users.read", holding.scope.clone()))
                .collect()
        })
        .unwrap_or_default();
    if wanted.is_empty() {
        return vec![Wanted::new("users.read", Scope::All)];
    }
    wanted
}

/// Whether `reader` may read a user whose access is `target` (`reading_needs`): GetUser answers
/// PERMISSION_DENIED when not, and ListUsers leaves the row out, so a list never shows more.
pub fn may_read(reader: &Subject, target: Option<&Subject>, tree: &EntityTree) -> bool {
    rules::ensure_holds(reader, &reading_needs(target), tree).is_ok()
}

/// `user` as it reads once `change` is written: the audit row's `after`.
pub fn changed(user: &User, change: &UserChange) -> User {
    let mut after = user.clone();
    let keep = |new: &Option<String>, old: &mut String| {
        if let Some(new) = new {
            old.clone_from(new);
        }
    };
    keep(&change.first_name, &mut after.first_name);
    keep(&change.last_name, &mut after.last_name);
    if let Some(grants) = &change.grants {
        after.grants.clone_from(grants);
    }
    if let Some(direct) = &change.direct_grants {
        after.direct_grants.clone_from(direct);
    }
    after
}

/// An invited user as the audit log and the reply show them until they accept.
pub fn invited(user: &NewUser, invitation: &Invitation) -> User {
    User {
        id: user.id,
        organization_id: user.organization_id,
        email: user.email.as_str().to_owned(),
        first_name: user.first_name.clone(),
        last_name: user.last_name.clone(),
        status: UserStatus::Pending,
        owner: false,
        grants: user.grants.clone(),
        direct_grants: user.direct_grants.clone(),
        created_at: user.created_at,
        last_login_at: None,
        last_active_at: None,
        invitation_expires_at: Some(invitation.expires_at),
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::{
        decision::{Holding, Source},
        ids::{EntityId, InvitationId, OrganizationId, RoleId},
    };

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn user(status: UserStatus) -> User {
        User {
            status,
            invitation_expires_at: (status == UserStatus::Pending).then(|| at(100)),
            ..crate::fixtures::user()
        }
    }

    #[test]
    fn only_joined_users_who_do_not_own_move_to_another_organisation() {
        use UserStatus::*;
        let elsewhere = OrganizationId(uuid::Uuid::from_u128(2));
        let movable: Vec<UserStatus> = [Pending, Expired, Active, Suspended, Archived]
            .into_iter()
            .filter(|status| ensure_movable(&user(*status), elsewhere).is_ok())
            .collect();
        assert_eq!(movable, vec![Active, Suspended]);
        let pending = ensure_movable(&user(Pending), elsewhere).unwrap_err();
        assert!(
            pending.to_string().contains("pending invitation"),
            "{pending}"
        );
        let owner = User {
            owner: true,
            ..user(Active)
        };
        let refused = ensure_movable(&owner, elsewhere).unwrap_err();
        assert!(
            matches!(refused, Error::FailedPrecondition(ref reason) if reason.contains("owner"))
        );
        let home = user(Active).organization_id;
        assert!(matches!(
            ensure_movable(&user(Active), home),
            Err(Error::Invalid { .. })
        ));
    }

    fn invitation() -> Invitation {
        Invitation {
            id: InvitationId(uuid::Uuid::from_u128(9)),
            organization_id: OrganizationId(uuid::Uuid::from_u128(1)),
            user_id: UserId(uuid::Uuid::from_u128(7)),
            token_hash: "hash".into(),
            created_at: at(0),
            expires_at: at(100),
        }
    }

    #[test]
    fn each_step_moves_only_from_its_statuses() {
        use UserStatus::*;
        let allowed = |step: Lifecycle| -> Vec<UserStatus> {
            [Pending, Active, Suspended, Archived]
                .into_iter()
                .filter(|status| step.apply_to(&user(*status)).is_ok())
                .collect()
        };
        assert_eq!(allowed(Lifecycle::Suspend), [Active]);
        assert_eq!(allowed(Lifecycle::Restore), [Suspended]);
        assert_eq!(allowed(Lifecycle::Delete), [Pending, Active, Suspended]);
        assert_eq!(allowed(Lifecycle::Resend), [Pending]);
        assert_eq!(
            Lifecycle::Suspend.apply_to(&user(Active)).unwrap(),
            Suspended
        );
        assert_eq!(
            Lifecycle::Restore.apply_to(&user(Suspended)).unwrap(),
            Active
        );
        assert_eq!(
            Lifecycle::Delete.apply_to(&user(Pending)).unwrap(),
            Archived
        );
        assert_eq!(Lifecycle::Resend.apply_to(&user(Pending)).unwrap(), Pending);
    }

    #[test]
    fn a_refused_step_names_the_status_it_found() {
        let error = Lifecycle::Restore
            .apply_to(&user(UserStatus::Archived))
            .unwrap_err();
        assert_eq!(error.to_string(), "user: is archived");
        let error = Lifecycle::Resend
            .apply_to(&user(UserStatus::Active))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "user: only pending or expired invitations can be resent"
        );
        assert!(matches!(error, Error::FailedPrecondition(_)));
    }

    #[test]
    fn nobody_suspends_restores_or_deletes_themselves() {
        let me = UserId(uuid::Uuid::from_u128(1));
        let them = UserId(uuid::Uuid::from_u128(2));
        for (step, verb) in [
            (Lifecycle::Suspend, "suspend"),
            (Lifecycle::Restore, "restore"),
            (Lifecycle::Delete, "delete"),
        ] {
            let error = step.ensure_not_self(me, me).unwrap_err();
            assert_eq!(error.to_string(), format!("you cannot {verb} yourself"));
            assert!(step.ensure_not_self(me, them).is_ok());
        }
        assert!(Lifecycle::Resend.ensure_not_self(me, me).is_ok());
    }

    #[test]
    fn an_invitation_is_accepted_once_while_newest_unexpired_and_pending() {
        let pending = user(UserStatus::Pending);
        let accept = |state, user: &User, now| {
            ensure_acceptable(state, &invitation(), user, now).map_err(|error| error.to_string())
        };
        assert_eq!(accept(InvitationState::Live, &pending, at(99)), Ok(()));
        assert_eq!(
            accept(InvitationState::Live, &pending, at(100)),
            Err("invitation: expired".into())
        );
        assert_eq!(
            accept(InvitationState::Accepted, &pending, at(1)),
            Err("invitation: already accepted".into())
        );
        assert_eq!(
            accept(InvitationState::Superseded, &pending, at(1)),
            Err("invitation: superseded by a newer invitation".into())
        );
        assert_eq!(
            accept(InvitationState::Live, &user(UserStatus::Archived), at(1)),
            Err("invitation: no longer valid".into())
        );
    }

    #[test]
    fn callers_see_expired_from_the_invitation_and_locked_from_the_factor_policy() {
        let pending = user(UserStatus::Pending);
        let active = user(UserStatus::Active);
        let none = FactorStanding::NotRequired;
        assert_eq!(status_seen(&pending, at(99), none), UserStatus::Pending);
        assert_eq!(status_seen(&pending, at(100), none), UserStatus::Expired);
        assert_eq!(
            status_seen(&pending, at(100), FactorStanding::Missing),
            UserStatus::Expired
        );
        assert_eq!(status_seen(&active, at(0), none), UserStatus::Active);
        assert_eq!(
            status_seen(&active, at(0), FactorStanding::of(true, true)),
            UserStatus::Active
        );
        assert_eq!(
            status_seen(&active, at(0), FactorStanding::of(true, false)),
            UserStatus::Locked
        );
        assert_eq!(
            status_seen(&user(UserStatus::Suspended), at(0), FactorStanding::Missing),
            UserStatus::Suspended
        );
        assert_eq!(
            FactorStanding::of(false, false),
            FactorStanding::NotRequired
        );
    }

    #[test]
    fn sso_organisations_manage_users_at_their_provider() {
        let mut settings = OrganizationSettings::default();
        assert!(ensure_managed_here(&settings).is_ok());
        settings.sso_enabled = true;
        assert!(matches!(
            ensure_managed_here(&settings),
            Err(Error::ManagedByIdp)
        ));
        assert!(ensure_membership_managed_here(&settings).is_ok());
    }

    #[test]
    fn scim_organisations_manage_users_and_memberships_at_their_provider() {
        let mut settings = OrganizationSettings::default();
        assert!(ensure_membership_managed_here(&settings).is_ok());
        settings.scim_enabled = true;
        assert!(matches!(
            ensure_managed_here(&settings),
            Err(Error::ManagedByIdp)
        ));
        assert!(matches!(
            ensure_membership_managed_here(&settings),
            Err(Error::ManagedByIdp)
        ));
    }

    #[test]
    fn the_owners_access_is_not_edited_directly() {
        let mut owner = user(UserStatus::Active);
        assert!(ensure_access_editable(&owner).is_ok());
        owner.owner = true;
        assert_eq!(
            ensure_access_editable(&owner).unwrap_err().to_string(),
            "the owner's access changes only with ownership"
        );
    }

    #[test]
    fn requiring_a_second_factor_locks_the_factorless_and_needs_one_of_the_caller() {
        let off = OrganizationSettings::default();
        let on = OrganizationSettings {
            require_second_factor: true,
            ..off.clone()
        };
        assert!(locks_factorless(&off, &on));
        assert!(!locks_factorless(&on, &on) && !locks_factorless(&on, &off));
        assert!(ensure_may_require_second_factor(true).is_ok());
        assert!(ensure_may_require_second_factor(false).is_err());
        let active = user(UserStatus::Active);
        assert_eq!(
            status_decided(&active, FactorStanding::Missing),
            UserStatus::Locked
        );
        let pending = user(UserStatus::Pending);
        assert_eq!(
            status_decided(&pending, FactorStanding::Missing),
            UserStatus::Pending
        );
    }

    #[test]
    fn reading_a_user_needs_users_read_wherever_their_access_reaches() {
        let entity = EntityId(uuid::Uuid::from_u128(3));
        let scoped = Scope::Entities([entity].into());
        let subject = Subject {
            user: UserId(uuid::Uuid::from_u128(7)),
            status: UserStatus::Active,
            owner: false,
            holdings: vec![Holding {
                source: Source::Role(RoleId::new("analyst")),
                scope: scoped.clone(),
                permissions: Default::default(),
            }],
        };
        assert_eq!(
            reading_needs(Some(&subject)),
            [Wanted::new("users.read", scoped.clone())]
        );
        let nowhere = Subject {
            holdings: vec![],
            ..subject
        };
        let everywhere = [Wanted::new("users.read", Scope::All)];
        assert_eq!(reading_needs(Some(&nowhere)), everywhere);
        assert_eq!(reading_needs(None), everywhere);

        let tree =
            EntityTree::from_pairs([(entity, None), (EntityId(uuid::Uuid::from_u128(4)), None)]);
        let reader = |scope: Scope| Subject {
            holdings: vec![Holding {
                source: Source::Role(RoleId::new("iam_admin")),
                scope,
                permissions: [crate::ids::PermissionKey::new("users.read")].into(),
            }],
            ..nowhere.clone()
        };
        let local = reader(scoped.clone());
        assert!(may_read(&local, Some(&subject), &tree));
        assert!(
            !may_read(&local, Some(&nowhere), &tree),
            "no access: organisation-wide only"
        );
        let wide = Subject {
            holdings: vec![Holding {
                scope: Scope::All,
                ..subject.holdings[0].clone()
            }],
            ..subject.clone()
        };
        assert!(
            !may_read(&local, Some(&wide), &tree),
            "full access: organisation-wide only"
        );
        assert!(may_read(&reader(Scope::All), Some(&wide), &tree));
    }

    #[test]
    fn a_change_replaces_only_the_fields_it_names() {
        let before = user(UserStatus::Active);
        let grant = crate::model::Grant {
            role: RoleId::new("analyst"),
            scope: Scope::All,
        };
        let change = UserChange {
            last_name: Some("Byron".into()),
            grants: Some(vec![grant.clone()]),
            ..UserChange::default()
        };
        let after = changed(&before, &change);
        assert_eq!(
            (after.first_name.as_str(), after.last_name.as_str()),
            ("Ada", "Byron")
        );
        assert_eq!((after.grants, after.direct_grants), (vec![grant], vec![]));
        assert_eq!(changed(&before, &UserChange::default()), before);
    }

    #[test]
    fn an_invited_user_is_pending_until_the_invitation_expires() {
        let new = NewUser {
            id: UserId(uuid::Uuid::from_u128(7)),
            organization_id: OrganizationId(uuid::Uuid::from_u128(1)),
            email: crate::validate::Email::parse("email", "ada@example.com").unwrap(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            grants: vec![],
            direct_grants: vec![],
            created_at: at(0),
        };
        let shown = invited(&new, &invitation());
        assert_eq!(shown, user(UserStatus::Pending));
        let later = at(0) + Duration::seconds(100);
        assert_eq!(
            status_seen(&shown, later, FactorStanding::NotRequired),
            UserStatus::Expired
        );
    }
}
