//! OpenAI's Responses API (`/v1/responses`): the request and its input
//! items, the response object with its output items, and stored input
//! item lists.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::chat::{ToolChoiceMode, ToolKind};
use crate::thinking::ReasoningEffort;
use crate::validate::{Shape, ShapeNames};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResponseRequest {
    #[serde(default)]
    pub model: Option<String>,
    /// Text, or a list of input items.
    #[serde(default)]
    pub input: Option<ResponseInput>,
    /// A system message for this response only (not carried over by
    /// `previous_response_id`).
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Function tools (`{"type": "function", "name", "description",
    /// "parameters", "strict"}`); tools of other kinds are left out.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub tools: Vec<ResponseTool>,
    #[serde(default)]
    pub tool_choice: Option<ResponseToolChoice>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub text: Option<TextConfig>,
    #[serde(default)]
    pub reasoning: Option<ReasoningConfig>,
    #[serde(default)]
    pub stream: bool,
    /// Keep the response for `GET`, `previous_response_id` and its input
    /// items (default true).
    #[serde(default)]
    pub store: Option<bool>,
    #[serde(default)]
    pub previous_response_id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default)]
    pub user: Option<String>,
    /// `disabled` (the default) or `auto`.
    #[serde(default)]
    pub truncation: Option<String>,
    #[serde(default)]
    pub include: Option<Vec<String>>,
    /// Not supported: responses run while the client waits.
    #[serde(default)]
    pub background: Option<bool>,
    /// LM Studio extension: idle seconds before a just-in-time loaded model
    /// unloads.
    #[serde(default)]
    pub ttl: Option<u64>,
}

impl ResponseRequest {
    /// The Responses API's names for what a request's size is counted in.
    pub const NAMES: ShapeNames = ShapeNames {
        messages: "input",
        content_parts: "input[].content",
        tools: "tools",
        tool_calls: "input",
        images: "input[].content",
    };

    /// How many input items, content parts, tools and function calls it
    /// holds (before `previous_response_id` adds the earlier ones).
    pub fn shape(&self) -> Shape {
        let mut shape = Shape {
            tools: self.tools.len(),
            ..Shape::default()
        };
        match &self.input {
            Some(ResponseInput::Items(items)) => {
                shape.messages = items.len();
                for item in items {
                    match item {
                        InputItem::Message(m) => {
                            if let ItemContent::Parts(parts) = &m.content {
                                shape.content_parts =
                                    shape.content_parts.saturating_add(parts.len());
                            }
                        }
                        InputItem::FunctionCall(_) => shape.tool_calls += 1,
                        _ => {}
                    }
                }
            }
            Some(ResponseInput::Text(_)) => shape.messages = 1,
            None => {}
        }
        shape
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ResponseInput {
    Text(String),
    Items(Vec<InputItem>),
}

/// An input item: a message (`type` may be left out), a function call the
/// model made, its output, or earlier reasoning.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum InputItem {
    Message(InputMessage),
    FunctionCall(FunctionCallItem),
    FunctionCallOutput(FunctionCallOutputItem),
    Reasoning(ReasoningItem),
}

impl<'de> Deserialize<'de> for InputItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("message");
        match kind {
            "message" => serde_json::from_value(v).map(Self::Message),
            "function_call" => serde_json::from_value(v).map(Self::FunctionCall),
            "function_call_output" => serde_json::from_value(v).map(Self::FunctionCallOutput),
            "reasoning" => serde_json::from_value(v).map(Self::Reasoning),
            other => {
                return Err(D::Error::custom(format!(
                    "input item type `{other}` is not supported (message, function_call, function_call_output, reasoning)"
                )))
            }
        }
        .map_err(D::Error::custom)
    }
}

impl InputItem {
    pub fn id(&self) -> Option<&str> {
        match self {
            Self::Message(m) => m.id.as_deref(),
            Self::FunctionCall(c) => c.id.as_deref(),
            Self::FunctionCallOutput(o) => o.id.as_deref(),
            Self::Reasoning(r) => r.id.as_deref(),
        }
    }

    pub fn set_id(&mut self, id: String) {
        let slot = match self {
            Self::Message(m) => &mut m.id,
            Self::FunctionCall(c) => &mut c.id,
            Self::FunctionCallOutput(o) => &mut o.id,
            Self::Reasoning(r) => &mut r.id,
        };
        *slot = Some(id);
    }
}

