//! Passkeys (SPEC §4) with 1Password's software authenticator and client, which build and check
//! the JSON a browser exchanges: registration, a second factor, a sign-in alone, and the attacks
//! refused (a wrong origin, a replay, a cloned authenticator, an expired ceremony, another
//! organisation's credential), with ceremonies begun on one replica and finished on another.
use passkey_authenticator::{Authenticator, UiHint, UserCheck, UserValidationMethod};
use passkey_client::{Client, DefaultClientData};
use passkey_crypto::AvailableBackend;
use passkey_types::{
    Passkey,
    ctap2::{Aaguid, Ctap2Error},
    webauthn,
};
use tonic::{Code, Status};
use url::Url;
use warden_proto::v1;
use warden_server::Config;
use warden_tests::{ANONYMOUS, PASSWORD, TestDatabase, TestOrg, TestServer, TestUser, grant};

const ORIGIN: &str = "https://login.example.com";

fn relying_party(config: &mut Config) {
    config.webauthn_rp_id = "example.com".into();
    config.webauthn_origins = ORIGIN.into();
}

async fn start() -> TestServer {
    TestServer::start_with(TestDatabase::fresh().await, relying_party).await
}

/// A user who is present and verified (PIN or biometrics) whenever asked.
struct Verified;

#[async_trait::async_trait]
impl UserValidationMethod for Verified {
    type PasskeyItem = Passkey;

    async fn check_user<'a>(
        &self,
        hint: UiHint<'a, Passkey>,
        _presence: bool,
        _verification: bool,
    ) -> Result<UserCheck, Ctap2Error> {
        // As a browser's dialog does: a passkey the options exclude is reported, never replaced.
        if let UiHint::InformExcludedCredentialFound(_) = hint {
            return Err(Ctap2Error::CredentialExcluded);
        }
        Ok(UserCheck {
            presence: true,
            verification: true,
        })
    }

    fn is_presence_enabled(&self) -> bool {
        true
    }

    fn is_verification_enabled(&self) -> Option<bool> {
        Some(true)
    }
}

/// An authenticator holding one discoverable passkey, with a signature counter; cloning it is
/// cloning the authenticator (the attack a counter detects).
#[derive(Clone, Default)]
struct Device {
    passkey: Option<Passkey>,
}

/// A client (the browser's part) over an authenticator holding the device's passkey.
macro_rules! client {
    ($device:expr) => {{
        let mut authenticator = Authenticator::new(
            Aaguid::new_empty(),
            $device.passkey.clone(),
            Verified,
            AvailableBackend,
        );
        authenticator.set_make_credentials_with_signature_counter(true);
        Client::new(authenticator)
    }};
}

impl Device {
    /// What `navigator.credentials.create(options)` answers on a page of `origin`.
    async fn create(&mut self, origin: &str, options_json: &str) -> Result<String, String> {
        let options: webauthn::CredentialCreationOptions =
            serde_json::from_str(options_json).expect("creation options");
        let mut client = client!(self);
        let origin = Url::parse(origin).unwrap();
        let created = client
            .register(&origin, options, DefaultClientData)
            .await
            .map_err(|error| format!("{error:?}"))?;
        self.passkey = client.authenticator().store().clone();
        Ok(serde_json::to_string(&created).unwrap())
    }

    /// What `navigator.credentials.get(options)` answers on a page of `origin`.
    async fn get(&mut self, origin: &str, options_json: &str) -> String {
        let options: webauthn::CredentialRequestOptions =
            serde_json::from_str(options_json).expect("request options");
        let mut client = client!(self);
        let origin = Url::parse(origin).unwrap();
        let asserted = client
            .authenticate(&origin, options, DefaultClientData)
            .await
            .expect("assertion");
        self.passkey = client.authenticator().store().clone();
        serde_json::to_string(&asserted).unwrap()
    }
}

/// Registers `device` for `user` from `origin`; begun on `begin`, finished on `finish`.
async fn register_across(
    begin: &TestServer,
    finish: &TestServer,
    user: &TestUser,
    device: &mut Device,
    origin: &str,
) -> Result<v1::SecondFactor, Status> {
    let begun = begin
        .auth(&user.token)
        .begin_passkey_registration(v1::BeginPasskeyRegistrationRequest::default())
        .await?
        .into_inner();
    let credential_json = device
        .create(origin, &begun.options_json)
        .await
        .map_err(Status::aborted)?;
    let finished = finish
        .auth(&user.token)
        .finish_passkey_registration(v1::FinishPasskeyRegistrationRequest {
            ceremony_id: begun.ceremony_id,
            credential_json,
            name: "Laptop".into(),
        })
        .await?;
    Ok(finished.into_inner().factor.unwrap())
}

