//! Answers that reach the end of the context, under a `context_overflow`
//! policy other than `error`, go on as llama.cpp's context shift lets them:
//! the conversation is cut again by the same policy, rendered up to the
//! answer, and the model continues the answer from its latest text as a raw
//! completion. Each shift is an SSE comment and is counted in
//! `ferrite.context.shifts` on the usage chunk.

use ferrite_openapi::chat::{
    ChatCompletionChunk, ChatRequest, ChunkChoice, ContextOverflow, ContextReport, Delta,
    ResponseExtension, ResponseFormat,
};
use ferrite_openapi::common::Usage;
use ferrite_openapi::completions::{CompletionRequest, Prompt};
use ferrite_openapi::ApiError;
use futures::StreamExt;
use tower::{Service, ServiceExt};

use super::Fit;
use crate::service::ChatResponse;

/// A shifted prompt keeps at most this share of the window for the answer's
/// latest text (the rest is the conversation and room to go on).
const TAIL_DIVISOR: u32 = 4;

/// Fewer free tokens than this after a shift is not worth a model call.
const MIN_ROOM: u32 = 16;

/// One answer that may outgrow the window.
pub(super) struct Shift {
    pub fit: Fit,
    /// How the conversation is cut for each shift.
    pub policy: ContextOverflow,
    /// What the prompt step did, if anything; shifts add to it.
    pub report: ContextReport,
}

impl Shift {
    /// Whether an answer to `req` can go on past the window: one choice of
    /// plain text (a schema or a tool call cannot be resumed mid-way).
    fn applies(req: &ChatRequest) -> bool {
        req.n.unwrap_or(1) == 1
            && req.tools.as_ref().is_none_or(Vec::is_empty)
            && matches!(req.response_format, None | Some(ResponseFormat::Text))
    }

    /// Runs `req` (whose rendered prompt is `prompt_tokens`) on `inner`;
    /// an answer that fills the window is continued until the client's
    /// limit (else `long_context.max_answer_tokens`), or the model stops.
    pub async fn run<S>(
        self,
        inner: S,
        mut req: ChatRequest,
        prompt_tokens: u32,
    ) -> Result<ChatResponse, ApiError>
    where
        S: Service<ChatRequest, Response = ChatResponse, Error = ApiError> + Send + 'static,
        S::Future: Send + 'static,
    {
        if !Self::applies(&req) {
            return inner.oneshot(req).await;
        }
        let context = self.fit.context();
        let wanted = match req.max_completion_tokens.or(req.max_tokens) {
            Some(n) if n > 0 => u32::try_from(n).unwrap_or(u32::MAX),
            _ => match self.fit.config.max_answer_tokens {
                0 => context,
                n => n,
            },
        };
        // A limit past the window would be the engine's 400: the first
        // part runs to the window's end instead.
        if wanted > context.saturating_sub(prompt_tokens) {
            req.max_tokens = None;
            req.max_completion_tokens = None;
        }
        let resp = inner.oneshot(req.clone()).await?;
        let (outcome, extension) = (resp.outcome, resp.extension);
        let mut chunks = resp.stream;
        let stream = async_stream::stream! {
            let mut answer = String::new();
            let mut resumable = true;
            // The finish chunk and the usage chunk, held until it is known
            // whether the answer goes on.
            let mut finish: Option<ChatCompletionChunk> = None;
            let mut last: Option<ChatCompletionChunk> = None;
            let mut like: Option<ChatCompletionChunk> = None;
            while let Some(item) = chunks.next().await {
                let c = match item {
                    Ok(c) => c,
                    Err(e) => {
                        yield Err(e);
                        return;
                    }
                };
                if c.comment.is_none() && like.is_none() {
                    like = Some(c.clone());
                }
                for choice in &c.choices {
                    answer.push_str(choice.delta.content.as_deref().unwrap_or_default());
                    // Reasoning or a tool call cannot be resumed as text.
                    resumable &= choice.delta.reasoning_content.is_none()
                        && choice.delta.tool_calls.is_none();
                }
                if c.usage.is_some() {
                    last = Some(c);
                    break;
                }
                if c.choices.iter().any(|ch| ch.finish_reason.is_some()) {
                    finish = Some(c);
                    continue;
                }
                yield Ok(c);
            }
            let first = last.as_ref().and_then(|c| c.usage);
            let at_end = |u: &Usage, reason: Option<&str>| {
                reason == Some("length") && u.prompt_tokens + u.completion_tokens >= context
            };
            let reason = finish
                .as_ref()
                .and_then(|c| c.choices.first())
                .and_then(|c| c.finish_reason.clone());
            let goes_on = resumable
                && first.is_some_and(|u| at_end(&u, reason.as_deref()) && u.completion_tokens < wanted);
            let (true, Some(like), Some(first)) = (goes_on, like, first) else {
                for c in finish.into_iter().chain(last) {
                    yield Ok(c);
                }
                while let Some(item) = chunks.next().await {
                    yield item;
                }
                return;
            };
            let mut report = self.report.clone();
            if report.policy.is_empty() {
                report.policy = self.policy.as_str().into();
                report.context_length = context;
                report.prompt_tokens = first.prompt_tokens;
            }
            let mut total = first;
            let mut reason = reason;
            loop {
                let left = wanted.saturating_sub(total.completion_tokens);
                let (prompt, kept) = match self.prompt(&req, &answer, left, &mut report).await {
                    Ok(Some(p)) => p,
                    Ok(None) => break,
                    Err(e) => {
                        yield Err(e);
                        return;
                    }
                };
                report.shifts += 1;
                yield Ok(ChatCompletionChunk::comment(
                    &like,
                    format!(
                        "ferrite: context shift {}: {} earlier messages dropped, the answer's last {kept} tokens kept",
                        report.shifts, report.dropped_messages,
                    ),
                ));
                let room = context.saturating_sub(self.fit.count(&prompt).await);
                let mut more = match self.fit.engine.complete(continuation(&req, prompt, left, room)).await {
                    Ok(s) => s,
                    Err(e) => {
                        yield Err(e);
                        return;
                    }
                };
                let mut part = None;
                while let Some(item) = more.next().await {
                    let c = match item {
                        Ok(c) => c,
                        Err(e) => {
                            yield Err(e);
                            return;
                        }
                    };
                    for choice in &c.choices {
                        if !choice.text.is_empty() {
                            answer.push_str(&choice.text);
                            yield Ok(text_chunk(&like, choice.text.clone(), None));
                        }
                        if choice.finish_reason.is_some() {
                            reason = choice.finish_reason.clone();
                        }
                    }
                    part = c.usage.or(part);
                }
                let Some(part) = part else { break };
                total = total.plus(part);
                if !(at_end(&part, reason.as_deref()) && total.completion_tokens < wanted) {
                    break;
                }
            }
            yield Ok(text_chunk(&like, String::new(), reason.or(Some("length".into()))));
            let mut last = ChatCompletionChunk {
                choices: Vec::new(),
                usage: Some(total),
                ..like
            };
            last.ferrite = Some(ResponseExtension {
                context: Some(report),
                ..ResponseExtension::default()
            });
            yield Ok(last);
        };
        let mut resp = ChatResponse::new(Box::pin(stream));
        resp.outcome = outcome;
        resp.extension = extension;
        Ok(resp)
    }

