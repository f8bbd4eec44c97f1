//! The `warden` binary: configuration from the environment, logs, and shutdown on SIGTERM or Ctrl-C.
use tokio::{net::TcpListener, signal};
use warden_server::{Config, config::LogFormat, telemetry};

/// glibc's malloc took a tenth of the server's CPU under load (perf while `warden-load` ran, README
/// "Performance"); mimalloc is the usual drop-in for Rust servers, and builds with the C compiler
/// the machine already has.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            // Logs are configured by the configuration that failed: JSON if that much was asked.
            let json = std::env::var("WARDEN_LOG_FORMAT").is_ok_and(|format| format == "json");
            telemetry::init_logs(if json {
                LogFormat::Json
            } else {
                LogFormat::Text
            });
            tracing::error!(%error, "invalid configuration");
            return std::process::ExitCode::FAILURE;
        }
    };
    telemetry::init_logs(config.log_format);
    let listener = match TcpListener::bind(config.listen_addr).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, address = %config.listen_addr, "cannot listen");
            return std::process::ExitCode::FAILURE;
        }
    };
    match warden_server::serve(
        listener,
        config,
        std::sync::Arc::new(warden_server::SystemClock),
        shutdown_signal(),
    )
    .await
    {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // `Error::Internal` displays as "internal error"; the log needs the cause.
            let cause = std::error::Error::source(&error)
                .map(ToString::to_string)
                .unwrap_or_else(|| error.to_string());
            tracing::error!(%cause, "warden failed");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Registers for SIGTERM now, before `serve` logs that it is serving: a SIGTERM sent as soon as the
/// server announces itself must reach the graceful shutdown, not the default action that kills it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    let terminate = signal::unix::signal(signal::unix::SignalKind::terminate());
    async move {
        let terminate = async {
            match terminate {
                Ok(mut stream) => {
                    stream.recv().await;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            _ = signal::ctrl_c() => {}
            _ = terminate => {}
        }
        tracing::info!("shutting down");
    }
}
