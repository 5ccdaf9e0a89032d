//! One response's choices, from runtime events to OpenAI chunk streams.
//!
//! Each runtime reports a sequence as a channel of [`Event`]s. [`Response`]
//! merges a request's sequences and keeps one [`Choice`] per choice (stop
//! sequences, the reasoning split, where structured output ends); the chat
//! and completion streams only give its [`Out`] items their wire shape.

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
use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::backend::{ChatStream, CompletionStream};
use crate::json_end::JsonEnd;
use crate::options::Delimiters;
use crate::reasoning_split::ReasoningSplit;
use crate::stop::StopGate;

/// What a runtime reports for one sequence.
pub enum Event {
    StepOutput(StepOutput),
    Error(ApiError),
}

/// One step's output of a sequence (usually one token's text).
#[derive(Default)]
pub struct StepOutput {
    pub text: String,
    /// Thinking text the runtime split off itself.
    pub reasoning: String,
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    pub logprob: Option<TokenLogprob>,
    pub finish: Option<String>,
}

/// One sequence of a request: which choice it fills and its token counter.
pub struct Run {
    pub index: u32,
    pub events: UnboundedReceiver<Event>,
    pub generated: Arc<AtomicU32>,
    /// Text a completion echoes before the generated text.
    pub echo: Option<String>,
    /// Ends the runtime's sequence early (stop sequence or value matched).
    pub cancel: CancellationToken,
    /// Thinking tokens so far, when the choice has a thinking block.
    pub reasoning: Option<Arc<AtomicU32>>,
    /// Prompt tokens reused from an earlier request, on the first choice
    /// of each prompt when the runtime reports it.
    pub cached: Option<Arc<AtomicU32>>,
}

/// How a choice's text is structured, which decides where it ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Structured {
    #[default]
    Free,
    /// A JSON `response_format`: the choice ends with its value.
    Json,
    /// A forced tool call, generated as `{"name", "arguments"}` JSON.
    ToolCall,
    /// Tools offered: text shaped like a call becomes one at the end.
    ToolAuto,
}

/// The parts every chunk of one response repeats.
#[derive(Clone)]
pub struct ResponseHead {
    pub id: String,
    pub created: u64,
    pub model: String,
    pub prompt_tokens: u32,
    pub stops: Vec<String>,
    /// The thinking block's delimiters, when the prompt opened one: the
    /// text is then split into `reasoning_content` and `content`.
    pub thinking: Option<Delimiters>,
    pub structured: Structured,
}

/// A choice's progress, as the client sees it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing sent yet (its role chunk is due).
    Fresh,
    Open,
    Done,
}

struct Choice {
    phase: Phase,
    gate: StopGate<TokenLogprob>,
    split: Option<ReasoningSplit>,
    json: Option<JsonEnd>,
    /// Text held back as a (possible) tool call.
    call: Option<String>,
    cancel: CancellationToken,
    generated: Arc<AtomicU32>,
    /// Pieces seen, and whether ferrite ended the choice at a JSON value's
    /// end (the runtime may have sampled past it by then).
    pieces: u32,
    cut: bool,
    /// Whether any answer text has come yet.
    answered: bool,
}

impl Choice {
    /// Moves thinking text out of the answer, when the model thinks.
    fn split_reasoning(
        &mut self,
        text: String,
        mut reasoning: String,
        lp: Option<TokenLogprob>,
        finishing: bool,
    ) -> (String, String, Option<TokenLogprob>) {
        let Some(split) = &mut self.split else {
            return (text, reasoning, lp);
        };
        let mut s = split.push(&text);
        if finishing {
            let rest = split.finish();
            s.reasoning.push_str(&rest.reasoning);
            s.content.push_str(&rest.content);
        }
        reasoning.push_str(&s.reasoning);
        // Thinking tokens report no logprobs, as with OpenAI.
        let lp = if s.content.is_empty() { None } else { lp };
        (s.content, reasoning, lp)
    }

