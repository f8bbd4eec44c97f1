//! The second-factor RPCs of AuthService (SPEC §4): enrolment, challenges at sign-in, codes through
//! the outbox, and admin-issued recovery codes. Every code check goes through the attempt throttle.
use chrono::{DateTime, Duration, Utc};
use tonic::{Request, Response, Status};
use warden_core::{
    Error,
    decision::Target,
    ids::{ChallengeId, FactorId, NotificationId, OrganizationId, UserId},
    model::{
        Actor, Challenge, Notification, NotificationKind, PendingCode, RecoveryCode, SecondFactor,
        SecondFactorMethod, User, UserStatus,
    },
    page,
};
use warden_proto::v1;

use crate::{
    context::RequestContext,
    convert,
    factors::{self, CHALLENGE_TTL_MINUTES, CODE_TTL_MINUTES, MAX_CODE_FAILURES},
    guard::{AttemptKeys, Check},
    secrets::random_token,
    services::auth::Auth,
    state::AppState,
    status::to_status,
};

/// Recovery codes are valid for a day after they are issued.
const RECOVERY_CODE_TTL_HOURS: i64 = 24;
const MAX_FACTORS_PER_USER: usize = 10;

fn method(method: v1::SecondFactorMethod) -> Result<SecondFactorMethod, Error> {
    match method {
        v1::SecondFactorMethod::Totp => Ok(SecondFactorMethod::Totp),
        v1::SecondFactorMethod::Email => Ok(SecondFactorMethod::Email),
        v1::SecondFactorMethod::Sms => Ok(SecondFactorMethod::Sms),
        v1::SecondFactorMethod::Unspecified => Err(Error::invalid("method", "is required")),
    }
}

pub fn message(factor: &SecondFactor) -> v1::SecondFactor {
    v1::SecondFactor {
        id: factor.id.to_string(),
        method: convert::method(factor.method) as i32,
        confirmed: factor.confirmed,
        phone_number: factor
            .phone_number
            .as_deref()
            .map(factors::masked)
            .unwrap_or_default(),
        create_time: Some(convert::timestamp(factor.created_at)),
    }
}

fn code_notification(
    user: &User,
    factor: &SecondFactor,
    code: String,
    now: DateTime<Utc>,
) -> Notification {
    let (kind, recipient) = match (factor.method, &factor.phone_number) {
        (SecondFactorMethod::Sms, Some(phone)) => (NotificationKind::SmsCode, phone.clone()),
        _ => (NotificationKind::EmailCode, user.email.clone()),
    };
    Notification {
        id: NotificationId::generate(),
        organization_id: user.organization_id,
        kind,
        recipient,
        token: None,
        code: Some(code),
        created_at: now,
    }
}

fn recovery_hash(code: &str) -> String {
    factors::code_hash("recovery", code)
}

impl AppState {
    /// After a right password: a challenge when the user has a usable factor or the organisation
    /// requires one; `None` to sign in at once. A required factor with none configured is LOCKED
    /// unless an admin issued a recovery code.
    pub async fn second_factor_challenge(
        &self,
        user: &User,
        now: DateTime<Utc>,
    ) -> Result<Option<v1::SignInResponse>, Error> {
        let organization = self
            .store
            .find_organization(user.organization_id)
            .await?
            .ok_or(Error::NotFound("organization"))?;
        if organization.settings.sso_enabled && !user.owner {
            return Err(Error::FailedPrecondition(
                "sign in with your organization's identity provider".into(),
            ));
        }
        let usable = self.usable_factors(user).await?;
        if usable.is_empty() && !organization.settings.require_second_factor {
            return Ok(None);
        }
        if usable.is_empty()
            && !self
                .store
                .has_recovery_code(user.organization_id, user.id, now)
                .await?
        {
            return Err(Error::FailedPrecondition(
                "a second factor is required and none is set up: ask an admin for a recovery code"
                    .into(),
            ));
        }
        let challenge = Challenge {
            id: ChallengeId::generate(),
            organization_id: user.organization_id,
            user_id: user.id,
            created_at: now,
            expires_at: now + Duration::minutes(CHALLENGE_TTL_MINUTES),
            failed_attempts: 0,
            code: None,
            completed: false,
        };
        self.store.create_challenge(&challenge).await?;
        Ok(Some(v1::SignInResponse {
            access_token: String::new(),
            refresh_token: String::new(),
            expires_at: None,
            second_factor_required: true,
            challenge_id: challenge.id.to_string(),
            factors: usable.iter().map(message).collect(),
        }))
    }

