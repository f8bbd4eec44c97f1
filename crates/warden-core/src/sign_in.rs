//! The sign-in policy (SPEC §4): which second factors an organisation allows, what a right password
//! leads to (a session, a challenge, or LOCKED), and whether a session may be refreshed. Pure: what
//! the store knows about the user (factors, SSO link, recovery codes) and `now` are arguments.
use chrono::{DateTime, Duration, Utc};

use crate::{
    Error,
    audit::Origin,
    ids::SessionId,
    model::{OrganizationSettings, SecondFactor, SecondFactorMethod, Session, User, UserStatus},
};

/// A session's use is recorded at most this often (ListSessions' last use, ListUsers' last activity).
pub const USE_RECORDED_EVERY: Duration = Duration::minutes(1);

/// A client address is at most an IPv6 address with its zone; longer text is cut.
const MAX_CLIENT_ADDRESS_CHARS: usize = 64;
/// The user agent is caller-controlled: cut before it is stored.
const MAX_USER_AGENT_CHARS: usize = 256;

/// The client address and user agent of `origin`, cut to what a session row keeps.
pub fn bounded_origin(origin: &Origin) -> (Option<String>, Option<String>) {
    let cut = |text: &Option<String>, max: usize| {
        text.as_ref().map(|text| text.chars().take(max).collect())
    };
    (
        cut(&origin.client_address, MAX_CLIENT_ADDRESS_CHARS),
        cut(&origin.user_agent, MAX_USER_AGENT_CHARS),
    )
}

impl OrganizationSettings {
    pub fn allows(&self, method: SecondFactorMethod) -> bool {
        self.allowed_second_factors.contains(&method)
    }
}

/// While SSO is on, a password signs in only the owner: their break-glass path to the organisation.
pub fn ensure_password_sign_in(settings: &OrganizationSettings, user: &User) -> Result<(), Error> {
    if settings.sso_enabled && !user.owner {
        return Err(Error::FailedPrecondition(
            "sign in with your organization's identity provider".into(),
        ));
    }
    Ok(())
}

/// The factors that may complete a sign-in: confirmed, of a method the organisation still allows.
pub fn usable_factors(
    settings: &OrganizationSettings,
    factors: Vec<SecondFactor>,
) -> Vec<SecondFactor> {
    factors
        .into_iter()
        .filter(|factor| factor.confirmed && settings.allows(factor.method))
        .collect()
}

/// What a right password leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecondStep {
    /// No second factor: the session starts at once.
    None,
    /// A challenge that one of the usable factors (or a recovery code) completes.
    Challenge,
    /// The organisation requires a second factor and the user has none usable: LOCKED until an
    /// admin issues a recovery code.
    Locked,
}

/// A user with a usable factor is always challenged; one without is challenged only when the
/// organisation requires a second factor, which leaves them LOCKED.
pub fn second_step(settings: &OrganizationSettings, usable: &[SecondFactor]) -> SecondStep {
    match (usable.is_empty(), settings.require_second_factor) {
        (false, _) => SecondStep::Challenge,
        (true, false) => SecondStep::None,
        (true, true) => SecondStep::Locked,
    }
}

impl SecondStep {
    /// Whether to open a challenge: a LOCKED user gets one only while they hold a live recovery code.
    pub fn needs_challenge(self, has_recovery_code: bool) -> Result<bool, Error> {
        match self {
            SecondStep::None => Ok(false),
            SecondStep::Challenge => Ok(true),
            SecondStep::Locked if has_recovery_code => Ok(true),
            SecondStep::Locked => Err(Error::FailedPrecondition(
                "a second factor is required and none is set up: ask an admin for a recovery code"
                    .into(),
            )),
        }
    }
}

/// How recent a proof of a password or factor must be for the changes that need one.
pub const RECENT_AUTHENTICATION_MINUTES: i64 = 10;

impl Session {
    /// A new session of `user`, who proved a password or factor at `now`; its refresh tokens work
    /// until `now + ttl`.
    pub fn start(user: &User, now: DateTime<Utc>, ttl: Duration) -> Self {
        Session {
            id: SessionId::generate(),
            organization_id: user.organization_id,
            user_id: user.id,
            created_at: now,
            expires_at: now + ttl,
            revoked_at: None,
            authenticated_at: Some(now),
            last_used_at: None,
            client_address: None,
            user_agent: None,
        }
    }

