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
    pub code: Option<String>,
    /// Response headers the error travels with (`Retry-After`, rate limits);
    /// a boxed slice keeps every `Result<_, ApiError>` small.
    #[serde(skip)]
    #[schema(ignore)]
    pub headers: Box<[(String, String)]>,
}

fn default_status() -> u16 {
    500
}

/// The body every error response carries.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ApiError,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: u16, kind: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
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

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// 400 for a request the server understood but will not run.
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", message).with_param(param)
    }

    /// 400 for a request field this engine cannot honour.
    pub fn unsupported(param: &str, message: impl Into<String>) -> Self {
        Self::invalid(param, message).with_code("unsupported_parameter")
    }

    pub fn context_length_exceeded(message: impl Into<String>) -> Self {
        Self::invalid("messages", message).with_code("context_length_exceeded")
    }

    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            404,
            "invalid_request_error",
            format!("The model `{model}` does not exist or is not loaded."),
        )
        .with_param("model")
        .with_code("model_not_found")
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "invalid_request_error", message).with_code("not_found")
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "invalid_request_error", message).with_code("method_not_allowed")
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            413,
            "invalid_request_error",
            format!("Request body is larger than the server limit of {limit} bytes."),
        )
        .with_code("request_too_large")
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            415,
            "invalid_request_error",
            "Expected a request with `Content-Type: application/json`.",
        )
        .with_code("unsupported_media_type")
    }

    /// 429: a tenant's request or token budget is spent for now.
    pub fn rate_limited(message: impl Into<String>) -> Self {
        Self::new(429, "rate_limit_exceeded", message).with_code("rate_limit_exceeded")
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "server_error", message).with_code("service_unavailable")
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(408, "timeout_error", message).with_code("timeout")
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "server_error", message).with_code("internal_error")
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
    fn serializes_like_openai() {
        let err = ApiError::invalid("temperature", "bad").with_code("invalid_value");
        let v = serde_json::to_value(err.body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"message": "bad", "type": "invalid_request_error",
                "param": "temperature", "code": "invalid_value"}})
        );
    }
}
