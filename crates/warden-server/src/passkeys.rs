//! The WebAuthn relying party (SPEC §4) over `webauthn-rs-core`: options for the browser, the
//! serialised ceremony state the store keeps, and the checks of a credential or an assertion
//! (origin, relying-party id, challenge, signature, user verification, signature counter).
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use url::Url;
use warden_core::{Error, passkeys::UserVerification};
use webauthn_rs_core::{
    WebauthnCore,
    error::WebauthnError,
    proto::{
        AuthenticationResult, AuthenticationState, Credential, PublicKeyCredential,
        RegisterPublicKeyCredential, RegistrationState, UserVerificationPolicy,
    },
};

/// How long the browser is told it may take (the ceremony row lasts as long).
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// The relying party of one server: its id and the origins browsers may send from.
pub struct RelyingParty {
    core: WebauthnCore,
}

/// A passkey that verified: its credential with the counter moved on.
pub struct Verified {
    pub credential: Credential,
    pub sign_count: i64,
}

/// The relying-party id and origins, checked: every origin an `https` URL (or `http` on
/// localhost) on the id or a subdomain of it.
pub fn parse_origins(rp_id: &str, origins: &str) -> Result<Vec<Url>, String> {
    let rp_id = rp_id.trim();
    if rp_id.is_empty() || rp_id.contains(['/', ':']) {
        return Err("webauthn_rp_id: must be a domain name such as example.com".into());
    }
    let parsed = origins
        .split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(|origin| {
            let url = Url::parse(origin)
                .map_err(|_| format!("webauthn_origins: {origin:?} is not a URL"))?;
            let host = url.host_str().unwrap_or_default();
            let on_rp = host == rp_id || host.ends_with(&format!(".{rp_id}"));
            let secure = url.scheme() == "https" || (url.scheme() == "http" && host == "localhost");
            if !on_rp || !secure || url.path() != "/" || url.query().is_some() {
                return Err(format!(
                    "webauthn_origins: {origin:?} must be https://{rp_id} or a subdomain of it \
                     (http only for localhost), without a path"
                ));
            }
            Ok(url)
        })
        .collect::<Result<Vec<_>, String>>()?;
    if parsed.is_empty() {
        return Err("webauthn_origins: at least one origin is required".into());
    }
    Ok(parsed)
}

fn policy(verification: UserVerification) -> UserVerificationPolicy {
    match verification {
        UserVerification::Required => UserVerificationPolicy::Required,
        UserVerification::Preferred => UserVerificationPolicy::Preferred,
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(Error::internal)
}

fn stored<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(Error::internal)
}

/// A credential id as stored and compared: base64url without padding.
pub fn credential_id(raw: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(raw)
}

/// A browser's assertion, parsed; `field` names the request field at fault.
pub fn assertion(field: &'static str, text: &str) -> Result<PublicKeyCredential, Error> {
    serde_json::from_str(text)
        .map_err(|_| Error::invalid(field, "must be a WebAuthn PublicKeyCredential as JSON"))
}

fn refused(error: WebauthnError) -> Error {
    tracing::info!(%error, "passkey refused");
    Error::Unauthenticated("passkey: invalid")
}

impl RelyingParty {
    pub fn new(rp_id: &str, origins: &str) -> Result<Self, String> {
        let origins = parse_origins(rp_id, origins)?;
        let rp_id = rp_id.trim();
        let core = WebauthnCore::new_unsafe_experts_only(
            "Warden",
            rp_id,
            origins,
            TIMEOUT,
            Some(false),
            Some(false),
        );
        Ok(Self { core })
    }

