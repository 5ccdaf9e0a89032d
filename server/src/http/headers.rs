//! Response headers the pipeline's layers ask for.

use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;

/// Adds what the pipeline's layers want the client to know; a name or value
/// that is not a valid header is dropped.
pub fn append_headers(
    response: &mut Response,
    headers: impl IntoIterator<Item = (String, String)>,
) {
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            response.headers_mut().insert(n, v);
        }
    }
}
