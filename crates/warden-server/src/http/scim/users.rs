//! SCIM Users (RFC 7643 §4.1) ↔ Warden users: `userName` (or the primary of `emails`) is the email,
//! `name` the names, `active` ACTIVE or SUSPENDED (suspending ends every session), DELETE archives,
//! as DeleteUser does; `externalId` is kept. A user SCIM creates is ACTIVE without an invitation.
//! Archived users are gone for SCIM: 404.
use std::collections::BTreeMap;

use serde_json::{Value, json};
use warden_core::{
    Error,
    audit::Action,
    catalogue::OWNER_ROLE,
    ids::{RoleId, UserId},
    model::{NewUser, ScimUserChange, StatusFilter, User, UserFilter, UserStatus},
    validate::Email,
};

use super::{Scim, USER_SCHEMA, filter::member, meta, resource::Kind};

const KIND: &str = "user";
/// The attributes of the core User schema a body may carry; those Warden does not keep
/// (`title`, `phoneNumbers`, …) are accepted and ignored, as identity providers send them.
const KNOWN: &[&str] = &[
    "userName",
    "name",
    "displayName",
    "nickName",
    "profileUrl",
    "title",
    "userType",
    "preferredLanguage",
    "locale",
    "timezone",
    "active",
    "password",
    "emails",
    "phoneNumbers",
    "ims",
    "photos",
    "addresses",
    "groups",
    "entitlements",
    "roles",
    "x509Certificates",
];
/// A bound on names and external ids, as on the gRPC API.
const MAX_NAME: usize = 100;
const MAX_EXTERNAL_ID: usize = 255;
/// Users read per query while listing.
const BATCH: u64 = 500;

/// What a body asks a user to be.
pub struct Desired {
    email: Email,
    first_name: String,
    last_name: String,
    external_id: Option<String>,
    active: bool,
}

fn text(field: &'static str, value: Option<&Value>, max: usize) -> Result<Option<String>, Error> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => {
            let text = text.trim();
            if text.chars().count() > max || text.chars().any(char::is_control) {
                return Err(Error::invalid(
                    field,
                    format!("must be at most {max} characters of text"),
                ));
            }
            Ok(Some(text.to_owned()))
        }
        Some(_) => Err(Error::invalid(field, "must be a string")),
    }
}

/// `active` as a boolean; Entra ID sends `"True"`/`"False"` strings in PATCH.
pub fn boolean(field: &'static str, value: Option<&Value>) -> Result<Option<bool>, Error> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(flag)) => Ok(Some(*flag)),
        Some(Value::String(text)) if text.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(text)) if text.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(Error::invalid(field, "must be a boolean")),
    }
}

impl Desired {
    fn parse(value: &Value) -> Result<Desired, Error> {
        let user_name = text("userName", member(value, "userName"), 254)?
            .filter(|name| !name.is_empty())
            .ok_or_else(|| Error::invalid("userName", "is required"))?;
        let email = match Email::parse("userName", &user_name) {
            Ok(email) => email,
            Err(not_an_email) => {
                let emails = member(value, "emails").and_then(Value::as_array);
                let chosen = emails.and_then(|emails| {
                    let primary = emails.iter().find(|email| email["primary"] == true);
                    primary.or(emails.first())
                });
                let address = chosen
                    .and_then(|email| member(email, "value"))
                    .and_then(Value::as_str);
                match address {
                    Some(address) => Email::parse("emails.value", address)?,
                    None => return Err(not_an_email),
                }
            }
        };
        let name = member(value, "name");
        let given = text(
            "name.givenName",
            name.and_then(|name| member(name, "givenName")),
            MAX_NAME,
        )?;
        let family = text(
            "name.familyName",
            name.and_then(|name| member(name, "familyName")),
            MAX_NAME,
        )?;
        Ok(Desired {
            first_name: given.unwrap_or_default(),
            last_name: family.unwrap_or_default(),
            external_id: text("externalId", member(value, "externalId"), MAX_EXTERNAL_ID)?
                .filter(|id| !id.is_empty()),
            active: boolean("active", member(value, "active"))?.unwrap_or(true),
            email,
        })
    }
}

