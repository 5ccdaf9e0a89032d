//! Responses from chunk streams: SSE as the OpenAI SDKs parse it, or one
//! JSON object folded from the same chunks.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use ferrite_openapi::ApiResult;
use futures::stream::{BoxStream, Stream, StreamExt};
use serde::Serialize;

/// Chunks that may stand for an SSE comment line (progress no SDK parses).
pub trait Comment {
    fn comment(&self) -> Option<&str>;
}

impl Comment for ferrite_openapi::chat::ChatCompletionChunk {
    fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }
}

impl Comment for ferrite_openapi::completions::Completion {
    fn comment(&self) -> Option<&str> {
        None
    }
}

fn data<T: Serialize>(value: &T) -> Event {
    match serde_json::to_string(value) {
        Ok(json) => Event::default().data(json),
        Err(e) => Event::default().data(format!(
            r#"{{"error":{{"message":"serialization failed: {e}","type":"server_error","param":null,"code":null}}}}"#
        )),
    }
}

/// `data: {chunk}` events, `data: {"error":...}` on failure, then `data: [DONE]`.
/// `keep` drops chunks the client did not ask for (the usage-only chunk).
pub fn sse<T>(
    stream: BoxStream<'static, ApiResult<T>>,
    keep: impl Fn(&T) -> bool + Send + 'static,
) -> Response
where
    T: Serialize + Comment + Send + 'static,
{
    let events = async_events(stream, keep);
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn async_events<T>(
    mut stream: BoxStream<'static, ApiResult<T>>,
    keep: impl Fn(&T) -> bool + Send + 'static,
) -> impl Stream<Item = Result<Event, Infallible>>
where
    T: Serialize + Comment + Send + 'static,
{
    async_stream::stream! {
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) if chunk.comment().is_some() => {
                    yield Ok(Event::default().comment(chunk.comment().unwrap_or_default()));
                }
                Ok(chunk) if keep(&chunk) => yield Ok(data(&chunk)),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e.message, "generation failed mid-stream");
                    yield Ok(data(&e.body()));
                    break;
                }
            }
        }
        yield Ok(Event::default().data("[DONE]"));
    }
}
