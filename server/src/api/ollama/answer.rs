//! The chat road's chunks in Ollama's terms: pieces of text, thinking and
//! tool calls as they come, then the closing figures (`done_reason`, token
//! counts, nanosecond durations); streamed as NDJSON or folded whole.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::response::Response;
use ferrite_openapi::chat::ChatCompletionChunk;
use ferrite_openapi::common::{Logprobs, Usage};
use ferrite_openapi::ollama::{Done, ErrorBody, Logprob, TokenLogprob, ToolCall, ToolCallFunction};
use ferrite_openapi::ApiResult;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use serde::Serialize;
use serde_json::Value;

/// When the request came, when its model was ready, when its first token
/// left the pipeline.
#[derive(Clone, Copy)]
pub struct Clock {
    pub started: Instant,
    pub loaded: Instant,
}

fn nanos(from: Instant, to: Instant) -> u64 {
    u64::try_from(to.saturating_duration_since(from).as_nanos()).unwrap_or(u64::MAX)
}

impl Clock {
    /// The figures of an answer with `usage`, ended `why`.
    pub fn done(&self, why: &str, usage: Option<Usage>, first: Option<Instant>) -> Done {
        let end = Instant::now();
        let first = first.unwrap_or(end);
        let usage = usage.unwrap_or_default();
        Done {
            done_reason: why.into(),
            total_duration: nanos(self.started, end),
            load_duration: nanos(self.started, self.loaded),
            prompt_eval_count: usage.prompt_tokens,
            prompt_eval_duration: nanos(self.loaded, first),
            eval_count: usage.completion_tokens,
            eval_duration: nanos(first, end),
        }
    }
}

/// One thing an answer says.
pub enum Piece {
    Text {
        content: String,
        thinking: Option<String>,
        logprobs: Option<Vec<Logprob>>,
    },
    Tools(Vec<ToolCall>),
    Done(Done),
}

/// Folds chunks into pieces; tool calls whole, once their chunk is done.
struct Fold {
    clock: Clock,
    first: Option<Instant>,
    tools: BTreeMap<u32, (String, String)>,
    finish: Option<String>,
    usage: Option<Usage>,
}

fn logprobs(l: &Logprobs) -> Vec<Logprob> {
    l.content
        .iter()
        .flatten()
        .map(|t| Logprob {
            token: t.token.clone(),
            logprob: f64::from(t.logprob),
            top_logprobs: t
                .top_logprobs
                .iter()
                .map(|top| TokenLogprob {
                    token: top.token.clone(),
                    logprob: f64::from(top.logprob),
                })
                .collect(),
        })
        .collect()
}

impl Fold {
    fn push(&mut self, chunk: &ChatCompletionChunk, out: &mut Vec<Piece>) {
        if chunk.comment.is_some() {
            return;
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage);
        }
        let Some(choice) = chunk.choices.first() else {
            return;
        };
        let delta = &choice.delta;
        let content = delta.content.clone().unwrap_or_default();
        let thinking = delta.reasoning_content.clone().filter(|t| !t.is_empty());
        if !content.is_empty() || thinking.is_some() {
            self.first.get_or_insert_with(Instant::now);
            out.push(Piece::Text {
                content,
                thinking,
                logprobs: choice.logprobs.as_ref().map(logprobs),
            });
        }
        for call in delta.tool_calls.iter().flatten() {
            self.first.get_or_insert_with(Instant::now);
            let (name, args) = self.tools.entry(call.index).or_default();
            if let Some(f) = &call.function {
                name.push_str(f.name.as_deref().unwrap_or_default());
                args.push_str(f.arguments.as_deref().unwrap_or_default());
            }
        }
        if let Some(why) = &choice.finish_reason {
            self.finish = Some(why.clone());
            self.flush_tools(out);
        }
    }

    fn flush_tools(&mut self, out: &mut Vec<Piece>) {
        if self.tools.is_empty() {
            return;
        }
        let calls = std::mem::take(&mut self.tools)
            .into_values()
            .map(|(name, args)| ToolCall {
                function: ToolCallFunction {
                    name,
                    // Ollama sends an object; text the model left
                    // unparsable goes as a string.
                    arguments: serde_json::from_str(&args).unwrap_or(Value::String(args)),
                },
            })
            .collect();
        out.push(Piece::Tools(calls));
    }

    fn end(&mut self, out: &mut Vec<Piece>) {
        self.flush_tools(out);
        // Ollama says `stop` for a tool call too.
        let why = match self.finish.as_deref() {
            Some("length") => "length",
            _ => "stop",
        };
        out.push(Piece::Done(self.clock.done(why, self.usage, self.first)));
    }
}

/// The pieces of a chat answer; an error ends the stream.
pub fn pieces(
    mut chunks: BoxStream<'static, ApiResult<ChatCompletionChunk>>,
    clock: Clock,
) -> BoxStream<'static, ApiResult<Piece>> {
    let mut fold = Fold {
        clock,
        first: None,
        tools: BTreeMap::new(),
        finish: None,
        usage: None,
    };
    async_stream::stream! {
        let mut out = Vec::new();
        while let Some(chunk) = chunks.next().await {
            match chunk {
                Ok(chunk) => fold.push(&chunk, &mut out),
                Err(e) => {
                    yield Err(e);
                    return;
                }
            }
            for piece in out.drain(..) {
                yield Ok(piece);
            }
        }
        fold.end(&mut out);
        for piece in out.drain(..) {
            yield Ok(piece);
        }
    }
    .boxed()
}

/// A whole answer, folded from its pieces.
#[derive(Default)]
pub struct Whole {
    pub content: String,
    pub thinking: Option<String>,
    pub tools: Option<Vec<ToolCall>>,
    pub logprobs: Option<Vec<Logprob>>,
    pub done: Done,
}

pub async fn whole(mut pieces: BoxStream<'static, ApiResult<Piece>>) -> ApiResult<Whole> {
    let mut whole = Whole::default();
    while let Some(piece) = pieces.next().await {
        match piece? {
            Piece::Text {
                content,
                thinking,
                logprobs,
            } => {
                whole.content.push_str(&content);
                if let Some(t) = thinking {
                    whole.thinking.get_or_insert_with(String::new).push_str(&t);
                }
                if let Some(l) = logprobs {
                    whole.logprobs.get_or_insert_with(Vec::new).extend(l);
                }
            }
            Piece::Tools(calls) => whole.tools.get_or_insert_with(Vec::new).extend(calls),
            Piece::Done(done) => whole.done = done,
        }
    }
    Ok(whole)
}

/// Objects as NDJSON, one per line; an error mid-stream is Ollama's error
/// object as the last line.
pub fn ndjson<T: Serialize + Send + 'static>(
    items: impl Stream<Item = ApiResult<T>> + Send + 'static,
) -> Response {
    let lines = items.map(|item| {
        let mut line = match item {
            Ok(value) => serde_json::to_vec(&value),
            Err(e) => {
                tracing::warn!(error = %e.message, "generation failed mid-stream");
                serde_json::to_vec(&ErrorBody { error: e.message })
            }
        }
        .unwrap_or_else(|e| format!(r#"{{"error":"{e}"}}"#).into_bytes());
        line.push(b'\n');
        Ok::<_, std::convert::Infallible>(line)
    });
    let mut response = Response::new(Body::from_stream(lines));
    response.headers_mut().insert(
        CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

/// RFC 3339 time now, as Ollama's `created_at`.
pub fn now() -> String {
    rfc3339(std::time::SystemTime::now())
}

pub fn rfc3339(t: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}
