//! Reading server-sent events back from bytes: the CLI, the benchmark and
//! LM Studio's v0 routes (which read the /v1 stream) share it.

use futures::stream::{Stream, StreamExt};

/// One event: its `event:` name, if any, and its `data:` lines joined.
pub struct Event {
    pub name: Option<String>,
    pub data: String,
}

/// The events of an SSE byte stream; comments and keep-alives are skipped.
/// A transport error ends the stream with that error.
pub fn events<S, B, E>(bytes: S) -> impl Stream<Item = Result<Event, E>> + Send
where
    S: Stream<Item = Result<B, E>> + Send,
    B: AsRef<[u8]> + Send,
    E: Send,
{
    async_stream::try_stream! {
        let mut bytes = std::pin::pin!(bytes);
        let mut pending: Vec<u8> = Vec::new();
        while let Some(chunk) = bytes.next().await {
            pending.extend_from_slice(chunk?.as_ref());
            while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
                let raw: Vec<u8> = pending.drain(..end + 2).collect();
                if let Some(event) = parse(&String::from_utf8_lossy(&raw)) {
                    yield event;
                }
            }
        }
    }
}

fn parse(raw: &str) -> Option<Event> {
    let mut name = None;
    let mut data: Vec<&str> = Vec::new();
    for line in raw.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            name = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    (!data.is_empty()).then(|| Event {
        name,
        data: data.join("\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn splits_events_across_chunks_and_skips_comments() {
        let chunks = [
            ": ping\n\nevent: model_load.progress\nda",
            "ta: {\"p\":0.5}\n\ndata: [DONE]\n\n",
        ];
        let stream = futures::stream::iter(chunks.map(Ok::<_, ()>));
        let got: Vec<Event> = events(stream).map(Result::unwrap).collect().await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].name.as_deref(), Some("model_load.progress"));
        assert_eq!(got[0].data, "{\"p\":0.5}");
        assert_eq!(
            (got[1].name.as_deref(), got[1].data.as_str()),
            (None, "[DONE]")
        );
    }
}
