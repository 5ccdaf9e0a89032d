//! One SDK socket: authenticate, then answer RPC calls and run channels,
//! each in its own task, until the client goes. A channel's task stops at
//! the client's `cancel` or when the socket closes (a prediction then
//! stops generating at the engine's next step). Calls and channels in
//! flight are bounded per socket (more are refused with the protocol's
//! error), and what waits for the client is bounded in bytes (`outbox.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use axum::http::HeaderMap;
use ferrite_middleware::auth::Identity;
use ferrite_openapi::lmstudio_sdk::{AuthPacket, AuthResult, ClientFrame, SdkError, ServerFrame};
use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::api::lmstudio_sdk::outbox::Outbox;
use crate::api::lmstudio_sdk::{error, models, predict, repository};
use crate::state::AppState;

/// How long a client has to send its auth packet.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

/// What every call on one socket shares.
pub struct Session {
    pub state: AppState,
    pub namespace: String,
    pub caller: Identity,
    /// The upgrade request's headers (`x-ferrite-conversation`, ...), read
    /// as the chat route reads them.
    pub headers: HeaderMap,
    out: Outbox,
    channels: Mutex<HashMap<i64, CancellationToken>>,
    /// Calls and channels running now, and the bytes they came in.
    in_flight: Arc<Semaphore>,
    in_flight_bytes: Arc<Semaphore>,
    closed: CancellationToken,
}

/// One open channel: what its endpoint sends back.
pub struct Channel {
    id: i64,
    out: Outbox,
    pub cancelled: CancellationToken,
}

impl Channel {
    /// Sends `message` once the client's queue has room (a client that
    /// reads slowly slows its channel down).
    pub async fn send(&self, message: Value) {
        let frame = ServerFrame::ChannelSend {
            channel_id: self.id,
            message,
        };
        self.out.send(&frame).await;
    }
}

/// Messages larger than this are parsed off the async workers.
const PARSE_IN_PLACE: usize = 256 * 1024;

pub async fn run(
    ws: WebSocket,
    state: AppState,
    namespace: String,
    headers: HeaderMap,
    _connection: OwnedSemaphorePermit,
) {
    let (mut sink, mut stream) = ws.split();
    let caller = match authenticate(&state, &headers, &mut stream).await {
        Ok(caller) => caller,
        Err(why) => {
            tracing::info!(%namespace, %why, "SDK client refused");
            let refusal = AuthResult {
                success: false,
                error: Some(SdkError {
                    title: why,
                    ..Default::default()
                }),
            };
            if let Ok(text) = serde_json::to_string(&refusal) {
                let _ = sink.send(Message::Text(text.into())).await;
            }
            let _ = sink.close().await;
            return;
        }
    };
    let welcome = serde_json::to_string(&AuthResult {
        success: true,
        error: None,
    })
    .unwrap_or_default();
    if sink.send(Message::Text(welcome.into())).await.is_err() {
        return;
    }
    tracing::debug!(%namespace, tenant = %caller.tenant, "SDK client connected");
    let http = &state.config.http;
    let closed = CancellationToken::new();
    let (out, writer) = Outbox::start(
        sink,
        http.socket_bytes,
        Duration::from_secs(http.slow_client_secs.max(1)),
        closed.clone(),
    );
    let session = Arc::new(Session {
        in_flight: Arc::new(Semaphore::new(http.socket_in_flight.max(1))),
        in_flight_bytes: Arc::new(Semaphore::new(bytes_budget(http.socket_bytes))),
        state,
        namespace,
        caller,
        headers,
        out,
        channels: Mutex::new(HashMap::new()),
        closed,
    });
    loop {
        let message = tokio::select! {
            message = stream.next() => message,
            // Closed by the writer: the client reads nothing.
            () = session.closed.cancelled() => break,
        };
        match message {
            Some(Ok(Message::Text(text))) => {
                let frame = read_frame(text.as_str()).await;
                session.clone().receive(frame, text.len());
            }
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            // Pings are answered by the socket itself.
            Some(Ok(_)) => {}
        }
    }
    // The client left: every call and channel of this socket stops.
    session.closed.cancel();
    drop(session);
    let _ = writer.await;
}

/// One client frame, parsed off the async workers when it is large.
async fn read_frame(text: &str) -> Result<ClientFrame, String> {
    let parse = |text: &str| serde_json::from_str::<ClientFrame>(text).map_err(|e| e.to_string());
    if text.len() <= PARSE_IN_PLACE {
        return parse(text);
    }
    let text = text.to_owned();
    tokio::task::spawn_blocking(move || parse(&text))
        .await
        .unwrap_or_else(|e| Err(e.to_string()))
}

