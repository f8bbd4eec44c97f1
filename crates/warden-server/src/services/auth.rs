//! AuthService: password sign-in and the JWKS (SPEC §4). Sessions, second factors and SSO arrive
//! with issues #5 and #6.
use chrono::Utc;
use tonic::{Request, Response, Status};
use warden_core::{
    Error,
    ids::SessionId,
    model::{Actor, Session, UserStatus},
    validate::Email,
};
use warden_proto::v1::{self, auth_service_server::AuthService};

use crate::{
    context::RequestContext,
    convert,
    secrets::{random_token, sha256_hex},
    state::Shared,
    status::{not_yet, to_status},
    tokens::TokenSubject,
};

/// The same answer for an unknown email, a wrong password and a user who may not sign in, so that
/// sign-in reveals nothing about which accounts exist (SPEC §4).
const BAD_CREDENTIALS: &str = "invalid email or password";

pub struct Auth(pub Shared);

#[tonic::async_trait]
impl AuthService for Auth {
    async fn sign_in(
        &self,
        request: Request<v1::SignInRequest>,
    ) -> Result<Response<v1::SignInResponse>, Status> {
        let state = &self.0;
        let context = RequestContext::of(&request);
        let input = request.into_inner();
        if input.password.chars().count() > state.policy.max_chars {
            return Err(to_status(Error::invalid(
                "password",
                format!("must be at most {} characters", state.policy.max_chars),
            )));
        }
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
        let matches = state
            .passwords
            .verify(input.password, hash)
            .await
            .map_err(to_status)?;
        let now = Utc::now();
        let user = match user {
            Some(user) if matches && user.status == UserStatus::Active => user,
            refused => {
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
        let session = Session {
            id: SessionId::generate(),
            organization_id: user.organization_id,
            user_id: user.id,
            created_at: now,
            expires_at: now + state.refresh_ttl,
            revoked_at: None,
        };
        let refresh_token = random_token(32).map_err(to_status)?;
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
        state
            .store
            .record_sign_in(&session, &sha256_hex(&refresh_token), &audit)
            .await
            .map_err(to_status)?;
        let subject = TokenSubject {
            user: user.id,
            organization: user.organization_id,
            session: session.id,
        };
        let (access_token, expires_at) =
            state.tokens.issue(subject, now).await.map_err(to_status)?;
        tracing::info!(user_id = %user.id, session_id = %session.id, "signed in");
        Ok(Response::new(v1::SignInResponse {
            access_token,
            refresh_token,
            expires_at: Some(convert::timestamp(expires_at)),
            second_factor_required: false,
            challenge_id: String::new(),
            factors: vec![],
        }))
    }

    async fn get_jwks(
        &self,
        _request: Request<v1::GetJwksRequest>,
    ) -> Result<Response<v1::GetJwksResponse>, Status> {
        Ok(Response::new(v1::GetJwksResponse {
            keys_json: self.0.tokens.jwks_json().await,
        }))
    }

    async fn send_second_factor_code(
        &self,
        _request: Request<v1::SendSecondFactorCodeRequest>,
    ) -> Result<Response<v1::SendSecondFactorCodeResponse>, Status> {
        Err(not_yet("SendSecondFactorCode", 6))
    }

    async fn complete_second_factor(
        &self,
        _request: Request<v1::CompleteSecondFactorRequest>,
    ) -> Result<Response<v1::CompleteSecondFactorResponse>, Status> {
        Err(not_yet("CompleteSecondFactor", 6))
    }

    async fn refresh_session(
        &self,
        _request: Request<v1::RefreshSessionRequest>,
    ) -> Result<Response<v1::RefreshSessionResponse>, Status> {
        Err(not_yet("RefreshSession", 5))
    }

    async fn sign_out(
        &self,
        _request: Request<v1::SignOutRequest>,
    ) -> Result<Response<v1::SignOutResponse>, Status> {
        Err(not_yet("SignOut", 5))
    }

    async fn enroll_second_factor(
        &self,
        _request: Request<v1::EnrollSecondFactorRequest>,
    ) -> Result<Response<v1::EnrollSecondFactorResponse>, Status> {
        Err(not_yet("EnrollSecondFactor", 6))
    }

    async fn confirm_second_factor(
        &self,
        _request: Request<v1::ConfirmSecondFactorRequest>,
    ) -> Result<Response<v1::ConfirmSecondFactorResponse>, Status> {
        Err(not_yet("ConfirmSecondFactor", 6))
    }

    async fn list_second_factors(
        &self,
        _request: Request<v1::ListSecondFactorsRequest>,
    ) -> Result<Response<v1::ListSecondFactorsResponse>, Status> {
        Err(not_yet("ListSecondFactors", 6))
    }

    async fn remove_second_factor(
        &self,
        _request: Request<v1::RemoveSecondFactorRequest>,
    ) -> Result<Response<v1::RemoveSecondFactorResponse>, Status> {
        Err(not_yet("RemoveSecondFactor", 6))
    }

    async fn issue_recovery_code(
        &self,
        _request: Request<v1::IssueRecoveryCodeRequest>,
    ) -> Result<Response<v1::IssueRecoveryCodeResponse>, Status> {
        Err(not_yet("IssueRecoveryCode", 6))
    }

    async fn sign_in_with_sso(
        &self,
        _request: Request<v1::SignInWithSsoRequest>,
    ) -> Result<Response<v1::SignInWithSsoResponse>, Status> {
        Err(not_yet("SignInWithSso", 6))
    }

    async fn change_password(
        &self,
        _request: Request<v1::ChangePasswordRequest>,
    ) -> Result<Response<v1::ChangePasswordResponse>, Status> {
        Err(not_yet("ChangePassword", 5))
    }

    async fn request_password_reset(
        &self,
        _request: Request<v1::RequestPasswordResetRequest>,
    ) -> Result<Response<v1::RequestPasswordResetResponse>, Status> {
        Err(not_yet("RequestPasswordReset", 5))
    }

    async fn reset_password(
        &self,
        _request: Request<v1::ResetPasswordRequest>,
    ) -> Result<Response<v1::ResetPasswordResponse>, Status> {
        Err(not_yet("ResetPassword", 5))
    }

    async fn rotate_signing_key(
        &self,
        _request: Request<v1::RotateSigningKeyRequest>,
    ) -> Result<Response<v1::RotateSigningKeyResponse>, Status> {
        Err(not_yet("RotateSigningKey", 5))
    }
}