async fn register(server: &TestServer, user: &TestUser, device: &mut Device) -> v1::SecondFactor {
    register_across(server, server, user, device, ORIGIN)
        .await
        .expect("registered")
}

async fn alan(server: &TestServer) -> (TestOrg, TestUser) {
    let org = server.create_organization("Acme").await;
    let alan = server
        .member(&org, "alan@example.com", vec![grant("read_only", &[])])
        .await;
    (org, alan)
}

/// A passkey sign-in begun on `begin` (with an organisation hint) and finished on `finish`.
async fn sign_in_across(
    begin: &TestServer,
    finish: &TestServer,
    organization_id: &str,
    device: &mut Device,
) -> Result<v1::FinishPasskeySignInResponse, Status> {
    let begun = begin
        .auth(ANONYMOUS)
        .begin_passkey_sign_in(v1::BeginPasskeySignInRequest {
            organization_id: organization_id.into(),
        })
        .await?
        .into_inner();
    let assertion_json = device.get(ORIGIN, &begun.options_json).await;
    finish
        .auth(ANONYMOUS)
        .finish_passkey_sign_in(v1::FinishPasskeySignInRequest {
            ceremony_id: begun.ceremony_id,
            assertion_json,
        })
        .await
        .map(tonic::Response::into_inner)
}

fn complete(challenge_id: &str, assertion: &str) -> v1::CompleteSecondFactorRequest {
    v1::CompleteSecondFactorRequest {
        challenge_id: challenge_id.into(),
        passkey_assertion_json: assertion.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_registered_passkey_is_listed_completes_a_challenge_once_and_is_removed() {
    let server = start().await;
    let (_, alan) = alan(&server).await;
    let mut device = Device::default();
    let factor = register(&server, &alan, &mut device).await;
    assert_eq!(
        (factor.method(), factor.name.as_str(), factor.confirmed),
        (v1::SecondFactorMethod::Passkey, "Laptop", true)
    );
    let listed = server
        .auth(&alan.token)
        .list_second_factors(v1::ListSecondFactorsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .factors;
    let shown = |factors: &[v1::SecondFactor]| {
        let shown = factors
            .iter()
            .map(|f| (f.id.clone(), f.method(), f.name.clone()));
        shown.collect::<Vec<_>>()
    };
    assert_eq!(shown(&listed), shown(std::slice::from_ref(&factor)));
    // The same authenticator is excluded: it refuses to register its passkey twice.
    let again = register_across(&server, &server, &alan, &mut device.clone(), ORIGIN).await;
    assert_eq!(
        again.unwrap_err().code(),
        Code::Aborted,
        "excluded credential"
    );

    let signed_in = server.sign_in("alan@example.com", PASSWORD).await;
    assert!(signed_in.second_factor_required);
    assert_eq!(shown(&signed_in.factors), shown(&listed), "offered");
    let mut auth = server.auth(ANONYMOUS);
    let options = auth
        .begin_passkey_challenge(v1::BeginPasskeyChallengeRequest {
            challenge_id: signed_in.challenge_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .options_json;
    assert!(options.contains("\"allowCredentials\""), "{options}");
    let assertion = device.get(ORIGIN, &options).await;
    let tokens = auth
        .complete_second_factor(complete(&signed_in.challenge_id, &assertion))
        .await
        .unwrap()
        .into_inner();
    assert!(!tokens.access_token.is_empty());

    // A replayed assertion answers another challenge's options: its challenge does not match.
    let next = server.sign_in("alan@example.com", PASSWORD).await;
    auth.begin_passkey_challenge(v1::BeginPasskeyChallengeRequest {
        challenge_id: next.challenge_id.clone(),
    })
    .await
    .unwrap();
    let error = auth
        .complete_second_factor(complete(&next.challenge_id, &assertion))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::Unauthenticated, "passkey: invalid")
    );
    // And without options begun for the challenge, nothing is there to answer.
    let error = auth
        .complete_second_factor(complete(&next.challenge_id, &assertion))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated);

    server
        .auth(&alan.token)
        .remove_second_factor(v1::RemoveSecondFactorRequest {
            factor_id: factor.id,
            password: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(server.db.count("passkey_credentials").await, 0);
    let signed_in = server.sign_in("alan@example.com", PASSWORD).await;
    assert!(!signed_in.access_token.is_empty(), "no second factor left");
}

#[tokio::test]
async fn a_passkey_signs_in_alone_and_replays_and_other_organisations_are_refused() {
    let server = start().await;
    let (acme, alan) = alan(&server).await;
    let mut device = Device::default();
    register(&server, &alan, &mut device).await;
    let tokens = sign_in_across(&server, &server, &acme.id, &mut device)
        .await
        .unwrap();
    let me = server
        .auth(&tokens.access_token)
        .list_second_factors(v1::ListSecondFactorsRequest::default())
        .await;
    assert_eq!(me.unwrap().into_inner().factors.len(), 1, "alan's session");
    let signed_in = "audit_events WHERE action = 'user.signed_in'";
    assert!(server.db.count(signed_in).await >= 1);
    // Without an organisation hint the credential names its user.
    sign_in_across(&server, &server, "", &mut device)
        .await
        .unwrap();

    // A replay: the same assertion on the same ceremony, then on a new one.
    let mut auth = server.auth(ANONYMOUS);
    let begun = auth
        .begin_passkey_sign_in(v1::BeginPasskeySignInRequest::default())
        .await
        .unwrap()
        .into_inner();
    let assertion_json = device.get(ORIGIN, &begun.options_json).await;
    let finish = |ceremony_id: &str| v1::FinishPasskeySignInRequest {
        ceremony_id: ceremony_id.into(),
        assertion_json: assertion_json.clone(),
    };
    auth.finish_passkey_sign_in(finish(&begun.ceremony_id))
        .await
        .unwrap();
    let error = auth
        .finish_passkey_sign_in(finish(&begun.ceremony_id))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::NotFound, "ceremony not found")
    );
    let other = auth
        .begin_passkey_sign_in(v1::BeginPasskeySignInRequest::default())
        .await
        .unwrap()
        .into_inner();
    let error = auth
        .finish_passkey_sign_in(finish(&other.ceremony_id))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::Unauthenticated, "passkey: invalid")
    );

    // Another organisation's sign-in does not take Acme's credential.
    let globex = server.create_organization("Globex").await;
    let error = sign_in_across(&server, &server, &globex.id, &mut device)
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::Unauthenticated, "passkey: invalid")
    );
}