/// The caller the auth packet (or the upgrade request's `Authorization`)
/// names. With auth off every client is the anonymous tenant, as LM
/// Studio accepts guests.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    stream: &mut futures::stream::SplitStream<WebSocket>,
) -> Result<Identity, String> {
    let first = tokio::time::timeout(AUTH_TIMEOUT, stream.next())
        .await
        .map_err(|_| "no auth packet within 10 seconds".to_string())?;
    let packet: AuthPacket = match first {
        Some(Ok(Message::Text(text))) => serde_json::from_str(text.as_str())
            .map_err(|e| format!("the first message must be the auth packet: {e}"))?,
        _ => return Err("the first message must be the auth packet".into()),
    };
    if packet.auth_version != 1 {
        return Err(format!(
            "auth version {} is not supported (1 is)",
            packet.auth_version
        ));
    }
    let Some(auth) = state.auth.as_deref() else {
        return Ok(Identity::anonymous());
    };
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Some(Ok(identity)) = header.map(|h| auth.check(Some(h))) {
        return Ok(identity);
    }
    // An API key as the passkey; or LM Studio's token form
    // `sk-lm-<identifier>:<passkey>`, which the JS SDK splits in two.
    let joined = format!(
        "sk-lm-{}:{}",
        packet.client_identifier, packet.client_passkey
    );
    for key in [packet.client_passkey.as_str(), joined.as_str()] {
        if let Ok(identity) = auth.check(Some(&format!("Bearer {key}"))) {
            return Ok(identity);
        }
    }
    Err("Authentication failed: this server requires an API key. Pass it as the client passkey, or as LM Studio's apiToken / LM_API_TOKEN in the form sk-lm-<id>:<key>.".into())
}

/// A byte budget as semaphore permits (which count in `u32`).
fn bytes_budget(bytes: usize) -> usize {
    bytes.clamp(1, u32::MAX as usize)
}

/// What a client past the socket's bounds on calls and channels is told.
fn too_many(count: usize, bytes: usize) -> SdkError {
    SdkError {
        title: format!(
            "Too much in flight on this socket (at most {count} calls and channels, {bytes} bytes of them); wait for some to finish."
        ),
        ..Default::default()
    }
}

/// A running call's or channel's share of its socket's bounds.
struct Place {
    _count: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
}

impl Session {
    /// Replies from the socket's reader, which must not wait.
    fn send(&self, frame: ServerFrame) {
        self.out.send_now(&frame);
    }

    /// A place for one more call or channel of `size` bytes, if the
    /// socket has one (one larger than the whole budget runs alone).
    fn place(&self, size: usize) -> Option<Place> {
        let budget = bytes_budget(self.state.config.http.socket_bytes);
        let cost = u32::try_from(size.clamp(1, budget)).unwrap_or(u32::MAX);
        Some(Place {
            _count: self.in_flight.clone().try_acquire_owned().ok()?,
            _bytes: self
                .in_flight_bytes
                .clone()
                .try_acquire_many_owned(cost)
                .ok()?,
        })
    }

    fn refusal(&self) -> SdkError {
        let http = &self.state.config.http;
        too_many(http.socket_in_flight.max(1), http.socket_bytes)
    }