    /// Options for `navigator.credentials.create` (a discoverable credential, `exclude` left out)
    /// and the state to keep; the user handle is the user id's 16 bytes.
    pub fn begin_registration(
        &self,
        user: &warden_core::model::User,
        exclude: Vec<Vec<u8>>,
        verification: UserVerification,
    ) -> Result<(String, String), Error> {
        let builder = self
            .core
            .new_challenge_register_builder(user.id.0.as_bytes(), &user.email, &user.email)
            .map_err(Error::internal)?
            .attestation(Default::default())
            .require_resident_key(true)
            .user_verification_policy(policy(verification))
            .exclude_credentials(Some(exclude));
        let (options, state) = self
            .core
            .generate_challenge_register(builder)
            .map_err(Error::internal)?;
        Ok((json(&options)?, json(&state)?))
    }

    /// Checks a new credential against the registration's state.
    pub fn finish_registration(
        &self,
        state: &str,
        credential_json: &str,
    ) -> Result<Credential, Error> {
        let state: RegistrationState = stored(state)?;
        let credential: RegisterPublicKeyCredential = serde_json::from_str(credential_json)
            .map_err(|_| {
                Error::invalid(
                    "credential_json",
                    "must be a WebAuthn PublicKeyCredential as JSON",
                )
            })?;
        self.core
            .register_credential(&credential, &state, None)
            .map_err(|error| {
                tracing::info!(%error, "passkey registration refused");
                Error::Unauthenticated("credential: invalid")
            })
    }

    /// Options for `navigator.credentials.get` over `credentials` (none: discoverable ones), and
    /// the state to keep.
    pub fn begin_authentication(
        &self,
        credentials: Vec<Credential>,
        verification: UserVerification,
    ) -> Result<(String, String), Error> {
        let builder = self
            .core
            .new_challenge_authenticate_builder(credentials, Some(policy(verification)))
            .map_err(Error::internal)?;
        let (options, state) = self
            .core
            .generate_challenge_authenticate(builder)
            .map_err(Error::internal)?;
        Ok((json(&options)?, json(&state)?))
    }

    /// Checks an assertion by `credential` against the ceremony's state. A counter that did not
    /// move forward comes back as `Regressed`, for the caller to audit; any other failure is
    /// `Unauthenticated("passkey: invalid")`.
    pub fn finish_authentication(
        &self,
        state: &str,
        assertion: &PublicKeyCredential,
        credential: &str,
    ) -> Result<Outcome, Error> {
        let state: AuthenticationState = stored(state)?;
        let mut credential: Credential = stored(credential)?;
        match self
            .core
            .authenticate_single_credential(assertion, &state, &credential)
        {
            Ok(result) => {
                update(&mut credential, &result);
                Ok(Outcome::Verified(Box::new(Verified {
                    sign_count: i64::from(credential.counter),
                    credential,
                })))
            }
            Err(WebauthnError::CredentialPossibleCompromise) => Ok(Outcome::Regressed),
            Err(error) => Err(refused(error)),
        }
    }
}

/// What an assertion's check decided.
pub enum Outcome {
    Verified(Box<Verified>),
    /// The signature counter did not move forward: a cloned authenticator, refused and audited.
    Regressed,
}

/// The credential after a successful assertion: its counter and backup flags as they are now.
fn update(credential: &mut Credential, result: &AuthenticationResult) {
    if result.counter() > credential.counter {
        credential.counter = result.counter();
    }
    credential.backup_state = result.backup_state();
    credential.backup_eligible = result.backup_eligible();
}

/// The stored form of a credential.
pub fn credential_json(credential: &Credential) -> Result<String, Error> {
    json(credential)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_must_sit_on_the_relying_party_id_over_https_or_localhost() {
        assert!(parse_origins("localhost", "http://localhost:8080").is_ok());
        assert!(
            parse_origins(
                "example.com",
                "https://login.example.com, https://example.com"
            )
            .is_ok()
        );
        assert!(parse_origins("example.com", "http://login.example.com").is_err());
        assert!(parse_origins("example.com", "https://example.org").is_err());
        assert!(parse_origins("example.com", "https://badexample.com").is_err());
        assert!(parse_origins("example.com", "").is_err());
        assert!(parse_origins("", "https://example.com").is_err());
        assert!(parse_origins("example.com", "https://example.com/login").is_err());
    }
}
