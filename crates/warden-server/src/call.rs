//! The prelude of every RPC: who is calling, from where and when, then the body decides. Each trait
//! method is one line, `self.body(request).await.map(Response::new).map_err(to_status)`, and the body
//! returns `Result<_, Error>` so that errors are converted exactly once.
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use tonic::{
    Request,
    metadata::{Ascii, MetadataValue},
};
use warden_authz::{Check, Consistency};
use warden_core::{
    Error,
    audit::{Action, Origin},
    decision::{EntityTree, Target},
    ids::{OrganizationId, PermissionKey, UserId},
    model::{AuditEvent, User, UserStatus},
    rules::{Wanted, ensure_holds, ensure_may_act_on},
};

use crate::{
    convert,
    input::check_strings,
    secrets::{same_hash, sha256_hex},
    state::{API_KEY_PREFIX, AppState, Caller, Shared, UserCaller},
};

/// The user agent is caller-controlled: bounded before it is stored.
const MAX_USER_AGENT_CHARS: usize = 256;

/// One RPC's caller, origin and time, with the questions every body asks of them.
pub struct Call {
    pub caller: Caller,
    /// The client's address and user agent, made into an `Origin` only by the calls that record
    /// one (`origin`): a check, the hot path, records none.
    address: Option<IpAddr>,
    user_agent: Option<MetadataValue<Ascii>>,
    /// Read once per call from the server's clock, so one call sees one instant.
    pub now: DateTime<Utc>,
    pub state: Shared,
}

/// Authenticates `request` and splits it into the call and its message.
pub async fn call<T: prost::Message + prost::Name>(
    state: &Shared,
    request: Request<T>,
) -> Result<(Call, T), Error> {
    let address = state.client_ip(&request);
    let caller = authenticate_from(state, &request, address).await?;
    if let Caller::User(user) = caller {
        state.rate_limit_user(user.user)?;
    }
    check_strings(request.get_ref())?;
    Ok(split(state, caller, address, request))
}

/// For the RPCs that take no credentials (sign-in, accepting an invitation, password reset): the
/// caller's address is rate-limited instead.
#[allow(
    dead_code,
    reason = "until every service has the call shape (issue 12)"
)]
pub fn anonymous<T: prost::Message + prost::Name>(
    state: &Shared,
    request: Request<T>,
) -> Result<(Call, T), Error> {
    let address = state.client_ip(&request);
    state.rate_limit(address)?;
    check_strings(request.get_ref())?;
    Ok(split(state, Caller::Anonymous, address, request))
}

fn split<T>(
    state: &Shared,
    caller: Caller,
    address: Option<IpAddr>,
    request: Request<T>,
) -> (Call, T) {
    let call = Call {
        caller,
        address,
        user_agent: request.metadata().get("user-agent").cloned(),
        now: state.clock.now(),
        state: state.clone(),
    };
    (call, request.into_inner())
}

fn bearer<T>(request: &Request<T>) -> Result<&str, Error> {
    let malformed = || Error::Unauthenticated("authorization: malformed bearer token");
    let value = request
        .metadata()
        .get("authorization")
        .ok_or(Error::Unauthenticated(
            "authorization: missing bearer token",
        ))?;
    match value.to_str().map_err(|_| malformed())?.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(malformed()),
    }
}

/// Identifies the caller from `authorization: Bearer …`: the operator token, an API key or a user's
/// access token whose session and user are still live; without that header, from the SAN URIs of
/// the client certificate mutual TLS verified. An address that keeps presenting credentials that
/// authenticate nothing is refused for a while (`bad_tokens.rs`).
pub async fn authenticate<T>(state: &Shared, request: &Request<T>) -> Result<Caller, Error> {
    authenticate_from(state, request, state.client_ip(request)).await
}

/// `authenticate`, the client's address already known.
async fn authenticate_from<T>(
    state: &Shared,
    request: &Request<T>,
    address: Option<IpAddr>,
) -> Result<Caller, Error> {
    state.bad_tokens.refuse_if_blocked(address)?;
    let client_uris = request
        .extensions()
        .get::<crate::tls::PeerInfo>()
        .map(|peer| peer.client_uris.clone())
        .filter(|uris| !uris.is_empty());
    let identified = match client_uris {
        Some(uris) if request.metadata().get("authorization").is_none() => {
            service_principal(state, &uris).await
        }
        _ => identify(state, bearer(request)?).await,
    };
    if let Err(Error::Unauthenticated(_)) = &identified {
        state.bad_tokens.failed(address);
    }
    identified
}

