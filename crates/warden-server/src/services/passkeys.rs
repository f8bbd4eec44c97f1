//! The passkey RPCs of AuthService (SPEC §4): registration, the assertion that completes a sign-in
//! challenge, and sign-in with a passkey alone. Each ceremony's state lives in the database
//! (single use, 5 minutes), so any replica finishes what another began; the WebAuthn checks are
//! `crate::passkeys`', the rules `warden_core::passkeys`'.
use tonic::Request;
use warden_core::{
    Error,
    audit::Action,
    ids::{CeremonyId, OrganizationId},
    model::{
        Ceremony, CeremonyKind, Challenge, PasskeyCredential, SecondFactor, SecondFactorMethod,
        User,
    },
    passkeys::{self as rules, UserVerification},
    second_factor,
};
use warden_proto::v1;
use webauthn_rs_core::proto::{Credential, PublicKeyCredential};

use crate::{
    call::{Call, anonymous, call},
    convert,
    guard::{AttemptKeys, Check},
    passkeys::{self, Outcome},
    services::auth::{Auth, audit_by, me},
    state::AppState,
};

fn stored_credential(passkey: &PasskeyCredential) -> Result<Credential, Error> {
    serde_json::from_str(&passkey.credential).map_err(Error::internal)
}

impl AppState {
    /// Checks an assertion by `passkey` against `ceremony`'s state and records the moved counter.
    /// False for any refusal; a counter that went backwards (a cloned authenticator) is audited.
    async fn verify_passkey(
        &self,
        call: &Call,
        ceremony: &Ceremony,
        assertion: &PublicKeyCredential,
        passkey: &PasskeyCredential,
    ) -> Result<bool, Error> {
        let outcome = self.relying_party.finish_authentication(
            &ceremony.state,
            assertion,
            &passkey.credential,
        );
        match outcome {
            Ok(Outcome::Verified(verified)) => {
                let credential = passkeys::credential_json(&verified.credential)?;
                self.store
                    .record_passkey_use(passkey.factor_id, &credential, verified.sign_count)
                    .await
            }
            Ok(Outcome::Regressed) => {
                tracing::warn!(factor_id = %passkey.factor_id, "passkey counter regressed");
                let audit = call.audit(
                    passkey.organization_id,
                    Action::PasskeyCounterRegressed,
                    passkey.factor_id,
                );
                self.store.record_audit(&audit).await?;
                Ok(false)
            }
            Err(Error::Unauthenticated(_)) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Whether an assertion completes the challenge: the newest options begun for it (spent now),
    /// by one of the user's usable passkeys.
    pub(crate) async fn accepts_passkey(
        &self,
        challenge: &Challenge,
        user: &User,
        assertion: &PublicKeyCredential,
        call: &Call,
    ) -> Result<bool, Error> {
        let Some(ceremony) = self
            .store
            .take_challenge_ceremony(challenge.id, call.now)
            .await?
        else {
            return Ok(false); // None begun, expired, or spent: a replay.
        };
        let usable = self.usable_factors(user).await?;
        let found = self
            .store
            .find_passkey(&passkeys::credential_id(&assertion.raw_id))
            .await?;
        let Some(passkey) = found.filter(|passkey| {
            ceremony.user_id == Some(user.id)
                && passkey.organization_id == user.organization_id
                && passkey.user_id == user.id
                && usable.iter().any(|factor| factor.id == passkey.factor_id)
        }) else {
            return Ok(false);
        };
        self.verify_passkey(call, &ceremony, assertion, &passkey)
            .await
    }
}

impl Auth {
    pub(crate) async fn begin_registration(
        &self,
        request: Request<v1::BeginPasskeyRegistrationRequest>,
    ) -> Result<v1::BeginPasskeyRegistrationResponse, Error> {
        let (call, mut input) = call(&self.0, request).await?;
        let me = me(&call)?;
        let password = std::mem::take(&mut input.password);
        self.0.ensure_recent_proof(&call, me, password).await?;
        let settings = self.0.settings_of(me.organization).await?;
        let enrolled = self.0.store.list_factors(me.organization, me.user).await?;
        second_factor::ensure_may_enroll(&settings, SecondFactorMethod::Passkey, enrolled.len())?;
        let user = self.0.signed_in_user(me).await?;
        let registered = self.0.store.list_passkeys(me.organization, me.user).await?;
        let exclude = registered
            .iter()
            .map(|passkey| stored_credential(passkey).map(|credential| credential.cred_id))
            .collect::<Result<Vec<_>, _>>()?;
        let verification = rules::user_verification(&settings, CeremonyKind::Registration);
        let (options_json, state) =
            self.0
                .relying_party
                .begin_registration(&user, exclude, verification)?;
        let ceremony = Ceremony::begin(
            CeremonyKind::Registration,
            Some(me.organization),
            Some(me.user),
            None,
            state,
            call.now,
        );
        self.0.store.create_ceremony(&ceremony).await?;
        Ok(v1::BeginPasskeyRegistrationResponse {
            ceremony_id: ceremony.id.to_string(),
            options_json,
        })
    }

    pub(crate) async fn finish_registration(
        &self,
        request: Request<v1::FinishPasskeyRegistrationRequest>,
    ) -> Result<v1::FinishPasskeyRegistrationResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let me = me(&call)?;
        let id = CeremonyId::parse("ceremony_id", &input.ceremony_id)?;
        let name = rules::name(&input.name)?;
        let ceremony = self
            .0
            .store
            .take_ceremony(id, CeremonyKind::Registration, call.now)
            .await?
            .ok_or(Error::NotFound("ceremony"))?
            .ensure_registration_of(me.organization, me.user)?;
        let credential = self
            .0
            .relying_party
            .finish_registration(&ceremony.state, &input.credential_json)?;
        let settings = self.0.settings_of(me.organization).await?;
        let enrolled = self.0.store.list_factors(me.organization, me.user).await?;
        second_factor::ensure_may_enroll(&settings, SecondFactorMethod::Passkey, enrolled.len())?;
        let factor = SecondFactor {
            confirmed: true,
            name: Some(name.clone()),
            ..SecondFactor::enroll(
                me.organization,
                me.user,
                SecondFactorMethod::Passkey,
                call.now,
            )
        };
        let passkey = PasskeyCredential {
            factor_id: factor.id,
            organization_id: me.organization,
            user_id: me.user,
            credential_id: passkeys::credential_id(&credential.cred_id),
            credential: passkeys::credential_json(&credential)?,
            sign_count: i64::from(credential.counter),
        };
        let after = serde_json::json!({ "method": "passkey", "name": name }).to_string();
        let audit = call
            .audit(me.organization, Action::SecondFactorEnrolled, factor.id)
            .after(after);
        self.0
            .store
            .create_passkey(&factor, &passkey, &audit)
            .await?;
        Ok(v1::FinishPasskeyRegistrationResponse {
            factor: Some(convert::second_factor(&factor)),
        })
    }

    pub(crate) async fn begin_challenge(
        &self,
        request: Request<v1::BeginPasskeyChallengeRequest>,
    ) -> Result<v1::BeginPasskeyChallengeResponse, Error> {
        let (call, input) = anonymous(&self.0, request)?;
        let (challenge, user) = self.0.open_challenge(&input.challenge_id, call.now).await?;
        let usable = self.0.usable_factors(&user).await?;
        let registered = self
            .0
            .store
            .list_passkeys(user.organization_id, user.id)
            .await?;
        let credentials = registered
            .iter()
            .filter(|passkey| usable.iter().any(|factor| factor.id == passkey.factor_id))
            .map(stored_credential)
            .collect::<Result<Vec<_>, _>>()?;
        if credentials.is_empty() {
            return Err(Error::NotFound("passkey"));
        }
        let settings = self.0.settings_of(user.organization_id).await?;
        let verification = rules::user_verification(&settings, CeremonyKind::SecondFactor);
        let (options_json, state) = self
            .0
            .relying_party
            .begin_authentication(credentials, verification)?;
        let ceremony = Ceremony::begin(
            CeremonyKind::SecondFactor,
            Some(user.organization_id),
            Some(user.id),
            Some(challenge.id),
            state,
            call.now,
        );
        self.0.store.create_ceremony(&ceremony).await?;
        Ok(v1::BeginPasskeyChallengeResponse { options_json })
    }

    pub(crate) async fn begin_sign_in(
        &self,
        request: Request<v1::BeginPasskeySignInRequest>,
    ) -> Result<v1::BeginPasskeySignInResponse, Error> {
        let (call, input) = anonymous(&self.0, request)?;
        let organization = match input.organization_id.as_str() {
            "" => None,
            id => Some(OrganizationId::parse("organization_id", id)?),
        };
        if let Some(organization) = organization {
            rules::ensure_passkey_sign_in(&self.0.settings_of(organization).await?)?;
        }
        let (options_json, state) = self
            .0
            .relying_party
            .begin_authentication(Vec::new(), UserVerification::Required)?;
        let ceremony = Ceremony::begin(
            CeremonyKind::SignIn,
            organization,
            None,
            None,
            state,
            call.now,
        );
        self.0.store.create_ceremony(&ceremony).await?;
        Ok(v1::BeginPasskeySignInResponse {
            ceremony_id: ceremony.id.to_string(),
            options_json,
        })
    }

    pub(crate) async fn finish_sign_in(
        &self,
        request: Request<v1::FinishPasskeySignInRequest>,
    ) -> Result<v1::FinishPasskeySignInResponse, Error> {
        let (call, input) = anonymous(&self.0, request)?;
        let id = CeremonyId::parse("ceremony_id", &input.ceremony_id)?;
        let assertion = passkeys::assertion("assertion_json", &input.assertion_json)?;
        let ceremony = self
            .0
            .store
            .take_ceremony(id, CeremonyKind::SignIn, call.now)
            .await?
            .ok_or(Error::NotFound("ceremony"))?;
        let credential_id = passkeys::credential_id(&assertion.raw_id);
        let passkey = self.0.store.find_passkey(&credential_id).await?;
        let user = match &passkey {
            Some(passkey) => {
                let found = self
                    .0
                    .store
                    .find_user(passkey.organization_id, passkey.user_id)
                    .await?;
                found.filter(|user| {
                    ceremony
                        .organization_id
                        .is_none_or(|hint| hint == user.organization_id)
                        && assertion.get_user_unique_id() == Some(user.id.0.as_bytes().as_slice())
                })
            }
            None => None,
        };
        // The same throttle as a password: per account (the credential's user, or the unknown
        // credential id) and per source address.
        let account = user
            .as_ref()
            .map_or(credential_id.as_str(), |user| &user.email);
        let keys = AttemptKeys::of(Check::Password, account, &call.origin());
        self.0.begin_attempt(&keys).await?;
        let verified = match (&passkey, &user) {
            (Some(passkey), Some(user)) => {
                let settings = self.0.settings_of(user.organization_id).await?;
                rules::ensure_passkey_sign_in(&settings)?;
                self.0
                    .verify_passkey(&call, &ceremony, &assertion, passkey)
                    .await?
            }
            _ => false,
        };
        let user = match (verified, user) {
            (true, user) => rules::ensure_may_sign_in(user),
            (false, _) => Err(Error::Unauthenticated("passkey: invalid")),
        };
        let user = match user {
            Ok(user) => user,
            Err(error) => {
                self.0.attempt_failed(&keys).await?;
                if let Some(passkey) = &passkey {
                    self.0.audit_in_background(audit_by(
                        &call,
                        passkey.organization_id,
                        passkey.user_id,
                        Action::SignInFailed,
                    ));
                }
                return Err(error);
            }
        };
        self.0.attempt_succeeded(&keys).await?;
        let tokens = self.0.start_session(&user, &call).await?;
        Ok(convert::passkey_signed_in(&tokens))
    }
}