#[tokio::test]
async fn a_wrong_origin_an_expired_ceremony_and_a_cloned_authenticator_are_refused() {
    let server = start().await;
    let (acme, alan) = alan(&server).await;
    // A page on another subdomain of the relying party is not one of the configured origins.
    let error = register_across(
        &server,
        &server,
        &alan,
        &mut Device::default(),
        "https://evil.example.com",
    )
    .await
    .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::Unauthenticated, "credential: invalid")
    );
    let mut device = Device::default();
    let factor = register(&server, &alan, &mut device).await;

    // Five minutes later the ceremony is gone.
    let mut auth = server.auth(ANONYMOUS);
    let begun = auth
        .begin_passkey_sign_in(v1::BeginPasskeySignInRequest::default())
        .await
        .unwrap()
        .into_inner();
    let assertion_json = device.get(ORIGIN, &begun.options_json).await;
    server.advance(std::time::Duration::from_secs(5 * 60));
    let error = auth
        .finish_passkey_sign_in(v1::FinishPasskeySignInRequest {
            ceremony_id: begun.ceremony_id,
            assertion_json,
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);

    // A copy of the authenticator taken now falls behind once the original signs in again.
    let mut clone = device.clone();
    sign_in_across(&server, &server, &acme.id, &mut device)
        .await
        .unwrap();
    sign_in_across(&server, &server, &acme.id, &mut device)
        .await
        .unwrap();
    let error = sign_in_across(&server, &server, &acme.id, &mut clone)
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::Unauthenticated, "passkey: invalid")
    );
    let audited = format!(
        "audit_events WHERE action = 'user.passkey_counter_regressed' AND target_id = '{}'",
        factor.id
    );
    assert_eq!(server.db.count(&audited).await, 1);
}

#[tokio::test]
async fn a_ceremony_begun_on_one_replica_is_finished_on_another() {
    let (one, two) = TestServer::replicas(relying_party).await;
    let (acme, alan) = alan(&one).await;
    let mut device = Device::default();
    let factor = register_across(&one, &two, &alan, &mut device, ORIGIN)
        .await
        .unwrap();
    assert_eq!(factor.method(), v1::SecondFactorMethod::Passkey);
    let tokens = sign_in_across(&two, &one, &acme.id, &mut device)
        .await
        .unwrap();
    assert!(!tokens.access_token.is_empty());
}
