//! Single sign-on with the organisation's OpenID Connect provider (SPEC §4): configuration, and the
//! exchange of a verified ID token for a Warden session with just-in-time provisioning.
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use serde::Deserialize;
use tonic::{Request, Response, Status};
use warden_core::{
    Error,
    catalogue::OWNER_ROLE,
    decision::Target,
    ids::{OrganizationId, RoleId, UserId},
    model::{Actor, Scope, SsoConfig, SsoIdentity},
    rules::{Wanted, ensure_holds},
    validate::{self, Email},
};
use warden_proto::v1;

use crate::{
    context::RequestContext,
    convert,
    secrets::sha256_hex,
    services::{auth::Auth, organizations::Organizations},
    state::AppState,
    status::to_status,
};

/// Clock skew tolerated on `exp` and `iat`.
const LEEWAY_SECONDS: u64 = 30;
const MAX_JWKS_BYTES: usize = 64 * 1024;
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

#[derive(Deserialize)]
struct IdClaims {
    iss: String,
    sub: String,
    exp: i64,
    iat: i64,
    email: Option<String>,
    #[serde(default)]
    email_verified: bool,
    given_name: Option<String>,
    family_name: Option<String>,
}

fn jwks(text: &str) -> Result<JwkSet, Error> {
    if text.len() > MAX_JWKS_BYTES {
        return Err(Error::invalid(
            "jwks_json",
            format!("must be at most {MAX_JWKS_BYTES} bytes"),
        ));
    }
    let set: JwkSet = serde_json::from_str(text)
        .map_err(|_| Error::invalid("jwks_json", "must be an RFC 7517 JWK set"))?;
    if set.keys.is_empty() {
        return Err(Error::invalid("jwks_json", "must hold at least one key"));
    }
    for key in &set.keys {
        DecodingKey::from_jwk(key).map_err(|_| {
            Error::invalid("jwks_json", "holds a key that cannot verify signatures")
        })?;
    }
    Ok(set)
}

/// Verifies signature (by `kid`), `iss`, `aud`, `exp` and `iat`; every failure is one status.
fn verify(
    config: &SsoConfig,
    token: &str,
    now: DateTime<Utc>,
) -> Result<(IdClaims, String), Error> {
    let invalid = || Error::Unauthenticated("id_token: invalid");
    let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
    if !ALGORITHMS.contains(&header.alg) {
        return Err(invalid());
    }
    let set = jwks(&config.jwks_json)?;
    let key = match (&header.kid, set.keys.as_slice()) {
        (Some(kid), _) => set.find(kid),
        (None, [only]) => Some(only),
        (None, _) => None,
    };
    let key = DecodingKey::from_jwk(key.ok_or_else(invalid)?).map_err(|_| invalid())?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[&config.issuer]);
    validation.set_audience(&[&config.client_id]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = LEEWAY_SECONDS;
    let claims = jsonwebtoken::decode::<IdClaims>(token, &key, &validation)
        .map_err(|_| invalid())?
        .claims;
    if claims.iat > now.timestamp() + LEEWAY_SECONDS as i64
        || claims.sub.is_empty()
        || claims.sub.len() > 255
    {
        return Err(invalid());
    }
    // The signing input, not the whole token: a re-encoded signature (ECDSA's high-S twin) must not
    // make a spent token look new.
    let signed = token.rsplit_once('.').map_or(token, |(signed, _)| signed);
    Ok((claims, sha256_hex(signed)))
}

