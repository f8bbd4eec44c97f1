//! The `warden` binary itself: it starts from the environment, logs JSON lines when asked, and
//! exits 0 on SIGTERM after a clean shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
};

#[test]
fn sigterm_stops_the_server_cleanly_with_exit_code_zero() {
    let dir = std::env::temp_dir().join(format!("warden-bin-{}", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .env_clear()
        .env("WARDEN_LISTEN_ADDR", "127.0.0.1:0")
        .env("WARDEN_DATA_DIR", &dir)
        .env("WARDEN_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    // Waits for the line that says the listener is up, not for a time.
    for line in lines.by_ref() {
        let line = line.unwrap();
        let json: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        let serving = json["fields"]["message"] == "warden serving";
        seen.push(json);
        if serving {
            break;
        }
    }
    assert!(
        seen.iter()
            .any(|line| line["fields"]["message"] == "warden serving"),
        "never served: {seen:?}"
    );
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let rest: Vec<serde_json::Value> = lines
        .map(|line| serde_json::from_str(&line.unwrap()).expect("a JSON line"))
        .collect();
    let status = child.wait().unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(status.success(), "exit status {status}: {rest:?}");
    assert!(
        rest.iter()
            .any(|line| line["fields"]["message"] == "warden stopped"),
        "{rest:?}"
    );
}
