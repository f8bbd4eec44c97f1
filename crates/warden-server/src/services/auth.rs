//! AuthService: password sign-in, sessions and their refresh tokens, passwords, signing keys and
//! the JWKS (SPEC §4). The second-factor RPCs are in `second_factors.rs`, SSO in `sso.rs`.
use chrono::{DateTime, Utc};
use tonic::{Request, Response, Status};
use warden_core::{
    Error,
    audit::{Action, Origin},
    ids::{OrganizationId, UserId},
    model::{
        Actor, AuditEvent, Notification, OrganizationSettings, PasswordReset, RefreshOutcome,
        Session, User, UserStatus,
    },
    password_reset,
    sign_in::{self, Standing, bounded_origin},
    validate::Email,
};
use warden_proto::v1::{self, auth_service_server::AuthService};

use crate::{
    call::{Call, anonymous, call},
    convert,
    guard::{AttemptKeys, Check},
    secrets::{random_token, sha256_hex},
    state::{AppState, Caller, Shared, UserCaller},
    status::to_status,
    tokens::TokenSubject,
};

/// The same answer for an unknown email, a wrong password and a user who may not sign in, so that
/// sign-in reveals nothing about which accounts exist (SPEC §4).
const BAD_CREDENTIALS: &str = "invalid email or password";
/// Refresh tokens are 256 random bits in base64: anything longer is not one.
const MAX_REFRESH_TOKEN_CHARS: usize = 200;

pub struct Auth(pub Shared);

/// A new access token and refresh token for a session.
pub(crate) struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_at: DateTime<Utc>,
}

/// The signed-in user behind a call: these RPCs act on the caller's own account.
pub(crate) fn me(call: &Call) -> Result<UserCaller, Error> {
    match call.caller {
        Caller::User(user) => Ok(user),
        Caller::Operator | Caller::ApiKey { .. } | Caller::Anonymous => Err(
            Error::PermissionDenied("this call needs a dashboard user's access token".into()),
        ),
    }
}

/// An audit row of `user`'s own doing in a call that carried no credentials (sign-in, reset).
pub(crate) fn audit_by(
    call: &Call,
    organization: OrganizationId,
    user: UserId,
    action: Action,
) -> AuditEvent {
    AuditEvent {
        actor: Actor::User(user),
        ..call.audit(organization, action, user)
    }
}

impl AppState {
    /// Checks a user's password under the attempt throttle; a wrong one is `Unauthenticated(message)`.
    pub async fn check_password(
        &self,
        keys: &AttemptKeys,
        password: String,
        hash: Option<String>,
        message: &'static str,
    ) -> Result<(), Error> {
        if password.chars().count() > self.policy.max_chars {
            return Err(Error::invalid(
                "password",
                format!("must be at most {} characters", self.policy.max_chars),
            ));
        }
        self.begin_attempt(keys).await?;
        if self.passwords.verify(password, hash).await? {
            self.attempt_succeeded(keys).await?;
            Ok(())
        } else {
            self.attempt_failed(keys).await?;
            Err(Error::Unauthenticated(message))
        }
    }

    /// Checks the password of a signed-in `user` (re-authentication before a sensitive change).
    pub async fn check_password_of(
        &self,
        user: &User,
        origin: &Origin,
        password: String,
        message: &'static str,
    ) -> Result<(), Error> {
        let keys = AttemptKeys::of(Check::Password, &user.email, origin);
        let email = Email::parse("email", &user.email)?;
        let hash = self.store.find_credentials(&email).await?;
        let hash = hash.and_then(|(_, hash)| hash);
        self.check_password(&keys, password, hash, message).await
    }

    pub(crate) async fn settings_of(
        &self,
        organization: OrganizationId,
    ) -> Result<OrganizationSettings, Error> {
        let found = self.store.find_organization(organization).await?;
        Ok(found.ok_or(Error::NotFound("organization"))?.settings)
    }

    pub(crate) async fn signed_in_user(&self, me: UserCaller) -> Result<User, Error> {
        let user = self.store.find_user(me.organization, me.user).await?;
        user.ok_or(Error::NotFound("user"))
    }

    async fn access_token(
        &self,
        session: &Session,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>), Error> {
        let subject = TokenSubject {
            user: session.user_id,
            organization: session.organization_id,
            session: session.id,
        };
        self.tokens.issue(subject, now).await
    }

