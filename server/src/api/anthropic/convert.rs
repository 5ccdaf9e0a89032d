//! Anthropic's Messages API over the one chat road: a messages request
//! becomes a chat request; the chat's chunks become a message object, or
//! Anthropic's stream of named events.

use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use ferrite_engine::ChatStream;
use ferrite_openapi::anthropic::{
    AnthropicErrorBody, Block, Content, Message, MessageObject, MessageRole, MessageUsage,
    MessagesRequest, OutBlock, OutputFormat, Prompt, System, Thinking, Tool, ToolChoice,
    ToolResultContent,
};
use ferrite_openapi::chat::{
    ChatCompletion, ChatMessage, ChatRequest, ContentPart, FunctionCall, FunctionDefinition,
    JsonSchemaFormat, MessageContent, NamedFunction, NamedToolChoice, ResponseFormat, Role,
    ToolCall, ToolChoice as OpenAiToolChoice, ToolChoiceMode, ToolDefinition, ToolKind,
};
use ferrite_openapi::common::{StopSequences, Usage};
use ferrite_openapi::thinking::{ReasoningEffort, ThinkingOptions};
use ferrite_openapi::{ApiError, ApiResult};
use futures::{Stream, StreamExt};
use serde_json::{json, Value};

/// The chat request a messages request means.
pub fn chat_request(request: MessagesRequest) -> ApiResult<ChatRequest> {
    let output = request.output_config.unwrap_or_default();
    let enabled = matches!(request.prompt.thinking, Some(Thinking::Enabled { .. }));
    let mut chat = ChatRequest {
        max_tokens: Some(i64::from(request.max_tokens)),
        stop: request.stop_sequences.map(StopSequences::Many),
        temperature: request.temperature,
        top_p: request.top_p,
        top_k: request.top_k,
        stream: request.stream,
        // Effort weighs a Claude model's own spending; here it opens no
        // thinking block (only `thinking: enabled` does): Claude Code sends
        // `high` with every request, to models that do not think.
        reasoning_effort: match output.effort.as_deref().map(effort).transpose()? {
            Some(e) if enabled => Some(e),
            _ => None,
        },
        response_format: output.format.map(|OutputFormat::JsonSchema { schema }| {
            ResponseFormat::JsonSchema {
                json_schema: JsonSchemaFormat {
                    name: "output".into(),
                    description: None,
                    schema: Some(schema),
                    strict: Some(true),
                },
            }
        }),
        ..prompt_request(request.prompt)?
    };
    chat.context.max_tokens_is_cap = true;
    Ok(chat)
}

/// The chat request of a prompt alone (what a token count sees).
pub fn prompt_request(prompt: Prompt) -> ApiResult<ChatRequest> {
    let mut messages = Vec::new();
    if let Some(system) = prompt.system {
        messages.push(ChatMessage::text(Role::System, system_text(system)));
    }
    for (i, m) in prompt.messages.into_iter().enumerate() {
        convert_message(i, m, &mut messages)?;
    }
    Ok(ChatRequest {
        model: Some(prompt.model),
        continue_final_message: ferrite_openapi::chat::prefill(&messages),
        messages,
        tools: prompt
            .tools
            .map(|tools| tools.into_iter().map(tool).collect()),
        tool_choice: prompt.tool_choice.map(tool_choice),
        thinking: prompt.thinking.and_then(|t| match t {
            Thinking::Enabled { budget_tokens } => Some(ThinkingOptions {
                max_tokens: Some(budget_tokens),
                ..ThinkingOptions::default()
            }),
            Thinking::Disabled | Thinking::Adaptive | Thinking::Other => None,
        }),
        ..ChatRequest::default()
    })
}

/// Anthropic's effort levels on ferrite's reasoning efforts.
fn effort(level: &str) -> ApiResult<ReasoningEffort> {
    Ok(match level {
        "low" => ReasoningEffort::Low,
        "medium" => ReasoningEffort::Medium,
        "high" | "xhigh" | "max" => ReasoningEffort::High,
        other => {
            return Err(ApiError::invalid(
                "output_config.effort",
                format!("Unknown effort `{other}`: use low, medium, high, xhigh or max."),
            ))
        }
    })
}

