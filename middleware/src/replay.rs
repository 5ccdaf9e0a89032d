//! One generation, read by many: chunks are recorded as they arrive and every
//! reader replays them from the start, then follows live. Used to coalesce
//! identical concurrent requests; readers may join at any time.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use ferrite_engine::ChatStream;
use ferrite_openapi::chat::ChatCompletionChunk;
use ferrite_openapi::{ApiError, ApiResult, ErrorCode};
use futures::StreamExt;
use tokio::sync::{watch, Notify};

#[derive(Default)]
struct Tape {
    chunks: Vec<ChatCompletionChunk>,
    /// `Some` once the generation has ended, with how.
    end: Option<ApiResult<()>>,
}

pub struct Recording {
    tape: Mutex<Tape>,
    /// Bumped on every change, to wake readers.
    progress: watch::Sender<()>,
    readers: AtomicUsize,
    /// Signalled when the last reader leaves.
    abandoned: Notify,
}

impl Recording {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            tape: Mutex::new(Tape::default()),
            progress: watch::channel(()).0,
            readers: AtomicUsize::new(0),
            abandoned: Notify::new(),
        })
    }

    pub fn readers(&self) -> usize {
        self.readers.load(Ordering::SeqCst)
    }

    /// The chunks of a generation that ended well, for the cache.
    pub fn finished(&self) -> Option<Vec<ChatCompletionChunk>> {
        let tape = self.tape.lock();
        matches!(tape.end, Some(Ok(()))).then(|| tape.chunks.clone())
    }

    fn push(&self, chunk: ChatCompletionChunk) {
        self.tape.lock().chunks.push(chunk);
        self.progress.send_replace(());
    }

    fn end(&self, result: ApiResult<()>) {
        self.tape.lock().end.get_or_insert(result);
        self.progress.send_replace(());
    }

    /// Runs `start` and pulls the stream it gives to its end into the
    /// recording, unless every reader leaves first: then the generation is
    /// dropped, which cancels it in the engine.
    pub async fn record(self: &Arc<Self>, start: impl Future<Output = ApiResult<ChatStream>>) {
        let mut start = std::pin::pin!(start);
        let mut source = loop {
            if self.readers() == 0 {
                return self.end(Err(cancelled()));
            }
            tokio::select! {
                started = &mut start => match started {
                    Ok(stream) => break stream,
                    Err(e) => return self.end(Err(e)),
                },
                () = self.abandoned.notified() => {}
            }
        };
        loop {
            if self.readers() == 0 {
                return self.end(Err(cancelled()));
            }
            tokio::select! {
                item = source.next() => match item {
                    Some(Ok(chunk)) => self.push(chunk),
                    Some(Err(e)) => return self.end(Err(e)),
                    None => return self.end(Ok(())),
                },
                () = self.abandoned.notified() => {}
            }
        }
    }

    /// Another reader, but only while someone still reads: once the count
    /// has dropped to zero the generation is being cancelled.
    pub fn join(self: &Arc<Self>) -> Option<ChatStream> {
        self.readers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n > 0).then_some(n + 1)
            })
            .ok()?;
        Some(Self::stream(ReaderGuard(self.clone())))
    }

    /// A new reader: every chunk from the first, then live ones.
    pub fn reader(self: &Arc<Self>) -> ChatStream {
        Self::stream(ReaderGuard::new(self.clone()))
    }

    fn stream(guard: ReaderGuard) -> ChatStream {
        let rx = guard.0.progress.subscribe();
        futures::stream::unfold((guard, rx, 0usize), |(guard, mut rx, next)| async move {
            loop {
                rx.borrow_and_update();
                let item = {
                    let tape = guard.0.tape.lock();
                    match (tape.chunks.get(next), &tape.end) {
                        (Some(chunk), _) => Some(Ok(chunk.clone())),
                        (None, Some(Ok(()))) => return None,
                        (None, Some(Err(e))) => Some(Err(e.clone())),
                        (None, None) => None,
                    }
                };
                match item {
                    // An error is the last item: `usize::MAX` marks it sent.
                    Some(Err(_)) if next == usize::MAX => return None,
                    Some(Err(e)) => return Some((Err(e), (guard, rx, usize::MAX))),
                    Some(Ok(chunk)) => return Some((Ok(chunk), (guard, rx, next + 1))),
                    None if rx.changed().await.is_err() => return None,
                    None => {}
                }
            }
        })
        .boxed()
    }
}

fn cancelled() -> ApiError {
    ApiError::new(499, "server_error", "Every client of this generation left.")
        .with_code(ErrorCode::Cancelled)
}

/// Counts a reader in while it lives.
struct ReaderGuard(Arc<Recording>);

impl ReaderGuard {
    fn new(rec: Arc<Recording>) -> Self {
        rec.readers.fetch_add(1, Ordering::SeqCst);
        Self(rec)
    }
}

impl Drop for ReaderGuard {
    fn drop(&mut self) {
        if self.0.readers.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.abandoned.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrite_engine::scripted::ScriptedEngine;
    use ferrite_engine::Engine;
    use ferrite_openapi::chat::ChatRequest;

    async fn source() -> ChatStream {
        ScriptedEngine::new("one two three")
            .chat(ChatRequest::default())
            .await
            .unwrap()
    }

    async fn drain(mut s: ChatStream) -> Vec<ChatCompletionChunk> {
        let mut out = vec![];
        while let Some(c) = s.next().await {
            out.push(c.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn early_and_late_readers_see_everything() {
        let rec = Recording::new();
        let early = rec.reader();
        let task = tokio::spawn({
            let rec = rec.clone();
            async move { rec.record(async { Ok(source().await) }).await }
        });
        let early = drain(early).await;
        task.await.unwrap();
        let late = drain(rec.reader()).await;
        assert_eq!(early.len(), 5);
        assert_eq!(early, late);
        assert_eq!(rec.finished(), Some(early));
    }

    #[tokio::test]
    async fn a_recording_without_readers_stops() {
        let rec = Recording::new();
        let pending: ChatStream = futures::stream::pending().boxed();
        let reader = rec.reader();
        let task = tokio::spawn({
            let rec = rec.clone();
            async move { rec.record(async { Ok(pending) }).await }
        });
        drop(reader);
        tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .expect("the recording noticed")
            .unwrap();
        assert_eq!(rec.finished(), None);
        assert!(rec.join().is_none(), "nobody joins a cancelled generation");
    }
}
