//! SCIM Groups (RFC 7643 §4.2) ↔ Warden groups: `displayName` the name, `members` the members
//! (users of the organisation), `externalId` kept. A group SCIM creates grants nothing until an
//! administrator gives it grants in Warden: that is how IdP groups map to roles and entities.
use std::collections::BTreeMap;

use serde_json::{Value, json};
use warden_core::{
    Error,
    audit::Action,
    ids::{GroupId, UserId},
    model::{Group, UserStatus},
    validate,
};

use super::{GROUP_SCHEMA, Scim, filter::member, meta, resource::Kind, users};

const KIND: &str = "group";
const KNOWN: &[&str] = &["displayName", "members"];
/// Groups read per query while listing.
const BATCH: u64 = 500;
/// The most members one write names.
const MAX_MEMBERS: usize = 10_000;

/// What a body asks a group to be.
pub struct Desired {
    name: String,
    members: Vec<UserId>,
    external_id: Option<String>,
}

impl Desired {
    fn parse(value: &Value) -> Result<Desired, Error> {
        let name = member(value, "displayName")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::invalid("displayName", "is required"))?;
        let name = validate::name("displayName", name, 100)?;
        let listed = match member(value, "members") {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(members)) => members.clone(),
            Some(_) => return Err(Error::invalid("members", "must be a list")),
        };
        if listed.len() > MAX_MEMBERS {
            return Err(Error::invalid("members", format!("at most {MAX_MEMBERS}")));
        }
        let mut members = Vec::with_capacity(listed.len());
        for entry in &listed {
            let id = member(entry, "value")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::invalid("members.value", "is required"))?;
            let id = UserId::parse("members.value", id)?;
            if !members.contains(&id) {
                members.push(id);
            }
        }
        let external_id = match member(value, "externalId") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) if id.chars().count() <= 255 => Some(id.clone()),
            Some(_) => {
                return Err(Error::invalid(
                    "externalId",
                    "must be a string of at most 255 characters",
                ));
            }
        };
        Ok(Desired {
            name,
            members,
            external_id,
        })
    }
}

fn render(group: &Group, external_id: Option<&String>, base: &str) -> Value {
    let members: Vec<Value> = group
        .members
        .iter()
        .map(|id| json!({ "value": id.to_string(), "type": "User", "$ref": format!("{base}/Users/{id}") }))
        .collect();
    let mut value = json!({
        "schemas": [GROUP_SCHEMA],
        "id": group.id.to_string(),
        "displayName": group.name,
        "members": members,
    });
    if let Some(external_id) = external_id {
        value["externalId"] = external_id.as_str().into();
    }
    value["meta"] = meta(
        "Group",
        format!("{base}/Groups/{}", group.id),
        group.created_at,
        &value,
    );
    value
}

/// SCIM's Groups, served by `resource.rs`.
pub struct Groups;

