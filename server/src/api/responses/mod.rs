//! OpenAI's Responses API: `POST /v1/responses`, `GET` and `DELETE
//! /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`. Stored
//! responses are the caller's own: another tenant's id is a 404.

pub mod convert;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferrite_middleware::response_store::{stored, ResponseStore, StoredResponse};
use ferrite_openapi::aggregate::ChatAccumulator;
use ferrite_openapi::chat::{ChatCompletion, ChatMessage};
use ferrite_openapi::doc::ApiErrors;
use ferrite_openapi::responses::{
    InputItem, InputItemList, ResponseDeleted, ResponseObject, ResponseRequest, ResponseStreamEvent,
};
use ferrite_openapi::{ApiError, ApiResult};
use futures::FutureExt;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::chat::generate::generate;
use crate::http::accept;
use crate::http::extract::{Caller, JsonBody, QueryParams};
use crate::http::headers::append_headers;
use crate::http::telemetry;
use crate::state::AppState;
use convert::{continued, finished, new_id, prepare, stream};

/// Creates a response; `stream: true` answers with the Responses events.
#[utoipa::path(post, path = "/v1/responses", operation_id = "createResponse", tag = "openai",
    request_body = ResponseRequest,
    responses(
        (status = 200, description = "The response, or (with `stream: true`) its events.",
            content((ResponseObject = "application/json"), (ResponseStreamEvent = "text/event-stream"))),
        ApiErrors,
    ))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(request): JsonBody<ResponseRequest>,
) -> ApiResult<Response> {
    let started = Instant::now();
    let limits = &state.config.limits;
    limits.check_shape(&request.shape(), &ResponseRequest::NAMES)?;
    let tenant = caller.0.tenant.clone();
    let previous = match &request.previous_response_id {
        Some(id) => conversation(&state, &tenant, id).await?,
        None => Vec::new(),
    };
    let (id, streaming) = (new_id(), request.stream);
    let keep = request.store.unwrap_or(true);
    let prepared = prepare(&id, request, previous)?;
    let chat_request = accept::accept(&state, caller, &headers, prepared.chat)?;
    let (headers, chunks) = generate(&state, chat_request).await?.into_parts();
    let chunks = telemetry::meter("responses", started, state.config.log.content, chunks);
    let chunks = crate::chat::stream::peek(chunks)
        .await
        .map_err(|e| e.with_headers(headers.clone()))?;
    let saver = Saver {
        store: state.responses.clone().filter(|_| keep),
        tenant,
        items: prepared.items,
        conversation: prepared.conversation,
    };
    let mut response = if streaming {
        let on_done = Box::new(move |done, completion| saver.save(done, completion).boxed());
        stream(prepared.head, chunks, on_done)
    } else {
        let acc =
            crate::chat::stream::collect(chunks, ChatAccumulator::default(), ChatAccumulator::push)
                .await?;
        let completion = acc.finish();
        let done = finished(prepared.head, &completion);
        saver.save(done.clone(), completion).await;
        Json(done).into_response()
    };
    append_headers(&mut response, headers);
    Ok(response)
}

/// What is kept of a finished response (`store: true`).
struct Saver {
    store: Option<Arc<dyn ResponseStore>>,
    tenant: String,
    items: Vec<InputItem>,
    conversation: Vec<ChatMessage>,
}

impl Saver {
    async fn save(self, done: ResponseObject, completion: ChatCompletion) {
        let Some(store) = self.store else { return };
        let record = stored(
            &done.id,
            &self.tenant,
            text(&done),
            text(&self.items),
            text(&continued(self.conversation, &completion)),
        );
        if let Err(e) = store.put(record).await {
            tracing::warn!(response = %done.id, error = %e, "the response could not be stored");
        }
    }
}

/// JSON text of API types (which always serialize).
fn text(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("No response with id `{id}` is stored for you."))
}

/// A stored response of the caller's, or a 404.
async fn fetch(state: &AppState, tenant: &str, id: &str) -> ApiResult<StoredResponse> {
    let store = state.responses.as_ref().ok_or_else(|| not_found(id))?;
    store
        .get(tenant, id)
        .await
        .map_err(|e| ApiError::unavailable(format!("The response store is unavailable: {e}.")))?
        .ok_or_else(|| not_found(id))
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> ApiResult<T> {
    serde_json::from_str(text)
        .map_err(|e| ApiError::internal(format!("A stored response is unreadable: {e}")))
}

/// The chat a `previous_response_id` continues.
async fn conversation(state: &AppState, tenant: &str, id: &str) -> ApiResult<Vec<ChatMessage>> {
    let record = fetch(state, tenant, id)
        .await
        .map_err(|e| e.with_param("previous_response_id"))?;
    parse(&record.conversation)
}

/// A stored response.
#[utoipa::path(get, path = "/v1/responses/{id}", operation_id = "getResponse", tag = "openai",
    params(("id" = String, Path, description = "The response id.")),
    responses((status = 200, body = ResponseObject), ApiErrors))]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ResponseObject>> {
    let record = fetch(&state, &caller.tenant, &id).await?;
    Ok(Json(parse(&record.response)?))
}

/// Deletes a stored response.
#[utoipa::path(delete, path = "/v1/responses/{id}", operation_id = "deleteResponse", tag = "openai",
    params(("id" = String, Path, description = "The response id.")),
    responses((status = 200, body = ResponseDeleted), ApiErrors))]
pub async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ResponseDeleted>> {
    let store = state.responses.as_ref().ok_or_else(|| not_found(&id))?;
    let deleted = store
        .delete(&caller.tenant, &id)
        .await
        .map_err(|e| ApiError::unavailable(format!("The response store is unavailable: {e}.")))?;
    if !deleted {
        return Err(not_found(&id));
    }
    Ok(Json(ResponseDeleted {
        id,
        object: "response".into(),
        deleted: true,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ItemParams {
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    /// `asc` or `desc` (the default).
    #[param(pattern = "^(asc|desc)$")]
    order: Option<String>,
    /// Items after this item id, in the order asked for.
    after: Option<String>,
}

/// The input items of a stored response.
#[utoipa::path(get, path = "/v1/responses/{id}/input_items", operation_id = "listInputItems",
    tag = "openai", params(("id" = String, Path, description = "The response id."), ItemParams),
    responses((status = 200, body = InputItemList), ApiErrors))]
pub async fn input_items(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    QueryParams(p): QueryParams<ItemParams>,
) -> ApiResult<Json<InputItemList>> {
    let limit = match p.limit.unwrap_or(20) {
        n @ 1..=100 => n,
        _ => {
            return Err(ApiError::invalid(
                "limit",
                "`limit` must be between 1 and 100.",
            ))
        }
    };
    let desc = match p.order.as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => return Err(ApiError::invalid("order", "`order` must be asc or desc.")),
    };
    let record = fetch(&state, &caller.tenant, &id).await?;
    let mut items: Vec<InputItem> = parse(&record.input_items)?;
    if desc {
        items.reverse();
    }
    if let Some(after) = p.after.as_deref() {
        let at = items.iter().position(|i| i.id() == Some(after));
        let Some(at) = at else {
            return Err(ApiError::invalid(
                "after",
                format!("No input item `{after}` in this response."),
            ));
        };
        items.drain(..=at);
    }
    let has_more = items.len() > limit;
    items.truncate(limit);
    Ok(Json(InputItemList {
        object: "list".into(),
        first_id: items.first().and_then(|i| i.id().map(String::from)),
        last_id: items.last().and_then(|i| i.id().map(String::from)),
        data: items,
        has_more,
    }))
}
