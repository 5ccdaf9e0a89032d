//! The models this server can run and the ones resident: just-in-time
//! loading, idle TTLs, least-recently-used eviction under
//! `max_loaded_models`, and leases that keep a model resident while a
//! request uses it. `catalog.rs` says which models exist; `admit.rs`
//! whether a load may go ahead (the context asked for, the caller's
//! `models:manage`).

mod admit;
pub mod catalog;
mod warm;

pub use admit::{Manage, MANAGE_MODELS};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use std::time::{Duration, Instant};

use ferrite_engine::Engine;
use ferrite_middleware::budget::Budgets;
use ferrite_middleware::ChatService;
use ferrite_openapi::adapters::{self, AdapterChoice};
use ferrite_openapi::models::{ModelKind, ModelMeta};
use ferrite_openapi::{ApiError, ApiResult, ErrorCode};
use futures::future::{BoxFuture, FutureExt, Shared};
use tokio::sync::{watch, Notify};
use tracing::{info, warn};

use crate::config::Config;
use catalog::{ttl_of, Spec};

/// A loaded model's chat middleware (built by `chat::pipeline`).
pub struct Pipeline {
    pub service: ChatService,
    /// Cache, thinking and engine only: what precompute runs.
    pub core: ChatService,
    /// The tenants' budgets, also charged by text completions.
    pub budgets: Option<Arc<Budgets>>,
}

/// Builds a loaded model's chat pipeline.
pub type Builder = Arc<dyn Fn(Arc<dyn Engine>) -> Pipeline + Send + Sync>;

/// How far a load has come.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// `waiting` (for room), `reading` (the weights), `initializing`.
    pub phase: &'static str,
    /// 0 to 1.
    pub fraction: f64,
}

/// Reading the weights is most of a load; the engine's setup is the rest.
const READ_SHARE: f64 = 0.9;

/// A model in memory.
pub struct Resident {
    pub spec: Arc<Spec>,
    pub engine: Arc<dyn Engine>,
    pub pipeline: Pipeline,
    pub load_seconds: f64,
    use_: Mutex<Use>,
}

struct Use {
    last_used: Instant,
    in_flight: usize,
    ttl: Option<Duration>,
}

impl Resident {
    pub fn meta(&self) -> &ModelMeta {
        &self.engine.info().meta
    }

    /// Whether it was loaded with the context `tokens` asks for (none: any).
    fn has_context(&self, tokens: Option<u32>) -> bool {
        tokens.is_none_or(|n| {
            self.meta().context_length == n || self.spec.options.context_length == Some(n)
        })
    }
}

type Loading = Shared<BoxFuture<'static, ApiResult<()>>>;

enum Residency {
    Loading {
        done: Loading,
        progress: watch::Receiver<Progress>,
        kind: ModelKind,
    },
    Loaded(Arc<Resident>),
}

/// A loaded instance as listings show it.
pub struct Instance {
    /// `loading` or `loaded`.
    pub status: &'static str,
    pub idle: Duration,
    pub ttl: Option<Duration>,
    pub in_flight: usize,
    pub load_seconds: f64,
    pub meta: Option<ModelMeta>,
}

/// Whoever asks decides the idle TTL a fresh load gets.
#[derive(Debug, Clone, Copy)]
pub enum Origin {
    /// A request named it: the registry's TTL unless it says otherwise.
    Request { ttl: Option<u64> },
    /// Loaded by hand (startup, API, CLI): stays unless given a TTL.
    Explicit { ttl: Option<u64> },
}

pub struct Registry {
    config: Arc<Config>,
    specs: RwLock<Vec<Arc<Spec>>>,
    models: Mutex<HashMap<String, Residency>>,
    /// A lease ended, a load finished or a model left.
    changed: Notify,
    build: Builder,
    ready: AtomicBool,
    /// Versioned aliases and the model each answers with now.
    aliases: RwLock<HashMap<String, String>>,
}

