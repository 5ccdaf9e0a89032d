//! `/v1/app/conversations`: the web app's conversations, the caller's
//! tenant's only: list and search, create, read, replace (rename, a new
//! branch), delete, and export or import them all as one JSON file.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use ferrite_middleware::conversation_store::{ConversationStore, StoredConversation};
use ferrite_middleware::memory_store::StoreError;
use ferrite_openapi::conversations::{
    check, Conversation, ConversationDeleted, ConversationExport, ConversationList,
    ConversationSummary, ConversationWrite,
};
use ferrite_openapi::doc::ApiErrors;
use ferrite_openapi::{ApiError, ApiResult};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::http::extract::{Caller, JsonBody, QueryParams};
use crate::state::AppState;

/// The most one export holds (and one import takes).
const MAX_EXPORT: usize = 10_000;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Words the title or a message contains (any case).
    search: Option<String>,
    /// 1 to 1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

fn store(state: &AppState) -> ApiResult<&Arc<dyn ConversationStore>> {
    state.conversations.as_ref().ok_or_else(|| {
        ApiError::unavailable("The conversation store could not be opened; see the server log.")
    })
}

fn failed(e: StoreError) -> ApiError {
    tracing::warn!(error = %e, "conversation store request failed");
    ApiError::unavailable(format!("The conversation store is unavailable: {e}."))
}

fn missing(id: &str) -> ApiError {
    ApiError::not_found(format!("No conversation with id `{id}`."))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// A checked write as the conversation it makes.
fn conversation(id: String, created_at: i64, write: ConversationWrite) -> ApiResult<Conversation> {
    check(&write).map_err(|(field, message)| ApiError::invalid(&field, message))?;
    let title = match write.title.trim() {
        "" => "New chat".to_string(),
        t => t.to_string(),
    };
    Ok(Conversation {
        id,
        object: "conversation".into(),
        created_at,
        updated_at: now_ms(),
        title,
        model: write.model,
        system_prompt: write.system_prompt,
        settings: write.settings,
        messages: write.messages,
        current: write.current,
    })
}

fn stored(tenant: &str, c: &Conversation) -> ApiResult<StoredConversation> {
    let summary = c.summary();
    Ok(StoredConversation {
        id: c.id.clone(),
        tenant: tenant.to_string(),
        title: summary.title,
        model: summary.model,
        message_count: i64::from(summary.message_count),
        created_at: c.created_at,
        updated_at: c.updated_at,
        text: c.text(),
        body: serde_json::to_string(c).map_err(|e| ApiError::internal(e.to_string()))?,
    })
}

fn summary(s: StoredConversation) -> ConversationSummary {
    ConversationSummary {
        id: s.id,
        object: "conversation".into(),
        created_at: s.created_at,
        updated_at: s.updated_at,
        title: s.title,
        model: s.model,
        message_count: u32::try_from(s.message_count).unwrap_or(u32::MAX),
    }
}

fn parsed(s: StoredConversation) -> ApiResult<Conversation> {
    serde_json::from_str(&s.body).map_err(|e| {
        ApiError::internal(format!("Conversation `{}` is stored unreadably: {e}", s.id))
    })
}

/// The caller's conversation `id`, or a 404 (another tenant's included).
async fn owned(
    store: &Arc<dyn ConversationStore>,
    tenant: &str,
    id: &str,
) -> ApiResult<StoredConversation> {
    store
        .get(tenant, id)
        .await
        .map_err(failed)?
        .ok_or_else(|| missing(id))
}

fn new_id() -> String {
    format!("conv_{}", uuid::Uuid::new_v4().simple())
}

/// The caller's conversations, most recently changed first.
#[utoipa::path(get, path = "/v1/app/conversations", operation_id = "listConversations", tag = "app",
    params(ListParams), responses((status = 200, body = ConversationList), ApiErrors))]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    QueryParams(p): QueryParams<ListParams>,
) -> ApiResult<Json<ConversationList>> {
    let limit = match p.limit.unwrap_or(100) {
        n @ 1..=1000 => n,
        _ => return Err(ApiError::invalid("limit", "`limit` is 1 to 1000.")),
    };
    let search = p.search.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let found = store(&state)?
        .list(&caller.tenant, search, limit)
        .await
        .map_err(failed)?;
    Ok(Json(ConversationList {
        object: "list".into(),
        data: found.into_iter().map(summary).collect(),
    }))
}