fn message_type() -> String {
    "message".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InputMessage {
    #[serde(rename = "type", default = "message_type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub role: ItemRole,
    pub content: ItemContent,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ItemRole {
    User,
    Assistant,
    System,
    Developer,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ItemContent {
    Text(String),
    Parts(Vec<ItemPart>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ItemPart {
    InputText {
        text: String,
    },
    OutputText {
        text: String,
        #[serde(default)]
        #[schema(value_type = Vec<Object>)]
        annotations: Vec<Value>,
    },
    Refusal {
        refusal: String,
    },
    InputImage {
        #[serde(default)]
        image_url: Option<String>,
        #[serde(default)]
        file_id: Option<String>,
    },
    InputFile {
        #[serde(default)]
        file_id: Option<String>,
        #[serde(default)]
        filename: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionCallItem {
    /// `function_call`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub call_id: String,
    pub name: String,
    pub arguments: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionCallOutputItem {
    /// `function_call_output`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub call_id: String,
    pub output: ItemContent,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// Earlier reasoning, passed back by clients; not shown to the model again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReasoningItem {
    /// `reasoning`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub summary: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub content: Option<Vec<Value>>,
}

/// A tool: a function the model may call, or another kind (OpenAI's hosted
/// search, Codex's namespaces, custom tools), which is echoed back but not
/// offered to the model: agents send them with every request.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ResponseTool {
    Function(FunctionTool),
    #[schema(value_type = Object)]
    Other(Value),
}

impl<'de> Deserialize<'de> for ResponseTool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        match v.get("type").and_then(Value::as_str) {
            Some("function") => serde_json::from_value(v)
                .map(Self::Function)
                .map_err(D::Error::custom),
            Some(_) => Ok(Self::Other(v)),
            None => Err(D::Error::custom("a tool needs a `type`")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionTool {
    /// `function`.
    #[serde(rename = "type")]
    pub kind: ToolKind,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ResponseToolChoice {
    Mode(ToolChoiceMode),
    Function {
        #[serde(rename = "type")]
        kind: ToolKind,
        name: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TextConfig {
    #[serde(default)]
    pub format: TextFormat,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TextFormat {
    #[default]
    Text,
    JsonObject,
    JsonSchema {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        #[schema(value_type = Object)]
        schema: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        strict: Option<bool>,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReasoningConfig {
    /// Mapped to ferrite's thinking budgets.
    #[serde(default)]
    pub effort: Option<ReasoningEffort>,
    #[serde(default)]
    pub summary: Option<String>,
}

/// A response, as returned, stored and streamed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResponseObject {
    pub id: String,
    /// Always `response`.
    pub object: String,
    pub created_at: u64,
    /// `in_progress`, `completed`, `incomplete` or `failed`.
    pub status: String,
    pub error: Option<ResponseError>,
    pub incomplete_details: Option<IncompleteDetails>,
    pub instructions: Option<String>,
    pub max_output_tokens: Option<u32>,
    pub model: String,
    pub output: Vec<OutputItem>,
    pub parallel_tool_calls: bool,
    pub previous_response_id: Option<String>,
    pub reasoning: ReasoningConfig,
    pub store: bool,
    pub temperature: Option<f64>,
    pub text: TextConfig,
    pub tool_choice: ResponseToolChoice,
    #[schema(value_type = Vec<Object>)]
    pub tools: Vec<ResponseTool>,
    pub top_p: Option<f64>,
    pub truncation: String,
    pub usage: Option<ResponseUsage>,
    pub user: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResponseError {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IncompleteDetails {
    /// `max_output_tokens`.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem {
    Message {
        id: String,
        status: String,
        role: String,
        content: Vec<OutputContent>,
    },
    FunctionCall {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
        status: String,
    },
    Reasoning {
        id: String,
        #[schema(value_type = Vec<Object>)]
        summary: Vec<Value>,
        content: Vec<ReasoningText>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputContent {
    OutputText {
        text: String,
        #[schema(value_type = Vec<Object>)]
        annotations: Vec<Value>,
        #[schema(value_type = Vec<Object>)]
        logprobs: Vec<Value>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReasoningText {
    ReasoningText { text: String },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResponseUsage {
    pub input_tokens: u32,
    pub input_tokens_details: InputTokensDetails,
    pub output_tokens: u32,
    pub output_tokens_details: OutputTokensDetails,
    pub total_tokens: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InputTokensDetails {
    pub cached_tokens: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OutputTokensDetails {
    pub reasoning_tokens: u32,
}

/// `GET /v1/responses/{id}/input_items`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InputItemList {
    /// Always `list`.
    pub object: String,
    pub data: Vec<InputItem>,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    pub has_more: bool,
}

/// `DELETE /v1/responses/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResponseDeleted {
    pub id: String,
    /// Always `response`.
    pub object: String,
    pub deleted: bool,
}

/// One event of a streamed response: its `type` (also the SSE event name),
/// its place in the stream, and the fields of that type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResponseStreamEvent {
    #[serde(rename = "type")]
    pub kind: String,
    pub sequence_number: u64,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn items_parse_with_or_without_a_type() {
        let input: ResponseInput = serde_json::from_value(json!([
            {"role": "user", "content": "hi"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "hello"}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "42"},
            {"type": "reasoning", "id": "rs_1", "summary": []},
        ]))
        .unwrap();
        let ResponseInput::Items(items) = input else {
            panic!("not items")
        };
        assert!(matches!(items[0], InputItem::Message(_)));
        assert!(matches!(items[2], InputItem::FunctionCall(_)));
        assert!(matches!(items[3], InputItem::FunctionCallOutput(_)));
        assert!(matches!(items[4], InputItem::Reasoning(_)));
        // Stored and listed with their type.
        assert_eq!(serde_json::to_value(&items[0]).unwrap()["type"], "message");
    }

    #[test]
    fn unknown_items_are_refused_and_other_tools_kept_aside() {
        let item = serde_json::from_value::<InputItem>(json!({"type": "computer_call"}));
        assert!(item.unwrap_err().to_string().contains("computer_call"));
        let tool = serde_json::from_value::<ResponseTool>(json!({"type": "web_search"}));
        assert!(matches!(tool, Ok(ResponseTool::Other(_))));
        let f = json!({"type": "function", "name": "f", "parameters": {"type": "object"}});
        let tool = serde_json::from_value::<ResponseTool>(f.clone()).unwrap();
        assert!(matches!(tool, ResponseTool::Function(_)));
        assert_eq!(serde_json::to_value(&tool).unwrap(), f);
        assert!(serde_json::from_value::<ResponseTool>(json!({"type": "function"})).is_err());
    }
}
