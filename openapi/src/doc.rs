//! The parts of the OpenAPI document that no handler owns: its title, tags,
//! the auth scheme and the error responses every route shares. The server
//! adds each route from its handler's annotation.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi};

use crate::anthropic::AnthropicErrorBody;
use crate::error::ErrorBody;

/// The security scheme's name, as `security(...)` spells it above.
pub const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ferrite",
        description = "An OpenAI-compatible LLM inference server (LM Studio's local server API). \
Fields marked as ferrite extensions are not part of the OpenAI API; OpenAI clients send them \
under `extra_body`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    components(schemas(ErrorBody, AnthropicErrorBody, crate::ollama::ErrorBody)),
    modifiers(&BearerAuth),
    security((), ("bearer" = [])),
    tags(
        (name = "openai", description = "The OpenAI API surface LM Studio serves."),
        (name = "lmstudio", description = "LM Studio's REST API: v0 (OpenAI bodies plus `stats`, `model_info`, `runtime`) and v1 model management (list, load with progress, unload)."),
        (name = "memory", description = "ferrite extension: the caller's conversation memory."),
        (name = "app", description = "ferrite extension: the web app's conversations, kept per tenant."),
        (name = "anthropic", description = "Anthropic's Messages API (Claude Code, the `anthropic` SDKs), with Anthropic's error shape."),
        (name = "ollama", description = "Ollama's API (Open WebUI, Continue, the `ollama` clients): NDJSON streams, `{\"error\": ...}` errors, models named `<id>:latest` or `hf.co/owner/repo:QUANT`."),
        (name = "tokens", description = "llama-server's token routes: tokenize, detokenize and render a chat prompt before sending it."),
        (name = "operations", description = "Probes, metrics and this document.")
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "An API key from `auth.keys`, or a JWT when `auth.jwt` is set. \
Needed under /v1 and /api only when authentication is on.",
            ))
            .build();
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    }
}

/// The OpenAI error object, with every status a route under /v1 may send.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum ApiErrors {
    /// Malformed JSON, a field of the wrong type or out of range, a prompt
    /// longer than the context.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// Authentication is on and the key or token is missing or wrong.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The credentials lack the scope this call needs.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// Unknown model or object.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The answer did not start within `http.request_timeout_secs`.
    #[response(status = 408)]
    Timeout(ErrorBody),
    /// The body is larger than `http.max_body_bytes`.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The body is not JSON.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// A request or token budget is spent; `Retry-After` says when to retry.
    #[response(status = 429)]
    RateLimited(ErrorBody),
    /// The model is still loading, the server is full or draining.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// Before OpenAPI 3.2, a `text/event-stream` schema describes one event
/// (`event`, `data`, `id`, `retry`), not its payload. The handlers name the
/// payload; this wraps each into an event whose `data` is that JSON (or an
/// error object) or the final `[DONE]`.
pub fn describe_sse_events(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    let error = serde_json::json!({"$ref": "#/components/schemas/ErrorBody"});
    for operation in paths.values_mut().filter_map(|p| p.as_object_mut()) {
        for op in operation.values_mut() {
            let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut()) else {
                continue;
            };
            for response in responses.values_mut() {
                let Some(sse) = response.pointer_mut("/content/text~1event-stream") else {
                    continue;
                };
                let Some(payload) = sse.get("schema").cloned() else {
                    continue;
                };
                sse["schema"] = serde_json::json!({
                    "type": "object",
                    "required": ["data"],
                    "properties": {
                        "event": {"type": "string"},
                        "id": {"type": "string"},
                        "retry": {"type": "integer"},
                        "data": {"anyOf": [
                            {"const": "[DONE]"},
                            {
                                "type": "string",
                                "contentMediaType": "application/json",
                                "contentSchema": {"anyOf": [payload, error.clone()]}
                            }
                        ]}
                    }
                });
            }
        }
    }
}
