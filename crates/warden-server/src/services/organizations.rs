//! OrganizationService: bootstrap, the entity tree, settings and SSO (SPEC §1).
use tonic::{Request, Response, Status};
use warden_core::{
    Error,
    audit::Action,
    decision::{EntityTree, Target, decide},
    entities::EntityChange,
    ids::{EntityId, OrganizationId, PermissionKey, UserId},
    model::{Entity, NewOrganization, Organization, OrganizationSettings, Role},
    validate::{self, Email},
};
use warden_proto::v1::{self, organization_service_server::OrganizationService};

use super::users::{hand_over, written};
use crate::{
    call::{Call, call},
    convert::{self, Page},
    state::{Caller, Shared},
    status::to_status,
};

/// Invitations live from a second (for tests of expiry) to 90 days.
const MIN_INVITATION_TTL_SECONDS: i64 = 1;
const MAX_INVITATION_TTL_SECONDS: i64 = 90 * 24 * 3600;

pub struct Organizations(pub Shared);

#[tonic::async_trait]
impl OrganizationService for Organizations {
    async fn create_organization(
        &self,
        request: Request<v1::CreateOrganizationRequest>,
    ) -> Result<Response<v1::CreateOrganizationResponse>, Status> {
        self.create(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn get_organization(
        &self,
        request: Request<v1::GetOrganizationRequest>,
    ) -> Result<Response<v1::GetOrganizationResponse>, Status> {
        self.get(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn update_organization_settings(
        &self,
        request: Request<v1::UpdateOrganizationSettingsRequest>,
    ) -> Result<Response<v1::UpdateOrganizationSettingsResponse>, Status> {
        self.update_settings(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn create_entity(
        &self,
        request: Request<v1::CreateEntityRequest>,
    ) -> Result<Response<v1::CreateEntityResponse>, Status> {
        self.create_entity_in(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn list_entities(
        &self,
        request: Request<v1::ListEntitiesRequest>,
    ) -> Result<Response<v1::ListEntitiesResponse>, Status> {
        self.entities(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn update_entity(
        &self,
        request: Request<v1::UpdateEntityRequest>,
    ) -> Result<Response<v1::UpdateEntityResponse>, Status> {
        self.rename_entity(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn archive_entity(
        &self,
        request: Request<v1::ArchiveEntityRequest>,
    ) -> Result<Response<v1::ArchiveEntityResponse>, Status> {
        self.archive(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn restore_entity(
        &self,
        request: Request<v1::RestoreEntityRequest>,
    ) -> Result<Response<v1::RestoreEntityResponse>, Status> {
        self.restore(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn configure_sso(
        &self,
        request: Request<v1::ConfigureSsoRequest>,
    ) -> Result<Response<v1::ConfigureSsoResponse>, Status> {
        self.configure(request).await // In sso.rs, beside the rest of single sign-on.
    }

    async fn reassign_ownership(
        &self,
        request: Request<v1::ReassignOwnershipRequest>,
    ) -> Result<Response<v1::ReassignOwnershipResponse>, Status> {
        self.reassign(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }
}

/// An invitation lives at least a second and at most 90 days.
fn invitation_ttl(seconds: i64) -> Result<i64, Error> {
    if !(MIN_INVITATION_TTL_SECONDS..=MAX_INVITATION_TTL_SECONDS).contains(&seconds) {
        return Err(Error::invalid(
            "invitation_ttl_seconds",
            format!("must be {MIN_INVITATION_TTL_SECONDS} to {MAX_INVITATION_TTL_SECONDS}"),
        ));
    }
    Ok(seconds)
}

impl Organizations {
    async fn organization(&self, id: OrganizationId) -> Result<Organization, Error> {
        self.0
            .store
            .find_organization(id)
            .await?
            .ok_or(Error::NotFound("organization"))
    }

    async fn create(
        &self,
        request: Request<v1::CreateOrganizationRequest>,
    ) -> Result<v1::CreateOrganizationResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        call.require_operator()?;
        let new = self.new_organization(&call, input).await?;
        let roles = self.predefined_roles(new.organization.id);
        let after = convert::organization_json(&new.organization, new.owner_id);
        let audit = call
            .audit(
                new.organization.id,
                Action::OrganizationCreated,
                new.organization.id,
            )
            .after(after);
        let (organization, owner) = self
            .0
            .store
            .create_organization(&new, &roles, &audit)
            .await?;
        tracing::info!(organization_id = %organization.id, owner_id = %owner.id, "organization created");
        Ok(v1::CreateOrganizationResponse {
            organization: Some(convert::organization(&organization)),
            owner: written(&owner, call.now),
            consistency_token: call.consistency_token(),
        })
    }

    /// The organisation and its owner as the request names them, the owner's password hashed.
    async fn new_organization(
        &self,
        call: &Call,
        input: v1::CreateOrganizationRequest,
    ) -> Result<NewOrganization, Error> {
        let name = validate::name("name", &input.name, 200)?;
        let owner_email = Email::parse("owner_email", &input.owner_email)?;
        let owner_first_name = validate::name("owner_first_name", &input.owner_first_name, 100)?;
        let owner_last_name = validate::name("owner_last_name", &input.owner_last_name, 100)?;
        self.0
            .policy
            .check("owner_password", &input.owner_password)?;
        let owner_password_hash = self.0.passwords.hash(input.owner_password).await?;
        Ok(NewOrganization {
            organization: Organization {
                id: OrganizationId::generate(),
                name,
                created_at: call.now,
                settings: OrganizationSettings::default(),
            },
            owner_id: UserId::generate(),
            owner_email,
            owner_first_name,
            owner_last_name,
            owner_password_hash,
        })
    }

    /// The catalogue's predefined roles, as a new organisation's own rows.
    fn predefined_roles(&self, organization: OrganizationId) -> Vec<Role> {
        self.0
            .catalogue
            .predefined_roles()
            .iter()
            .map(|role| Role {
                id: role.id.clone(),
                organization_id: organization,
                name: role.name.clone(),
                description: role.description.clone(),
                permissions: role.permissions.clone(),
                predefined: true,
            })
            .collect()
    }

    async fn get(
        &self,
        request: Request<v1::GetOrganizationRequest>,
    ) -> Result<v1::GetOrganizationResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let id = OrganizationId::parse("organization_id", &input.organization_id)?;
        if !matches!(call.caller, Caller::Operator) {
            call.member(id)?;
        }
        let organization = self.organization(id).await?;
        Ok(v1::GetOrganizationResponse {
            organization: Some(convert::organization(&organization)),
        })
    }

    async fn update_settings(
        &self,
        request: Request<v1::UpdateOrganizationSettingsRequest>,
    ) -> Result<v1::UpdateOrganizationSettingsResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let id = OrganizationId::parse("organization_id", &input.organization_id)?;
        let me = call
            .require(id, "security.write", Target::Organization)
            .await?;
        let mut change = convert::settings_change(&input)?;
        change.invitation_ttl_seconds = (change.invitation_ttl_seconds)
            .map(invitation_ttl)
            .transpose()?;
        // The store applies the change to the settings it reads under its lock: no stale write-back.
        let audit = |before: &OrganizationSettings, after: &OrganizationSettings| {
            call.audit(id, Action::SettingsUpdated, id)
                .before(convert::settings_json(before))
                .after(convert::settings_json(after))
        };
        let organization = self
            .0
            .store
            .update_settings(id, &change, me.user, &audit)
            .await?;
        Ok(v1::UpdateOrganizationSettingsResponse {
            organization: Some(convert::organization(&organization)),
            consistency_token: call.consistency_token(),
        })
    }

    async fn create_entity_in(
        &self,
        request: Request<v1::CreateEntityRequest>,
    ) -> Result<v1::CreateEntityResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let organization = OrganizationId::parse("organization_id", &input.organization_id)?;
        let parent = convert::optional_entity("parent_entity_id", &input.parent_entity_id)?;
        // An unknown parent is NOT_FOUND, not a denial; the store checks again inside its transaction.
        call.member(organization)?;
        if let Some(parent) = parent {
            let tree = self.0.tree_now(organization).await?;
            if !tree.contains(&parent) {
                return Err(Error::NotFound("parent_entity_id"));
            }
            // Nothing is allowed on an archived entity: say why instead of "requires account.write".
            if tree.is_archived(&parent) {
                return Err(Error::FailedPrecondition(
                    "parent_entity_id: is archived; restore it first".into(),
                ));
            }
        }
        // A segment needs account.write on its legal entity; a legal entity needs it organisation-wide.
        let target = parent.map_or(Target::Organization, Target::Entity);
        call.require(organization, "account.write", target).await?;
        let entity = Entity {
            id: EntityId::generate(),
            organization_id: organization,
            name: validate::name("name", &input.name, 200)?,
            parent,
            created_at: call.now,
            archived_at: None,
        };
        let audit = call
            .audit(organization, Action::EntityCreated, entity.id)
            .after(convert::entity_json(&entity));
        let entity = self.0.store.create_entity(&entity, &audit).await?;
        Ok(v1::CreateEntityResponse {
            entity: Some(convert::entity(&entity)),
            consistency_token: call.consistency_token(),
        })
    }

    async fn entities(
        &self,
        request: Request<v1::ListEntitiesRequest>,
    ) -> Result<v1::ListEntitiesResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let organization = OrganizationId::parse("organization_id", &input.organization_id)?;
        let me = call.member(organization)?;
        let page = Page::parse(input.page_size, &input.page_token)?;
        let after = page.after_as(|key| EntityId::parse("page_token", key))?;
        let mut entities = tree_order(self.0.store.list_entities(organization).await?);
        if input.administrable_only {
            let current = self.0.authorizer.current(organization, &[me.user]).await?;
            let (subject, tree) = (current.subject(me.user), current.tree());
            let account_write = PermissionKey::new(ACCOUNT_WRITE);
            entities.retain(|entity| {
                decide(subject, &account_write, managed_on(tree, entity.id), tree).allowed
            });
        }
        if let Some(after) = after {
            let position = (entities.iter().position(|entity| entity.id == after))
                .ok_or_else(|| Error::invalid("page_token", "malformed"))?;
            entities.drain(..=position);
        }
        let (entities, next_page_token) = page.cut(entities, |entity| entity.id.to_string());
        Ok(v1::ListEntitiesResponse {
            entities: entities.iter().map(convert::entity).collect(),
            next_page_token,
        })
    }

    async fn rename_entity(
        &self,
        request: Request<v1::UpdateEntityRequest>,
    ) -> Result<v1::UpdateEntityResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let name = validate::name("name", &input.name, 200)?;
        let (entity, token) = self
            .change_entity(
                &call,
                (&input.organization_id, &input.entity_id),
                EntityChange::Rename(name),
                Action::EntityUpdated,
            )
            .await?;
        Ok(v1::UpdateEntityResponse {
            entity: Some(entity),
            consistency_token: token,
        })
    }

    async fn archive(
        &self,
        request: Request<v1::ArchiveEntityRequest>,
    ) -> Result<v1::ArchiveEntityResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let change = EntityChange::Archive(call.now);
        let (entity, token) = self
            .change_entity(
                &call,
                (&input.organization_id, &input.entity_id),
                change,
                Action::EntityArchived,
            )
            .await?;
        Ok(v1::ArchiveEntityResponse {
            entity: Some(entity),
            consistency_token: token,
        })
    }

    async fn restore(
        &self,
        request: Request<v1::RestoreEntityRequest>,
    ) -> Result<v1::RestoreEntityResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let (entity, token) = self
            .change_entity(
                &call,
                (&input.organization_id, &input.entity_id),
                EntityChange::Restore,
                Action::EntityRestored,
            )
            .await?;
        Ok(v1::RestoreEntityResponse {
            entity: Some(entity),
            consistency_token: token,
        })
    }

    /// The body UpdateEntity, ArchiveEntity and RestoreEntity share: ids, then account.write where
    /// the entity is managed, then the change with its audit row (and revision) in one transaction.
    async fn change_entity(
        &self,
        call: &Call,
        (organization, entity): (&str, &str),
        change: EntityChange,
        action: Action,
    ) -> Result<(v1::Entity, String), Error> {
        let organization = OrganizationId::parse("organization_id", organization)?;
        let entity = EntityId::parse("entity_id", entity)?;
        call.member(organization)?;
        let tree = self.0.tree_now(organization).await?;
        if !tree.contains(&entity) {
            return Err(Error::NotFound("entity"));
        }
        call.require(organization, ACCOUNT_WRITE, managed_on(&tree, entity))
            .await?;
        let audit = |before: &Entity, after: &Entity| {
            call.audit(organization, action, entity)
                .before(convert::entity_json(before))
                .after(convert::entity_json(after))
        };
        let entity = (self.0.store)
            .change_entity(organization, entity, &change, &audit)
            .await?;
        Ok((convert::entity(&entity), call.consistency_token()))
    }

    async fn reassign(
        &self,
        request: Request<v1::ReassignOwnershipRequest>,
    ) -> Result<v1::ReassignOwnershipResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        call.require_operator()?;
        let id = OrganizationId::parse("organization_id", &input.organization_id)?;
        let new_owner = UserId::parse("new_owner_user_id", &input.new_owner_user_id)?;
        self.organization(id).await?;
        let audit = call.audit(id, Action::OwnershipReassigned, id);
        let owner = hand_over(&self.0, None, new_owner, audit).await?;
        Ok(v1::ReassignOwnershipResponse {
            owner: written(&owner, call.now),
            consistency_token: call.consistency_token(),
        })
    }
}

/// Managing entities (creating, renaming, archiving) is account.write.
const ACCOUNT_WRITE: &str = "account.write";

/// Where account.write is needed to manage `entity`: organisation-wide for a legal entity, on its
/// legal entity for a segment (as CreateEntity), organisation-wide again while that legal entity is
/// archived, since nothing is allowed on an archived entity.
fn managed_on(tree: &EntityTree, entity: EntityId) -> Target {
    match tree.parent(&entity) {
        Some(parent) if !tree.is_archived(&parent) => Target::Entity(parent),
        _ => Target::Organization,
    }
}

/// Entities as a tree (SPEC §1): each legal entity, oldest first, followed by its segments, oldest
/// first (ids are time-ordered). `entities` comes oldest first.
fn tree_order(entities: Vec<Entity>) -> Vec<Entity> {
    let (legal, segments): (Vec<_>, Vec<_>) = entities
        .into_iter()
        .partition(|entity| entity.parent.is_none());
    let mut ordered = Vec::with_capacity(legal.len() + segments.len());
    for entity in legal {
        let id = entity.id;
        ordered.push(entity);
        ordered.extend(
            segments
                .iter()
                .filter(|segment| segment.parent == Some(id))
                .cloned(),
        );
    }
    ordered
}
