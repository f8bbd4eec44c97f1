//! The second-factor RPCs of AuthService (SPEC §4): enrolment, challenges at sign-in, codes through
//! the outbox, and admin-issued recovery codes. Every code check goes through the attempt throttle;
//! the rules (lifetimes, limits, which factor completes what) are in `warden_core::second_factor`.
use chrono::{DateTime, Utc};
use tonic::Request;
use warden_core::{
    Error,
    audit::Action,
    decision::Target,
    ids::{ChallengeId, FactorId, OrganizationId, UserId},
    model::{
        Challenge, Notification, OrganizationSettings, PendingCode, RecoveryCode, SecondFactor,
        SecondFactorMethod, User,
    },
    second_factor, sign_in,
};
use warden_proto::v1;

use crate::{
    call::{Call, acting_on, anonymous, call},
    convert::{self, Page},
    factors,
    guard::{AttemptKeys, Check},
    passkeys,
    secrets::random_token,
    services::auth::{Auth, me},
    state::{AppState, UserCaller},
};

fn recovery_hash(code: &str) -> String {
    factors::code_hash("recovery", code)
}

/// A factor being enrolled, with what the user needs to confirm it.
struct Enrolment {
    factor: SecondFactor,
    /// TOTP: the secret in base32 and the `otpauth://` URI, shown once.
    totp: Option<(String, String)>,
    /// Email and SMS: the code to confirm with, and the message that carries it.
    confirmation: Option<(PendingCode, Notification)>,
}

impl AppState {
    /// SPEC §4: enrolling or removing a factor needs a password or factor proved within the last
    /// 10 minutes, or the password in the request (checked under the attempt throttle), which the
    /// session then remembers as its latest proof.
    pub(crate) async fn ensure_recent_proof(
        &self,
        call: &Call,
        me: UserCaller,
        password: String,
    ) -> Result<(), Error> {
        if password.is_empty() {
            let session = self.store.find_session(me.session).await?;
            let session = session.ok_or(Error::Unauthenticated("session ended; sign in again"))?;
            return session.ensure_recently_authenticated(call.now);
        }
        let user = self.signed_in_user(me).await?;
        self.check_password_of(&user, &call.origin(), password, "password: incorrect")
            .await?;
        self.store
            .record_reauthentication(me.session, call.now)
            .await
    }

    /// After a right password: a challenge and the factors that complete it, or `None` to sign in
    /// at once. A LOCKED user is refused unless an admin issued a recovery code.
    pub(crate) async fn challenge(
        &self,
        user: &User,
        settings: &OrganizationSettings,
        now: DateTime<Utc>,
    ) -> Result<Option<(Challenge, Vec<SecondFactor>)>, Error> {
        let factors = self
            .store
            .list_factors(user.organization_id, user.id)
            .await?;
        let usable = sign_in::usable_factors(settings, factors);
        let step = sign_in::second_step(settings, &usable);
        let has_recovery_code = step == sign_in::SecondStep::Locked
            && self
                .store
                .has_recovery_code(user.organization_id, user.id, now)
                .await?;
        if !step.needs_challenge(has_recovery_code)? {
            return Ok(None);
        }
        let challenge = Challenge::open(user, now);
        self.store.create_challenge(&challenge).await?;
        Ok(Some((challenge, usable)))
    }

    /// The user's factors that may complete a sign-in under their organisation's current policy.
    pub(crate) async fn usable_factors(&self, user: &User) -> Result<Vec<SecondFactor>, Error> {
        let settings = self.settings_of(user.organization_id).await?;
        let factors = self
            .store
            .list_factors(user.organization_id, user.id)
            .await?;
        Ok(sign_in::usable_factors(&settings, factors))
    }

