//! llama-server's token routes: `/tokenize`, `/detokenize`, `/apply-template`.

use axum::extract::State;
use axum::Json;
use ferrite_openapi::chat::ChatRequest;
use ferrite_openapi::doc::ApiErrors;
use ferrite_openapi::models::ModelKind;
use ferrite_openapi::tokens::{
    ApplyTemplateResponse, DetokenizeRequest, DetokenizeResponse, Token, TokenPiece,
    TokenizeRequest, TokenizeResponse,
};
use ferrite_openapi::ApiResult;

use crate::chat::generate::{model, Valid};
use crate::http::extract::JsonBody;
use crate::state::AppState;

/// The model's token ids for `content`.
#[utoipa::path(post, path = "/tokenize", operation_id = "tokenize", tag = "tokens",
    request_body = TokenizeRequest,
    responses((status = 200, body = TokenizeResponse), ApiErrors))]
pub async fn tokenize(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<TokenizeRequest>,
) -> ApiResult<Json<TokenizeResponse>> {
    let limits = &state.config.limits;
    limits.check_tokenize("content", request.content.len())?;
    let lease = model(&state, request.model.as_deref(), None, None).await?;
    let ids = lease
        .engine
        .encode(&request.content, request.add_special)
        .await?;
    let mut tokens = Vec::with_capacity(ids.len());
    for id in ids {
        tokens.push(if request.with_pieces {
            let piece = lease.engine.decode(&[id]).await?;
            Token::Piece(TokenPiece { id, piece })
        } else {
            Token::Id(id)
        });
    }
    Ok(Json(TokenizeResponse { tokens }))
}

/// The text of token ids.
#[utoipa::path(post, path = "/detokenize", operation_id = "detokenize", tag = "tokens",
    request_body = DetokenizeRequest,
    responses((status = 200, body = DetokenizeResponse), ApiErrors))]
pub async fn detokenize(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<DetokenizeRequest>,
) -> ApiResult<Json<DetokenizeResponse>> {
    let lease = model(&state, request.model.as_deref(), None, None).await?;
    let content = lease.engine.decode(&request.tokens).await?;
    Ok(Json(DetokenizeResponse { content }))
}

/// The prompt a chat completion request renders to with the model's chat
/// template, up to where the answer begins.
#[utoipa::path(post, path = "/apply-template", operation_id = "applyTemplate", tag = "tokens",
    request_body = ChatRequest,
    responses((status = 200, body = ApplyTemplateResponse), ApiErrors))]
pub async fn apply_template(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<ChatRequest>,
) -> ApiResult<Json<ApplyTemplateResponse>> {
    let request = Valid::new(request, &state.config.limits)?;
    let lease = model(
        &state,
        request.get().model.as_deref(),
        None,
        Some(ModelKind::Llm),
    )
    .await?;
    let prompt = lease.engine.render_prompt(request.get()).await?;
    let template = lease.meta().chat_template.clone();
    Ok(Json(ApplyTemplateResponse { prompt, template }))
}
