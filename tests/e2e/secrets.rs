//! No secret reaches the logs: every log line of a full session is captured at debug level and
//! searched for every password, token and key that session handled.
use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use warden_proto::v1;
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

#[tokio::test]
async fn no_password_token_or_key_is_ever_logged() {
    let captured = Captured::default();
    let writer = captured.clone();
    // Each test runs in its own process under nextest, so this subscriber sees only this test.
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber)
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
}
