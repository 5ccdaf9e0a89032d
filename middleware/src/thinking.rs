//! Thinking controls as a layer: `reasoning_effort` becomes a thinking
//! budget (the engine forces it while generating), and multi-round thinking
//! (Think Twice) answers R times, each round re-answering the original
//! question given the previous round's answer without its reasoning. The
//! response is the last round; `usage` sums every round; earlier rounds show
//! up as SSE comments while streaming.

use std::sync::Arc;
use std::task::{Context, Poll};

use ferrite_openapi::aggregate::ChatAccumulator;
use ferrite_openapi::chat::{
    ChatCompletion, ChatCompletionChunk, ChatMessage, ChatRequest, ContentPart, MessageContent,
    ResponseExtension, Role,
};
use ferrite_openapi::common::Usage;
use ferrite_openapi::thinking::{ReasoningEffort, RoundReport, ThinkingOptions};
use ferrite_openapi::ApiError;
use futures::future::BoxFuture;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tower::{Layer, Service, ServiceExt};

use crate::service::{take_ready, ChatResponse};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThinkingConfig {
    /// Most rounds a request may ask for.
    pub max_rounds: u32,
    /// Thinking tokens per `reasoning_effort` level.
    pub effort: EffortBudgets,
    /// What a later round adds to the question; `{answer}` is the previous
    /// round's answer.
    pub reanswer: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EffortBudgets {
    pub minimal: u32,
    pub low: u32,
    pub medium: u32,
    pub high: u32,
}

impl Default for ThinkingConfig {
    fn default() -> Self {
        Self {
            max_rounds: 4,
            effort: EffortBudgets::default(),
            reanswer: "The assistant's previous answer is: <answer>{answer}</answer>, and please re-answer.".into(),
        }
    }
}

impl Default for EffortBudgets {
    fn default() -> Self {
        Self {
            minimal: 64,
            low: 512,
            medium: 2048,
            high: 8192,
        }
    }
}

impl EffortBudgets {
    fn tokens(&self, effort: ReasoningEffort) -> Option<u32> {
        match effort {
            ReasoningEffort::None => None,
            ReasoningEffort::Minimal => Some(self.minimal),
            ReasoningEffort::Low => Some(self.low),
            ReasoningEffort::Medium => Some(self.medium),
            ReasoningEffort::High => Some(self.high),
        }
    }
}

#[derive(Clone)]
pub struct ThinkingLayer {
    config: Arc<ThinkingConfig>,
}

impl ThinkingLayer {
    pub fn new(config: ThinkingConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }
}

impl<S> Layer<S> for ThinkingLayer {
    type Service = ThinkingService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ThinkingService {
            inner,
            config: self.config.clone(),
        }
    }
}

#[derive(Clone)]
pub struct ThinkingService<S> {
    inner: S,
    config: Arc<ThinkingConfig>,
}

impl<S> Service<ChatRequest> for ThinkingService<S>
where
    S: Service<ChatRequest, Response = ChatResponse, Error = ApiError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = ChatResponse;
    type Error = ApiError;
    type Future = BoxFuture<'static, Result<ChatResponse, ApiError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ApiError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: ChatRequest) -> Self::Future {
        let inner = take_ready(&mut self.inner);
        let config = self.config.clone();
        Box::pin(async move {
            apply_effort(&mut req, &config.effort);
            let rounds = req.thinking.as_ref().map_or(1, ThinkingOptions::rounds);
            if rounds > config.max_rounds {
                return Err(ApiError::invalid(
                    "thinking.rounds",
                    format!(
                        "`thinking.rounds` must be at most {} on this server.",
                        config.max_rounds
                    ),
                ));
            }
            if rounds <= 1 {
                return inner.oneshot(req).await;
            }
            Ok(ChatResponse::new(multi_round(inner, req, rounds, config)))
        })
    }
}

