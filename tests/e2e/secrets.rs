//! No secret reaches the logs: every log line of a full session is captured at debug level, as
//! text and as JSON lines, and searched for every password, token and key that session handled.
use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use tracing_subscriber::{EnvFilter, Registry, layer::SubscriberExt as _};
use warden_proto::v1;
use warden_server::{config::LogFormat, telemetry};
use warden_tests::{ANONYMOUS, OPERATOR_TOKEN, PASSWORD, TestServer, accept, grant};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs a full session with the server's own log layer writing `format` into a buffer, and
/// asserts that no secret of the session is in it; returns the logs.
async fn session_logs_hold_no_secret(format: LogFormat) -> String {
    let captured = Captured::default();
    let writer = captured.clone();
    let layer = telemetry::log_layer(format, EnvFilter::new("debug"), move || writer.clone());
    // Each test runs in its own process under nextest, so this subscriber sees only this test.
    tracing::subscriber::set_global_default(Registry::default().with(layer))
        .expect("the only subscriber in this process");

    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let session = server.sign_in(&org.owner_email, PASSWORD).await;
    let reader = vec![grant("read_only", &[])];
    server
        .invite(&org, &org.owner_token, "alan@example.com", reader)
        .await;
    let invitation = server.invitation_token("alan@example.com").await;
    let accepted = accept(&invitation, "alan's own long passphrase");
    server
        .users(ANONYMOUS)
        .accept_invitation(accepted)
        .await
        .unwrap();
    server
        .sign_in_error("alan@example.com", "a wrong guess of a password")
        .await;
    let refresh = v1::RefreshSessionRequest {
        refresh_token: session.refresh_token.clone(),
    };
    let refreshed = server.auth(ANONYMOUS).refresh_session(refresh).await;
    let refreshed = refreshed.unwrap().into_inner();
    server
        .decide(&org, &org.owner_id, "payments.read", "")
        .await;
    server.pending_notifications().await;
    server.stop().await; // Every request has finished and the server has shut down: all is logged.

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("signed in") && logs.contains("user invited"),
        "the capture works: {} bytes",
        logs.len()
    );
    let secrets = [
        PASSWORD,
        "alan's own long passphrase",
        "a wrong guess of a password",
        OPERATOR_TOKEN,
        org.api_key.as_str(),
        org.owner_token.as_str(),
        session.access_token.as_str(),
        session.refresh_token.as_str(),
        refreshed.refresh_token.as_str(),
        invitation.as_str(),
        "$argon2id$",
    ];
    for secret in secrets {
        assert!(!logs.contains(secret), "a secret was logged: {secret:.12}…");
    }
    logs
}

#[tokio::test]
async fn no_password_token_or_key_is_ever_logged() {
    let logs = session_logs_hold_no_secret(LogFormat::Text).await;
    let signed_in = logs
        .lines()
        .find(|line| line.contains("signed in"))
        .unwrap();
    assert!(
        signed_in.contains("rpc{") && signed_in.contains("request_id="),
        "a line of a request names it: {signed_in}"
    );
}

#[tokio::test]
async fn json_lines_hold_no_secret_and_name_their_request() {
    let logs = session_logs_hold_no_secret(LogFormat::Json).await;
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).expect("every line is one JSON object"))
        .collect();
    let signed_in = lines
        .iter()
        .find(|line| line["fields"]["message"] == "signed in")
        .expect("the sign-in is logged");
    let rpc = &signed_in["spans"][0];
    assert_eq!(rpc["name"], "rpc", "{signed_in}");
    assert_eq!(rpc["rpc.method"], "warden.v1.AuthService/SignIn");
    assert_eq!(rpc["request_id"].as_str().map(str::len), Some(32));
}
