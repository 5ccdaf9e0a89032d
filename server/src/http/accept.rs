//! What every API's chat request carries besides its body: the caller
//! (credentials), the conversation, memory and cache directives from the
//! headers; then the request validated, as the one chat road takes it.

use axum::http::header::CACHE_CONTROL;
use axum::http::HeaderMap;
use ferrite_middleware::auth::Identity;
use ferrite_openapi::chat::{CallContext, ChatRequest};
use ferrite_openapi::ApiResult;

use crate::chat::generate::Valid;
use crate::http::extract::Caller;
use crate::registry::MANAGE_MODELS;
use crate::state::AppState;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// A header flag that is on: `1`, `true`, `yes` or `on`.
fn flag_on(value: Option<&str>) -> bool {
    value.is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

/// What the request's headers and credentials say about it.
fn context(caller: Identity, request: &ChatRequest, headers: &HeaderMap) -> CallContext {
    let cache_control = header(headers, CACHE_CONTROL.as_str()).unwrap_or_default();
    let directive = |d: &str| {
        cache_control
            .split(',')
            .any(|x| x.trim().eq_ignore_ascii_case(d))
    };
    let conversation = header(headers, "x-ferrite-conversation")
        .filter(|c| !c.is_empty())
        .map(String::from)
        .or_else(|| request.user.clone().filter(|u| !u.is_empty()));
    let memory = header(headers, "x-ferrite-memory").map(str::to_ascii_lowercase);
    CallContext {
        manage_models: caller.holds(MANAGE_MODELS),
        tenant: caller.tenant,
        conversation,
        no_cache: directive("no-cache"),
        no_store: directive("no-store"),
        no_memory: matches!(memory.as_deref(), Some("off" | "false" | "0" | "no")),
        debug: flag_on(header(headers, "x-ferrite-debug")),
        precompute: false,
        shared_cache: false,
        // Set by the API the request came through (Anthropic, Responses).
        max_tokens_is_cap: request.context.max_tokens_is_cap,
    }
}

/// A chat request as the pipeline takes it: validated, with what its
/// headers and credentials say (shared with LM Studio's v0 route).
pub fn accept(
    state: &AppState,
    Caller(caller): Caller,
    headers: &HeaderMap,
    mut request: ChatRequest,
) -> ApiResult<Valid<ChatRequest>> {
    request.context = context(caller, &request, headers);
    tracing::Span::current().record("tenant", request.context.tenant.as_str());
    let request = Valid::new(request, &state.config.limits)?;
    if state.config.log.content {
        let messages = serde_json::to_string(&request.get().messages).unwrap_or_default();
        tracing::info!(%messages, "chat request");
    }
    Ok(request)
}
