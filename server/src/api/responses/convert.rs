//! OpenAI's Responses API over the one chat road: a response request, after
//! the conversation of the response it continues, becomes a chat request;
//! the chat's chunks become a response object, or the Responses stream of
//! named events. Item ids derive from the response id, so the stream's
//! items and the stored response's are the same items.

use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use ferrite_engine::ChatStream;
use ferrite_openapi::aggregate::ChatAccumulator;
use ferrite_openapi::chat::{
    ChatCompletion, ChatCompletionChunk, ChatMessage, ChatRequest, ContentPart, FunctionCall,
    FunctionDefinition, JsonSchemaFormat, MessageContent, NamedFunction, NamedToolChoice,
    ResponseFormat, Role, ToolCall, ToolChoice, ToolChoiceMode, ToolDefinition, ToolKind,
};
use ferrite_openapi::common::{StreamOptions, Usage};
use ferrite_openapi::responses::{
    IncompleteDetails, InputItem, InputTokensDetails, ItemContent, ItemPart, ItemRole,
    OutputContent, OutputItem, OutputTokensDetails, ReasoningText, ResponseError, ResponseInput,
    ResponseObject, ResponseRequest, ResponseTool, ResponseToolChoice, ResponseUsage, TextConfig,
    TextFormat,
};
use ferrite_openapi::{ApiError, ApiResult};
use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use serde_json::{json, Value};

/// A response request made ready for the chat road.
#[derive(Debug)]
pub struct Prepared {
    pub chat: ChatRequest,
    /// This request's own input items, with ids (what `input_items` lists).
    pub items: Vec<InputItem>,
    /// The conversation up to the answer, instructions left out (they are
    /// not carried over by `previous_response_id`).
    pub conversation: Vec<ChatMessage>,
    /// The response as it stands before any output.
    pub head: ResponseObject,
}

/// A fresh response id: `resp_` and 32 hex digits.
pub fn new_id() -> String {
    format!("resp_{}", uuid::Uuid::new_v4().simple())
}

fn item_id(response: &str, prefix: &str, n: usize) -> String {
    let base = response.strip_prefix("resp_").unwrap_or(response);
    format!("{prefix}_{base}_{n}")
}

/// Checks `request` and turns it into a chat request after `previous` (the
/// conversation of the response it continues).
pub fn prepare(
    id: &str,
    request: ResponseRequest,
    previous: Vec<ChatMessage>,
) -> ApiResult<Prepared> {
    if request.background == Some(true) {
        return Err(ApiError::unsupported(
            "background",
            "Background responses are not supported: responses run while the client waits.",
        ));
    }
    if let Some(t) = request
        .truncation
        .as_deref()
        .filter(|t| !matches!(*t, "disabled" | "auto"))
    {
        return Err(ApiError::invalid(
            "truncation",
            format!("Unknown truncation `{t}`: use disabled or auto."),
        ));
    }
    let mut items = match request.input.clone() {
        Some(ResponseInput::Text(text)) => vec![InputItem::Message(
            ferrite_openapi::responses::InputMessage {
                kind: "message".into(),
                id: None,
                role: ItemRole::User,
                content: ItemContent::Text(text),
                status: None,
            },
        )],
        Some(ResponseInput::Items(items)) => items,
        None => return Err(ApiError::invalid("input", "`input` is required.")),
    };
    for (n, item) in items.iter_mut().enumerate() {
        if item.id().is_none() {
            item.set_id(item_id(id, "in", n));
        }
    }
    let mut conversation = previous;
    for (i, item) in items.iter().enumerate() {
        push_item(i, item, &mut conversation)?;
    }
    let mut messages = Vec::with_capacity(conversation.len() + 1);
    if let Some(instructions) = request.instructions.clone() {
        messages.push(ChatMessage::text(Role::System, instructions));
    }
    messages.extend(conversation.iter().cloned());
    let text = request.text.clone().unwrap_or_default();
    let mut chat = ChatRequest {
        model: request.model.clone(),
        messages,
        max_tokens: request.max_output_tokens.map(i64::from),
        temperature: request.temperature,
        top_p: request.top_p,
        tools: functions(&request.tools),
        tool_choice: request.tool_choice.clone().map(tool_choice),
        parallel_tool_calls: request.parallel_tool_calls,
        response_format: response_format(&text.format),
        reasoning_effort: request.reasoning.as_ref().and_then(|r| r.effort),
        stream: Some(request.stream),
        stream_options: request.stream.then_some(StreamOptions {
            include_usage: Some(true),
        }),
        user: request.user.clone(),
        ttl: request.ttl,
        ..ChatRequest::default()
    };
    chat.context.max_tokens_is_cap = true;
    let head = head(id, &request, text);
    Ok(Prepared {
        chat,
        items,
        conversation,
        head,
    })
}

