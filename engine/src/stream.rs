//! From mistral.rs response channels to OpenAI chunk streams.
//!
//! Every sequence gets its own forwarding task that drains the engine's
//! channel into an unbounded one, so a slow client never blocks the engine's
//! step loop, and that drops the engine channel as soon as the client goes
//! away, which makes mistral.rs cancel the sequence at its next step.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use ferrite_openapi::chat::{
    ChatCompletionChunk, ChunkChoice, Delta, FunctionCallDelta, ToolCallDelta, ToolKind,
};
use ferrite_openapi::common::{Logprobs, TokenLogprob, Usage};
use ferrite_openapi::completions::{Completion, CompletionChoice, CompletionLogprobs};
use ferrite_openapi::ApiError;
use futures::stream::{select_all, StreamExt};
use mistralrs::core::{
    ChatCompletionChunkResponse, ChunkChoice as ChunkChoiceResponse, CompletionChunkChoice,
    CompletionChunkResponse, Response, ResponseLogprob, ToolCallResponse,
};
use tokio::sync::mpsc::{unbounded_channel, Receiver, UnboundedReceiver};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::backend::{ChatStream, CompletionStream};
use crate::logprobs::{token_text, LogprobReport};
use crate::options::Delimiters;
use crate::reasoning_split::{ReasoningSplit, Split};
use crate::stop::StopGate;

pub enum Event {
    Chat(ChatCompletionChunkResponse),
    Text(CompletionChunkResponse),
    Error(ApiError),
}

fn engine_error(resp: Response) -> Option<ApiError> {
    match resp {
        Response::ValidationError(e) => Some(validation_error(&e.to_string())),
        Response::InternalError(e) => Some(ApiError::internal(format!("Engine error: {e}"))),
        Response::ModelError(msg, _) | Response::CompletionModelError(msg, _) => {
            Some(ApiError::internal(format!("Model error: {msg}")))
        }
        _ => None,
    }
}

/// mistral.rs validation messages name no field; recover the likely one.
fn validation_error(msg: &str) -> ApiError {
    let lower = msg.to_ascii_lowercase();
    let param = if lower.contains("grammar") || lower.contains("schema") {
        "response_format"
    } else if lower.contains("stop") {
        "stop"
    } else if lower.contains("sequence length") || lower.contains("prompt") {
        return ApiError::context_length_exceeded(msg.to_string());
    } else {
        "messages"
    };
    ApiError::invalid(param, msg.to_string())
}

/// Spawns the task that relays one sequence's responses. It holds the
/// sequence's engine `slot` until the sequence ends or is abandoned.
pub fn forward(
    mut rx: Receiver<Response>,
    request_id: String,
    cancel: CancellationToken,
    slot: impl Send + 'static,
) -> UnboundedReceiver<Event> {
    let (tx, out) = unbounded_channel();
    // Keep the caller's span (and so its request id) on this task's log lines.
    let span = tracing::Span::current();
    let task = async move {
        let _slot = slot;
        let mut finished = false;
        loop {
            let resp = tokio::select! {
                resp = rx.recv() => resp,
                () = tx.closed() => {
                    if !finished {
                        info!(request_id = %request_id, "client went away; generation cancelled");
                    }
                    return;
                }
                // Ferrite ended the choice itself (a stop sequence matched).
                () = cancel.cancelled() => return,
            };
            let Some(resp) = resp else { return };
            let event = match resp {
                Response::Chunk(c) => {
                    finished |= c.choices.iter().any(|c| c.finish_reason.is_some());
                    Event::Chat(c)
                }
                Response::CompletionChunk(c) => {
                    finished |= c.choices.iter().any(|c| c.finish_reason.is_some());
                    Event::Text(c)
                }
                other => match engine_error(other) {
                    Some(e) => {
                        finished = true;
                        Event::Error(e)
                    }
                    None => {
                        warn!(request_id = %request_id, "unexpected engine response ignored");
                        continue;
                    }
                },
            };
            if tx.send(event).is_err() {
                return;
            }
        }
    };
    tokio::spawn(tracing::Instrument::instrument(task, span));
    out
}

