//! Single sign-on with the organisation's OpenID Connect provider (SPEC §4): configuration, and the
//! exchange of a verified ID token for a Warden session with just-in-time provisioning. The rules
//! (who configures, what a token must satisfy at `now`) are in `warden_core::sso`.
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tonic::{Request, Response, Status};
use warden_core::{
    Error,
    audit::Action,
    decision::Target,
    ids::{OrganizationId, UserId},
    model::SsoConfig,
    sso::{self, Expected, IdClaims},
};
use warden_proto::v1;

use crate::{
    call::{anonymous, call, ensure_caller_holds},
    convert,
    secrets::sha256_hex,
    services::{auth::Auth, organizations::Organizations},
    status::to_status,
};

/// Only asymmetric signatures: a provider's public keys must not double as shared secrets.
const ALGORITHMS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// Verifies the signature (by `kid`), `iss` and `aud`, then `exp`, `nbf`, `iat`, `azp`, `nonce` and
/// `sub` against `expected` (its `now` from the server's clock, not the library's); every failure
/// is one status. Returns the claims and the hash that makes the token single use.
fn verify(
    config: &SsoConfig,
    token: &str,
    expected: &Expected<'_>,
) -> Result<(IdClaims, String), Error> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| sso::invalid())?;
    if !ALGORITHMS.contains(&header.alg) {
        return Err(sso::invalid());
    }
    let set = convert::jwks(&config.jwks_json)?;
    let key = match (&header.kid, set.keys.as_slice()) {
        (Some(kid), _) => set.find(kid),
        (None, [only]) => Some(only),
        (None, _) => None,
    };
    let key = DecodingKey::from_jwk(key.ok_or_else(sso::invalid)?).map_err(|_| sso::invalid())?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[&config.issuer]);
    validation.set_audience(&[&config.client_id]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.validate_exp = false; // `ensure_current` checks it and `nbf` against `now`.
    validation.validate_nbf = false;
    let claims = jsonwebtoken::decode::<IdClaims>(token, &key, &validation)
        .map_err(|_| sso::invalid())?
        .claims;
    claims.ensure_current(expected)?;
    // The signing input, not the whole token: a re-encoded signature (ECDSA's high-S twin) must not
    // make a spent token look new.
    let signed = token.rsplit_once('.').map_or(token, |(signed, _)| signed);
    Ok((claims, sha256_hex(signed)))
}

impl Organizations {
    /// ConfigureSso: OrganizationService's trait method answers with this.
    pub async fn configure(
        &self,
        request: Request<v1::ConfigureSsoRequest>,
    ) -> Result<Response<v1::ConfigureSsoResponse>, Status> {
        self.configure_sso_body(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn configure_sso_body(
        &self,
        request: Request<v1::ConfigureSsoRequest>,
    ) -> Result<v1::ConfigureSsoResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let organization = OrganizationId::parse("organization_id", &input.organization_id)?;
        let me = call
            .require(organization, "security.write", Target::Organization)
            .await?;
        let caller = self.0.store.find_user(organization, me.user).await?;
        sso::ensure_may_configure(caller.as_ref())?;
        let config = convert::sso_config(organization, input)?;
        let roles = std::slice::from_ref(&config.default_role);
        let role = self.0.store.find_roles(organization, roles).await?;
        let role = role
            .into_iter()
            .next()
            .ok_or_else(|| Error::invalid("default_role_id", "unknown role"))?;
        let tree = self.0.tree_now(organization).await?;
        sso::ensure_default_role_allowed(&role, config.allow_privileged_default_role)?;
        let needs = sso::default_role_needs(&role);
        ensure_caller_holds(&self.0, me, organization, &needs, &tree).await?;
        let audit = call
            .audit(organization, Action::SsoConfigured, organization)
            .after(convert::sso_config_json(&config));
        let organization = self.0.store.configure_sso(&config, &audit).await?;
        Ok(v1::ConfigureSsoResponse {
            organization: Some(convert::organization(&organization)),
            consistency_token: call.consistency_token(),
        })
    }
}

impl Auth {
    pub(crate) async fn sign_in_sso(
        &self,
        request: Request<v1::SignInWithSsoRequest>,
    ) -> Result<v1::SignInWithSsoResponse, Error> {
        let (call, input) = anonymous(&self.0, request)?;
        let organization = OrganizationId::parse("organization_id", &input.organization_id)?;
        let token = sso::id_token(&input.id_token)?;
        let nonce = sso::nonce(&input.nonce)?;
        let config = self.0.store.find_sso(organization).await?;
        let config = config.filter(|config| config.enabled).ok_or_else(|| {
            Error::FailedPrecondition("single sign-on is not enabled for this organization".into())
        })?;
        let expected = Expected {
            now: call.now,
            max_age: self.0.sso_max_token_age,
            client_id: &config.client_id,
            nonce,
        };
        let (claims, token_hash) = verify(&config, token, &expected)?;
        let identity = claims.identity(token_hash, call.now)?;
        let audit = call.audit(organization, Action::SignedInWithSso, "");
        // Domains, the default role and linking are decided inside the store's transaction.
        let user = self
            .0
            .store
            .sso_sign_in(&config, &identity, UserId::generate(), &audit)
            .await?;
        let tokens = self.0.start_session(&user, &call).await?;
        Ok(convert::sso_signed_in(&tokens))
    }
}
