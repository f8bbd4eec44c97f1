//! NotificationService: the operator's view of the durable outbox, drained by a delivery worker.
use tonic::{Request, Response, Status};
use warden_core::{Error, page};
use warden_proto::v1::{self, notification_service_server::NotificationService};

use crate::{call::call, convert, state::Shared, status::to_status};

/// At most this many ids in one acknowledgement.
const MAX_ACKNOWLEDGED: usize = 500;

pub struct Notifications(pub Shared);

#[tonic::async_trait]
impl NotificationService for Notifications {
    async fn list_pending_notifications(
        &self,
        request: Request<v1::ListPendingNotificationsRequest>,
    ) -> Result<Response<v1::ListPendingNotificationsResponse>, Status> {
        self.pending(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn acknowledge_notifications(
        &self,
        request: Request<v1::AcknowledgeNotificationsRequest>,
    ) -> Result<Response<v1::AcknowledgeNotificationsResponse>, Status> {
        self.acknowledge(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }
}

impl Notifications {
    /// Not paged: the outbox drains by acknowledgement, so the oldest pending ones come first
    /// until they are acknowledged.
    async fn pending(
        &self,
        request: Request<v1::ListPendingNotificationsRequest>,
    ) -> Result<v1::ListPendingNotificationsResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        call.require_operator()?;
        let limit = page::page_size(input.page_size)?;
        let pending = self.0.store.pending_notifications(limit).await?;
        Ok(v1::ListPendingNotificationsResponse {
            notifications: pending.into_iter().map(convert::notification).collect(),
        })
    }

    async fn acknowledge(
        &self,
        request: Request<v1::AcknowledgeNotificationsRequest>,
    ) -> Result<v1::AcknowledgeNotificationsResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        call.require_operator()?;
        if input.ids.is_empty() || input.ids.len() > MAX_ACKNOWLEDGED {
            return Err(Error::invalid(
                "ids",
                format!("must hold 1 to {MAX_ACKNOWLEDGED} ids"),
            ));
        }
        let ids = convert::notification_ids(&input.ids)?;
        let count = self
            .0
            .store
            .acknowledge_notifications(&ids, call.now)
            .await?;
        Ok(v1::AcknowledgeNotificationsResponse {
            acknowledged_count: i32::try_from(count).unwrap_or(i32::MAX),
        })
    }
}