/// Keeps a new conversation.
#[utoipa::path(post, path = "/v1/app/conversations", operation_id = "createConversation", tag = "app",
    request_body = ConversationWrite, responses((status = 201, body = Conversation), ApiErrors))]
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    JsonBody(write): JsonBody<ConversationWrite>,
) -> ApiResult<(StatusCode, Json<Conversation>)> {
    let c = conversation(new_id(), now_ms(), write)?;
    store(&state)?
        .put(stored(&caller.tenant, &c)?)
        .await
        .map_err(failed)?;
    Ok((StatusCode::CREATED, Json(c)))
}

/// One conversation, with every branch.
#[utoipa::path(get, path = "/v1/app/conversations/{id}", operation_id = "getConversation", tag = "app",
    params(("id" = String, Path, description = "The conversation's id")),
    responses((status = 200, body = Conversation), ApiErrors))]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Conversation>> {
    Ok(Json(parsed(
        owned(store(&state)?, &caller.tenant, &id).await?,
    )?))
}

/// Replaces a conversation: a rename, a new message or branch.
#[utoipa::path(put, path = "/v1/app/conversations/{id}", operation_id = "replaceConversation", tag = "app",
    params(("id" = String, Path, description = "The conversation's id")),
    request_body = ConversationWrite, responses((status = 200, body = Conversation), ApiErrors))]
pub async fn replace(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    JsonBody(write): JsonBody<ConversationWrite>,
) -> ApiResult<Json<Conversation>> {
    let store = store(&state)?;
    let old = owned(store, &caller.tenant, &id).await?;
    let c = conversation(id, old.created_at, write)?;
    if !store
        .put(stored(&caller.tenant, &c)?)
        .await
        .map_err(failed)?
    {
        return Err(missing(&c.id));
    }
    Ok(Json(c))
}

/// Deletes a conversation.
#[utoipa::path(delete, path = "/v1/app/conversations/{id}", operation_id = "deleteConversation", tag = "app",
    params(("id" = String, Path, description = "The conversation's id")),
    responses((status = 200, body = ConversationDeleted), ApiErrors))]
pub async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ConversationDeleted>> {
    if !store(&state)?
        .delete(&caller.tenant, &id)
        .await
        .map_err(failed)?
    {
        return Err(missing(&id));
    }
    Ok(Json(ConversationDeleted {
        id,
        object: "conversation.deleted".into(),
        deleted: true,
    }))
}

/// Every conversation of the caller's, as one file.
#[utoipa::path(get, path = "/v1/app/conversations/export", operation_id = "exportConversations", tag = "app",
    responses((status = 200, body = ConversationExport), ApiErrors))]
pub async fn export(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> ApiResult<Json<ConversationExport>> {
    let all = store(&state)?
        .all(&caller.tenant, MAX_EXPORT)
        .await
        .map_err(failed)?;
    let conversations = all.into_iter().map(parsed).collect::<ApiResult<_>>()?;
    Ok(Json(ConversationExport {
        object: "ferrite.conversations".into(),
        version: 1,
        conversations,
    }))
}

/// Imports an export's conversations as new ones (new ids, their dates
/// kept); all are checked before any is kept.
#[utoipa::path(post, path = "/v1/app/conversations/import", operation_id = "importConversations", tag = "app",
    request_body = ConversationExport, responses((status = 200, body = ConversationList), ApiErrors))]
pub async fn import(
    State(state): State<AppState>,
    Caller(caller): Caller,
    JsonBody(file): JsonBody<ConversationExport>,
) -> ApiResult<Json<ConversationList>> {
    if file.object != "ferrite.conversations" || file.version != 1 {
        return Err(ApiError::invalid(
            "object",
            "Not a conversations file: `object` is `ferrite.conversations` and `version` 1.",
        ));
    }
    if file.conversations.len() > MAX_EXPORT {
        return Err(ApiError::invalid(
            "conversations",
            format!("At most {MAX_EXPORT} conversations at once."),
        ));
    }
    let mut made = Vec::with_capacity(file.conversations.len());
    for (i, c) in file.conversations.into_iter().enumerate() {
        let write = ConversationWrite {
            title: c.title,
            model: c.model,
            system_prompt: c.system_prompt,
            settings: c.settings,
            messages: c.messages,
            current: c.current,
        };
        let mut new = conversation(new_id(), c.created_at, write).map_err(|e| {
            let param = e.param.as_deref().unwrap_or("conversation");
            ApiError::invalid(&format!("conversations[{i}].{param}"), e.message)
        })?;
        new.updated_at = c.updated_at;
        made.push(new);
    }
    let store = store(&state)?;
    for c in &made {
        store
            .put(stored(&caller.tenant, c)?)
            .await
            .map_err(failed)?;
    }
    Ok(Json(ConversationList {
        object: "list".into(),
        data: made.iter().map(Conversation::summary).collect(),
    }))
}
