//! Prompts longer than the model's context, per `context_overflow`:
//! `error` (the engine's 400, OpenAI's behaviour), `truncate_middle` and
//! `rolling_window` (whole turns dropped until the prompt fits, said in
//! `ferrite.context` and `x-ferrite-context`), or `memagent`: MemAgent's
//! overwrite strategy (Yu et al. 2025), which reads the overflowing turns in
//! chunks into a bounded memory, one model call a chunk, then answers from
//! the question and the final memory. Its cost grows linearly with the
//! input; progress goes out as SSE comments; `usage` sums every call; a
//! client that leaves stops the reading at the next chunk.

use std::sync::Arc;
use std::task::{Context, Poll};

use ferrite_engine::Engine;
use ferrite_openapi::chat::{
    ChatCompletionChunk, ChatMessage, ChatRequest, ContextOverflow, ContextReport, MemAgentReport,
    MessageContent, ResponseExtension, Role,
};
use ferrite_openapi::common::Usage;
use ferrite_openapi::{ApiError, ErrorCode};
use futures::future::BoxFuture;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tower::{Layer, Service, ServiceExt};

use crate::service::{take_ready, ChatResponse};
use crate::thinking::quiet_round;

mod shift;
use shift::Shift;

/// `[long_context]` in the config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LongContextConfig {
    /// The policy for requests that name none.
    pub policy: ContextOverflow,
    /// Tokens kept free for the answer when a prompt is made to fit (a
    /// smaller `max_tokens` keeps less; at most half the context).
    pub answer_tokens: u32,
    /// MemAgent: the memory's most tokens (0: an eighth of the context, at
    /// most 1024).
    pub memory_tokens: u32,
    /// MemAgent: conversation tokens a chunk holds (0: what fits beside the
    /// prompt, the question and the memory).
    pub chunk_tokens: u32,
    /// MemAgent: the prompt of each chunk's call; `{problem}`, `{memory}`
    /// and `{chunk}` are filled in.
    pub chunk_prompt: String,
    /// MemAgent: the prompt of the answer; `{problem}` and `{memory}`.
    pub final_prompt: String,
    /// An answer that fills the window goes on past it (a context shift)
    /// up to the request's `max_tokens`, else up to this many tokens
    /// (0: the context length).
    pub max_answer_tokens: u32,
}

impl Default for LongContextConfig {
    fn default() -> Self {
        Self {
            policy: ContextOverflow::Error,
            answer_tokens: 512,
            memory_tokens: 0,
            chunk_tokens: 0,
            // The paper's templates, adapted to a chat.
            chunk_prompt: "You are presented with a problem, a section of a conversation or document that may contain the answer to the problem, and a previous memory. Please read the provided section carefully and update the memory with the new information that helps to answer the problem. Be sure to retain all relevant details from the previous memory while adding any new, useful information.\n\n<problem>\n{problem}\n</problem>\n\n<memory>\n{memory}\n</memory>\n\n<section>\n{chunk}\n</section>\n\nUpdated memory:".into(),
            final_prompt: "You are presented with a problem and a previous memory. Please answer the problem based on the previous memory.\n\n<problem>\n{problem}\n</problem>\n\n<memory>\n{memory}\n</memory>\n\nYour answer:".into(),
            max_answer_tokens: 0,
        }
    }
}

#[derive(Clone)]
pub struct ContextLayer {
    engine: Arc<dyn Engine>,
    config: Arc<LongContextConfig>,
    max_bytes: usize,
}

impl ContextLayer {
    /// `max_bytes`: the most text a policy other than `error` reads
    /// (`limits.max_tokenize_bytes`).
    pub fn new(engine: Arc<dyn Engine>, config: LongContextConfig, max_bytes: usize) -> Self {
        Self {
            engine,
            config: Arc::new(config),
            max_bytes,
        }
    }
}

impl<S> Layer<S> for ContextLayer {
    type Service = ContextService<S>;

    fn layer(&self, inner: S) -> ContextService<S> {
        ContextService {
            inner,
            engine: self.engine.clone(),
            config: self.config.clone(),
            max_bytes: self.max_bytes,
        }
    }
}

#[derive(Clone)]
pub struct ContextService<S> {
    inner: S,
    engine: Arc<dyn Engine>,
    config: Arc<LongContextConfig>,
    max_bytes: usize,
}