/// A model kept resident for as long as this lives.
pub struct Lease {
    resident: Arc<Resident>,
    registry: Arc<Registry>,
}

impl std::ops::Deref for Lease {
    type Target = Resident;
    fn deref(&self) -> &Resident {
        &self.resident
    }
}

impl Lease {
    pub fn id(&self) -> &str {
        &self.resident.spec.id
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        {
            let mut u = self.resident.use_.lock();
            u.in_flight -= 1;
            u.last_used = Instant::now();
        }
        self.registry.changed.notify_waiters();
    }
}

/// The error chain's first lines: some causes carry a backtrace below.
fn brief(e: &anyhow::Error) -> String {
    e.chain()
        .filter_map(|c| c.to_string().lines().next().map(str::to_string))
        .collect::<Vec<_>>()
        .join(": ")
}

fn load_failed(id: &str, e: &anyhow::Error) -> ApiError {
    ApiError::new(
        500,
        "server_error",
        format!("The model `{id}` failed to load: {}", brief(e)),
    )
    .with_param("model")
    .with_code(ErrorCode::ModelLoadFailed)
}

impl Registry {
    pub fn new(config: Arc<Config>, build: Builder) -> anyhow::Result<Arc<Self>> {
        config.registry.check(&config.model)?;
        let specs = config.registry.specs(&config.model, &[]);
        Ok(Arc::new(Self {
            config,
            specs: RwLock::new(specs),
            models: Mutex::new(HashMap::new()),
            changed: Notify::new(),
            build,
            ready: AtomicBool::new(false),
            aliases: RwLock::new(HashMap::new()),
        }))
    }

    /// Every model available: the models directory rescanned and each
    /// model's header read (once per file), off the async workers.
    pub async fn specs(self: &Arc<Self>) -> Vec<Arc<Spec>> {
        let this = self.clone();
        match tokio::task::spawn_blocking(move || this.rescan()).await {
            Ok(specs) => specs,
            Err(_) => self.specs.read().clone(),
        }
    }

    fn rescan(&self) -> Vec<Arc<Spec>> {
        let previous = self.specs.read().clone();
        let fresh = self.config.registry.specs(&self.config.model, &previous);
        for spec in &fresh {
            spec.meta();
        }
        self.specs.write().clone_from(&fresh);
        fresh
    }

    /// The model the server was started with (chat or embeddings).
    pub fn startup(&self) -> ApiResult<Arc<Spec>> {
        self.specs
            .read()
            .first()
            .cloned()
            .ok_or_else(|| ApiError::unavailable("No model is configured."))
    }

    /// The models known since the last scan (no rescan).
    pub fn current(&self) -> Vec<Arc<Spec>> {
        self.specs.read().clone()
    }

    /// A model known since the last scan.
    fn known(&self, name: &str) -> Option<Arc<Spec>> {
        self.specs
            .read()
            .iter()
            .find(|s| s.answers_to(name))
            .cloned()
    }

    /// A name with a versioned alias's current model in its place.
    fn unaliased(&self, name: &str) -> String {
        let aliases = self.aliases.read();
        aliases.get(name).map_or(name, String::as_str).to_string()
    }

    /// The model a request names; none selects the most recently used
    /// loaded model, else the startup model (as LM Studio does).
    /// `base@a,b` is the base model, which must have those LoRA adapters.
    pub async fn resolve(self: &Arc<Self>, name: Option<&str>) -> ApiResult<Arc<Spec>> {
        let Some(asked) = name.map(str::trim).filter(|n| !n.is_empty()) else {
            return self.default_spec(ModelKind::Llm).await;
        };
        let name = self.unaliased(asked);
        if let Some(spec) = self.known(&name) {
            return Ok(spec);
        }
        let (base, adapters) = adapters::split_name(&name);
        let found = match self.known(base) {
            Some(spec) => Some(spec),
            // A model dropped into the directory since the last scan.
            None => self.specs().await.into_iter().find(|s| s.answers_to(base)),
        };
        match found {
            Some(spec) if adapters.iter().all(|a| spec.has_adapter(&a.id)) => Ok(spec),
            _ => Err(ApiError::model_not_found(&name)),
        }
    }