    /// Structured output ends where its JSON value ends.
    fn end_json(
        &mut self,
        text: &mut String,
        finishing: bool,
        structured: Structured,
    ) -> Option<&'static str> {
        let n = self.json.as_mut()?.push(text)?;
        text.truncate(n);
        self.cut = !finishing;
        Some(if structured == Structured::ToolCall {
            "tool_calls"
        } else {
            "stop"
        })
    }

    /// Holds back text that is (or may be) a tool call until it is whole,
    /// then sends it as one; text that turns out not to be a call is the
    /// answer after all.
    fn hold_call(
        &mut self,
        text: &mut String,
        ended: &mut Option<&'static str>,
        mut tool_calls: Option<Vec<ToolCallDelta>>,
        finishing: bool,
        structured: Structured,
    ) -> Option<Vec<ToolCallDelta>> {
        if structured == Structured::ToolAuto
            && self.call.is_none()
            && !self.answered
            && looks_like_call(text)
        {
            self.call = Some(String::new());
        }
        let Some(call) = &mut self.call else {
            return tool_calls;
        };
        call.push_str(text);
        text.clear();
        if ended.is_some() || finishing {
            let held = std::mem::take(call);
            match parse_call(&held) {
                Some(delta) => {
                    tool_calls = Some(vec![delta]);
                    *ended = Some("tool_calls");
                }
                None => *text = held,
            }
            self.call = None;
        }
        tool_calls
    }

    /// Ends the choice: what the stop gate still holds, then the reason.
    fn finish(&mut self, index: u32, reason: String, stopped: bool, out: &mut Vec<Out>) {
        if stopped || self.cut {
            self.cancel.cancel();
        }
        if !stopped {
            let rest = self.gate.finish();
            if !rest.text.is_empty() || !rest.logprobs.is_empty() {
                out.push(Out::Delta {
                    index,
                    content: rest.text,
                    reasoning: String::new(),
                    tool_calls: None,
                    logprobs: rest.logprobs,
                });
            }
        }
        self.phase = Phase::Done;
        out.push(Out::Finish { index, reason });
    }
}

/// What a response emits, before its wire shape.
pub enum Out {
    Start(u32),
    Delta {
        index: u32,
        content: String,
        reasoning: String,
        tool_calls: Option<Vec<ToolCallDelta>>,
        logprobs: Vec<TokenLogprob>,
    },
    Finish {
        index: u32,
        reason: String,
    },
}

struct Response {
    head: ResponseHead,
    choices: BTreeMap<u32, Choice>,
    reasoning: Vec<Arc<AtomicU32>>,
    cached: Vec<Arc<AtomicU32>>,
}

impl Response {
    fn new(head: ResponseHead, runs: &[Run]) -> Self {
        let choices = runs
            .iter()
            .map(|r| {
                let choice = Choice {
                    phase: Phase::Fresh,
                    gate: StopGate::new(head.stops.clone()),
                    split: head
                        .thinking
                        .as_ref()
                        .map(|d| ReasoningSplit::new(&d.open, &d.close)),
                    json: matches!(head.structured, Structured::Json | Structured::ToolCall)
                        .then(JsonEnd::default),
                    call: (head.structured == Structured::ToolCall).then(String::new),
                    cancel: r.cancel.clone(),
                    generated: r.generated.clone(),
                    pieces: 0,
                    cut: false,
                    answered: false,
                };
                (r.index, choice)
            })
            .collect();
        let reasoning = runs.iter().filter_map(|r| r.reasoning.clone()).collect();
        let cached = runs.iter().filter_map(|r| r.cached.clone()).collect();
        Self {
            head,
            choices,
            reasoning,
            cached,
        }
    }

    /// Takes one piece of choice `index`; returns what to send.
    fn piece(&mut self, index: u32, p: StepOutput) -> Vec<Out> {
        let structured = self.head.structured;
        let Some(c) = self.choices.get_mut(&index) else {
            return vec![];
        };
        let mut out = Vec::new();
        match c.phase {
            Phase::Done => return out,
            Phase::Fresh => {
                c.phase = Phase::Open;
                out.push(Out::Start(index));
            }
            Phase::Open => {}
        }
        c.pieces += 1;
        let finishing = p.finish.is_some();
        let (mut text, reasoning, lp) =
            c.split_reasoning(p.text, p.reasoning, p.logprob, finishing);
        let mut ended = c.end_json(&mut text, finishing, structured);
        let tool_calls = c.hold_call(&mut text, &mut ended, p.tool_calls, finishing, structured);
        c.answered |= !text.trim().is_empty();
        let released = c.gate.push(&text, lp);
        if !released.text.is_empty()
            || !released.logprobs.is_empty()
            || !reasoning.is_empty()
            || tool_calls.is_some()
        {
            out.push(Out::Delta {
                index,
                content: released.text,
                reasoning,
                tool_calls,
                logprobs: released.logprobs,
            });
        }
        let reason = if released.stopped {
            c.cut = true;
            Some("stop".to_string())
        } else {
            ended.map(String::from).or(p.finish)
        };
        if let Some(reason) = reason {
            c.finish(index, reason, released.stopped, &mut out);
        }
        out
    }

    fn all_done(&self) -> bool {
        self.choices.values().all(|c| c.phase == Phase::Done)
    }

    fn usage(&self) -> Usage {
        let generated = self
            .choices
            .values()
            .map(|c| {
                let n = c.generated.load(Ordering::Relaxed);
                if c.cut {
                    n.min(c.pieces)
                } else {
                    n
                }
            })
            .sum();
        let sum = |c: &[Arc<AtomicU32>]| c.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        let mut usage = Usage::new(self.head.prompt_tokens, generated);
        if !self.cached.is_empty() {
            usage = usage.with_cached(sum(&self.cached));
        }
        if self.head.thinking.is_some() {
            usage.with_reasoning(sum(&self.reasoning))
        } else {
            usage
        }
    }
}