impl<S> Service<ChatRequest> for ContextService<S>
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

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        let inner = take_ready(&mut self.inner);
        let fit = Fit {
            engine: self.engine.clone(),
            config: self.config.clone(),
        };
        let max_bytes = self.max_bytes;
        Box::pin(async move {
            let policy = req.context_overflow.unwrap_or(fit.config.policy);
            if policy == ContextOverflow::Error {
                return inner.oneshot(req).await;
            }
            // A policy reads the whole conversation: its size is bounded
            // before the tokenizer sees it.
            let bytes = req.messages.iter().map(|m| text(m).len()).sum::<usize>();
            if bytes > max_bytes {
                return Err(ApiError::invalid(
                    "messages",
                    format!(
                        "The conversation is {bytes} bytes; `context_overflow: \"{}\"` reads at most {max_bytes}.",
                        policy.as_str()
                    ),
                )
                .with_code(ErrorCode::RequestTooLarge));
            }
            let budget = fit.budget(&req);
            let Some(total) = fit.tokens(&req).await else {
                return inner.oneshot(req).await;
            };
            if total <= budget {
                let shift = Shift {
                    fit,
                    policy,
                    report: ContextReport::default(),
                };
                return shift.run(inner, req, total).await;
            }
            let mut report = ContextReport {
                policy: policy.as_str().into(),
                context_length: fit.context(),
                prompt_tokens: total,
                ..ContextReport::default()
            };
            if policy == ContextOverflow::Memagent {
                return fit.memagent(inner, req, report).await;
            }
            let kept = fit.truncate(req, policy, budget, &mut report).await?;
            let tokens = report.prompt_tokens - report.dropped_tokens;
            let shift = Shift {
                fit,
                policy,
                report: report.clone(),
            };
            let mut resp = shift.run(inner, kept, tokens).await?;
            resp.extension.context = Some(report);
            Ok(resp)
        })
    }
}

/// The prompt's tokens as the chat template renders it, when the engine
/// can render (budgets reserve them too).
pub(crate) async fn rendered_tokens(engine: &dyn Engine, req: &ChatRequest) -> Option<u32> {
    let prompt = engine.render_prompt(req).await.ok()?;
    let n = engine.count_tokens(&prompt).await.ok()?;
    Some(u32::try_from(n).unwrap_or(u32::MAX))
}

/// Measures and shapes prompts for one model.
#[derive(Clone)]
struct Fit {
    engine: Arc<dyn Engine>,
    config: Arc<LongContextConfig>,
}

/// A user message and the turns answering it, dropped together (an
/// assistant's tool calls never lose their results).
fn turns(messages: &[ChatMessage]) -> Vec<std::ops::Range<usize>> {
    let mut out: Vec<std::ops::Range<usize>> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        if m.role == Role::System {
            continue;
        }
        match out.last_mut() {
            Some(last) if m.role != Role::User && last.end == i => last.end = i + 1,
            _ => out.push(i..i + 1),
        }
    }
    out
}

fn text(m: &ChatMessage) -> String {
    match &m.content {
        Some(MessageContent::Text(t)) => t.clone(),
        Some(content) => serde_json::to_string(content).unwrap_or_default(),
        None => String::new(),
    }
}

fn role(m: &ChatMessage) -> &'static str {
    match m.role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        _ => "tool",
    }
}

impl Fit {
    fn context(&self) -> u32 {
        self.engine.info().meta.context_length
    }

    /// The most prompt tokens that leave room for the answer.
    fn budget(&self, req: &ChatRequest) -> u32 {
        let context = self.context();
        let wanted = req
            .max_completion_tokens
            .or(req.max_tokens)
            .filter(|&n| n > 0)
            .map_or(self.config.answer_tokens, |n| {
                (n as u32).min(self.config.answer_tokens)
            });
        context - wanted.min(context / 2)
    }

    async fn tokens(&self, req: &ChatRequest) -> Option<u32> {
        rendered_tokens(self.engine.as_ref(), req).await
    }

