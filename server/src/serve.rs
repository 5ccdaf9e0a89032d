//! `ferrite serve`: bind, load the model in the background, serve, drain.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ferrite_engine::{Engine, MistralEngine};
use ferrite_middleware::auth::{AuthLayer, Authenticator};
use ferrite_middleware::memory_postgres::PostgresStore;
use ferrite_middleware::memory_store::{MemoryStore, SqliteStore};
use metrics_exporter_prometheus::PrometheusBuilder;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::cli::ServeArgs;
use crate::config::Config;
use crate::state::{AppState, Ready};
use crate::{app, logging, pipeline};

/// Seconds, from a fast cache hit to a long generation.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

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

    let metrics = PrometheusBuilder::new()
        .set_buckets(&LATENCY_BUCKETS)
        .context("metrics buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    let state = AppState::new(config.clone(), open_memory(&config));
    tokio::spawn(load(state.clone()));

    let (stop_tx, mut stop_rx) = watch::channel(false);
    let drain = Duration::from_secs(config.http.drain_timeout_secs);
    let server = axum::serve(listener, app::router(state, AuthLayer::new(auth), metrics))
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

/// The memory store, if memory is on. A store that cannot be opened leaves
/// the server running without memory (and says so on every response).
fn open_memory(config: &Config) -> Option<Arc<dyn MemoryStore>> {
    if !config.memory.enabled {
        return None;
    }
    let timeout = Duration::from_millis(config.memory.timeout_ms);
    let (store, place) = match &config.memory.url {
        Some(url) => (
            PostgresStore::connect(url, timeout).map(|s| Arc::new(s) as Arc<dyn MemoryStore>),
            redact(url),
        ),
        None => {
            let path = config.memory_path();
            let store = SqliteStore::open(&path, timeout);
            (
                store.map(|s| Arc::new(s) as Arc<dyn MemoryStore>),
                path.display().to_string(),
            )
        }
    };
    match store {
        Ok(store) => {
            info!(store = %place, "conversation memory on");
            Some(store)
        }
        Err(e) => {
            error!(store = %place, "conversation memory unavailable: {e}");
            None
        }
    }
}

/// A database URL fit for the log: the password is masked.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            // Only fails for URLs that cannot have a password.
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

async fn load(state: AppState) {
    let started = std::time::Instant::now();
    match MistralEngine::load(&state.config.model).await {
        Ok(engine) => {
            metrics::gauge!("ferrite:model_load_seconds").set(started.elapsed().as_secs_f64());
            let engine: Arc<dyn Engine> = Arc::new(engine);
            let idle = {
                let state = state.clone();
                Arc::new(move || state.idle())
            };
            let built = pipeline::build(engine.clone(), &state.config, state.memory.clone(), idle);
            let id = engine.info().id.clone();
            state.set_ready(Ready {
                engine,
                pipeline: built.service,
                budgets: built.budgets,
            });
            info!(model = %id, "ready");
            if let Some(worker) = built.precompute {
                worker.spawn();
            }
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
