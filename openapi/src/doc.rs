//! The parts of the OpenAPI document that no handler owns: its title, tags,
//! the auth scheme and the error responses every route shares. The server
//! adds each route from its handler's annotation.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi};

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
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    security((), ("bearer" = [])),
    tags(
        (name = "openai", description = "The OpenAI API surface LM Studio serves."),
        (name = "lmstudio", description = "LM Studio's REST API v0: OpenAI bodies plus `stats`, `model_info`, `runtime`."),
        (name = "memory", description = "ferrite extension: the caller's conversation memory."),
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
