//! AuthService: password sign-in, sessions and their refresh tokens, passwords, signing keys and
//! the JWKS (SPEC §4). Second factors and SSO arrive with issue #6.
use chrono::{DateTime, Utc};
use tonic::{Request, Response, Status};
use warden_core::{
    Error,
    ids::{NotificationId, SessionId},
    model::{
        Actor, Notification, NotificationKind, PasswordReset, RefreshOutcome, Session, User,
        UserStatus,
    },
    validate::Email,
};
use warden_proto::v1::{self, auth_service_server::AuthService};

use crate::{
    context::RequestContext,
    convert,
    guard::{AttemptKeys, Check},
    secrets::{random_token, sha256_hex},
    state::{AppState, Caller, Shared},
    status::to_status,
    tokens::TokenSubject,
};

/// The same answer for an unknown email, a wrong password and a user who may not sign in, so that
/// sign-in reveals nothing about which accounts exist (SPEC §4).
const BAD_CREDENTIALS: &str = "invalid email or password";

pub struct Auth(pub Shared);

/// A new access token and refresh token for a session.
pub(crate) struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_at: DateTime<Utc>,
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
            Err(Error::Unauthenticated(message))
        }
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
    pub(crate) async fn start_session(
        &self,
        user: &User,
        context: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<Tokens, Error> {
        let session = Session {
            id: SessionId::generate(),
            organization_id: user.organization_id,
            user_id: user.id,
            created_at: now,
            expires_at: now + self.refresh_ttl,
            revoked_at: None,
        };
        let refresh_token = random_token(32)?;
        let audit = context.audit(
            user.organization_id,
            Actor::User(user.id),
            "user.signed_in",
            "user",
            user.id.to_string(),
            None,
            None,
            now,
        );
        self.store
            .record_sign_in(&session, &sha256_hex(&refresh_token), &audit)
            .await?;
        let (access_token, expires_at) = self.access_token(&session, now).await?;
        tracing::info!(user_id = %user.id, session_id = %session.id, "signed in");
        Ok(Tokens {
            access_token,
            refresh_token,
            expires_at,
        })
    }

    /// False when the organisation now requires a second factor the user lacks, or hands sign-in to
    /// SSO (the owner keeps their break-glass session).
    async fn may_keep_session(&self, user: &User) -> Result<bool, Error> {
        let organization = self
            .store
            .find_organization(user.organization_id)
            .await?
            .ok_or(Error::NotFound("organization"))?;
        // A user signed in through SSO leaves second factors to the provider.
        let linked = organization.settings.sso_enabled
            && self
                .store
                .is_sso_linked(user.organization_id, user.id)
                .await?;
        if organization.settings.sso_enabled && !user.owner && !linked {
            return Ok(false);
        }
        if organization.settings.require_second_factor && !linked {
            let covered = self
                .store
                .users_with_confirmed_factor(user.organization_id, &[user.id])
                .await?;
            return Ok(!covered.is_empty());
        }
        Ok(true)
    }

    pub(crate) fn signed_in_user(
        &self,
        caller: &Caller,
    ) -> Result<crate::state::UserCaller, Status> {
        match caller {
            Caller::User(user) => Ok(*user),
            Caller::Operator | Caller::ApiKey { .. } | Caller::Anonymous => Err(to_status(
                Error::PermissionDenied("this call needs a dashboard user's access token".into()),
            )),
        }
    }
}

