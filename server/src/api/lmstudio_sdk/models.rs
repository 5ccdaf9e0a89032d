//! The model endpoints of the `llm` and `embedding` namespaces (and
//! `system.listDownloadedModels`) over the registry. ferrite keeps one
//! instance per model: its identifier and instance reference are the
//! model's id.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferrite_openapi::embeddings::{EmbeddingRequest, Vector};
use ferrite_openapi::lmstudio_sdk::{
    EmbedParameter, InstanceInfo, KvConfig, KvField, LoadParameter, ModelInfo, ModelQuery,
    ModelSpecifier, Quantization, SdkError, SpecifierParameter, TextParameter, UnloadParameter,
};
use ferrite_openapi::models::ModelKind;
use ferrite_openapi::{ApiError, ApiResult};
use serde_json::{json, Value};

use crate::api::lmstudio_sdk::error;
use crate::api::lmstudio_sdk::session::{Channel, Session};
use crate::chat::generate::{self, Valid};
use crate::registry::catalog::Spec;
use crate::registry::{Manage, Origin, MANAGE_MODELS};

/// The namespaces that hold models, and of which kind.
pub fn kind_of(namespace: &str) -> Option<ModelKind> {
    match namespace {
        "llm" => Some(ModelKind::Llm),
        "embedding" => Some(ModelKind::Embeddings),
        _ => None,
    }
}

fn sdk_kind(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Llm => "llm",
        ModelKind::Embeddings => "embedding",
    }
}

/// `Q4_1` is 4 bits, `F16` 16, `BF16` 16.
fn bits(name: &str) -> u32 {
    let digits: String = name
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap_or(0)
}

/// A model as the SDKs describe it; with its instance when loaded and
/// `loaded` is asked for.
fn describe(session: &Session, spec: &Spec, loaded: bool) -> Option<ModelInfo> {
    let registry = &session.state.registry;
    let meta = registry.meta(spec)?;
    let instance = registry
        .instance(&spec.id)
        .filter(|i| loaded && i.status == "loaded");
    let llm = meta.kind == ModelKind::Llm;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Some(ModelInfo {
        kind: sdk_kind(meta.kind),
        model_key: spec.id.clone(),
        format: meta.format.clone(),
        display_name: spec.id.clone(),
        publisher: spec.publisher(),
        path: spec.options.path.display().to_string(),
        size_bytes: meta.size_bytes,
        indexed_model_identifier: spec.id.clone(),
        device_identifier: None,
        architecture: meta.architecture.clone(),
        quantization: meta.quantization.clone().map(|name| Quantization {
            bits: bits(&name),
            name,
        }),
        max_context_length: meta.max_context_length,
        vision: llm.then_some(meta.vision),
        trained_for_tool_use: llm.then_some(false),
        instance: instance.map(|i| InstanceInfo {
            identifier: spec.id.clone(),
            instance_reference: spec.id.clone(),
            ttl_ms: i.ttl.map(|t| t.as_millis() as u64),
            last_used_time: Some(now.saturating_sub(i.idle).as_millis() as u64),
            context_length: meta.context_length,
        }),
    })
}

fn to_value(info: Option<ModelInfo>) -> Value {
    info.and_then(|i| serde_json::to_value(i).ok())
        .unwrap_or(Value::Null)
}

/// The ids of the loaded models of `kind`.
async fn loaded_ids(session: &Session, kind: ModelKind) -> Vec<Arc<Spec>> {
    let registry = &session.state.registry;
    registry
        .specs()
        .await
        .into_iter()
        .filter(|s| registry.is_loaded(&s.id))
        .filter(|s| registry.meta(s).is_some_and(|m| m.kind == kind))
        .collect()
}

pub async fn list_loaded(session: &Session, kind: ModelKind) -> Value {
    let specs = loaded_ids(session, kind).await;
    Value::Array(
        specs
            .iter()
            .filter_map(|s| describe(session, s, true))
            .filter_map(|i| serde_json::to_value(i).ok())
            .collect(),
    )
}

pub async fn downloaded(session: &Session) -> Value {
    let specs = session.state.registry.specs().await;
    Value::Array(
        specs
            .iter()
            .filter_map(|s| describe(session, s, false))
            .filter_map(|i| serde_json::to_value(i).ok())
            .collect(),
    )
}

