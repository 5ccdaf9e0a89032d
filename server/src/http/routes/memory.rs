//! `/v1/memory`: the caller's own conversation memory, and nobody else's:
//! listing, search, feedback scores, deletion, and export as training data.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferrite_middleware::memory_export;
use ferrite_middleware::memory_store::{ExportFilter, MemoryStore, StoreError};
use ferrite_openapi::doc::ApiErrors;
use ferrite_openapi::memory::{
    FeedbackRequest, Memory, MemoryDeleted, MemoryList, TrainingExample,
};
use ferrite_openapi::{ApiError, ApiResult, ErrorCode};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::chat::embedder::embed_with;
use crate::http::extract::{Caller, JsonBody, QueryParams};
use crate::state::AppState;

const MAX_LIMIT: usize = 100;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    /// Cursor: the `last_id` of the previous page.
    after: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Words to look for in past prompts and answers.
    #[param(min_length = 1, pattern = r"\S")]
    q: String,
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// Only exchanges scored at least this, 0 to 1 (unscored ones are left out).
    #[param(minimum = 0.0, maximum = 1.0)]
    min_score: Option<f64>,
    /// Created on or after: a date (`2026-11-01`, UTC) or Unix seconds.
    since: Option<String>,
    /// Created before: a date or Unix seconds.
    until: Option<String>,
    /// Only this conversation's exchanges.
    conversation: Option<String>,
    /// Leave out exchanges that differ only in case, punctuation or spacing
    /// from an earlier one (default true).
    dedupe: Option<bool>,
}

fn store(state: &AppState) -> ApiResult<&Arc<dyn MemoryStore>> {
    if !state.config.memory.enabled {
        return Err(ApiError::not_found(
            "Conversation memory is off on this server (set `memory.enabled`).",
        )
        .with_code(ErrorCode::MemoryDisabled));
    }
    state.memory.as_ref().ok_or_else(|| {
        ApiError::unavailable("The memory store could not be opened; see the server log.")
    })
}

fn limit(requested: Option<usize>) -> ApiResult<usize> {
    match requested.unwrap_or(20) {
        n @ 1..=MAX_LIMIT => Ok(n),
        _ => Err(ApiError::invalid(
            "limit",
            format!("`limit` must be between 1 and {MAX_LIMIT}."),
        )),
    }
}

fn failed(e: StoreError) -> ApiError {
    tracing::warn!(error = %e, "memory store request failed");
    ApiError::unavailable(format!("The memory store is unavailable: {e}."))
}

/// The caller's memories, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/memory", operation_id = "listMemories", tag = "memory", params(ListParams),
    responses((status = 200, body = MemoryList), ApiErrors))]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    QueryParams(p): QueryParams<ListParams>,
) -> ApiResult<Json<MemoryList>> {
    let limit = limit(p.limit)?;
    let (items, more) = store(&state)?
        .list(&caller.tenant, p.after, limit)
        .await
        .map_err(failed)?;
    Ok(Json(MemoryList::new(items, more)))
}

/// The caller's memories most relevant to `q`, best first.
#[utoipa::path(get, path = "/v1/memory/search", operation_id = "searchMemories", tag = "memory", params(SearchParams),
    responses((status = 200, body = MemoryList), ApiErrors))]
pub async fn search(
    State(state): State<AppState>,
    Caller(caller): Caller,
    QueryParams(p): QueryParams<SearchParams>,
) -> ApiResult<Json<MemoryList>> {
    let limit = limit(p.limit)?;
    if p.q.trim().is_empty() {
        return Err(ApiError::invalid("q", "`q` must not be empty."));
    }
    let store = store(&state)?;
    let memory = &state.config.memory;
    let meaning = match &memory.embedding_model {
        Some(model) => match embed_with(&state.registry, model, vec![p.q.clone()]).await {
            Ok(mut v) => v.pop(),
            Err(e) => {
                tracing::warn!(error = %e.message, "memory search: embedding failed; ranking by words");
                None
            }
        },
        None => None,
    };
    let meaning = meaning.as_deref().map(|v| (v, memory.min_similarity));
    let items = store
        .search(&caller.tenant, &p.q, meaning, limit)
        .await
        .map_err(failed)?;
    Ok(Json(MemoryList::new(items, false)))
}

/// The id in a path: another tenant's id is as absent as a made-up one.
fn memory_id(id: &str) -> ApiResult<i64> {
    id.parse().map_err(|_| missing(id))
}

fn missing(id: &str) -> ApiError {
    ApiError::not_found(format!("No memory with id `{id}`."))
}