    /// The session with where its request came from, bounded before it is stored.
    pub fn with_origin(mut self, origin: &Origin) -> Self {
        (self.client_address, self.user_agent) = bounded_origin(origin);
        self
    }

    /// A call on this session at `now` is recorded as its use when the last one is a minute old:
    /// the check path writes at most once a minute per session.
    pub fn use_due(&self, now: DateTime<Utc>) -> bool {
        self.last_used_at
            .is_none_or(|last| now - last >= USE_RECORDED_EVERY)
    }

    /// Enrolling or removing a second factor needs a password or factor proved within the last
    /// 10 minutes (SPEC §4): a stolen access token alone cannot change how the account signs in.
    pub fn ensure_recently_authenticated(&self, now: DateTime<Utc>) -> Result<(), Error> {
        match self.authenticated_at {
            Some(at) if now - at <= Duration::minutes(RECENT_AUTHENTICATION_MINUTES) => Ok(()),
            _ => Err(Error::FailedPrecondition(format!(
                "password: sign in again or send the password; the last was over \
                 {RECENT_AUTHENTICATION_MINUTES} minutes ago"
            ))),
        }
    }

    /// Neither revoked nor past its expiry at `now`.
    pub fn is_live_at(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// What the store knows about a user that decides whether their session may go on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Standing {
    /// The user has an identity at the organisation's SSO provider.
    pub sso_linked: bool,
    /// The user has at least one confirmed second factor, of any method.
    pub has_confirmed_factor: bool,
}

/// Whether a refresh may continue `session` at `now`: the session is live, its user ACTIVE, and no
/// change of policy since sign-in shuts them out (SSO turned on for a user it does not know, except
/// the owner; a second factor now required that they lack). A user signed in through SSO leaves
/// second factors to the provider.
pub fn may_continue(
    settings: &OrganizationSettings,
    session: &Session,
    user: &User,
    standing: Standing,
    now: DateTime<Utc>,
) -> bool {
    let linked = settings.sso_enabled && standing.sso_linked;
    session.is_live_at(now)
        && user.status == UserStatus::Active
        && !(settings.sso_enabled && !user.owner && !linked)
        && (!settings.require_second_factor || linked || standing.has_confirmed_factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        fixtures::{at, user},
        ids::{FactorId, OrganizationId, UserId},
    };

    fn member(owner: bool) -> User {
        User { owner, ..user() }
    }

    fn factor(method: SecondFactorMethod, confirmed: bool) -> SecondFactor {
        SecondFactor {
            id: FactorId::generate(),
            organization_id: OrganizationId::generate(),
            user_id: UserId::generate(),
            method,
            confirmed,
            phone_number: None,
            encrypted_secret: None,
            name: None,
            created_at: at(0),
        }
    }

    fn settings(allowed: &[SecondFactorMethod], required: bool, sso: bool) -> OrganizationSettings {
        OrganizationSettings {
            allowed_second_factors: allowed.to_vec(),
            require_second_factor: required,
            sso_enabled: sso,
            ..OrganizationSettings::default()
        }
    }

    #[test]
    fn only_confirmed_factors_of_allowed_methods_complete_a_sign_in() {
        use SecondFactorMethod::{Email, Sms, Totp};
        let factors = vec![factor(Totp, true), factor(Sms, true), factor(Email, false)];
        let usable = usable_factors(&settings(&[Totp, Email], false, false), factors);
        assert_eq!(usable.iter().map(|f| f.method).collect::<Vec<_>>(), [Totp]);
        assert!(settings(&[Sms], false, false).allows(Sms));
        assert!(!settings(&[Sms], false, false).allows(Totp));
    }

    #[test]
    fn a_required_second_factor_without_a_usable_one_locks_until_a_recovery_code() {
        let totp = [factor(SecondFactorMethod::Totp, true)];
        let optional = settings(&[SecondFactorMethod::Totp], false, false);
        let required = settings(&[SecondFactorMethod::Totp], true, false);
        assert_eq!(second_step(&optional, &[]), SecondStep::None);
        assert_eq!(second_step(&optional, &totp), SecondStep::Challenge);
        assert_eq!(second_step(&required, &totp), SecondStep::Challenge);
        assert_eq!(second_step(&required, &[]), SecondStep::Locked);
        assert!(!SecondStep::None.needs_challenge(true).unwrap());
        assert!(SecondStep::Challenge.needs_challenge(false).unwrap());
        assert!(SecondStep::Locked.needs_challenge(true).unwrap());
        assert!(matches!(
            SecondStep::Locked.needs_challenge(false),
            Err(Error::FailedPrecondition(_))
        ));
    }

    #[test]
    fn with_sso_on_only_the_owner_signs_in_with_a_password() {
        let sso = settings(&[], false, true);
        assert!(ensure_password_sign_in(&sso, &member(true)).is_ok());
        assert!(ensure_password_sign_in(&sso, &member(false)).is_err());
        assert!(ensure_password_sign_in(&settings(&[], false, false), &member(false)).is_ok());
    }

    #[test]
    fn a_session_is_live_until_it_expires_or_is_revoked() {
        let session = Session::start(&member(false), at(0), Duration::seconds(60));
        assert!(session.is_live_at(at(59)));
        assert!(!session.is_live_at(at(60)));
        let revoked = Session {
            revoked_at: Some(at(1)),
            ..session
        };
        assert!(!revoked.is_live_at(at(2)));
    }

    #[test]
    fn a_use_is_recorded_once_a_minute_and_the_origin_is_cut() {
        let origin = Origin {
            client_address: Some("a".repeat(100)),
            user_agent: Some("b".repeat(1000)),
        };
        let session =
            Session::start(&member(false), at(0), Duration::hours(1)).with_origin(&origin);
        assert_eq!(session.client_address.as_ref().map(String::len), Some(64));
        assert_eq!(session.user_agent.as_ref().map(String::len), Some(256));
        assert!(session.use_due(at(0)));
        let used = Session {
            last_used_at: Some(at(0)),
            ..session
        };
        assert!(!used.use_due(at(59)));
        assert!(used.use_due(at(60)));
    }

    #[test]
    fn a_proof_is_recent_for_ten_minutes_and_a_session_without_one_has_none() {
        let session = Session::start(&member(false), at(0), Duration::hours(1));
        assert!(session.ensure_recently_authenticated(at(600)).is_ok());
        assert!(matches!(
            session.ensure_recently_authenticated(at(601)),
            Err(Error::FailedPrecondition(_))
        ));
        let older = Session {
            authenticated_at: None,
            ..session
        };
        assert!(older.ensure_recently_authenticated(at(1)).is_err());
    }

    #[test]
    fn a_refresh_stops_when_the_user_or_the_policy_shuts_them_out() {
        let member = member(false);
        let session = Session::start(&member, at(0), Duration::hours(1));
        let plain = settings(&[], false, false);
        let keep = |settings: &OrganizationSettings, user: &User, standing: Standing| {
            may_continue(settings, &session, user, standing, at(10))
        };
        let none = Standing::default();
        assert!(keep(&plain, &member, none));
        assert!(!may_continue(&plain, &session, &member, none, at(3600)));
        let suspended = User {
            status: UserStatus::Suspended,
            ..member.clone()
        };
        assert!(!keep(&plain, &suspended, none));
        let factor = Standing {
            has_confirmed_factor: true,
            ..none
        };
        let linked = Standing {
            sso_linked: true,
            ..none
        };
        let required = settings(&[], true, false);
        assert!(!keep(&required, &member, none));
        assert!(keep(&required, &member, factor));
        let sso = settings(&[], false, true);
        assert!(!keep(&sso, &member, factor));
        assert!(keep(&sso, &member, linked));
        let owner = User {
            owner: true,
            ..member.clone()
        };
        assert!(keep(&sso, &owner, none));
        assert!(
            !keep(&required, &member, linked),
            "a link counts only while SSO is on"
        );
        assert!(keep(&settings(&[], true, true), &member, linked));
    }
}
