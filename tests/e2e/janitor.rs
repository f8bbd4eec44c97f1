//! The janitor: rows that stopped mattering (idle throttles, ended sessions and their spent refresh
//! tokens, expired resets, acknowledged notifications) are purged in the background, and live ones
//! stay.
use std::time::Duration;

use warden_proto::v1;
use warden_tests::{ANONYMOUS, OPERATOR_TOKEN, PASSWORD, TestDatabase, TestServer, grant};

#[tokio::test]
async fn rows_that_stopped_mattering_a_day_ago_are_purged_and_live_ones_stay() {
    let db = TestDatabase::fresh().await;
    let server = TestServer::start_with(db, |config| config.janitor_interval_ms = 50).await;
    let org = server.create_organization("Acme").await;
    let reader = vec![grant("read_only", &[])];
    server
        .invite(&org, &org.owner_token, "pending@example.com", reader)
        .await;

    // A failed attempt (throttle rows), a refreshed then ended session (a spent refresh token), a
    // reset request (a reset row and an acknowledged notification).
    server
        .sign_in_error(&org.owner_email, "not the password at all")
        .await;
    let session = server.sign_in(&org.owner_email, PASSWORD).await;
    let refreshed = server
        .auth(ANONYMOUS)
        .refresh_session(v1::RefreshSessionRequest {
            refresh_token: session.refresh_token,
        })
        .await
        .unwrap()
        .into_inner();
    server
        .auth(&refreshed.access_token)
        .sign_out(v1::SignOutRequest {})
        .await
        .unwrap();
    server
        .auth(ANONYMOUS)
        .request_password_reset(v1::RequestPasswordResetRequest {
            email: org.owner_email.clone(),
        })
        .await
        .unwrap();
    let mut reset = None;
    for _ in 0..100 {
        // The reset is written behind the answer, so that the answer says nothing about the email.
        reset = server
            .pending_notifications()
            .await
            .into_iter()
            .find(|n| n.kind() == v1::NotificationKind::PasswordReset);
        if reset.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reset = reset.expect("the reset was queued");
    server
        .notifications(OPERATOR_TOKEN)
        .acknowledge_notifications(v1::AcknowledgeNotificationsRequest {
            ids: vec![reset.id],
        })
        .await
        .unwrap();
    let tables = [
        "throttles",
        "spent_refresh_tokens",
        "password_resets",
        "notifications WHERE acknowledged_at IS NOT NULL",
    ];
    for table in tables {
        assert!(
            server.db.count(table).await > 0,
            "{table} has rows to purge"
        );
    }
    let sessions = server.db.count("sessions").await;

    // Nothing is old enough yet; a day and a bit later everything above is.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(server.db.count("throttles").await > 0, "kept for a day");
    server.advance(Duration::from_secs(26 * 3600)); // The reset expired an hour after it was asked for.
    for _ in 0..100 {
        let mut left = 0;
        for table in tables {
            left += server.db.count(table).await;
        }
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for table in tables {
        assert_eq!(server.db.count(table).await, 0, "{table} purged");
    }
    assert_eq!(
        server.db.count("sessions").await,
        sessions - 1,
        "only the ended session went; the owner's first one is live for 30 days"
    );
    assert_eq!(
        server
            .db
            .count("notifications WHERE acknowledged_at IS NULL")
            .await,
        1,
        "the pending invitation stays"
    );
}
