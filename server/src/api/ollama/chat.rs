//! `POST /api/chat` and `POST /api/generate`: Ollama's requests become chat
//! requests on the one road (auth, budgets, memory, cache, thinking and
//! routers apply); the answer comes back as NDJSON objects, or one object
//! with `stream: false`. A request with no messages (no prompt) loads the
//! model, or with `keep_alive: 0` unloads it, as Ollama does.

use std::time::Instant;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferrite_openapi::chat::{
    ChatMessage, ChatRequest, ContentPart, FunctionCall, JsonSchemaFormat, MessageContent,
    ResponseFormat, Role, ToolCall as OpenAiToolCall, ToolDefinition, ToolKind,
};
use ferrite_openapi::common::StopSequences;
use ferrite_openapi::models::ModelKind;
use ferrite_openapi::ollama::{
    self as wire, ChatResponse, Common, GenerateResponse, Message, OllamaError, OllamaErrors, Think,
};
use ferrite_openapi::thinking::ReasoningEffort;
use ferrite_openapi::{ApiError, ApiResult};
use futures::StreamExt;
use serde_json::Value;

use super::answer::{self, Clock, Piece};
use super::keep::Keep;
use super::names;
use crate::chat::generate::generate;
use crate::http::accept;
use crate::http::extract::{AnyJson, Caller};
use crate::http::headers::append_headers;
use crate::registry::{Manage, Origin, MANAGE_MODELS};
use crate::state::AppState;

fn role(i: usize, role: &str) -> ApiResult<Role> {
    Ok(match role {
        "system" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "tool" => Role::Tool,
        other => {
            return Err(ApiError::invalid(
                &format!("messages[{i}].role"),
                format!("Unknown role `{other}`: use system, user, assistant or tool."),
            ))
        }
    })
}

/// A base64 image as a data URL the image checks read (they go by the
/// bytes, not the declared type).
fn image_part(b64: &str) -> ContentPart {
    let b64 = b64.trim();
    // Ollama's clients send bare base64; some send a data URL already.
    let url = match b64.starts_with("data:") {
        true => b64.to_string(),
        false => format!("data:image/*;base64,{b64}"),
    };
    ContentPart::ImageUrl {
        image_url: serde_json::json!({ "url": url }),
    }
}

fn content(text: String, images: Option<Vec<String>>) -> MessageContent {
    match images.filter(|i| !i.is_empty()) {
        None => MessageContent::Text(text),
        // Text first, as LM Studio's SDK orders a message's parts.
        Some(images) => MessageContent::Parts(
            std::iter::once(ContentPart::Text { text })
                .chain(images.iter().map(|i| image_part(i)))
                .collect(),
        ),
    }
}

/// Ollama's messages as chat messages: tool calls get ids, and a tool's
/// result answers the latest call of that tool.
fn messages(input: Vec<Message>) -> ApiResult<Vec<ChatMessage>> {
    let mut out = Vec::with_capacity(input.len());
    let mut calls: Vec<(String, String)> = Vec::new();
    for (i, m) in input.into_iter().enumerate() {
        let role = role(i, &m.role)?;
        let mut message = ChatMessage::text(role, String::new());
        message.content = Some(content(m.content, m.images));
        if let Some(tool_calls) = m.tool_calls.filter(|c| !c.is_empty()) {
            let converted = tool_calls
                .into_iter()
                .map(|c| {
                    let id = format!("call_{}", calls.len());
                    calls.push((c.function.name.clone(), id.clone()));
                    OpenAiToolCall {
                        id,
                        kind: ToolKind::Function,
                        function: FunctionCall {
                            name: c.function.name,
                            arguments: match c.function.arguments {
                                Value::String(s) => s,
                                v => v.to_string(),
                            },
                        },
                    }
                })
                .collect();
            message.tool_calls = Some(converted);
        }
        if role == Role::Tool {
            let named = m.tool_name.as_deref();
            message.tool_call_id = calls
                .iter()
                .rev()
                .find(|(name, _)| named.is_none_or(|n| n == name))
                .map(|(_, id)| id.clone())
                .or_else(|| Some(format!("call_{i}")));
            message.name = m.tool_name;
        }
        out.push(message);
    }
    Ok(out)
}