/// Scores a stored exchange from 0 (bad) to 1 (good), replacing an earlier
/// score; recall weighs by it (`memory.feedback_weight`) and exports filter
/// by it. Needs the `memory:write` scope under JWT auth.
#[utoipa::path(post, path = "/v1/memory/{id}/feedback", operation_id = "scoreMemory", tag = "memory",
    params(("id" = i64, Path, description = "The memory's id")),
    request_body = FeedbackRequest,
    responses((status = 200, body = Memory), ApiErrors))]
pub async fn feedback(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<FeedbackRequest>,
) -> ApiResult<Json<Memory>> {
    caller.require("memory:write")?;
    let store = store(&state)?;
    if !(0.0..=1.0).contains(&request.score) {
        return Err(ApiError::invalid(
            "score",
            "`score` must be between 0 and 1.",
        ));
    }
    if request.comment.as_ref().is_some_and(|c| c.len() > 4096) {
        return Err(ApiError::invalid(
            "comment",
            "`comment` must be at most 4096 bytes.",
        ));
    }
    let n = memory_id(&id)?;
    let rated = store
        .rate(&caller.tenant, n, request.score, request.comment)
        .await
        .map_err(failed)?;
    metrics::counter!("ferrite:memory_feedback_total").increment(u64::from(rated.is_some()));
    rated.map(Json).ok_or_else(|| missing(&id))
}

/// Unix seconds from a date (`2026-11-01`, midnight UTC) or Unix seconds.
fn unix_time(param: &str, value: Option<&str>) -> ApiResult<Option<i64>> {
    let Some(value) = value.map(str::trim) else {
        return Ok(None);
    };
    if let Ok(secs) = value.parse::<i64>() {
        return Ok(Some(secs));
    }
    chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Some(t.and_utc().timestamp()))
        .ok_or_else(|| {
            ApiError::invalid(
                param,
                format!("`{param}` must be a date (2026-11-01) or Unix seconds."),
            )
        })
}

/// The caller's exchanges as OpenAI chat fine-tuning JSONL
/// (`{"messages": [...]}` a line), oldest first, streamed from the store a
/// page at a time.
#[utoipa::path(get, path = "/v1/memory/export", operation_id = "exportMemories", tag = "memory",
    params(ExportParams),
    responses((status = 200, description = "One training example a line.",
        content_type = "application/jsonl", body = TrainingExample), ApiErrors))]
pub async fn export(
    State(state): State<AppState>,
    Caller(caller): Caller,
    QueryParams(p): QueryParams<ExportParams>,
) -> ApiResult<Response> {
    let store = store(&state)?.clone();
    if p.min_score.is_some_and(|s| !(0.0..=1.0).contains(&s)) {
        return Err(ApiError::invalid(
            "min_score",
            "`min_score` must be between 0 and 1.",
        ));
    }
    let filter = ExportFilter {
        min_score: p.min_score,
        since: unix_time("since", p.since.as_deref())?,
        until: unix_time("until", p.until.as_deref())?,
        conversation: p.conversation,
        ..ExportFilter::default()
    };
    let lines = memory_export::jsonl(store, caller.tenant, filter, p.dedupe.unwrap_or(true));
    Ok((
        [
            (header::CONTENT_TYPE, "application/jsonl"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"memory.jsonl\"",
            ),
        ],
        Body::from_stream(lines),
    )
        .into_response())
}

/// Forgets one memory (needs the `memory:write` scope under JWT auth).
#[utoipa::path(delete, path = "/v1/memory/{id}", operation_id = "deleteMemory", tag = "memory",
    params(("id" = i64, Path, description = "The memory's id")),
    responses((status = 200, body = MemoryDeleted), ApiErrors))]
pub async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<MemoryDeleted>> {
    caller.require("memory:write")?;
    let store = store(&state)?;
    let n = memory_id(&id)?;
    if !store.delete(&caller.tenant, n).await.map_err(failed)? {
        return Err(missing(&id));
    }
    Ok(Json(MemoryDeleted {
        id: Some(n),
        object: "memory.deleted".into(),
        deleted: 1,
    }))
}

/// Forgets every memory of the caller.
#[utoipa::path(delete, path = "/v1/memory", operation_id = "deleteMemories", tag = "memory",
    responses((status = 200, body = MemoryDeleted), ApiErrors))]
pub async fn delete_all(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> ApiResult<Json<MemoryDeleted>> {
    caller.require("memory:write")?;
    let n = store(&state)?
        .delete_all(&caller.tenant)
        .await
        .map_err(failed)?;
    Ok(Json(MemoryDeleted {
        id: None,
        object: "memory.list.deleted".into(),
        deleted: n,
    }))
}