/// The organisation whose mapping names one of the certificate's URIs (`known_mappings` first). A
/// certificate whose URIs are mapped by two organisations is no one's: the CA vouched for both.
async fn service_principal(state: &Shared, uris: &[String]) -> Result<Caller, Error> {
    let mut organization = None;
    for uri in uris {
        let mapping = match state.known_mappings.get(uri, &state.authorizer) {
            Some(mapping) => mapping,
            None => {
                let read_after = state.authorizer.latest();
                let Some(mapping) = state.store.find_client_certificate_mapping(uri).await? else {
                    continue;
                };
                state.known_mappings.put(
                    uri.clone(),
                    mapping.organization_id,
                    mapping.clone(),
                    read_after,
                );
                mapping
            }
        };
        if organization.is_some_and(|found| found != mapping.organization_id) {
            return Err(Error::Unauthenticated(
                "client certificate: its URIs are mapped by more than one organization",
            ));
        }
        organization = Some(mapping.organization_id);
    }
    organization
        .map(|organization| Caller::ApiKey { organization })
        .ok_or(Error::Unauthenticated(
            "client certificate: no organization maps its URIs; send a bearer token",
        ))
}

async fn identify(state: &Shared, token: &str) -> Result<Caller, Error> {
    let hashed = sha256_hex(token);
    if same_hash(&hashed, &state.operator_token_hash) {
        return Ok(Caller::Operator);
    }
    if let Some(rest) = token.strip_prefix(API_KEY_PREFIX) {
        let invalid = || Error::Unauthenticated("invalid api key");
        let (prefix, _) = rest.split_once('.').ok_or_else(invalid)?;
        if state.bad_tokens.is_unknown_key(prefix) {
            return Err(invalid());
        }
        let (key, hash) = match state.known_keys.get(prefix, &state.authorizer) {
            Some(known) => known,
            None => {
                let read_after = state.authorizer.latest();
                let Some((key, hash)) = state.store.find_api_key(prefix).await? else {
                    state.bad_tokens.remember_unknown_key(prefix);
                    return Err(invalid());
                };
                state.known_keys.put(
                    prefix.to_owned(),
                    key.organization_id,
                    (key.clone(), hash.clone()),
                    read_after,
                );
                (key, hash)
            }
        };
        if key.revoked_at.is_some() || !same_hash(&hashed, &hash) {
            return Err(invalid());
        }
        state.record_api_key_use(key.id);
        return Ok(Caller::ApiKey {
            organization: key.organization_id,
        });
    }
    let now = state.clock.now();
    let subject = state.tokens.verify(token, now).await?;
    let session = state.store.find_session(subject.session).await?;
    let session = session.filter(|session| {
        session.revoked_at.is_none() && session.expires_at > now && session.user_id == subject.user
    });
    let user = state
        .store
        .find_user(subject.organization, subject.user)
        .await?;
    let Some(session) =
        session.filter(|_| user.is_some_and(|user| user.status == UserStatus::Active))
    else {
        return Err(Error::Unauthenticated("session ended; sign in again"));
    };
    if session.use_due(now) {
        // Last use and last activity are what ListSessions and ListUsers show: losing one is harmless.
        if let Err(error) = state.store.record_session_use(&session, now).await {
            tracing::warn!(%error, "session use not recorded");
        }
    }
    Ok(Caller::User(UserCaller {
        user: subject.user,
        organization: subject.organization,
        session: subject.session,
    }))
}

/// Requires a user of `organization`, whatever they hold. Another organisation's id answers
/// NOT_FOUND, exactly like an id that does not exist (SPEC §1).
pub fn member(caller: &Caller, organization: OrganizationId) -> Result<UserCaller, Error> {
    match *caller {
        Caller::User(user) if user.organization == organization => Ok(user),
        Caller::User(_) => Err(Error::NotFound("organization")),
        Caller::Operator | Caller::ApiKey { .. } | Caller::Anonymous => Err(
            Error::PermissionDenied("this call needs a dashboard user's access token".into()),
        ),
    }
}