/// `reasoning_effort` sets the thinking budget unless the request set one;
/// a continued answer is past its thinking (Anthropic's `effort` comes with
/// every Claude Code request, prefilled or not).
fn apply_effort(req: &mut ChatRequest, budgets: &EffortBudgets) {
    let Some(tokens) = req.reasoning_effort.and_then(|e| budgets.tokens(e)) else {
        return;
    };
    if req.continue_final_message == Some(true) {
        return;
    }
    let thinking = req.thinking.get_or_insert_with(ThinkingOptions::default);
    if !thinking.thinks() {
        thinking.max_tokens = Some(tokens);
    }
}

/// The request for round `k` (1-based): round 1 is the request itself.
pub fn round_request(
    original: &ChatRequest,
    previous_answer: Option<&str>,
    template: &str,
) -> ChatRequest {
    let mut req = original.clone();
    if let Some(answer) = previous_answer {
        let note = template.replace("{answer}", answer);
        if let Some(m) = req.messages.iter_mut().rev().find(|m| m.role == Role::User) {
            append_text(m, &note);
        } else {
            req.messages.push(ChatMessage::text(Role::User, note));
        }
    }
    req
}

fn append_text(m: &mut ChatMessage, note: &str) {
    match &mut m.content {
        Some(MessageContent::Text(t)) => {
            t.push('\n');
            t.push_str(note);
        }
        Some(MessageContent::Parts(parts)) => parts.push(ContentPart::Text {
            text: format!("\n{note}"),
        }),
        None => m.content = Some(MessageContent::Text(note.to_string())),
    }
}

/// Runs an earlier round to its end: its answer, and a chunk to shape
/// progress comments on.
pub(crate) async fn quiet_round<S>(
    inner: S,
    req: ChatRequest,
) -> Result<(ChatCompletion, Option<ChatCompletionChunk>), ApiError>
where
    S: Service<ChatRequest, Response = ChatResponse, Error = ApiError> + Send + 'static,
    S::Future: Send + 'static,
{
    let mut chunks = inner.oneshot(req).await?.stream;
    let mut acc = ChatAccumulator::default();
    let mut like = None;
    while let Some(c) = chunks.next().await {
        let c = c?;
        acc.push(&c);
        like.get_or_insert(c);
    }
    Ok((acc.finish(), like))
}

fn report(done: ChatCompletion, usage: Usage) -> RoundReport {
    let message = done
        .choices
        .into_iter()
        .next()
        .map(|c| c.message)
        .unwrap_or_default();
    RoundReport {
        answer: message.content.unwrap_or_default(),
        reasoning: message.reasoning_content,
        usage,
    }
}

fn multi_round<S>(
    inner: S,
    original: ChatRequest,
    rounds: u32,
    config: Arc<ThinkingConfig>,
) -> ferrite_engine::ChatStream
where
    S: Service<ChatRequest, Response = ChatResponse, Error = ApiError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let return_rounds = original
        .thinking
        .as_ref()
        .and_then(|t| t.return_rounds)
        .unwrap_or(false);
    Box::pin(async_stream::stream! {
        let mut reports: Vec<RoundReport> = Vec::new();
        let mut total: Option<Usage> = None;
        for k in 1..rounds {
            let previous = reports.last().map(|r| r.answer.as_str());
            let req = round_request(&original, previous, &config.reanswer);
            let (done, like) = match quiet_round(inner.clone(), req).await {
                Ok(round) => round,
                Err(e) => {
                    yield Err(e);
                    return;
                }
            };
            let usage = done.usage.unwrap_or_default();
            total = Some(total.map_or(usage, |t| t.plus(usage)));
            if let Some(like) = &like {
                yield Ok(ChatCompletionChunk::comment(
                    like,
                    format!("ferrite: thinking round {k}/{rounds} done ({} completion tokens)", usage.completion_tokens),
                ));
            }
            reports.push(report(done, usage));
        }
        let previous = reports.last().map(|r| r.answer.as_str());
        let last = round_request(&original, previous, &config.reanswer);
        let mut chunks = match inner.oneshot(last).await {
            Ok(resp) => resp.stream,
            Err(e) => {
                yield Err(e);
                return;
            }
        };
        let mut acc = ChatAccumulator::default();
        let mut first = true;
        while let Some(item) = chunks.next().await {
            let mut c = match item {
                Ok(c) => c,
                Err(e) => {
                    yield Err(e);
                    return;
                }
            };
            acc.push(&c);
            if first && return_rounds {
                // Earlier rounds are known now; the full list comes with usage.
                set_rounds(&mut c, reports.clone());
            }
            first = false;
            if let Some(usage) = c.usage {
                c.usage = Some(total.map_or(usage, |t| t.plus(usage)));
                if return_rounds {
                    let mut all = reports.clone();
                    all.push(report(std::mem::take(&mut acc).finish(), usage));
                    set_rounds(&mut c, all);
                }
            }
            yield Ok(c);
        }
    })
}

