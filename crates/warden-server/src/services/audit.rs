//! AuditService: the append-only audit log (SPEC §6), filtered and paginated, newest first.
use chrono::{DateTime, Utc};
use tonic::{Request, Response, Status};
use warden_core::{
    Error,
    decision::Target,
    ids::{AuditEventId, OrganizationId, UserId},
    model::AuditFilter,
    page,
};
use warden_proto::v1::{self, audit_service_server::AuditService};

use crate::{convert, state::Shared, status::to_status};

pub struct Audit(pub Shared);

fn time(
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

fn bounded(field: &'static str, text: &str) -> Result<Option<String>, Error> {
    match text {
        "" => Ok(None),
        text if text.len() > 100 => Err(Error::invalid(field, "must be at most 100 characters")),
        text => Ok(Some(text.to_owned())),
    }
}

#[tonic::async_trait]
impl AuditService for Audit {
    async fn list_audit_events(
        &self,
        request: Request<v1::ListAuditEventsRequest>,
    ) -> Result<Response<v1::ListAuditEventsResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let input = request.into_inner();
        let organization =
            OrganizationId::parse("organization_id", &input.organization_id).map_err(to_status)?;
        state
            .require(&caller, organization, "audit.read", Target::Organization)
            .await?;
        let limit = page::page_size(input.page_size).map_err(to_status)?;
        let parse = || -> Result<AuditFilter, Error> {
            Ok(AuditFilter {
                actor: match input.actor_user_id.as_str() {
                    "" => None,
                    id => Some(UserId::parse("actor_user_id", id)?),
                },
                action: bounded("action", &input.action)?,
                target_id: bounded("target_id", &input.target_id)?,
                from: time("start_time", input.start_time.as_ref())?,
                until: time("end_time", input.end_time.as_ref())?,
                before_id: convert::parse_page_token(&input.page_token)?
                    .map(|key| {
                        AuditEventId::parse("page_token", &key)
                            .map_err(|_| Error::invalid("page_token", "malformed"))
                    })
                    .transpose()?,
                limit: limit + 1,
            })
        };
        let filter = parse().map_err(to_status)?;
        let events = state
            .store
            .list_audit_events(organization, &filter)
            .await
            .map_err(to_status)?;
        let (events, next_page_token) =
            convert::paginate(events, limit, |event| event.id.to_string());
        let events = events
            .into_iter()
            .map(|event| v1::AuditEvent {
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
                create_time: Some(convert::timestamp(event.created_at)),
                client_address: event.client_address.unwrap_or_default(),
                user_agent: event.user_agent.unwrap_or_default(),
                before_json: event.before.unwrap_or_default(),
                after_json: event.after.unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(v1::ListAuditEventsResponse {
            events,
            next_page_token,
        }))
    }
}
