//! From a mistral.rs response channel to a sequence's [`Event`]s.
//!
//! Every sequence gets its own forwarding task that drains the engine's
//! channel into an unbounded one, so a slow client never blocks the engine's
//! step loop, and that drops the engine channel as soon as the client goes
//! away, which makes mistral.rs cancel the sequence at its next step.

use ferrite_openapi::chat::{FunctionCallDelta, ToolCallDelta, ToolKind};
use ferrite_openapi::ApiError;
use mistralrs::core::{ChunkChoice, CompletionChunkChoice, Response, ToolCallResponse};
use tokio::sync::mpsc::{unbounded_channel, Receiver, UnboundedReceiver};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::logprobs::{token_text, LogprobReport};
use crate::stream::{Event, StepOutput};

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
    let param = if lower.contains("empty prompt") {
        "prompt"
    } else if lower.contains("grammar") || lower.contains("schema") {
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

/// Turns engine chunks into pieces, with ferrite's exact logprobs.
struct Convert {
    report: Option<LogprobReport>,
    first: bool,
}

impl Convert {
    fn chat(&mut self, ch: ChunkChoice) -> StepOutput {
        StepOutput {
            tool_calls: ch
                .delta
                .tool_calls
                .as_ref()
                .map(|calls| calls.iter().map(tool_delta).collect()),
            text: ch.delta.content.unwrap_or_default(),
            reasoning: ch.delta.reasoning_content.unwrap_or_default(),
            logprob: ch
                .logprobs
                .as_ref()
                .and_then(|lp| self.report.as_ref().map(|r| r.token(lp))),
            finish: ch.finish_reason,
        }
    }

    fn text(&mut self, ch: CompletionChunkChoice) -> StepOutput {
        let mut text = ch.text;
        if std::mem::take(&mut self.first) {
            // mistral.rs trims the first token's leading space, which
            // matters in a text completion ("is" + " Paris").
            if let Some(lp) = &ch.logprobs {
                let raw = token_text(lp);
                let lead = &raw[..raw.len() - raw.trim_start().len()];
                if !text.starts_with(lead) {
                    text.insert_str(0, lead);
                }
            }
        }
        StepOutput {
            text,
            logprob: ch
                .logprobs
                .as_ref()
                .and_then(|lp| self.report.as_ref().map(|r| r.token(lp))),
            finish: ch.finish_reason,
            ..StepOutput::default()
        }
    }
}

/// Spawns the task that relays one sequence's responses. It holds the
/// sequence's engine `slot` until the sequence ends or is abandoned.
pub fn forward(
    mut rx: Receiver<Response>,
    request_id: String,
    cancel: CancellationToken,
    report: Option<LogprobReport>,
    slot: impl Send + 'static,
) -> UnboundedReceiver<Event> {
    let (tx, out) = unbounded_channel();
    // Keep the caller's span (and so its request id) on this task's log lines.
    let span = tracing::Span::current();
    let mut convert = Convert {
        report,
        first: true,
    };
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
            let pieces: Vec<StepOutput> = match resp {
                Response::Chunk(c) => c.choices.into_iter().map(|ch| convert.chat(ch)).collect(),
                Response::CompletionChunk(c) => {
                    c.choices.into_iter().map(|ch| convert.text(ch)).collect()
                }
                other => match engine_error(other) {
                    Some(e) => {
                        finished = true;
                        let _ = tx.send(Event::Error(e));
                        continue;
                    }
                    None => {
                        warn!(request_id = %request_id, "unexpected engine response ignored");
                        continue;
                    }
                },
            };
            for p in pieces {
                finished |= p.finish.is_some();
                if tx.send(Event::StepOutput(p)).is_err() {
                    return;
                }
            }
        }
    };
    tokio::spawn(tracing::Instrument::instrument(task, span));
    out
}