    /// The user's confirmed factors whose method the organisation allows.
    async fn usable_factors(&self, user: &User) -> Result<Vec<SecondFactor>, Error> {
        let organization = self
            .store
            .find_organization(user.organization_id)
            .await?
            .ok_or(Error::NotFound("organization"))?;
        let allowed = organization.settings.allowed_second_factors;
        let factors = self
            .store
            .list_factors(user.organization_id, user.id)
            .await?;
        Ok(factors
            .into_iter()
            .filter(|factor| factor.confirmed && allowed.contains(&factor.method))
            .collect())
    }

    /// A challenge that can still be completed, and its user.
    async fn open_challenge(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<(Challenge, User), Error> {
        let id = ChallengeId::parse("challenge_id", id)?;
        let challenge = self
            .store
            .find_challenge(id)
            .await?
            .ok_or(Error::NotFound("challenge"))?;
        if challenge.completed
            || challenge.expires_at <= now
            || challenge.failed_attempts >= MAX_CODE_FAILURES
        {
            return Err(Error::NotFound("challenge"));
        }
        let user = self
            .store
            .find_user(challenge.organization_id, challenge.user_id)
            .await?;
        let user = user
            .filter(|user| user.status == UserStatus::Active)
            .ok_or(Error::NotFound("challenge"))?;
        Ok((challenge, user))
    }

    /// Spends the TOTP step a code matches on one of these factors; false for a wrong or replayed code.
    async fn accept_totp(
        &self,
        factors: &[SecondFactor],
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        for factor in factors
            .iter()
            .filter(|factor| factor.method == SecondFactorMethod::Totp)
        {
            let Some(sealed) = &factor.encrypted_secret else {
                continue;
            };
            let secret = self.sealer.open(sealed)?;
            if let Some(step) = factors::totp_step(&secret, code, now)? {
                return self.store.use_totp_step(factor.id, step).await;
            }
        }
        Ok(false)
    }
}

impl Auth {
    pub async fn send_code(
        &self,
        request: Request<v1::SendSecondFactorCodeRequest>,
    ) -> Result<Response<v1::SendSecondFactorCodeResponse>, Status> {
        let state = &self.0;
        state.rate_limit(&request).map_err(to_status)?;
        let input = request.into_inner();
        let now = self.0.clock.now();
        let (challenge, user) = state
            .open_challenge(&input.challenge_id, now)
            .await
            .map_err(to_status)?;
        let factor_id = FactorId::parse("factor_id", &input.factor_id).map_err(to_status)?;
        let usable = state.usable_factors(&user).await.map_err(to_status)?;
        let factor = usable
            .into_iter()
            .find(|factor| factor.id == factor_id && factor.method != SecondFactorMethod::Totp)
            .ok_or_else(|| to_status(Error::NotFound("factor")))?;
        let code = factors::new_code().map_err(to_status)?;
        let pending = PendingCode {
            hash: factors::code_hash(&challenge.id.to_string(), &code),
            factor: factor.id,
            expires_at: now + Duration::minutes(CODE_TTL_MINUTES),
            failed_attempts: 0,
        };
        let notification = code_notification(&user, &factor, code, now);
        state
            .store
            .set_challenge_code(challenge.id, &pending, &notification)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::SendSecondFactorCodeResponse {
            expire_time: Some(convert::timestamp(pending.expires_at)),
        }))
    }

    pub async fn complete(
        &self,
        request: Request<v1::CompleteSecondFactorRequest>,
    ) -> Result<Response<v1::CompleteSecondFactorResponse>, Status> {
        let state = &self.0;
        state.rate_limit(&request).map_err(to_status)?;
        let context = RequestContext::of(&request);
        let now = self.0.clock.now();
        let (challenge, user) = state
            .open_challenge(&request.get_ref().challenge_id, now)
            .await
            .map_err(to_status)?;
        let keys = AttemptKeys::new(Check::Code, &user.email, &request);
        let code = request.into_inner().code.trim().to_owned();
        if code.is_empty() || code.len() > 100 {
            return Err(to_status(Error::invalid(
                "code",
                "is required and at most 100 characters",
            )));
        }
        state.begin_attempt(&keys).await.map_err(to_status)?;
        // Only confirmed factors of a method the organisation still allows complete a sign-in.
        let usable = state.usable_factors(&user).await.map_err(to_status)?;
        let sent_code = challenge.code.as_ref().is_some_and(|pending| {
            pending.expires_at > now
                && usable.iter().any(|factor| factor.id == pending.factor)
                && pending.hash == factors::code_hash(&challenge.id.to_string(), &code)
        });
        let accepted = sent_code
            || state
                .accept_totp(&usable, &code, now)
                .await
                .map_err(to_status)?
            || state
                .store
                .use_recovery_code(user.organization_id, user.id, &recovery_hash(&code), now)
                .await
                .map_err(to_status)?;
        if !accepted {
            let failures = state
                .store
                .record_challenge_failure(challenge.id)
                .await
                .map_err(to_status)?;
            let reason = if failures >= MAX_CODE_FAILURES {
                "code: incorrect; the challenge has ended"
            } else {
                "code: incorrect"
            };
            return Err(to_status(Error::Unauthenticated(reason)));
        }
        state.attempt_succeeded(&keys).await.map_err(to_status)?;
        if !state
            .store
            .complete_challenge(challenge.id, now)
            .await
            .map_err(to_status)?
        {
            return Err(to_status(Error::NotFound("challenge"))); // A concurrent completion won.
        }
        let tokens = state
            .start_session(&user, &context, now)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::CompleteSecondFactorResponse {
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            expires_at: Some(convert::timestamp(tokens.expires_at)),
        }))
    }

    pub async fn enroll(
        &self,
        request: Request<v1::EnrollSecondFactorRequest>,
    ) -> Result<Response<v1::EnrollSecondFactorResponse>, Status> {
        let state = &self.0;
        let me = state.signed_in_user(&state.authenticate(&request).await?)?;
        let context = RequestContext::of(&request);
        let input = request.into_inner();
        let method = method(input.method()).map_err(to_status)?;
        let organization = state
            .store
            .find_organization(me.organization)
            .await
            .map_err(to_status)?;
        let organization =
            organization.ok_or_else(|| to_status(Error::NotFound("organization")))?;
        if !organization
            .settings
            .allowed_second_factors
            .contains(&method)
        {
            return Err(to_status(Error::FailedPrecondition(format!(
                "method: {} is not allowed by your organization",
                method.as_str()
            ))));
        }
        let user = state
            .store
            .find_user(me.organization, me.user)
            .await
            .map_err(to_status)?;
        let user = user.ok_or_else(|| to_status(Error::NotFound("user")))?;
        if state
            .store
            .list_factors(me.organization, me.user)
            .await
            .map_err(to_status)?
            .len()
            >= MAX_FACTORS_PER_USER
        {
            return Err(to_status(Error::FailedPrecondition(format!(
                "at most {MAX_FACTORS_PER_USER} factors per user"
            ))));
        }
        let now = self.0.clock.now();
        let mut factor = SecondFactor {
            id: FactorId::generate(),
            organization_id: me.organization,
            user_id: me.user,
            method,
            confirmed: false,
            phone_number: None,
            encrypted_secret: None,
            created_at: now,
        };
        let (mut totp_secret, mut otpauth_uri) = (String::new(), String::new());
        let mut confirmation = None;
        match method {
            SecondFactorMethod::Totp => {
                let (secret, base32, uri) = factors::new_totp(&user.email).map_err(to_status)?;
                factor.encrypted_secret = Some(state.sealer.seal(&secret).map_err(to_status)?);
                (totp_secret, otpauth_uri) = (base32, uri);
            }
            SecondFactorMethod::Email | SecondFactorMethod::Sms => {
                if method == SecondFactorMethod::Sms {
                    factor.phone_number =
                        Some(factors::phone_number(&input.phone_number).map_err(to_status)?);
                }
                let code = factors::new_code().map_err(to_status)?;
                let pending = PendingCode {
                    hash: factors::code_hash(&factor.id.to_string(), &code),
                    factor: factor.id,
                    expires_at: now + Duration::minutes(CODE_TTL_MINUTES),
                    failed_attempts: 0,
                };
                confirmation = Some((pending, code_notification(&user, &factor, code, now)));
            }
        }
        let audit = context.audit(
            me.organization,
            Actor::User(me.user),
            "user.second_factor_enrolled",
            "second_factor",
            factor.id.to_string(),
            None,
            Some(serde_json::json!({ "method": method.as_str() }).to_string()),
            now,
        );
        state
            .store
            .create_factor(
                &factor,
                confirmation
                    .as_ref()
                    .map(|(pending, notification)| (pending, notification)),
                &audit,
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::EnrollSecondFactorResponse {
            factor: Some(message(&factor)),
            totp_secret,
            otpauth_uri,
        }))
    }

    pub async fn confirm(
        &self,
        request: Request<v1::ConfirmSecondFactorRequest>,
    ) -> Result<Response<v1::ConfirmSecondFactorResponse>, Status> {
        let state = &self.0;
        let me = state.signed_in_user(&state.authenticate(&request).await?)?;
        let context = RequestContext::of(&request);
        let user = state
            .store
            .find_user(me.organization, me.user)
            .await
            .map_err(to_status)?;
        let keys = AttemptKeys::new(
            Check::Code,
            user.map(|user| user.email).as_deref().unwrap_or_default(),
            &request,
        );
        let input = request.into_inner();
        let id = FactorId::parse("factor_id", &input.factor_id).map_err(to_status)?;
        let found = state
            .store
            .find_factor(me.organization, me.user, id)
            .await
            .map_err(to_status)?;
        let (factor, pending) = found.ok_or_else(|| to_status(Error::NotFound("factor")))?;
        if factor.confirmed {
            return Ok(Response::new(v1::ConfirmSecondFactorResponse {
                factor: Some(message(&factor)),
            }));
        }
        state.begin_attempt(&keys).await.map_err(to_status)?;
        let now = self.0.clock.now();
        let code = input.code.trim();
        let accepted = match factor.method {
            SecondFactorMethod::Totp => state
                .accept_totp(std::slice::from_ref(&factor), code, now)
                .await
                .map_err(to_status)?,
            SecondFactorMethod::Email | SecondFactorMethod::Sms => pending.is_some_and(|pending| {
                pending.expires_at > now
                    && pending.failed_attempts < MAX_CODE_FAILURES
                    && pending.hash == factors::code_hash(&factor.id.to_string(), code)
            }),
        };
        if !accepted {
            state
                .store
                .record_factor_failure(factor.id)
                .await
                .map_err(to_status)?;
            return Err(to_status(Error::Unauthenticated("code: incorrect")));
        }
        state.attempt_succeeded(&keys).await.map_err(to_status)?;
        let audit = context.audit(
            me.organization,
            Actor::User(me.user),
            "user.second_factor_confirmed",
            "second_factor",
            factor.id.to_string(),
            None,
            None,
            now,
        );
        let factor = state
            .store
            .confirm_factor(factor.id, &audit)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::ConfirmSecondFactorResponse {
            factor: Some(message(&factor)),
        }))
    }

    pub async fn list_factors(
        &self,
        request: Request<v1::ListSecondFactorsRequest>,
    ) -> Result<Response<v1::ListSecondFactorsResponse>, Status> {
        let state = &self.0;
        let me = state.signed_in_user(&state.authenticate(&request).await?)?;
        let input = request.into_inner();
        let limit = page::page_size(input.page_size).map_err(to_status)?;
        let after = convert::parse_page_token(&input.page_token).map_err(to_status)?;
        let all = state
            .store
            .list_factors(me.organization, me.user)
            .await
            .map_err(to_status)?;
        // A user has at most ten factors: paging happens here, over the ordered list.
        let rest: Vec<_> = all
            .into_iter()
            .filter(|factor| {
                after
                    .as_ref()
                    .is_none_or(|after| factor.id.to_string() > *after)
            })
            .collect();
        let (page, next_page_token) =
            convert::paginate(rest, limit, |factor| factor.id.to_string());
        Ok(Response::new(v1::ListSecondFactorsResponse {
            factors: page.iter().map(message).collect(),
            next_page_token,
        }))
    }

    pub async fn remove_factor(
        &self,
        request: Request<v1::RemoveSecondFactorRequest>,
    ) -> Result<Response<v1::RemoveSecondFactorResponse>, Status> {
        let state = &self.0;
        let me = state.signed_in_user(&state.authenticate(&request).await?)?;
        let context = RequestContext::of(&request);
        let id = FactorId::parse("factor_id", &request.get_ref().factor_id).map_err(to_status)?;
        let now = self.0.clock.now();
        let audit = context.audit(
            me.organization,
            Actor::User(me.user),
            "user.second_factor_removed",
            "second_factor",
            id.to_string(),
            None,
            None,
            now,
        );
        state
            .store
            .remove_factor(me.organization, me.user, id, &audit)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::RemoveSecondFactorResponse {}))
    }

    pub async fn issue_recovery_code(
        &self,
        request: Request<v1::IssueRecoveryCodeRequest>,
    ) -> Result<Response<v1::IssueRecoveryCodeResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let context = RequestContext::of(&request);
        let input = request.into_inner();
        let organization =
            OrganizationId::parse("organization_id", &input.organization_id).map_err(to_status)?;
        let target = UserId::parse("user_id", &input.user_id).map_err(to_status)?;
        let me = state
            .require(
                &caller,
                organization,
                "security.write",
                Target::Organization,
            )
            .await?;
        crate::call::acting_on(state, me, organization, target)
            .await
            .map_err(to_status)?;
        let now = self.0.clock.now();
        let code = random_token(24).map_err(to_status)?; // 192 bits; shown once, stored hashed.
        let recovery = RecoveryCode {
            id: uuid::Uuid::now_v7(),
            organization_id: organization,
            user_id: target,
            code_hash: recovery_hash(&code),
            created_at: now,
            expires_at: now + Duration::hours(RECOVERY_CODE_TTL_HOURS),
        };
        let audit = context.audit(
            organization,
            caller.actor(),
            "user.recovery_code_issued",
            "user",
            target.to_string(),
            None,
            None,
            now,
        );
        state
            .store
            .issue_recovery_code(&recovery, &audit)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::IssueRecoveryCodeResponse {
            recovery_code: code,
            expire_time: Some(convert::timestamp(recovery.expires_at)),
        }))
    }
}