fn looks_like_call(text: &str) -> bool {
    let t = text.trim_start();
    t.starts_with('{') || t.starts_with("<tool_call>")
}

/// `{"name": .., "arguments": {..}}`, bare or in `<tool_call>` tags.
fn parse_call(text: &str) -> Option<ToolCallDelta> {
    let t = text.trim();
    let t = t.strip_prefix("<tool_call>").unwrap_or(t);
    let t = t.strip_suffix("</tool_call>").unwrap_or(t).trim();
    let v: Value = serde_json::from_str(t).ok()?;
    let name = v.get("name")?.as_str()?.to_string();
    let args = v.get("arguments").or_else(|| v.get("parameters"))?;
    let arguments = match args {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Some(ToolCallDelta {
        index: 0,
        id: Some(format!("call_{}", uuid::Uuid::new_v4().simple())),
        kind: Some(ToolKind::Function),
        function: Some(FunctionCallDelta {
            name: Some(name),
            arguments: Some(arguments),
        }),
    })
}

/// Merges the runs' events into the response's outputs, then its usage;
/// an error ends the stream.
fn drive(
    head: ResponseHead,
    runs: Vec<Run>,
) -> impl futures::Stream<Item = Result<Emit, ApiError>> {
    let mut response = Response::new(head, &runs);
    let mut events = select_all(runs.into_iter().map(|r| {
        let index = r.index;
        UnboundedReceiverStream::new(r.events).map(move |e| (index, e))
    }));
    async_stream::stream! {
        while let Some((index, event)) = events.next().await {
            match event {
                Event::StepOutput(p) => {
                    for o in response.piece(index, p) {
                        yield Ok(Emit::Out(o));
                    }
                    if response.all_done() {
                        break;
                    }
                }
                Event::Error(e) => {
                    yield Err(e);
                    return;
                }
            }
        }
        if !response.all_done() {
            yield Err(ApiError::internal("The engine stopped before finishing the completion."));
            return;
        }
        yield Ok(Emit::Usage(response.usage()));
    }
}

enum Emit {
    Out(Out),
    Usage(Usage),
}

pub fn chat_stream(head: ResponseHead, runs: Vec<Run>) -> ChatStream {
    let thinking = head.thinking.is_some();
    let (id, created, model) = (head.id.clone(), head.created, head.model.clone());
    let chunk = move |choices: Vec<ChunkChoice>, usage: Option<Usage>| ChatCompletionChunk {
        id: id.clone(),
        object: "chat.completion.chunk".into(),
        created,
        model: model.clone(),
        system_fingerprint: None,
        choices,
        usage,
        ferrite: None,
        comment: None,
    };
    let one = |index, delta, logprobs: Vec<TokenLogprob>, finish_reason| {
        vec![ChunkChoice {
            index,
            delta,
            logprobs: (!logprobs.is_empty()).then_some(Logprobs {
                content: Some(logprobs),
            }),
            finish_reason,
        }]
    };
    Box::pin(drive(head, runs).map(move |item| {
        item.map(|emit| match emit {
            Emit::Usage(u) => chunk(vec![], Some(u)),
            // A thinking block shows even when empty (`thinking.max_tokens: 0`).
            Emit::Out(Out::Start(index)) => {
                let role = Delta {
                    role: Some("assistant".into()),
                    content: Some(String::new()),
                    reasoning_content: thinking.then(String::new),
                    ..Delta::default()
                };
                chunk(one(index, role, vec![], None), None)
            }
            Emit::Out(Out::Delta {
                index,
                content,
                reasoning,
                tool_calls,
                logprobs,
            }) => {
                let delta = Delta {
                    content: (!content.is_empty()).then_some(content),
                    reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
                    tool_calls,
                    ..Delta::default()
                };
                chunk(one(index, delta, logprobs, None), None)
            }
            Emit::Out(Out::Finish { index, reason }) => {
                chunk(one(index, Delta::default(), vec![], Some(reason)), None)
            }
        })
    }))
}

/// A token's entry in the legacy `/v1/completions` layout; its offset is
/// set when emitted.
fn legacy(t: TokenLogprob) -> CompletionLogprobs {
    CompletionLogprobs {
        tokens: vec![t.token],
        token_logprobs: vec![t.logprob],
        top_logprobs: vec![t
            .top_logprobs
            .into_iter()
            .map(|a| (a.token, a.logprob))
            .collect()],
        text_offset: vec![0],
    }
}

pub fn completion_stream(head: ResponseHead, runs: Vec<Run>) -> CompletionStream {
    let echoes: Vec<(u32, String)> = runs
        .iter()
        .filter_map(|r| r.echo.clone().map(|e| (r.index, e)))
        .collect();
    let (id, created, model) = (head.id.clone(), head.created, head.model.clone());
    let chunk = move |index: u32,
                      text: String,
                      logprobs: Option<CompletionLogprobs>,
                      finish_reason: Option<String>,
                      usage: Option<Usage>| Completion {
        id: id.clone(),
        object: "text_completion".into(),
        created,
        model: model.clone(),
        choices: if usage.is_some() {
            vec![]
        } else {
            vec![CompletionChoice {
                index,
                text,
                logprobs,
                finish_reason,
            }]
        },
        usage,
        system_fingerprint: None,
    };
    let mut events = Box::pin(drive(head, runs));
    Box::pin(async_stream::stream! {
        // Bytes of text each choice has produced, for absolute `text_offset`s.
        let mut cursor: BTreeMap<u32, u32> = BTreeMap::new();
        for (index, text) in echoes {
            cursor.insert(index, text.len() as u32);
            yield Ok(chunk(index, text, None, None, None));
        }
        while let Some(item) = events.next().await {
            match item {
                Err(e) => yield Err(e),
                Ok(Emit::Usage(u)) => yield Ok(chunk(0, String::new(), None, None, Some(u))),
                Ok(Emit::Out(Out::Start(_))) => {}
                Ok(Emit::Out(Out::Delta { index, content, logprobs, .. })) => {
                    let at = cursor.entry(index).or_insert(0);
                    let logprobs = (!logprobs.is_empty()).then(|| {
                        logprobs.into_iter().fold(CompletionLogprobs::default(), |mut acc, t| {
                            let mut lp = legacy(t);
                            lp.text_offset = vec![*at];
                            *at += lp.tokens.iter().map(|t| t.len() as u32).sum::<u32>();
                            acc.extend(lp);
                            acc
                        })
                    });
                    yield Ok(chunk(index, content, logprobs, None, None));
                }
                Ok(Emit::Out(Out::Finish { index, reason })) => {
                    yield Ok(chunk(index, String::new(), None, Some(reason), None));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc::unbounded_channel;

    fn run(pieces: Vec<StepOutput>) -> Run {
        let (tx, events) = unbounded_channel();
        let generated = Arc::new(AtomicU32::new(pieces.len() as u32 + 3));
        for p in pieces {
            let _ = tx.send(Event::StepOutput(p));
        }
        Run {
            index: 0,
            events,
            generated,
            echo: None,
            cancel: CancellationToken::new(),
            reasoning: None,
            cached: None,
        }
    }

    fn head(structured: Structured) -> ResponseHead {
        ResponseHead {
            id: "x".into(),
            created: 0,
            model: "m".into(),
            prompt_tokens: 1,
            stops: vec![],
            thinking: None,
            structured,
        }
    }

    fn text(t: &str) -> StepOutput {
        StepOutput {
            text: t.into(),
            ..StepOutput::default()
        }
    }

    #[tokio::test]
    async fn json_output_ends_with_its_value() {
        let r = run(vec![text("{\"a\""), text(": 1}"), text("\n\n")]);
        let chunks: Vec<_> = chat_stream(head(Structured::Json), vec![r])
            .collect::<Vec<_>>()
            .await;
        let chunks: Vec<ChatCompletionChunk> = chunks.into_iter().map(Result::unwrap).collect();
        let finish = chunks
            .iter()
            .find_map(|c| c.choices.first()?.finish_reason.clone());
        assert_eq!(finish.as_deref(), Some("stop"));
        let usage = chunks.last().unwrap().usage.unwrap();
        // Two pieces made the value, whatever the runtime sampled after it.
        assert_eq!(usage.completion_tokens, 2);
    }

    #[tokio::test]
    async fn a_forced_call_becomes_a_tool_call() {
        let r = run(vec![
            text("{\"name\": \"f\", "),
            text("\"arguments\": {\"x\": 1}}"),
        ]);
        let chunks: Vec<ChatCompletionChunk> = chat_stream(head(Structured::ToolCall), vec![r])
            .map(Result::unwrap)
            .collect()
            .await;
        let calls: Vec<_> = chunks
            .iter()
            .filter_map(|c| c.choices.first()?.delta.tool_calls.clone())
            .flatten()
            .collect();
        assert_eq!(calls.len(), 1);
        let f = calls[0].function.clone().unwrap();
        assert_eq!(f.name.as_deref(), Some("f"));
        assert_eq!(f.arguments.as_deref(), Some("{\"x\":1}"));
        assert!(chunks.iter().all(|c| c.choices.first().is_none_or(|c| c
            .delta
            .content
            .as_deref()
            .unwrap_or("")
            .is_empty())));
    }
}
