//! Domain records → API messages, and the opaque page tokens of every list RPC.
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use jsonwebtoken::{DecodingKey, jwk::JwkSet};
use warden_authz::{Check, Consistency};
use warden_core::{
    Error,
    catalogue::{Catalogue, PermissionDef},
    decision::{Decision, Target},
    grants::Requested,
    ids::{
        AuditEventId, EntityId, NotificationId, OrganizationId, PermissionKey, RoleId, SessionId,
        UserId,
    },
    model::{
        self, AuditFilter, NotificationKind, Scope, SecondFactorMethod, StatusFilter, UserChange,
        UserFilter, UserStatus,
    },
    settings::SettingsChange,
    sso, validate,
};
use warden_proto::v1::{self, consistency::Requirement};

use crate::services::auth::Tokens;

pub fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

pub fn method(method: SecondFactorMethod) -> v1::SecondFactorMethod {
    match method {
        SecondFactorMethod::Totp => v1::SecondFactorMethod::Totp,
        SecondFactorMethod::Email => v1::SecondFactorMethod::Email,
        SecondFactorMethod::Sms => v1::SecondFactorMethod::Sms,
        SecondFactorMethod::Passkey => v1::SecondFactorMethod::Passkey,
    }
}

pub fn organization(org: &model::Organization) -> v1::Organization {
    v1::Organization {
        id: org.id.to_string(),
        name: org.name.clone(),
        create_time: Some(timestamp(org.created_at)),
        settings: Some(v1::OrganizationSettings {
            invitation_ttl_seconds: org.settings.invitation_ttl_seconds,
            allowed_second_factors: org
                .settings
                .allowed_second_factors
                .iter()
                .map(|m| method(*m) as i32)
                .collect(),
            require_second_factor: org.settings.require_second_factor,
            sso_enabled: org.settings.sso_enabled,
        }),
    }
}

/// A live session as ListSessions shows it; `current` is the caller's own.
pub fn session(session: &model::Session, current: SessionId) -> v1::Session {
    v1::Session {
        id: session.id.to_string(),
        user_id: session.user_id.to_string(),
        create_time: Some(timestamp(session.created_at)),
        last_use_time: session.last_used_at.map(timestamp),
        expire_time: Some(timestamp(session.expires_at)),
        client_address: session.client_address.clone().unwrap_or_default(),
        user_agent: session.user_agent.clone().unwrap_or_default(),
        current: session.id == current,
    }
}

pub fn entity(entity: &model::Entity) -> v1::Entity {
    v1::Entity {
        id: entity.id.to_string(),
        organization_id: entity.organization_id.to_string(),
        name: entity.name.clone(),
        parent_entity_id: entity.parent.map(|id| id.to_string()).unwrap_or_default(),
        kind: if entity.parent.is_some() {
            v1::EntityKind::Segment
        } else {
            v1::EntityKind::LegalEntity
        } as i32,
        create_time: Some(timestamp(entity.created_at)),
        archive_time: entity.archived_at.map(timestamp),
    }
}

fn scope(scope: &Scope) -> (Vec<String>, bool) {
    match scope {
        Scope::All => (vec![], true),
        Scope::Entities(ids) => (ids.iter().map(ToString::to_string).collect(), false),
    }
}

pub fn grant(grant: &model::Grant) -> v1::Grant {
    let (entity_ids, all_entities) = scope(&grant.scope);
    v1::Grant {
        role_id: grant.role.to_string(),
        entity_ids,
        all_entities,
    }
}

pub fn direct_permission(grant: &model::DirectGrant) -> v1::DirectPermission {
    let (entity_ids, all_entities) = scope(&grant.scope);
    v1::DirectPermission {
        permission: grant.permission.to_string(),
        entity_ids,
        all_entities,
    }
}

/// A user as the audit log keeps it: what an admin sees, never a secret.
pub fn user_json(user: &model::User) -> String {
    let scope_json = |scope: &Scope| {
        let (entity_ids, all_entities) = self::scope(scope);
        serde_json::json!({ "entity_ids": entity_ids, "all_entities": all_entities })
    };
    serde_json::json!({
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "status": user.status.as_str(),
        "grants": user.grants.iter().map(|g| serde_json::json!({ "role_id": g.role.to_string(), "scope": scope_json(&g.scope) })).collect::<Vec<_>>(),
        "direct_permissions": user.direct_grants.iter().map(|g| serde_json::json!({ "permission": g.permission.to_string(), "scope": scope_json(&g.scope) })).collect::<Vec<_>>(),
    })
    .to_string()
}