    /// The next prompt: the conversation cut by the policy to leave room
    /// for the answer's latest text and `left` more tokens (at most half the
    /// window), rendered up to the answer, then that text, and its tokens.
    /// None when no cut leaves room.
    async fn prompt(
        &self,
        req: &ChatRequest,
        answer: &str,
        left: u32,
        report: &mut ContextReport,
    ) -> Result<Option<(String, usize)>, ApiError> {
        let context = self.fit.context();
        let ids = self.fit.engine.encode(answer, false).await?;
        let tail_goal = ids.len().min((context / TAIL_DIVISOR) as usize) as u32;
        let room_goal = left.clamp(MIN_ROOM, context / 2);
        let mut cut = ContextReport {
            prompt_tokens: self.fit.tokens(req).await.unwrap_or(context),
            ..ContextReport::default()
        };
        // MemAgent's answer is one question: only its own text shifts.
        let policy = match self.policy {
            ContextOverflow::TruncateMiddle => ContextOverflow::TruncateMiddle,
            _ => ContextOverflow::RollingWindow,
        };
        let budget = context.saturating_sub(room_goal + tail_goal);
        let kept = self.fit.cut(req.clone(), policy, budget, &mut cut).await;
        // A conversation that cannot be cut that far leaves the answer's
        // text half of what is free, and some room to go on.
        let free = context.saturating_sub(cut.prompt_tokens - cut.dropped_tokens);
        if free < 2 * MIN_ROOM {
            return Ok(None);
        }
        let keep = tail_goal.min(free / 2) as usize;
        let tail = self.fit.engine.decode(&ids[ids.len() - keep..]).await?;
        report.dropped_messages = report.dropped_messages.max(cut.dropped_messages);
        report.dropped_tokens = report.dropped_tokens.max(cut.dropped_tokens);
        let prompt = self.fit.engine.render_prompt(&kept).await? + &tail;
        Ok(Some((prompt, keep)))
    }
}

