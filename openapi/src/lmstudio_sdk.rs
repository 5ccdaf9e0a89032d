//! LM Studio's SDK protocol (what `import lmstudio` and `@lmstudio/sdk`
//! speak over one WebSocket per namespace): the frames, the auth
//! handshake, and the payloads of the endpoints ferrite answers. Names and
//! shapes follow the SDKs' own schemas (camelCase on the wire).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::validate::{Shape, ShapeNames};

/// The first frame a client sends on every socket.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthPacket {
    pub auth_version: u32,
    pub client_identifier: String,
    pub client_passkey: String,
}

/// The server's answer to [`AuthPacket`]. The Python SDK reads `error` as
/// a serialized error (the JS SDK fails the connection either way).
#[derive(Debug, Clone, Serialize)]
pub struct AuthResult {
    pub success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<SdkError>,
}

/// What a client sends after authenticating.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ClientFrame {
    RpcCall {
        endpoint: String,
        call_id: i64,
        #[serde(default)]
        parameter: Value,
    },
    ChannelCreate {
        endpoint: String,
        channel_id: i64,
        #[serde(default)]
        creation_parameter: Value,
    },
    ChannelSend {
        channel_id: i64,
        #[serde(default)]
        message: Value,
    },
    SignalSubscribe {
        subscribe_id: i64,
        endpoint: String,
    },
    WritableSignalSubscribe {
        subscribe_id: i64,
        endpoint: String,
    },
    KeepAlive,
    /// Acks, unsubscribes, warnings: nothing to answer.
    #[serde(other)]
    Ignored,
}

/// What the server sends.
#[derive(Debug, Clone, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ServerFrame {
    RpcResult {
        call_id: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        result: Option<Box<RawValue>>,
    },
    RpcError {
        call_id: i64,
        error: SdkError,
    },
    ChannelSend {
        channel_id: i64,
        message: Value,
    },
    ChannelClose {
        channel_id: i64,
    },
    ChannelError {
        channel_id: i64,
        error: SdkError,
    },
    SignalError {
        subscribe_id: i64,
        error: SdkError,
    },
    WritableSignalError {
        subscribe_id: i64,
        error: SdkError,
    },
    KeepAliveAck,
    CommunicationWarning {
        warning: String,
    },
}

/// LM Studio's serialized error: the SDKs raise it as their own exception
/// (`displayData.code` picks the class, e.g. model not found).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SdkError {
    pub title: String,
    // Boxed: every call's `Result` carries this type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<Box<str>>,
    /// ferrite's OpenAI error object, for clients that want the code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_data: Option<Box<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_data: Option<Box<Value>>,
}

/// Which model a call means.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ModelSpecifier {
    Query { query: ModelQuery },
    InstanceReference { instance_reference: String },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

/// A model as `listDownloadedModels` shows it, and (with the instance
/// fields) as `listLoaded` and `getModelInfo` do.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelInfo {
    /// `llm` or `embedding`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub model_key: String,
    pub format: String,
    pub display_name: String,
    pub publisher: String,
    pub path: String,
    pub size_bytes: u64,
    pub indexed_model_identifier: String,
    pub device_identifier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantization: Option<Quantization>,
    pub max_context_length: u32,
    /// LLMs only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vision: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trained_for_tool_use: Option<bool>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub instance: Option<InstanceInfo>,
}

/// The fields a loaded instance adds.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceInfo {
    pub identifier: String,
    pub instance_reference: String,
    pub ttl_ms: Option<u64>,
    pub last_used_time: Option<u64>,
    pub context_length: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Quantization {
    pub name: String,
    pub bits: u32,
}

/// `{fields: [{key, value}]}`: every config LM Studio sends or reports.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KvConfig {
    #[serde(default)]
    pub fields: Vec<KvField>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KvField {
    pub key: String,
    #[serde(default)]
    pub value: Value,
}

/// Config layers, later ones winning.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct KvConfigStack {
    #[serde(default)]
    pub layers: Vec<KvLayer>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KvLayer {
    #[serde(default)]
    pub layer_name: String,
    pub config: KvConfig,
}

impl KvConfigStack {
    /// The value in force for `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.layers
            .iter()
            .rev()
            .flat_map(|l| l.config.fields.iter().rev())
            .find(|f| f.key == key)
            .map(|f| &f.value)
    }

    /// Every field in force, once each.
    pub fn flatten(&self) -> KvConfig {
        let mut fields: Vec<KvField> = Vec::new();
        for f in self.layers.iter().flat_map(|l| &l.config.fields) {
            fields.retain(|g| g.key != f.key);
            fields.push(f.clone());
        }
        KvConfig { fields }
    }
}

/// `loadModel`'s and `getOrLoad`'s creation parameter (`modelKey` for the
/// first, `identifier` for the second).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadParameter {
    #[serde(default)]
    pub model_key: Option<String>,
    #[serde(default)]
    pub identifier: Option<String>,
    #[serde(default)]
    pub ttl_ms: Option<u64>,
    #[serde(default)]
    pub load_ttl_ms: Option<u64>,
    #[serde(default)]
    pub load_config_stack: KvConfigStack,
}

/// `predict`'s creation parameter.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PredictParameter {
    pub model_specifier: ModelSpecifier,
    pub history: ChatHistory,
    #[serde(default)]
    pub prediction_config_stack: KvConfigStack,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatHistory {
    pub messages: Vec<ChatMessageData>,
}