pub fn user_status(status: UserStatus) -> v1::UserStatus {
    match status {
        UserStatus::Pending => v1::UserStatus::Pending,
        UserStatus::Expired => v1::UserStatus::Expired,
        UserStatus::Active => v1::UserStatus::Active,
        UserStatus::Suspended => v1::UserStatus::Suspended,
        UserStatus::Archived => v1::UserStatus::Archived,
        UserStatus::Locked => v1::UserStatus::Locked,
    }
}

/// The user with the status a caller sees (`warden_core::users::status_seen` derives it).
pub fn user(user: &model::User, status: UserStatus) -> v1::User {
    v1::User {
        id: user.id.to_string(),
        organization_id: user.organization_id.to_string(),
        email: user.email.clone(),
        first_name: user.first_name.clone(),
        last_name: user.last_name.clone(),
        status: user_status(status) as i32,
        grants: user.grants.iter().map(grant).collect(),
        direct_permissions: user.direct_grants.iter().map(direct_permission).collect(),
        owner: user.owner,
        create_time: Some(timestamp(user.created_at)),
        last_login_time: user.last_login_at.map(timestamp),
        invitation_expire_time: user.invitation_expires_at.map(timestamp),
        last_active_time: user.last_active_at.map(timestamp),
    }
}

/// Permissions in catalogue order, so every listing reads the same way.
pub fn role(role: &model::Role, catalogue: &Catalogue) -> v1::Role {
    let mut permissions = role.permissions.clone();
    permissions.sort_by_key(|key| catalogue.position(key).unwrap_or(usize::MAX));
    v1::Role {
        id: role.id.to_string(),
        organization_id: role.organization_id.to_string(),
        name: role.name.clone(),
        description: role.description.clone(),
        permissions: permissions.into_iter().map(|key| key.to_string()).collect(),
        predefined: role.predefined,
        holder_count: 0,
    }
}

pub fn api_key(key: &model::ApiKey) -> v1::ApiKey {
    v1::ApiKey {
        id: key.id.to_string(),
        organization_id: key.organization_id.to_string(),
        name: key.name.clone(),
        prefix: key.prefix.clone(),
        create_time: Some(timestamp(key.created_at)),
        last_used_time: key.last_used_at.map(timestamp),
        revoke_time: key.revoked_at.map(timestamp),
    }
}

pub fn scim_token(token: &model::ScimToken) -> v1::ScimToken {
    v1::ScimToken {
        id: token.id.to_string(),
        organization_id: token.organization_id.to_string(),
        name: token.name.clone(),
        prefix: token.prefix.clone(),
        create_time: Some(timestamp(token.created_at)),
        revoke_time: token.revoked_at.map(timestamp),
    }
}

pub fn client_certificate_mapping(
    mapping: &model::ClientCertificateMapping,
) -> v1::ClientCertificateMapping {
    v1::ClientCertificateMapping {
        id: mapping.id.to_string(),
        organization_id: mapping.organization_id.to_string(),
        name: mapping.name.clone(),
        uri: mapping.uri.clone(),
        create_time: Some(timestamp(mapping.created_at)),
    }
}

/// One list RPC's paging: how many rows, and after which sort key. Every list RPC reads it with
/// `Page::parse`, asks the store for `page.fetch()` rows and answers `page.cut(rows, key)`.
#[derive(Clone, Debug)]
pub struct Page {
    pub limit: u64,
    /// The sort key of the previous page's last row; `None` on the first page.
    pub after: Option<String>,
}

impl Page {
    /// `page_size` 0 means the default; a token not made by `cut` is INVALID_ARGUMENT.
    pub fn parse(page_size: i32, page_token: &str) -> Result<Self, Error> {
        Ok(Self {
            limit: warden_core::page::page_size(page_size)?,
            after: parse_page_token(page_token)?,
        })
    }

    /// The sort key as a typed value (an id); a key that does not parse is a forged token.
    pub fn after_as<T>(
        &self,
        parse: impl FnOnce(&str) -> Result<T, Error>,
    ) -> Result<Option<T>, Error> {
        self.after
            .as_deref()
            .map(|key| parse(key).map_err(|_| Error::invalid("page_token", "malformed")))
            .transpose()
    }