/// Requires a user of `organization` who holds `permission` on `target`.
pub async fn require(
    state: &AppState,
    caller: &Caller,
    organization: OrganizationId,
    permission: &str,
    target: Target,
) -> Result<UserCaller, Error> {
    let user = member(caller, organization)?;
    let check = Check {
        user: user.user,
        permission: PermissionKey::new(permission),
        target,
        explain: false,
    };
    let decision = state
        .authorizer
        .check(organization, &check, Consistency::Default)
        .await?;
    if decision.allowed {
        Ok(user)
    } else {
        Err(Error::PermissionDenied(format!("requires {permission}")))
    }
}

pub fn require_operator(caller: &Caller) -> Result<(), Error> {
    match caller {
        Caller::Operator => Ok(()),
        _ => Err(Error::PermissionDenied(
            "this call needs the operator token".into(),
        )),
    }
}

/// The caller, the user they act on and the entity tree, once the acting rule allowed it.
pub struct Acting {
    pub caller: UserCaller,
    pub target: User,
    pub tree: EntityTree,
}

/// Resolves `target` in `organization` and applies the acting rule (SPEC §2): only the owner acts
/// on the owner, and nobody acts on a user who holds more than they do.
pub async fn acting_on(
    state: &AppState,
    caller: UserCaller,
    organization: OrganizationId,
    target: UserId,
) -> Result<Acting, Error> {
    let not_found = || Error::NotFound("user");
    let target = state
        .store
        .find_user(organization, target)
        .await?
        .ok_or_else(not_found)?;
    let current = state
        .authorizer
        .current(organization, &[caller.user, target.id])
        .await?;
    let me = current.subject(caller.user).ok_or_else(not_found)?;
    let them = current.subject(target.id).ok_or_else(not_found)?;
    ensure_may_act_on(me, them, current.tree())?;
    Ok(Acting {
        caller,
        target,
        tree: current.tree().clone(),
    })
}

/// No escalation (SPEC §3): fails unless `caller` holds every wanted permission on its scope.
pub async fn ensure_caller_holds(
    state: &AppState,
    caller: UserCaller,
    organization: OrganizationId,
    wanted: &[Wanted],
    tree: &EntityTree,
) -> Result<(), Error> {
    let current = state
        .authorizer
        .current(organization, &[caller.user])
        .await?;
    let me = current
        .subject(caller.user)
        .ok_or(Error::NotFound("user"))?;
    ensure_holds(me, wanted, tree)
}

impl Call {
    /// Where the call came from, as audit rows, sessions and throttles record it.
    pub fn origin(&self) -> Origin {
        Origin {
            client_address: self.address.map(|address| address.to_string()),
            user_agent: self
                .user_agent
                .as_ref()
                .and_then(|value| value.to_str().ok())
                .map(|agent| agent.chars().take(MAX_USER_AGENT_CHARS).collect()),
        }
    }

    /// The consistency token of this call's writes: the revision they were issued, or, when they
    /// changed no answer, the latest revision this replica has seen.
    pub fn consistency_token(&self) -> String {
        convert::consistency_token(
            warden_store::receipt().unwrap_or_else(|| self.state.authorizer.latest()),
        )
    }

    #[allow(
        dead_code,
        reason = "until every service has the call shape (issue 12)"
    )]
    pub fn member(&self, organization: OrganizationId) -> Result<UserCaller, Error> {
        member(&self.caller, organization)
    }

    pub async fn require(
        &self,
        organization: OrganizationId,
        permission: &str,
        target: Target,
    ) -> Result<UserCaller, Error> {
        require(&self.state, &self.caller, organization, permission, target).await
    }

    #[allow(
        dead_code,
        reason = "until every service has the call shape (issue 12)"
    )]
    pub fn require_operator(&self) -> Result<(), Error> {
        require_operator(&self.caller)
    }

    /// An audit row of this call: its actor, origin and time; add `.before(..)`/`.after(..)`.
    pub fn audit(
        &self,
        organization: OrganizationId,
        action: Action,
        target: impl ToString,
    ) -> AuditEvent {
        AuditEvent::new(
            organization,
            self.caller.actor(),
            action,
            target,
            &self.origin(),
            self.now,
        )
    }
}
