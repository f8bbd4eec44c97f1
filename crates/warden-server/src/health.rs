//! What `grpc.health.v1` answers: SERVING while the database answers `SELECT 1`, NOT_SERVING while
//! it does not and from the moment shutdown begins (so a load balancer stops sending before the
//! listener closes).
use std::{sync::Arc, time::Duration};

use tonic_health::{ServingStatus, server::HealthReporter};
use warden_proto::v1::{
    authorization_service_server::AuthorizationServiceServer,
    organization_service_server::OrganizationServiceServer,
};
use warden_store::SqlStore;

use crate::services::{authorization::Authorization, organizations::Organizations};

/// The names the health service answers for: the whole server ("") and the services a probe names.
fn names() -> [&'static str; 3] {
    [
        "",
        <OrganizationServiceServer<Organizations> as tonic::server::NamedService>::NAME,
        <AuthorizationServiceServer<Authorization> as tonic::server::NamedService>::NAME,
    ]
}

pub async fn set(reporter: &HealthReporter, serving: bool) {
    let status = if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    for name in names() {
        reporter.set_service_status(name, status).await;
    }
}

/// How long one probe may take. Not shorter: a probe that gives up while the pool is still
/// connecting starts over next time and may never see the database come back.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Asks the database every `interval` and reports each change. Shutdown aborts it before it
/// reports NOT_SERVING for good.
pub async fn probe(reporter: HealthReporter, store: Arc<SqlStore>, interval: Duration) {
    let mut serving = true;
    loop {
        tokio::time::sleep(interval).await;
        let answered = matches!(
            tokio::time::timeout(PROBE_TIMEOUT, store.ping()).await,
            Ok(Ok(()))
        );
        if answered != serving {
            serving = answered;
            if serving {
                tracing::info!("database answers again: serving");
            } else {
                tracing::warn!("database does not answer: not serving");
            }
            set(&reporter, serving).await;
        }
    }
}