    /// Rows to ask the store for: one more than the page, to learn whether another page exists.
    pub fn fetch(&self) -> u64 {
        self.limit + 1
    }

    /// Cuts rows fetched with `fetch()` to the page and makes the next page token from the last kept
    /// row's key (empty on the last page).
    pub fn cut<T>(&self, mut rows: Vec<T>, key: impl Fn(&T) -> String) -> (Vec<T>, String) {
        let more = rows.len() as u64 > self.limit;
        rows.truncate(usize::try_from(self.limit).unwrap_or(usize::MAX));
        let next = match rows.last() {
            Some(last) if more => page_token(&key(last)),
            _ => String::new(),
        };
        (rows, next)
    }

    /// The next page token of a list that pages itself (the authorizer's lookups): resume after
    /// `key`, or empty on the last page.
    pub fn resume_after(key: Option<String>) -> String {
        key.map_or_else(String::new, |key| page_token(&key))
    }

    /// The page's size as a count of items.
    pub fn size(&self) -> usize {
        usize::try_from(self.limit).unwrap_or(usize::MAX)
    }
}

/// A page token carries the last item's sort key; the version prefix lets the format change later.
fn page_token(last_key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{last_key}"))
}

/// Which of an update's `fields` a field mask names; an empty or absent mask names them all.
pub fn update_mask<const N: usize>(
    mask: Option<&prost_types::FieldMask>,
    fields: [&str; N],
) -> Result<[bool; N], Error> {
    let paths = mask.map(|mask| mask.paths.as_slice()).unwrap_or_default();
    if paths.is_empty() {
        return Ok([true; N]);
    }
    let mut chosen = [false; N];
    for path in paths {
        let index = fields
            .iter()
            .position(|field| field == path)
            .ok_or_else(|| Error::invalid("update_mask", format!("unknown field {path:?}")))?;
        chosen[index] = true;
    }
    Ok(chosen)
}

/// `None` for the first page; a token not made by `page_token` is INVALID_ARGUMENT.
fn parse_page_token(token: &str) -> Result<Option<String>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    let malformed = || Error::invalid("page_token", "malformed");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| malformed())?;
    let text = String::from_utf8(bytes).map_err(|_| malformed())?;
    text.strip_prefix("v1:")
        .filter(|key| !key.is_empty())
        .map(|key| Some(key.to_owned()))
        .ok_or_else(malformed)
}

/// The consistency token of a write: the revision it was issued (SPEC §5), opaque to clients.
pub fn consistency_token(revision: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("r1:{revision}"))
}

/// The revision a token stands for. Tokens of the first release (`c1:`, a clock reading) carry no
/// revision: they ask for a fully consistent answer.
pub fn parse_consistency_token(token: &str) -> Result<Consistency, Error> {
    let malformed = || Error::invalid("consistency.at_least_as_fresh", "malformed token");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| malformed())?;
    let text = String::from_utf8(bytes).map_err(|_| malformed())?;
    if let Some(revision) = text.strip_prefix("r1:") {
        return revision
            .parse()
            .ok()
            .filter(|revision: &i64| *revision >= 0)
            .map(Consistency::AtLeast)
            .ok_or_else(malformed);
    }
    text.strip_prefix("c1:")
        .and_then(|micros| micros.parse::<i64>().ok())
        .map(|_| Consistency::Full)
        .ok_or_else(malformed)
}

// --- users

/// The status tab of ListUsers: unset shows everyone not archived; PENDING includes EXPIRED.
pub fn status_filter(status: v1::UserStatus) -> StatusFilter {
    match status {
        v1::UserStatus::Unspecified => StatusFilter::NotArchived,
        v1::UserStatus::Pending => StatusFilter::PendingOrExpired,
        v1::UserStatus::Expired => StatusFilter::Is(UserStatus::Expired),
        v1::UserStatus::Active => StatusFilter::Is(UserStatus::Active),
        v1::UserStatus::Suspended => StatusFilter::Is(UserStatus::Suspended),
        v1::UserStatus::Archived => StatusFilter::Is(UserStatus::Archived),
        v1::UserStatus::Locked => StatusFilter::Is(UserStatus::Locked),
    }
}