    /// A challenge that can still be completed, and its user.
    pub(crate) async fn open_challenge(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<(Challenge, User), Error> {
        let id = ChallengeId::parse("challenge_id", id)?;
        let challenge = self.store.find_challenge(id).await?;
        let challenge = challenge.ok_or(Error::NotFound("challenge"))?;
        let user = self
            .store
            .find_user(challenge.organization_id, challenge.user_id)
            .await?;
        let user = challenge.ensure_open(user, now)?;
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

    /// Whether `code` completes the challenge: the code sent for it, a TOTP step or a recovery
    /// code, in that order; the latter two are spent when they match.
    async fn accepts_challenge_code(
        &self,
        challenge: &Challenge,
        user: &User,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let usable = self.usable_factors(user).await?;
        let sent = factors::code_hash(&challenge.id.to_string(), code);
        if challenge.accepts_sent_code(&usable, &sent, now)
            || self.accept_totp(&usable, code, now).await?
        {
            return Ok(true);
        }
        self.store
            .use_recovery_code(user.organization_id, user.id, &recovery_hash(code), now)
            .await
    }

    /// Whether `code` confirms a new factor: a current TOTP step, or the code sent at enrolment.
    async fn accepts_confirmation(
        &self,
        factor: &SecondFactor,
        pending: Option<PendingCode>,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        match factor.method {
            SecondFactorMethod::Totp => {
                self.accept_totp(std::slice::from_ref(factor), code, now)
                    .await
            }
            SecondFactorMethod::Email | SecondFactorMethod::Sms => {
                let hash = factors::code_hash(&factor.id.to_string(), code);
                Ok(pending.is_some_and(|pending| pending.accepts(&hash, now)))
            }
            // A passkey is confirmed when it is registered: no code confirms one.
            SecondFactorMethod::Passkey => Ok(false),
        }
    }

    /// A new factor of `user`: a sealed TOTP secret, or a confirmation code through the outbox.
    fn enrolment(
        &self,
        user: &User,
        method: SecondFactorMethod,
        phone_number: &str,
        now: DateTime<Utc>,
    ) -> Result<Enrolment, Error> {
        let mut factor = SecondFactor::enroll(user.organization_id, user.id, method, now);
        if method == SecondFactorMethod::Totp {
            let (secret, base32, uri) = factors::new_totp(&user.email)?;
            factor.encrypted_secret = Some(self.sealer.seal(&secret)?);
            return Ok(Enrolment {
                factor,
                totp: Some((base32, uri)),
                confirmation: None,
            });
        }
        if method == SecondFactorMethod::Sms {
            factor.phone_number = Some(factors::phone_number(phone_number)?);
        }
        let code = factors::new_code()?;
        let pending = PendingCode::new(
            factors::code_hash(&factor.id.to_string(), &code),
            factor.id,
            now,
        );
        let notification = Notification::second_factor_code(user, &factor, code, now);
        Ok(Enrolment {
            factor,
            totp: None,
            confirmation: Some((pending, notification)),
        })
    }
}

impl Auth {
    pub(crate) async fn send_code(
        &self,
        request: Request<v1::SendSecondFactorCodeRequest>,
    ) -> Result<v1::SendSecondFactorCodeResponse, Error> {
        let (call, input) = anonymous(&self.0, request)?;
        let (challenge, user) = self.0.open_challenge(&input.challenge_id, call.now).await?;
        let factor_id = FactorId::parse("factor_id", &input.factor_id)?;
        let usable = self.0.usable_factors(&user).await?;
        let factor = second_factor::code_factor(usable, factor_id)?;
        self.0
            .spend_send_quota(user.organization_id, user.id)
            .await?;
        let code = factors::new_code()?;
        let hash = factors::code_hash(&challenge.id.to_string(), &code);
        let pending = PendingCode::new(hash, factor.id, call.now);
        let notification = Notification::second_factor_code(&user, &factor, code, call.now);
        self.0
            .store
            .set_challenge_code(challenge.id, &pending, &notification)
            .await?;
        Ok(v1::SendSecondFactorCodeResponse {
            expire_time: Some(convert::timestamp(pending.expires_at)),
        })
    }

    pub(crate) async fn complete(
        &self,
        request: Request<v1::CompleteSecondFactorRequest>,
    ) -> Result<v1::CompleteSecondFactorResponse, Error> {
        let (call, input) = anonymous(&self.0, request)?;
        let (challenge, user) = self.0.open_challenge(&input.challenge_id, call.now).await?;
        let keys = AttemptKeys::of(Check::Code, &user.email, &call.origin());
        let passkey = !input.passkey_assertion_json.is_empty();
        let accepted = if passkey {
            let assertion =
                passkeys::assertion("passkey_assertion_json", &input.passkey_assertion_json)?;
            self.0.begin_attempt(&keys).await?;
            self.0
                .accepts_passkey(&challenge, &user, &assertion, &call)
                .await?
        } else {
            let code = second_factor::code(&input.code)?;
            self.0.begin_attempt(&keys).await?;
            self.0
                .accepts_challenge_code(&challenge, &user, code, call.now)
                .await?
        };
        if !accepted {
            self.0.attempt_failed(&keys).await?;
            let failures = self.0.store.record_challenge_failure(challenge.id).await?;
            return Err(second_factor::wrong_answer(passkey, failures));
        }
        self.0.attempt_succeeded(&keys).await?;
        if !self
            .0
            .store
            .complete_challenge(challenge.id, call.now)
            .await?
        {
            return Err(Error::NotFound("challenge")); // A concurrent completion won.
        }
        let tokens = self.0.start_session(&user, &call).await?;
        Ok(convert::second_factor_completed(&tokens))
    }

    pub(crate) async fn enroll(
        &self,
        request: Request<v1::EnrollSecondFactorRequest>,
    ) -> Result<v1::EnrollSecondFactorResponse, Error> {
        let (call, mut input) = call(&self.0, request).await?;
        let me = me(&call)?;
        let password = std::mem::take(&mut input.password);
        self.0.ensure_recent_proof(&call, me, password).await?;
        let method = convert::second_factor_method(input.method())?;
        let settings = self.0.settings_of(me.organization).await?;
        let enrolled = self.0.store.list_factors(me.organization, me.user).await?;
        second_factor::ensure_may_enroll(&settings, method, enrolled.len())?;
        self.0.spend_send_quota(me.organization, me.user).await?;
        let user = self.0.signed_in_user(me).await?;
        let enrolment = self
            .0
            .enrolment(&user, method, &input.phone_number, call.now)?;
        let factor = &enrolment.factor;
        let after = serde_json::json!({ "method": method.as_str() }).to_string();
        let audit = call
            .audit(me.organization, Action::SecondFactorEnrolled, factor.id)
            .after(after);
        let confirmation = enrolment.confirmation.as_ref();
        self.0
            .store
            .create_factor(
                factor,
                confirmation.map(|(code, sent)| (code, sent)),
                &audit,
            )
            .await?;
        let (totp_secret, otpauth_uri) = enrolment.totp.unwrap_or_default();
        Ok(v1::EnrollSecondFactorResponse {
            factor: Some(convert::second_factor(factor)),
            totp_secret,
            otpauth_uri,
        })
    }

    pub(crate) async fn confirm(
        &self,
        request: Request<v1::ConfirmSecondFactorRequest>,
    ) -> Result<v1::ConfirmSecondFactorResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let me = me(&call)?;
        let user = self.0.store.find_user(me.organization, me.user).await?;
        let email = user.map(|user| user.email).unwrap_or_default();
        let keys = AttemptKeys::of(Check::Code, &email, &call.origin());
        let id = FactorId::parse("factor_id", &input.factor_id)?;
        let found = self
            .0
            .store
            .find_factor(me.organization, me.user, id)
            .await?;
        let (factor, pending) = found.ok_or(Error::NotFound("factor"))?;
        if !factor.confirmed {
            self.0.begin_attempt(&keys).await?;
            let code = input.code.trim();
            if !self
                .0
                .accepts_confirmation(&factor, pending, code, call.now)
                .await?
            {
                self.0.attempt_failed(&keys).await?;
                self.0.store.record_factor_failure(factor.id).await?;
                return Err(Error::Unauthenticated("code: incorrect"));
            }
            self.0.attempt_succeeded(&keys).await?;
            let audit = call.audit(me.organization, Action::SecondFactorConfirmed, factor.id);
            let confirmed = self.0.store.confirm_factor(factor.id, &audit).await?;
            return Ok(convert::second_factor_confirmed(&confirmed));
        }
        Ok(convert::second_factor_confirmed(&factor))
    }

    pub(crate) async fn list_factors(
        &self,
        request: Request<v1::ListSecondFactorsRequest>,
    ) -> Result<v1::ListSecondFactorsResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let me = me(&call)?;
        let page = Page::parse(input.page_size, &input.page_token)?;
        let all = self.0.store.list_factors(me.organization, me.user).await?;
        // A user has at most ten factors: paging happens here, over the ordered list.
        let rest: Vec<SecondFactor> = all
            .into_iter()
            .filter(|factor| {
                page.after
                    .as_ref()
                    .is_none_or(|after| factor.id.to_string() > *after)
            })
            .collect();
        let (factors, next_page_token) = page.cut(rest, |factor| factor.id.to_string());
        Ok(v1::ListSecondFactorsResponse {
            factors: factors.iter().map(convert::second_factor).collect(),
            next_page_token,
        })
    }