/// One sequence of a request: which choice it fills and its token counter.
pub struct Run {
    pub index: u32,
    pub events: UnboundedReceiver<Event>,
    pub generated: Arc<AtomicU32>,
    /// Text a completion echoes before the generated text.
    pub echo: Option<String>,
    /// Ends the engine sequence early (stop sequence matched).
    pub cancel: CancellationToken,
    /// Set when the client asked for logprobs.
    pub logprobs: Option<LogprobReport>,
    /// Thinking tokens so far, when the choice has a thinking block.
    pub reasoning: Option<Arc<AtomicU32>>,
}

/// The parts every chunk of one response repeats.
#[derive(Clone)]
pub struct Head {
    pub id: String,
    pub created: u64,
    pub model: String,
    pub prompt_tokens: u32,
    pub stops: Vec<String>,
    /// The thinking block's delimiters, when the prompt opened one: the
    /// text is then split into `reasoning_content` and `content`.
    pub thinking: Option<Delimiters>,
}

fn merged(runs: Vec<Run>) -> impl futures::Stream<Item = (u32, Event)> {
    select_all(runs.into_iter().map(|r| {
        let index = r.index;
        UnboundedReceiverStream::new(r.events).map(move |e| (index, e))
    }))
}

fn tool_delta(c: &ToolCallResponse) -> ToolCallDelta {
    ToolCallDelta {
        index: c.index as u32,
        id: Some(c.id.clone()),
        kind: Some(ToolKind::Function),
        function: Some(FunctionCallDelta {
            name: Some(c.function.name.clone()),
            arguments: Some(c.function.arguments.clone()),
        }),
    }
}