fn tools(tools: Option<Vec<Value>>) -> ApiResult<Option<Vec<ToolDefinition>>> {
    tools
        .filter(|t| !t.is_empty())
        .map(|tools| {
            tools
                .into_iter()
                .enumerate()
                .map(|(i, t)| {
                    serde_json::from_value(t).map_err(|e| {
                        ApiError::invalid(
                            &format!("tools[{i}]"),
                            format!("Not a function tool: {e}"),
                        )
                    })
                })
                .collect()
        })
        .transpose()
}

fn format(format: Option<Value>) -> ApiResult<Option<ResponseFormat>> {
    Ok(match format {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) if s == "json" => Some(ResponseFormat::JsonObject),
        Some(schema @ Value::Object(_)) => Some(ResponseFormat::JsonSchema {
            json_schema: JsonSchemaFormat {
                name: "format".into(),
                description: None,
                schema: Some(schema),
                strict: Some(true),
            },
        }),
        Some(other) => {
            return Err(ApiError::invalid(
                "format",
                format!("`format` is \"json\" or a JSON schema, not {other}."),
            ))
        }
    })
}

fn effort(think: Option<Think>) -> ApiResult<Option<ReasoningEffort>> {
    Ok(match think {
        None | Some(Think::On(true)) => None,
        Some(Think::On(false)) => Some(ReasoningEffort::None),
        Some(Think::Level(level)) => Some(match level.as_str() {
            "low" => ReasoningEffort::Low,
            "medium" => ReasoningEffort::Medium,
            "high" => ReasoningEffort::High,
            other => {
                return Err(ApiError::invalid(
                    "think",
                    format!(
                        "Unknown thinking level `{other}`: use true, false, low, medium or high."
                    ),
                ))
            }
        }),
    })
}

/// The chat request an Ollama request means, for the model `model`.
fn chat_request(
    common: Common,
    model: String,
    messages: Vec<ChatMessage>,
    tools: Option<Vec<ToolDefinition>>,
    keep: &Keep,
) -> ApiResult<ChatRequest> {
    let o = common.options.unwrap_or_default();
    Ok(ChatRequest {
        model: Some(model),
        continue_final_message: ferrite_openapi::chat::prefill(&messages),
        messages,
        temperature: o.temperature,
        top_p: o.top_p,
        top_k: o.top_k,
        min_p: o.min_p,
        // -1 and -2 (fill the context) both mean until the model stops.
        max_tokens: o.num_predict.filter(|&n| n >= 0),
        stop: o.stop.filter(|s| !s.is_empty()).map(StopSequences::Many),
        seed: o.seed,
        repeat_penalty: o.repeat_penalty,
        presence_penalty: o.presence_penalty,
        frequency_penalty: o.frequency_penalty,
        context_length: o.num_ctx,
        logprobs: common.logprobs,
        top_logprobs: common
            .top_logprobs
            .filter(|_| common.logprobs == Some(true)),
        tools,
        response_format: format(common.format)?,
        reasoning_effort: effort(common.think)?,
        ttl: keep.ttl,
        // The pipeline streams; the handler folds when the client said not to.
        stream: Some(true),
        ..ChatRequest::default()
    })
}

/// How one request's answer is shaped: chat objects or generate objects.
#[derive(Clone)]
enum Shape {
    Chat(String),
    Generate(String),
}

impl Shape {
    fn piece(&self, piece: Piece) -> Value {
        let (content, thinking, tools, logprobs, stats) = match piece {
            Piece::Text {
                content,
                thinking,
                logprobs,
            } => (content, thinking, None, logprobs, None),
            Piece::Tools(calls) => (String::new(), None, Some(calls), None, None),
            Piece::Done(done) => (String::new(), None, None, None, Some(done)),
        };
        self.object(content, thinking, tools, logprobs, stats)
    }

