//! The orchestrator API of the desktop system ferrite replaces, switched on
//! with `[orchestrator]`: `POST /chat`, `POST /chat/stream`, `GET` and
//! `DELETE /conversation`, `POST /generate`, `GET /health` and `GET /info`,
//! under `prefix`. Chats take the one chat road (memory, cache, budgets,
//! thinking apply). Each tenant has one conversation in the memory store;
//! its latest turns go with every message, after a system message holding
//! the system prompt, the context documents and the message's `context`.
//! The paths move with the prefix, so they are not in the OpenAPI document.

use std::convert::Infallible;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use ferrite_middleware::memory_export;
use ferrite_middleware::memory_store::{ExportFilter, MemoryStore, NewMemory};
use ferrite_openapi::aggregate::{ChatAccumulator, CompletionAccumulator};
use ferrite_openapi::chat::{CallContext, ChatMessage, ChatRequest, Role};
use ferrite_openapi::common::Usage;
use ferrite_openapi::completions::{CompletionRequest, Prompt};
use ferrite_openapi::memory::Memory;
use ferrite_openapi::orchestrator::{
    Conversation, ConversationCleared, GenerateReply, GenerateRequest, OrchestratorChat,
    OrchestratorEvent, OrchestratorHealth, OrchestratorInfo, OrchestratorReply, Turn,
};
use ferrite_openapi::{ApiError, ApiResult};
use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;

use crate::chat::documents::Documents;
use crate::chat::generate::{complete, generate, Valid};
use crate::config::OrchestratorConfig;
use crate::http::extract::{Caller, JsonBody};
use crate::state::AppState;

struct Orchestrator {
    config: OrchestratorConfig,
    documents: Documents,
}

/// The prefix as routes take it: empty, or `/name` without a final `/`.
fn prefix(config: &OrchestratorConfig) -> String {
    match config.prefix.trim().trim_matches('/') {
        "" => String::new(),
        p => format!("/{p}"),
    }
}

/// The paths authentication must cover (none when the API is off); at the
/// root, ferrite's own `/health` stays open.
pub fn protected_paths(config: &OrchestratorConfig) -> Vec<String> {
    match (config.enabled, prefix(config)) {
        (false, _) => Vec::new(),
        (true, p) if p.is_empty() => ["/chat", "/conversation", "/generate", "/info"]
            .map(String::from)
            .to_vec(),
        (true, p) => vec![p],
    }
}

/// `api` with the orchestrator's routes under the configured prefix.
pub fn mount(api: Router<AppState>, config: &OrchestratorConfig) -> Router<AppState> {
    let prefix = prefix(config);
    let routes = Router::new()
        .route("/chat", post(chat))
        .route("/chat/stream", post(chat_stream))
        .route("/conversation", get(conversation).delete(clear))
        .route("/generate", post(generate_text))
        .route("/info", get(info));
    // Without a prefix, ferrite's own `/health` answers.
    let routes = match prefix.is_empty() {
        true => routes,
        false => routes.route("/health", get(health)),
    };
    let routes = routes.layer(Extension(Arc::new(Orchestrator {
        documents: Documents::new(&config.documents),
        config: config.clone(),
    })));
    match prefix.is_empty() {
        true => api.merge(routes),
        false => api.nest(&prefix, routes),
    }
}

fn store(state: &AppState) -> ApiResult<&Arc<dyn MemoryStore>> {
    state.exchanges.as_ref().ok_or_else(|| {
        ApiError::unavailable("The conversation store could not be opened; see the server log.")
    })
}

impl Orchestrator {
    fn filter(&self) -> ExportFilter {
        ExportFilter {
            conversation: Some(self.config.conversation.clone()),
            ..ExportFilter::default()
        }
    }

    /// The tenant's conversation, oldest first: only the last `keep` when
    /// given (one newest-first query), else all of it a page at a time.
    async fn exchanges(
        &self,
        state: &AppState,
        tenant: &str,
        keep: Option<usize>,
    ) -> ApiResult<Vec<Memory>> {
        let store = store(state)?.clone();
        let failed = |e| ApiError::unavailable(format!("The conversation store failed: {e}."));
        if let Some(n) = keep {
            let latest = ExportFilter {
                newest_first: true,
                ..self.filter()
            };
            let mut kept = store
                .export_page(tenant, &latest, 0, n)
                .await
                .map_err(failed)?;
            kept.reverse();
            return Ok(kept);
        }
        let mut pages = memory_export::pages(store, tenant.to_string(), self.filter());
        let mut all = Vec::new();
        while let Some(page) = pages.next().await {
            all.extend(page.map_err(failed)?);
        }
        Ok(all)
    }

