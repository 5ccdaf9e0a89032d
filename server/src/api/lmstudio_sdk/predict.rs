//! `llm.predict`: LM Studio's chat history and config stack become an
//! OpenAI chat request on the one road (`generate`), so memory, cache,
//! budgets, thinking and routers apply as on HTTP; its chunks go back as
//! `fragment`s, tool calls as `toolCallGeneration*` events, and the end as
//! `success` with `stats`. `.complete()` (the completion-mode template
//! layer) takes the text completion road.

use std::collections::BTreeMap;
use std::time::Instant;

use ferrite_openapi::chat::{ChatCompletionChunk, ChatRequest, ToolCallDelta};
use ferrite_openapi::common::Usage;
use ferrite_openapi::completions::{Completion, CompletionRequest};
use ferrite_openapi::lmstudio_sdk::{
    stop_reason, ChatHistory, ChatMessageData, Fragment, KvConfigStack, MessagePart,
    ModelSpecifier, PredictParameter, PredictionStats, PromptProcessingDetails, SdkError,
    SpecifierParameter, TemplateParameter,
};
use ferrite_openapi::models::ModelKind;
use ferrite_openapi::{ApiError, ApiResult};
use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::{json, Map, Value};

use crate::api::lmstudio_sdk::session::{Channel, Session};
use crate::api::lmstudio_sdk::{error, models};
use crate::chat::generate::{self, Valid};
use crate::http::accept;
use crate::http::extract::Caller;

/// The layer the Python SDK adds for `.complete()`: raw text in, no chat
/// template.
const COMPLETION_LAYER: &str = "completeModeFormatting";