    fn object(
        &self,
        content: String,
        thinking: Option<String>,
        tool_calls: Option<Vec<wire::ToolCall>>,
        logprobs: Option<Vec<wire::Logprob>>,
        stats: Option<wire::Done>,
    ) -> Value {
        let done = stats.is_some();
        let value = match self {
            Self::Chat(model) => serde_json::to_value(ChatResponse {
                model: model.clone(),
                created_at: answer::now(),
                message: Message {
                    role: "assistant".into(),
                    content,
                    thinking,
                    tool_calls,
                    ..Message::default()
                },
                done,
                stats,
                logprobs,
            }),
            Self::Generate(model) => serde_json::to_value(GenerateResponse {
                model: model.clone(),
                created_at: answer::now(),
                response: content,
                thinking,
                done,
                stats,
                logprobs,
            }),
        };
        value.unwrap_or_default()
    }
}

/// Runs a request: loads (timing it), answers, unloads if asked.
async fn answer(
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    shape: Shape,
    request: ChatRequest,
    keep: Keep,
    streaming: bool,
) -> ApiResult<Response> {
    let started = Instant::now();
    state.ready()?;
    let name = request.model.as_deref();
    // Load first (not a router), so that `load_duration` is the load's.
    let lease = match state.experts.get(name) {
        Some(_) => None,
        None => {
            let registry = &state.registry;
            let mut adapters = registry.adapters(name, None);
            let spec = registry
                .resolve_for(name, ModelKind::Llm)
                .await?
                .serving(&mut adapters)?;
            let manage = Manage::from_grant(caller.0.holds(MANAGE_MODELS));
            let origin = Origin::Request { ttl: keep.ttl };
            Some(
                registry
                    .acquire_with(spec, origin, request.context_length, manage)
                    .await?,
            )
        }
    };
    let clock = Clock {
        started,
        loaded: Instant::now(),
    };
    let id = lease.as_ref().map(|l| l.id().to_string());
    if request.messages.is_empty() {
        drop(lease);
        let why = match (keep.unload, &id) {
            (true, Some(id)) => {
                state.registry.unload(id).await?;
                "unload"
            }
            _ => "load",
        };
        let done = shape.object(
            String::new(),
            None,
            None,
            None,
            Some(clock.done(why, None, None)),
        );
        return Ok(Json(done).into_response());
    }
    let request = accept::accept(&state, caller, &headers, request)?;
    let (headers, chunks) = generate(&state, request).await?.into_parts();
    let chunks = crate::chat::stream::peek(chunks).await?;
    let pieces = answer::pieces(chunks, clock);
    // Dropped when the answer is out or its client has left.
    let unload = keep.unload_after(&state.registry, id);
    drop(lease);
    let mut response = if streaming {
        let shape = shape.clone();
        answer::ndjson(pieces.map(move |p| {
            let _ = &unload;
            p.map(|p| shape.piece(p))
        }))
    } else {
        let whole = answer::whole(pieces).await?;
        drop(unload);
        let tools = whole.tools;
        Json(shape.object(
            whole.content,
            whole.thinking,
            tools,
            whole.logprobs,
            Some(whole.done),
        ))
        .into_response()
    };
    append_headers(&mut response, headers);
    Ok(response)
}

/// The ferrite name an Ollama name stands for.
async fn resolve(state: &AppState, name: &str) -> ApiResult<String> {
    if name.trim().is_empty() {
        return Err(ApiError::invalid(
            "model",
            "Name the model: `model` is required.",
        ));
    }
    if state.experts.get(Some(name)).is_some() {
        return Ok(name.to_string());
    }
    Ok(names::lookup(&state.registry, name).await)
}

/// Chats with a model; NDJSON objects unless `stream: false`.
#[utoipa::path(post, path = "/api/chat", operation_id = "ollamaChat", tag = "ollama",
    request_body = wire::ChatRequest,
    responses(
        (status = 200, description = "The answer, or (streaming) one object per line, the last with `done: true`.",
            content((ChatResponse = "application/json"), (ChatResponse = "application/x-ndjson"))),
        OllamaErrors,
    ))]