    async fn count(&self, text: &str) -> u32 {
        let n = self
            .engine
            .count_tokens(text)
            .await
            .unwrap_or(text.len() / 4);
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// [`Fit::cut`], or a 400 when even that does not fit.
    async fn truncate(
        &self,
        req: ChatRequest,
        policy: ContextOverflow,
        budget: u32,
        report: &mut ContextReport,
    ) -> Result<ChatRequest, ApiError> {
        let kept = self.cut(req, policy, budget, report).await;
        let real = report.prompt_tokens - report.dropped_tokens;
        if real > budget {
            return Err(ApiError::context_length_exceeded(format!(
                "Even with every earlier turn dropped ({policy}), the prompt is {real} tokens; \
                 this model's context is {} and {} are kept for the answer. \
                 Shorten the last message, or use `context_overflow: \"memagent\"`.",
                self.context(),
                self.context() - budget,
                policy = policy.as_str(),
            )));
        }
        Ok(kept)
    }

    /// Drops whole turns, oldest first (after the first user turn, for
    /// `truncate_middle`), until the prompt fits in `budget` or only the
    /// system messages, the first turn it keeps and the last turn are left.
    /// `report` says what went, and so what is left.
    async fn cut(
        &self,
        mut req: ChatRequest,
        policy: ContextOverflow,
        budget: u32,
        report: &mut ContextReport,
    ) -> ChatRequest {
        let all = turns(&req.messages);
        let keep_first = usize::from(policy == ContextOverflow::TruncateMiddle);
        let droppable = all.len().saturating_sub(1).saturating_sub(keep_first);
        let mut sizes = Vec::with_capacity(droppable);
        for turn in all.iter().skip(keep_first).take(droppable) {
            let mut n = 0;
            for m in &req.messages[turn.clone()] {
                n += self.count(&text(m)).await + 4;
            }
            sizes.push(n);
        }
        let mut total = report.prompt_tokens;
        let mut dropped = 0;
        loop {
            // Estimate from the turns' own sizes, then check the real prompt.
            while total > budget && dropped < droppable {
                total = total.saturating_sub(sizes[dropped]);
                dropped += 1;
            }
            let mut gone = vec![false; req.messages.len()];
            for i in all
                .iter()
                .skip(keep_first)
                .take(dropped)
                .flat_map(|t| t.clone())
            {
                gone[i] = true;
            }
            let mut kept = req.clone();
            kept.messages = req
                .messages
                .iter()
                .zip(&gone)
                .filter(|(_, &gone)| !gone)
                .map(|(m, _)| m.clone())
                .collect();
            let real = self.tokens(&kept).await.unwrap_or(total);
            if real <= budget || dropped == droppable {
                report.dropped_messages = gone.iter().filter(|&&g| g).count();
                // Never below zero, so that what is left stays the real size.
                report.prompt_tokens = report.prompt_tokens.max(real);
                report.dropped_tokens = report.prompt_tokens - real;
                req.messages = kept.messages;
                return req;
            }
            total = real;
        }
    }

    /// The memory's size, the question, and the text to read in chunks.
    async fn memagent<S>(
        self,
        inner: S,
        req: ChatRequest,
        mut report: ContextReport,
    ) -> Result<ChatResponse, ApiError>
    where
        S: Service<ChatRequest, Response = ChatResponse, Error = ApiError> + Clone + Send + 'static,
        S::Future: Send + 'static,
    {
        let context = self.context();
        let memory_tokens = match self.config.memory_tokens {
            0 => (context / 8).min(1024),
            n => n.min(context / 4),
        };
        let last_user = req.messages.iter().rposition(|m| m.role == Role::User);
        let question = last_user
            .map(|i| text(&req.messages[i]))
            .unwrap_or_default();
        // A question longer than a quarter of the memory's room is read as
        // text too; its end (where questions usually are) stands for it.
        let question_ids = self.engine.encode(&question, false).await?;
        let long_question = question_ids.len() > memory_tokens as usize;
        let problem = if long_question {
            let tail = &question_ids[question_ids.len() - memory_tokens as usize..];
            format!("…{}", self.engine.decode(tail).await?)
        } else {
            question.clone()
        };
        let read: Vec<&ChatMessage> = req
            .messages
            .iter()
            .enumerate()
            .filter(|(i, m)| m.role != Role::System && (long_question || Some(*i) != last_user))
            .map(|(_, m)| m)
            .collect();
        let transcript: String = read
            .iter()
            .map(|m| format!("{}: {}\n\n", role(m), text(m)))
            .collect();
        let ids = self.engine.encode(&transcript, false).await?;
        let overhead = self
            .count(
                &self
                    .config
                    .chunk_prompt
                    .replace("{problem}", &problem)
                    .replace("{memory}", "")
                    .replace("{chunk}", ""),
            )
            .await
            + 32;
        let room = context.saturating_sub(overhead + 2 * memory_tokens);
        let chunk = match self.config.chunk_tokens {
            0 => room,
            n => n.min(room),
        } as usize;
        if chunk < 64 {
            return Err(ApiError::context_length_exceeded(format!(
                "This model's context ({context} tokens) leaves no room to read the conversation in chunks beside the question; shorten the last message."
            )));
        }
        let mut pieces = Vec::new();
        for part in ids.chunks(chunk) {
            pieces.push(self.engine.decode(part).await?);
        }
        report.dropped_messages = read.len();
        report.dropped_tokens = u32::try_from(ids.len()).unwrap_or(u32::MAX);
        let return_memory = req.return_memory.unwrap_or(false);
        let config = self.config.clone();
        let shift = Shift {
            fit: self.clone(),
            policy: ContextOverflow::Memagent,
            report: report.clone(),
        };
        let n = pieces.len();
        let system: Vec<ChatMessage> = req
            .messages
            .iter()
            .filter(|m| m.role == Role::System)
            .cloned()
            .collect();
        let call = move |prompt: String, max_tokens: Option<i64>, original: &ChatRequest| {
            let mut r = original.clone();
            r.messages = system.clone();
            r.messages.push(ChatMessage::text(Role::User, prompt));
            r.context_overflow = Some(ContextOverflow::Error);
            if let Some(n) = max_tokens {
                // Memory writes: bounded, greedy, plain text, one choice.
                r.max_tokens = Some(n);
                r.max_completion_tokens = None;
                r.temperature = Some(0.0);
                r.n = None;
                r.tools = None;
                r.tool_choice = None;
                r.response_format = None;
                r.logprobs = None;
                r.top_logprobs = None;
            }
            r
        };
        let stream = async_stream::stream! {
            let mut memory = String::from("No previous memory");
            let mut total: Option<Usage> = None;
            for (k, piece) in pieces.iter().enumerate() {
                let prompt = config.chunk_prompt
                    .replace("{problem}", &problem)
                    .replace("{memory}", &memory)
                    .replace("{chunk}", piece);
                let r = call(prompt, Some(i64::from(memory_tokens)), &req);
                let (done, like) = match quiet_round(inner.clone(), r).await {
                    Ok(done) => done,
                    Err(e) => {
                        yield Err(e);
                        return;
                    }
                };
                let usage = done.usage.unwrap_or_default();
                total = Some(total.map_or(usage, |t| t.plus(usage)));
                memory = done
                    .choices
                    .into_iter()
                    .next()
                    .and_then(|c| c.message.content)
                    .unwrap_or_default();
                if let Some(like) = &like {
                    yield Ok(ChatCompletionChunk::comment(
                        like,
                        format!("ferrite: memagent chunk {}/{n}", k + 1),
                    ));
                }
            }
            let prompt = config.final_prompt
                .replace("{problem}", &problem)
                .replace("{memory}", &memory);
            let answer = call(prompt, None, &req);
            let tokens = shift.fit.tokens(&answer).await.unwrap_or_default();
            let mut chunks = match shift.run(inner, answer, tokens).await {
                Ok(resp) => resp.stream,
                Err(e) => {
                    yield Err(e);
                    return;
                }
            };
            let mut first = true;
            while let Some(item) = chunks.next().await {
                let mut c = match item {
                    Ok(c) => c,
                    Err(e) => {
                        yield Err(e);
                        return;
                    }
                };
                if first && c.comment.is_none() {
                    first = false;
                    c.ferrite.get_or_insert_with(ResponseExtension::default).memagent =
                        Some(MemAgentReport {
                            chunks: n,
                            memory: return_memory.then(|| memory.clone()),
                        });
                }
                if let Some(usage) = c.usage {
                    c.usage = Some(total.map_or(usage, |t| t.plus(usage)));
                }
                yield Ok(c);
            }
        };
        let mut resp = ChatResponse::new(Box::pin(stream));
        resp.extension.context = Some(report);
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::EngineService;
    use ferrite_engine::scripted::ScriptedEngine;
    use ferrite_openapi::chat::ChatCompletion;

    fn conversation(turns: usize) -> ChatRequest {
        let mut messages = vec![ChatMessage::text(Role::System, "Be brief.")];
        for i in 0..turns {
            messages.push(ChatMessage::text(
                Role::User,
                format!("question {i} {}", "word ".repeat(30)),
            ));
            messages.push(ChatMessage::text(
                Role::Assistant,
                format!("answer {i} {}", "word ".repeat(30)),
            ));
        }
        messages.push(ChatMessage::text(Role::User, "last question"));
        ChatRequest {
            messages,
            max_tokens: Some(8),
            ..ChatRequest::default()
        }
    }

    #[test]
    fn a_turn_keeps_its_answers_and_tool_results() {
        let mut req = conversation(2);
        req.messages.insert(3, ChatMessage::text(Role::Tool, "42"));
        let t = turns(&req.messages);
        assert_eq!(t, vec![1..4, 4..6, 6..7]);
    }

    async fn truncated(policy: ContextOverflow) -> (Vec<String>, ContextReport) {
        let engine = Arc::new(ScriptedEngine::new("ok").with_context_length(300));
        let fit = Fit {
            engine: engine.clone(),
            config: Arc::new(LongContextConfig::default()),
        };
        let req = conversation(6);
        let total = fit.tokens(&req).await.unwrap();
        let mut report = ContextReport {
            prompt_tokens: total,
            ..ContextReport::default()
        };
        let budget = fit.budget(&req);
        assert!(total > budget, "{total} over {budget}");
        let kept = fit
            .truncate(req, policy, budget, &mut report)
            .await
            .unwrap();
        assert!(fit.tokens(&kept).await.unwrap() <= budget);
        (kept.messages.iter().map(text).collect(), report)
    }

    #[tokio::test]
    async fn truncate_middle_keeps_the_first_turn_and_the_latest() {
        let (kept, report) = truncated(ContextOverflow::TruncateMiddle).await;
        assert_eq!(kept[0], "Be brief.");
        assert!(kept[1].starts_with("question 0"), "{kept:?}");
        assert!(kept[2].starts_with("answer 0"));
        assert_eq!(kept.last().unwrap(), "last question");
        assert!(!kept.iter().any(|t| t.starts_with("question 1 ")));
        assert!(kept.iter().any(|t| t.starts_with("question 5 ")));
        assert!(report.dropped_messages >= 2 && report.dropped_messages % 2 == 0);
        assert!(report.dropped_tokens > 0);
    }

    #[tokio::test]
    async fn rolling_window_drops_the_oldest_but_never_the_system_message() {
        let (kept, _) = truncated(ContextOverflow::RollingWindow).await;
        assert_eq!(kept[0], "Be brief.");
        assert!(!kept.iter().any(|t| t.starts_with("question 0 ")));
        assert!(kept.iter().any(|t| t.starts_with("question 5 ")));
        assert_eq!(kept.last().unwrap(), "last question");
    }

    #[tokio::test]
    async fn memagent_reads_every_chunk_in_order_then_answers_from_memory() {
        let engine = Arc::new(ScriptedEngine::new("remembered").with_context_length(400));
        let svc = ContextLayer::new(engine.clone(), LongContextConfig::default(), 1 << 20)
            .layer(EngineService::new(engine.clone()));
        let mut req = conversation(12);
        req.context_overflow = Some(ContextOverflow::Memagent);
        req.return_memory = Some(true);
        let resp = svc.oneshot(req).await.unwrap();
        let report = resp.extension.context.clone().unwrap();
        assert_eq!(report.policy, "memagent");
        assert_eq!(report.dropped_messages, 24);
        let chunks: Vec<_> = resp.stream.collect().await;
        let comments: Vec<String> = chunks
            .iter()
            .filter_map(|c| c.as_ref().unwrap().comment.clone())
            .collect();
        let n = comments.len();
        assert!(n >= 3, "{comments:?}");
        assert_eq!(comments[0], format!("ferrite: memagent chunk 1/{n}"));
        assert_eq!(comments[n - 1], format!("ferrite: memagent chunk {n}/{n}"));
        // Each chunk's call saw the question, the previous memory and its
        // piece of the conversation, in order, and never more than fits.
        let prompts = engine.prompts();
        assert_eq!(prompts.len(), n + 1);
        assert!(prompts[0].contains("No previous memory") && prompts[0].contains("question 0"));
        assert!(prompts[1].contains("<memory>\nremembered\n</memory>"));
        assert!(prompts.iter().all(|p| p.contains("last question")));
        let positions: Vec<usize> = (0..12)
            .map(|i| {
                prompts
                    .iter()
                    .position(|p| p.contains(&format!("question {i} ")))
                    .unwrap()
            })
            .collect();
        assert!(positions.windows(2).all(|w| w[0] <= w[1]), "{positions:?}");
        assert!(prompts[n].starts_with("Be brief.") || prompts[n].contains("Your answer:"));
        let mut acc = ferrite_openapi::aggregate::ChatAccumulator::default();
        for c in chunks.iter().flatten().filter(|c| c.comment.is_none()) {
            acc.push(c);
        }
        let done: ChatCompletion = acc.finish();
        let first = chunks
            .iter()
            .flatten()
            .find(|c| c.comment.is_none())
            .unwrap();
        let agent = first.ferrite.as_ref().unwrap().memagent.as_ref().unwrap();
        assert_eq!(agent.chunks, n);
        assert_eq!(agent.memory.as_deref(), Some("remembered"));
        // Usage sums the chunk calls and the answer.
        assert_eq!(done.usage.unwrap().completion_tokens as usize, n + 1);
    }
}