    /// The adapters a request runs with: those its model's name gives
    /// (`base@a,b`, also through an alias), then its `adapters` field.
    pub fn adapters(
        &self,
        name: Option<&str>,
        field: Option<Vec<AdapterChoice>>,
    ) -> Option<Vec<AdapterChoice>> {
        let name = self.unaliased(name.map(str::trim).unwrap_or_default());
        let named = match self.known(&name) {
            Some(_) => Vec::new(),
            None => adapters::split_name(&name).1,
        };
        Some(adapters::merge(named, field)).filter(|all| !all.is_empty())
    }

    /// What loading `name` loads: for `base@a` on a model that merges its
    /// adapters, the model with them merged (see [`Spec::serving`]).
    pub async fn resolve_loadable(self: &Arc<Self>, name: &str) -> ApiResult<Arc<Spec>> {
        let mut adapters = self.adapters(Some(name), None);
        self.resolve(Some(name)).await?.serving(&mut adapters)
    }

    /// The model `name` runs, and its canonical name: the model's id with
    /// the adapters the name gives (`id@a,b*0.5`).
    pub async fn canonical(self: &Arc<Self>, name: &str) -> ApiResult<(Arc<Spec>, String)> {
        let spec = self.resolve(Some(name)).await?;
        let ids: Vec<String> = self
            .adapters(Some(name), None)
            .unwrap_or_default()
            .into_iter()
            .map(|a| match a.scale {
                Some(scale) => format!("{}*{scale}", a.id),
                None => a.id,
            })
            .collect();
        let canonical = match ids.is_empty() {
            true => spec.id.clone(),
            false => format!("{}@{}", spec.id, ids.join(",")),
        };
        Ok((spec, canonical))
    }

    /// The same, for a use that needs a model of `kind`: a chat model asked
    /// for embeddings (or the reverse) is the request's fault, found before
    /// anything loads. No name picks a model of that kind.
    pub async fn resolve_for(
        self: &Arc<Self>,
        name: Option<&str>,
        kind: ModelKind,
    ) -> ApiResult<Arc<Spec>> {
        let named = name.map(str::trim).filter(|n| !n.is_empty());
        let spec = match named {
            Some(_) => self.resolve(named).await?,
            None => self.default_spec(kind).await?,
        };
        // The header, read once per file: a file that is not a model fails
        // here, before a stream starts or anything is evicted for it.
        match self.header(&spec).await.map(|m| m.kind) {
            Err(e) => Err(e),
            Ok(actual) if actual != kind => Err(ApiError::invalid(
                "model",
                match actual {
                    ModelKind::Embeddings => format!(
                        "`{}` is an embedding model: it makes embeddings (POST /v1/embeddings) and cannot generate text.",
                        spec.id
                    ),
                    ModelKind::Llm => format!(
                        "`{}` is a chat model; name an embedding model to make embeddings.",
                        spec.id
                    ),
                },
            )
            .with_code(ErrorCode::ModelKindMismatch)),
            _ => Ok(spec),
        }
    }

    /// The most recently used loaded model of `kind`, else the first one
    /// configured (the startup model for chat).
    async fn default_spec(self: &Arc<Self>, kind: ModelKind) -> ApiResult<Arc<Spec>> {
        let recent = self
            .models
            .lock()
            .values()
            .filter_map(|s| match s {
                Residency::Loaded(r) if r.meta().kind == kind => Some(r),
                _ => None,
            })
            .max_by_key(|r| r.use_.lock().last_used)
            .map(|r| r.spec.clone());
        if let Some(spec) = recent {
            return Ok(spec);
        }
        let specs = self.specs.read().clone();
        let first = tokio::task::spawn_blocking(move || {
            specs
                .into_iter()
                .find(|s| s.meta().map_or(kind == ModelKind::Llm, |m| m.kind == kind))
        })
        .await
        .ok()
        .flatten();
        first.ok_or_else(|| match kind {
            ModelKind::Llm => ApiError::unavailable("No model is configured."),
            ModelKind::Embeddings => ApiError::invalid(
                "model",
                "No embedding model is configured; name one in `model`.",
            )
            .with_code(ErrorCode::ModelNotFound),
        })
    }