fn head(id: &str, request: &ResponseRequest, text: TextConfig) -> ResponseObject {
    ResponseObject {
        id: id.to_string(),
        object: "response".into(),
        created_at: ferrite_openapi::common::unix_now(),
        status: "in_progress".into(),
        error: None,
        incomplete_details: None,
        instructions: request.instructions.clone(),
        max_output_tokens: request.max_output_tokens,
        model: request.model.clone().unwrap_or_default(),
        output: Vec::new(),
        parallel_tool_calls: request.parallel_tool_calls.unwrap_or(true),
        previous_response_id: request.previous_response_id.clone(),
        reasoning: request.reasoning.clone().unwrap_or_default(),
        store: request.store.unwrap_or(true),
        temperature: request.temperature,
        text,
        tool_choice: request
            .tool_choice
            .clone()
            .unwrap_or(ResponseToolChoice::Mode(ToolChoiceMode::Auto)),
        tools: request.tools.clone(),
        top_p: request.top_p,
        truncation: request
            .truncation
            .clone()
            .unwrap_or_else(|| "disabled".into()),
        usage: None,
        user: request.user.clone(),
        metadata: request.metadata.clone().unwrap_or_default(),
    }
}

/// An item's text, as one string when it has no images (as Chat
/// Completions parts otherwise); files are refused by name.
fn content_text(i: usize, content: &ItemContent) -> ApiResult<MessageContent> {
    let parts = match content {
        ItemContent::Text(t) => return Ok(MessageContent::Text(t.clone())),
        ItemContent::Parts(parts) => parts,
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        out.push(match part {
            ItemPart::InputText { text } | ItemPart::OutputText { text, .. } => {
                ContentPart::Text { text: text.clone() }
            }
            ItemPart::Refusal { refusal } => ContentPart::Text {
                text: refusal.clone(),
            },
            ItemPart::InputImage {
                image_url: Some(url),
                ..
            } => ContentPart::ImageUrl {
                image_url: serde_json::json!({ "url": url }),
            },
            ItemPart::InputImage { .. } | ItemPart::InputFile { .. } => {
                return Err(ApiError::unsupported(
                    &format!("input[{i}].content[{j}]"),
                    "Files and images by `file_id` are not supported: send an image as `image_url`.",
                ))
            }
        });
    }
    if out
        .iter()
        .any(|p| matches!(p, ContentPart::ImageUrl { .. }))
    {
        return Ok(MessageContent::Parts(out));
    }
    let texts: Vec<String> = out
        .into_iter()
        .filter_map(|p| match p {
            ContentPart::Text { text } => Some(text),
            _ => None,
        })
        .collect();
    Ok(MessageContent::Text(texts.join("\n")))
}

