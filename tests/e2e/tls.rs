//! TLS on the gRPC port: throwaway certificates from rcgen, a TLS client calling Health, plaintext
//! refused, a rotated certificate served without a restart, the plaintext health-only port, and
//! client certificates required by `tls_client_ca_file` (the CA file re-read when it changes), and
//! a client certificate's SAN URI mapped to an organisation's service principal.
use std::{path::Path, time::Duration};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SanType, date_time_ymd,
    string::Ia5String,
};
use tonic::{
    Code,
    transport::{Certificate, Channel, ClientTlsConfig, Identity},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use warden_proto::v1::{self, authorization_service_client::AuthorizationServiceClient};
use warden_tests::{TestDatabase, TestOrg, TestServer, grant};

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
        self.issue_with(name, None, until)
    }

    /// A client certificate for `name` that also carries the SAN URI `uri`.
    fn issue_uri(&self, uri: &str, until: Option<(i32, u8, u8)>) -> (String, String) {
        self.issue_with("client.internal", Some(uri), until)
    }

    fn issue_with(
        &self,
        name: &str,
        uri: Option<&str>,
        until: Option<(i32, u8, u8)>,
    ) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        if let Some(uri) = uri {
            params
                .subject_alt_names
                .push(SanType::URI(Ia5String::try_from(uri).unwrap()));
        }
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

/// A mutual TLS server: its certificates, the client CA (in `clients.pem`), and an unmapped client
/// certificate its typed clients present beside their bearer tokens.
struct Mtls {
    server: TestServer,
    first: Generation,
    clients: Ca,
}

impl Mtls {
    async fn start() -> Self {
        let first = generation();
        let clients = Ca::new();
        let db = TestDatabase::fresh().await;
        let server = Self::start_on(db, &first, &clients).await;
        Self {
            server,
            first,
            clients,
        }
    }

    /// A server on `db` (a fresh one, or a replica's handle sharing its directory).
    async fn start_on(db: TestDatabase, first: &Generation, clients: &Ca) -> TestServer {
        first.write_to(&db.dir);
        std::fs::write(db.dir.join("clients.pem"), clients.0.pem()).unwrap();
        let dir = db.dir.clone();
        let admin = with(first, &clients.issue("admin.internal", None));
        TestServer::start_tls(
            db,
            move |config| {
                config.tls_cert_file = Some(dir.join("tls.crt"));
                config.tls_key_file = Some(dir.join("tls.key"));
                config.tls_client_ca_file = Some(dir.join("clients.pem"));
            },
            admin,
        )
        .await
    }
}

fn with(first: &Generation, (cert, key): &(String, String)) -> ClientTlsConfig {
    first.client().identity(Identity::from_pem(cert, key))
}

/// An AuthorizationService client on a new connection presenting `identity`, with no bearer token.
async fn checks_as(
    server: &TestServer,
    identity: ClientTlsConfig,
) -> AuthorizationServiceClient<Channel> {
    let channel = Channel::from_shared(format!("https://{}", server.addr))
        .unwrap()
        .tls_config(identity)
        .unwrap()
        .connect()
        .await
        .unwrap();
    AuthorizationServiceClient::new(channel)
}

async fn map(
    server: &TestServer,
    org: &TestOrg,
    token: &str,
    uri: &str,
) -> Result<v1::ClientCertificateMapping, tonic::Status> {
    let request = v1::CreateClientCertificateMappingRequest {
        organization_id: org.id.clone(),
        name: "payments".into(),
        uri: uri.into(),
    };
    let reply = server
        .api_keys(token)
        .create_client_certificate_mapping(request)
        .await?;
    Ok(reply.into_inner().client_certificate_mapping.unwrap())
}

async fn unmap(
    server: &TestServer,
    org: &TestOrg,
    token: &str,
    id: &str,
) -> Result<v1::ClientCertificateMapping, tonic::Status> {
    let request = v1::DeleteClientCertificateMappingRequest {
        organization_id: org.id.clone(),
        client_certificate_mapping_id: id.into(),
    };
    let reply = server
        .api_keys(token)
        .delete_client_certificate_mapping(request)
        .await?;
    Ok(reply.into_inner().client_certificate_mapping.unwrap())
}

