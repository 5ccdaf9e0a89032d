//! OpenAI-style errors for unknown routes and wrong methods.

use axum::http::{Method, Uri};
use ferrite_openapi::ApiError;

pub async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("Invalid URL ({method} {})", uri.path()))
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(format!("Method {method} is not allowed for {}", uri.path()))
}