/// One input item as chat messages: function calls join the assistant turn
/// before them, their outputs become tool messages, reasoning is not shown
/// to the model again.
fn push_item(i: usize, item: &InputItem, out: &mut Vec<ChatMessage>) -> ApiResult<()> {
    match item {
        InputItem::Message(m) => {
            let role = match m.role {
                ItemRole::User => Role::User,
                ItemRole::Assistant => Role::Assistant,
                ItemRole::System => Role::System,
                ItemRole::Developer => Role::Developer,
            };
            out.push(ChatMessage {
                content: Some(content_text(i, &m.content)?),
                ..ChatMessage::text(role, "")
            });
        }
        InputItem::FunctionCall(c) => {
            let call = ToolCall {
                id: c.call_id.clone(),
                kind: ToolKind::Function,
                function: FunctionCall {
                    name: c.name.clone(),
                    arguments: c.arguments.clone(),
                },
            };
            match out.last_mut() {
                Some(m) if m.role == Role::Assistant => {
                    m.tool_calls.get_or_insert_with(Vec::new).push(call)
                }
                _ => out.push(ChatMessage {
                    role: Role::Assistant,
                    content: None,
                    name: None,
                    tool_calls: Some(vec![call]),
                    tool_call_id: None,
                }),
            }
        }
        InputItem::FunctionCallOutput(o) => out.push(ChatMessage {
            tool_call_id: Some(o.call_id.clone()),
            ..ChatMessage::text(Role::Tool, content_text(i, &o.output)?.text())
        }),
        InputItem::Reasoning(_) => {}
    }
    Ok(())
}