pub fn chat_stream(head: Head, runs: Vec<Run>) -> ChatStream {
    let counters: Vec<Arc<AtomicU32>> = runs.iter().map(|r| r.generated.clone()).collect();
    let reasoning: Vec<Arc<AtomicU32>> = runs.iter().filter_map(|r| r.reasoning.clone()).collect();
    let cancels: BTreeMap<u32, CancellationToken> =
        runs.iter().map(|r| (r.index, r.cancel.clone())).collect();
    let reports: BTreeMap<u32, LogprobReport> = runs
        .iter()
        .filter_map(|r| r.logprobs.clone().map(|l| (r.index, l)))
        .collect();
    let mut events = merged(runs);
    let chunk = {
        let head = head.clone();
        move |choices: Vec<ChunkChoice>, usage: Option<Usage>| ChatCompletionChunk {
            id: head.id.clone(),
            object: "chat.completion.chunk".into(),
            created: head.created,
            model: head.model.clone(),
            system_fingerprint: None,
            choices,
            usage,
            ferrite: None,
            comment: None,
        }
    };
    let one = |index: u32, delta: Delta, logprobs: Vec<TokenLogprob>, finish: Option<String>| {
        vec![ChunkChoice {
            index,
            delta,
            logprobs: (!logprobs.is_empty()).then_some(Logprobs {
                content: Some(logprobs),
            }),
            finish_reason: finish,
        }]
    };
    let delta = |content: String, reasoning: String| Delta {
        content: (!content.is_empty()).then_some(content),
        reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
        ..Delta::default()
    };
    Box::pin(async_stream::stream! {
        let mut gates: BTreeMap<u32, StopGate<TokenLogprob>> = BTreeMap::new();
        let mut splits: BTreeMap<u32, ReasoningSplit> = BTreeMap::new();
        let mut done: BTreeMap<u32, bool> = BTreeMap::new();
        while let Some((index, event)) = events.next().await {
            if done.get(&index).copied().unwrap_or(false) {
                continue;
            }
            let pieces: Vec<Piece> = match event {
                Event::Chat(c) => c.choices.into_iter().map(Piece::from_chat).collect(),
                Event::Text(c) => c.choices.into_iter().map(Piece::from_text).collect(),
                Event::Error(e) => {
                    yield Err(e);
                    return;
                }
            };
            for p in pieces {
                let gate = gates.entry(index).or_insert_with(|| StopGate::new(head.stops.clone()));
                if gate_is_new(&done, index) {
                    done.insert(index, false);
                    // A thinking block shows even when empty (`thinking.max_tokens: 0`).
                    let role = Delta {
                        role: Some("assistant".into()),
                        content: Some(String::new()),
                        reasoning_content: head.thinking.as_ref().map(|_| String::new()),
                        ..Delta::default()
                    };
                    yield Ok(chunk(one(index, role, vec![], None), None));
                }
                let mut lp = p.logprobs.as_ref().and_then(|lp| reports.get(&index).map(|r| r.token(lp)));
                let (mut text, mut reasoning) = (p.content, p.reasoning);
                if let Some(d) = &head.thinking {
                    let split = splits.entry(index).or_insert_with(|| ReasoningSplit::new(&d.open, &d.close));
                    let mut out = split.push(&text);
                    if p.finish_reason.is_some() {
                        let rest = split.finish();
                        out.reasoning.push_str(&rest.reasoning);
                        out.content.push_str(&rest.content);
                    }
                    let Split { reasoning: r, content: c } = out;
                    // Thinking tokens report no logprobs, as with OpenAI.
                    if c.is_empty() {
                        lp = None;
                    }
                    reasoning.push_str(&r);
                    text = c;
                }
                let out = gate.push(&text, lp);
                let tools = p.tool_calls;
                if !out.text.is_empty() || !out.logprobs.is_empty() || !reasoning.is_empty() || tools.is_some() {
                    let d = Delta { tool_calls: tools, ..delta(out.text, reasoning) };
                    yield Ok(chunk(one(index, d, out.logprobs, None), None));
                }
                let finish = if out.stopped {
                    if let Some(t) = cancels.get(&index) {
                        t.cancel();
                    }
                    Some("stop".to_string())
                } else if let Some(reason) = p.finish_reason {
                    let rest = gate.finish();
                    if !rest.text.is_empty() || !rest.logprobs.is_empty() {
                        yield Ok(chunk(one(index, delta(rest.text, String::new()), rest.logprobs, None), None));
                    }
                    Some(reason)
                } else {
                    None
                };
                if let Some(reason) = finish {
                    done.insert(index, true);
                    yield Ok(chunk(one(index, Delta::default(), vec![], Some(reason)), None));
                    break;
                }
            }
        }
        if cancels.keys().any(|i| !done.get(i).copied().unwrap_or(false)) {
            yield Err(ApiError::internal("The engine stopped before finishing the completion."));
            return;
        }
        let generated: u32 = counters.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        let mut usage = Usage::new(head.prompt_tokens, generated);
        if head.thinking.is_some() {
            usage = usage.with_reasoning(reasoning.iter().map(|c| c.load(Ordering::Relaxed)).sum());
        }
        yield Ok(chunk(vec![], Some(usage)));
    })
}

/// One choice's share of an engine chunk, from a chat or a text sequence
/// (a thinking answer runs as text: ferrite renders its prompt).
struct Piece {
    content: String,
    reasoning: String,
    tool_calls: Option<Vec<ToolCallDelta>>,
    logprobs: Option<ResponseLogprob>,
    finish_reason: Option<String>,
}

impl Piece {
    fn from_chat(ch: ChunkChoiceResponse) -> Self {
        Self {
            tool_calls: ch
                .delta
                .tool_calls
                .as_ref()
                .map(|calls| calls.iter().map(tool_delta).collect()),
            content: ch.delta.content.unwrap_or_default(),
            reasoning: ch.delta.reasoning_content.unwrap_or_default(),
            logprobs: ch.logprobs,
            finish_reason: ch.finish_reason,
        }
    }

    fn from_text(ch: CompletionChunkChoice) -> Self {
        Self {
            content: ch.text,
            reasoning: String::new(),
            tool_calls: None,
            logprobs: ch.logprobs,
            finish_reason: ch.finish_reason,
        }
    }
}

/// True before a choice's first event: its role chunk is still to be sent.
fn gate_is_new(done: &BTreeMap<u32, bool>, index: u32) -> bool {
    !done.contains_key(&index)
}

