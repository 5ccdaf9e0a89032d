//! What one socket has yet to send its client, bounded in bytes: a client
//! that reads slowly slows the calls writing to it; one that reads nothing
//! for `stall` is disconnected. Whatever a socket's client does, the frames
//! waiting for it never hold more than the budget.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use ferrite_openapi::lmstudio_sdk::ServerFrame;
use futures::stream::SplitSink;
use futures::SinkExt;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// A serialized frame and its share of the byte budget.
type Queued = (String, OwnedSemaphorePermit);

#[derive(Clone)]
pub struct Outbox {
    frames: mpsc::UnboundedSender<Queued>,
    bytes: Arc<Semaphore>,
    budget: usize,
    /// Cancelled when the socket closes, for whatever reason.
    closed: CancellationToken,
}

impl Outbox {
    /// An outbox of `budget` bytes writing to `sink`; its writer stops,
    /// closing `closed`, when the client leaves or reads nothing for
    /// `stall`.
    pub fn start(
        mut sink: SplitSink<WebSocket, Message>,
        budget: usize,
        stall: Duration,
        closed: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let budget = budget.clamp(1, u32::MAX as usize);
        // Unbounded in count, bounded in bytes: every frame holds permits.
        let (frames, mut queue) = mpsc::unbounded_channel::<Queued>();
        let done = closed.clone();
        let writer = tokio::spawn(async move {
            loop {
                let (text, permit) = tokio::select! {
                    next = queue.recv() => match next {
                        Some(next) => next,
                        None => break,
                    },
                    () = done.cancelled() => break,
                };
                match tokio::time::timeout(stall, sink.send(Message::Text(text.into()))).await {
                    Ok(Ok(())) => drop(permit),
                    Ok(Err(_)) => break,
                    Err(_) => {
                        tracing::info!(
                            seconds = stall.as_secs(),
                            "SDK client read nothing while its answers waited; closing its socket"
                        );
                        break;
                    }
                }
            }
            done.cancel();
            // A client that reads nothing would hold the close handshake
            // too: it gets the same time, then the socket is dropped.
            let _ = tokio::time::timeout(stall, sink.close()).await;
        });
        let outbox = Self {
            frames,
            bytes: Arc::new(Semaphore::new(budget)),
            budget,
            closed,
        };
        (outbox, writer)
    }

    fn cost(&self, text: &str) -> u32 {
        // A frame larger than the whole budget goes out alone.
        u32::try_from(text.len().clamp(1, self.budget)).unwrap_or(u32::MAX)
    }

    /// Queues `frame` once the budget has room; false when the socket
    /// closed first.
    pub async fn send(&self, frame: &ServerFrame) -> bool {
        let Ok(text) = serde_json::to_string(frame) else {
            return false;
        };
        let cost = self.cost(&text);
        let permit = tokio::select! {
            permit = self.bytes.clone().acquire_many_owned(cost) => permit,
            () = self.closed.cancelled() => return false,
        };
        match permit {
            Ok(permit) => self.frames.send((text, permit)).is_ok(),
            Err(_) => false,
        }
    }

    /// Queues a small frame now, for the socket's reader, which must not
    /// wait: a client whose queue is full while it keeps sending is not
    /// reading, and its socket is closed.
    pub fn send_now(&self, frame: &ServerFrame) -> bool {
        let Ok(text) = serde_json::to_string(frame) else {
            return false;
        };
        let cost = self.cost(&text);
        match self.bytes.clone().try_acquire_many_owned(cost) {
            Ok(permit) => self.frames.send((text, permit)).is_ok(),
            Err(_) => {
                tracing::info!(
                    "SDK client's queue is full while it keeps sending; closing its socket"
                );
                self.closed.cancel();
                false
            }
        }
    }
}