/// The function tools, as chat tools; other kinds are left out (logged):
/// they are services of OpenAI's, or of the agent itself.
fn functions(tools: &[ResponseTool]) -> Option<Vec<ToolDefinition>> {
    let mut out = Vec::new();
    for t in tools {
        match t {
            ResponseTool::Function(f) => out.push(ToolDefinition {
                kind: ToolKind::Function,
                function: FunctionDefinition {
                    name: f.name.clone(),
                    description: f.description.clone(),
                    parameters: f.parameters.clone(),
                    strict: f.strict,
                },
            }),
            ResponseTool::Other(v) => {
                let kind = v.get("type").and_then(Value::as_str).unwrap_or("unknown");
                tracing::debug!(kind, "a tool this server cannot run is left out");
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

fn tool_choice(c: ResponseToolChoice) -> ToolChoice {
    match c {
        ResponseToolChoice::Mode(mode) => ToolChoice::Mode(mode),
        ResponseToolChoice::Function { kind, name } => ToolChoice::Named(NamedToolChoice {
            kind,
            function: NamedFunction { name },
        }),
    }
}

fn response_format(format: &TextFormat) -> Option<ResponseFormat> {
    match format.clone() {
        TextFormat::Text => None,
        TextFormat::JsonObject => Some(ResponseFormat::JsonObject),
        TextFormat::JsonSchema {
            name,
            description,
            schema,
            strict,
        } => Some(ResponseFormat::JsonSchema {
            json_schema: JsonSchemaFormat {
                name,
                description,
                schema: Some(schema),
                strict,
            },
        }),
    }
}

fn usage(u: Usage) -> ResponseUsage {
    ResponseUsage {
        input_tokens: u.prompt_tokens,
        input_tokens_details: InputTokensDetails {
            cached_tokens: u.prompt_tokens_details.map_or(0, |d| d.cached_tokens),
        },
        output_tokens: u.completion_tokens,
        output_tokens_details: OutputTokensDetails {
            reasoning_tokens: u
                .completion_tokens_details
                .map_or(0, |d| d.reasoning_tokens),
        },
        total_tokens: u.total_tokens,
    }
}

/// The finished response: `head` with the completion's output and usage.
pub fn finished(mut head: ResponseObject, completion: &ChatCompletion) -> ResponseObject {
    let choice = completion.choices.first();
    let message = choice.map(|c| &c.message);
    let id = head.id.clone();
    let mut output = Vec::new();
    if let Some(text) = message
        .and_then(|m| m.reasoning_content.clone())
        .filter(|t| !t.is_empty())
    {
        output.push(OutputItem::Reasoning {
            id: item_id(&id, "rs", 0),
            summary: Vec::new(),
            content: vec![ReasoningText::ReasoningText { text }],
        });
    }
    if let Some(text) = message
        .and_then(|m| m.content.clone())
        .filter(|t| !t.is_empty())
    {
        output.push(OutputItem::Message {
            id: item_id(&id, "msg", 0),
            status: "completed".into(),
            role: "assistant".into(),
            content: vec![OutputContent::OutputText {
                text,
                annotations: Vec::new(),
                logprobs: Vec::new(),
            }],
        });
    }
    for (n, call) in message
        .and_then(|m| m.tool_calls.clone())
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        output.push(OutputItem::FunctionCall {
            id: item_id(&id, "fc", n),
            call_id: call.id,
            name: call.function.name,
            arguments: call.function.arguments,
            status: "completed".into(),
        });
    }
    let cut = choice.and_then(|c| c.finish_reason.as_deref()) == Some("length");
    head.status = if cut { "incomplete" } else { "completed" }.into();
    head.incomplete_details = cut.then(|| IncompleteDetails {
        reason: "max_output_tokens".into(),
    });
    head.model = completion.model.clone();
    head.output = output;
    head.usage = completion.usage.map(usage);
    head
}

/// The chat after this response: the conversation, then the answer (its
/// text and calls; thinking is not shown to the model again).
pub fn continued(
    mut conversation: Vec<ChatMessage>,
    completion: &ChatCompletion,
) -> Vec<ChatMessage> {
    if let Some(m) = completion.choices.first().map(|c| &c.message) {
        let calls = m.tool_calls.clone().filter(|c| !c.is_empty());
        let text = m.content.clone().filter(|t| !t.is_empty());
        if text.is_some() || calls.is_some() {
            conversation.push(ChatMessage {
                tool_calls: calls,
                ..ChatMessage::text(Role::Assistant, text.unwrap_or_default())
            });
        }
    }
    conversation
}

/// The item open in a streamed response.
#[derive(PartialEq)]
enum Open {
    None,
    Reasoning,
    Text,
    /// The tool call with this index in the chat's deltas.
    Call(u32),
}

/// Turns chat chunks into the Responses stream's events, one output item
/// at a time, numbering every event.
pub struct Events {
    id: String,
    seq: u64,
    open: Open,
    /// The open item's place in `output`.
    index: usize,
    /// How many function calls have started.
    calls: usize,
    text: String,
    call: (String, String, String),
    pub out: Vec<Event>,
}

impl Events {
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_string(),
            seq: 0,
            open: Open::None,
            index: 0,
            calls: 0,
            text: String::new(),
            call: Default::default(),
            out: Vec::new(),
        }
    }

    pub fn emit(&mut self, kind: &str, mut data: Value) {
        if let Some(map) = data.as_object_mut() {
            map.insert("type".into(), json!(kind));
            map.insert("sequence_number".into(), json!(self.seq));
        }
        self.seq += 1;
        self.out
            .push(Event::default().event(kind).data(data.to_string()));
    }

    fn item_id(&self) -> String {
        match self.open {
            Open::Reasoning => item_id(&self.id, "rs", 0),
            Open::Text => item_id(&self.id, "msg", 0),
            Open::Call(_) => item_id(&self.id, "fc", self.calls - 1),
            Open::None => String::new(),
        }
    }

    fn close(&mut self) {
        let (id, index) = (self.item_id(), self.index);
        let text = std::mem::take(&mut self.text);
        let item = match self.open {
            Open::None => return,
            Open::Reasoning => {
                let at = json!({"item_id": id, "output_index": index, "content_index": 0});
                self.emit(
                    "response.reasoning_text.done",
                    merge(&at, json!({"text": text})),
                );
                json!({"type": "reasoning", "id": id, "summary": [],
                       "content": [{"type": "reasoning_text", "text": text}]})
            }
            Open::Text => {
                let at = json!({"item_id": id, "output_index": index, "content_index": 0});
                let part =
                    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []});
                self.emit(
                    "response.output_text.done",
                    merge(&at, json!({"text": text, "logprobs": []})),
                );
                self.emit(
                    "response.content_part.done",
                    merge(&at, json!({"part": part})),
                );
                json!({"type": "message", "id": id, "status": "completed", "role": "assistant",
                       "content": [part]})
            }
            Open::Call(_) => {
                let (call_id, name, args) = std::mem::take(&mut self.call);
                self.emit(
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": index, "name": name, "arguments": args}),
                );
                json!({"type": "function_call", "id": id, "call_id": call_id, "name": name,
                       "arguments": args, "status": "completed"})
            }
        };
        self.emit(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
        self.open = Open::None;
        self.index += 1;
    }

    fn start(&mut self, open: Open, call: Option<(String, String)>) {
        self.close();
        if let Open::Call(_) = open {
            self.calls += 1;
        }
        self.open = open;
        let (id, index) = (self.item_id(), self.index);
        let item = match self.open {
            Open::Reasoning => json!({"type": "reasoning", "id": id, "summary": [], "content": []}),
            Open::Text => json!({"type": "message", "id": id, "status": "in_progress",
                                 "role": "assistant", "content": []}),
            _ => {
                let (call_id, name) = call.unwrap_or_default();
                self.call = (call_id.clone(), name.clone(), String::new());
                json!({"type": "function_call", "id": id, "call_id": call_id, "name": name,
                       "arguments": "", "status": "in_progress"})
            }
        };
        self.emit(
            "response.output_item.added",
            json!({"output_index": index, "item": item}),
        );
        if self.open == Open::Text {
            let part =
                json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []});
            self.emit(
                "response.content_part.added",
                json!({"item_id": id, "output_index": index, "content_index": 0, "part": part}),
            );
        }
    }

    pub fn push(&mut self, chunk: &ChatCompletionChunk) {
        let Some(choice) = chunk.choices.iter().find(|c| c.index == 0) else {
            return;
        };
        let d = &choice.delta;
        if let Some(t) = d.reasoning_content.as_deref().filter(|t| !t.is_empty()) {
            if self.open != Open::Reasoning {
                self.start(Open::Reasoning, None);
            }
            self.text.push_str(t);
            let at =
                json!({"item_id": self.item_id(), "output_index": self.index, "content_index": 0});
            self.emit(
                "response.reasoning_text.delta",
                merge(&at, json!({"delta": t})),
            );
        }
        if let Some(t) = d.content.as_deref().filter(|t| !t.is_empty()) {
            if self.open != Open::Text {
                self.start(Open::Text, None);
            }
            self.text.push_str(t);
            let at =
                json!({"item_id": self.item_id(), "output_index": self.index, "content_index": 0});
            self.emit(
                "response.output_text.delta",
                merge(&at, json!({"delta": t, "logprobs": []})),
            );
        }
        for call in d.tool_calls.iter().flatten() {
            let f = call.function.clone().unwrap_or_default();
            if self.open != Open::Call(call.index) {
                let started = (
                    call.id.clone().unwrap_or_default(),
                    f.name.unwrap_or_default(),
                );
                self.start(Open::Call(call.index), Some(started));
            }
            if let Some(args) = f.arguments.filter(|a| !a.is_empty()) {
                self.call.2.push_str(&args);
                let data =
                    json!({"item_id": self.item_id(), "output_index": self.index, "delta": args});
                self.emit("response.function_call_arguments.delta", data);
            }
        }
    }

    /// Closes the open item; the final response event comes after.
    pub fn end(&mut self) {
        self.close();
    }
}