/// The name a specifier gives, if any (an empty query means "any").
pub fn name_of(specifier: &ModelSpecifier) -> Option<&str> {
    match specifier {
        ModelSpecifier::Query { query } => query.identifier.as_deref().or(query.path.as_deref()),
        ModelSpecifier::InstanceReference { instance_reference } => Some(instance_reference),
    }
}

/// The model a specifier means: a name is resolved (and loaded just in
/// time by whoever uses it); no name means a loaded model of `kind`, else
/// the default one.
pub async fn resolve(
    session: &Session,
    kind: ModelKind,
    specifier: &ModelSpecifier,
) -> Result<Arc<Spec>, SdkError> {
    let name = name_of(specifier);
    if name.is_none() {
        if let Some(spec) = loaded_ids(session, kind).await.into_iter().next() {
            return Ok(spec);
        }
    }
    match session.state.registry.resolve_for(name, kind).await {
        Ok(spec) => Ok(spec),
        Err(e) => Err(not_found(session, kind, specifier, e).await),
    }
}

/// The SDKs' model-not-found error when that is what `e` says.
pub async fn not_found(
    session: &Session,
    kind: ModelKind,
    specifier: &ModelSpecifier,
    e: ApiError,
) -> SdkError {
    if e.code != Some(ferrite_openapi::ErrorCode::ModelNotFound) {
        return error::from_api(e);
    }
    let query = match specifier {
        ModelSpecifier::Query { query } => query.clone(),
        ModelSpecifier::InstanceReference { instance_reference } => ModelQuery {
            identifier: Some(instance_reference.clone()),
            ..Default::default()
        },
    };
    let loaded = loaded_ids(session, kind)
        .await
        .iter()
        .map(|s| s.id.clone())
        .collect();
    error::no_model(&query, loaded, e)
}

/// A loaded model's description; `throwIfNotFound` decides between an
/// error and nothing for one that is not loaded.
pub async fn info(
    session: &Session,
    kind: ModelKind,
    p: SpecifierParameter,
) -> Result<Value, SdkError> {
    let spec = resolve(session, kind, &p.specifier).await?;
    if session.state.registry.is_loaded(&spec.id) {
        return Ok(to_value(describe(session, &spec, true)));
    }
    if !p.throw_if_not_found {
        return Ok(Value::Null);
    }
    let e = ApiError::new(
        404,
        "invalid_request_error",
        format!("The model `{}` is not loaded.", spec.id),
    )
    .with_code(ferrite_openapi::ErrorCode::ModelNotFound);
    Err(not_found(session, kind, &p.specifier, e).await)
}

/// The load config in force: the context length.
pub async fn load_config(
    session: &Session,
    kind: ModelKind,
    p: SpecifierParameter,
) -> Result<Value, SdkError> {
    let spec = resolve(session, kind, &p.specifier).await?;
    let context = session
        .state
        .registry
        .meta(&spec)
        .map_or(0, |m| m.context_length);
    let config = KvConfig {
        fields: vec![KvField {
            key: format!("{}.load.contextLength", sdk_kind(kind)),
            value: json!(context),
        }],
    };
    Ok(serde_json::to_value(config).unwrap_or(Value::Null))
}

pub async fn unload(session: &Session, p: UnloadParameter) -> Result<Value, SdkError> {
    session
        .caller
        .require(MANAGE_MODELS)
        .map_err(error::from_api)?;
    session
        .state
        .registry
        .unload(&p.identifier)
        .await
        .map_err(error::from_api)?;
    Ok(Value::Null)
}

/// The ids of `tokenize` (and `countTokens`, which counts them).
pub async fn tokenize(
    session: &Session,
    kind: ModelKind,
    p: TextParameter,
) -> Result<Vec<u32>, SdkError> {
    let limits = &session.state.config.limits;
    let spec = resolve(session, kind, &p.specifier).await?;
    async {
        limits.check_tokenize("inputString", p.input_string.len())?;
        let lease = generate::model(&session.state, Some(&spec.id), None, Some(kind)).await?;
        lease.engine.encode(&p.input_string, false).await
    }
    .await
    .map_err(error::from_api)
}