#[tokio::test]
async fn a_mapped_client_certificate_is_its_organizations_service_principal() {
    let Mtls {
        server,
        first,
        clients,
    } = Mtls::start().await;
    let acme = server.create_organization("Acme").await;
    let globex = server.create_organization("Globex").await;
    let uri = "spiffe://acme/payments";
    let mapping = map(&server, &acme, &acme.owner_token, uri).await.unwrap();
    assert_eq!(
        (mapping.uri.as_str(), mapping.organization_id.as_str()),
        (uri, acme.id.as_str())
    );

    // No API key, no bearer token: the certificate alone checks permissions in its organisation.
    let payments = clients.issue_uri(uri, None);
    let mut checks = checks_as(&server, with(&first, &payments)).await;
    let check = |org: &TestOrg, permission: &str| org.check(&org.owner_id, permission, "");
    let decision = checks.check_permission(check(&acme, "payments.read")).await;
    assert!(decision.unwrap().into_inner().allowed);
    let batch = v1::CheckPermissionsRequest {
        checks: vec![check(&acme, "payments.read"), check(&acme, "nope.nope")],
    };
    let error = checks.check_permissions(batch).await.unwrap_err();
    assert_eq!(
        error.code(),
        Code::InvalidArgument,
        "authenticated, then validated"
    );
    let effective = v1::ListEffectivePermissionsRequest {
        organization_id: acme.id.clone(),
        user_id: acme.owner_id.clone(),
        ..Default::default()
    };
    let effective = checks.list_effective_permissions(effective).await.unwrap();
    assert!(
        effective
            .into_inner()
            .permissions
            .contains(&"payments.read".to_owned())
    );
    // Only its own organisation, as with an API key.
    let error = checks
        .check_permission(check(&globex, "payments.read"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    // A service principal manages no credentials.
    let mut keys = v1::api_key_service_client::ApiKeyServiceClient::new(
        Channel::from_shared(format!("https://{}", server.addr))
            .unwrap()
            .tls_config(with(&first, &payments))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let list = v1::ListClientCertificateMappingsRequest {
        organization_id: acme.id.clone(),
        ..Default::default()
    };
    let error = keys
        .list_client_certificate_mappings(list.clone())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);

    // An unmapped certificate with no other credential authenticates nothing.
    let unmapped = clients.issue_uri("spiffe://acme/unmapped", None);
    let mut stranger = checks_as(&server, with(&first, &unmapped)).await;
    let error = stranger
        .check_permission(check(&acme, "payments.read"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated, "{error}");
    // The mapped URI in a certificate of another CA, or expired: the handshake refuses it.
    let forged = Ca::new().issue_uri(uri, None);
    assert!(tls_health(&server, with(&first, &forged)).await.is_err());
    let expired = clients.issue_uri(uri, Some((2021, 1, 1)));
    assert!(tls_health(&server, with(&first, &expired)).await.is_err());

    // A URI maps to one organisation only.
    let error = map(&server, &globex, &globex.owner_token, uri)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::AlreadyExists);
    let listed = server
        .api_keys(&acme.owner_token)
        .list_client_certificate_mappings(list)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.client_certificate_mappings,
        std::slice::from_ref(&mapping)
    );

    // Another organisation's mapping id is not found, and leaves the mapping in place.
    let error = unmap(&server, &globex, &globex.owner_token, &mapping.id)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    assert!(
        checks
            .check_permission(check(&acme, "payments.read"))
            .await
            .is_ok()
    );

    // Deleted: the certificate is refused from its next call; the audit log has both writes.
    let deleted = unmap(&server, &acme, &acme.owner_token, &mapping.id)
        .await
        .unwrap();
    assert_eq!(deleted.id, mapping.id);
    let error = checks
        .check_permission(check(&acme, "payments.read"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated);
    let audit = server
        .audit(&acme.owner_token)
        .list_audit_events(acme.list_audit_events())
        .await
        .unwrap()
        .into_inner();
    let actions: Vec<&str> = audit
        .events
        .iter()
        .map(|event| event.action.as_str())
        .collect();
    assert!(
        actions.contains(&"client_certificate.mapped")
            && actions.contains(&"client_certificate.unmapped"),
        "{actions:?}"
    );
    // A bearer token still wins over a mapped certificate (here: none mapped any more).
    assert!(
        server
            .decide(&acme, &acme.owner_id, "payments.read", "")
            .await
            .allowed
    );
}

#[tokio::test]
async fn mappings_need_developers_keys_write_and_a_well_formed_uri() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let role = server.create_role(&org, "Reader", &["payments.read"]).await;
    let reader = server
        .member(&org, "reader@example.com", vec![grant(&role, &[])])
        .await;
    let error = map(&server, &org, &reader.token, "spiffe://acme/payments")
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::PermissionDenied, "requires developers.keys.write")
    );
    let error = map(&server, &org, &org.api_key, "spiffe://acme/payments")
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Code::PermissionDenied,
        "an api key maps nothing"
    );
    for bad in ["", "payments", "spiffe://acme/pay ments", "spiffe:"] {
        let error = map(&server, &org, &org.owner_token, bad).await.unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{bad:?}");
        assert!(error.message().starts_with("uri: "), "{}", error.message());
    }
    let long = format!("spiffe://acme/{}", "a".repeat(3000));
    let error = map(&server, &org, &org.owner_token, &long)
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::InvalidArgument,
            "uri: must be at most 2048 characters"
        )
    );
    let error = unmap(&server, &org, &org.owner_token, "not-a-uuid")
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::InvalidArgument,
            "client_certificate_mapping_id: must be a UUID"
        )
    );
    let missing = uuid::Uuid::now_v7().to_string();
    let error = unmap(&server, &org, &org.owner_token, &missing)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
}

