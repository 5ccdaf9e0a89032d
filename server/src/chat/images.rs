//! Image URLs in a chat: `http(s)` ones are fetched on the client's
//! behalf only where the operator allows it (`[images] fetch`), since the
//! server would reach whatever the URL names; then within a time limit and
//! `limits.max_image_bytes`, and handed on as data URLs. The engine only
//! ever sees data URLs.

use std::time::Duration;

use base64::Engine as _;
use ferrite_openapi::chat::{image_url_of, ChatRequest, ContentPart, MessageContent};
use ferrite_openapi::{ApiError, ApiResult};
use futures::StreamExt;
use serde_json::json;

use crate::config::images::ImagesConfig;

/// Replaces every `http(s)` image URL in `req` with the data it names, or
/// refuses the request (400 naming the part) where fetching is off or fails.
pub async fn fetch_urls(
    config: &ImagesConfig,
    max_bytes: usize,
    req: &mut ChatRequest,
) -> ApiResult<()> {
    for (i, m) in req.messages.iter_mut().enumerate() {
        let Some(MessageContent::Parts(parts)) = &mut m.content else {
            continue;
        };
        for (j, part) in parts.iter_mut().enumerate() {
            let ContentPart::ImageUrl { image_url } = part else {
                continue;
            };
            let Some(url) = image_url_of(image_url)
                .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
            else {
                continue;
            };
            let param = format!("messages[{i}].content[{j}].image_url");
            if !config.fetch {
                return Err(ApiError::invalid(
                    &param,
                    "This server does not fetch image URLs (`images.fetch` is off): send the image as a base64 `data:` URL.",
                ));
            }
            let timeout = Duration::from_secs(config.fetch_timeout_secs.max(1));
            let data = fetch(url, timeout, max_bytes).await.map_err(|why| {
                ApiError::invalid(
                    &param,
                    format!("The image at {url} could not be fetched: {why}."),
                )
            })?;
            *image_url = json!({ "url": data });
        }
    }
    Ok(())
}

/// One URL as a data URL, within `timeout` and `max_bytes`.
async fn fetch(url: &str, timeout: Duration, max_bytes: usize) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
        .map_err(|e| e.to_string())?;
    let reply = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !reply.status().is_success() {
        return Err(format!("the server answered {}", reply.status()));
    }
    if reply.content_length().is_some_and(|n| n > max_bytes as u64) {
        return Err(format!(
            "it is over {max_bytes} bytes (`limits.max_image_bytes`)"
        ));
    }
    let mime = reply
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("image/png")
        .to_string();
    let mut body = Vec::new();
    let mut stream = reply.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        if body.len() + chunk.len() > max_bytes {
            return Err(format!(
                "it is over {max_bytes} bytes (`limits.max_image_bytes`)"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(body);
    Ok(format!("data:{mime};base64,{b64}"))
}