    /// The chat request for `message`: system prompt, documents and
    /// context, the conversation's latest turns, then the message.
    async fn request(
        &self,
        state: &AppState,
        tenant: &str,
        chat: OrchestratorChat,
    ) -> ApiResult<Valid<ChatRequest>> {
        if chat.message.trim().is_empty() {
            return Err(ApiError::invalid("message", "`message` must not be empty."));
        }
        let mut system = self.config.system_prompt.clone();
        let documents = self.documents.text().await;
        if !documents.is_empty() {
            system.push_str("\n\n");
            system.push_str(&documents);
        }
        match chat.context {
            None | Some(Value::Null) => {}
            Some(Value::String(text)) if text.trim().is_empty() => {}
            Some(context) => {
                let text = match context {
                    Value::String(text) => text,
                    other => other.to_string(),
                };
                system.push_str("\n\nContext for this message:\n");
                system.push_str(&text);
            }
        }
        let mut messages = Vec::new();
        if !system.trim().is_empty() {
            messages.push(ChatMessage::text(Role::System, system.trim()));
        }
        for m in self
            .exchanges(state, tenant, Some(self.config.history_turns))
            .await?
        {
            messages.push(ChatMessage::text(Role::User, m.prompt));
            messages.push(ChatMessage::text(Role::Assistant, m.answer));
        }
        messages.push(ChatMessage::text(Role::User, chat.message));
        let request = ChatRequest {
            model: self.config.model.clone(),
            messages,
            max_tokens: Some(i64::from(self.config.max_tokens)),
            context: CallContext {
                tenant: tenant.to_string(),
                conversation: Some(self.config.conversation.clone()),
                ..CallContext::default()
            },
            ..ChatRequest::default()
        };
        Valid::new(request, &state.config.limits)
    }

    /// Keeps the exchange in the conversation; the memory layer already
    /// does when memory is on.
    async fn remember(
        &self,
        state: &AppState,
        tenant: &str,
        prompt: String,
        reply: &OrchestratorReply,
    ) {
        let Some(store) = state.exchanges.as_ref().filter(|_| state.memory.is_none()) else {
            return;
        };
        let memory = NewMemory {
            tenant: tenant.to_string(),
            conversation: Some(self.config.conversation.clone()),
            model: reply.model.clone(),
            prompt,
            answer: reply.response.clone(),
            prompt_tokens: reply.usage.prompt_tokens,
            completion_tokens: reply.usage.completion_tokens,
            embedding: None,
        };
        if let Err(e) = store.insert(memory).await {
            tracing::warn!(error = %e, "orchestrator: the exchange was not stored");
        }
    }

    fn reply(&self, response: String, model: String, usage: Option<Usage>) -> OrchestratorReply {
        OrchestratorReply {
            response,
            model,
            conversation: self.config.conversation.clone(),
            usage: usage.unwrap_or_default(),
        }
    }
}

async fn chat(
    State(state): State<AppState>,
    Extension(o): Extension<Arc<Orchestrator>>,
    Caller(caller): Caller,
    JsonBody(body): JsonBody<OrchestratorChat>,
) -> ApiResult<Json<OrchestratorReply>> {
    let message = body.message.clone();
    let request = o.request(&state, &caller.tenant, body).await?;
    let (_, chunks) = generate(&state, request).await?.into_parts();
    let done =
        crate::chat::stream::collect(chunks, ChatAccumulator::default(), ChatAccumulator::push)
            .await?
            .finish();
    let text = done
        .choices
        .into_iter()
        .next()
        .and_then(|c| c.message.content)
        .unwrap_or_default();
    let reply = o.reply(text, done.model, done.usage);
    o.remember(&state, &caller.tenant, message, &reply).await;
    Ok(Json(reply))
}

fn event(value: &impl Serialize) -> Event {
    Event::default().json_data(value).unwrap_or_default()
}