fn system_text(system: System) -> String {
    match system {
        System::Text(t) => t,
        System::Blocks(blocks) => blocks
            .into_iter()
            .map(|b| b.text)
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// One Anthropic message as chat messages: tool results become tool
/// messages (before the user's text, which follows them), tool uses the
/// assistant's tool calls; earlier thinking is not shown to the model again.
fn convert_message(i: usize, m: Message, out: &mut Vec<ChatMessage>) -> ApiResult<()> {
    let role = match m.role {
        MessageRole::User => Role::User,
        MessageRole::Assistant => Role::Assistant,
        MessageRole::System => Role::System,
    };
    let blocks = match m.content {
        Content::Text(text) => {
            out.push(ChatMessage::text(role, text));
            return Ok(());
        }
        Content::Blocks(blocks) => blocks,
    };
    let mut text = Vec::new();
    // Text and images in order, for a message with images.
    let mut parts = Vec::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.into_iter().enumerate() {
        match block {
            Block::Text { text: t } => {
                parts.push(ContentPart::Text { text: t.clone() });
                text.push(t);
            }
            Block::Image { source } => parts.push(ContentPart::ImageUrl {
                image_url: serde_json::json!({ "url": image_url(i, j, &source)? }),
            }),
            Block::ToolUse { id, name, input } => calls.push(ToolCall {
                id,
                kind: ToolKind::Function,
                function: FunctionCall {
                    name,
                    arguments: input.to_string(),
                },
            }),
            Block::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => {
                let result = match content {
                    Some(ToolResultContent::Text(t)) => t,
                    Some(ToolResultContent::Blocks(b)) => {
                        b.into_iter().map(|b| b.text).collect::<Vec<_>>().join("\n")
                    }
                    None => String::new(),
                };
                let result = if is_error == Some(true) {
                    format!("Error: {result}")
                } else {
                    result
                };
                out.push(ChatMessage {
                    tool_call_id: Some(tool_use_id),
                    ..ChatMessage::text(Role::Tool, result)
                });
            }
            Block::Thinking { .. } | Block::RedactedThinking { .. } => {}
        }
    }
    if parts.is_empty() && calls.is_empty() {
        return Ok(());
    }
    let mut message = ChatMessage::text(role, text.join("\n"));
    if parts
        .iter()
        .any(|p| matches!(p, ContentPart::ImageUrl { .. }))
    {
        message.content = Some(MessageContent::Parts(parts));
    }
    if !calls.is_empty() {
        message.tool_calls = Some(calls);
    }
    out.push(message);
    Ok(())
}

/// An image block's source as an image URL: base64 data as a data URL,
/// a `url` source as it is (fetched only where the operator allows).
fn image_url(i: usize, j: usize, source: &serde_json::Value) -> ApiResult<String> {
    let field = |k: &str| source.get(k).and_then(|v| v.as_str());
    match field("type") {
        Some("base64") => {
            let (Some(mime), Some(data)) = (field("media_type"), field("data")) else {
                return Err(ApiError::invalid(
                    &format!("messages[{i}].content[{j}].source"),
                    "A base64 image source needs `media_type` and `data`.",
                ));
            };
            Ok(format!("data:{mime};base64,{data}"))
        }
        Some("url") => field("url").map(str::to_string).ok_or_else(|| {
            ApiError::invalid(
                &format!("messages[{i}].content[{j}].source.url"),
                "A url image source needs `url`.",
            )
        }),
        _ => Err(ApiError::invalid(
            &format!("messages[{i}].content[{j}].source.type"),
            "An image source is `base64` or `url`.",
        )),
    }
}

fn tool(t: Tool) -> ToolDefinition {
    ToolDefinition {
        kind: ToolKind::Function,
        function: FunctionDefinition {
            name: t.name,
            description: t.description,
            parameters: Some(t.input_schema),
            strict: None,
        },
    }
}

fn tool_choice(c: ToolChoice) -> OpenAiToolChoice {
    match c {
        ToolChoice::Auto => OpenAiToolChoice::Mode(ToolChoiceMode::Auto),
        ToolChoice::Any => OpenAiToolChoice::Mode(ToolChoiceMode::Required),
        ToolChoice::None => OpenAiToolChoice::Mode(ToolChoiceMode::None),
        ToolChoice::Tool { name } => OpenAiToolChoice::Named(NamedToolChoice {
            kind: ToolKind::Function,
            function: NamedFunction { name },
        }),
    }
}

fn stop_reason(finish: Option<&str>) -> Option<String> {
    finish.map(|f| {
        match f {
            "length" => "max_tokens",
            "tool_calls" => "tool_use",
            _ => "end_turn",
        }
        .to_string()
    })
}

fn message_id(chat_id: &str) -> String {
    format!(
        "msg_{}",
        chat_id.strip_prefix("chatcmpl-").unwrap_or(chat_id)
    )
}

fn usage(u: Option<Usage>) -> MessageUsage {
    let u = u.unwrap_or_default();
    MessageUsage {
        input_tokens: u.prompt_tokens,
        output_tokens: u.completion_tokens,
    }
}

/// Arguments that are not a JSON object still reach the client, as a string.
fn input(arguments: &str) -> Value {
    serde_json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.to_string()))
}

/// A whole chat completion as a message object.
pub fn message(completion: ChatCompletion) -> MessageObject {
    let choice = completion.choices.into_iter().next();
    let mut content = Vec::new();
    let finish = choice.as_ref().and_then(|c| c.finish_reason.clone());
    if let Some(m) = choice.map(|c| c.message) {
        if let Some(thinking) = m.reasoning_content.filter(|t| !t.is_empty()) {
            content.push(OutBlock::Thinking {
                thinking,
                signature: String::new(),
            });
        }
        if let Some(text) = m.content.filter(|t| !t.is_empty()) {
            content.push(OutBlock::Text { text });
        }
        for call in m.tool_calls.unwrap_or_default() {
            content.push(OutBlock::ToolUse {
                id: call.id,
                name: call.function.name,
                input: input(&call.function.arguments),
            });
        }
    }
    MessageObject {
        id: message_id(&completion.id),
        kind: "message".into(),
        role: "assistant".into(),
        content,
        model: completion.model,
        stop_reason: stop_reason(finish.as_deref()),
        stop_sequence: None,
        usage: usage(completion.usage),
    }
}