/// The SCIM representation of `user`, with its `meta.version`.
fn render(user: &User, external_id: Option<&String>, base: &str) -> Value {
    let mut value = json!({
        "schemas": [USER_SCHEMA],
        "id": user.id.to_string(),
        "userName": user.email,
        "emails": [{ "value": user.email, "type": "work", "primary": true }],
        "active": user.status == UserStatus::Active,
    });
    // Names are optional in SCIM: a user without them shows none (a PATCH may remove them).
    let full_name = format!("{} {}", user.first_name, user.last_name);
    if !full_name.trim().is_empty() {
        value["name"] = json!({
            "givenName": user.first_name,
            "familyName": user.last_name,
            "formatted": full_name.trim(),
        });
        value["displayName"] = full_name.trim().into();
    }
    if let Some(external_id) = external_id {
        value["externalId"] = external_id.as_str().into();
    }
    value["meta"] = meta(
        "User",
        format!("{base}/Users/{}", user.id),
        user.created_at,
        &value,
    );
    value
}

/// The organisation's users SCIM sees (all but archived), newest first.
pub async fn all_users(scim: &Scim) -> Result<Vec<User>, Error> {
    let mut found = Vec::new();
    let mut before_id = None;
    loop {
        let filter = UserFilter {
            status: StatusFilter::NotArchived,
            role: None,
            entity: None,
            query: None,
            before_id,
            limit: BATCH,
            now: scim.now,
        };
        let batch = scim
            .state
            .store
            .list_users(scim.organization, &filter)
            .await?;
        let full = batch.len() as u64 == BATCH;
        before_id = batch.last().map(|user| user.id);
        found.extend(batch);
        if !full {
            return Ok(found);
        }
    }
}

async fn external_ids(scim: &Scim) -> Result<BTreeMap<String, String>, Error> {
    scim.state.store.external_ids(scim.organization, KIND).await
}

/// A user of the token's organisation that is not archived; anything else is 404.
async fn find(scim: &Scim, id: &str) -> Result<User, Error> {
    let id = UserId::parse("id", id).map_err(|_| Error::NotFound("user"))?;
    scim.state
        .store
        .find_user(scim.organization, id)
        .await?
        .filter(|user| user.status != UserStatus::Archived)
        .ok_or(Error::NotFound("user"))
}

/// SCIM's Users, served by `resource.rs`.
pub struct Users;

#[async_trait::async_trait]
impl Kind for Users {
    type Item = User;
    type Desired = Desired;
    const ENDPOINT: &'static str = "Users";
    const SCHEMA: &'static str = USER_SCHEMA;
    const KNOWN: &'static [&'static str] = KNOWN;

    fn id(user: &User) -> String {
        user.id.to_string()
    }

    fn parse(value: &Value) -> Result<Desired, Error> {
        Desired::parse(value)
    }

    /// A changed email is the new userName, whichever of the two the PATCH named.
    fn after_patch(current: &Value, wanted: &mut Value) {
        let address = wanted["emails"]
            .get(0)
            .and_then(|email| email.get("value"))
            .cloned();
        if let Some(address) = address
            && wanted["emails"] != current["emails"]
            && wanted["userName"] == current["userName"]
        {
            wanted["userName"] = address;
        }
    }

    async fn find(scim: &Scim, id: &str) -> Result<User, Error> {
        find(scim, id).await
    }

    async fn shown(scim: &Scim, user: &User) -> Result<Value, Error> {
        let external = external_ids(scim).await?;
        Ok(render(user, external.get(&user.id.to_string()), &scim.base))
    }

    async fn every(scim: &Scim) -> Result<Vec<Value>, Error> {
        let users = all_users(scim).await?;
        let external = external_ids(scim).await?;
        let rendered = users
            .iter()
            .map(|user| render(user, external.get(&user.id.to_string()), &scim.base))
            .collect();
        Ok(rendered)
    }

    async fn create(scim: &Scim, desired: Desired) -> Result<User, Error> {
        provision(scim, desired).await
    }

    async fn converge(scim: &Scim, user: User, desired: Desired) -> Result<User, Error> {
        converge(scim, user, desired).await
    }

    async fn delete(scim: &Scim, user: User) -> Result<(), Error> {
        archive(scim, &user).await
    }
}

