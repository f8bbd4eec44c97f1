//! NotificationService: the operator's view of the durable outbox, drained by a delivery worker.

use tonic::{Request, Response, Status};
use warden_core::{Error, ids::NotificationId, model::NotificationKind, page};
use warden_proto::v1::{self, notification_service_server::NotificationService};

use crate::{convert, state::Shared, status::to_status};

/// At most this many ids in one acknowledgement.
const MAX_ACKNOWLEDGED: usize = 500;

pub struct Notifications(pub Shared);

fn kind(kind: NotificationKind) -> v1::NotificationKind {
    match kind {
        NotificationKind::Invitation => v1::NotificationKind::Invitation,
        NotificationKind::EmailCode => v1::NotificationKind::EmailCode,
        NotificationKind::SmsCode => v1::NotificationKind::SmsCode,
        NotificationKind::PasswordReset => v1::NotificationKind::PasswordReset,
    }
}

#[tonic::async_trait]
impl NotificationService for Notifications {
    async fn list_pending_notifications(
        &self,
        request: Request<v1::ListPendingNotificationsRequest>,
    ) -> Result<Response<v1::ListPendingNotificationsResponse>, Status> {
        let state = &self.0;
        state.require_operator(&state.authenticate(&request).await?)?;
        let limit = page::page_size(request.get_ref().page_size).map_err(to_status)?;
        let pending = state
            .store
            .pending_notifications(limit)
            .await
            .map_err(to_status)?;
        let notifications = pending
            .into_iter()
            .map(|notification| v1::Notification {
                id: notification.id.to_string(),
                kind: kind(notification.kind) as i32,
                recipient: notification.recipient,
                organization_id: notification.organization_id.to_string(),
                token: notification.token.unwrap_or_default(),
                code: notification.code.unwrap_or_default(),
                create_time: Some(convert::timestamp(notification.created_at)),
            })
            .collect();
        Ok(Response::new(v1::ListPendingNotificationsResponse {
            notifications,
        }))
    }

    async fn acknowledge_notifications(
        &self,
        request: Request<v1::AcknowledgeNotificationsRequest>,
    ) -> Result<Response<v1::AcknowledgeNotificationsResponse>, Status> {
        let state = &self.0;
        state.require_operator(&state.authenticate(&request).await?)?;
        let ids = &request.get_ref().ids;
        if ids.is_empty() || ids.len() > MAX_ACKNOWLEDGED {
            return Err(to_status(Error::invalid(
                "ids",
                format!("must hold 1 to {MAX_ACKNOWLEDGED} ids"),
            )));
        }
        let ids = ids
            .iter()
            .enumerate()
            .map(|(index, id)| {
                NotificationId::parse("ids", id)
                    .map_err(|_| Error::invalid(format!("ids[{index}]"), "must be a UUID"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(to_status)?;
        let count = state
            .store
            .acknowledge_notifications(&ids, self.0.clock.now())
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::AcknowledgeNotificationsResponse {
            acknowledged_count: i32::try_from(count).unwrap_or(i32::MAX),
        }))
    }
}
