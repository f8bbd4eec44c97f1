//! AuditService: the append-only audit log (SPEC §6), delivered by issue #3.
use tonic::{Request, Response, Status};
use warden_proto::v1::{self, audit_service_server::AuditService};

use crate::status::not_yet;

pub struct Audit;

#[tonic::async_trait]
impl AuditService for Audit {
    async fn list_audit_events(
        &self,
        _request: Request<v1::ListAuditEventsRequest>,
    ) -> Result<Response<v1::ListAuditEventsResponse>, Status> {
        Err(not_yet("ListAuditEvents", 3))
    }
}