pub fn completion_stream(head: Head, runs: Vec<Run>) -> CompletionStream {
    let counters: Vec<Arc<AtomicU32>> = runs.iter().map(|r| r.generated.clone()).collect();
    let cancels: BTreeMap<u32, CancellationToken> =
        runs.iter().map(|r| (r.index, r.cancel.clone())).collect();
    let echoes: BTreeMap<u32, String> = runs
        .iter()
        .filter_map(|r| r.echo.clone().map(|e| (r.index, e)))
        .collect();
    let reports: BTreeMap<u32, LogprobReport> = runs
        .iter()
        .filter_map(|r| r.logprobs.clone().map(|l| (r.index, l)))
        .collect();
    let mut events = merged(runs);
    let stops = head.stops.clone();
    let prompt_tokens = head.prompt_tokens;
    let chunk = move |index: u32,
                      text: String,
                      logprobs: Option<CompletionLogprobs>,
                      finish: Option<String>,
                      usage: Option<Usage>| Completion {
        id: head.id.clone(),
        object: "text_completion".into(),
        created: head.created,
        model: head.model.clone(),
        choices: if usage.is_some() {
            vec![]
        } else {
            vec![CompletionChoice {
                index,
                text,
                logprobs,
                finish_reason: finish,
            }]
        },
        usage,
        system_fingerprint: None,
    };
    Box::pin(async_stream::stream! {
        let mut gates: BTreeMap<u32, StopGate<CompletionLogprobs>> = BTreeMap::new();
        let mut done: BTreeMap<u32, bool> = BTreeMap::new();
        // Bytes of text each choice has produced, for absolute `text_offset`s.
        let mut cursor: BTreeMap<u32, u32> = BTreeMap::new();
        for (&index, text) in &echoes {
            cursor.insert(index, text.len() as u32);
            yield Ok(chunk(index, text.clone(), None, None, None));
        }
        while let Some((index, event)) = events.next().await {
            if done.get(&index).copied().unwrap_or(false) {
                continue;
            }
            let c = match event {
                Event::Text(c) => c,
                Event::Error(e) => {
                    yield Err(e);
                    return;
                }
                Event::Chat(_) => continue,
            };
            for ch in c.choices {
                let first = !gates.contains_key(&index);
                let gate = gates.entry(index).or_insert_with(|| StopGate::new(stops.clone()));
                let mut piece = ch.text;
                if first {
                    // mistral.rs trims the first token's leading space, which
                    // matters in a text completion ("is" + " Paris").
                    if let Some(lp) = &ch.logprobs {
                        let raw = token_text(lp);
                        let lead = &raw[..raw.len() - raw.trim_start().len()];
                        if !piece.starts_with(lead) {
                            piece.insert_str(0, lead);
                        }
                    }
                }
                let lp = ch.logprobs.as_ref().and_then(|lp| reports.get(&index).map(|r| r.legacy(lp)));
                let out = gate.push(&piece, lp);
                let finish = if out.stopped {
                    if let Some(t) = cancels.get(&index) {
                        t.cancel();
                    }
                    Some("stop".to_string())
                } else {
                    ch.finish_reason
                };
                let (mut text, mut lps) = (out.text, out.logprobs);
                if finish.is_some() && !out.stopped {
                    let rest = gate.finish();
                    text.push_str(&rest.text);
                    lps.extend(rest.logprobs);
                }
                let at = cursor.entry(index).or_insert(0);
                let logprobs = (!lps.is_empty()).then(|| {
                    lps.into_iter().fold(CompletionLogprobs::default(), |mut acc, mut lp| {
                        lp.text_offset = vec![*at];
                        *at += lp.tokens.iter().map(|t| t.len() as u32).sum::<u32>();
                        acc.extend(lp);
                        acc
                    })
                });
                if !text.is_empty() || logprobs.is_some() || finish.is_some() {
                    yield Ok(chunk(index, text, logprobs, finish.clone(), None));
                }
                if finish.is_some() {
                    done.insert(index, true);
                    break;
                }
            }
        }
        if cancels.keys().any(|i| !done.get(i).copied().unwrap_or(false)) {
            yield Err(ApiError::internal("The engine stopped before finishing the completion."));
            return;
        }
        let generated: u32 = counters.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        yield Ok(chunk(0, String::new(), None, None, Some(Usage::new(prompt_tokens, generated))));
    })
}
