//! `POST /v1/embeddings` and LM Studio's `POST /api/v0/embeddings`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferrite_openapi::doc::ApiErrors;
use ferrite_openapi::embeddings::{EmbeddingRequest, EmbeddingResponse};
use ferrite_openapi::ApiResult;

use crate::chat::generate::{self, Valid};
use crate::http::extract::{Caller, JsonBody};
use crate::http::headers::append_headers;
use crate::http::telemetry;
use crate::state::AppState;

async fn embed(state: AppState, caller: Caller, request: EmbeddingRequest) -> ApiResult<Response> {
    let Caller(caller) = caller;
    tracing::Span::current().record("tenant", caller.tenant.as_str());
    let started = std::time::Instant::now();
    let request = Valid::new(request, &state.config.limits)?;
    let result = generate::embed(&state, &caller.tenant, request).await;
    let done = result.as_ref().ok();
    telemetry::embedded(
        started,
        done.map(|(_, a)| (a.data.len(), a.usage.prompt_tokens)),
    );
    let (headers, answer) = result?;
    let mut response = Json(answer).into_response();
    append_headers(&mut response, headers);
    Ok(response)
}

/// Embeds one input or many, batched together, with an embedding model.
#[utoipa::path(post, path = "/v1/embeddings", operation_id = "createEmbedding", tag = "openai",
    request_body = EmbeddingRequest,
    responses((status = 200, body = EmbeddingResponse), ApiErrors))]
pub async fn embeddings(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<EmbeddingRequest>,
) -> ApiResult<Response> {
    embed(state, caller, request).await
}

/// LM Studio's spelling of the same.
#[utoipa::path(post, path = "/api/v0/embeddings", operation_id = "createEmbeddingV0", tag = "lmstudio",
    request_body = EmbeddingRequest,
    responses((status = 200, body = EmbeddingResponse), ApiErrors))]
pub async fn embeddings_v0(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<EmbeddingRequest>,
) -> ApiResult<Response> {
    embed(state, caller, request).await
}
