//! `/api/v1/aliases`: versioned aliases, their evaluation, promotion and
//! rollback (see `versions/`).

use axum::extract::{Path, State};
use axum::Json;
use ferrite_middleware::alias_store::AliasState;
use ferrite_openapi::aliases::{
    AliasInfo, AliasList, DecisionInfo, EvalReport, EvaluateRequest, VersionInfo,
};
use ferrite_openapi::doc::ApiErrors;
use ferrite_openapi::{ApiResult, ErrorBody};

use crate::chat::evaluate;
use crate::http::extract::{Caller, JsonBody};
use crate::state::AppState;

async fn info(state: &AppState, name: &str) -> ApiResult<AliasInfo> {
    let config = state.versions.config(name)?.clone();
    let alias = state.versions.state(name).await?;
    let model = alias.current().map(|v| v.model.clone()).unwrap_or_default();
    let AliasState { versions, current } = alias;
    let decisions = state.versions.decisions(name).await?;
    Ok(AliasInfo {
        model,
        name: config.name,
        current,
        versions: versions
            .into_iter()
            .map(|v| VersionInfo {
                version: v.version,
                model: v.model,
                created_at: v.created_at,
            })
            .collect(),
        threshold: config.threshold,
        keep: config.keep,
        decisions: decisions
            .into_iter()
            .map(|d| DecisionInfo {
                action: d.action,
                candidate: d.candidate,
                current: d.current,
                candidate_score: d.candidate_score,
                current_score: d.current_score,
                created_at: d.created_at,
            })
            .collect(),
    })
}

/// Every configured alias: its versions, the current one, latest decisions.
#[utoipa::path(get, path = "/api/v1/aliases", operation_id = "listAliases", tag = "aliases",
    responses((status = 200, body = AliasList), ApiErrors))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<AliasList>> {
    let mut data = Vec::new();
    for c in state.versions.configs() {
        data.push(info(&state, &c.name).await?);
    }
    Ok(Json(AliasList {
        object: "list".into(),
        data,
    }))
}

#[utoipa::path(get, path = "/api/v1/aliases/{name}", operation_id = "getAlias", tag = "aliases",
    params(("name" = String, Path, description = "The alias")),
    responses((status = 200, body = AliasInfo), ApiErrors))]
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<AliasInfo>> {
    Ok(Json(info(&state, &name).await?))
}

/// Runs the candidate and the current version over the items on this
/// server and scores both; with `promote: true` the candidate becomes
/// current if it beats the current version by the alias's threshold.
/// Needs the `admin` scope under JWT auth.
#[utoipa::path(post, path = "/api/v1/aliases/{name}/evaluate", operation_id = "evaluateAlias", tag = "aliases",
    params(("name" = String, Path, description = "The alias")),
    request_body = EvaluateRequest,
    responses((status = 200, body = EvalReport), ApiErrors))]
pub async fn evaluate(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<EvaluateRequest>,
) -> ApiResult<Json<EvalReport>> {
    caller.require("admin")?;
    Ok(Json(evaluate::evaluate(&state, &name, request).await?))
}

/// Makes the version before the current one current (409 at the first).
/// Needs the `admin` scope under JWT auth.
#[utoipa::path(post, path = "/api/v1/aliases/{name}/rollback", operation_id = "rollbackAlias", tag = "aliases",
    params(("name" = String, Path, description = "The alias")),
    responses(
        (status = 200, body = AliasInfo),
        (status = 409, description = "The current version is the first.", body = ErrorBody),
        ApiErrors,
    ))]
pub async fn rollback(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<AliasInfo>> {
    caller.require("admin")?;
    state.versions.rollback(&name).await?;
    Ok(Json(info(&state, &name).await?))
}