/// ListUsers' filters and this page's cursor, each field checked and named when refused.
pub fn user_filter(
    input: &v1::ListUsersRequest,
    page: &Page,
    now: DateTime<Utc>,
) -> Result<UserFilter, Error> {
    let before_id = page.after_as(|key| UserId::parse("page_token", key))?;
    let role = match input.role_id.as_str() {
        "" => None,
        id if id.len() > 100 => {
            return Err(Error::invalid("role_id", "must be at most 100 characters"));
        }
        id => Some(RoleId::new(id)),
    };
    let query = input.query.trim().to_lowercase();
    if query.chars().count() > 200 {
        return Err(Error::invalid("query", "must be at most 200 characters"));
    }
    Ok(UserFilter {
        status: status_filter(input.status()),
        role,
        entity: optional_entity("entity_id", &input.entity_id)?,
        query: Some(query).filter(|query| !query.is_empty()),
        before_id,
        limit: page.fetch(),
        now,
    })
}

/// An optional entity id: empty means none.
pub fn optional_entity(field: &'static str, id: &str) -> Result<Option<EntityId>, Error> {
    match id {
        "" => Ok(None),
        id => EntityId::parse(field, id).map(Some),
    }
}

/// The new names of UpdateUser, for the fields its mask names.
pub fn renamed(
    input: &v1::UpdateUserRequest,
    [first, last]: [bool; 2],
) -> Result<UserChange, Error> {
    let name = |chosen: bool, field: &'static str, value: &str| {
        chosen
            .then(|| validate::name(field, value, 100))
            .transpose()
    };
    Ok(UserChange {
        first_name: name(first, "first_name", &input.first_name)?,
        last_name: name(last, "last_name", &input.last_name)?,
        ..UserChange::default()
    })
}

/// Users with the statuses their caller sees, in the same order.
pub fn users_seen(users: &[model::User], statuses: &[UserStatus]) -> Vec<v1::User> {
    users
        .iter()
        .zip(statuses)
        .map(|(shown, status)| user(shown, *status))
        .collect()
}

/// The owner as the audit log records a change of ownership.
pub fn owner_json(owner: UserId) -> String {
    serde_json::json!({ "owner_user_id": owner.to_string() }).to_string()
}

// --- organizations

/// The second-factor methods of UpdateOrganizationSettings, deduplicated in the caller's order.
/// The settings an UpdateOrganizationSettings request changes (AIP-134): with an update_mask, the
/// fields it names, even empty or unset; without one, every populated field. The deprecated
/// `update_allowed_second_factors` still names `allowed_second_factors`.
pub fn settings_change(
    input: &v1::UpdateOrganizationSettingsRequest,
) -> Result<SettingsChange, Error> {
    let masked = input
        .update_mask
        .as_ref()
        .is_some_and(|mask| !mask.paths.is_empty());
    let [ttl, methods, required] = update_mask(
        input.update_mask.as_ref(),
        [
            "invitation_ttl_seconds",
            "allowed_second_factors",
            "require_second_factor",
        ],
    )?;
    #[allow(
        deprecated,
        reason = "the old flag keeps working for clients that still send it (issue 14, item 7)"
    )]
    let flagged = input.update_allowed_second_factors;
    let methods = if masked {
        methods || flagged
    } else {
        flagged || !input.allowed_second_factors.is_empty()
    };
    Ok(SettingsChange {
        invitation_ttl_seconds: chosen(masked, ttl, input.invitation_ttl_seconds),
        allowed_second_factors: methods
            .then(|| second_factor_methods(&input.allowed_second_factors))
            .transpose()?,
        require_second_factor: chosen(masked, required, input.require_second_factor),
    })
}

/// An optional field's new value: with a mask, named means applied (unset reads as the default);
/// without one, set means applied.
fn chosen<T: Default>(masked: bool, named: bool, value: Option<T>) -> Option<T> {
    match (masked, named) {
        (true, true) => Some(value.unwrap_or_default()),
        (true, false) => None,
        (false, _) => value,
    }
}

