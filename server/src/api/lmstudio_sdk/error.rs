//! ferrite's errors in LM Studio's serialized shape: `title` is what the
//! SDKs print, `errorData` carries the OpenAI error object, and
//! `displayData.code` makes the SDKs raise their specific exception.

use ferrite_openapi::lmstudio_sdk::{ModelQuery, SdkError};
use ferrite_openapi::{ApiError, ErrorCode};
use serde_json::json;

pub fn from_api(e: ApiError) -> SdkError {
    let suggestion = match e.code {
        Some(ErrorCode::ModelNotFound) => {
            Some("List the models with `lms ls` or `client.list_downloaded_models()`.")
        }
        Some(ErrorCode::ModelKindMismatch) => {
            Some("Use an LLM for predictions and an embedding model for embeddings.")
        }
        _ => None,
    }
    .map(Box::from);
    SdkError {
        title: e.message.clone(),
        suggestion,
        error_data: serde_json::to_value(e.body()).ok().map(Box::new),
        display_data: None,
    }
}

/// No model answers to `query`: the SDKs raise their model-not-found error.
pub fn no_model(query: &ModelQuery, loaded: Vec<String>, cause: ApiError) -> SdkError {
    let mut e = from_api(cause);
    e.display_data = Some(Box::new(json!({
        "code": "generic.noModelMatchingQuery",
        "query": query,
        "totalLoadedModels": loaded.len(),
        "loadedModelsSample": loaded,
    })));
    e
}

/// A request that does not parse as the endpoint's parameter.
pub fn bad_parameter(endpoint: &str, e: serde_json::Error) -> SdkError {
    from_api(ApiError::invalid(
        "parameter",
        format!("`{endpoint}` got a parameter it cannot read: {e}"),
    ))
}

/// An endpoint LM Studio has and ferrite does not.
pub fn unsupported(namespace: &str, endpoint: &str) -> SdkError {
    SdkError {
        title: format!("ferrite does not support `{namespace}.{endpoint}`."),
        suggestion: Some(
            "ferrite serves models and downloads them (llm, embedding, system, repository); it has no files, plugins or runtimes API."
                .into(),
        ),
        ..Default::default()
    }
}
