//! Reflection (v1 and v1alpha) and health: what grpcurl and generated clients start from.
use tokio_stream::StreamExt as _;
use tonic_reflection::pb::{v1, v1alpha};
use warden_tests::TestServer;

const EXPECTED: [&str; 11] = [
    "grpc.health.v1.Health",
    "warden.v1.ApiKeyService",
    "warden.v1.AuditService",
    "warden.v1.AuthService",
    "warden.v1.AuthorizationService",
    "warden.v1.GroupService",
    "warden.v1.NotificationService",
    "warden.v1.OrganizationService",
    "warden.v1.RoleService",
    "warden.v1.UserService",
    "grpc.reflection.v1.ServerReflection",
];

#[tokio::test]
async fn both_reflection_versions_list_every_service() {
    let server = TestServer::start().await;
    let mut client =
        v1::server_reflection_client::ServerReflectionClient::new(server.channel.clone());
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut replies = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        replies.next().await.unwrap().unwrap().message_response
    else {
        panic!("not a service list");
    };
    let names: Vec<String> = list
        .service
        .into_iter()
        .map(|service| service.name)
        .collect();
    for name in EXPECTED {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from {names:?}"
        );
    }

    let mut client =
        v1alpha::server_reflection_client::ServerReflectionClient::new(server.channel.clone());
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                "warden.v1.AuthorizationService".into(),
            ),
        ),
    };
    let mut replies = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(files)) =
        replies.next().await.unwrap().unwrap().message_response
    else {
        panic!("not a file descriptor");
    };
    assert!(!files.file_descriptor_proto.is_empty());
}
