//! TLS on the gRPC port: throwaway certificates from rcgen, a TLS client calling Health, plaintext
//! refused, a rotated certificate served without a restart, the plaintext health-only port, and
//! client certificates required by `tls_client_ca_file`.
use std::{path::Path, time::Duration};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, date_time_ymd};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use warden_tests::{TestDatabase, TestServer};

/// A throwaway certificate authority.
struct Ca(CertifiedIssuer<'static, KeyPair>);

impl Ca {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Self(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    /// A certificate for `name`, valid from 2020 until `until` (default: rcgen's, years ahead),
    /// as PEM (certificate, key).
    fn issue(&self, name: &str, until: Option<(i32, u8, u8)>) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.not_before = date_time_ymd(2020, 1, 1);
        if let Some((year, month, day)) = until {
            params.not_after = date_time_ymd(year, month, day);
        }
        (
            params.signed_by(&key, &self.0).unwrap().pem(),
            key.serialize_pem(),
        )
    }
}

/// A throwaway CA and a `localhost` certificate it signed, as PEM.
struct Generation {
    ca: String,
    cert: String,
    key: String,
}

fn generation() -> Generation {
    let ca = Ca::new();
    let (cert, key) = ca.issue("localhost", None);
    Generation {
        ca: ca.0.pem(),
        cert,
        key,
    }
}

impl Generation {
    fn write_to(&self, dir: &Path) {
        std::fs::write(dir.join("tls.crt"), &self.cert).unwrap();
        std::fs::write(dir.join("tls.key"), &self.key).unwrap();
    }

    /// A client that trusts only this generation's CA.
    fn client(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca))
            .domain_name("localhost")
    }
}

async fn health(channel: Channel) -> Result<ServingStatus, tonic::Status> {
    let reply = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?;
    Ok(reply.into_inner().status())
}

/// A new connection (no reuse of the server's channel), over TLS trusting `client`.
async fn tls_health(server: &TestServer, client: ClientTlsConfig) -> Result<ServingStatus, String> {
    let channel = Channel::from_shared(format!("https://{}", server.addr))
        .unwrap()
        .tls_config(client)
        .unwrap()
        .connect()
        .await
        .map_err(|error| format!("{error:?}"))?;
    health(channel).await.map_err(|status| status.to_string())
}

async fn start(first: &Generation, adjust: impl FnOnce(&mut warden_server::Config)) -> TestServer {
    let db = TestDatabase::fresh().await;
    first.write_to(&db.dir);
    let dir = db.dir.clone();
    TestServer::start_tls(
        db,
        move |config| {
            config.tls_cert_file = Some(dir.join("tls.crt"));
            config.tls_key_file = Some(dir.join("tls.key"));
            adjust(config);
        },
        first.client(),
    )
    .await
}

#[tokio::test]
async fn a_tls_client_is_served_and_plaintext_is_refused() {
    let first = generation();
    let server = start(&first, |_| {}).await;
    assert_eq!(
        health(server.channel.clone()).await.unwrap(),
        ServingStatus::Serving
    );
    // The typed clients work over TLS too: an RPC that needs the database.
    let org = server.create_organization("Acme").await;
    assert!(!org.api_key.is_empty());

    let plaintext = Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect_lazy();
    // The handshake fails and the connection closes: the client sees a transport error, no reply.
    let refused = health(plaintext).await.unwrap_err();
    assert!(
        matches!(
            refused.code(),
            tonic::Code::Unavailable | tonic::Code::Unknown
        ) && refused.message().contains("transport error"),
        "{refused}"
    );
    // A client that does not trust the server's CA is refused by its own handshake.
    assert!(tls_health(&server, generation().client()).await.is_err());
}

#[tokio::test]
async fn a_rotated_certificate_is_served_without_a_restart() {
    let first = generation();
    let server = start(&first, |_| {}).await;
    let second = generation();
    second.write_to(&server.db.dir);
    // Within the second the files are not looked at: the first certificate is still served.
    assert!(tls_health(&server, first.client()).await.is_ok());
    assert!(tls_health(&server, second.client()).await.is_err());

    server.advance(Duration::from_secs(1));
    assert_eq!(
        tls_health(&server, second.client()).await.unwrap(),
        ServingStatus::Serving
    );
    assert!(tls_health(&server, first.client()).await.is_err());
}

#[tokio::test]
async fn the_health_only_port_answers_in_plaintext_beside_tls() {
    // The port is picked free and released just before the server binds it (a test-only race).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let first = generation();
    let _server = start(&first, |config| {
        config.health_listen_addr = Some(([127, 0, 0, 1], port).into());
    })
    .await;
    let probe = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert_eq!(health(probe.clone()).await.unwrap(), ServingStatus::Serving);
    // Only health: the API is not reachable through it.
    let mut organizations =
        warden_proto::v1::organization_service_client::OrganizationServiceClient::new(probe);
    let error = organizations
        .get_organization(warden_proto::v1::GetOrganizationRequest::default())
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::Unimplemented);
}

#[tokio::test]
async fn with_a_client_ca_only_clients_with_its_unexpired_certificates_are_served() {
    let first = generation();
    let clients = Ca::new();
    let with =
        |(cert, key): &(String, String)| first.client().identity(Identity::from_pem(cert, key));
    let billing = clients.issue("billing.internal", None);
    let db = TestDatabase::fresh().await;
    first.write_to(&db.dir);
    std::fs::write(db.dir.join("clients.pem"), clients.0.pem()).unwrap();
    let dir = db.dir.clone();
    let server = TestServer::start_tls(
        db,
        move |config| {
            config.tls_cert_file = Some(dir.join("tls.crt"));
            config.tls_key_file = Some(dir.join("tls.key"));
            config.tls_client_ca_file = Some(dir.join("clients.pem"));
        },
        with(&billing),
    )
    .await;
    assert_eq!(
        tls_health(&server, with(&billing)).await.unwrap(),
        ServingStatus::Serving
    );
    assert!(
        tls_health(&server, first.client()).await.is_err(),
        "no client certificate"
    );
    let stranger = Ca::new().issue("billing.internal", None);
    assert!(
        tls_health(&server, with(&stranger)).await.is_err(),
        "a certificate from another CA"
    );
    let expired = clients.issue("billing.internal", Some((2021, 1, 1)));
    assert!(
        tls_health(&server, with(&expired)).await.is_err(),
        "an expired certificate from the right CA"
    );
}