#[tokio::test]
async fn a_mapping_deleted_on_one_replica_is_refused_at_the_next_call_on_another() {
    let first = generation();
    let clients = Ca::new();
    let db = TestDatabase::fresh().await;
    let replica_db = db.replica();
    let writer = Mtls::start_on(db, &first, &clients).await;
    let reader = Mtls::start_on(replica_db, &first, &clients).await;
    let org = writer.create_organization("Acme").await;
    let uri = "spiffe://acme/billing";
    let mapping = map(&writer, &org, &org.owner_token, uri).await.unwrap();
    let mut checks = checks_as(&reader, with(&first, &clients.issue_uri(uri, None))).await;
    let check = || org.check(&org.owner_id, "payments.read", "");
    for _ in 0..3 {
        let decision = checks.check_permission(check()).await.unwrap();
        assert!(decision.into_inner().allowed, "warm on the reader");
    }
    unmap(&writer, &org, &org.owner_token, &mapping.id)
        .await
        .unwrap();
    let error = checks.check_permission(check()).await.unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_rotated_client_ca_is_picked_up_and_one_that_does_not_load_keeps_the_previous() {
    let Mtls {
        server,
        first,
        clients,
    } = Mtls::start().await;
    let old = clients.issue("billing.internal", None);
    let next = Ca::new();
    let new = next.issue("billing.internal", None);
    let ca_file = server.db.dir.join("clients.pem");
    std::fs::write(&ca_file, next.0.pem()).unwrap();
    // Within the second the file is not looked at.
    assert!(tls_health(&server, with(&first, &old)).await.is_ok());
    server.advance(Duration::from_secs(1));
    assert_eq!(
        tls_health(&server, with(&first, &new)).await.unwrap(),
        ServingStatus::Serving
    );
    assert!(tls_health(&server, with(&first, &old)).await.is_err());

    // A file that does not load (half-written, empty) keeps the CA loaded last.
    std::fs::write(&ca_file, "-----BEGIN CERTIFICATE-----\nnot base64").unwrap();
    server.advance(Duration::from_secs(1));
    assert!(tls_health(&server, with(&first, &new)).await.is_ok());
    std::fs::write(&ca_file, "").unwrap();
    server.advance(Duration::from_secs(1));
    assert!(tls_health(&server, with(&first, &new)).await.is_ok());
    assert!(tls_health(&server, with(&first, &old)).await.is_err());
}