/// The raw completion that continues the answer, sampled as the chat was.
fn continuation(req: &ChatRequest, prompt: String, left: u32, room: u32) -> CompletionRequest {
    CompletionRequest {
        model: req.model.clone(),
        prompt: Prompt::Text(prompt),
        // `-1` runs to the window's end; a smaller limit is the client's.
        max_tokens: Some(if left + 1 < room { i64::from(left) } else { -1 }),
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k,
        min_p: req.min_p,
        stop: req.stop.clone(),
        presence_penalty: req.presence_penalty,
        frequency_penalty: req.frequency_penalty,
        repeat_penalty: req.repeat_penalty,
        logit_bias: req.logit_bias.clone(),
        seed: req.seed,
        stream: Some(true),
        ..CompletionRequest::default()
    }
}

fn text_chunk(
    like: &ChatCompletionChunk,
    text: String,
    finish: Option<String>,
) -> ChatCompletionChunk {
    ChatCompletionChunk {
        choices: vec![ChunkChoice {
            index: 0,
            delta: Delta {
                content: (!text.is_empty()).then_some(text),
                ..Delta::default()
            },
            logprobs: None,
            finish_reason: finish,
        }],
        usage: None,
        ferrite: None,
        comment: None,
        ..like.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::context::LongContextConfig;
    use ferrite_engine::scripted::ScriptedEngine;
    use ferrite_openapi::chat::{ChatMessage, Role};

    fn shift(policy: ContextOverflow) -> Shift {
        Shift {
            fit: Fit {
                engine: Arc::new(ScriptedEngine::new("ok").with_context_length(300)),
                config: Arc::new(LongContextConfig::default()),
            },
            policy,
            report: ContextReport::default(),
        }
    }

    fn request(turns: usize) -> ChatRequest {
        let mut messages = vec![ChatMessage::text(Role::System, "Be brief.")];
        for i in 0..turns {
            messages.push(ChatMessage::text(
                Role::User,
                format!("q{i} {}", "w ".repeat(20)),
            ));
            messages.push(ChatMessage::text(
                Role::Assistant,
                format!("a{i} {}", "w ".repeat(20)),
            ));
        }
        messages.push(ChatMessage::text(Role::User, "tell a story"));
        ChatRequest {
            messages,
            ..ChatRequest::default()
        }
    }

    /// The answer so far: `n` numbered words.
    fn answer(n: usize) -> String {
        (0..n).map(|i| format!("s{i} ")).collect()
    }

    #[tokio::test]
    async fn a_shift_keeps_the_question_and_the_answers_latest_text() {
        for policy in [
            ContextOverflow::RollingWindow,
            ContextOverflow::TruncateMiddle,
        ] {
            let s = shift(policy);
            let mut report = ContextReport::default();
            let (prompt, kept) = s
                .prompt(&request(4), &answer(250), 1000, &mut report)
                .await
                .unwrap()
                .unwrap();
            let tokens = s.fit.count(&prompt).await;
            // Room is left to go on, the window's half at most is used by
            // what stays, and the answer's start is what went first.
            assert!(tokens + MIN_ROOM <= 300, "{tokens}: {prompt}");
            assert_eq!(kept, 300 / TAIL_DIVISOR as usize);
            assert!(prompt.starts_with("Be brief.\n"));
            assert!(prompt.contains("tell a story\n"));
            assert!(prompt.ends_with("s249"), "{prompt}");
            assert!(!prompt.contains("s0 "));
            assert!(report.dropped_messages > 0);
            assert_eq!(
                prompt.contains("q0 "),
                policy == ContextOverflow::TruncateMiddle,
                "{policy:?}: {prompt}"
            );
        }
    }

    #[tokio::test]
    async fn a_conversation_that_cannot_be_cut_gives_the_answer_half_of_what_is_free() {
        let s = shift(ContextOverflow::RollingWindow);
        let mut req = request(0);
        req.messages[1] = ChatMessage::text(Role::User, "long ".repeat(200));
        let (prompt, kept) = s
            .prompt(&req, &answer(250), 1000, &mut ContextReport::default())
            .await
            .unwrap()
            .unwrap();
        assert!(prompt.contains("long long"));
        assert!(kept < 75 && kept >= MIN_ROOM as usize, "{kept}");
        // No room at all: the answer stops at the window, as `error` does.
        req.messages[1] = ChatMessage::text(Role::User, "long ".repeat(290));
        let none = s
            .prompt(&req, &answer(250), 1000, &mut ContextReport::default())
            .await
            .unwrap();
        assert!(none.is_none());
    }
}
