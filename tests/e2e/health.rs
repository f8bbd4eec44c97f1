//! `grpc.health.v1` follows the database and shutdown: NOT_SERVING from the moment shutdown is
//! signalled (while in-flight RPCs still finish) and while the database does not answer.
use sea_orm::{ConnectionTrait as _, Database};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use warden_proto::v1;
use warden_tests::{OPERATOR_TOKEN, PASSWORD, TestDatabase, TestServer};

type Statuses = tonic::Streaming<tonic_health::pb::HealthCheckResponse>;

async fn watch(server: &TestServer) -> Statuses {
    let request = HealthCheckRequest {
        service: String::new(),
    };
    let mut health = HealthClient::new(server.channel.clone());
    health.watch(request).await.unwrap().into_inner()
}

async fn next(statuses: &mut Statuses) -> ServingStatus {
    statuses.message().await.unwrap().unwrap().status()
}

#[tokio::test]
async fn shutdown_reports_not_serving_at_once_and_lets_an_in_flight_rpc_finish() {
    let mut server = TestServer::start().await;
    let mut statuses = watch(&server).await;
    assert_eq!(next(&mut statuses).await, ServingStatus::Serving);
    let lock = server.db.hold_write_lock().await; // The creation below waits for it.
    let request = v1::CreateOrganizationRequest {
        name: "Acme".into(),
        owner_email: "ada@example.com".into(),
        owner_first_name: "Ada".into(),
        owner_last_name: "Lovelace".into(),
        owner_password: PASSWORD.into(),
    };
    let mut organizations = server.organizations(OPERATOR_TOKEN);
    let mut creating = Box::pin(organizations.create_organization(request));
    // Both calls share one HTTP/2 connection and the creation is sent first: once the health check
    // is answered, the server has accepted the creation's stream.
    let mut health = HealthClient::new(server.channel.clone());
    let check = HealthCheckRequest {
        service: String::new(),
    };
    tokio::select! {
        biased;
        _ = &mut creating => panic!("the creation finished while the write lock is held"),
        checked = health.check(check) => assert_eq!(checked.unwrap().into_inner().status(), ServingStatus::Serving),
    }

    server.signal_shutdown();
    assert_eq!(next(&mut statuses).await, ServingStatus::NotServing);
    drop(statuses); // A watch never ends by itself; the creation is the in-flight RPC.
    let still_running = tokio::time::timeout(std::time::Duration::ZERO, &mut creating).await;
    assert!(still_running.is_err(), "the creation waits for the lock");
    drop(lock);
    let created = creating.await.expect("the in-flight creation completes");
    assert_eq!(created.into_inner().organization.unwrap().name, "Acme");
    server.stop().await; // Exits cleanly (the task's result is Ok).
}

#[tokio::test]
async fn not_serving_while_the_database_refuses_connections_and_serving_when_it_is_back() {
    let db = TestDatabase::fresh().await;
    let Some((admin, name)) = db.postgres().map(|(a, n)| (a.to_owned(), n.to_owned())) else {
        eprintln!("skipped: needs PostgreSQL (DATABASE_URL) to take a database away");
        return;
    };
    let server = TestServer::start_with(db, |config| config.health_probe_interval_ms = 20).await;
    let mut statuses = watch(&server).await;
    assert_eq!(next(&mut statuses).await, ServingStatus::Serving);

    let postgres = Database::connect(&admin).await.unwrap();
    postgres
        .execute_unprepared(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .await
        .unwrap();
    postgres
        .execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .await
        .unwrap();
    assert_eq!(next(&mut statuses).await, ServingStatus::NotServing);

    postgres
        .execute_unprepared(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await
        .unwrap();
    assert_eq!(next(&mut statuses).await, ServingStatus::Serving);
    drop(statuses);
    server.stop().await;
}