/// `base` with `extra`'s fields added.
fn merge(base: &Value, extra: Value) -> Value {
    let mut out = base.clone();
    if let (Some(o), Value::Object(e)) = (out.as_object_mut(), extra) {
        o.extend(e);
    }
    out
}

/// Run when a stream has finished, before its last event: stores it.
pub type OnDone = Box<dyn FnOnce(ResponseObject, ChatCompletion) -> BoxFuture<'static, ()> + Send>;

/// `response.created`, `response.in_progress`, each item's events, then
/// `response.completed` (or `response.incomplete`) with the whole response;
/// an error mid-stream is `response.failed`.
pub fn stream(head: ResponseObject, mut chunks: ChatStream, on_done: OnDone) -> Response {
    let events = async_stream::stream! {
        let mut events = Events::new(&head.id);
        let mut acc = ChatAccumulator::default();
        events.emit("response.created", json!({"response": head}));
        events.emit("response.in_progress", json!({"response": head}));
        for e in events.out.drain(..) {
            yield Ok::<_, Infallible>(e);
        }
        while let Some(item) = chunks.next().await {
            let chunk = match item {
                Ok(c) if c.comment.is_some() => continue,
                Ok(c) => c,
                Err(e) => {
                    let mut failed = head.clone();
                    failed.status = "failed".into();
                    failed.error = Some(ResponseError {
                        code: e.code.map_or_else(
                            || "server_error".into(),
                            |c| json!(c).as_str().unwrap_or("server_error").to_string(),
                        ),
                        message: e.message.clone(),
                    });
                    events.emit("response.failed", json!({"response": failed}));
                    for e in events.out.drain(..) {
                        yield Ok(e);
                    }
                    return;
                }
            };
            acc.push(&chunk);
            events.push(&chunk);
            for e in events.out.drain(..) {
                yield Ok(e);
            }
        }
        events.end();
        let completion = acc.finish();
        let done = finished(head, &completion);
        on_done(done.clone(), completion).await;
        let kind = if done.status == "incomplete" { "response.incomplete" } else { "response.completed" };
        events.emit(kind, json!({"response": done}));
        for e in events.out.drain(..) {
            yield Ok(e);
        }
    };
    sse_response(events)
}

