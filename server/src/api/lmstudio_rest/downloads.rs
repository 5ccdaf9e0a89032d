//! Getting models: LM Studio's `POST /api/v1/models/download` and
//! `GET /api/v1/models/download/status/{job_id}`, and ferrite's additions
//! for `ferrite get` (search, a repo's quantizations, cancel). All need
//! the `models:manage` scope: they write to the models directory and reach
//! out to the Hub.

use axum::extract::{Path, State};
use axum::Json;
use ferrite_openapi::doc::ApiErrors;
use ferrite_openapi::downloads::{
    DownloadOptions, DownloadRequest, DownloadStatus, OptionsQuery, SearchQuery, SearchResults,
};
use ferrite_openapi::{ApiError, ApiResult, ErrorCode};

use crate::downloads::{Started, Wanted};
use crate::http::extract::{Caller, JsonBody, QueryParams};
use crate::registry::MANAGE_MODELS;
use crate::state::AppState;

/// Starts downloading a model from the Hugging Face Hub into the models
/// directory (`<owner>/<repo>/`); poll the job's status.
#[utoipa::path(post, path = "/api/v1/models/download", tag = "lmstudio",
    operation_id = "downloadModel", request_body = DownloadRequest,
    responses((status = 200, body = DownloadStatus), ApiErrors))]
pub async fn download(
    State(state): State<AppState>,
    Caller(caller): Caller,
    JsonBody(request): JsonBody<DownloadRequest>,
) -> ApiResult<Json<DownloadStatus>> {
    caller.require(MANAGE_MODELS)?;
    let wanted = Wanted::parse(&request.model, request.quantization.as_deref())?;
    let downloads = &state.downloads;
    let choice = downloads.choose(&wanted).await?;
    let started = downloads.start(&wanted, choice, state.key_of()).await?;
    Ok(Json(match started {
        Started::Job(job) => job.status(),
        Started::Already(path) => DownloadStatus {
            status: "already_downloaded".into(),
            model: Some(wanted.repo.to_string()),
            model_key: state.key_of()(path.clone()).await,
            path: Some(path.display().to_string()),
            ..DownloadStatus::default()
        },
    }))
}

/// A download job's progress, or why it failed.
#[utoipa::path(get, path = "/api/v1/models/download/status/{job_id}", tag = "lmstudio",
    operation_id = "downloadStatus",
    params(("job_id" = String, Path, description = "From `POST /api/v1/models/download`.")),
    responses((status = 200, body = DownloadStatus), ApiErrors))]
pub async fn status(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(job_id): Path<String>,
) -> ApiResult<Json<DownloadStatus>> {
    caller.require(MANAGE_MODELS)?;
    Ok(Json(job(&state, &job_id)?.status()))
}

fn job(state: &AppState, id: &str) -> ApiResult<std::sync::Arc<crate::downloads::Job>> {
    state.downloads.job(id).ok_or_else(|| {
        ApiError::not_found(format!("No download job `{id}`."))
            .with_param("job_id")
            .with_code(ErrorCode::NotFound)
    })
}

/// ferrite extension: cancels a download; its partial files are removed.
#[utoipa::path(delete, path = "/api/v1/models/download/{job_id}", tag = "lmstudio",
    operation_id = "cancelDownload",
    params(("job_id" = String, Path, description = "The job to cancel.")),
    responses((status = 200, body = DownloadStatus), ApiErrors))]
pub async fn cancel(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(job_id): Path<String>,
) -> ApiResult<Json<DownloadStatus>> {
    caller.require(MANAGE_MODELS)?;
    let job = job(&state, &job_id)?;
    job.cancel();
    Ok(Json(job.status()))
}

/// ferrite extension: models on the Hub matching some words, GGUF repos
/// first.
#[utoipa::path(get, path = "/api/v1/models/download/search", tag = "lmstudio",
    operation_id = "searchModels", params(SearchQuery),
    responses((status = 200, body = SearchResults), ApiErrors))]
pub async fn search(
    State(state): State<AppState>,
    Caller(caller): Caller,
    QueryParams(q): QueryParams<SearchQuery>,
) -> ApiResult<Json<SearchResults>> {
    caller.require(MANAGE_MODELS)?;
    if q.query.trim().is_empty() {
        return Err(ApiError::invalid("query", "Give words to search for."));
    }
    let results = state
        .downloads
        .search(q.query.trim(), q.limit.unwrap_or(20))
        .await?;
    Ok(Json(SearchResults { results }))
}

/// ferrite extension: the quantizations a repo offers, with their sizes.
#[utoipa::path(get, path = "/api/v1/models/download/options", tag = "lmstudio",
    operation_id = "downloadOptions", params(OptionsQuery),
    responses((status = 200, body = DownloadOptions), ApiErrors))]
pub async fn options(
    State(state): State<AppState>,
    Caller(caller): Caller,
    QueryParams(q): QueryParams<OptionsQuery>,
) -> ApiResult<Json<DownloadOptions>> {
    caller.require(MANAGE_MODELS)?;
    let wanted = Wanted::parse(&q.model, None)?;
    Ok(Json(state.downloads.options(&wanted).await?))
}
