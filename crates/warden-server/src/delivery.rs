//! Delivery of the outbox: a `Notifier` sends each pending message, then it is acknowledged. The
//! bundled `LogNotifier` records that a message left, never its token or code.
use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::Utc;
use warden_core::{Error, model::Notification, ports::NotificationStore};

#[async_trait]
pub trait Notifier: Send + Sync {
    async fn deliver(&self, notification: &Notification) -> Result<(), Error>;
}

/// For development and tests: a log line per message, without the secret it carries.
pub struct LogNotifier;

#[async_trait]
impl Notifier for LogNotifier {
    async fn deliver(&self, notification: &Notification) -> Result<(), Error> {
        tracing::info!(
            notification_id = %notification.id,
            kind = notification.kind.as_str(),
            organization_id = %notification.organization_id,
            "notification delivered"
        );
        Ok(())
    }
}

/// Drains the outbox every `interval` until the task is aborted. A failed delivery stays pending and
/// is tried again on the next round.
pub async fn run(
    store: Arc<dyn NotificationStore>,
    notifier: Arc<dyn Notifier>,
    interval: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    loop {
        ticker.tick().await;
        let pending = match store.pending_notifications(100).await {
            Ok(pending) => pending,
            Err(error) => {
                tracing::warn!(%error, "outbox unreadable; retrying");
                continue;
            }
        };
        let mut delivered = Vec::new();
        for notification in &pending {
            match notifier.deliver(notification).await {
                Ok(()) => delivered.push(notification.id),
                Err(error) => {
                    tracing::warn!(notification_id = %notification.id, %error, "delivery failed; will retry")
                }
            }
        }
        if !delivered.is_empty()
            && let Err(error) = store
                .acknowledge_notifications(&delivered, Utc::now())
                .await
        {
            tracing::warn!(%error, "acknowledgement failed; messages may be sent twice");
        }
    }
}