fn sse_response(
    events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static,
) -> Response {
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrite_openapi::responses::{FunctionCallItem, FunctionCallOutputItem, InputMessage};

    fn request(input: Vec<InputItem>) -> ResponseRequest {
        ResponseRequest {
            input: Some(ResponseInput::Items(input)),
            instructions: Some("Be brief.".into()),
            ..ResponseRequest::default()
        }
    }

    #[test]
    fn a_function_call_round_trip_becomes_chat_messages() {
        let items = vec![
            InputItem::Message(InputMessage {
                kind: "message".into(),
                id: None,
                role: ItemRole::User,
                content: ItemContent::Text("Weather in Paris?".into()),
                status: None,
            }),
            InputItem::FunctionCall(FunctionCallItem {
                kind: "function_call".into(),
                id: None,
                call_id: "call_1".into(),
                name: "weather".into(),
                arguments: r#"{"city":"Paris"}"#.into(),
                status: None,
            }),
            InputItem::FunctionCallOutput(FunctionCallOutputItem {
                kind: "function_call_output".into(),
                id: None,
                call_id: "call_1".into(),
                output: ItemContent::Text("18C".into()),
                status: None,
            }),
        ];
        let earlier = vec![ChatMessage::text(Role::User, "Hi")];
        let p = prepare("resp_abc", request(items), earlier).unwrap();
        let roles: Vec<Role> = p.chat.messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [
                Role::System,
                Role::User,
                Role::User,
                Role::Assistant,
                Role::Tool
            ]
        );
        assert_eq!(
            p.chat.messages[3].tool_calls.as_ref().unwrap()[0].id,
            "call_1"
        );
        assert_eq!(p.chat.messages[4].tool_call_id.as_deref(), Some("call_1"));
        // The instructions are this response's only; the items get ids.
        assert_eq!(p.conversation.len(), 4);
        assert_eq!(p.items[2].id(), Some("in_abc_2"));
    }

    #[test]
    fn background_and_files_are_refused_by_name() {
        let mut r = request(Vec::new());
        r.background = Some(true);
        assert_eq!(
            prepare("resp_a", r, Vec::new())
                .unwrap_err()
                .param
                .as_deref(),
            Some("background")
        );
        let message = |part| {
            InputItem::Message(InputMessage {
                kind: "message".into(),
                id: None,
                role: ItemRole::User,
                content: ItemContent::Parts(vec![part]),
                status: None,
            })
        };
        let file = message(ItemPart::InputFile {
            file_id: Some("file-1".into()),
            filename: None,
        });
        let err = prepare("resp_a", request(vec![file]), Vec::new()).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("input[0].content[0]"));
        // An image by URL becomes a Chat Completions image part.
        let image = message(ItemPart::InputImage {
            image_url: Some("data:image/png;base64,AAAA".into()),
            file_id: None,
        });
        let prepared = prepare("resp_a", request(vec![image]), Vec::new()).unwrap();
        let has_image = |m: &ChatMessage| {
            matches!(&m.content, Some(MessageContent::Parts(p))
                if matches!(p[0], ContentPart::ImageUrl { .. }))
        };
        assert!(prepared.chat.messages.iter().any(has_image));
    }
}
