//! `GET /v1/models` and `GET /v1/models/{id}`: every model the server can
//! load (its `meta.state` says whether it is), each LoRA adapter as a model
//! of its own (`base@adapter`, with `parent`), and the router models.

use axum::extract::{Path, State};
use axum::Json;
use ferrite_openapi::doc::ApiErrors;
use ferrite_openapi::models::{ModelList, ModelObject};
use ferrite_openapi::ApiError;

use crate::registry::catalog::Spec;
use crate::state::experts::ExpertRouter;
use crate::state::AppState;

/// When the weights were written, as Unix seconds.
fn created(spec: &Spec) -> u64 {
    std::fs::metadata(&spec.options.path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

fn object(state: &AppState, spec: &Spec) -> ModelObject {
    ModelObject {
        id: spec.id.clone(),
        object: "model".into(),
        created: created(spec),
        owned_by: "ferrite".into(),
        parent: None,
        meta: state.registry.meta(spec),
    }
}

/// The model and its adapters, each as `base@adapter`.
fn objects(state: &AppState, spec: &Spec) -> Vec<ModelObject> {
    let base = object(state, spec);
    let mut all = vec![base.clone()];
    all.extend(spec.options.adapters.iter().map(|a| ModelObject {
        id: format!("{}@{}", spec.id, a.id),
        parent: Some(spec.id.clone()),
        ..base.clone()
    }));
    all
}

fn router(r: &ExpertRouter) -> ModelObject {
    ModelObject {
        id: r.config.name.clone(),
        object: "model".into(),
        created: 0,
        owned_by: "ferrite-router".into(),
        parent: None,
        meta: None,
    }
}

/// Lists the models this server answers for, loaded or not, and its routers.
#[utoipa::path(get, path = "/v1/models", operation_id = "listModels", tag = "openai",
    responses((status = 200, body = ModelList), ApiErrors))]
pub async fn list(State(state): State<AppState>) -> Result<Json<ModelList>, ApiError> {
    let mut data: Vec<ModelObject> = state
        .registry
        .specs()
        .await
        .iter()
        .flat_map(|s| objects(&state, s))
        .collect();
    data.extend(state.experts.all().iter().map(router));
    Ok(Json(ModelList {
        object: "list".into(),
        data,
    }))
}

/// One model, by id or alias. The id may contain `/` (`publisher/repo`).
#[utoipa::path(get, path = "/v1/models/{model}", operation_id = "retrieveModel", tag = "openai",
    params(("model" = String, Path, description = "Model id or alias")),
    responses((status = 200, body = ModelObject), ApiErrors))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ModelObject>, ApiError> {
    if let Some(r) = state.experts.get(Some(&id)) {
        return Ok(Json(router(r)));
    }
    let (spec, name) = state.registry.canonical(&id).await?;
    let mut model = object(&state, &spec);
    if name != spec.id {
        model.parent = Some(std::mem::replace(&mut model.id, name));
    }
    Ok(Json(model))
}
