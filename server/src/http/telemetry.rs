//! Per-request figures taken from the chunk stream as it passes to the
//! client: time to first token, inter-token latency, end-to-end latency,
//! token counts and decode speed as Prometheus metrics, and the token counts
//! and outcome on the request's tracing span.

use std::time::Instant;

use ferrite_openapi::chat::ChatCompletionChunk;
use ferrite_openapi::common::Usage;
use ferrite_openapi::completions::Completion;
use ferrite_openapi::ApiResult;
use futures::stream::BoxStream;
use futures::StreamExt;
use tracing::Span;

/// What a streamed chunk tells about progress.
pub trait Metered {
    /// Whether it carries generated text.
    fn has_text(&self) -> bool;
    fn usage(&self) -> Option<Usage>;
    /// The first choice's text in this chunk.
    fn text(&self) -> &str;
}

impl Metered for ChatCompletionChunk {
    fn has_text(&self) -> bool {
        self.choices.iter().any(|c| {
            c.delta.content.as_ref().is_some_and(|t| !t.is_empty())
                || c.delta.reasoning_content.is_some()
                || c.delta.tool_calls.is_some()
        })
    }

    fn text(&self) -> &str {
        let first = self.choices.iter().find(|c| c.index == 0);
        first.and_then(|c| c.delta.content.as_deref()).unwrap_or("")
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

impl Metered for Completion {
    fn has_text(&self) -> bool {
        self.choices.iter().any(|c| !c.text.is_empty())
    }

    fn text(&self) -> &str {
        let first = self.choices.iter().find(|c| c.index == 0);
        first.map_or("", |c| c.text.as_str())
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

struct Meter {
    endpoint: &'static str,
    started: Instant,
    first: Option<Instant>,
    last: Option<Instant>,
    outcome: Option<&'static str>,
    usage: Option<Usage>,
    /// The answer, kept only when `log.content` is on.
    answer: Option<String>,
    span: Span,
}

impl Meter {
    fn token(&mut self) {
        let now = Instant::now();
        match self.last {
            None => metrics::histogram!("ferrite:time_to_first_token_seconds", "endpoint" => self.endpoint)
                .record(now.duration_since(self.started).as_secs_f64()),
            Some(last) => {
                metrics::histogram!("ferrite:inter_token_latency_seconds", "endpoint" => self.endpoint)
                    .record(now.duration_since(last).as_secs_f64())
            }
        }
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    fn done(&mut self, usage: Usage) {
        let e = self.endpoint;
        metrics::counter!("ferrite:prompt_tokens_total", "endpoint" => e)
            .increment(u64::from(usage.prompt_tokens));
        metrics::counter!("ferrite:generation_tokens_total", "endpoint" => e)
            .increment(u64::from(usage.completion_tokens));
        metrics::histogram!("ferrite:e2e_request_latency_seconds", "endpoint" => e)
            .record(self.started.elapsed().as_secs_f64());
        if let (Some(first), Some(last)) = (self.first, self.last) {
            let secs = last.duration_since(first).as_secs_f64();
            if usage.completion_tokens > 1 && secs > 0.0 {
                let speed = f64::from(usage.completion_tokens - 1) / secs;
                metrics::histogram!("ferrite:tokens_per_second", "endpoint" => e).record(speed);
            }
        }
        self.usage = Some(usage);
        self.outcome = Some("ok");
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        let outcome = self.outcome.unwrap_or("cancelled");
        if outcome == "cancelled" {
            metrics::counter!("ferrite:requests_cancelled_total", "endpoint" => self.endpoint)
                .increment(1);
        }
        metrics::counter!("ferrite:requests_total", "endpoint" => self.endpoint, "outcome" => outcome)
            .increment(1);
        let usage = self.usage.unwrap_or_default();
        tracing::info!(
            parent: &self.span,
            outcome,
            prompt_tokens = usage.prompt_tokens,
            completion_tokens = usage.completion_tokens,
            secs = self.started.elapsed().as_secs_f64(),
            answer = self.answer.as_deref(),
            "generation finished"
        );
    }
}

/// Passes `stream` through unchanged, measuring it. A stream dropped before
/// its usage chunk counts as cancelled.
/// With `log_content`, the answer is logged too.
pub fn meter<T: Metered + Send + 'static>(
    endpoint: &'static str,
    started: Instant,
    log_content: bool,
    stream: BoxStream<'static, ApiResult<T>>,
) -> BoxStream<'static, ApiResult<T>> {
    let mut meter = Meter {
        endpoint,
        started,
        first: None,
        last: None,
        outcome: None,
        usage: None,
        answer: log_content.then(String::new),
        span: Span::current(),
    };
    stream
        .map(move |item| {
            match &item {
                Ok(chunk) => {
                    if chunk.has_text() {
                        meter.token();
                    }
                    if let Some(answer) = &mut meter.answer {
                        answer.push_str(chunk.text());
                    }
                    if let Some(usage) = chunk.usage() {
                        meter.done(usage);
                    }
                }
                Err(_) => meter.outcome = Some("error"),
            }
            item
        })
        .boxed()
}

/// Embeddings have no stream to meter: the request's outcome, its inputs
/// and tokens (when it succeeded), and its time.
pub fn embedded(started: Instant, done: Option<(usize, usize)>) {
    let e = "embeddings";
    let outcome = if done.is_some() { "ok" } else { "error" };
    metrics::counter!("ferrite:requests_total", "endpoint" => e, "outcome" => outcome).increment(1);
    if let Some((inputs, tokens)) = done {
        metrics::counter!("ferrite:prompt_tokens_total", "endpoint" => e).increment(tokens as u64);
        metrics::counter!("ferrite:embedded_inputs_total").increment(inputs as u64);
        metrics::histogram!("ferrite:e2e_request_latency_seconds", "endpoint" => e)
            .record(started.elapsed().as_secs_f64());
    }
}
