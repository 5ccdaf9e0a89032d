//! `/v1/memory`: the caller's own conversation memory, and nobody else's.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use ferrite_middleware::memory_store::{MemoryStore, StoreError};
use ferrite_openapi::doc::ApiErrors;
use ferrite_openapi::memory::{MemoryDeleted, MemoryList};
use ferrite_openapi::{ApiError, ApiResult, ErrorCode};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::chat::embedder::embed_with;
use crate::http::extract::{Caller, QueryParams};
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
    // Another tenant's id is as absent as a made-up one.
    let missing = || ApiError::not_found(format!("No memory with id `{id}`."));
    let n: i64 = id.parse().map_err(|_| missing())?;
    if !store.delete(&caller.tenant, n).await.map_err(failed)? {
        return Err(missing());
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
