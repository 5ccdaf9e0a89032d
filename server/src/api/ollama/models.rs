//! Ollama's model routes: `GET /api/tags` (every model), `POST /api/show`,
//! `GET /api/ps` (loaded ones), `GET /api/version`, `POST /api/pull` (from
//! the Hugging Face Hub, with Ollama's progress lines) and
//! `DELETE /api/delete` (a downloaded model's files). Pulling and deleting
//! need the `models:manage` scope.

use std::path::Path;
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferrite_openapi::models::{ModelKind, ModelMeta};
use ferrite_openapi::ollama::{
    Details, Model, ModelName, OllamaError, OllamaErrors, Progress, Ps, PullRequest, Running, Show,
    Tags, Version, VERSION,
};
use ferrite_openapi::{ApiError, ApiResult};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::answer::{ndjson, rfc3339};
use super::names;
use crate::downloads::{Started, Wanted};
use crate::http::extract::{AnyJson, Caller};
use crate::registry::catalog::Spec;
use crate::registry::MANAGE_MODELS;
use crate::state::AppState;

fn details(meta: Option<&ModelMeta>) -> Details {
    let arch = meta
        .and_then(|m| m.architecture.clone())
        .unwrap_or_default();
    Details {
        parent_model: String::new(),
        format: meta
            .map(|m| m.format.to_ascii_lowercase())
            .unwrap_or_default(),
        families: vec![arch.clone()],
        family: arch,
        // ferrite reads no parameter count from the header.
        parameter_size: String::new(),
        quantization_level: meta
            .and_then(|m| m.quantization.clone().or_else(|| m.isq.clone()))
            .unwrap_or_default(),
    }
}

fn modified(path: &Path) -> String {
    let at = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    rfc3339(at)
}

/// Ollama's digest names a manifest; here it names the file as found (its
/// path, size and time), not its content: hashing gigabytes per listing
/// would cost more than the listing is worth.
fn digest(spec: &Spec, size: u64, modified: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(format!(
        "{}\0{size}\0{modified}",
        spec.options.path.display()
    ));
    hex::encode(hash.finalize())
}

fn model(state: &AppState, spec: &Spec) -> Model {
    let meta = state.registry.meta(spec);
    let size = meta.as_ref().map_or(0, |m| m.size_bytes);
    let modified_at = modified(&spec.options.path);
    Model {
        name: names::listed(&spec.id),
        model: names::listed(&spec.id),
        digest: digest(spec, size, &modified_at),
        modified_at,
        size,
        details: details(meta.as_ref()),
    }
}

/// Every model on disk or in config.
#[utoipa::path(get, path = "/api/tags", operation_id = "ollamaTags", tag = "ollama",
    responses((status = 200, body = Tags), OllamaErrors))]
pub async fn tags(State(state): State<AppState>) -> Json<Tags> {
    let specs = state.registry.specs().await;
    Json(Tags {
        models: specs.iter().map(|s| model(&state, s)).collect(),
    })
}

/// The models loaded now.
#[utoipa::path(get, path = "/api/ps", operation_id = "ollamaPs", tag = "ollama",
    responses((status = 200, body = Ps), OllamaErrors))]
pub async fn ps(State(state): State<AppState>) -> Json<Ps> {
    let specs = state.registry.specs().await;
    let models = specs
        .iter()
        .filter_map(|spec| {
            let instance = state.registry.instance(&spec.id)?;
            let listed = model(&state, spec);
            // No TTL: loaded until evicted, which Ollama shows as far away.
            let left = instance
                .ttl
                .map_or(Duration::from_secs(100 * 365 * 86400), |t| {
                    t.saturating_sub(instance.idle)
                });
            Some(Running {
                name: listed.name,
                model: listed.model,
                size: listed.size,
                digest: listed.digest,
                details: listed.details,
                expires_at: rfc3339(SystemTime::now() + left),
                size_vram: 0,
                context_length: instance.meta.map_or(0, |m| m.context_length),
            })
        })
        .collect();
    Json(Ps { models })
}

/// The Ollama API version these routes follow.
#[utoipa::path(get, path = "/api/version", operation_id = "ollamaVersion", tag = "ollama",
    responses((status = 200, body = Version)))]
