//! The web app at `/`. Its built bundle (`web/dist`, committed; `make ui`
//! rebuilds it from `web/src`) is embedded in the binary (build.rs lists
//! it) with a gzip copy of each text file, and served with an ETag, so a
//! browser revalidates rather than downloads again. `--no-ui`
//! (`http.ui = false`) leaves it out.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::extract::{Path, State};
use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY,
};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ferrite_openapi::{ApiError, ErrorBody};
use sha2::{Digest, Sha256};

use crate::state::AppState;

// `FILES`, written by build.rs from web/dist.
include!(concat!(env!("OUT_DIR"), "/bundle.rs"));

/// Each file's bytes and hash, by path.
static BUNDLE: LazyLock<HashMap<&'static str, (&'static [u8], String)>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|(name, bytes)| (*name, (*bytes, hex::encode(&Sha256::digest(bytes)[..12]))))
        .collect()
});

fn media(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "json" => "application/json",
        "png" => "image/png",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// One file of the bundle, or `None` when it has no such file.
fn serve(name: &str, headers: &HeaderMap) -> Option<Response> {
    let (plain, hash) = BUNDLE.get(name).filter(|_| !name.ends_with(".gz"))?;
    let gzip = accepts_gzip(headers)
        .then(|| BUNDLE.get(format!("{name}.gz").as_str()))
        .flatten()
        .map(|(bytes, _)| *bytes);
    let etag = match gzip {
        Some(_) => format!("\"{hash}-gz\""),
        None => format!("\"{hash}\""),
    };
    // Hashed names never change; the page names them, so it is revalidated.
    let cache = match name {
        "index.html" => "no-cache",
        _ => "public, max-age=31536000, immutable",
    };
    let seen = headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == etag || t.trim() == "*");
    let common = [
        (ETAG, etag),
        (CACHE_CONTROL, cache.to_string()),
        (VARY, "accept-encoding".to_string()),
    ];
    if seen {
        return Some((StatusCode::NOT_MODIFIED, common).into_response());
    }
    let kind = [(CONTENT_TYPE, media(name))];
    Some(match gzip {
        Some(gz) => (common, kind, [(CONTENT_ENCODING, "gzip")], gz).into_response(),
        None => (common, kind, *plain).into_response(),
    })
}

fn off() -> ApiError {
    ApiError::not_found("The web app is off on this server (`--no-ui`).")
}

/// The web app: chat and conversations in a browser.
#[utoipa::path(get, path = "/", operation_id = "getApp", tag = "operations", security(()),
    responses(
        (status = 200, description = "The app's page", content_type = "text/html", body = String),
        (status = 304, description = "Unchanged since the ETag sent"),
        (status = 404, description = "The app is off", body = ErrorBody),
    ))]
pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if !state.config.http.ui {
        return Err(off());
    }
    serve("index.html", &headers).ok_or_else(off)
}

/// The app's scripts, styles and fonts.
#[utoipa::path(get, path = "/assets/{file}", operation_id = "getAppAsset", tag = "operations", security(()),
    params(("file" = String, Path, description = "A file of the app's bundle")),
    responses(
        (status = 200, description = "The file",
            content((String = "text/javascript"), (String = "text/css"), (String = "font/woff2"))),
        (status = 304, description = "Unchanged since the ETag sent"),
        (status = 404, description = "No such file", body = ErrorBody),
    ))]
pub async fn asset(
    State(state): State<AppState>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !state.config.http.ui {
        return Err(off());
    }
    serve(&format!("assets/{file}"), &headers)
        .ok_or_else(|| ApiError::not_found(format!("The app has no file `assets/{file}`.")))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn asking(encoding: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT_ENCODING, HeaderValue::from_str(encoding).unwrap());
        h
    }

    #[test]
    fn gzip_is_sent_to_those_that_take_it() {
        assert!(accepts_gzip(&asking("gzip, deflate, br")));
        assert!(accepts_gzip(&asking("br;q=1.0, gzip;q=0.8")));
        assert!(!accepts_gzip(&asking("gzip;q=0, br")));
        assert!(!accepts_gzip(&asking("identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn the_page_is_in_the_binary_with_its_gzip_copy() {
        let page = serve("index.html", &asking("gzip")).expect("index.html is embedded");
        assert_eq!(page.headers()[CONTENT_ENCODING], "gzip");
        let mut again = asking("gzip");
        again.insert(IF_NONE_MATCH, page.headers()[ETAG].clone());
        let unchanged = serve("index.html", &again).expect("embedded");
        assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
        let plain = serve("index.html", &HeaderMap::new()).expect("embedded");
        assert!(plain.headers().get(CONTENT_ENCODING).is_none());
        assert_ne!(plain.headers()[ETAG], page.headers()[ETAG]);
        assert!(serve("index.html.gz", &HeaderMap::new()).is_none());
    }
}