/// `embedString`: the embeddings road, budgets included.
pub async fn embed(session: &Session, p: EmbedParameter) -> Result<Value, SdkError> {
    let spec = resolve(session, ModelKind::Embeddings, &p.model_specifier).await?;
    let embedded = async {
        let request: EmbeddingRequest = serde_json::from_value(json!({
            "model": spec.id,
            "input": p.input_string,
        }))
        .map_err(|e| ApiError::invalid("inputString", e.to_string()))?;
        let request = Valid::new(request, &session.state.config.limits)?;
        let (_, response) =
            generate::embed(&session.state, &session.caller.tenant, request).await?;
        ApiResult::Ok(response)
    }
    .await
    .map_err(error::from_api)?;
    let embedding = match embedded.data.into_iter().next().map(|d| d.embedding) {
        Some(Vector::Float(v)) => v,
        _ => Vec::new(),
    };
    Ok(json!({ "embedding": embedding }))
}

/// `loadModel` (always answers with the instance; ferrite keeps one per
/// model) and `getOrLoad` (JIT, with the registry's TTL unless given):
/// progress every 250 ms, then the instance.
pub async fn load(
    session: &Session,
    kind: ModelKind,
    p: LoadParameter,
    channel: &Channel,
    get_or_load: bool,
) -> Result<(), SdkError> {
    // An explicit load needs `models:manage`; `getOrLoad` is a
    // just-in-time load, which needs it only to change a resident model.
    let manage = Manage::from_grant(session.caller.holds(MANAGE_MODELS));
    if !get_or_load {
        manage.require("Loading a model").map_err(error::from_api)?;
    }
    let name = if get_or_load {
        p.identifier.clone()
    } else {
        p.model_key.clone()
    };
    let Some(name) = name.filter(|n| !n.trim().is_empty()) else {
        return Err(error::from_api(ApiError::invalid(
            "modelKey",
            "Name the model to load.",
        )));
    };
    let specifier = ModelSpecifier::Query {
        query: ModelQuery {
            identifier: Some(name),
            ..Default::default()
        },
    };
    let spec = resolve(session, kind, &specifier).await?;
    let registry = session.state.registry.clone();
    let ttl = p.ttl_ms.or(p.load_ttl_ms).map(|ms| ms.div_ceil(1000));
    let key = format!("{}.load.contextLength", sdk_kind(kind));
    let context = match p.load_config_stack.get(&key) {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    error::from_api(ApiError::invalid(
                        "contextLength",
                        "`contextLength` must be a whole number of tokens.",
                    ))
                })?,
        ),
    };
    registry
        .admissible(&spec, context, manage, "contextLength")
        .await
        .map_err(error::from_api)?;
    let already = registry.is_loaded_with(&spec.id, context);
    let origin = if get_or_load {
        Origin::Request { ttl }
    } else {
        Origin::Explicit { ttl }
    };
    let info = to_value(describe(session, &spec, false));
    if get_or_load && already {
        let lease = registry
            .acquire_with(spec.clone(), origin, context, manage)
            .await;
        let lease = lease.map_err(error::from_api)?;
        drop(lease);
        let info = to_value(describe(session, &spec, true));
        channel
            .send(json!({"type": "alreadyLoaded", "info": info}))
            .await;
        return Ok(());
    }
    let (progress, success) = if get_or_load {
        let start = json!({"type": "startLoading", "identifier": spec.id, "info": info});
        channel.send(start).await;
        ("loadProgress", "loadSuccess")
    } else {
        channel
            .send(json!({"type": "resolved", "info": info}))
            .await;
        ("progress", "success")
    };
    let acquire = registry.acquire_with(spec.clone(), origin, context, manage);
    tokio::pin!(acquire);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let lease = loop {
        tokio::select! {
            lease = &mut acquire => break lease.map_err(error::from_api)?,
            _ = tick.tick() => {
                let fraction = registry.progress(&spec.id).fraction;
                channel.send(json!({"type": progress, "progress": fraction})).await;
            }
            () = channel.cancelled.cancelled() => return Ok(()),
        }
    };
    drop(lease);
    let info = to_value(describe(session, &spec, true));
    channel.send(json!({"type": success, "info": info})).await;
    Ok(())
}
