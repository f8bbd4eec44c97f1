//! OrganizationService: bootstrap, the entity tree, settings and SSO (SPEC §1).

use tonic::{Request, Response, Status};
use warden_core::{
    Error,
    decision::Target,
    ids::{EntityId, OrganizationId, UserId},
    model::{
        Entity, NewOrganization, Organization, OrganizationSettings, Role, SecondFactorMethod,
    },
    validate::{self, Email},
};
use warden_proto::v1::{self, organization_service_server::OrganizationService};

use crate::{
    context::RequestContext,
    convert,
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
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        state.require_operator(&caller)?;
        let context = RequestContext::of(&request);
        let input = request.into_inner();
        let name = validate::name("name", &input.name, 200).map_err(to_status)?;
        let email = Email::parse("owner_email", &input.owner_email).map_err(to_status)?;
        let first_name =
            validate::name("owner_first_name", &input.owner_first_name, 100).map_err(to_status)?;
        let last_name =
            validate::name("owner_last_name", &input.owner_last_name, 100).map_err(to_status)?;
        state
            .policy
            .check("owner_password", &input.owner_password)
            .map_err(to_status)?;
        let hash = state
            .passwords
            .hash(input.owner_password)
            .await
            .map_err(to_status)?;
        let now = self.0.clock.now();
        let organization = Organization {
            id: OrganizationId::generate(),
            name,
            created_at: now,
            settings: OrganizationSettings::default(),
        };
        let roles: Vec<Role> = state
            .catalogue
            .predefined_roles()
            .iter()
            .map(|role| Role {
                id: role.id.clone(),
                organization_id: organization.id,
                name: role.name.clone(),
                description: role.description.clone(),
                permissions: role.permissions.clone(),
                predefined: true,
            })
            .collect();
        let new = NewOrganization {
            organization,
            owner_id: UserId::generate(),
            owner_email: email,
            owner_first_name: first_name,
            owner_last_name: last_name,
            owner_password_hash: hash,
        };
        let after = serde_json::json!({ "name": new.organization.name, "owner_user_id": new.owner_id.to_string() });
        let audit = context.audit(
            new.organization.id,
            caller.actor(),
            "organization.created",
            "organization",
            new.organization.id.to_string(),
            None,
            Some(after.to_string()),
            now,
        );
        let (organization, owner) = state
            .store
            .create_organization(&new, &roles, &audit)
            .await
            .map_err(to_status)?;
        tracing::info!(organization_id = %organization.id, owner_id = %owner.id, "organization created");
        Ok(Response::new(v1::CreateOrganizationResponse {
            organization: Some(convert::organization(&organization)),
            owner: Some(convert::user(&owner, self.0.clock.now())),
            consistency_token: convert::consistency_token(now),
        }))
    }

    async fn get_organization(
        &self,
        request: Request<v1::GetOrganizationRequest>,
    ) -> Result<Response<v1::GetOrganizationResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let id = OrganizationId::parse("organization_id", &request.get_ref().organization_id)
            .map_err(to_status)?;
        if !matches!(caller, Caller::Operator) {
            state.member(&caller, id)?;
        }
        let organization = state.store.find_organization(id).await.map_err(to_status)?;
        let organization =
            organization.ok_or_else(|| to_status(Error::NotFound("organization")))?;
        Ok(Response::new(v1::GetOrganizationResponse {
            organization: Some(convert::organization(&organization)),
        }))
    }

    async fn update_organization_settings(
        &self,
        request: Request<v1::UpdateOrganizationSettingsRequest>,
    ) -> Result<Response<v1::UpdateOrganizationSettingsResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let context = RequestContext::of(&request);
        let input = request.into_inner();
        let id =
            OrganizationId::parse("organization_id", &input.organization_id).map_err(to_status)?;
        state
            .require(&caller, id, "security.write", Target::Organization)
            .await?;
        let before = state.store.find_organization(id).await.map_err(to_status)?;
        let before = before.ok_or_else(|| to_status(Error::NotFound("organization")))?;
        let mut settings = before.settings.clone();
        if let Some(ttl) = input.invitation_ttl_seconds {
            if !(MIN_INVITATION_TTL_SECONDS..=MAX_INVITATION_TTL_SECONDS).contains(&ttl) {
                return Err(to_status(Error::invalid(
                    "invitation_ttl_seconds",
                    format!("must be {MIN_INVITATION_TTL_SECONDS} to {MAX_INVITATION_TTL_SECONDS}"),
                )));
            }
            settings.invitation_ttl_seconds = ttl;
        }
        if input.update_allowed_second_factors {
            let mut methods = Vec::new();
            for (index, value) in input.allowed_second_factors.iter().enumerate() {
                let method = match v1::SecondFactorMethod::try_from(*value) {
                    Ok(v1::SecondFactorMethod::Totp) => SecondFactorMethod::Totp,
                    Ok(v1::SecondFactorMethod::Email) => SecondFactorMethod::Email,
                    Ok(v1::SecondFactorMethod::Sms) => SecondFactorMethod::Sms,
                    Ok(v1::SecondFactorMethod::Unspecified) | Err(_) => {
                        return Err(to_status(Error::invalid(
                            format!("allowed_second_factors[{index}]"),
                            "unknown method",
                        )));
                    }
                };
                if !methods.contains(&method) {
                    methods.push(method);
                }
            }
            settings.allowed_second_factors = methods;
        }
        if let Some(required) = input.require_second_factor {
            settings.require_second_factor = required;
        }
        let now = self.0.clock.now();
        let json = |s: &OrganizationSettings| {
            serde_json::json!({
                "invitation_ttl_seconds": s.invitation_ttl_seconds,
                "allowed_second_factors": s.allowed_second_factors.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
                "require_second_factor": s.require_second_factor,
            })
            .to_string()
        };
        let audit = context.audit(
            id,
            caller.actor(),
            "organization.settings_updated",
            "organization",
            id.to_string(),
            Some(json(&before.settings)),
            Some(json(&settings)),
            now,
        );
        let organization = state
            .store
            .update_settings(id, &settings, &audit)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::UpdateOrganizationSettingsResponse {
            organization: Some(convert::organization(&organization)),
            consistency_token: convert::consistency_token(now),
        }))
    }

    async fn create_entity(
        &self,
        request: Request<v1::CreateEntityRequest>,
    ) -> Result<Response<v1::CreateEntityResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let context = RequestContext::of(&request);
        let input = request.into_inner();
        let organization =
            OrganizationId::parse("organization_id", &input.organization_id).map_err(to_status)?;
        let parent = match input.parent_entity_id.as_str() {
            "" => None,
            id => Some(EntityId::parse("parent_entity_id", id).map_err(to_status)?),
        };
        // An unknown parent is NOT_FOUND, not a denial; the store checks again inside its transaction.
        state.member(&caller, organization)?;
        if let Some(parent) = parent
            && !state
                .store
                .load_entity_tree(organization)
                .await
                .map_err(to_status)?
                .contains(&parent)
        {
            return Err(to_status(Error::NotFound("parent_entity_id")));
        }
        // A segment needs account.write on its legal entity; a legal entity needs it organisation-wide.
        let target = parent.map_or(Target::Organization, Target::Entity);
        state
            .require(&caller, organization, "account.write", target)
            .await?;
        let name = validate::name("name", &input.name, 200).map_err(to_status)?;
        let now = self.0.clock.now();
        let entity = Entity {
            id: EntityId::generate(),
            organization_id: organization,
            name,
            parent,
            created_at: now,
        };
        let after = serde_json::json!({ "name": entity.name, "parent_entity_id": entity.parent.map(|id| id.to_string()) });
        let audit = context.audit(
            organization,
            caller.actor(),
            "entity.created",
            "entity",
            entity.id.to_string(),
            None,
            Some(after.to_string()),
            now,
        );
        let entity = state
            .store
            .create_entity(&entity, &audit)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::CreateEntityResponse {
            entity: Some(convert::entity(&entity)),
            consistency_token: convert::consistency_token(now),
        }))
    }

    async fn list_entities(
        &self,
        request: Request<v1::ListEntitiesRequest>,
    ) -> Result<Response<v1::ListEntitiesResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let input = request.into_inner();
        let organization =
            OrganizationId::parse("organization_id", &input.organization_id).map_err(to_status)?;
        state.member(&caller, organization)?;
        let limit = warden_core::page::page_size(input.page_size).map_err(to_status)?;
        let after = convert::parse_page_token(&input.page_token)
            .map_err(to_status)?
            .map(|key| EntityId::parse("page_token", &key))
            .transpose()
            .map_err(|_| to_status(Error::invalid("page_token", "malformed")))?;
        let entities = state
            .store
            .list_entities(organization, after, limit + 1)
            .await
            .map_err(to_status)?;
        let (entities, next_page_token) =
            convert::paginate(entities, limit, |entity| entity.id.to_string());
        Ok(Response::new(v1::ListEntitiesResponse {
            entities: entities.iter().map(convert::entity).collect(),
            next_page_token,
        }))
    }

    async fn configure_sso(
        &self,
        request: Request<v1::ConfigureSsoRequest>,
    ) -> Result<Response<v1::ConfigureSsoResponse>, Status> {
        self.configure(request).await
    }

    async fn reassign_ownership(
        &self,
        request: Request<v1::ReassignOwnershipRequest>,
    ) -> Result<Response<v1::ReassignOwnershipResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        state.require_operator(&caller)?;
        let context = RequestContext::of(&request);
        let input = request.into_inner();
        let id =
            OrganizationId::parse("organization_id", &input.organization_id).map_err(to_status)?;
        let new_owner =
            UserId::parse("new_owner_user_id", &input.new_owner_user_id).map_err(to_status)?;
        if state
            .store
            .find_organization(id)
            .await
            .map_err(to_status)?
            .is_none()
        {
            return Err(to_status(Error::NotFound("organization")));
        }
        let now = self.0.clock.now();
        let audit = context.audit(
            id,
            caller.actor(),
            "organization.ownership_reassigned",
            "organization",
            id.to_string(),
            None,
            Some(serde_json::json!({ "owner_user_id": new_owner.to_string() }).to_string()),
            now,
        );
        let owner = state
            .store
            .transfer_ownership(id, new_owner, &audit)
            .await
            .map_err(to_status)?;
        tracing::info!(organization_id = %id, owner_id = %owner.id, "ownership reassigned by the operator");
        Ok(Response::new(v1::ReassignOwnershipResponse {
            owner: Some(convert::user(&owner, self.0.clock.now())),
            consistency_token: convert::consistency_token(now),
        }))
    }
}