    fn receive(self: Arc<Self>, frame: Result<ClientFrame, String>, size: usize) {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => {
                self.send(ServerFrame::CommunicationWarning {
                    warning: format!("ferrite could not read a message: {e}"),
                });
                return;
            }
        };
        match frame {
            ClientFrame::RpcCall {
                endpoint,
                call_id,
                parameter,
            } => {
                let Some(place) = self.place(size) else {
                    let error = self.refusal();
                    return self.send(ServerFrame::RpcError { call_id, error });
                };
                tokio::spawn(async move {
                    let result = tokio::select! {
                        result = self.rpc(&endpoint, parameter) => result,
                        () = self.closed.cancelled() => return,
                    };
                    let frame = match result {
                        Ok(result) => ServerFrame::RpcResult { call_id, result },
                        Err(error) => ServerFrame::RpcError { call_id, error },
                    };
                    self.out.send(&frame).await;
                    drop(place);
                });
            }
            ClientFrame::ChannelCreate {
                endpoint,
                channel_id,
                creation_parameter,
            } => match self.place(size) {
                Some(place) => self.open(endpoint, channel_id, creation_parameter, place),
                None => {
                    let error = self.refusal();
                    self.send(ServerFrame::ChannelError { channel_id, error });
                }
            },
            ClientFrame::ChannelSend {
                channel_id,
                message,
            } => {
                // `cancel` (predict, load) and `stop` are the only messages
                // a client sends on the channels ferrite serves.
                if matches!(message["type"].as_str(), Some("cancel" | "stop")) {
                    if let Some(token) = self.channels.lock().get(&channel_id) {
                        token.cancel();
                    }
                }
            }
            ClientFrame::SignalSubscribe {
                subscribe_id,
                endpoint,
            } => self.send(ServerFrame::SignalError {
                subscribe_id,
                error: error::unsupported(&self.namespace, &endpoint),
            }),
            ClientFrame::WritableSignalSubscribe {
                subscribe_id,
                endpoint,
            } => self.send(ServerFrame::WritableSignalError {
                subscribe_id,
                error: error::unsupported(&self.namespace, &endpoint),
            }),
            ClientFrame::KeepAlive => self.send(ServerFrame::KeepAliveAck),
            ClientFrame::Ignored => {}
        }
    }

    fn open(self: Arc<Self>, endpoint: String, channel_id: i64, parameter: Value, place: Place) {
        let cancelled = self.closed.child_token();
        self.channels.lock().insert(channel_id, cancelled.clone());
        let channel = Channel {
            id: channel_id,
            out: self.out.clone(),
            cancelled,
        };
        tokio::spawn(async move {
            let result = tokio::select! {
                result = self.channel(&endpoint, parameter, &channel) => result,
                () = self.closed.cancelled() => return,
            };
            let frame = match result {
                Ok(()) => ServerFrame::ChannelClose { channel_id },
                Err(error) => ServerFrame::ChannelError { channel_id, error },
            };
            self.channels.lock().remove(&channel_id);
            self.out.send(&frame).await;
            drop(place);
        });
    }

    async fn rpc(
        &self,
        endpoint: &str,
        parameter: Value,
    ) -> Result<Option<Box<RawValue>>, SdkError> {
        let ns = self.namespace.as_str();
        let kind = models::kind_of(ns);
        let value = match (ns, endpoint, kind) {
            (_, "listLoaded", Some(kind)) => models::list_loaded(self, kind).await,
            (_, "getModelInfo", Some(kind)) => {
                models::info(self, kind, parse(endpoint, parameter)?).await?
            }
            (_, "getLoadConfig", Some(kind)) => {
                models::load_config(self, kind, parse(endpoint, parameter)?).await?
            }
            (_, "unloadModel", Some(_)) => {
                models::unload(self, parse(endpoint, parameter)?).await?
            }
            (_, "tokenize", Some(kind)) => {
                let tokens = models::tokenize(self, kind, parse(endpoint, parameter)?).await?;
                // Straight to text: as a `Value` each id would take 32 bytes.
                #[derive(serde::Serialize)]
                struct Tokens<'a> {
                    tokens: &'a [u32],
                }
                return raw(&Tokens { tokens: &tokens }).map(Some);
            }
            (_, "countTokens", Some(kind)) => {
                let tokens = models::tokenize(self, kind, parse(endpoint, parameter)?).await?;
                serde_json::json!({ "tokenCount": tokens.len() })
            }
            ("llm", "applyPromptTemplate", _) => {
                predict::apply_template(self, parse(endpoint, parameter)?).await?
            }
            ("embedding", "embedString", _) => {
                models::embed(self, parse(endpoint, parameter)?).await?
            }
            ("system", "listDownloadedModels", _) => models::downloaded(self).await,
            ("files", "uploadFileBase64", _) => self
                .state
                .sdk_files
                .upload(
                    &self.caller.tenant,
                    parse(endpoint, parameter)?,
                    self.state.config.limits.max_image_bytes,
                )
                .map_err(error::from_api)?,
            ("repository", "searchModels", _) => {
                repository::search(self, parse(endpoint, parameter)?).await?
            }
            ("repository", "getModelDownloadOptions", _) => {
                repository::options(self, parse(endpoint, parameter)?).await?
            }
            ("system", "version", _) => serde_json::json!({
                "version": super::LMSTUDIO_VERSION,
                "build": super::LMSTUDIO_BUILD,
            }),
            ("system", "info", _) => serde_json::json!({
                "pid": std::process::id(),
                "isDaemon": true,
                "version": super::LMSTUDIO_VERSION,
            }),
            // A notification for LM Studio's window: nothing to show here.
            ("system", "notify", _) => return Ok(None),
            _ => return Err(error::unsupported(ns, endpoint)),
        };
        // Nothing (`void`, or no model) is an absent result, never `null`.
        match value {
            Value::Null => Ok(None),
            value => raw(&value).map(Some),
        }
    }

    async fn channel(
        &self,
        endpoint: &str,
        parameter: Value,
        channel: &Channel,
    ) -> Result<(), SdkError> {
        let ns = self.namespace.as_str();
        match (ns, endpoint, models::kind_of(ns)) {
            (_, "loadModel", Some(kind)) => {
                models::load(self, kind, parse(endpoint, parameter)?, channel, false).await
            }
            (_, "getOrLoad", Some(kind)) => {
                models::load(self, kind, parse(endpoint, parameter)?, channel, true).await
            }
            ("llm", "predict", _) => predict::run(self, parse(endpoint, parameter)?, channel).await,
            ("repository", "downloadModel", _) => {
                repository::download(self, parse(endpoint, parameter)?, channel).await
            }
            // LM Studio's liveness channel: open until the client goes.
            ("system", "alive", _) => {
                channel.cancelled.cancelled().await;
                Ok(())
            }
            _ => Err(error::unsupported(ns, endpoint)),
        }
    }
}

/// An answer serialized once (a token list stays a list of numbers, not
/// a tree of values).
fn raw(value: &impl serde::Serialize) -> Result<Box<RawValue>, SdkError> {
    serde_json::value::to_raw_value(value).map_err(|e| SdkError {
        title: format!("ferrite could not write its answer: {e}"),
        ..Default::default()
    })
}

fn parse<T: serde::de::DeserializeOwned>(endpoint: &str, parameter: Value) -> Result<T, SdkError> {
    serde_json::from_value(parameter).map_err(|e| error::bad_parameter(endpoint, e))
}