fn set_rounds(chunk: &mut ChatCompletionChunk, rounds: Vec<RoundReport>) {
    chunk
        .ferrite
        .get_or_insert_with(ResponseExtension::default)
        .rounds = Some(rounds);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrite_engine::scripted::ScriptedEngine;
    use tower::ServiceBuilder;

    use crate::service::EngineService;
    use crate::ChatService;

    fn ask(thinking: ThinkingOptions) -> ChatRequest {
        ChatRequest {
            messages: vec![ChatMessage::text(Role::User, "What is 2+2?")],
            thinking: Some(thinking),
            ..ChatRequest::default()
        }
    }

    #[tokio::test]
    async fn rounds_reanswer_without_reasoning_and_sum_usage() {
        let engine = Arc::new(ScriptedEngine::new("four"));
        let svc = ChatService::new(
            ServiceBuilder::new()
                .layer(ThinkingLayer::new(ThinkingConfig::default()))
                .service(EngineService::new(engine.clone())),
        );
        let req = ask(ThinkingOptions {
            rounds: Some(3),
            return_rounds: Some(true),
            ..Default::default()
        });
        let resp = svc.oneshot(req).await.unwrap();
        let chunks: Vec<_> = resp.stream.collect().await;
        let comments = chunks
            .iter()
            .filter(|c| c.as_ref().unwrap().comment.is_some())
            .count();
        assert_eq!(comments, 2);
        let mut acc = ChatAccumulator::default();
        for c in &chunks {
            acc.push(c.as_ref().unwrap());
        }
        let out = acc.finish();
        assert_eq!(engine.calls(), 3);
        let seen = engine.seen();
        let last = seen[2].messages[0].content.clone().unwrap();
        assert_eq!(
            last,
            MessageContent::Text(
                "What is 2+2?\nThe assistant's previous answer is: <answer>four</answer>, and please re-answer.".into()
            )
        );
        let rounds = out.ferrite.unwrap().rounds.unwrap();
        assert_eq!(rounds.len(), 3);
        let per_round = rounds[0].usage.completion_tokens;
        assert_eq!(out.usage.unwrap().completion_tokens, 3 * per_round);
    }

    #[tokio::test]
    async fn effort_sets_a_budget_and_rounds_are_capped() {
        let mut req = ask(ThinkingOptions::default());
        req.reasoning_effort = Some(ReasoningEffort::Low);
        apply_effort(&mut req, &EffortBudgets::default());
        assert_eq!(req.thinking.as_ref().unwrap().max_tokens, Some(512));

        let engine = Arc::new(ScriptedEngine::new("x"));
        let svc = ThinkingLayer::new(ThinkingConfig::default()).layer(EngineService::new(engine));
        let err = svc
            .oneshot(ask(ThinkingOptions {
                rounds: Some(9),
                ..Default::default()
            }))
            .await
            .err()
            .unwrap();
        assert_eq!(err.param.as_deref(), Some("thinking.rounds"));
    }
}