pub fn second_factor_methods(values: &[i32]) -> Result<Vec<SecondFactorMethod>, Error> {
    let mut methods = Vec::new();
    for (index, value) in values.iter().enumerate() {
        let method = match v1::SecondFactorMethod::try_from(*value) {
            Ok(v1::SecondFactorMethod::Totp) => SecondFactorMethod::Totp,
            Ok(v1::SecondFactorMethod::Email) => SecondFactorMethod::Email,
            Ok(v1::SecondFactorMethod::Sms) => SecondFactorMethod::Sms,
            Ok(v1::SecondFactorMethod::Passkey) => SecondFactorMethod::Passkey,
            Ok(v1::SecondFactorMethod::Unspecified) | Err(_) => {
                return Err(Error::invalid(
                    format!("allowed_second_factors[{index}]"),
                    "unknown method",
                ));
            }
        };
        if !methods.contains(&method) {
            methods.push(method);
        }
    }
    Ok(methods)
}

/// Settings as the audit log keeps them.
pub fn settings_json(settings: &model::OrganizationSettings) -> String {
    serde_json::json!({
        "invitation_ttl_seconds": settings.invitation_ttl_seconds,
        "allowed_second_factors": settings.allowed_second_factors.iter().map(|method| method.as_str()).collect::<Vec<_>>(),
        "require_second_factor": settings.require_second_factor,
    })
    .to_string()
}

// --- grants

/// Grants as a request names them; `warden_core::grants` holds the rules they must then pass.
pub fn requested_grants(
    grants: &[v1::Grant],
    direct: &[v1::DirectPermission],
) -> Result<Requested, Error> {
    let grants = each("grants", grants, |field, grant| {
        Ok(model::Grant {
            role: RoleId::new(grant.role_id.clone()),
            scope: requested_scope(field, &grant.entity_ids, grant.all_entities)?,
        })
    })?;
    let direct = each("direct_permissions", direct, |field, grant| {
        Ok(model::DirectGrant {
            permission: PermissionKey::new(grant.permission.clone()),
            scope: requested_scope(field, &grant.entity_ids, grant.all_entities)?,
        })
    })?;
    Requested::new(grants, direct)
}

/// Converts each item of a repeated field; `convert` gets the item's field name, `field[index]`.
fn each<T, U>(
    field: &str,
    items: &[T],
    convert: impl Fn(&str, &T) -> Result<U, Error>,
) -> Result<Vec<U>, Error> {
    items
        .iter()
        .enumerate()
        .map(|(index, item)| convert(&format!("{field}[{index}]"), item))
        .collect()
}

/// `all_entities` with no ids is full access; otherwise the ids, which must be UUIDs.
fn requested_scope(field: &str, entity_ids: &[String], all_entities: bool) -> Result<Scope, Error> {
    if all_entities {
        if !entity_ids.is_empty() {
            return Err(Error::invalid(
                format!("{field}.entity_ids"),
                "must be empty when all_entities is set",
            ));
        }
        return Ok(Scope::All);
    }
    let ids = each(&format!("{field}.entity_ids"), entity_ids, |field, id| {
        EntityId::parse("entity_id", id)
            .map_err(|_| Error::invalid(field.to_owned(), "must be a UUID"))
    })?;
    Ok(Scope::Entities(ids.into_iter().collect()))
}

// --- roles

pub fn permission(permission: &PermissionDef) -> v1::Permission {
    v1::Permission {
        key: permission.key.to_string(),
        description: permission.description.clone(),
        area: permission.area.clone(),
        assignable_to_custom_roles: permission.assignable_to_custom_roles,
    }
}

pub fn permission_keys(keys: &[String]) -> Vec<PermissionKey> {
    keys.iter().map(PermissionKey::new).collect()
}

