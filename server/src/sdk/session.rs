//! One SDK socket: authenticate, then answer RPC calls and run channels,
//! each in its own task, until the client goes. A channel's task stops at
//! the client's `cancel` or when the socket closes (a prediction then
//! stops generating at the engine's next step).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use axum::http::HeaderMap;
use ferrite_middleware::auth::Identity;
use ferrite_openapi::lmstudio_sdk::{AuthPacket, AuthResult, ClientFrame, SdkError, ServerFrame};
use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::sdk::{error, models, predict};
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
    out: mpsc::UnboundedSender<ServerFrame>,
    channels: Mutex<HashMap<i64, CancellationToken>>,
    closed: CancellationToken,
}

/// One open channel: what its endpoint sends back.
pub struct Channel {
    id: i64,
    out: mpsc::UnboundedSender<ServerFrame>,
    pub cancelled: CancellationToken,
}

impl Channel {
    pub fn send(&self, message: Value) {
        let _ = self.out.send(ServerFrame::ChannelSend {
            channel_id: self.id,
            message,
        });
    }
}

pub async fn run(ws: WebSocket, state: AppState, namespace: String, headers: HeaderMap) {
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
    let (out, mut outbox) = mpsc::unbounded_channel::<ServerFrame>();
    let writer = tokio::spawn(async move {
        while let Some(frame) = outbox.recv().await {
            let Ok(text) = serde_json::to_string(&frame) else {
                continue;
            };
            if sink.send(Message::Text(text.into())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let session = Arc::new(Session {
        state,
        namespace,
        caller,
        headers,
        out,
        channels: Mutex::new(HashMap::new()),
        closed: CancellationToken::new(),
    });
    while let Some(Ok(message)) = stream.next().await {
        match message {
            Message::Text(text) => session.clone().receive(text.as_str()),
            Message::Close(_) => break,
            // Pings are answered by the socket itself.
            _ => {}
        }
    }
    // The client left: every channel of this socket stops.
    session.closed.cancel();
    drop(session);
    let _ = writer.await;
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

impl Session {
    fn send(&self, frame: ServerFrame) {
        let _ = self.out.send(frame);
    }

    fn receive(self: Arc<Self>, text: &str) {
        let frame = match serde_json::from_str::<ClientFrame>(text) {
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
                tokio::spawn(async move {
                    let frame = match self.rpc(&endpoint, parameter).await {
                        Ok(result) => ServerFrame::RpcResult { call_id, result },
                        Err(error) => ServerFrame::RpcError { call_id, error },
                    };
                    self.send(frame);
                });
            }
            ClientFrame::ChannelCreate {
                endpoint,
                channel_id,
                creation_parameter,
            } => self.open(endpoint, channel_id, creation_parameter),
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

    fn open(self: Arc<Self>, endpoint: String, channel_id: i64, parameter: Value) {
        let cancelled = self.closed.child_token();
        self.channels.lock().insert(channel_id, cancelled.clone());
        let channel = Channel {
            id: channel_id,
            out: self.out.clone(),
            cancelled,
        };
        tokio::spawn(async move {
            let frame = match self.channel(&endpoint, parameter, &channel).await {
                Ok(()) => ServerFrame::ChannelClose { channel_id },
                Err(error) => ServerFrame::ChannelError { channel_id, error },
            };
            self.channels.lock().remove(&channel_id);
            self.send(frame);
        });
    }

    async fn rpc(&self, endpoint: &str, parameter: Value) -> Result<Option<Value>, SdkError> {
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
                models::tokenize(self, kind, parse(endpoint, parameter)?, false).await?
            }
            (_, "countTokens", Some(kind)) => {
                models::tokenize(self, kind, parse(endpoint, parameter)?, true).await?
            }
            ("llm", "applyPromptTemplate", _) => {
                predict::apply_template(self, parse(endpoint, parameter)?).await?
            }
            ("embedding", "embedString", _) => {
                models::embed(self, parse(endpoint, parameter)?).await?
            }
            ("system", "listDownloadedModels", _) => models::downloaded(self).await,
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
        Ok(Some(value).filter(|v| !v.is_null()))
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
            // LM Studio's liveness channel: open until the client goes.
            ("system", "alive", _) => {
                channel.cancelled.cancelled().await;
                Ok(())
            }
            _ => Err(error::unsupported(ns, endpoint)),
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(endpoint: &str, parameter: Value) -> Result<T, SdkError> {
    serde_json::from_value(parameter).map_err(|e| error::bad_parameter(endpoint, e))
}
