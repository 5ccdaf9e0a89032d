//! `POST /api/embed` (many inputs) and the older `POST /api/embeddings`
//! (one prompt), on the same road as `/v1/embeddings`.

use std::time::Instant;

use axum::extract::State;
use axum::Json;
use ferrite_openapi::embeddings::{EmbeddingInput, EmbeddingRequest, EncodingFormat, Vector};
use ferrite_openapi::ollama::{
    EmbedInput, EmbedRequest, EmbedResponse, EmbeddingsRequest, EmbeddingsResponse, KeepAlive,
    OllamaError, OllamaErrors,
};
use ferrite_openapi::{ApiError, ApiResult};

use super::keep::Keep;
use super::names;
use crate::chat::generate::{self, Valid};
use crate::http::extract::{AnyJson, Caller};
use crate::state::AppState;

/// Vectors for `input`, in order, and the tokens they took.
async fn vectors(
    state: &AppState,
    caller: &Caller,
    model: &str,
    input: EmbeddingInput,
    dimensions: Option<u32>,
    keep_alive: Option<&KeepAlive>,
) -> ApiResult<(Vec<Vec<f32>>, u32)> {
    let keep = Keep::of(keep_alive, caller)?;
    let model = names::lookup(&state.registry, model).await;
    let request = EmbeddingRequest {
        model: Some(model.clone()),
        input,
        encoding_format: EncodingFormat::Float,
        dimensions,
        user: None,
        ttl: keep.ttl,
    };
    let request = Valid::new(request, &state.config.limits)?;
    let (_, answer) = generate::embed(state, &caller.0.tenant, request).await?;
    // Answered: `keep_alive: 0` unloads now.
    drop(keep.unload_after(&state.registry, Some(model)));
    let vectors = answer
        .data
        .into_iter()
        .map(|e| match e.embedding {
            Vector::Float(v) => v,
            // Asked for floats above; base64 never comes back.
            Vector::Base64(_) => Vec::new(),
        })
        .collect();
    Ok((
        vectors,
        u32::try_from(answer.usage.prompt_tokens).unwrap_or(u32::MAX),
    ))
}

/// Embeds one input or many with an embedding model.
#[utoipa::path(post, path = "/api/embed", operation_id = "ollamaEmbed", tag = "ollama",
    request_body = EmbedRequest, responses((status = 200, body = EmbedResponse), OllamaErrors))]
pub async fn embed(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<AnyJson<EmbedRequest>, ApiError>,
) -> Result<Json<EmbedResponse>, OllamaError> {
    let started = Instant::now();
    let AnyJson(request) = body?;
    let input = match request.input {
        EmbedInput::One(text) => EmbeddingInput::Text(text),
        EmbedInput::Many(texts) => EmbeddingInput::Texts(texts),
    };
    let keep = request.keep_alive.as_ref();
    let (embeddings, tokens) = vectors(
        &state,
        &caller,
        &request.model,
        input,
        request.dimensions,
        keep,
    )
    .await?;
    Ok(Json(EmbedResponse {
        model: request.model,
        embeddings,
        total_duration: u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
        load_duration: 0,
        prompt_eval_count: tokens,
    }))
}

/// One prompt's vector (Ollama's older route).
#[utoipa::path(post, path = "/api/embeddings", operation_id = "ollamaEmbeddings", tag = "ollama",
    request_body = EmbeddingsRequest, responses((status = 200, body = EmbeddingsResponse), OllamaErrors))]
pub async fn embeddings(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<AnyJson<EmbeddingsRequest>, ApiError>,
) -> Result<Json<EmbeddingsResponse>, OllamaError> {
    let AnyJson(request) = body?;
    let input = EmbeddingInput::Text(request.prompt);
    let keep = request.keep_alive.as_ref();
    let (mut vectors, _) = vectors(&state, &caller, &request.model, input, None, keep).await?;
    Ok(Json(EmbeddingsResponse {
        embedding: vectors.pop().unwrap_or_default(),
    }))
}
