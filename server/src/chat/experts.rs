//! Expert routing: a virtual model (e.g. `auto`) classifies each chat
//! request and sends it to a specialist model, falling back along the
//! route's candidates when one fails to load or errors, with an optional
//! review of the specialist's draft by a second model before an
//! orchestrator model writes the final answer.

use ferrite_middleware::route_classifier::{Meaning, ReviewConfig};
use ferrite_middleware::ChatResponse;
use ferrite_openapi::aggregate::ChatAccumulator;
use ferrite_openapi::chat::{
    last_user_text, ChatMessage, ChatRequest, Role, RouteFallback, RouteReport,
};
use ferrite_openapi::common::Usage;
use ferrite_openapi::{ApiError, ApiResult, ErrorCode};
use futures::StreamExt;
use tracing::{info, warn};

use crate::chat::embedder::embed_with;
use crate::chat::generate::{on_model, Load, Stages};
use crate::state::experts::ExpertRouter;
use crate::state::AppState;

const REVIEW_PROMPT: &str = "You review a draft answer. Point out mistakes, \
missing points and unclear parts in a few short bullet points. If it is correct \
and complete, say so.";
const ORCHESTRATE_PROMPT: &str = "A specialist drafted an answer to the user's \
last message and a reviewer commented on it. Write the final answer for the user: \
keep what is right, fix what the review found. Do not mention the draft or the review.";

/// A model's failure worth trying the next candidate for: it could not be
/// loaded or found, or it failed itexpert. A bad request fails everywhere.
fn falls_back(e: &ApiError) -> bool {
    e.status >= 500 || e.code == Some(ErrorCode::ModelNotFound)
}

/// The message's and the examples' embeddings, with `embedding_model`;
/// without them (none configured, or the model failed) words compare.
async fn meaning(expert: &ExpertRouter, state: &AppState, text: &str) -> Option<Meaning> {
    let model = expert.config.embedding_model.as_deref()?;
    let registry = &state.registry;
    let embedded = async {
        let examples = expert
            .examples
            .get_or_try_init(|| embed_with(registry, model, expert.classifier.example_texts()))
            .await?
            .clone();
        let query = embed_with(registry, model, vec![text.to_string()]).await?;
        Ok::<_, ApiError>(Meaning {
            query: query.into_iter().next().unwrap_or_default(),
            examples,
        })
    };
    embedded
        .await
        .map_err(|e| warn!(router = %expert.config.name, error = %e.message, "routing by words: embedding failed"))
        .ok()
}

