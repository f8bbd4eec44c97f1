//! NotificationService: the durable outbox of emails and SMS, delivered by issue #3.
use tonic::{Request, Response, Status};
use warden_proto::v1::{self, notification_service_server::NotificationService};

use crate::status::not_yet;

pub struct Notifications;

#[tonic::async_trait]
impl NotificationService for Notifications {
    async fn list_pending_notifications(
        &self,
        _request: Request<v1::ListPendingNotificationsRequest>,
    ) -> Result<Response<v1::ListPendingNotificationsResponse>, Status> {
        Err(not_yet("ListPendingNotifications", 3))
    }

    async fn acknowledge_notifications(
        &self,
        _request: Request<v1::AcknowledgeNotificationsRequest>,
    ) -> Result<Response<v1::AcknowledgeNotificationsResponse>, Status> {
        Err(not_yet("AcknowledgeNotifications", 3))
    }
}
