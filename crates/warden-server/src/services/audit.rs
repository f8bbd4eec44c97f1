//! AuditService: the append-only audit log (SPEC §6), filtered and paginated, newest first.
use tonic::{Request, Response, Status};
use warden_core::{Error, decision::Target, ids::OrganizationId};
use warden_proto::v1::{self, audit_service_server::AuditService};

use crate::{
    call::call,
    convert::{self, Page},
    state::Shared,
    status::to_status,
};

pub struct Audit(pub Shared);

#[tonic::async_trait]
impl AuditService for Audit {
    async fn list_audit_events(
        &self,
        request: Request<v1::ListAuditEventsRequest>,
    ) -> Result<Response<v1::ListAuditEventsResponse>, Status> {
        self.list(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }
}

impl Audit {
    async fn list(
        &self,
        request: Request<v1::ListAuditEventsRequest>,
    ) -> Result<v1::ListAuditEventsResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let organization = OrganizationId::parse("organization_id", &input.organization_id)?;
        call.require(organization, "audit.read", Target::Organization)
            .await?;
        let page = Page::parse(input.page_size, &input.page_token)?;
        let filter = convert::audit_filter(&input, &page)?;
        let events = self
            .0
            .store
            .list_audit_events(organization, &filter)
            .await?;
        let (events, next_page_token) = page.cut(events, |event| event.id.to_string());
        Ok(v1::ListAuditEventsResponse {
            events: events.into_iter().map(convert::audit_event).collect(),
            next_page_token,
        })
    }
}