pub async fn version() -> Json<Version> {
    Json(Version {
        version: VERSION.into(),
    })
}

/// The spec an Ollama name stands for.
async fn spec(state: &AppState, name: &str) -> ApiResult<std::sync::Arc<Spec>> {
    if name.trim().is_empty() {
        return Err(ApiError::invalid(
            "model",
            "Name the model: `model` is required.",
        ));
    }
    let name = names::lookup(&state.registry, name).await;
    state.registry.resolve(Some(&name)).await
}

fn capabilities(meta: Option<&ModelMeta>, template: &str) -> Vec<String> {
    let Some(meta) = meta else {
        return vec!["completion".into()];
    };
    if meta.kind == ModelKind::Embeddings {
        return vec!["embedding".into()];
    }
    let mut caps = vec!["completion".to_string()];
    if template.contains("tools") {
        caps.push("tools".into());
    }
    if meta.vision {
        caps.push("vision".into());
    }
    if template.contains("think") {
        caps.push("thinking".into());
    }
    caps
}

/// Weights as Ollama counts them: `135M`, `1.7B`.
fn parameter_size(n: u64) -> String {
    match n {
        0 => String::new(),
        n if n >= 1_000_000_000 => format!("{:.1}B", n as f64 / 1e9),
        n => format!("{}M", (n as f64 / 1e6).round()),
    }
}

/// A model's details, template and capabilities.
#[utoipa::path(post, path = "/api/show", operation_id = "ollamaShow", tag = "ollama",
    request_body = ModelName, responses((status = 200, body = Show), OllamaErrors))]
pub async fn show(
    State(state): State<AppState>,
    body: Result<AnyJson<ModelName>, ApiError>,
) -> Result<Json<Show>, OllamaError> {
    let AnyJson(request) = body?;
    let spec = spec(&state, request.get()).await?;
    let meta = state.registry.meta(&spec);
    let arch = meta.as_ref().and_then(|m| m.architecture.clone());
    let mut info = json!({ "general.architecture": arch });
    if let (Some(arch), Some(m)) = (&arch, &meta) {
        info[format!("{arch}.context_length")] = json!(m.max_context_length);
    }
    let context = meta.as_ref().map_or(0, |m| m.context_length);
    // The header again, for what the registry does not keep: the template's
    // text and the weight count (a GGUF's; a safetensors folder has neither).
    let path = spec.options.path.clone();
    let card = tokio::task::spawn_blocking(move || {
        path.is_file()
            .then(|| ferrite_engine::card(&path).ok())
            .flatten()
    })
    .await
    .ok()
    .flatten();
    let template = card
        .as_ref()
        .and_then(|c| c.chat_template.clone())
        .unwrap_or_default();
    let mut details = details(meta.as_ref());
    if let Some(card) = &card {
        details.parameter_size = parameter_size(card.parameters);
        info["general.parameter_count"] = json!(card.parameters);
    }
    Ok(Json(Show {
        modelfile: format!(
            "# Modelfile of {}, as ferrite serves it\nFROM {}\nPARAMETER num_ctx {context}\n",
            spec.id,
            spec.options.path.display()
        ),
        parameters: format!("num_ctx {context}"),
        capabilities: capabilities(meta.as_ref(), &template),
        template,
        details,
        model_info: info,
        modified_at: modified(&spec.options.path),
    }))
}

/// A downloaded model's files: the model's parts and its projector, when
/// they lie in the models directory (nothing else is ever deleted).
fn downloaded_files(state: &AppState, spec: &Spec) -> ApiResult<Vec<std::path::PathBuf>> {
    let refuse = || {
        ApiError::new(
            400,
            "invalid_request_error",
            format!(
                "`{}` is not a downloaded model (it is not in the models directory); ferrite deletes only what it can download.",
                spec.id
            ),
        )
        .with_param("model")
    };
    let dir = state.config.registry.dir().ok_or_else(refuse)?;
    let rel = spec.aliases.first().ok_or_else(refuse)?;
    let path = &spec.options.path;
    if dir.join(rel) != *path || !path.starts_with(&dir) {
        return Err(refuse());
    }
    let folder = path.parent().ok_or_else(refuse)?;
    let name = path.file_name().ok_or_else(refuse)?.to_string_lossy();
    // `x-00001-of-00003.gguf`: every part goes.
    let files = match ferrite_engine::split_part(&name) {
        Some((prefix, _, of)) => (1..=of)
            .map(|k| folder.join(format!("{prefix}-{k:05}-of-{of:05}.gguf")))
            .collect(),
        None => vec![path.clone()],
    };
    Ok(files)
}