pub async fn chat(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<AnyJson<wire::ChatRequest>, ApiError>,
) -> Result<Response, OllamaError> {
    let AnyJson(mut request) = body?;
    let common = request.common();
    let asked = common.model.clone();
    let name = resolve(&state, &asked).await?;
    let keep = Keep::of(common.keep_alive.as_ref(), &caller)?;
    let streaming = common.stream != Some(false);
    let tools = tools(request.tools)?;
    let messages = messages(request.messages)?;
    let mut chat = chat_request(common, name, messages, tools, &keep)?;
    chat.tool_choice = request.tool_choice;
    let shape = Shape::Chat(asked);
    Ok(answer(state, caller, headers, shape, chat, keep, streaming).await?)
}

/// Completes a prompt (with the model's chat template; `raw` is refused);
/// NDJSON objects unless `stream: false`.
#[utoipa::path(post, path = "/api/generate", operation_id = "ollamaGenerate", tag = "ollama",
    request_body = wire::GenerateRequest,
    responses(
        (status = 200, description = "The answer, or (streaming) one object per line, the last with `done: true`.",
            content((GenerateResponse = "application/json"), (GenerateResponse = "application/x-ndjson"))),
        OllamaErrors,
    ))]
pub async fn generate_route(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<AnyJson<wire::GenerateRequest>, ApiError>,
) -> Result<Response, OllamaError> {
    let AnyJson(mut request) = body?;
    if request.raw == Some(true) {
        return Err(ApiError::unsupported("raw", "`raw` prompts are not supported: send the prompt without `raw` (the model's chat template applies), or use /v1/completions.").into());
    }
    if request.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::unsupported(
            "suffix",
            "Fill-in-the-middle (`suffix`) is not supported.",
        )
        .into());
    }
    let common = request.common();
    let asked = common.model.clone();
    let name = resolve(&state, &asked).await?;
    let keep = Keep::of(common.keep_alive.as_ref(), &caller)?;
    let streaming = common.stream != Some(false);
    let mut messages = Vec::new();
    let prompt = request.prompt.unwrap_or_default();
    if !prompt.is_empty() || request.images.as_ref().is_some_and(|i| !i.is_empty()) {
        if let Some(system) = request.system.filter(|s| !s.is_empty()) {
            messages.push(ChatMessage::text(Role::System, system));
        }
        let mut user = ChatMessage::text(Role::User, String::new());
        user.content = Some(content(prompt, request.images));
        messages.push(user);
    }
    let chat = chat_request(common, name, messages, None, &keep)?;
    let shape = Shape::Generate(asked);
    Ok(answer(state, caller, headers, shape, chat, keep, streaming).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_results_answer_the_latest_call_of_their_tool() {
        let call = |name: &str| wire::ToolCall {
            function: wire::ToolCallFunction {
                name: name.into(),
                arguments: serde_json::json!({"city": "Paris"}),
            },
        };
        let input = vec![
            Message {
                role: "user".into(),
                content: "Weather?".into(),
                ..Message::default()
            },
            Message {
                role: "assistant".into(),
                tool_calls: Some(vec![call("time"), call("weather")]),
                ..Message::default()
            },
            Message {
                role: "tool".into(),
                content: "sunny".into(),
                tool_name: Some("weather".into()),
                ..Message::default()
            },
        ];
        let out = messages(input).unwrap();
        let calls = out[1].tool_calls.as_ref().unwrap();
        assert_eq!(calls[1].function.arguments, r#"{"city":"Paris"}"#);
        assert_eq!(out[2].tool_call_id.as_deref(), Some(calls[1].id.as_str()));
        assert!(role(0, "robot").is_err());
    }

    #[test]
    fn format_takes_json_or_a_schema() {
        assert_eq!(
            format(Some("json".into())).unwrap(),
            Some(ResponseFormat::JsonObject)
        );
        assert!(matches!(
            format(Some(serde_json::json!({"type": "object"}))).unwrap(),
            Some(ResponseFormat::JsonSchema { .. })
        ));
        assert!(format(Some(serde_json::json!(3))).is_err());
        assert_eq!(format(Some("".into())).unwrap(), None);
    }
}
