//! The OpenAI error object: `{"error":{"message","type","param","code"}}`.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An error as the OpenAI API reports it, plus the HTTP status it travels with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    #[serde(skip, default = "default_status")]
    #[schema(ignore)]
    pub status: u16,
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    pub code: Option<ErrorCode>,
    /// Response headers the error travels with (`Retry-After`, rate limits);
    /// a boxed slice keeps every `Result<_, ApiError>` small.
    #[serde(skip)]
    #[schema(ignore)]
    pub headers: Box<[(String, String)]>,
}

fn default_status() -> u16 {
    500
}

/// Every error code ferrite sends, by name: code matches on these, never
/// on strings. Serialized as OpenAI's snake_case `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    Cancelled,
    ContextLengthExceeded,
    /// The Hub's repo is gated: its terms must be accepted and a token given.
    GatedRepo,
    InsufficientScope,
    InternalError,
    InvalidApiKey,
    InvalidJson,
    InvalidQuery,
    InvalidValue,
    MemoryDisabled,
    MethodNotAllowed,
    ModelKindMismatch,
    ModelLoadFailed,
    ModelNotFound,
    ModelNotLoaded,
    NotFound,
    RateLimitExceeded,
    RequestTooLarge,
    RouteFailed,
    ServerOverloaded,
    ServiceUnavailable,
    Timeout,
    TooManyCompletions,
    TooManyPrompts,
    UnsupportedMediaType,
    UnsupportedParameter,
    /// A service ferrite relies on (the Hugging Face Hub) failed.
    UpstreamUnavailable,
}

/// The body every error response carries.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ApiError,
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Longest message sent to a client.
const MAX_MESSAGE: usize = 4096;

/// Error text fit for a client: engine errors may carry a Rust backtrace
/// (frames with the build machine's source paths), which says nothing to a
/// client and much to an attacker. Cut at the first frame, drop source
/// locations, bound the length.
fn clean(message: String) -> String {
    let suspicious =
        |l: &str| l.contains(".rs:") || l.contains("/.cargo/") || l.contains("/rustc/");
    if message.len() <= MAX_MESSAGE && !message.contains('\n') && !suspicious(&message) {
        return message;
    }
    let mut out = String::new();
    for line in message.lines() {
        let t = line.trim_start();
        if t.starts_with("0: ") || t.eq_ignore_ascii_case("stack backtrace:") {
            break;
        }
        if suspicious(line) || t.starts_with("at ") {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(line);
    }
    let mut out = out.trim_end().to_string();
    if out.trim().is_empty() {
        out = "The server could not handle this request.".into();
    }
    if out.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push('…');
    }
    out
}

impl ApiError {
    pub fn new(status: u16, kind: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: clean(message.into()),
            kind: kind.to_string(),
            param: None,
            code: None,
            headers: Box::default(),
        }
    }

    pub fn with_headers(mut self, headers: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut all = std::mem::take(&mut self.headers).into_vec();
        all.extend(headers);
        self.headers = all.into_boxed_slice();
        self
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_code(mut self, code: ErrorCode) -> Self {
        self.code = Some(code);
        self
    }

    /// 400 for a request the server understood but will not run.
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", message).with_param(param)
    }

    /// 400 for a request field this engine cannot honour.
    pub fn unsupported(param: &str, message: impl Into<String>) -> Self {
        Self::invalid(param, message).with_code(ErrorCode::UnsupportedParameter)
    }

    pub fn context_length_exceeded(message: impl Into<String>) -> Self {
        Self::invalid("messages", message).with_code(ErrorCode::ContextLengthExceeded)
    }

    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            404,
            "invalid_request_error",
            format!("The model `{model}` does not exist or is not loaded."),
        )
        .with_param("model")
        .with_code(ErrorCode::ModelNotFound)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "invalid_request_error", message).with_code(ErrorCode::NotFound)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "invalid_request_error", message).with_code(ErrorCode::MethodNotAllowed)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            413,
            "invalid_request_error",
            format!("Request body is larger than the server limit of {limit} bytes."),
        )
        .with_code(ErrorCode::RequestTooLarge)
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            415,
            "invalid_request_error",
            "Expected a request with `Content-Type: application/json`.",
        )
        .with_code(ErrorCode::UnsupportedMediaType)
    }

    /// 403: the credential lacks `scope`; `what` says what needed it.
    pub fn missing_scope(scope: &str, what: Option<&str>) -> Self {
        let message = match what {
            Some(what) => format!("{what} needs the `{scope}` scope, which this credential lacks."),
            None => format!("This credential lacks the `{scope}` scope."),
        };
        Self::new(403, "invalid_request_error", message).with_code(ErrorCode::InsufficientScope)
    }

    /// 429: a tenant's request or token budget is spent for now.
    pub fn rate_limited(message: impl Into<String>) -> Self {
        Self::new(429, "rate_limit_exceeded", message).with_code(ErrorCode::RateLimitExceeded)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "server_error", message).with_code(ErrorCode::ServiceUnavailable)
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(408, "timeout_error", message).with_code(ErrorCode::Timeout)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "server_error", message).with_code(ErrorCode::InternalError)
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.clone(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(mut self) -> Response {
        let status = self.status_code();
        let headers = std::mem::take(&mut self.headers);
        let mut response = (status, Json(ErrorBody { error: self })).into_response();
        for (name, value) in headers.into_vec() {
            if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
                response.headers_mut().insert(n, v);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_no_backtrace_or_source_path() {
        let raw = "Invalid grammar: schema recursion\n   0: candle_core::error::Error::bt\n             \
                   at /root/.cargo/registry/src/index/candle-core-0.10.2/src/error.rs:250:25\n   1: main";
        let e = ApiError::invalid("response_format", raw);
        assert_eq!(e.message, "Invalid grammar: schema recursion");
        let anyhow_style = "bad\n\nStack backtrace:\n   0: x\n";
        assert_eq!(ApiError::internal(anyhow_style).message, "bad");
        let located = "panicked at src/engine/mod.rs:12:5: boom";
        let e = ApiError::internal(located);
        assert!(
            !e.message.contains(".rs:") && !e.message.is_empty(),
            "{}",
            e.message
        );
        let long = "é".repeat(MAX_MESSAGE);
        assert!(ApiError::internal(long).message.len() <= MAX_MESSAGE + '…'.len_utf8());
        let plain = "`n` must be between 1 and 16, got 0.";
        assert_eq!(ApiError::invalid("n", plain).message, plain);
    }

    #[test]
    fn serializes_like_openai() {
        let err = ApiError::invalid("temperature", "bad").with_code(ErrorCode::InvalidValue);
        let v = serde_json::to_value(err.body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"message": "bad", "type": "invalid_request_error",
                "param": "temperature", "code": "invalid_value"}})
        );
    }
}
