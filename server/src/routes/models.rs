//! `GET /v1/models` and `GET /v1/models/{id}`.

use axum::extract::{Path, State};
use axum::Json;
use ferrite_engine::ModelInfo;
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

pub async fn list(State(state): State<AppState>) -> Result<Json<ModelList>, ApiError> {
    let ready = state.ready()?;
    Ok(Json(ModelList {
        object: "list".into(),
        data: vec![object(ready.engine.info())],
    }))
}

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
