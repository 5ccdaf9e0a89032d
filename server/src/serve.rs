//! `ferrite serve`: bind, load the model in the background, serve, drain.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ferrite_engine::{Engine, MistralEngine};
use ferrite_middleware::auth::{AuthLayer, Authenticator};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::cli::ServeArgs;
use crate::config::Config;
use crate::state::{AppState, Ready};
use crate::{app, logging, pipeline};

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref(), args.overrides())?;
    logging::init(&config.log)?;
    let auth = Authenticator::from_config(&config.auth)?;
    if auth.is_none() && !is_loopback(&config.host) {
        warn!(host = %config.host, "no API key or JWT configured: anyone who can reach this address can use the API");
    }
    let addr = format!("{}:{}", config.host, config.port);
    // Bind before loading, so health checks answer and a busy port fails fast.
    let listener = TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    info!("listening on http://{addr} (OpenAI API under /v1)");

    let state = AppState::new(config.clone());
    tokio::spawn(load(state.clone()));

    let (stop_tx, mut stop_rx) = watch::channel(false);
    let drain = Duration::from_secs(config.http.drain_timeout_secs);
    let server = axum::serve(listener, app::router(state, AuthLayer::new(auth)))
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            info!("shutting down: no new connections, draining in-flight requests");
            let _ = stop_tx.send(true);
        });
    let deadline = async move {
        let _ = stop_rx.wait_for(|stopped| *stopped).await;
        tokio::time::sleep(drain).await;
    };
    tokio::select! {
        result = server => result.context("server error")?,
        () = deadline => warn!("drain timeout of {}s passed; exiting with requests in flight", drain.as_secs()),
    }
    info!("stopped");
    Ok(())
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn load(state: AppState) {
    match MistralEngine::load(&state.config.model).await {
        Ok(engine) => {
            let engine: Arc<dyn Engine> = Arc::new(engine);
            let pipeline = pipeline::build(engine.clone(), &state.config);
            let id = engine.info().id.clone();
            state.set_ready(Ready { engine, pipeline });
            info!(model = %id, "ready");
        }
        Err(e) => {
            // Nothing can be served without a model: fail loudly, non-zero.
            error!("failed to load the model: {e:#}");
            std::process::exit(1);
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