    /// The key a model file is listed under (the directory rescanned), once
    /// it is in place.
    pub async fn key_for(self: &Arc<Self>, path: &std::path::Path) -> Option<String> {
        let path = path.to_path_buf();
        self.specs()
            .await
            .into_iter()
            .find(|s| catalog::same_file(&s.options.path, &path))
            .map(|s| s.id.clone())
    }

    /// Requests naming `alias` go to `model` from now on.
    pub fn set_alias(&self, alias: &str, model: &str) {
        let mut aliases = self.aliases.write();
        if aliases.get(alias).is_none_or(|m| m != model) {
            info!(alias, model, "alias now answers with this model");
            aliases.insert(alias.to_string(), model.to_string());
        }
    }

    pub fn is_loaded(&self, id: &str) -> bool {
        self.is_loaded_with(id, None)
    }

    /// Loaded, with the context `tokens` asks for (none: any).
    pub fn is_loaded_with(&self, id: &str, tokens: Option<u32>) -> bool {
        matches!(self.models.lock().get(id), Some(Residency::Loaded(r)) if r.has_context(tokens))
    }

    pub fn progress(&self, id: &str) -> Progress {
        match self.models.lock().get(id) {
            Some(Residency::Loading { progress, .. }) => *progress.borrow(),
            Some(Residency::Loaded(_)) => Progress {
                phase: "loaded",
                fraction: 1.0,
            },
            None => Progress {
                phase: "waiting",
                fraction: 0.0,
            },
        }
    }

