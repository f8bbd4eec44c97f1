//! `warden-load`: measures CheckPermission against the health check of the same running server, in
//! one run, so the ratio holds on a shared, noisy machine (README "Performance"). It creates its own
//! organisation with the operator token, then alternates short rounds of each workload with the
//! same connections and concurrency, and prints one Markdown row per workload.
//!
//! `warden-load <address> <operator token> [seconds per workload] [connections] [streams each]`
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::Mutex;
use tonic::{Request, metadata::MetadataValue, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use warden_proto::v1::{
    self, api_key_service_client::ApiKeyServiceClient, auth_service_client::AuthServiceClient,
    authorization_service_client::AuthorizationServiceClient,
    organization_service_client::OrganizationServiceClient,
};

const PASSWORD: &str = "load generator passphrase, long enough";
/// Each workload runs in rounds this long, alternating, so both see the same machine.
const ROUND: Duration = Duration::from_secs(2);

type Failure = Box<dyn std::error::Error>;

fn bearer<T>(token: &str, message: T) -> Result<Request<T>, Failure> {
    let mut request = Request::new(message);
    let value = MetadataValue::try_from(format!("Bearer {token}"))?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

/// A fresh organisation and an API key for it; returns (organisation id, owner id, API key).
async fn setup(channel: Channel, operator: &str) -> Result<(String, String, String), Failure> {
    let email = format!("load-{}@example.com", uuid::Uuid::new_v4().simple());
    let created = OrganizationServiceClient::new(channel.clone())
        .create_organization(bearer(
            operator,
            v1::CreateOrganizationRequest {
                name: "Load".into(),
                owner_email: email.clone(),
                owner_first_name: "Load".into(),
                owner_last_name: "Generator".into(),
                owner_password: PASSWORD.into(),
            },
        )?)
        .await?
        .into_inner();
    let organization = created.organization.ok_or("no organization")?.id;
    let owner = created.owner.ok_or("no owner")?.id;
    let access = AuthServiceClient::new(channel.clone())
        .sign_in(v1::SignInRequest {
            email,
            password: PASSWORD.into(),
        })
        .await?
        .into_inner()
        .access_token;
    let key = ApiKeyServiceClient::new(channel)
        .create_api_key(bearer(
            &access,
            v1::CreateApiKeyRequest {
                organization_id: organization.clone(),
                name: "load".into(),
            },
        )?)
        .await?
        .into_inner()
        .secret;
    Ok((organization, owner, key))
}

#[derive(Clone, Copy, PartialEq)]
enum Workload {
    Health,
    Check,
}

#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: u64,
    busy: Duration,
}

async fn round(
    channels: &[Channel],
    streams: usize,
    workload: Workload,
    check: &v1::CheckPermissionRequest,
    key: &str,
    tally: &Arc<Mutex<Tally>>,
) -> Result<(), Failure> {
    let deadline = Instant::now() + ROUND;
    let mut tasks = vec![];
    for channel in channels {
        for _ in 0..streams {
            let (channel, check, tally) = (channel.clone(), check.clone(), tally.clone());
            let token = MetadataValue::try_from(format!("Bearer {key}"))?;
            tasks.push(tokio::spawn(async move {
                let mut health = HealthClient::new(channel.clone());
                let mut checks = AuthorizationServiceClient::new(channel);
                let mut mine = Tally::default();
                while Instant::now() < deadline {
                    let started = Instant::now();
                    let ok = match workload {
                        Workload::Health => health
                            .check(HealthCheckRequest {
                                service: String::new(),
                            })
                            .await
                            .is_ok(),
                        Workload::Check => {
                            let mut request = Request::new(check.clone());
                            request
                                .metadata_mut()
                                .insert("authorization", token.clone());
                            checks
                                .check_permission(request)
                                .await
                                .is_ok_and(|reply| reply.into_inner().allowed)
                        }
                    };
                    mine.latencies.push(started.elapsed());
                    mine.errors += u64::from(!ok);
                }
                let mut all = tally.lock().await;
                all.latencies.extend(mine.latencies);
                all.errors += mine.errors;
            }));
        }
    }
    for task in tasks {
        task.await?;
    }
    tally.lock().await.busy += ROUND;
    Ok(())
}

fn row(name: &str, tally: &mut Tally) -> (f64, String) {
    tally.latencies.sort();
    let count = tally.latencies.len();
    let at = |q: f64| {
        tally
            .latencies
            .get(((count as f64 * q) as usize).min(count.saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let rate = count as f64 / tally.busy.as_secs_f64();
    let line = format!(
        "| {name} | {rate:.0} | {:.2} | {:.2} | {} |",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        tally.errors
    );
    (rate, line)
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: warden-load <address> <operator token> [seconds] [connections] [streams]";
    let address = args.get(1).ok_or(usage)?;
    let operator = args.get(2).ok_or(usage)?;
    let seconds: u64 = args.get(3).map_or(Ok(20), |s| s.parse())?;
    let connections: usize = args.get(4).map_or(Ok(8), |s| s.parse())?;
    let streams: usize = args.get(5).map_or(Ok(16), |s| s.parse())?;
    let endpoint = Channel::from_shared(format!("http://{address}"))?;
    let mut channels = vec![];
    for _ in 0..connections {
        channels.push(endpoint.connect().await?);
    }
    let (organization, owner, key) = setup(channels[0].clone(), operator).await?;
    let check = v1::CheckPermissionRequest {
        organization_id: organization,
        user_id: owner,
        permission: "payments.refund".into(),
        ..Default::default()
    };
    let (health, checks) = (Arc::default(), Arc::default());
    for _ in 0..seconds.div_ceil(ROUND.as_secs()).max(1) {
        round(&channels, streams, Workload::Health, &check, &key, &health).await?;
        round(&channels, streams, Workload::Check, &check, &key, &checks).await?;
    }
    let (health_rate, health_row) = row("grpc.health.v1 Check", &mut *health.lock().await);
    let (check_rate, check_row) = row("CheckPermission", &mut *checks.lock().await);
    println!("{connections} connections x {streams} streams, {seconds} s of each workload");
    println!("| workload | calls/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---|---|---|");
    println!("{health_row}");
    println!("{check_row}");
    println!("check/health: {:.3}", check_rate / health_rate);
    Ok(())
}
