//! The shared second level of the subject cache (Redis): a batch asks it once, a cold replica finds
//! what another loaded, and no Redis fault (paused, killed, restarted empty, flushed, restored from
//! an older snapshot) changes an answer or holds a check past a bounded time (SPEC §5).
use std::time::{Duration, Instant};

use warden_proto::v1;
use warden_tests::{TestOrg, TestRedis, TestServer, grant};

async fn pair(redis_url: &str) -> (TestServer, TestServer) {
    TestServer::replicas(|config| config.redis_url = Some(redis_url.to_owned())).await
}

async fn invitees(server: &TestServer, org: &TestOrg, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..count {
        let user = server
            .invite(
                org,
                &org.owner_token,
                &format!("user{n}@example.com"),
                vec![grant("read_only", &[])],
            )
            .await;
        ids.push(user.id);
    }
    ids
}

fn batch(org: &TestOrg, users: &[String]) -> v1::CheckPermissionsRequest {
    v1::CheckPermissionsRequest {
        checks: users
            .iter()
            .map(|user| org.check(user, "payments.read", ""))
            .collect(),
    }
}

#[tokio::test]
async fn a_batch_asks_redis_once_and_a_cold_replica_finds_what_another_loaded() {
    let redis = TestRedis::start();
    let (writer, reader) = pair(&redis.url()).await;
    let org = writer.create_organization("Acme").await;
    let users = invitees(&writer, &org, 12).await;

    let before = redis.calls("mget");
    let first = writer
        .authorization(&org.api_key)
        .check_permissions(batch(&org, &users))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        redis.calls("mget") - before,
        1,
        "one round trip for 12 users"
    );
    // What the writer loaded is kept in Redis (off the check's path: wait for it).
    let deadline = Instant::now() + Duration::from_secs(5);
    while redis.cli(&["DBSIZE"]).parse::<usize>().unwrap_or(0) < users.len() {
        assert!(Instant::now() < deadline, "subjects never reached redis");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let keys = redis.cli(&["KEYS", "warden:*"]);
    assert!(
        keys.lines()
            .all(|key| key.starts_with(&format!("warden:{{{}}}:subject:", org.id)))
    );

    let (before, hits) = (redis.calls("mget"), redis.hits());
    let second = reader
        .authorization(&org.api_key)
        .check_permissions(batch(&org, &users))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(redis.calls("mget") - before, 1);
    assert_eq!(redis.hits() - hits, 12, "every subject found in redis");
    assert_eq!(
        first.results, second.results,
        "the cold replica answers the same"
    );
}

#[tokio::test]
async fn no_redis_fault_changes_an_answer_or_holds_a_check() {
    let mut redis = TestRedis::start();
    let (writer, reader) = pair(&redis.url()).await;
    let org = writer.create_organization("Acme").await;
    let role = writer
        .create_role(&org, "Refunder", &["payments.read", "payments.refund"])
        .await;
    let alan = writer
        .member(&org, "alan@example.com", vec![grant(&role, &[])])
        .await;
    let mut refunds = true;
    let mut flip = async || {
        refunds = !refunds;
        let permissions: &[&str] = if refunds {
            &["payments.read", "payments.refund"]
        } else {
            &["payments.read"]
        };
        // Writes never fail because of Redis.
        writer.set_role_permissions(&org, &role, permissions).await;
        refunds
    };
    let answer = async || {
        let started = Instant::now();
        let allowed = reader
            .decide(&org, &alan.id, "payments.refund", "")
            .await
            .allowed;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "a check waited on redis"
        );
        allowed
    };
    assert!(answer().await, "warm");

    let slow = redis.slow(Duration::from_secs(2));
    for _ in 0..3 {
        let expected = flip().await;
        assert_eq!(answer().await, expected, "redis slow");
    }
    slow.join().expect("the slow thread");

    redis.pause();
    let expected = flip().await;
    assert_eq!(answer().await, expected, "redis paused");
    redis.resume();

    redis.cli(&["SAVE"]); // The snapshot restored below holds entries of this revision.
    let expected = flip().await;
    assert_eq!(answer().await, expected, "after the snapshot");

    redis.kill();
    let expected = flip().await;
    assert_eq!(answer().await, expected, "redis killed");

    redis.restart(); // From the older snapshot.
    let expected = flip().await;
    assert_eq!(
        answer().await,
        expected,
        "redis restored from an older snapshot"
    );

    redis.cli(&["FLUSHALL"]);
    let expected = flip().await;
    assert_eq!(answer().await, expected, "redis flushed");
    tokio::time::sleep(Duration::from_millis(1100)).await; // The breaker closes again.
    let expected = flip().await;
    assert_eq!(answer().await, expected, "redis back");
}

/// On a Redis Cluster (CI starts a 3-node one and names its nodes in
/// `WARDEN_TEST_REDIS_CLUSTER_URL`): the same code, an organisation's keys in one slot.
#[tokio::test]
async fn a_redis_cluster_serves_batches_and_answers_stay_right() {
    let Some(url) = std::env::var("WARDEN_TEST_REDIS_CLUSTER_URL")
        .ok()
        .filter(|url| !url.is_empty())
    else {
        eprintln!("WARDEN_TEST_REDIS_CLUSTER_URL is not set: not run against a Redis Cluster");
        return;
    };
    let (writer, reader) = pair(&url).await;
    let org = writer.create_organization("Acme").await;
    let mut users = invitees(&writer, &org, 8).await;
    users.push(org.owner_id.clone());
    let first = writer
        .authorization(&org.api_key)
        .check_permissions(batch(&org, &users))
        .await
        .unwrap()
        .into_inner();
    let ports: Vec<String> = url
        .split(',')
        .filter_map(|node| node.trim().rsplit(':').next().map(str::to_owned))
        .collect();
    let keys_of_org = || {
        ports
            .iter()
            .map(|port| {
                let output = std::process::Command::new("redis-cli")
                    .args(["-p", port, "KEYS", &format!("warden:{{{}}}:*", org.id)])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&output.stdout)
                    .lines()
                    .filter(|line| !line.is_empty())
                    .count()
            })
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while keys_of_org().iter().sum::<usize>() < users.len() {
        assert!(
            Instant::now() < deadline,
            "subjects never reached the cluster"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        keys_of_org().iter().filter(|count| **count > 0).count(),
        1,
        "one slot, so one node, holds the organisation's keys"
    );
    let second = reader
        .authorization(&org.api_key)
        .check_permissions(batch(&org, &users))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.results, second.results);
    let allowed: Vec<bool> = first.results.iter().map(|result| result.allowed).collect();
    assert_eq!(
        allowed,
        [vec![false; 8], vec![true]].concat(),
        "invitees are pending; the owner holds all"
    );
}