    /// Whether the startup model has loaded once.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn mark_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    fn lease(self: &Arc<Self>, resident: &Arc<Resident>, ttl: Option<u64>) -> Lease {
        let mut u = resident.use_.lock();
        u.in_flight += 1;
        u.last_used = Instant::now();
        if let Some(secs) = ttl {
            u.ttl = ttl_of(secs);
        }
        drop(u);
        Lease {
            resident: resident.clone(),
            registry: self.clone(),
        }
    }

    /// The model `spec`, loading it first if needed; waits while it loads
    /// or while every resident model is busy and there is no room.
    pub async fn acquire_spec(
        self: &Arc<Self>,
        spec: Arc<Spec>,
        origin: Origin,
        manage: Manage,
    ) -> ApiResult<Lease> {
        self.acquire_with(spec, origin, None, manage).await
    }

    /// The header's facts, read once per file off the async workers.
    async fn header(&self, spec: &Arc<Spec>) -> ApiResult<ModelMeta> {
        let read = match spec.read_header() {
            Some(read) => read.cloned().map_err(String::from),
            None => {
                let s = spec.clone();
                tokio::task::spawn_blocking(move || s.inspected().cloned().map_err(String::from))
                    .await
                    .map_err(|e| {
                        ApiError::internal(format!("Reading the model's header failed: {e}"))
                    })?
            }
        };
        read.map_err(|e| load_failed(&spec.id, &anyhow::anyhow!(e)))
    }

    fn resident(&self, id: &str) -> Option<Arc<Resident>> {
        match self.models.lock().get(id) {
            Some(Residency::Loaded(r)) => Some(r.clone()),
            _ => None,
        }
    }

    /// Whether loading `spec` with `context_length` may go ahead for a
    /// caller (see `admit.rs`); `param` names the field in the caller's API.
    /// A file that is not a model fails here, before anything is evicted
    /// for it.
    pub async fn admissible(
        self: &Arc<Self>,
        spec: &Arc<Spec>,
        context_length: Option<u32>,
        manage: Manage,
        param: &str,
    ) -> ApiResult<()> {
        let resident = self.resident(&spec.id);
        let meta = match &resident {
            Some(r) => r.meta().clone(),
            None => self.header(spec).await?,
        };
        admit::check_context(context_length, Some(&meta), spec, param)?;
        match (&resident, context_length) {
            (Some(r), Some(_)) if !r.has_context(context_length) => manage.require(&format!(
                "Reloading `{}` with another `{param}` (every client of it would be cut off)",
                spec.id
            ))?,
            (None, Some(n)) if Some(n) != admit::default_context(spec, Some(&meta)) => manage
                .require(&format!(
                    "Loading `{}` with a `{param}` of its own",
                    spec.id
                ))?,
            _ => {}
        }
        if spec.custom_scales && resident.is_none() {
            manage.require(&format!(
                "Building `{}` (adapters merged at scales no configuration names)",
                spec.id
            ))?;
        }
        Ok(())
    }

    /// The same, loaded with a context of `context_length` tokens: a model
    /// resident with another context is loaded again once its requests end
    /// (ferrite keeps one instance per model), if the caller may.
    pub async fn acquire_with(
        self: &Arc<Self>,
        spec: Arc<Spec>,
        origin: Origin,
        context_length: Option<u32>,
        manage: Manage,
    ) -> ApiResult<Lease> {
        self.admissible(&spec, context_length, manage, "context_length")
            .await?;
        let asked = match origin {
            Origin::Request { ttl } | Origin::Explicit { ttl } => ttl,
        };
        loop {
            let room = self.changed.notified();
            let load = {
                let mut models = self.models.lock();
                let current = match models.get(&spec.id) {
                    Some(Residency::Loaded(r)) if r.has_context(context_length) => {
                        return Ok(self.lease(r, asked))
                    }
                    Some(Residency::Loaded(r)) => {
                        // Loaded at its own context while this waited.
                        manage.require(&format!(
                            "Reloading `{}` with another `context_length`",
                            spec.id
                        ))?;
                        if r.use_.lock().in_flight == 0 {
                            models.remove(&spec.id);
                            self.unloaded(&spec.id, "reload", models.len());
                        }
                        None
                    }
                    Some(Residency::Loading { done, .. }) => Some(done.clone()),
                    None => None,
                };
                match current {
                    Some(done) => Some(done),
                    // Busy with another context: wait for its requests.
                    None if models.contains_key(&spec.id) => None,
                    None if self.make_room(&mut models, spec.kind()) => {
                        let ttl = match (asked, spec.ttl, origin) {
                            (Some(secs), _, _) => ttl_of(secs),
                            (None, Some(own), _) => own,
                            (None, None, Origin::Request { .. }) => {
                                ttl_of(self.config.registry.ttl_secs)
                            }
                            (None, None, Origin::Explicit { .. }) => None,
                        };
                        let spec = match context_length {
                            Some(n) => Arc::new(spec.with_context_length(n)),
                            None => spec.clone(),
                        };
                        Some(self.start_load(&mut models, spec, ttl))
                    }
                    None => None,
                }
            };
            match load {
                Some(done) => done.await?,
                // A lease ending wakes this; the timeout is a safety net.
                None => {
                    let _ = tokio::time::timeout(Duration::from_millis(500), room).await;
                }
            }
        }
    }

    /// The model `name` if it is resident now (no loading).
    pub fn loaded(self: &Arc<Self>, name: &str) -> Option<Lease> {
        let spec = self.known(name)?;
        match self.models.lock().get(&spec.id) {
            Some(Residency::Loaded(r)) => Some(self.lease(r, None)),
            _ => None,
        }
    }

    /// Frees a place for one more model by evicting least recently used
    /// idle ones; false when every resident model is busy.
    /// Room for one more model of `kind`: chat and embedding models count
    /// apart, so a RAG client's embeddings never evict the chat model.
    fn make_room(&self, models: &mut HashMap<String, Residency>, kind: ModelKind) -> bool {
        let max = self.config.registry.max_loaded_models.max(1);
        let of_kind = |s: &Residency| match s {
            Residency::Loaded(r) => r.meta().kind == kind,
            Residency::Loading { kind: k, .. } => *k == kind,
        };
        while models.values().filter(|s| of_kind(s)).count() >= max {
            let victim = models
                .iter()
                .filter(|(_, s)| of_kind(s))
                .filter_map(|(id, s)| match s {
                    Residency::Loaded(r) => {
                        let u = r.use_.lock();
                        (u.in_flight == 0).then(|| (id.clone(), u.last_used))
                    }
                    Residency::Loading { .. } => None,
                })
                .min_by_key(|(_, last)| *last)
                .map(|(id, _)| id);
            match victim {
                Some(id) => {
                    models.remove(&id);
                    self.unloaded(&id, "lru", models.len());
                }
                None => return false,
            }
        }
        true
    }

    fn unloaded(&self, id: &str, reason: &'static str, resident: usize) {
        info!(model = %id, reason, "model unloaded");
        metrics::counter!("ferrite:model_unloads_total", "model" => id.to_string(), "reason" => reason)
            .increment(1);
        metrics::gauge!("ferrite:models_loaded").set(resident as f64);
        self.changed.notify_waiters();
    }

    fn start_load(
        self: &Arc<Self>,
        models: &mut HashMap<String, Residency>,
        spec: Arc<Spec>,
        ttl: Option<Duration>,
    ) -> Loading {
        let (tx, progress) = watch::channel(Progress {
            phase: "reading",
            fraction: 0.0,
        });
        let this = self.clone();
        let (id, kind) = (spec.id.clone(), spec.kind());
        let done = async move {
            let result = this.load(spec.clone(), ttl, tx).await;
            let mut models = this.models.lock();
            let outcome = match result {
                Ok(resident) => {
                    models.insert(spec.id.clone(), Residency::Loaded(Arc::new(resident)));
                    Ok(())
                }
                Err(e) => {
                    models.remove(&spec.id);
                    Err(e)
                }
            };
            metrics::gauge!("ferrite:models_loaded").set(
                models
                    .values()
                    .filter(|s| matches!(s, Residency::Loaded(_)))
                    .count() as f64,
            );
            drop(models);
            this.changed.notify_waiters();
            outcome
        }
        .boxed()
        .shared();
        // The load goes on even if every request waiting for it gives up.
        tokio::spawn(done.clone());
        models.insert(
            id,
            Residency::Loading {
                done: done.clone(),
                progress,
                kind,
            },
        );
        done
    }

    async fn load(
        &self,
        spec: Arc<Spec>,
        ttl: Option<Duration>,
        progress: watch::Sender<Progress>,
    ) -> ApiResult<Resident> {
        let started = Instant::now();
        info!(model = %spec.id, path = %spec.options.path.display(), "loading model");
        let path = spec.options.path.clone();
        let tx = progress.clone();
        let _ = tokio::task::spawn_blocking(move || {
            warm::read_through(&path, |f| {
                tx.send_replace(Progress {
                    phase: "reading",
                    fraction: f * READ_SHARE,
                });
            })
        })
        .await;
        progress.send_replace(Progress {
            phase: "initializing",
            fraction: READ_SHARE,
        });
        let mut options = spec.options.clone();
        options.id = Some(spec.id.clone());
        let engine = match ferrite_engine::load(&options).await {
            Ok(engine) => engine,
            Err(e) => {
                warn!(model = %spec.id, "failed to load: {}", brief(&e));
                metrics::counter!("ferrite:model_loads_total", "model" => spec.id.clone(), "result" => "error")
                    .increment(1);
                return Err(load_failed(&spec.id, &e));
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        metrics::counter!("ferrite:model_loads_total", "model" => spec.id.clone(), "result" => "ok")
            .increment(1);
        metrics::gauge!("ferrite:model_load_seconds", "model" => spec.id.clone()).set(seconds);
        info!(model = %spec.id, seconds = format!("{seconds:.1}"), ttl_secs = ttl.map(|t| t.as_secs()), "model ready");
        Ok(Resident {
            pipeline: (self.build)(engine.clone()),
            engine,
            spec,
            load_seconds: seconds,
            use_: Mutex::new(Use {
                last_used: Instant::now(),
                in_flight: 0,
                ttl,
            }),
        })
    }

    /// Unloads `name` now (once loaded, if it is loading); requests
    /// already running on it finish first (the memory is freed when the
    /// last one ends).
    pub async fn unload(&self, name: &str) -> ApiResult<String> {
        let spec = self
            .known(name)
            .ok_or_else(|| ApiError::model_not_found(name))?;
        loop {
            let loading = {
                let mut models = self.models.lock();
                match models.get(&spec.id) {
                    Some(Residency::Loaded(_)) => {
                        models.remove(&spec.id);
                        let left = models.len();
                        drop(models);
                        self.unloaded(&spec.id, "request", left);
                        return Ok(spec.id.clone());
                    }
                    Some(Residency::Loading { done, .. }) => done.clone(),
                    None => {
                        return Err(ApiError::new(
                            404,
                            "invalid_request_error",
                            format!("The model `{}` is not loaded.", spec.id),
                        )
                        .with_param("instance_id")
                        .with_code(ErrorCode::ModelNotLoaded))
                    }
                }
            };
            // A failed load leaves nothing to unload: the next turn says so.
            let _ = loading.await;
        }
    }

    /// Unloads every loaded model; returns their ids.
    pub fn unload_all(&self) -> Vec<String> {
        let mut models = self.models.lock();
        let ids: Vec<String> = models
            .iter()
            .filter(|(_, s)| matches!(s, Residency::Loaded(_)))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            models.remove(id);
        }
        let left = models.len();
        drop(models);
        for id in &ids {
            self.unloaded(id, "request", left);
        }
        ids
    }

    /// The instance of `id`, if loading or loaded.
    pub fn instance(&self, id: &str) -> Option<Instance> {
        match self.models.lock().get(id)? {
            Residency::Loading { .. } => Some(Instance {
                status: "loading",
                idle: Duration::ZERO,
                ttl: None,
                in_flight: 0,
                load_seconds: 0.0,
                meta: None,
            }),
            Residency::Loaded(r) => {
                let u = r.use_.lock();
                Some(Instance {
                    status: "loaded",
                    idle: if u.in_flight > 0 {
                        Duration::ZERO
                    } else {
                        u.last_used.elapsed()
                    },
                    ttl: u.ttl,
                    in_flight: u.in_flight,
                    load_seconds: r.load_seconds,
                    meta: Some(r.meta().clone()),
                })
            }
        }
    }

    /// A model's facts: the live ones when loaded, else its header's.
    pub fn meta(&self, spec: &Spec) -> Option<ModelMeta> {
        match self.instance(&spec.id) {
            Some(Instance { meta: Some(m), .. }) => Some(m),
            Some(_) => spec.meta().cloned().map(|mut m| {
                m.state = "loading".into();
                m
            }),
            None => spec.meta().cloned(),
        }
    }

    /// Unloads idle models whose TTL has passed, every half second.
    pub fn spawn_reaper(self: &Arc<Self>) {
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                let Some(this) = this.upgrade() else { return };
                this.reap();
            }
        });
    }

    fn reap(&self) {
        let mut models = self.models.lock();
        let expired: Vec<String> = models
            .iter()
            .filter_map(|(id, s)| match s {
                Residency::Loaded(r) => {
                    let u = r.use_.lock();
                    let idle = u.in_flight == 0;
                    u.ttl
                        .filter(|ttl| idle && u.last_used.elapsed() >= *ttl)
                        .map(|_| id.clone())
                }
                Residency::Loading { .. } => None,
            })
            .collect();
        for id in &expired {
            models.remove(id);
        }
        let left = models.len();
        drop(models);
        for id in &expired {
            self.unloaded(id, "ttl", left);
        }
    }
}
