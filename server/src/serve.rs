//! `ferrite serve`: bind, load the model in the background, serve, drain.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ferrite_middleware::alias_store::AliasStore;
use ferrite_middleware::auth::{AuthLayer, Authenticator};
use ferrite_middleware::budget_store::SharedLedger;
use ferrite_middleware::conversation_store::ConversationStore;
use ferrite_middleware::memory_postgres::PostgresStore;
use ferrite_middleware::memory_store::{MemoryStore, SqliteStore};
use ferrite_middleware::precompute::Precompute;
use ferrite_middleware::response_store::ResponseStore;
use ferrite_middleware::ChatService;
use ferrite_openapi::chat::ChatRequest;
use metrics_exporter_prometheus::PrometheusBuilder;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::api::orchestrator;
use crate::app;
use crate::args::ServeArgs;
use crate::chat::{generate, pipeline};
use crate::config::Config;
use crate::downloads::Downloads;
use crate::http::listen;
use crate::logging;
use crate::registry::{Builder, Manage, Origin, Registry};
use crate::state::experts::Experts;
use crate::state::{AppState, Stores};
use ferrite_openapi::models::ModelKind;

/// Seconds, from a fast cache hit to a long generation.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref(), args.overrides())?;
    logging::init(&config.log)?;
    let auth = Authenticator::from_config(&config.auth)?.map(Arc::new);
    if auth.is_none() && !is_loopback(&config.host) {
        warn!(host = %config.host, "no API key or JWT configured: anyone who can reach this address can use the API");
    }
    let addr = format!("{}:{}", config.host, config.port);
    // Bind before loading, so health checks answer and a busy port fails fast.
    let listener = TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    info!("listening on http://{addr} (OpenAI API under /v1)");
    let ollama = match config.ollama_port {
        Some(port) => {
            let addr = format!("{}:{port}", config.host);
            let listener = TcpListener::bind(&addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (--ollama-port)"))?;
            info!("also listening on http://{addr} (for clients of Ollama's API)");
            Some(listener)
        }
        None => None,
    };

    let metrics = PrometheusBuilder::new()
        .set_buckets(&LATENCY_BUCKETS)
        .context("metrics buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    let config = Arc::new(config);
    let stores = open_stores(&config);
    let ledger = match &config.budgets.url {
        Some(url) => {
            let ledger = SharedLedger::connect(url)
                .context("budgets.url is not a PostgreSQL URL ferrite can use")?;
            info!("budgets are shared through PostgreSQL");
            Some(Arc::new(ledger))
        }
        None => None,
    };
    let shared = Arc::new(pipeline::SharedLayers::new(
        config.clone(),
        stores.memory.clone(),
        ledger,
    ));
    let build: Builder = {
        let shared = shared.clone();
        Arc::new(move |engine| pipeline::build(engine, &shared))
    };
    let registry = Registry::new(config.clone(), build)?;
    shared.bind(&registry);
    let experts = Arc::new(Experts::new(&config.routers)?);
    let downloads = Downloads::new(&config.downloads, config.registry.dir())?;
    let state = AppState::new(
        config.clone(),
        registry.clone(),
        experts,
        stores,
        auth.clone(),
        Arc::new(downloads),
    );
    registry.spawn_reaper();
    for alias in config.aliases.iter() {
        if let Err(e) = state.versions.state(&alias.name).await {
            warn!(alias = %alias.name, "cannot read the alias's versions: {}", e.message);
        }
    }
    state.versions.spawn_sync();
    let loading = tokio::spawn(load(state.clone(), shared));
    // A server that cannot load the model it was started with is
    // misconfigured: it stops, non-zero, through the same exit as any error.
    let load_failed = async move {
        match loading.await {
            Ok(Ok(())) => std::future::pending().await,
            Ok(Err(e)) => e,
            Err(e) => anyhow::anyhow!("the model loader stopped: {e}"),
        }
    };

    let (stop_tx, mut stop_rx) = watch::channel(false);
    let drain = Duration::from_secs(config.http.drain_timeout_secs);
    let auth =
        AuthLayer::shared(auth).protecting(orchestrator::protected_paths(&config.orchestrator));
    let connections = state.connections.clone();
    let app = app::router(state, auth, metrics);
    if let Some(listener) = ollama {
        let mut stopped = stop_tx.subscribe();
        let stop = async move {
            let _ = stopped.wait_for(|stopped| *stopped).await;
        };
        tokio::spawn(listen::serve(
            listener,
            app.clone(),
            connections.clone(),
            stop,
        ));
    }
    let server = listen::serve(listener, app, connections, async move {
        shutdown_signal().await;
        info!("shutting down: no new connections, draining in-flight requests");
        let _ = stop_tx.send(true);
    });
    let deadline = async move {
        let _ = stop_rx.wait_for(|stopped| *stopped).await;
        tokio::time::sleep(drain).await;
    };
    tokio::select! {
        () = server => {},
        () = deadline => warn!("drain timeout of {}s passed; exiting with requests in flight", drain.as_secs()),
        e = load_failed => {
            error!("failed to load the model: {e}");
            return Err(e);
        }
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

/// The database: memory's store when memory is on, and stored responses
/// always. One that cannot be opened leaves the server running without
/// either (memory says so on every response).
fn open_stores(config: &Config) -> Stores {
    let timeout = Duration::from_millis(config.memory.timeout_ms);
    let (stores, place) = match &config.memory.url {
        Some(url) => (
            PostgresStore::connect(url, timeout).map(|s| {
                let s = Arc::new(s);
                (
                    s.clone() as Arc<dyn MemoryStore>,
                    s.clone() as Arc<dyn ResponseStore>,
                    s.clone() as Arc<dyn AliasStore>,
                    s as Arc<dyn ConversationStore>,
                )
            }),
            redact(url),
        ),
        None => {
            let path = config.memory_path();
            let store = SqliteStore::open(&path, timeout).map(|s| {
                let s = Arc::new(s);
                (
                    s.clone() as Arc<dyn MemoryStore>,
                    s.clone() as Arc<dyn ResponseStore>,
                    s.clone() as Arc<dyn AliasStore>,
                    s as Arc<dyn ConversationStore>,
                )
            });
            (store, path.display().to_string())
        }
    };
    match stores {
        Ok((store, responses, aliases, conversations)) => {
            let memory = config.memory.enabled.then_some(store.clone());
            if memory.is_some() {
                info!(store = %place, "conversation memory on");
            }
            Stores {
                memory,
                responses: Some(responses),
                exchanges: Some(store),
                aliases: Some(aliases),
                conversations: Some(conversations),
            }
        }
        Err(e) => {
            error!(store = %place, "conversation memory unavailable, and stored responses with it: {e}");
            Stores::default()
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

/// Loads the startup model; nothing is ready before it.
async fn load(state: AppState, shared: Arc<pipeline::SharedLayers>) -> anyhow::Result<()> {
    let startup = state.registry.startup()?;
    let lease = state
        .registry
        .acquire_spec(startup, Origin::Explicit { ttl: None }, Manage::Granted)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let id = lease.id().to_string();
    drop(lease);
    state.registry.mark_ready();
    info!(model = %id, "ready");
    // The embedding model the server was given is loaded too, so that
    // clients that ask for "the loaded embedding model" (LM Studio's SDKs)
    // find one; a failure leaves it to load just in time.
    if state.config.registry.embedding_model.is_some() {
        let loaded = match state
            .registry
            .resolve_for(None, ModelKind::Embeddings)
            .await
        {
            Ok(spec) => state
                .registry
                .acquire_spec(spec, Origin::Explicit { ttl: None }, Manage::Granted)
                .await
                .map(|lease| lease.id().to_string()),
            Err(e) => Err(e),
        };
        match loaded {
            Ok(id) => info!(model = %id, "embedding model ready"),
            Err(e) => warn!(error = %e.message, "cannot load the embedding model"),
        }
    }
    if let Some(worker) = precompute(&state, &shared, &id) {
        worker.spawn();
    }
    Ok(())
}

/// The cache's background worker, when it has anything to do. It runs
/// through whichever model a request names, and only while it is resident.
fn precompute(
    state: &AppState,
    shared: &pipeline::SharedLayers,
    model: &str,
) -> Option<Precompute> {
    let cache = shared.cache.clone()?;
    let config = &state.config.cache;
    let requests: Vec<_> = config
        .precompute
        .iter()
        .map(|r| Precompute::prepare(r.clone(), model))
        .filter(|r| match r.validate() {
            Ok(()) => true,
            Err(e) => {
                warn!(error = %e.message, "skipping an invalid cache.precompute request");
                false
            }
        })
        .collect();
    if requests.is_empty() && config.refresh_popular_after_hits == 0 {
        return None;
    }
    let registry = state.registry.clone();
    let service = ChatService::new(tower::service_fn(move |req: ChatRequest| {
        let registry = registry.clone();
        async move { generate::background(&registry, req).await }
    }));
    let idle = {
        let state = state.clone();
        Arc::new(move || state.idle())
    };
    Some(Precompute {
        service,
        cache,
        requests,
        popular_after_hits: config.refresh_popular_after_hits,
        idle,
    })
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