    /// Starts a session for a user who proved who they are.
    pub(crate) async fn start_session(&self, user: &User, call: &Call) -> Result<Tokens, Error> {
        let session = Session::start(user, call.now, self.refresh_ttl).with_origin(&call.origin());
        let refresh_token = random_token(32)?;
        let audit = audit_by(call, user.organization_id, user.id, Action::SignedIn);
        self.store
            .record_sign_in(&session, &sha256_hex(&refresh_token), &audit)
            .await?;
        let (access_token, expires_at) = self.access_token(&session, call.now).await?;
        tracing::info!(user_id = %user.id, session_id = %session.id, "signed in");
        Ok(Tokens {
            access_token,
            refresh_token,
            expires_at,
        })
    }

    /// The ACTIVE user whose password this is. Every other case is the one BAD_CREDENTIALS answer;
    /// a known user's failure is audited off the response path, so it answers no slower.
    async fn credentials(&self, call: &Call, email: &str, password: String) -> Result<User, Error> {
        let keys = AttemptKeys::of(Check::Password, email, &call.origin());
        // A malformed email cannot belong to anyone: it still costs one hash, then fails like the rest.
        let found = match Email::parse("email", email) {
            Ok(email) => self.store.find_credentials(&email).await?,
            Err(_) => None,
        };
        let (user, hash) = found.map_or((None, None), |(user, hash)| (Some(user), hash));
        let checked = self
            .check_password(&keys, password, hash, BAD_CREDENTIALS)
            .await;
        match (checked, user) {
            (Ok(()), Some(user)) if user.status == UserStatus::Active => Ok(user),
            (
                Err(error @ (Error::Throttled { .. } | Error::Invalid { .. } | Error::Internal(_))),
                _,
            ) => Err(error),
            (_, refused) => {
                tracing::info!("sign-in refused");
                if let Some(user) = refused {
                    self.audit_in_background(call.audit(
                        user.organization_id,
                        Action::SignInFailed,
                        user.id,
                    ));
                }
                Err(Error::Unauthenticated(BAD_CREDENTIALS))
            }
        }
    }

    pub(crate) fn audit_in_background(&self, audit: AuditEvent) {
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(error) = store.record_audit(&audit).await {
                tracing::warn!(%error, "failed sign-in not audited");
            }
        });
    }

    /// What the store knows that decides whether `user`'s session may go on; each question is
    /// asked only when the policy makes its answer matter.
    async fn standing(
        &self,
        settings: &OrganizationSettings,
        user: &User,
    ) -> Result<Standing, Error> {
        let (organization, id) = (user.organization_id, user.id);
        let sso_linked = settings.sso_enabled && self.store.is_sso_linked(organization, id).await?;
        let has_confirmed_factor = settings.require_second_factor
            && !self
                .store
                .users_with_confirmed_factor(organization, &[id])
                .await?
                .is_empty();
        Ok(Standing {
            sso_linked,
            has_confirmed_factor,
        })
    }

    /// Whether a just-rotated session may go on: the user may have been suspended since, locked out
    /// by a new second-factor requirement, or handed to SSO, and a refresh is no way around that.
    async fn may_continue(&self, session: &Session, now: DateTime<Utc>) -> Result<bool, Error> {
        let user = self
            .store
            .find_user(session.organization_id, session.user_id)
            .await?;
        let Some(user) = user else {
            return Ok(false);
        };
        let settings = self.settings_of(user.organization_id).await?;
        let standing = self.standing(&settings, &user).await?;
        Ok(sign_in::may_continue(
            &settings, session, &user, standing, now,
        ))
    }

    /// Writes a reset token and its notification when the email may reset; nothing otherwise.
    async fn queue_password_reset(&self, email: &Email, call: &Call) -> Result<(), Error> {
        let Some((user, hash)) = self.store.find_credentials(email).await? else {
            return Ok(());
        };
        if !PasswordReset::may_request(&user, hash.is_some()) {
            return Ok(());
        }
        let token = random_token(32)?;
        let reset = PasswordReset::new(&user, sha256_hex(&token), call.now, self.reset_ttl);
        let notification = Notification::password_reset(&user, token, call.now);
        let audit = call.audit(
            user.organization_id,
            Action::PasswordResetRequested,
            user.id,
        );
        self.store
            .create_password_reset(&reset, &notification, &audit)
            .await
    }
}