/// LM Studio's history as OpenAI messages, once its size is within the
/// server's limits; prepared images (`files`) become image parts.
fn messages(history: &ChatHistory, session: &Session) -> ApiResult<Vec<Value>> {
    let limits = &session.state.config.limits;
    limits.check_shape(&history.shape(), &ChatHistory::NAMES)?;
    let mut out = Vec::new();
    let text = |turn: usize, parts: &[MessagePart]| -> ApiResult<Value> {
        let mut texts = Vec::new();
        let mut all = Vec::new();
        let mut images = false;
        for part in parts {
            match part {
                MessagePart::Text { text: t } => {
                    texts.push(t.as_str());
                    all.push(json!({"type": "text", "text": t}));
                }
                MessagePart::File { identifier, .. } => {
                    let param = format!("history.messages[{turn}].content");
                    let url = session.state.sdk_files.image_url(
                        &session.caller.tenant,
                        identifier,
                        &param,
                    )?;
                    all.push(json!({"type": "image_url", "image_url": {"url": url}}));
                    images = true;
                }
                _ => {}
            }
        }
        Ok(if images {
            Value::Array(all)
        } else {
            json!(texts.join("\n"))
        })
    };
    for (turn, message) in history.messages.iter().enumerate() {
        match message {
            ChatMessageData::System { content } => {
                out.push(json!({"role": "system", "content": text(turn, content)?}));
            }
            ChatMessageData::User { content } => {
                out.push(json!({"role": "user", "content": text(turn, content)?}));
            }
            ChatMessageData::Assistant { content } => {
                let calls: Vec<Value> = content
                    .iter()
                    .filter_map(|p| match p {
                        MessagePart::ToolCallRequest { tool_call_request } => {
                            Some(tool_call_request)
                        }
                        _ => None,
                    })
                    .enumerate()
                    .map(|(i, call)| {
                        let arguments = call.arguments.clone().unwrap_or_else(|| json!({}));
                        json!({
                            "id": call.id.clone().unwrap_or_else(|| format!("call_{turn}_{i}")),
                            "type": "function",
                            "function": {"name": call.name, "arguments": arguments.to_string()},
                        })
                    })
                    .collect();
                let mut m = json!({"role": "assistant", "content": text(turn, content)?});
                if !calls.is_empty() {
                    m["tool_calls"] = Value::Array(calls);
                }
                out.push(m);
            }
            ChatMessageData::Tool { content } => {
                for (i, part) in content.iter().enumerate() {
                    if let MessagePart::ToolCallResult {
                        content,
                        tool_call_id,
                    } = part
                    {
                        let id = tool_call_id
                            .clone()
                            .unwrap_or_else(|| format!("call_{}_{i}", turn.saturating_sub(1)));
                        out.push(json!({"role": "tool", "tool_call_id": id, "content": content}));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// `{checked, value}` fields count only when checked.
fn checked(value: Option<&Value>) -> Option<&Value> {
    match value? {
        Value::Object(o) if o.contains_key("checked") => (o["checked"] == json!(true))
            .then(|| o.get("value"))
            .flatten(),
        v => Some(v),
    }
}

/// The prediction config in force as OpenAI request fields.
fn sampling(stack: &KvConfigStack, body: &mut Map<String, Value>) -> ApiResult<()> {
    let key = |k: &str| stack.get(&format!("llm.prediction.{k}"));
    let mut set = |name: &str, v: Option<&Value>| {
        if let Some(v) = v.filter(|v| !v.is_null()) {
            body.insert(name.into(), v.clone());
        }
    };
    set("temperature", key("temperature"));
    set("max_tokens", checked(key("maxPredictedTokens")));
    set("top_p", checked(key("topPSampling")));
    set("top_k", key("topKSampling"));
    set("min_p", checked(key("minPSampling")));
    set("repeat_penalty", checked(key("repeatPenalty")));
    set("seed", checked(key("seed")));
    if let Some(stop) = key("stopStrings").filter(|s| s.as_array().is_some_and(|a| !a.is_empty())) {
        body.insert("stop".into(), stop.clone());
    }
    if let Some(tools) = key("tools").filter(|t| t["type"] == "toolArray") {
        body.insert("tools".into(), tools["tools"].clone());
    }
    match key("structured").map(|s| (s["type"].as_str(), s)) {
        Some((Some("json"), s)) => {
            body.insert(
                "response_format".into(),
                json!({"type": "json_schema", "json_schema": {
                    "name": "response", "schema": s["jsonSchema"], "strict": true,
                }}),
            );
        }
        Some((Some("gbnf"), _)) => {
            return Err(ApiError::unsupported(
                "structured",
                "GBNF grammars are not supported; give a JSON schema.",
            ))
        }
        _ => {}
    }
    Ok(())
}

/// The model (or router) a prediction names, as a request's `model`.
async fn model_name(session: &Session, p: &PredictParameter) -> Result<String, SdkError> {
    let name = models::name_of(&p.model_specifier);
    if let Some(router) = session.state.experts.get(name) {
        return Ok(router.config.name.clone());
    }
    let spec = models::resolve(session, ModelKind::Llm, &p.model_specifier).await?;
    Ok(spec.id.clone())
}

/// What both roads' chunks say, one at a time.
#[derive(Default)]
struct Step {
    text: String,
    reasoning: String,
    calls: Vec<ToolCallDelta>,
    finish: Option<String>,
    usage: Option<Usage>,
    model: Option<String>,
}

fn chat_step(c: ChatCompletionChunk) -> Step {
    let mut step = Step {
        usage: c.usage,
        model: Some(c.model),
        ..Default::default()
    };
    for choice in c.choices.into_iter().filter(|c| c.index == 0) {
        step.text += choice.delta.content.as_deref().unwrap_or_default();
        step.reasoning += choice
            .delta
            .reasoning_content
            .as_deref()
            .unwrap_or_default();
        step.calls
            .extend(choice.delta.tool_calls.unwrap_or_default());
        step.finish = step.finish.or(choice.finish_reason);
    }
    step
}

fn completion_step(c: Completion) -> Step {
    let mut step = Step {
        usage: c.usage,
        model: Some(c.model),
        ..Default::default()
    };
    for choice in c.choices.into_iter().filter(|c| c.index == 0) {
        step.text += &choice.text;
        step.finish = step.finish.or(choice.finish_reason);
    }
    step
}

/// Starts the answer on the road the config asks for.
async fn start(
    session: &Session,
    p: &PredictParameter,
) -> Result<BoxStream<'static, ApiResult<Step>>, SdkError> {
    let model = model_name(session, p).await?;
    let state = &session.state;
    let completion = p
        .prediction_config_stack
        .layers
        .iter()
        .any(|l| l.layer_name == COMPLETION_LAYER);
    let answer = async {
        let mut body = Map::new();
        body.insert("model".into(), json!(model));
        body.insert("stream".into(), json!(true));
        body.insert("stream_options".into(), json!({"include_usage": true}));
        sampling(&p.prediction_config_stack, &mut body)?;
        if completion {
            let prompt: String = messages(&p.history, session)?
                .iter()
                .filter_map(|m| m["content"].as_str().map(String::from))
                .collect();
            body.insert("prompt".into(), json!(prompt));
            body.remove("tools");
            body.remove("response_format");
            let request: CompletionRequest = serde_json::from_value(Value::Object(body))
                .map_err(|e| ApiError::invalid("predictionConfigStack", e.to_string()))?;
            let request = Valid::new(request, &state.config.limits)?;
            let (_, chunks) = generate::complete(state, &session.caller, request).await?;
            return ApiResult::Ok(chunks.map(|c| c.map(completion_step)).boxed());
        }
        body.insert(
            "messages".into(),
            Value::Array(messages(&p.history, session)?),
        );
        let request: ChatRequest = serde_json::from_value(Value::Object(body))
            .map_err(|e| ApiError::invalid("predictionConfigStack", e.to_string()))?;
        let caller = Caller(session.caller.clone());
        let request = accept::accept(state, caller, &session.headers, request)?;
        let (_, chunks) = generate::generate(state, request).await?.into_parts();
        Ok(chunks
            // Load progress travels as comments: nothing for the SDK.
            .filter(|c| std::future::ready(!matches!(c, Ok(c) if c.comment.is_some())))
            .map(|c| c.map(chat_step))
            .boxed())
    };
    answer.await.map_err(error::from_api)
}

/// One tool call as it streams in.
#[derive(Default)]
struct Call {
    id: Option<String>,
    name: String,
    arguments: String,
}

pub async fn run(
    session: &Session,
    p: PredictParameter,
    channel: &Channel,
) -> Result<(), SdkError> {
    let started = Instant::now();
    let mut chunks = start(session, &p).await?;
    let progress = |progress: f64| {
        json!({"type": "promptProcessingProgress", "progress": progress,
        // Counted by the engine, but only reported with the answer.
        "details": PromptProcessingDetails {
            cached_token_count: 0, total_prompt_token_count: 0,
            processed_prompt_token_count: 0, unprocessed_prompt_token_count: 0,
        }})
    };
    channel.send(progress(0.0)).await;
    let (mut first, mut finish, mut usage, mut model) = (None, None, None, None);
    let mut calls: BTreeMap<u32, Call> = BTreeMap::new();
    let mut cancelled = false;
    loop {
        let step = tokio::select! {
            step = chunks.next() => step,
            () = channel.cancelled.cancelled() => { cancelled = true; None }
        };
        let Some(step) = step else { break };
        let step = step.map_err(error::from_api)?;
        model = step.model.or(model);
        usage = step.usage.or(usage);
        finish = step.finish.or(finish);
        for (text, reasoning) in [(step.reasoning, "reasoning"), (step.text, "none")] {
            if text.is_empty() {
                continue;
            }
            if first.is_none() {
                first = Some(Instant::now());
                channel.send(progress(1.0)).await;
            }
            let fragment = Fragment {
                content: text,
                tokens_count: 1,
                contains_drafted: false,
                reasoning_type: reasoning,
                is_structural: false,
            };
            channel
                .send(json!({"type": "fragment", "fragment": fragment}))
                .await;
        }
        for delta in step.calls {
            let (index, id) = (delta.index, delta.id);
            let f = delta.function.unwrap_or_default();
            let (name, arguments) = (f.name, f.arguments);
            if !calls.contains_key(&index) {
                let start = json!({"type": "toolCallGenerationStart", "toolCallId": id});
                channel.send(start).await;
            }
            let call = calls.entry(index).or_default();
            call.id = call.id.take().or(id);
            if let Some(name) = name.filter(|n| !n.is_empty()) {
                let named = json!({"type": "toolCallGenerationNameReceived", "name": name});
                channel.send(named).await;
                call.name += &name;
            }
            if let Some(arguments) = arguments.filter(|a| !a.is_empty()) {
                let fragment = json!({"type": "toolCallGenerationArgumentFragmentGenerated", "content": arguments});
                channel.send(fragment).await;
                call.arguments += &arguments;
            }
        }
    }
    drop(chunks);
    for call in calls.into_values() {
        let end = match serde_json::from_str::<Value>(&call.arguments) {
            Ok(arguments) if arguments.is_object() => json!({
                "type": "toolCallGenerationEnd",
                "toolCallRequest": {"type": "function", "id": call.id, "name": call.name, "arguments": arguments},
                "rawContent": call.arguments,
            }),
            _ => json!({
                "type": "toolCallGenerationFailed",
                "error": {"title": format!("The model's call of `{}` has arguments that are not a JSON object.", call.name)},
                "rawContent": call.arguments,
            }),
        };
        channel.send(end).await;
    }
    let now = Instant::now();
    let usage = usage.unwrap_or_default();
    let generating = first.map_or(0.0, |f| now.duration_since(f).as_secs_f64());
    let stats = PredictionStats {
        stop_reason: stop_reason(finish.as_deref(), cancelled),
        tokens_per_second: if generating > 0.0 {
            f64::from(usage.completion_tokens) / generating
        } else {
            0.0
        },
        time_to_first_token_sec: first.unwrap_or(now).duration_since(started).as_secs_f64(),
        total_time_sec: now.duration_since(started).as_secs_f64(),
        prompt_tokens_count: usage.prompt_tokens,
        predicted_tokens_count: usage.completion_tokens,
        total_tokens_count: usage.total_tokens,
    };
    let model_info = match model {
        Some(id) => {
            let p = SpecifierParameter {
                specifier: ModelSpecifier::InstanceReference {
                    instance_reference: id,
                },
                throw_if_not_found: false,
            };
            models::info(session, ModelKind::Llm, p)
                .await
                .unwrap_or(Value::Null)
        }
        None => Value::Null,
    };
    let load_config = json!({"fields": [{"key": "llm.load.contextLength",
        "value": model_info["contextLength"]}]});
    channel
        .send(json!({
            "type": "success",
            "stats": stats,
            "modelInfo": model_info,
            "loadModelConfig": load_config,
            "predictionConfig": p.prediction_config_stack.flatten(),
        }))
        .await;
    Ok(())
}

/// `applyPromptTemplate`: the prompt the model's chat template renders.
pub async fn apply_template(session: &Session, p: TemplateParameter) -> Result<Value, SdkError> {
    let spec = models::resolve(session, ModelKind::Llm, &p.specifier).await?;
    let prompt = async {
        let mut body = Map::new();
        body.insert("model".into(), json!(spec.id));
        body.insert(
            "messages".into(),
            Value::Array(messages(&p.history, session)?),
        );
        sampling(&p.prediction_config_stack, &mut body)?;
        let request: ChatRequest = serde_json::from_value(Value::Object(body))
            .map_err(|e| ApiError::invalid("history", e.to_string()))?;
        let request = Valid::new(request, &session.state.config.limits)?;
        let lease =
            generate::model(&session.state, Some(&spec.id), None, Some(ModelKind::Llm)).await?;
        lease.engine.render_prompt(request.get()).await
    }
    .await
    .map_err(error::from_api)?;
    Ok(json!({ "formatted": prompt }))
}
