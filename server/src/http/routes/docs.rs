//! `/openapi.json` and the `/docs` page. Swagger UI ships inside the binary
//! (server/assets/swagger-ui, Apache-2.0), so the page works offline.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{Html, IntoResponse, Response};
use ferrite_openapi::{ApiError, ErrorBody};

/// The OpenAPI document, serialized once at start-up.
pub type Document = Arc<str>;

const PAGE: &str = include_str!("../../../assets/docs.html");

/// Asset name, media type, bytes.
const ASSETS: [(&str, &str, &[u8]); 4] = [
    (
        "swagger-ui-bundle.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/swagger-ui/swagger-ui-bundle.js"),
    ),
    (
        "swagger-ui.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../assets/swagger-ui/swagger-ui.css"),
    ),
    (
        "LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../../../assets/swagger-ui/LICENSE"),
    ),
    (
        "swagger-ui-bundle.js.LICENSE.txt",
        "text/plain; charset=utf-8",
        include_bytes!("../../../assets/swagger-ui/swagger-ui-bundle.js.LICENSE.txt"),
    ),
];

/// This API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", operation_id = "getOpenapi", tag = "operations", security(()),
    responses((status = 200, description = "OpenAPI 3.1 document", body = Value)))]
pub async fn openapi(State(doc): State<Document>) -> Response {
    ([(CONTENT_TYPE, "application/json")], doc.to_string()).into_response()
}

/// Interactive API documentation (Swagger UI), served from the binary.
#[utoipa::path(get, path = "/docs", operation_id = "getDocs", tag = "operations", security(()),
    responses((status = 200, description = "HTML page", content_type = "text/html", body = String)))]
pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// The page's scripts, style sheet and licences.
#[utoipa::path(get, path = "/docs/{file}", operation_id = "getDocsAsset", tag = "operations", security(()),
    params(("file" = String, Path, description = "`swagger-ui-bundle.js`, `swagger-ui.css`, `LICENSE` or `swagger-ui-bundle.js.LICENSE.txt`")),
    responses(
        (status = 200, description = "The asset",
            content((String = "text/javascript"), (String = "text/css"), (String = "text/plain"))),
        (status = 404, description = "No such asset", body = ErrorBody),
    ))]
pub async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    let (_, media, bytes) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or_else(|| ApiError::not_found(format!("No documentation asset `{file}`.")))?;
    Ok((
        [
            (CONTENT_TYPE, *media),
            (CACHE_CONTROL, "public, max-age=86400"),
        ],
        *bytes,
    )
        .into_response())
}