impl ChatHistory {
    /// The SDK's names for what a history's size is counted in.
    pub const NAMES: ShapeNames = ShapeNames {
        messages: "history.messages",
        content_parts: "history.messages[].content",
        tools: "predictionConfigStack",
        tool_calls: "history.messages[].content",
        images: "history.messages[].content",
    };

    /// How many messages, parts and tool call requests it holds.
    pub fn shape(&self) -> Shape {
        let mut shape = Shape {
            messages: self.messages.len(),
            ..Shape::default()
        };
        for m in &self.messages {
            let (ChatMessageData::System { content }
            | ChatMessageData::User { content }
            | ChatMessageData::Assistant { content }
            | ChatMessageData::Tool { content }) = m;
            shape.content_parts = shape.content_parts.saturating_add(content.len());
            let calls = content
                .iter()
                .filter(|p| matches!(p, MessagePart::ToolCallRequest { .. }))
                .count();
            shape.tool_calls = shape.tool_calls.saturating_add(calls);
        }
        shape
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "role", rename_all = "camelCase")]
pub enum ChatMessageData {
    System { content: Vec<MessagePart> },
    User { content: Vec<MessagePart> },
    Assistant { content: Vec<MessagePart> },
    Tool { content: Vec<MessagePart> },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum MessagePart {
    Text {
        text: String,
    },
    /// A file prepared with `files.uploadFileBase64` (an image).
    File {
        #[serde(default)]
        name: String,
        #[serde(default)]
        identifier: String,
    },
    ToolCallRequest {
        tool_call_request: ToolCallRequest,
    },
    ToolCallResult {
        content: String,
        #[serde(default)]
        tool_call_id: Option<String>,
    },
}

/// A function call the model asked for (`arguments` as a JSON object).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolCallRequest {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
}

/// `{specifier, inputString}`: `tokenize` and `countTokens`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TextParameter {
    pub specifier: ModelSpecifier,
    pub input_string: String,
}

/// `embedString`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmbedParameter {
    pub model_specifier: ModelSpecifier,
    pub input_string: String,
}

/// `getModelInfo`, `getLoadConfig`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpecifierParameter {
    pub specifier: ModelSpecifier,
    #[serde(default)]
    pub throw_if_not_found: bool,
}

/// `applyPromptTemplate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateParameter {
    pub specifier: ModelSpecifier,
    pub history: ChatHistory,
    #[serde(default)]
    pub prediction_config_stack: KvConfigStack,
}

/// `unloadModel`.
#[derive(Debug, Clone, Deserialize)]
pub struct UnloadParameter {
    pub identifier: String,
}

/// One piece of a streamed prediction.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fragment {
    pub content: String,
    pub tokens_count: u32,
    pub contains_drafted: bool,
    /// `none` or `reasoning`.
    pub reasoning_type: &'static str,
    pub is_structural: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptProcessingDetails {
    pub cached_token_count: u32,
    pub total_prompt_token_count: u32,
    pub processed_prompt_token_count: u32,
    pub unprocessed_prompt_token_count: u32,
}

/// A finished prediction's figures.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PredictionStats {
    /// `eosFound`, `maxPredictedTokensReached`, `toolCalls`, `userStopped`...
    pub stop_reason: &'static str,
    pub tokens_per_second: f64,
    pub time_to_first_token_sec: f64,
    pub total_time_sec: f64,
    pub prompt_tokens_count: u32,
    pub predicted_tokens_count: u32,
    pub total_tokens_count: u32,
}

/// OpenAI's `finish_reason` as LM Studio's `stopReason`.
pub fn stop_reason(finish: Option<&str>, cancelled: bool) -> &'static str {
    if cancelled {
        return "userStopped";
    }
    match finish {
        Some("length") => "maxPredictedTokensReached",
        Some("tool_calls") => "toolCalls",
        Some("stop") => "eosFound",
        Some(_) => "stopStringFound",
        None => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frames_read_as_the_sdks_send_them() {
        let call: ClientFrame = serde_json::from_value(json!({
            "type": "rpcCall", "endpoint": "listLoaded", "callId": 3
        }))
        .unwrap();
        assert!(matches!(call, ClientFrame::RpcCall { call_id: 3, .. }));
        let other: ClientFrame =
            serde_json::from_value(json!({"type": "channelAck", "channelId": 1, "ackId": 2}))
                .unwrap();
        assert!(matches!(other, ClientFrame::Ignored));
        let out = serde_json::to_value(ServerFrame::RpcResult {
            call_id: 3,
            result: serde_json::value::to_raw_value(&json!([])).ok(),
        })
        .unwrap();
        assert_eq!(out, json!({"type": "rpcResult", "callId": 3, "result": []}));
    }

    #[test]
    fn later_layers_win() {
        let stack: KvConfigStack = serde_json::from_value(json!({"layers": [
            {"layerName": "a", "config": {"fields": [{"key": "t", "value": 1}, {"key": "u", "value": 2}]}},
            {"layerName": "b", "config": {"fields": [{"key": "t", "value": 3}]}},
        ]}))
        .unwrap();
        assert_eq!(stack.get("t"), Some(&json!(3)));
        let flat = stack.flatten();
        assert_eq!(flat.fields.len(), 2);
    }

    #[test]
    fn history_parts() {
        let h: ChatHistory = serde_json::from_value(json!({"messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {"role": "assistant", "content": [{"type": "toolCallRequest",
                "toolCallRequest": {"type": "function", "name": "f", "id": "1", "arguments": {"a": 1}}}]},
            {"role": "tool", "content": [{"type": "toolCallResult", "content": "2", "toolCallId": "1"}]},
        ]}))
        .unwrap();
        assert_eq!(h.messages.len(), 3);
    }
}