impl Organizations {
    pub async fn configure(
        &self,
        request: Request<v1::ConfigureSsoRequest>,
    ) -> Result<Response<v1::ConfigureSsoResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let context = RequestContext::of(&request);
        let input = request.into_inner();
        let organization =
            OrganizationId::parse("organization_id", &input.organization_id).map_err(to_status)?;
        let me = state
            .require(
                &caller,
                organization,
                "security.write",
                Target::Organization,
            )
            .await?;
        // Whoever configures the provider can mint any identity it vouches for: only the owner may.
        let owner = state
            .store
            .find_user(organization, me.user)
            .await
            .map_err(to_status)?
            .is_some_and(|user| user.owner);
        if !owner {
            return Err(to_status(Error::PermissionDenied(
                "only the owner can configure single sign-on".into(),
            )));
        }
        let issuer = validate::name("issuer", &input.issuer, 500).map_err(to_status)?;
        let client_id = validate::name("client_id", &input.client_id, 200).map_err(to_status)?;
        jwks(&input.jwks_json).map_err(to_status)?;
        if input.default_role_id == OWNER_ROLE {
            return Err(to_status(Error::invalid(
                "default_role_id",
                "owner comes only with ownership",
            )));
        }
        let role = state
            .store
            .find_roles(organization, &[RoleId::new(input.default_role_id.clone())])
            .await
            .map_err(to_status)?;
        let role = role
            .into_iter()
            .next()
            .ok_or_else(|| to_status(Error::invalid("default_role_id", "unknown role")))?;
        // Provisioned users get the role on all entities: whoever configures it must hold it there.
        let subject = state
            .store
            .load_subject(organization, me.user)
            .await
            .map_err(to_status)?;
        let tree = state
            .store
            .load_entity_tree(organization)
            .await
            .map_err(to_status)?;
        let wanted: Vec<Wanted> = role
            .permissions
            .iter()
            .map(|key| Wanted {
                permission: key.clone(),
                scope: Scope::All,
            })
            .collect();
        ensure_holds(
            &subject.ok_or_else(|| to_status(Error::NotFound("user")))?,
            &wanted,
            &tree,
        )
        .map_err(to_status)?;
        let config = SsoConfig {
            organization_id: organization,
            enabled: input.enabled,
            issuer,
            client_id,
            jwks_json: input.jwks_json,
            default_role: role.id,
        };
        let now = self.0.clock.now();
        let after = serde_json::json!({
            "enabled": config.enabled, "issuer": config.issuer, "client_id": config.client_id,
            "default_role_id": config.default_role.to_string(),
        });
        let audit = context.audit(
            organization,
            caller.actor(),
            "organization.sso_configured",
            "organization",
            organization.to_string(),
            None,
            Some(after.to_string()),
            now,
        );
        let organization = state
            .store
            .configure_sso(&config, &audit)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::ConfigureSsoResponse {
            organization: Some(convert::organization(&organization)),
            consistency_token: convert::consistency_token(now),
        }))
    }
}

impl Auth {
    pub async fn sign_in_sso(
        &self,
        request: Request<v1::SignInWithSsoRequest>,
    ) -> Result<Response<v1::SignInWithSsoResponse>, Status> {
        let state: &AppState = &self.0;
        state.rate_limit(&request).map_err(to_status)?;
        let context = RequestContext::of(&request);
        let input = request.into_inner();
        let organization =
            OrganizationId::parse("organization_id", &input.organization_id).map_err(to_status)?;
        if input.id_token.is_empty() || input.id_token.len() > 16 * 1024 {
            return Err(to_status(Error::invalid(
                "id_token",
                "is required and at most 16 KiB",
            )));
        }
        let config = state
            .store
            .find_sso(organization)
            .await
            .map_err(to_status)?;
        let config = config.filter(|config| config.enabled).ok_or_else(|| {
            to_status(Error::FailedPrecondition(
                "single sign-on is not enabled for this organization".into(),
            ))
        })?;
        let now = self.0.clock.now();
        let (claims, token_hash) = verify(&config, &input.id_token, now).map_err(to_status)?;
        let verified_email = match (&claims.email, claims.email_verified) {
            (Some(email), true) => Some(
                Email::parse("email", email)
                    .map_err(|_| to_status(Error::Unauthenticated("id_token: invalid")))?,
            ),
            _ => None,
        };
        let name = |text: &Option<String>, fallback: &str| {
            validate::name("name", text.as_deref().unwrap_or(fallback), 100)
                .unwrap_or_else(|_| fallback.to_owned())
        };
        let identity = SsoIdentity {
            issuer: claims.iss.clone(),
            subject: claims.sub.clone(),
            verified_email,
            first_name: name(&claims.given_name, "SSO"),
            last_name: name(&claims.family_name, "user"),
            token_hash,
            token_expires_at: DateTime::from_timestamp(claims.exp, 0).unwrap_or(now),
        };
        let audit = context.audit(
            organization,
            Actor::Anonymous,
            "user.signed_in_with_sso",
            "user",
            String::new(),
            None,
            None,
            now,
        );
        let user = state
            .store
            .sso_sign_in(&config, &identity, UserId::generate(), &audit)
            .await
            .map_err(|error| match error {
                Error::EmailInUse => to_status(Error::Unauthenticated(
                    "id_token: the email belongs to another organization",
                )),
                other => to_status(other),
            })?;
        let tokens = state
            .start_session(&user, &context, now)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::SignInWithSsoResponse {
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            expires_at: Some(convert::timestamp(tokens.expires_at)),
        }))
    }
}