#[tonic::async_trait]
impl AuthService for Auth {
    async fn sign_in(
        &self,
        request: Request<v1::SignInRequest>,
    ) -> Result<Response<v1::SignInResponse>, Status> {
        self.password_sign_in(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn get_jwks(
        &self,
        request: Request<v1::GetJwksRequest>,
    ) -> Result<Response<v1::GetJwksResponse>, Status> {
        self.jwks(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn refresh_session(
        &self,
        request: Request<v1::RefreshSessionRequest>,
    ) -> Result<Response<v1::RefreshSessionResponse>, Status> {
        self.refresh(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn sign_out(
        &self,
        request: Request<v1::SignOutRequest>,
    ) -> Result<Response<v1::SignOutResponse>, Status> {
        self.end_session(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn change_password(
        &self,
        request: Request<v1::ChangePasswordRequest>,
    ) -> Result<Response<v1::ChangePasswordResponse>, Status> {
        self.new_password(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn request_password_reset(
        &self,
        request: Request<v1::RequestPasswordResetRequest>,
    ) -> Result<Response<v1::RequestPasswordResetResponse>, Status> {
        self.request_reset(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn reset_password(
        &self,
        request: Request<v1::ResetPasswordRequest>,
    ) -> Result<Response<v1::ResetPasswordResponse>, Status> {
        self.reset(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn rotate_signing_key(
        &self,
        request: Request<v1::RotateSigningKeyRequest>,
    ) -> Result<Response<v1::RotateSigningKeyResponse>, Status> {
        self.rotate_key(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn send_second_factor_code(
        &self,
        request: Request<v1::SendSecondFactorCodeRequest>,
    ) -> Result<Response<v1::SendSecondFactorCodeResponse>, Status> {
        self.send_code(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn complete_second_factor(
        &self,
        request: Request<v1::CompleteSecondFactorRequest>,
    ) -> Result<Response<v1::CompleteSecondFactorResponse>, Status> {
        self.complete(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn enroll_second_factor(
        &self,
        request: Request<v1::EnrollSecondFactorRequest>,
    ) -> Result<Response<v1::EnrollSecondFactorResponse>, Status> {
        self.enroll(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn confirm_second_factor(
        &self,
        request: Request<v1::ConfirmSecondFactorRequest>,
    ) -> Result<Response<v1::ConfirmSecondFactorResponse>, Status> {
        self.confirm(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn list_second_factors(
        &self,
        request: Request<v1::ListSecondFactorsRequest>,
    ) -> Result<Response<v1::ListSecondFactorsResponse>, Status> {
        self.list_factors(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn remove_second_factor(
        &self,
        request: Request<v1::RemoveSecondFactorRequest>,
    ) -> Result<Response<v1::RemoveSecondFactorResponse>, Status> {
        self.remove_factor(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn issue_recovery_code(
        &self,
        request: Request<v1::IssueRecoveryCodeRequest>,
    ) -> Result<Response<v1::IssueRecoveryCodeResponse>, Status> {
        self.issue_recovery(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn sign_in_with_sso(
        &self,
        request: Request<v1::SignInWithSsoRequest>,
    ) -> Result<Response<v1::SignInWithSsoResponse>, Status> {
        self.sign_in_sso(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn begin_passkey_registration(
        &self,
        request: Request<v1::BeginPasskeyRegistrationRequest>,
    ) -> Result<Response<v1::BeginPasskeyRegistrationResponse>, Status> {
        self.begin_registration(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn finish_passkey_registration(
        &self,
        request: Request<v1::FinishPasskeyRegistrationRequest>,
    ) -> Result<Response<v1::FinishPasskeyRegistrationResponse>, Status> {
        self.finish_registration(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn begin_passkey_challenge(
        &self,
        request: Request<v1::BeginPasskeyChallengeRequest>,
    ) -> Result<Response<v1::BeginPasskeyChallengeResponse>, Status> {
        self.begin_challenge(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn begin_passkey_sign_in(
        &self,
        request: Request<v1::BeginPasskeySignInRequest>,
    ) -> Result<Response<v1::BeginPasskeySignInResponse>, Status> {
        self.begin_sign_in(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn finish_passkey_sign_in(
        &self,
        request: Request<v1::FinishPasskeySignInRequest>,
    ) -> Result<Response<v1::FinishPasskeySignInResponse>, Status> {
        self.finish_sign_in(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }
}

impl Auth {
    async fn password_sign_in(
        &self,
        request: Request<v1::SignInRequest>,
    ) -> Result<v1::SignInResponse, Error> {
        let (call, input) = anonymous(&self.0, request)?;
        let user = self
            .0
            .credentials(&call, &input.email, input.password)
            .await?;
        let settings = self.0.settings_of(user.organization_id).await?;
        sign_in::ensure_password_sign_in(&settings, &user)?;
        match self.0.challenge(&user, &settings, call.now).await? {
            Some((challenge, usable)) => Ok(convert::sign_in_challenge(&challenge, &usable)),
            None => Ok(convert::signed_in(
                &self.0.start_session(&user, &call).await?,
            )),
        }
    }

    async fn jwks(
        &self,
        request: Request<v1::GetJwksRequest>,
    ) -> Result<v1::GetJwksResponse, Error> {
        let (call, _) = anonymous(&self.0, request)?; // Each call reads the database: rate-limited.
        Ok(v1::GetJwksResponse {
            keys_json: self.0.tokens.jwks_json(call.now).await?,
        })
    }

    async fn refresh(
        &self,
        request: Request<v1::RefreshSessionRequest>,
    ) -> Result<v1::RefreshSessionResponse, Error> {
        let (call, input) = anonymous(&self.0, request)?;
        let invalid = || Error::Unauthenticated("invalid refresh token");
        let presented = &input.refresh_token;
        if presented.is_empty() || presented.len() > MAX_REFRESH_TOKEN_CHARS {
            return Err(invalid());
        }
        let refresh_token = random_token(32)?;
        let (presented, next) = (sha256_hex(presented), sha256_hex(&refresh_token));
        let session = match self
            .0
            .store
            .rotate_refresh_token(&presented, &next, call.now, bounded_origin(&call.origin()))
            .await?
        {
            RefreshOutcome::Rotated(session) => session,
            RefreshOutcome::Reused => {
                tracing::warn!("spent refresh token presented; its session is revoked");
                return Err(invalid());
            }
            RefreshOutcome::Invalid => return Err(invalid()),
        };
        if !self.0.may_continue(&session, call.now).await? {
            self.0.store.revoke_session(session.id, call.now).await?;
            return Err(invalid());
        }
        let (access_token, expires_at) = self.0.access_token(&session, call.now).await?;
        Ok(v1::RefreshSessionResponse {
            access_token,
            refresh_token,
            expires_at: Some(convert::timestamp(expires_at)),
        })
    }

    async fn end_session(
        &self,
        request: Request<v1::SignOutRequest>,
    ) -> Result<v1::SignOutResponse, Error> {
        let (call, _) = call(&self.0, request).await?;
        let me = me(&call)?;
        self.0.store.revoke_session(me.session, call.now).await?;
        tracing::info!(user_id = %me.user, session_id = %me.session, "signed out");
        Ok(v1::SignOutResponse {})
    }

    async fn new_password(
        &self,
        request: Request<v1::ChangePasswordRequest>,
    ) -> Result<v1::ChangePasswordResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let me = me(&call)?;
        let user = self.0.signed_in_user(me).await?;
        let (current, wrong) = (input.current_password, "current_password: incorrect");
        self.0
            .check_password_of(&user, &call.origin(), current, wrong)
            .await?;
        self.0.policy.check("new_password", &input.new_password)?;
        let hash = self.0.passwords.hash(input.new_password).await?;
        let audit = call.audit(me.organization, Action::PasswordChanged, me.user);
        // Every other session ends: whoever else knew the old password is out.
        self.0
            .store
            .set_password(me.organization, me.user, &hash, Some(me.session), &audit)
            .await?;
        Ok(v1::ChangePasswordResponse {})
    }

    async fn request_reset(
        &self,
        request: Request<v1::RequestPasswordResetRequest>,
    ) -> Result<v1::RequestPasswordResetResponse, Error> {
        let (call, input) = anonymous(&self.0, request)?;
        let Ok(email) = Email::parse("email", &input.email) else {
            return Ok(v1::RequestPasswordResetResponse {});
        };
        // Answered at once, whether the email is known or not; the reset is written behind the answer.
        let state = self.0.clone();
        tokio::spawn(async move {
            if let Err(error) = state.queue_password_reset(&email, &call).await {
                tracing::warn!(%error, "password reset not queued");
            }
        });
        Ok(v1::RequestPasswordResetResponse {})
    }

    async fn reset(
        &self,
        request: Request<v1::ResetPasswordRequest>,
    ) -> Result<v1::ResetPasswordResponse, Error> {
        let (call, input) = anonymous(&self.0, request)?;
        let token = password_reset::token(&input.token)?;
        self.0.policy.check("new_password", &input.new_password)?;
        let found = self.0.store.find_password_reset(&sha256_hex(token)).await?;
        let (reset, used) = found.ok_or(Error::NotFound("token"))?;
        reset.ensure_usable(used, call.now)?;
        let hash = self.0.passwords.hash(input.new_password).await?;
        let audit = audit_by(
            &call,
            reset.organization_id,
            reset.user_id,
            Action::PasswordReset,
        );
        self.0
            .store
            .complete_password_reset(&reset, &hash, &audit)
            .await?;
        Ok(v1::ResetPasswordResponse {})
    }

    async fn rotate_key(
        &self,
        request: Request<v1::RotateSigningKeyRequest>,
    ) -> Result<v1::RotateSigningKeyResponse, Error> {
        let (call, _) = call(&self.0, request).await?;
        call.require_operator()?;
        let key_id = self.0.tokens.rotate(call.now).await?;
        tracing::info!(kid = %key_id, "signing key rotated");
        Ok(v1::RotateSigningKeyResponse { key_id })
    }
}
