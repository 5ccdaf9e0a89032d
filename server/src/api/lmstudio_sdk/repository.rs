//! LM Studio's `repository` namespace for downloads: `searchModels`,
//! `getModelDownloadOptions` and the `downloadModel` channel (progress,
//! `startFinalizing`, `success` with the model's key; the client's
//! `cancel` stops it), on the same download jobs as the REST API.

use std::time::Duration;

use ferrite_openapi::lmstudio_sdk::SdkError;
use ferrite_openapi::ApiError;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::lmstudio_sdk::error;
use crate::api::lmstudio_sdk::session::{Channel, Session};
use crate::downloads::{Started, Wanted};
use crate::registry::MANAGE_MODELS;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchParameter {
    opts: SearchOpts,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SearchOpts {
    #[serde(default)]
    search_term: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OptionsParameter {
    model_search_result_identifier: Identifier,
}

#[derive(Deserialize)]
struct Identifier {
    identifier: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DownloadParameter {
    download_identifier: String,
}

fn allowed(session: &Session) -> Result<(), SdkError> {
    session
        .caller
        .require(MANAGE_MODELS)
        .map_err(error::from_api)
}

/// `searchModels`: Hub repos as search results (`hf` identifiers).
pub async fn search(session: &Session, p: SearchParameter) -> Result<Value, SdkError> {
    allowed(session)?;
    let words = p.opts.search_term.unwrap_or_default();
    let hits = session
        .state
        .downloads
        .search(words.trim(), p.opts.limit.unwrap_or(10).clamp(1, 25))
        .await
        .map_err(error::from_api)?;
    let results: Vec<Value> = hits
        .into_iter()
        .map(|h| {
            json!({
                "name": h.id,
                "identifier": {"type": "hf", "identifier": h.id},
                "exact": h.id.eq_ignore_ascii_case(words.trim()),
            })
        })
        .collect();
    Ok(json!({ "results": results }))
}

/// `getModelDownloadOptions`: one option per quantization; its download
/// identifier is `owner/repo:QUANT`.
pub async fn options(session: &Session, p: OptionsParameter) -> Result<Value, SdkError> {
    allowed(session)?;
    let wanted = Wanted::parse(&p.model_search_result_identifier.identifier, None)
        .map_err(error::from_api)?;
    let offered = session
        .state
        .downloads
        .options(&wanted)
        .await
        .map_err(error::from_api)?;
    let results: Vec<Value> = offered
        .options
        .iter()
        .map(|o| {
            let file = o.files.first().cloned().unwrap_or_default();
            json!({
                "name": file,
                "sizeBytes": o.size_bytes,
                "fitEstimation": "fitWithoutGPU",
                "compatibilityType": "gguf",
                "downloadIdentifier": format!("{}:{}", offered.model, o.quantization),
                "indexedModelIdentifier": format!("{}/{}", offered.model, file),
                "quantization": o.quantization,
                "recommended": o.recommended,
            })
        })
        .collect();
    Ok(json!({ "results": results }))
}

/// `downloadModel`: progress four times a second until the job ends.
pub async fn download(
    session: &Session,
    p: DownloadParameter,
    channel: &Channel,
) -> Result<(), SdkError> {
    allowed(session)?;
    let state = &session.state;
    let wanted = Wanted::parse(&p.download_identifier, None).map_err(error::from_api)?;
    let choice = state
        .downloads
        .choose(&wanted)
        .await
        .map_err(error::from_api)?;
    let job = match state.downloads.start(&wanted, choice, state.key_of()).await {
        Ok(Started::Job(job)) => job,
        Ok(Started::Already(path)) => {
            let key = state.key_of()(path).await;
            channel.send(json!({"type": "startFinalizing"})).await;
            let key = key.unwrap_or_else(|| wanted.repo.to_string());
            channel
                .send(json!({"type": "success", "defaultIdentifier": key}))
                .await;
            return Ok(());
        }
        Err(e) => return Err(error::from_api(e)),
    };
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = channel.cancelled.cancelled() => {
                job.cancel();
                return Ok(());
            }
        }
        let status = job.status();
        if status.status != "downloading" {
            return match (status.status.as_str(), status.model_key) {
                ("completed", key) => {
                    channel.send(json!({"type": "startFinalizing"})).await;
                    let key = key.unwrap_or_else(|| wanted.repo.to_string());
                    channel
                        .send(json!({"type": "success", "defaultIdentifier": key}))
                        .await;
                    Ok(())
                }
                _ => Err(error::from_api(ApiError::new(
                    502,
                    "server_error",
                    status
                        .error
                        .unwrap_or_else(|| "The download failed.".into()),
                ))),
            };
        }
        channel
            .send(json!({"type": "downloadProgress", "update": {
                "downloadedBytes": status.downloaded_bytes.unwrap_or(0),
                "totalBytes": status.total_size_bytes.unwrap_or(0),
                "speedBytesPerSecond": status.bytes_per_second.unwrap_or(0.0),
            }}))
            .await;
    }
}
