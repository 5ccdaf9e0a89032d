//! Extractors with OpenAI-style rejections. The JSON body: 415 for other
//! media types, 413 past the size limit, 400 naming the bad field, parsed
//! once into the typed request (a large one on the blocking pool: parsing
//! 16 MiB takes a worker for a tenth of a second). The caller: who the
//! auth layer let in.

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use ferrite_middleware::auth::Identity;
use ferrite_openapi::parse::parse_json;
use ferrite_openapi::{ApiError, ErrorCode};
use serde::de::DeserializeOwned;

use crate::state::AppState;

pub struct JsonBody<T>(pub T);

/// Bodies up to this size are parsed in place; larger ones off the async
/// workers.
const PARSE_IN_PLACE: usize = 256 * 1024;

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<T: DeserializeOwned + Send + 'static> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request<Body>, state: &AppState) -> Result<Self, ApiError> {
        // A missing Content-Type is read as JSON: many scripts omit it.
        if let Some(ct) = req.headers().get(CONTENT_TYPE) {
            if !ct.to_str().is_ok_and(is_json) {
                return Err(ApiError::unsupported_media_type());
            }
        }
        read_json(req, state).await.map(JsonBody)
    }
}

/// A JSON body whatever its Content-Type says: Ollama reads every body as
/// JSON, and its documented examples (`curl -d`) send a form type.
pub struct AnyJson<T>(pub T);

impl<T: DeserializeOwned + Send + 'static> FromRequest<AppState> for AnyJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request<Body>, state: &AppState) -> Result<Self, ApiError> {
        read_json(req, state).await.map(AnyJson)
    }
}

async fn read_json<T: DeserializeOwned + Send + 'static>(
    req: Request<Body>,
    state: &AppState,
) -> Result<T, ApiError> {
    let limit = state.config.http.max_body_bytes;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::payload_too_large(limit));
    }
    let bytes = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| ApiError::payload_too_large(limit))?;
    if bytes.is_empty() {
        return Err(ApiError::new(
            400,
            "invalid_request_error",
            "The request body is empty; expected a JSON object.",
        )
        .with_code(ErrorCode::InvalidJson));
    }
    if bytes.len() <= PARSE_IN_PLACE {
        return parse_json(&bytes);
    }
    tokio::task::spawn_blocking(move || parse_json(&bytes))
        .await
        .map_err(|_| ApiError::internal("Reading the request body failed."))?
}

/// The authenticated caller (anonymous when authentication is off).
pub struct Caller(pub Identity);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let identity = parts.extensions.get::<Identity>().cloned();
        Ok(Caller(identity.unwrap_or_else(Identity::anonymous)))
    }
}

/// Query parameters, with a 400 naming the problem.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| QueryParams(q))
            .map_err(|e| {
                ApiError::new(400, "invalid_request_error", e.body_text())
                    .with_code(ErrorCode::InvalidQuery)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::is_json;

    #[test]
    fn media_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("Application/JSON"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
    }
}