async fn provision(scim: &Scim, desired: Desired) -> Result<User, Error> {
    let new = NewUser {
        id: UserId::generate(),
        organization_id: scim.organization,
        email: desired.email.clone(),
        first_name: desired.first_name.clone(),
        last_name: desired.last_name.clone(),
        grants: vec![],
        direct_grants: vec![],
        created_at: scim.now,
    };
    let after = json!({ "email": new.email.as_str(), "first_name": new.first_name, "last_name": new.last_name });
    let audit = scim.audit(Action::UserProvisioned, new.id, after);
    let user = scim
        .state
        .store
        .provision_user(&new, desired.external_id.as_deref(), &audit)
        .await?;
    tracing::info!(organization_id = %scim.organization, user_id = %user.id, "user provisioned by scim");
    if desired.active {
        return Ok(user);
    }
    set_active(scim, &user, false).await
}

/// Suspends or restores a user as `active` asks; the owner is never suspended.
async fn set_active(scim: &Scim, user: &User, active: bool) -> Result<User, Error> {
    let (from, to, action): (&[UserStatus], _, _) = match (active, user.status) {
        (true, UserStatus::Suspended | UserStatus::Pending) => (
            &[UserStatus::Suspended, UserStatus::Pending],
            UserStatus::Active,
            Action::UserRestored,
        ),
        (false, UserStatus::Active | UserStatus::Pending) if user.owner => {
            return Err(Error::FailedPrecondition(
                "active: the owner cannot be deactivated".into(),
            ));
        }
        (false, UserStatus::Active | UserStatus::Pending) => (
            &[UserStatus::Active, UserStatus::Pending],
            UserStatus::Suspended,
            Action::UserSuspended,
        ),
        _ => return Ok(user.clone()),
    };
    let audit = scim.audit(action, user.id, json!({ "status": to.as_str() }));
    scim.state
        .store
        .change_status(scim.organization, user.id, from, to, &audit)
        .await
}

/// Writes what differs between `user` and `desired`: one audited write for the attributes, one for
/// the status.
async fn converge(scim: &Scim, user: User, desired: Desired) -> Result<User, Error> {
    let external = external_ids(scim).await?;
    let current_external = external.get(&user.id.to_string()).cloned();
    let mut user = user;
    if desired.email.as_str() != user.email
        || desired.first_name != user.first_name
        || desired.last_name != user.last_name
        || desired.external_id != current_external
    {
        let change = ScimUserChange {
            email: desired.email.clone(),
            first_name: desired.first_name.clone(),
            last_name: desired.last_name.clone(),
            external_id: desired.external_id.clone(),
        };
        let after = json!({
            "email": change.email.as_str(),
            "first_name": change.first_name,
            "last_name": change.last_name,
            "external_id": change.external_id,
        });
        let audit = scim.audit(Action::UserUpdated, user.id, after);
        user = scim
            .state
            .store
            .replace_scim_user(scim.organization, user.id, &change, &audit)
            .await?;
    }
    if desired.active != (user.status == UserStatus::Active) {
        user = set_active(scim, &user, desired.active).await?;
    }
    Ok(user)
}

/// DELETE archives the user, as DeleteUser does; the owner stays.
async fn archive(scim: &Scim, user: &User) -> Result<(), Error> {
    if user.owner {
        return Err(Error::FailedPrecondition(
            "the owner cannot be deleted".into(),
        ));
    }
    let step = warden_core::users::Lifecycle::Delete;
    let to = step.apply_to(user)?;
    let audit = scim.audit(step.action(), user.id, json!({ "status": to.as_str() }));
    scim.state
        .store
        .change_status(scim.organization, user.id, step.from(), to, &audit)
        .await?;
    tracing::info!(organization_id = %scim.organization, user_id = %user.id, "user archived by scim");
    Ok(())
}

/// The organisation's owner: the user on whose authority group changes are decided (the
/// store's group writes take a caller).
pub async fn owner(scim: &Scim) -> Result<UserId, Error> {
    // The owner holds the owner role (ownership changes move it): one short query, not a scan.
    let filter = UserFilter {
        status: StatusFilter::NotArchived,
        role: Some(RoleId::new(OWNER_ROLE)),
        entity: None,
        query: None,
        before_id: None,
        limit: BATCH,
        now: scim.now,
    };
    scim.state
        .store
        .list_users(scim.organization, &filter)
        .await?
        .into_iter()
        .find(|user| user.owner)
        .map(|user| user.id)
        .ok_or(Error::NotFound("organization owner"))
}
