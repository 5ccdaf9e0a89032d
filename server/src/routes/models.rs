//! `GET /v1/models` and `GET /v1/models/{id}`.

use axum::extract::{Path, State};
use axum::Json;
use ferrite_engine::ModelInfo;
use ferrite_openapi::doc::ApiErrors;
use ferrite_openapi::models::{ModelList, ModelObject};
use ferrite_openapi::ApiError;

use crate::state::AppState;

fn object(info: &ModelInfo) -> ModelObject {
    ModelObject {
        id: info.id.clone(),
        object: "model".into(),
        created: info.created,
        owned_by: "ferrite".into(),
        meta: Some(info.meta.clone()),
    }
}

/// Lists the models this server answers for.
#[utoipa::path(get, path = "/v1/models", operation_id = "listModels", tag = "openai",
    responses((status = 200, body = ModelList), ApiErrors))]
pub async fn list(State(state): State<AppState>) -> Result<Json<ModelList>, ApiError> {
    let ready = state.ready()?;
    Ok(Json(ModelList {
        object: "list".into(),
        data: vec![object(ready.engine.info())],
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
    let ready = state.ready()?;
    let info = ready.engine.info();
    if info.answers_to(&id) {
        Ok(Json(object(info)))
    } else {
        Err(ApiError::model_not_found(&id))
    }
}
