//! The `warden` binary: configuration from the environment, logs, and shutdown on SIGTERM or Ctrl-C.
use tokio::{net::TcpListener, signal};
use tracing_subscriber::EnvFilter;
use warden_server::Config;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "invalid configuration");
            return std::process::ExitCode::FAILURE;
        }
    };
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

async fn shutdown_signal() {
    let terminate = async {
        match signal::unix::signal(signal::unix::SignalKind::terminate()) {
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