#[tonic::async_trait]
impl AuthService for Auth {
    async fn sign_in(
        &self,
        request: Request<v1::SignInRequest>,
    ) -> Result<Response<v1::SignInResponse>, Status> {
        let state = &self.0;
        state.rate_limit(&request).map_err(to_status)?;
        let context = RequestContext::of(&request);
        let keys = AttemptKeys::new(Check::Password, &request.get_ref().email, &request);
        let input = request.into_inner();
        // A malformed email cannot belong to anyone: it still costs one hash, then fails like the rest.
        let found = match Email::parse("email", &input.email) {
            Ok(email) => state
                .store
                .find_credentials(&email)
                .await
                .map_err(to_status)?,
            Err(_) => None,
        };
        let (user, hash) = match found {
            Some((user, hash)) => (Some(user), hash),
            None => (None, None),
        };
        let checked = state
            .check_password(&keys, input.password, hash, BAD_CREDENTIALS)
            .await;
        let now = self.0.clock.now();
        let user = match (checked, user) {
            (Ok(()), Some(user)) if user.status == UserStatus::Active => user,
            (
                Err(error @ (Error::Throttled { .. } | Error::Invalid { .. } | Error::Internal(_))),
                _,
            ) => {
                return Err(to_status(error));
            }
            (_, refused) => {
                tracing::info!("sign-in refused");
                if let Some(user) = refused {
                    // Recorded off the response path, so a known email answers no slower than an unknown one.
                    let audit = context.audit(
                        user.organization_id,
                        Actor::Anonymous,
                        "user.sign_in_failed",
                        "user",
                        user.id.to_string(),
                        None,
                        None,
                        now,
                    );
                    let store = state.store.clone();
                    tokio::spawn(async move {
                        if let Err(error) = store.record_audit(&audit).await {
                            tracing::warn!(%error, "failed sign-in not audited");
                        }
                    });
                }
                return Err(to_status(Error::Unauthenticated(BAD_CREDENTIALS)));
            }
        };
        if let Some(challenge) = state
            .second_factor_challenge(&user, now)
            .await
            .map_err(to_status)?
        {
            return Ok(Response::new(challenge));
        }
        let tokens = state
            .start_session(&user, &context, now)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::SignInResponse {
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            expires_at: Some(convert::timestamp(tokens.expires_at)),
            second_factor_required: false,
            challenge_id: String::new(),
            factors: vec![],
        }))
    }

    async fn get_jwks(
        &self,
        request: Request<v1::GetJwksRequest>,
    ) -> Result<Response<v1::GetJwksResponse>, Status> {
        self.0.rate_limit(&request).map_err(to_status)?; // Each call reads the database.
        Ok(Response::new(v1::GetJwksResponse {
            keys_json: self
                .0
                .tokens
                .jwks_json(self.0.clock.now())
                .await
                .map_err(to_status)?,
        }))
    }

    async fn refresh_session(
        &self,
        request: Request<v1::RefreshSessionRequest>,
    ) -> Result<Response<v1::RefreshSessionResponse>, Status> {
        let state = &self.0;
        state.rate_limit(&request).map_err(to_status)?;
        let presented = &request.get_ref().refresh_token;
        let invalid = || to_status(Error::Unauthenticated("invalid refresh token"));
        if presented.is_empty() || presented.len() > 200 {
            return Err(invalid());
        }
        let now = self.0.clock.now();
        let refresh_token = random_token(32).map_err(to_status)?;
        let outcome = state
            .store
            .rotate_refresh_token(&sha256_hex(presented), &sha256_hex(&refresh_token), now)
            .await
            .map_err(to_status)?;
        let session = match outcome {
            RefreshOutcome::Rotated(session) => session,
            RefreshOutcome::Reused => {
                tracing::warn!("spent refresh token presented; its session is revoked");
                return Err(invalid());
            }
            RefreshOutcome::Invalid => return Err(invalid()),
        };
        // The user may have been suspended since, locked out by a new 2FA requirement, or handed to
        // SSO: a refresh is no way around any of that.
        let user = state
            .store
            .find_user(session.organization_id, session.user_id)
            .await
            .map_err(to_status)?;
        let may_continue = match &user {
            Some(user) if user.status == UserStatus::Active => {
                state.may_keep_session(user).await.map_err(to_status)?
            }
            _ => false,
        };
        if !may_continue {
            state
                .store
                .revoke_session(session.id, now)
                .await
                .map_err(to_status)?;
            return Err(invalid());
        }
        let (access_token, expires_at) =
            state.access_token(&session, now).await.map_err(to_status)?;
        Ok(Response::new(v1::RefreshSessionResponse {
            access_token,
            refresh_token,
            expires_at: Some(convert::timestamp(expires_at)),
        }))
    }

    async fn sign_out(
        &self,
        request: Request<v1::SignOutRequest>,
    ) -> Result<Response<v1::SignOutResponse>, Status> {
        let state = &self.0;
        let me = state.signed_in_user(&state.authenticate(&request).await?)?;
        state
            .store
            .revoke_session(me.session, self.0.clock.now())
            .await
            .map_err(to_status)?;
        tracing::info!(user_id = %me.user, session_id = %me.session, "signed out");
        Ok(Response::new(v1::SignOutResponse {}))
    }

    async fn change_password(
        &self,
        request: Request<v1::ChangePasswordRequest>,
    ) -> Result<Response<v1::ChangePasswordResponse>, Status> {
        let state = &self.0;
        let me = state.signed_in_user(&state.authenticate(&request).await?)?;
        let context = RequestContext::of(&request);
        let user = state
            .store
            .find_user(me.organization, me.user)
            .await
            .map_err(to_status)?;
        let user = user.ok_or_else(|| to_status(Error::NotFound("user")))?;
        let keys = AttemptKeys::new(Check::Password, &user.email, &request);
        let input = request.into_inner();
        let email = Email::parse("email", &user.email).map_err(to_status)?;
        let hash = state
            .store
            .find_credentials(&email)
            .await
            .map_err(to_status)?
            .and_then(|(_, hash)| hash);
        state
            .check_password(
                &keys,
                input.current_password,
                hash,
                "current_password: incorrect",
            )
            .await
            .map_err(to_status)?;
        state
            .policy
            .check("new_password", &input.new_password)
            .map_err(to_status)?;
        let hash = state
            .passwords
            .hash(input.new_password)
            .await
            .map_err(to_status)?;
        let now = self.0.clock.now();
        let audit = context.audit(
            me.organization,
            Actor::User(me.user),
            "user.password_changed",
            "user",
            me.user.to_string(),
            None,
            None,
            now,
        );
        // Every other session ends: whoever else knew the old password is out.
        state
            .store
            .set_password(me.organization, me.user, &hash, Some(me.session), &audit)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::ChangePasswordResponse {}))
    }

    async fn request_password_reset(
        &self,
        request: Request<v1::RequestPasswordResetRequest>,
    ) -> Result<Response<v1::RequestPasswordResetResponse>, Status> {
        let state = self.0.clone();
        state.rate_limit(&request).map_err(to_status)?;
        let context = RequestContext::of(&request);
        let input = request.into_inner();
        let Ok(email) = Email::parse("email", &input.email) else {
            return Ok(Response::new(v1::RequestPasswordResetResponse {}));
        };
        // Answered at once, whether the email is known or not; the reset is written behind the answer.
        tokio::spawn(async move {
            if let Err(error) = queue_password_reset(&state, &email, &context).await {
                tracing::warn!(%error, "password reset not queued");
            }
        });
        Ok(Response::new(v1::RequestPasswordResetResponse {}))
    }

    async fn reset_password(
        &self,
        request: Request<v1::ResetPasswordRequest>,
    ) -> Result<Response<v1::ResetPasswordResponse>, Status> {
        let state = &self.0;
        state.rate_limit(&request).map_err(to_status)?;
        let context = RequestContext::of(&request);
        let input = request.into_inner();
        if input.token.is_empty() || input.token.len() > 200 {
            return Err(to_status(Error::invalid(
                "token",
                "is required and at most 200 characters",
            )));
        }
        state
            .policy
            .check("new_password", &input.new_password)
            .map_err(to_status)?;
        let found = state
            .store
            .find_password_reset(&sha256_hex(&input.token))
            .await
            .map_err(to_status)?;
        let (reset, used) = found.ok_or_else(|| to_status(Error::NotFound("token")))?;
        let now = self.0.clock.now();
        if used {
            return Err(to_status(Error::FailedPrecondition(
                "token: already used".into(),
            )));
        }
        if reset.expires_at <= now {
            return Err(to_status(Error::FailedPrecondition(
                "token: expired".into(),
            )));
        }
        let hash = state
            .passwords
            .hash(input.new_password)
            .await
            .map_err(to_status)?;
        let audit = context.audit(
            reset.organization_id,
            Actor::User(reset.user_id),
            "user.password_reset",
            "user",
            reset.user_id.to_string(),
            None,
            None,
            now,
        );
        state
            .store
            .complete_password_reset(&reset, &hash, &audit)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::ResetPasswordResponse {}))
    }

    async fn rotate_signing_key(
        &self,
        request: Request<v1::RotateSigningKeyRequest>,
    ) -> Result<Response<v1::RotateSigningKeyResponse>, Status> {
        let state = &self.0;
        state.require_operator(&state.authenticate(&request).await?)?;
        let key_id = state
            .tokens
            .rotate(state.clock.now())
            .await
            .map_err(to_status)?;
        tracing::info!(kid = %key_id, "signing key rotated");
        Ok(Response::new(v1::RotateSigningKeyResponse { key_id }))
    }

    async fn send_second_factor_code(
        &self,
        request: Request<v1::SendSecondFactorCodeRequest>,
    ) -> Result<Response<v1::SendSecondFactorCodeResponse>, Status> {
        self.send_code(request).await
    }

    async fn complete_second_factor(
        &self,
        request: Request<v1::CompleteSecondFactorRequest>,
    ) -> Result<Response<v1::CompleteSecondFactorResponse>, Status> {
        self.complete(request).await
    }

    async fn enroll_second_factor(
        &self,
        request: Request<v1::EnrollSecondFactorRequest>,
    ) -> Result<Response<v1::EnrollSecondFactorResponse>, Status> {
        self.enroll(request).await
    }

    async fn confirm_second_factor(
        &self,
        request: Request<v1::ConfirmSecondFactorRequest>,
    ) -> Result<Response<v1::ConfirmSecondFactorResponse>, Status> {
        self.confirm(request).await
    }

    async fn list_second_factors(
        &self,
        request: Request<v1::ListSecondFactorsRequest>,
    ) -> Result<Response<v1::ListSecondFactorsResponse>, Status> {
        self.list_factors(request).await
    }

    async fn remove_second_factor(
        &self,
        request: Request<v1::RemoveSecondFactorRequest>,
    ) -> Result<Response<v1::RemoveSecondFactorResponse>, Status> {
        self.remove_factor(request).await
    }

    async fn issue_recovery_code(
        &self,
        request: Request<v1::IssueRecoveryCodeRequest>,
    ) -> Result<Response<v1::IssueRecoveryCodeResponse>, Status> {
        self.issue_recovery_code(request).await
    }

    async fn sign_in_with_sso(
        &self,
        request: Request<v1::SignInWithSsoRequest>,
    ) -> Result<Response<v1::SignInWithSsoResponse>, Status> {
        self.sign_in_sso(request).await
    }
}

/// Writes a reset token and its notification for an active user with a password; nothing otherwise.
async fn queue_password_reset(
    state: &AppState,
    email: &Email,
    context: &RequestContext,
) -> Result<(), Error> {
    let Some((user, Some(_))) = state.store.find_credentials(email).await? else {
        return Ok(());
    };
    if user.status != UserStatus::Active {
        return Ok(());
    }
    let now = state.clock.now();
    let token = random_token(32)?;
    let reset = PasswordReset {
        id: uuid::Uuid::now_v7(),
        organization_id: user.organization_id,
        user_id: user.id,
        token_hash: sha256_hex(&token),
        created_at: now,
        expires_at: now + state.reset_ttl,
    };
    let notification = Notification {
        id: NotificationId::generate(),
        organization_id: user.organization_id,
        kind: NotificationKind::PasswordReset,
        recipient: user.email.clone(),
        token: Some(token),
        code: None,
        created_at: now,
    };
    let audit = context.audit(
        user.organization_id,
        Actor::Anonymous,
        "user.password_reset_requested",
        "user",
        user.id.to_string(),
        None,
        None,
        now,
    );
    state
        .store
        .create_password_reset(&reset, &notification, &audit)
        .await
}