/// Deletes a downloaded model's files (unloading it first).
#[utoipa::path(delete, path = "/api/delete", operation_id = "ollamaDelete", tag = "ollama",
    request_body = ModelName, responses((status = 200, description = "Deleted."), OllamaErrors))]
pub async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    body: Result<AnyJson<ModelName>, ApiError>,
) -> Result<Response, OllamaError> {
    caller.require(MANAGE_MODELS)?;
    let AnyJson(request) = body?;
    let spec = spec(&state, request.get()).await?;
    let files = downloaded_files(&state, &spec)?;
    if state.registry.instance(&spec.id).is_some() {
        state.registry.unload(&spec.id).await?;
    }
    // A part already gone is no error.
    tokio::task::spawn_blocking(move || {
        files
            .iter()
            .filter(|f| f.is_file())
            .try_for_each(std::fs::remove_file)
    })
    .await
    .map_err(|_| ApiError::internal("Deleting the model's files failed."))?
    .map_err(|e| ApiError::internal(format!("Deleting the model's files failed: {e}")))?;
    // The next listing rescans the directory.
    state.registry.specs().await;
    Ok(Json(json!({})).into_response())
}

/// Downloads a model from the Hugging Face Hub (`hf.co/owner/repo:QUANT`,
/// as Ollama pulls GGUFs): progress lines as Ollama sends them, unless
/// `stream: false`.
#[utoipa::path(post, path = "/api/pull", operation_id = "ollamaPull", tag = "ollama",
    request_body = PullRequest,
    responses(
        (status = 200, description = "`{\"status\": \"success\"}`, or (streaming) progress lines ending with it.",
            content((Progress = "application/json"), (Progress = "application/x-ndjson"))),
        OllamaErrors,
    ))]
pub async fn pull(
    State(state): State<AppState>,
    Caller(caller): Caller,
    body: Result<AnyJson<PullRequest>, ApiError>,
) -> Result<Response, OllamaError> {
    caller.require(MANAGE_MODELS)?;
    let AnyJson(request) = body?;
    let wanted = Wanted::parse(request.name.get(), None)?;
    let choice = state.downloads.choose(&wanted).await?;
    let digest = choice
        .files
        .first()
        .and_then(|f| f.sha256.clone())
        .map(|h| format!("sha256:{h}"));
    let total: u64 = choice
        .files
        .iter()
        .chain(&choice.mmproj)
        .map(|f| f.size)
        .sum();
    let started = state
        .downloads
        .start(&wanted, choice, state.key_of())
        .await?;
    let status = |s: &str| Progress {
        status: s.into(),
        ..Progress::default()
    };
    let lines = async_stream::stream! {
        yield Ok(status("pulling manifest"));
        if let Started::Job(job) = started {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                let now = job.status();
                yield Ok(Progress {
                    status: format!("pulling {}", digest.as_deref().unwrap_or("model")),
                    digest: digest.clone(),
                    total: Some(total),
                    completed: now.downloaded_bytes,
                });
                match now.status.as_str() {
                    "downloading" => continue,
                    "completed" => break,
                    _ => {
                        let why = now.error.unwrap_or_else(|| format!("The download {}.", now.status));
                        yield Err(ApiError::new(500, "server_error", why));
                        return;
                    }
                }
            }
            // The fetch checked every file's sha256 before it completed.
            yield Ok(status("verifying sha256 digest"));
            yield Ok(status("writing manifest"));
        }
        yield Ok(status("success"));
    };
    if request.stream != Some(false) {
        return Ok(ndjson(lines));
    }
    let mut lines = std::pin::pin!(lines);
    let mut last = status("success");
    while let Some(line) = futures::StreamExt::next(&mut lines).await {
        last = line?;
    }
    Ok(Json(last).into_response())
}
