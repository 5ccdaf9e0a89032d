//! Every route, and the OpenAPI document built from the same annotated
//! handlers, so that the two cannot drift apart.

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use ferrite_openapi::doc::ApiDoc;
use metrics_exporter_prometheus::PrometheusHandle;
use utoipa::openapi::OpenApi as Document;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::lmstudio_rest::{downloads, manage, v0 as lmstudio};
use crate::api::openai::{chat, completions, embeddings, models};
use crate::api::{anthropic, lmstudio_sdk, ollama, orchestrator, responses};
use crate::http::routes::{
    aliases, conversations, docs, fallback, health, memory, metrics, tokens, ui,
};
use crate::state::AppState;

/// Paths axum spells differently: a model id may contain `/`, which the
/// router matches with a catch-all that OpenAPI cannot express.
#[derive(OpenApi)]
#[openapi(paths(models::get, lmstudio::get))]
struct CatchAll;

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(chat::chat_completions))
        .routes(routes!(completions::completions))
        .routes(routes!(embeddings::embeddings))
        .routes(routes!(embeddings::embeddings_v0))
        .routes(routes!(models::list))
        .route("/v1/models/{*id}", get(models::get))
        .routes(routes!(memory::list, memory::delete_all))
        .routes(routes!(memory::search))
        .routes(routes!(memory::delete))
        .routes(routes!(memory::feedback))
        .routes(routes!(memory::export))
        .routes(routes!(conversations::list, conversations::create))
        .routes(routes!(
            conversations::get,
            conversations::replace,
            conversations::delete
        ))
        .routes(routes!(conversations::export))
        .routes(routes!(conversations::import))
        .routes(routes!(lmstudio::list))
        .route("/api/v0/models/{*id}", get(lmstudio::get))
        .routes(routes!(lmstudio::chat_completions))
        .routes(routes!(lmstudio::completions))
        .routes(routes!(manage::list))
        .routes(routes!(manage::load))
        .routes(routes!(manage::unload))
        .routes(routes!(downloads::download))
        .routes(routes!(downloads::status))
        .routes(routes!(downloads::cancel))
        .routes(routes!(downloads::search))
        .routes(routes!(downloads::options))
        .routes(routes!(responses::create))
        .routes(routes!(responses::get, responses::delete))
        .routes(routes!(responses::input_items))
        .routes(routes!(anthropic::messages))
        .routes(routes!(anthropic::count_tokens))
        .routes(routes!(tokens::tokenize))
        .routes(routes!(tokens::detokenize))
        .routes(routes!(tokens::apply_template))
        .routes(routes!(aliases::list))
        .routes(routes!(aliases::get))
        .routes(routes!(aliases::evaluate))
        .routes(routes!(aliases::rollback))
        .routes(routes!(ollama::chat::chat))
        .routes(routes!(ollama::chat::generate_route))
        .routes(routes!(ollama::models::tags))
        .routes(routes!(ollama::models::show))
        .routes(routes!(ollama::models::ps))
        .routes(routes!(ollama::models::version))
        .routes(routes!(ollama::models::pull))
        .routes(routes!(ollama::models::delete))
        .routes(routes!(ollama::embed::embed))
        .routes(routes!(ollama::embed::embeddings))
        .routes(routes!(health::health))
        .routes(routes!(ui::page))
        .routes(routes!(ui::asset))
        .routes(routes!(health::ready))
}

fn operations() -> OpenApiRouter<PrometheusHandle> {
    OpenApiRouter::new().routes(routes!(metrics::render))
}

fn documentation() -> OpenApiRouter<docs::Document> {
    OpenApiRouter::new()
        .routes(routes!(docs::openapi))
        .routes(routes!(docs::page))
        .routes(routes!(docs::asset))
}

/// The routers, waiting for their state, and the whole document.
fn split() -> (
    Router<AppState>,
    Router<PrometheusHandle>,
    Router<docs::Document>,
    Document,
) {
    let (api, mut doc) = api().split_for_parts();
    let (ops, ops_doc) = operations().split_for_parts();
    let (docs, docs_doc) = documentation().split_for_parts();
    doc.merge(ops_doc);
    doc.merge(docs_doc);
    doc.merge(CatchAll::openapi());
    (api, ops, docs, doc)
}

/// The OpenAPI document (`ferrite openapi` prints it without a model).
pub fn document() -> Document {
    split().3
}

/// The document as served, its event streams described event by event.
pub fn document_json(doc: &Document) -> serde_json::Value {
    // Serializing a document built from our own types cannot fail.
    let mut json = serde_json::to_value(doc).expect("OpenAPI document serializes");
    ferrite_openapi::doc::describe_sse_events(&mut json);
    json
}

pub fn routes(state: AppState, prometheus: PrometheusHandle) -> Router {
    let (api, ops, docs, doc) = split();
    let json: docs::Document = Arc::from(document_json(&doc).to_string());
    let api = match &state.config.orchestrator {
        o if o.enabled => orchestrator::mount(api, o),
        _ => api,
    };
    api.merge(lmstudio_sdk::routes())
        .with_state(state)
        .merge(ops.with_state(prometheus))
        .merge(docs.with_state(json))
        .fallback(fallback::not_found)
        .method_not_allowed_fallback(fallback::method_not_allowed)
}

#[cfg(test)]
mod tests {
    use super::document;

    #[test]
    fn document_is_openapi_3_1_with_every_path() {
        let doc = serde_json::to_value(document()).expect("serializes");
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().expect("paths");
        for p in [
            "/v1/chat/completions",
            "/v1/completions",
            "/v1/models",
            "/v1/models/{model}",
            "/v1/memory",
            "/v1/memory/search",
            "/v1/memory/{id}",
            "/v1/memory/{id}/feedback",
            "/v1/memory/export",
            "/api/v1/aliases",
            "/api/v1/aliases/{name}/evaluate",
            "/api/v1/aliases/{name}/rollback",
            "/health",
            "/ready",
            "/metrics",
            "/openapi.json",
            "/docs",
            "/docs/{file}",
            "/api/v0/models",
            "/api/v0/models/{model}",
            "/api/v0/chat/completions",
            "/api/v0/completions",
            "/api/v1/models",
            "/api/v1/models/download",
            "/api/v1/models/download/status/{job_id}",
            "/api/v1/models/download/{job_id}",
            "/api/v1/models/download/search",
            "/api/v1/models/download/options",
            "/api/v1/models/load",
            "/api/v1/models/unload",
            "/tokenize",
            "/detokenize",
            "/apply-template",
            "/v1/messages",
            "/v1/messages/count_tokens",
            "/api/chat",
            "/api/generate",
            "/api/tags",
            "/api/show",
            "/api/ps",
            "/api/version",
            "/api/pull",
            "/api/delete",
            "/api/embed",
            "/api/embeddings",
            "/v1/app/conversations",
            "/v1/app/conversations/{id}",
            "/v1/app/conversations/export",
            "/v1/app/conversations/import",
            "/",
            "/assets/{file}",
        ] {
            assert!(paths.contains_key(p), "{p} missing");
        }
        assert_eq!(paths.len(), 57, "{:?}", paths.keys());
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    }
}
