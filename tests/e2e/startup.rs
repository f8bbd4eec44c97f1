//! What the server refuses or protects before its first RPC: weak operator tokens, and the files
//! of the embedded default.
use std::os::unix::fs::PermissionsExt as _;

use warden_server::config::Secret;
use warden_tests::{TestDatabase, TestServer};

#[tokio::test]
async fn an_operator_token_under_32_characters_stops_the_start() {
    let db = TestDatabase::fresh().await;
    let refused = TestServer::try_start_with(db, |config| {
        config.operator_token = Some(Secret("x".repeat(31)));
    })
    .await
    .err()
    .expect("a 31-character operator token is refused");
    assert!(
        refused.contains("operator_token: must be at least 32 characters"),
        "{refused}"
    );
}

#[tokio::test]
async fn the_embedded_database_and_its_directory_are_private() {
    let db = TestDatabase::fresh().await;
    let data_dir = db.dir.join("embedded");
    let server = TestServer::start_with(db, {
        let data_dir = data_dir.clone();
        move |config| {
            config.database_url = None; // The embedded default: SQLite under the data directory.
            config.operator_token = None;
            config.secret_key = None;
            config.data_dir = data_dir;
        }
    })
    .await;
    let mode = |name: &str| {
        std::fs::metadata(data_dir.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(""), 0o700, "the data directory");
    for file in ["warden.db", "operator-token", "secret-key"] {
        assert_eq!(mode(file), 0o600, "{file}");
    }
    drop(server);
}