/// A role as the audit log keeps it.
pub fn role_json(role: &model::Role) -> String {
    serde_json::json!({
        "name": role.name,
        "description": role.description,
        "permissions": role.permissions.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
    .to_string()
}

/// A new organisation as the audit log records it.
pub fn organization_json(organization: &model::Organization, owner: UserId) -> String {
    serde_json::json!({ "name": organization.name, "owner_user_id": owner.to_string() }).to_string()
}

/// A new entity as the audit log records it.
pub fn entity_json(entity: &model::Entity) -> String {
    serde_json::json!({
        "name": entity.name,
        "parent_entity_id": entity.parent.map(|id| id.to_string()),
        "archived": entity.archived_at.is_some(),
    })
    .to_string()
}

// --- groups

pub fn group(group: &model::Group) -> v1::Group {
    v1::Group {
        id: group.id.to_string(),
        organization_id: group.organization_id.to_string(),
        name: group.name.clone(),
        grants: group.grants.iter().map(self::grant).collect(),
        member_user_ids: group.members.iter().map(ToString::to_string).collect(),
    }
}

/// A group as the audit log keeps it.
pub fn group_json(group: &model::Group) -> String {
    let grants = group.grants.iter().map(|grant| {
        let (entity_ids, all_entities) = scope(&grant.scope);
        serde_json::json!({
            "role_id": grant.role.to_string(), "entity_ids": entity_ids, "all_entities": all_entities,
        })
    });
    serde_json::json!({
        "name": group.name,
        "grants": grants.collect::<Vec<_>>(),
        "members": group.members.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
    .to_string()
}

// --- authorization

/// One check as asked, with the consistency it asks for.
pub fn check(
    input: &v1::CheckPermissionRequest,
    catalogue: &Catalogue,
) -> Result<(OrganizationId, Check, Consistency), Error> {
    let organization = OrganizationId::parse("organization_id", &input.organization_id)?;
    let user = UserId::parse("user_id", &input.user_id)?;
    let permission = catalogue.parse_key("permission", &input.permission)?;
    let consistency = consistency(input.consistency.as_ref())?;
    let target = target(&input.entity_id)?;
    Ok((
        organization,
        Check {
            user,
            permission,
            target,
            explain: input.explain,
        },
        consistency,
    ))
}

/// A batch of checks; an error names the failing check's index.
pub fn checks(
    input: &[v1::CheckPermissionRequest],
    catalogue: &Catalogue,
) -> Result<Vec<(OrganizationId, Check, Consistency)>, Error> {
    each("checks", input, |at, one| {
        check(one, catalogue).map_err(|error| match error {
            Error::Invalid { field, reason } => Error::invalid(format!("{at}.{field}"), reason),
            other => other,
        })
    })
}

/// An empty entity id asks about the organisation as a whole.
pub fn target(entity_id: &str) -> Result<Target, Error> {
    match entity_id {
        "" => Ok(Target::Organization),
        id => EntityId::parse("entity_id", id).map(Target::Entity),
    }
}

/// The consistency a check asks for; unset is the default guarantee (SPEC §5).
pub fn consistency(consistency: Option<&v1::Consistency>) -> Result<Consistency, Error> {
    match consistency.and_then(|consistency| consistency.requirement.as_ref()) {
        Some(Requirement::AtLeastAsFresh(token)) => parse_consistency_token(token),
        Some(Requirement::MinimizeLatency(_)) => Ok(Consistency::MinimizeLatency),
        Some(Requirement::FullyConsistent(_)) => Ok(Consistency::Full),
        None => Ok(Consistency::Default),
    }
}

/// The reason goes out only when the caller asked for it.
pub fn decision(decision: Decision, explain: bool) -> v1::CheckPermissionResponse {
    v1::CheckPermissionResponse {
        allowed: decision.allowed,
        reason: if explain {
            decision.reason
        } else {
            String::new()
        },
    }
}

// --- notifications

pub fn notification(notification: model::Notification) -> v1::Notification {
    let kind = match notification.kind {
        NotificationKind::Invitation => v1::NotificationKind::Invitation,
        NotificationKind::EmailCode => v1::NotificationKind::EmailCode,
        NotificationKind::SmsCode => v1::NotificationKind::SmsCode,
        NotificationKind::PasswordReset => v1::NotificationKind::PasswordReset,
    };
    v1::Notification {
        id: notification.id.to_string(),
        kind: kind as i32,
        recipient: notification.recipient,
        organization_id: notification.organization_id.to_string(),
        token: notification.token.unwrap_or_default(),
        code: notification.code.unwrap_or_default(),
        create_time: Some(timestamp(notification.created_at)),
    }
}

pub fn notification_ids(ids: &[String]) -> Result<Vec<NotificationId>, Error> {
    each("ids", ids, |field, id| {
        NotificationId::parse("ids", id)
            .map_err(|_| Error::invalid(field.to_owned(), "must be a UUID"))
    })
}

// --- audit

/// The filters of ListAuditEvents, for one page.
pub fn audit_filter(input: &v1::ListAuditEventsRequest, page: &Page) -> Result<AuditFilter, Error> {
    Ok(AuditFilter {
        actor: match input.actor_user_id.as_str() {
            "" => None,
            id => Some(UserId::parse("actor_user_id", id)?),
        },
        action: audit_text("action", &input.action)?,
        target_id: audit_text("target_id", &input.target_id)?,
        from: time("start_time", input.start_time.as_ref())?,
        until: time("end_time", input.end_time.as_ref())?,
        before_id: page.after_as(|key| AuditEventId::parse("page_token", key))?,
        limit: page.fetch(),
    })
}

/// An optional filter text: empty means no filter, and at most 100 characters.
fn audit_text(field: &'static str, text: &str) -> Result<Option<String>, Error> {
    match text {
        "" => Ok(None),
        text if text.len() > 100 => Err(Error::invalid(field, "must be at most 100 characters")),
        text => Ok(Some(text.to_owned())),
    }
}

pub fn time(
    field: &'static str,
    timestamp: Option<&prost_types::Timestamp>,
) -> Result<Option<DateTime<Utc>>, Error> {
    timestamp
        .map(|t| {
            let nanos = u32::try_from(t.nanos)
                .map_err(|_| Error::invalid(field, "nanos must not be negative"))?;
            DateTime::from_timestamp(t.seconds, nanos)
                .ok_or_else(|| Error::invalid(field, "out of range"))
        })
        .transpose()
}

pub fn audit_event(event: model::AuditEvent) -> v1::AuditEvent {
    v1::AuditEvent {
        id: event.id.to_string(),
        organization_id: event.organization_id.to_string(),
        actor_user_id: event
            .actor
            .user()
            .map(|id| id.to_string())
            .unwrap_or_default(),
        actor_kind: event.actor.kind().to_owned(),
        action: event.action,
        target_type: event.target_type,
        target_id: event.target_id,
        create_time: Some(timestamp(event.created_at)),
        client_address: event.client_address.unwrap_or_default(),
        user_agent: event.user_agent.unwrap_or_default(),
        before_json: event.before.unwrap_or_default(),
        after_json: event.after.unwrap_or_default(),
    }
}

// --- auth

pub fn second_factor(factor: &model::SecondFactor) -> v1::SecondFactor {
    v1::SecondFactor {
        id: factor.id.to_string(),
        method: method(factor.method) as i32,
        confirmed: factor.confirmed,
        phone_number: factor
            .phone_number
            .as_deref()
            .map(crate::factors::masked)
            .unwrap_or_default(),
        create_time: Some(timestamp(factor.created_at)),
        name: factor.name.clone().unwrap_or_default(),
    }
}

pub fn second_factor_method(method: v1::SecondFactorMethod) -> Result<SecondFactorMethod, Error> {
    match method {
        v1::SecondFactorMethod::Totp => Ok(SecondFactorMethod::Totp),
        v1::SecondFactorMethod::Email => Ok(SecondFactorMethod::Email),
        v1::SecondFactorMethod::Sms => Ok(SecondFactorMethod::Sms),
        v1::SecondFactorMethod::Passkey => Err(Error::invalid(
            "method",
            "passkeys are registered with BeginPasskeyRegistration",
        )),
        v1::SecondFactorMethod::Unspecified => Err(Error::invalid("method", "is required")),
    }
}

pub fn signed_in(tokens: &Tokens) -> v1::SignInResponse {
    v1::SignInResponse {
        access_token: tokens.access_token.clone(),
        refresh_token: tokens.refresh_token.clone(),
        expires_at: Some(timestamp(tokens.expires_at)),
        ..v1::SignInResponse::default()
    }
}

/// A sign-in that waits for one of `usable` (or a recovery code) to complete `challenge`.
pub fn sign_in_challenge(
    challenge: &model::Challenge,
    usable: &[model::SecondFactor],
) -> v1::SignInResponse {
    v1::SignInResponse {
        second_factor_required: true,
        challenge_id: challenge.id.to_string(),
        factors: usable.iter().map(second_factor).collect(),
        ..v1::SignInResponse::default()
    }
}

pub fn second_factor_completed(tokens: &Tokens) -> v1::CompleteSecondFactorResponse {
    v1::CompleteSecondFactorResponse {
        access_token: tokens.access_token.clone(),
        refresh_token: tokens.refresh_token.clone(),
        expires_at: Some(timestamp(tokens.expires_at)),
    }
}

pub fn passkey_signed_in(tokens: &Tokens) -> v1::FinishPasskeySignInResponse {
    v1::FinishPasskeySignInResponse {
        access_token: tokens.access_token.clone(),
        refresh_token: tokens.refresh_token.clone(),
        expires_at: Some(timestamp(tokens.expires_at)),
    }
}

pub fn second_factor_confirmed(factor: &model::SecondFactor) -> v1::ConfirmSecondFactorResponse {
    v1::ConfirmSecondFactorResponse {
        factor: Some(second_factor(factor)),
    }
}

// --- sso

const MAX_JWKS_BYTES: usize = 64 * 1024;

/// A provider's RFC 7517 JWK set, each key able to verify signatures.
pub fn jwks(text: &str) -> Result<JwkSet, Error> {
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

pub fn sso_config(
    organization: OrganizationId,
    input: v1::ConfigureSsoRequest,
) -> Result<model::SsoConfig, Error> {
    let issuer = validate::name("issuer", &input.issuer, 500)?;
    let client_id = validate::name("client_id", &input.client_id, 200)?;
    jwks(&input.jwks_json)?;
    Ok(model::SsoConfig {
        organization_id: organization,
        enabled: input.enabled,
        issuer,
        client_id,
        default_role: sso::default_role(&input.default_role_id)?,
        email_domains: sso::email_domains(&input.email_domains)?,
        allow_privileged_default_role: input.allow_privileged_default_role,
        jwks_json: input.jwks_json,
    })
}

/// The configuration as the audit log keeps it: without the keys.
pub fn sso_config_json(config: &model::SsoConfig) -> String {
    serde_json::json!({
        "enabled": config.enabled, "issuer": config.issuer, "client_id": config.client_id,
        "default_role_id": config.default_role.to_string(),
        "email_domains": config.email_domains,
        "allow_privileged_default_role": config.allow_privileged_default_role,
    })
    .to_string()
}

pub fn sso_signed_in(tokens: &Tokens) -> v1::SignInWithSsoResponse {
    v1::SignInWithSsoResponse {
        access_token: tokens.access_token.clone(),
        refresh_token: tokens.refresh_token.clone(),
        expires_at: Some(timestamp(tokens.expires_at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_forgeries_are_refused() {
        assert_eq!(
            parse_page_token(&page_token("abc")).unwrap().as_deref(),
            Some("abc")
        );
        assert_eq!(parse_page_token("").unwrap(), None);
        for forged in ["%%%", "YWJj", &URL_SAFE_NO_PAD.encode("v1:")] {
            assert_eq!(
                parse_page_token(forged).unwrap_err().to_string(),
                "page_token: malformed"
            );
        }
    }

    #[test]
    fn a_page_cuts_the_extra_row_and_points_past_its_last_row() {
        let page = Page::parse(2, "").unwrap();
        assert_eq!(page.fetch(), 3);
        let (rows, next) = page.cut(vec![1, 2, 3], |n| n.to_string());
        assert_eq!(rows, [1, 2]);
        let following = Page::parse(2, &next).unwrap();
        assert_eq!(
            following
                .after_as(|key| key.parse::<i32>().map_err(|_| Error::invalid("x", "y")))
                .unwrap(),
            Some(2)
        );
        assert_eq!(
            following.cut(vec![3], |n| n.to_string()),
            (vec![3], String::new())
        );
        assert!(Page::parse(-1, "").is_err());
        let forged = Page::parse(2, &page_token("not-a-number")).unwrap();
        assert_eq!(
            forged
                .after_as(|key| key.parse::<i32>().map_err(|_| Error::invalid("x", "y")))
                .unwrap_err()
                .to_string(),
            "page_token: malformed"
        );
    }

    #[test]
    fn consistency_tokens_round_trip() {
        assert_eq!(
            parse_consistency_token(&consistency_token(42)).unwrap(),
            Consistency::AtLeast(42)
        );
        let first_release = URL_SAFE_NO_PAD.encode("c1:1764547200000000");
        assert_eq!(
            parse_consistency_token(&first_release).unwrap(),
            Consistency::Full
        );
        for malformed in [
            "nope",
            &URL_SAFE_NO_PAD.encode("r1:-1"),
            &URL_SAFE_NO_PAD.encode("r1:x"),
        ] {
            assert!(parse_consistency_token(malformed).is_err(), "{malformed}");
        }
    }
}
