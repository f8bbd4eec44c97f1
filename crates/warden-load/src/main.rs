//! `warden-load`: measures CheckPermission against the health check of the same running server, in
//! one run, so the ratio holds on a shared, noisy machine (README "Performance"). It creates its own
//! organisation with the operator token, then alternates short rounds of each workload with the
//! same connections and concurrency, and prints one Markdown row per workload.
//!
//! `warden-load <address> <operator token> [seconds per workload] [connections] [streams each]
//!  [users, e.g. 1000,1000000] [chart.svg]`
//!
//! With `WARDEN_LOAD_HTTP=<host:port>` (the server's `WARDEN_HTTP_ADDR`), a third workload asks the
//! same question through AuthZEN's `POST /access/v1/evaluation`, with as many concurrent callers
//! (HTTP/1.1 keep-alive connections, one per caller), in the same alternating rounds.
//!
//! With a list of user counts (and `DATABASE_URL` naming the server's PostgreSQL database), it
//! seeds one organisation per count with that many active users holding the read-only role,
//! straight into the database (seeding a million through the API would take hours), lets the
//! database settle, checks each of them once, then measures every organisation in the same
//! alternating rounds (a check asks `payments.read` for a user picked at random among the
//! organisation's), and draws throughput and p99 against users as an SVG chart.
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::Mutex;
use tonic::{Request, metadata::MetadataValue, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use warden_proto::v1::{
    self, api_key_service_client::ApiKeyServiceClient, auth_service_client::AuthServiceClient,
    authorization_service_client::AuthorizationServiceClient, consistency::Requirement,
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
    /// CheckPermission with `minimize_latency`: the replica's copy of the revisions, unleased.
    CheckMinimizeLatency,
    Evaluation,
}

#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: u64,
    busy: Duration,
}