/// `data:` events of `{"delta": ...}`, then `{"done": true, "response": ...}`;
/// an error mid-way is an `error` event with OpenAI's error body.
async fn chat_stream(
    State(state): State<AppState>,
    Extension(o): Extension<Arc<Orchestrator>>,
    Caller(caller): Caller,
    JsonBody(body): JsonBody<OrchestratorChat>,
) -> ApiResult<Response> {
    let message = body.message.clone();
    let request = o.request(&state, &caller.tenant, body).await?;
    let (_, mut chunks) = generate(&state, request).await?.into_parts();
    let events = async_stream::stream! {
        let mut acc = ChatAccumulator::default();
        while let Some(item) = chunks.next().await {
            match item {
                Ok(c) => {
                    acc.push(&c);
                    for choice in &c.choices {
                        if let Some(delta) = choice.delta.content.clone().filter(|d| !d.is_empty()) {
                            yield Ok::<_, Infallible>(event(&OrchestratorEvent::Delta { delta }));
                        }
                    }
                }
                Err(e) => {
                    yield Ok(Event::default().event("error").json_data(e.body()).unwrap_or_default());
                    return;
                }
            }
        }
        let done = acc.finish();
        let text = done.choices.into_iter().next().and_then(|c| c.message.content).unwrap_or_default();
        let reply = o.reply(text, done.model, done.usage);
        o.remember(&state, &caller.tenant, message, &reply).await;
        yield Ok(event(&OrchestratorEvent::Done { done: true, reply }));
    };
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

async fn conversation(
    State(state): State<AppState>,
    Extension(o): Extension<Arc<Orchestrator>>,
    Caller(caller): Caller,
) -> ApiResult<Json<Conversation>> {
    let turn = |role: &str, content: String, timestamp| Turn {
        role: role.into(),
        content,
        timestamp,
    };
    let messages = o
        .exchanges(&state, &caller.tenant, None)
        .await?
        .into_iter()
        .flat_map(|m| {
            [
                turn("user", m.prompt, m.created_at),
                turn("assistant", m.answer, m.created_at),
            ]
        })
        .collect();
    Ok(Json(Conversation {
        conversation: o.config.conversation.clone(),
        messages,
    }))
}

async fn clear(
    State(state): State<AppState>,
    Extension(o): Extension<Arc<Orchestrator>>,
    Caller(caller): Caller,
) -> ApiResult<Json<ConversationCleared>> {
    caller.require("memory:write")?;
    let store = store(&state)?;
    let mut deleted = 0;
    for m in o.exchanges(&state, &caller.tenant, None).await? {
        let gone = store
            .delete(&caller.tenant, m.id)
            .await
            .map_err(|e| ApiError::unavailable(format!("The conversation store failed: {e}.")))?;
        deleted += usize::from(gone);
    }
    Ok(Json(ConversationCleared {
        status: "cleared".into(),
        deleted,
    }))
}

async fn generate_text(
    State(state): State<AppState>,
    Extension(o): Extension<Arc<Orchestrator>>,
    Caller(caller): Caller,
    JsonBody(body): JsonBody<GenerateRequest>,
) -> ApiResult<Json<GenerateReply>> {
    if body.prompt.is_empty() {
        return Err(ApiError::invalid("prompt", "`prompt` must not be empty."));
    }
    let request = CompletionRequest {
        model: o.config.model.clone(),
        prompt: Prompt::Text(body.prompt),
        max_tokens: Some(i64::from(body.max_tokens.unwrap_or(o.config.max_tokens))),
        temperature: body.temperature,
        ..CompletionRequest::default()
    };
    let request = Valid::new(request, &state.config.limits)?;
    let (_, chunks) = complete(&state, &caller, request).await?;
    let done = crate::chat::stream::collect(
        chunks,
        CompletionAccumulator::default(),
        CompletionAccumulator::push,
    )
    .await?
    .finish();
    Ok(Json(GenerateReply {
        text: done
            .choices
            .into_iter()
            .next()
            .map(|c| c.text)
            .unwrap_or_default(),
        model: done.model,
        usage: done.usage.unwrap_or_default(),
    }))
}

async fn health(
    State(state): State<AppState>,
    Extension(o): Extension<Arc<Orchestrator>>,
) -> Response {
    let model = model_id(&state, &o).await.unwrap_or_default();
    let (code, status) = match state.registry.is_ready() {
        true => (StatusCode::OK, "ok"),
        false => (StatusCode::SERVICE_UNAVAILABLE, "loading"),
    };
    let health = OrchestratorHealth {
        status: status.into(),
        model,
    };
    (code, Json(health)).into_response()
}

async fn model_id(state: &AppState, o: &Orchestrator) -> ApiResult<String> {
    let spec = state.registry.resolve(o.config.model.as_deref()).await?;
    Ok(spec.id.clone())
}

async fn info(
    State(state): State<AppState>,
    Extension(o): Extension<Arc<Orchestrator>>,
) -> ApiResult<Json<OrchestratorInfo>> {
    let spec = state.registry.resolve(o.config.model.as_deref()).await?;
    let context_length = state.registry.meta(&spec).map_or(0, |m| m.context_length);
    Ok(Json(OrchestratorInfo {
        name: "ferrite".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        model: spec.id.clone(),
        context_length,
        documents: o.documents.paths().await,
        conversation: o.config.conversation.clone(),
    }))
}