/// The block now open in a streamed message.
#[derive(PartialEq)]
enum Open {
    None,
    Thinking,
    Text,
    /// The tool call with this index in the chat's deltas.
    Tool(u32),
}

/// Turns chat chunks into Anthropic's events, one content block at a time.
struct Events {
    open: Open,
    index: usize,
    finish: Option<String>,
    usage: Option<Usage>,
    out: Vec<Event>,
}

fn event(name: &str, data: Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

impl Events {
    fn close(&mut self) {
        if self.open == Open::Thinking {
            let delta = json!({"type": "signature_delta", "signature": ""});
            self.delta(delta);
        }
        if self.open != Open::None {
            let data = json!({"type": "content_block_stop", "index": self.index});
            self.out.push(event("content_block_stop", data));
            self.index += 1;
            self.open = Open::None;
        }
    }

    fn start(&mut self, open: Open, block: Value) {
        self.close();
        self.open = open;
        let data =
            json!({"type": "content_block_start", "index": self.index, "content_block": block});
        self.out.push(event("content_block_start", data));
    }

    fn delta(&mut self, delta: Value) {
        let data = json!({"type": "content_block_delta", "index": self.index, "delta": delta});
        self.out.push(event("content_block_delta", data));
    }

    fn push(&mut self, chunk: ferrite_openapi::chat::ChatCompletionChunk) {
        if let Some(u) = chunk.usage {
            self.usage = Some(u);
        }
        let Some(choice) = chunk.choices.into_iter().find(|c| c.index == 0) else {
            return;
        };
        let d = choice.delta;
        if let Some(t) = d.reasoning_content.filter(|t| !t.is_empty()) {
            if self.open != Open::Thinking {
                self.start(
                    Open::Thinking,
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                );
            }
            self.delta(json!({"type": "thinking_delta", "thinking": t}));
        }
        if let Some(t) = d.content.filter(|t| !t.is_empty()) {
            if self.open != Open::Text {
                self.start(Open::Text, json!({"type": "text", "text": ""}));
            }
            self.delta(json!({"type": "text_delta", "text": t}));
        }
        for call in d.tool_calls.unwrap_or_default() {
            let f = call.function.unwrap_or_default();
            if self.open != Open::Tool(call.index) {
                let id = call.id.unwrap_or_default();
                let name = f.name.clone().unwrap_or_default();
                let block = json!({"type": "tool_use", "id": id, "name": name, "input": {}});
                self.start(Open::Tool(call.index), block);
            }
            if let Some(args) = f.arguments.filter(|a| !a.is_empty()) {
                self.delta(json!({"type": "input_json_delta", "partial_json": args}));
            }
        }
        if let Some(f) = choice.finish_reason {
            self.finish = Some(f);
        }
    }

    fn end(&mut self) {
        self.close();
        let u = usage(self.usage);
        let data = json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(self.finish.as_deref()), "stop_sequence": null},
            "usage": {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens},
        });
        self.out.push(event("message_delta", data));
        self.out
            .push(event("message_stop", json!({"type": "message_stop"})));
    }
}

/// `message_start`, each block's start, deltas and stop, `message_delta`
/// with the stop reason and usage, `message_stop`; an error mid-stream is
/// an `error` event.
pub fn stream(mut chunks: ChatStream) -> Response {
    let events = async_stream::stream! {
        let mut state = Events { open: Open::None, index: 0, finish: None, usage: None, out: Vec::new() };
        let mut started = false;
        while let Some(item) = chunks.next().await {
            let chunk = match item {
                Ok(c) if c.comment.is_some() => continue,
                Ok(c) => c,
                Err(e) => {
                    yield Ok(event("error", json!(AnthropicErrorBody::of(&e))));
                    return;
                }
            };
            if !started {
                started = true;
                let message = MessageObject {
                    id: message_id(&chunk.id),
                    kind: "message".into(),
                    role: "assistant".into(),
                    content: Vec::new(),
                    model: chunk.model.clone(),
                    stop_reason: None,
                    stop_sequence: None,
                    usage: MessageUsage::default(),
                };
                yield Ok(event("message_start", json!({"type": "message_start", "message": message})));
            }
            state.push(chunk);
            for e in state.out.drain(..) {
                yield Ok::<_, Infallible>(e);
            }
        }
        state.end();
        for e in state.out.drain(..) {
            yield Ok(e);
        }
    };
    sse_response(events)
}

fn sse_response(
    events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static,
) -> Response {
    Sse::new(events)
        .keep_alive(
            KeepAlive::new().event(Event::default().event("ping").data(r#"{"type": "ping"}"#)),
        )
        .into_response()
}