/// Classifies, answers through the first candidate that works, and says
/// which model answered and why.
pub async fn answer(
    expert: &ExpertRouter,
    state: &AppState,
    request: ChatRequest,
) -> ApiResult<ChatResponse> {
    let router = expert.config.name.clone();
    let text = last_user_text(&request.messages).unwrap_or_default();
    let chars = request
        .messages
        .iter()
        .filter_map(|m| m.content.as_ref())
        .map(|c| c.text().chars().count())
        .sum();
    let meaning = meaning(expert, state, &text).await;
    let decision = expert.classifier.classify(&text, chars, meaning.as_ref());
    let mut fallbacks = Vec::new();
    let mut last_error = None;
    for model in &decision.candidates {
        match run(state, model, request.clone()).await {
            Ok((mut response, id)) => {
                let mut report = RouteReport {
                    router: router.clone(),
                    route: decision.route.clone(),
                    model: id.clone(),
                    confidence: decision.confidence,
                    reason: decision.reason.clone(),
                    fallbacks,
                    reviewed_by: None,
                    specialist: None,
                };
                if let Some(review) = &expert.config.review {
                    response = reviewed(state, review, &request, response, &mut report).await?;
                }
                info!(router = %router, route = %report.route, model = %report.model, confidence = report.confidence, reason = %report.reason, "routed");
                metrics::counter!("ferrite:route_decisions_total",
                    "router" => router.clone(), "route" => report.route.clone(), "model" => report.model.clone())
                .increment(1);
                response.extension.route = Some(report);
                return Ok(response);
            }
            Err(e) if falls_back(&e) => {
                warn!(router = %router, model = %model, error = %e.message, "route candidate failed; falling back");
                metrics::counter!("ferrite:route_fallbacks_total",
                    "router" => router.clone(), "model" => model.clone())
                .increment(1);
                fallbacks.push(RouteFallback {
                    model: model.clone(),
                    error: e.message.clone(),
                });
                last_error = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    let tried = fallbacks
        .iter()
        .map(|f| format!("{}: {}", f.model, f.error))
        .collect::<Vec<_>>()
        .join("; ");
    let status = last_error.map_or(503, |e| e.status.max(500));
    Err(ApiError::new(
        status,
        "server_error",
        format!("Router `{router}` found no model that could answer ({tried})."),
    )
    .with_code(ErrorCode::RouteFailed))
}

/// Runs `request` on `model` up to its first output, so that a failing
/// model is found before anything is sent. Returns the answering model's id.
async fn run(
    state: &AppState,
    model: &str,
    request: ChatRequest,
) -> ApiResult<(ChatResponse, String)> {
    let spec = state.registry.resolve(Some(model)).await?;
    let id = spec.id.clone();
    let mut answer = on_model(&state.registry, spec, request, Load::Wait, Stages::All).await?;
    answer.stream = crate::chat::stream::peek(answer.stream).await?;
    Ok((answer, id))
}

/// The whole answer's text and usage.
async fn collect(response: ChatResponse) -> ApiResult<(String, Usage)> {
    let acc = crate::chat::stream::collect(
        response.stream,
        ChatAccumulator::default(),
        ChatAccumulator::push,
    )
    .await?
    .finish();
    let text = acc
        .choices
        .first()
        .and_then(|c| c.message.content.clone())
        .unwrap_or_default();
    Ok((text, acc.usage.unwrap_or_default()))
}

fn transcript(messages: &[ChatMessage]) -> String {
    messages
        .iter()
        .filter_map(|m| {
            let text = m.content.as_ref()?.text();
            Some(format!("{}: {text}", m.role.template_name()))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The review stage: draft, review, final answer; usage sums all three.
async fn reviewed(
    state: &AppState,
    review: &ReviewConfig,
    request: &ChatRequest,
    draft: ChatResponse,
    report: &mut RouteReport,
) -> ApiResult<ChatResponse> {
    let (draft, draft_usage) = collect(draft).await?;
    let ask = |messages: Vec<ChatMessage>| ChatRequest {
        messages,
        max_tokens: request.max_tokens,
        max_completion_tokens: request.max_completion_tokens,
        temperature: request.temperature,
        seed: request.seed,
        ttl: request.ttl,
        context: request.context.clone(),
        ..ChatRequest::default()
    };
    let conversation = transcript(&request.messages);
    let (critique, review_usage) = collect(
        run(
            state,
            &review.reviewer,
            ask(vec![
                ChatMessage::text(Role::System, REVIEW_PROMPT),
                ChatMessage::text(
                    Role::User,
                    format!("Conversation:\n{conversation}\n\nDraft answer:\n{draft}"),
                ),
            ]),
        )
        .await?
        .0,
    )
    .await?;
    let mut messages = vec![ChatMessage::text(
        Role::System,
        format!("{ORCHESTRATE_PROMPT}\n\nDraft:\n{draft}\n\nReview:\n{critique}"),
    )];
    messages.extend(
        request
            .messages
            .iter()
            .filter(|m| m.role != Role::System)
            .cloned(),
    );
    let final_request = ChatRequest {
        messages,
        ..request.clone()
    };
    let (mut response, id) = run(state, &review.orchestrator, final_request).await?;
    let earlier = draft_usage.plus(review_usage);
    response.stream = response
        .stream
        .map(move |item| {
            item.map(|mut chunk| {
                chunk.usage = chunk.usage.map(|u| u.plus(earlier));
                chunk
            })
        })
        .boxed();
    report.specialist = Some(std::mem::replace(&mut report.model, id));
    report.reviewed_by = Some(review.reviewer.clone());
    Ok(response)
}