#[async_trait::async_trait]
impl Kind for Groups {
    type Item = Group;
    type Desired = Desired;
    const ENDPOINT: &'static str = "Groups";
    const SCHEMA: &'static str = GROUP_SCHEMA;
    const KNOWN: &'static [&'static str] = KNOWN;

    fn id(group: &Group) -> String {
        group.id.to_string()
    }

    fn parse(value: &Value) -> Result<Desired, Error> {
        Desired::parse(value)
    }

    async fn find(scim: &Scim, id: &str) -> Result<Group, Error> {
        let id = GroupId::parse("id", id).map_err(|_| Error::NotFound("group"))?;
        scim.state
            .store
            .find_group(scim.organization, id)
            .await?
            .ok_or(Error::NotFound("group"))
    }

    async fn shown(scim: &Scim, group: &Group) -> Result<Value, Error> {
        let external = external_ids(scim).await?;
        Ok(render(
            group,
            external.get(&group.id.to_string()),
            &scim.base,
        ))
    }

    async fn every(scim: &Scim) -> Result<Vec<Value>, Error> {
        let mut groups = Vec::new();
        let mut after = None;
        loop {
            let batch = scim
                .state
                .store
                .list_groups(scim.organization, after, BATCH)
                .await?;
            let full = batch.len() as u64 == BATCH;
            after = batch.last().map(|group| group.id);
            groups.extend(batch);
            if !full {
                break;
            }
        }
        let external = external_ids(scim).await?;
        let rendered = groups
            .iter()
            .map(|group| render(group, external.get(&group.id.to_string()), &scim.base))
            .collect();
        Ok(rendered)
    }

    async fn create(scim: &Scim, desired: Desired) -> Result<Group, Error> {
        let group = Group {
            id: GroupId::generate(),
            organization_id: scim.organization,
            name: desired.name.clone(),
            grants: vec![],
            members: vec![],
            created_at: scim.now,
        };
        let audit = scim.audit(
            Action::GroupCreated,
            group.id,
            json!({ "name": group.name }),
        );
        let group = scim.state.store.create_group(&group, &audit).await?;
        converge(scim, group, desired).await
    }

    async fn converge(scim: &Scim, group: Group, desired: Desired) -> Result<Group, Error> {
        converge(scim, group, desired).await
    }

    async fn delete(scim: &Scim, group: Group) -> Result<(), Error> {
        let audit = scim.audit(
            Action::GroupDeleted,
            group.id,
            json!({ "name": group.name }),
        );
        let owner = users::owner(scim).await?;
        // The identity provider removes its group: every member loses its grants, by design.
        let decided = &|_: &warden_core::rules::Affected| Ok(());
        let store = &scim.state.store;
        store
            .delete_group(scim.organization, group.id, owner, decided, &audit)
            .await?;
        store
            .set_external_id(scim.organization, KIND, &group.id.to_string(), None)
            .await
    }
}

async fn external_ids(scim: &Scim) -> Result<BTreeMap<String, String>, Error> {
    scim.state.store.external_ids(scim.organization, KIND).await
}

/// Writes what differs between `group` and `desired`: the name, each membership (an audited write
/// each, members checked to be the organisation's users), the external id.
async fn converge(scim: &Scim, group: Group, desired: Desired) -> Result<Group, Error> {
    let store = &scim.state.store;
    let mut group = group;
    if desired.name != group.name {
        let after = json!({ "name": desired.name });
        let audit = scim.audit(Action::GroupUpdated, group.id, after);
        let owner = users::owner(scim).await?;
        let decided = &|_: &warden_core::rules::Affected| Ok(());
        group = store
            .update_group(
                scim.organization,
                group.id,
                Some(&desired.name),
                None,
                owner,
                decided,
                &audit,
            )
            .await?;
    }
    for user in &desired.members {
        if group.members.contains(user) {
            continue;
        }
        let found = store.find_user(scim.organization, *user).await?;
        if !found.is_some_and(|user| user.status != UserStatus::Archived) {
            return Err(Error::invalid(
                "members.value",
                format!("{user}: no such user"),
            ));
        }
        group = membership(scim, group.id, *user, true).await?;
    }
    let gone: Vec<UserId> = group
        .members
        .iter()
        .filter(|user| !desired.members.contains(user))
        .copied()
        .collect();
    for user in gone {
        group = membership(scim, group.id, user, false).await?;
    }
    let external = external_ids(scim).await?;
    if external.get(&group.id.to_string()) != desired.external_id.as_ref() {
        store
            .set_external_id(
                scim.organization,
                KIND,
                &group.id.to_string(),
                desired.external_id.as_deref(),
            )
            .await?;
    }
    Ok(group)
}

async fn membership(
    scim: &Scim,
    group: GroupId,
    user: UserId,
    member: bool,
) -> Result<Group, Error> {
    let action = match member {
        true => Action::GroupMemberAdded,
        false => Action::GroupMemberRemoved,
    };
    let audit = scim.audit(action, group, json!({ "user_id": user.to_string() }));
    scim.state
        .store
        .set_membership(scim.organization, group, user, member, &audit)
        .await
}