#[allow(
    clippy::too_many_arguments,
    reason = "one round's whole setting, passed as is"
)]
async fn round(
    channels: &[Channel],
    streams: usize,
    workload: Workload,
    check: &v1::CheckPermissionRequest,
    users: &Arc<Vec<String>>,
    key: &str,
    http: &Option<(reqwest::Client, String)>,
    tally: &Arc<Mutex<Tally>>,
) -> Result<(), Failure> {
    let deadline = Instant::now() + ROUND;
    let mut tasks = vec![];
    for channel in channels {
        for _ in 0..streams {
            let (channel, check, tally) = (channel.clone(), check.clone(), tally.clone());
            let users = users.clone();
            // A cheap per-task sequence (no RNG crate): an odd stride through the users.
            let mut next = uuid::Uuid::new_v4().as_u128() as usize;
            let token = MetadataValue::try_from(format!("Bearer {key}"))?;
            let (http, bearer) = (http.clone(), format!("Bearer {key}"));
            tasks.push(tokio::spawn(async move {
                let mut health = HealthClient::new(channel.clone());
                let mut checks = AuthorizationServiceClient::new(channel);
                let mut mine = Tally::default();
                while Instant::now() < deadline {
                    let started = Instant::now();
                    let mut check = check.clone();
                    if !users.is_empty() {
                        next = next.wrapping_add(0x9E37_79B9_7F4A_7C15);
                        check.user_id = users[next % users.len()].clone();
                    }
                    let ok = match workload {
                        Workload::Health => health
                            .check(HealthCheckRequest {
                                service: String::new(),
                            })
                            .await
                            .is_ok(),
                        Workload::Check | Workload::CheckMinimizeLatency => {
                            if workload == Workload::CheckMinimizeLatency {
                                check.consistency = Some(v1::Consistency {
                                    requirement: Some(Requirement::MinimizeLatency(true)),
                                });
                            }
                            let mut request = Request::new(check);
                            request
                                .metadata_mut()
                                .insert("authorization", token.clone());
                            checks
                                .check_permission(request)
                                .await
                                .is_ok_and(|reply| reply.into_inner().allowed)
                        }
                        Workload::Evaluation => match &http {
                            Some((client, url)) => evaluate(client, url, &bearer, &check).await,
                            None => false,
                        },
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

/// Checks every seeded user once, in `CheckPermissions` batches of 1,000 spread over the
/// connections, so the rounds measure a server whose caches hold them all (the steady state of a
/// service whose users check often); the time it takes is the cold path, printed apart.
async fn warm(
    channels: &[Channel],
    check: &v1::CheckPermissionRequest,
    users: &Arc<Vec<String>>,
    key: &str,
) -> Result<(), Failure> {
    if users.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let token = MetadataValue::try_from(format!("Bearer {key}"))?;
    let batches: Vec<Vec<String>> = users.chunks(1000).map(<[String]>::to_vec).collect();
    let batches = Arc::new(std::sync::Mutex::new(batches));
    let mut tasks = vec![];
    for channel in channels {
        let (batches, check, token) = (batches.clone(), check.clone(), token.clone());
        let mut checks = AuthorizationServiceClient::new(channel.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(batch) = batches.lock().map_err(|_| "poisoned")?.pop() else {
                    return Ok::<_, String>(());
                };
                let checks_of_batch = batch
                    .into_iter()
                    .map(|user_id| v1::CheckPermissionRequest {
                        user_id,
                        ..check.clone()
                    })
                    .collect();
                let mut request = Request::new(v1::CheckPermissionsRequest {
                    checks: checks_of_batch,
                });
                request
                    .metadata_mut()
                    .insert("authorization", token.clone());
                checks
                    .check_permissions(request)
                    .await
                    .map_err(|status| status.to_string())?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "warmed {} users with CheckPermissions in {seconds:.1} s ({:.0} users/s cold)",
        users.len(),
        users.len() as f64 / seconds
    );
    Ok(())
}

/// The AuthZEN evaluation of `check`; true when it answered `"decision": true`.
async fn evaluate(
    client: &reqwest::Client,
    url: &str,
    bearer: &str,
    check: &v1::CheckPermissionRequest,
) -> bool {
    let body = format!(
        r#"{{"subject":{{"type":"user","id":"{}"}},"action":{{"name":"{}"}},"resource":{{"type":"organization","id":"{}"}}}}"#,
        check.user_id, check.permission, check.organization_id
    );
    let sent = client
        .post(url)
        .header("authorization", bearer)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    match sent {
        Ok(response) if response.status().is_success() => response
            .bytes()
            .await
            .is_ok_and(|body| body.starts_with(br#"{"decision":true"#)),
        _ => false,
    }
}

/// Calls/s and p99 (ms) of one workload, and its Markdown row.
fn row(name: &str, tally: &mut Tally) -> (f64, f64, String) {
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
    let p99 = at(0.99).as_secs_f64() * 1e3;
    let line = format!(
        "| {name} | {rate:.0} | {:.2} | {p99:.2} | {:.2} | {} |",
        at(0.5).as_secs_f64() * 1e3,
        at(0.999).as_secs_f64() * 1e3,
        tally.errors
    );
    (rate, p99, line)
}

/// Adds active read-only users to `organization` until it has `count` besides its owner, straight
/// into PostgreSQL; returns all their ids.
async fn seed(
    database: &sea_orm::DatabaseConnection,
    organization: &str,
    count: usize,
) -> Result<Vec<String>, Failure> {
    use sea_orm::{ConnectionTrait, Statement, Value};
    let backend = database.get_database_backend();
    let ids = |rows: Vec<sea_orm::QueryResult>| -> Result<Vec<String>, Failure> {
        Ok(rows
            .iter()
            .map(|row| row.try_get::<String>("", "id"))
            .collect::<Result<_, _>>()?)
    };
    let existing = ids(database
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            "SELECT id FROM users WHERE organization_id = $1 AND owner_of IS NULL",
            [Value::from(organization)],
        ))
        .await?)?;
    if existing.len() < count {
        let started = Instant::now();
        database
            .execute_raw(Statement::from_sql_and_values(
                backend,
                "INSERT INTO users (id, organization_id, email, first_name, last_name, status, \
                 created_at) SELECT gen_random_uuid()::text, $1, \
                 'load-' || replace(gen_random_uuid()::text, '-', '') || '@example.com', \
                 'Load', 'User', 'active', now() FROM generate_series(1, $2)",
                [
                    Value::from(organization),
                    Value::from(i64::try_from(count - existing.len())?),
                ],
            ))
            .await?;
        database
            .execute_raw(Statement::from_sql_and_values(
                backend,
                "INSERT INTO user_grants (id, organization_id, user_id, role_id) \
                 SELECT gen_random_uuid()::text, u.organization_id, u.id, 'read_only' FROM users u \
                 WHERE u.organization_id = $1 AND u.owner_of IS NULL AND NOT EXISTS \
                 (SELECT 1 FROM user_grants g WHERE g.user_id = u.id)",
                [Value::from(organization)],
            ))
            .await?;
        eprintln!(
            "seeded {} users in {:.1} s",
            count - existing.len(),
            started.elapsed().as_secs_f64()
        );
    }
    ids(database
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            "SELECT id FROM users WHERE organization_id = $1 AND owner_of IS NULL",
            [Value::from(organization)],
        ))
        .await?)
}

/// One run's figures at one number of users.
struct Point {
    users: usize,
    health: (f64, f64),
    check: (f64, f64),
}

/// Throughput and p99 of both workloads against users (log scale), as an SVG file.
fn chart(path: &str, points: &[Point]) -> Result<(), Failure> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(450);
    let users = |point: &Point| point.users as f64;
    let max_users = points.iter().map(users).fold(10.0, f64::max) * 2.0;
    let min_users = points.iter().map(users).fold(f64::MAX, f64::min) / 2.0;
    type Pick = fn(&(f64, f64)) -> f64;
    let panels: [(_, &str, Pick); 2] = [
        (&left, "calls/s", |figures| figures.0),
        (&right, "p99 ms", |figures| figures.1),
    ];
    for (area, label, pick) in panels {
        let top = points
            .iter()
            .flat_map(|point| [pick(&point.health), pick(&point.check)])
            .fold(1.0, f64::max)
            * 1.2;
        let mut plot = ChartBuilder::on(area)
            .caption(format!("{label} against users"), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d((min_users..max_users).log_scale(), 0.0..top)?;
        plot.configure_mesh().x_desc("users").y_desc(label).draw()?;
        for (name, color, figures) in [
            (
                "health check",
                &BLUE,
                (|point: &Point| point.health) as fn(&Point) -> (f64, f64),
            ),
            ("CheckPermission", &RED, |point: &Point| point.check),
        ] {
            plot.draw_series(LineSeries::new(
                points
                    .iter()
                    .map(|point| (users(point), pick(&figures(point)))),
                color,
            ))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
            plot.draw_series(points.iter().map(|point| {
                Circle::new((users(point), pick(&figures(point))), 3, color.filled())
            }))?;
        }
        plot.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// One number of users under test: its own organisation, key and users, and its tallies.
struct Population {
    size: usize,
    check: v1::CheckPermissionRequest,
    users: Arc<Vec<String>>,
    key: String,
    checks: Arc<Mutex<Tally>>,
    latency: Arc<Mutex<Tally>>,
    evaluations: Arc<Mutex<Tally>>,
}

/// After a large seed PostgreSQL would vacuum, analyse and checkpoint while the rounds run (on
/// this shared machine, beside the server): done now, so every population meets a settled database.
async fn settle(database: &sea_orm::DatabaseConnection) {
    use sea_orm::ConnectionTrait;
    for statement in [
        "VACUUM ANALYZE users",
        "VACUUM ANALYZE user_grants",
        "CHECKPOINT",
    ] {
        if let Err(error) = database.execute_unprepared(statement).await {
            eprintln!("{statement}: {error} (measuring anyway)");
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: warden-load <address> <operator token> [seconds] [connections] [streams] \
                 [users, e.g. 1000,1000000] [chart.svg]";
    let address = args.get(1).ok_or(usage)?;
    let operator = args.get(2).ok_or(usage)?;
    let seconds: u64 = args.get(3).map_or(Ok(20), |s| s.parse())?;
    let connections: usize = args.get(4).map_or(Ok(8), |s| s.parse())?;
    let streams: usize = args.get(5).map_or(Ok(16), |s| s.parse())?;
    let sizes: Vec<usize> = match args.get(6) {
        Some(list) => list.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => vec![0], // The owner alone, as before.
    };
    let endpoint = Channel::from_shared(format!("http://{address}"))?;
    let mut channels = vec![];
    for _ in 0..connections {
        channels.push(endpoint.connect().await?);
    }
    let http = std::env::var("WARDEN_LOAD_HTTP")
        .ok()
        .filter(|address| !address.is_empty())
        .map(|address| {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(connections * streams)
                .build()?;
            Ok::<_, reqwest::Error>((client, format!("http://{address}/access/v1/evaluation")))
        })
        .transpose()?;
    let database = match sizes.iter().any(|size| *size > 0) {
        true => Some(
            sea_orm::Database::connect(std::env::var("DATABASE_URL").map_err(
                |_| "seeding users needs DATABASE_URL: the server's PostgreSQL database",
            )?)
            .await?,
        ),
        false => None,
    };
    // Every population is seeded and warmed first, then all are measured in the same alternating
    // rounds: a thousand users and a million meet the same machine, database and server.
    let mut populations = Vec::new();
    for size in sizes {
        let (organization, owner, key) = setup(channels[0].clone(), operator).await?;
        let users = Arc::new(match &database {
            Some(database) if size > 0 => seed(database, &organization, size).await?,
            _ => Vec::new(),
        });
        let check = v1::CheckPermissionRequest {
            organization_id: organization,
            user_id: owner,
            permission: if users.is_empty() {
                "payments.refund"
            } else {
                "payments.read"
            }
            .into(),
            ..Default::default()
        };
        populations.push(Population {
            size: size.max(1),
            check,
            users,
            key,
            checks: Arc::default(),
            latency: Arc::default(),
            evaluations: Arc::default(),
        });
    }
    if let Some(database) = &database {
        settle(database).await;
    }
    for population in &populations {
        warm(
            &channels,
            &population.check,
            &population.users,
            &population.key,
        )
        .await?;
    }
    println!("{connections} connections x {streams} streams, {seconds} s of each workload");
    let health = Arc::default();
    for _ in 0..seconds.div_ceil(ROUND.as_secs()).max(1) {
        let (check, key) = (&populations[0].check, &populations[0].key);
        round(
            &channels,
            streams,
            Workload::Health,
            check,
            &Arc::default(),
            key,
            &http,
            &health,
        )
        .await?;
        for population in &populations {
            for (workload, tally) in [
                (Workload::Check, &population.checks),
                (Workload::CheckMinimizeLatency, &population.latency),
                (Workload::Evaluation, &population.evaluations),
            ] {
                if workload == Workload::Evaluation && http.is_none() {
                    continue;
                }
                let (check, users, key) = (&population.check, &population.users, &population.key);
                round(
                    &channels, streams, workload, check, users, key, &http, tally,
                )
                .await?;
            }
        }
    }
    println!("| users | workload | calls/s | p50 ms | p99 ms | p99.9 ms | errors |");
    println!("|---|---|---|---|---|---|---|");
    let (health_rate, health_p99, health_row) =
        row("grpc.health.v1 Check", &mut *health.lock().await);
    println!("| all {health_row}");
    let mut points = Vec::new();
    for population in &populations {
        let shown = population.size;
        let (check_rate, check_p99, check_row) =
            row("CheckPermission", &mut *population.checks.lock().await);
        let (latency_rate, latency_p99, latency_row) = row(
            "CheckPermission minimize_latency",
            &mut *population.latency.lock().await,
        );
        println!("| {shown} {check_row}");
        println!("| {shown} {latency_row}");
        println!(
            "check/health at {shown} users: {:.3} (p99 {:.2}x); minimize_latency {:.3} (p99 {:.2}x)",
            check_rate / health_rate,
            check_p99 / health_p99,
            latency_rate / health_rate,
            latency_p99 / health_p99
        );
        if http.is_some() {
            let (rate, p99, line) = row(
                "AuthZEN POST /access/v1/evaluation",
                &mut *population.evaluations.lock().await,
            );
            println!("| {shown} {line}");
            println!(
                "evaluation/check at {shown} users: {:.3} (p99 {:.2}x)",
                rate / check_rate,
                p99 / check_p99
            );
        }
        points.push(Point {
            users: shown,
            health: (health_rate, health_p99),
            check: (check_rate, check_p99),
        });
    }
    if let Some(path) = args.get(7) {
        chart(path, &points)?;
        println!("chart: {path}");
    }
    Ok(())
}