    pub(crate) async fn remove_factor(
        &self,
        request: Request<v1::RemoveSecondFactorRequest>,
    ) -> Result<v1::RemoveSecondFactorResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let me = me(&call)?;
        let id = FactorId::parse("factor_id", &input.factor_id)?;
        self.0
            .ensure_recent_proof(&call, me, input.password)
            .await?;
        let audit = call.audit(me.organization, Action::SecondFactorRemoved, id);
        self.0
            .store
            .remove_factor(me.organization, me.user, id, &audit)
            .await?;
        Ok(v1::RemoveSecondFactorResponse {})
    }

    pub(crate) async fn issue_recovery(
        &self,
        request: Request<v1::IssueRecoveryCodeRequest>,
    ) -> Result<v1::IssueRecoveryCodeResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let organization = OrganizationId::parse("organization_id", &input.organization_id)?;
        let target = UserId::parse("user_id", &input.user_id)?;
        let me = call
            .require(organization, "security.write", Target::Organization)
            .await?;
        acting_on(&self.0, me, organization, target).await?;
        let code = random_token(24)?; // 192 bits; shown once, stored hashed.
        let recovery = RecoveryCode::issue(organization, target, recovery_hash(&code), call.now);
        let audit = call.audit(organization, Action::RecoveryCodeIssued, target);
        self.0.store.issue_recovery_code(&recovery, &audit).await?;
        Ok(v1::IssueRecoveryCodeResponse {
            recovery_code: code,
            expire_time: Some(convert::timestamp(recovery.expires_at)),
        })
    }
}
