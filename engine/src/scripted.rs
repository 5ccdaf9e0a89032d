//! A scripted [`Engine`] for unit tests of pipeline layers: it replays fixed
//! text as chunks and counts calls, without loading any model.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use ferrite_openapi::chat::{ChatCompletionChunk, ChatRequest, ChunkChoice, Delta};
use ferrite_openapi::common::Usage;
use ferrite_openapi::completions::CompletionRequest;
use ferrite_openapi::models::ModelMeta;
use ferrite_openapi::{ApiError, ApiResult};

use crate::backend::{ChatStream, CompletionStream, Engine, ModelInfo};

pub struct ScriptedEngine {
    info: ModelInfo,
    reply: String,
    calls: AtomicUsize,
    seen: Mutex<Vec<ChatRequest>>,
    /// Words seen by `encode`, by id.
    words: Mutex<Vec<String>>,
}

impl ScriptedEngine {
    /// An engine that answers every chat with `reply`, one word per chunk.
    pub fn new(reply: impl Into<String>) -> Self {
        Self {
            info: ModelInfo {
                id: "scripted".into(),
                created: 0,
                meta: ModelMeta {
                    kind: Default::default(),
                    runtime: "scripted".into(),
                    format: "scripted".into(),
                    path: String::new(),
                    architecture: None,
                    quantization: None,
                    context_length: 2048,
                    max_context_length: 2048,
                    size_bytes: 0,
                    device: Some("cpu".into()),
                    activation_dtype: Some("f32".into()),
                    isq: None,
                    paged_attention: false,
                    prefix_cache: false,
                    continuous_batching: false,
                    max_seqs: 1,
                    state: "loaded".into(),
                    chat_template: None,
                    vision: false,
                    mmproj: None,
                },
            },
            reply: reply.into(),
            calls: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
            words: Mutex::new(Vec::new()),
        }
    }

    pub fn with_context_length(mut self, tokens: u32) -> Self {
        self.info.meta.context_length = tokens;
        self
    }

    /// The prompts of the requests it received, as `render_prompt` renders them.
    pub fn prompts(&self) -> Vec<String> {
        self.seen().iter().map(render).collect()
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// The requests the engine received, after every layer above it ran.
    pub fn seen(&self) -> Vec<ChatRequest> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl Engine for ScriptedEngine {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    async fn chat(&self, request: ChatRequest) -> ApiResult<ChatStream> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(request);
        }
        let words: Vec<String> = self
            .reply
            .split_inclusive(' ')
            .map(str::to_string)
            .collect();
        let n = words.len() as u32;
        let chunk = |delta: Delta, finish: Option<&str>, usage: Option<Usage>| {
            Ok(ChatCompletionChunk {
                id: "chatcmpl-scripted".into(),
                object: "chat.completion.chunk".into(),
                created: 0,
                model: "scripted".into(),
                system_fingerprint: None,
                choices: if usage.is_some() {
                    vec![]
                } else {
                    vec![ChunkChoice {
                        index: 0,
                        delta,
                        logprobs: None,
                        finish_reason: finish.map(String::from),
                    }]
                },
                usage,
                ferrite: None,
                comment: None,
            })
        };
        let mut items = vec![];
        for w in words {
            items.push(chunk(
                Delta {
                    content: Some(w),
                    ..Delta::default()
                },
                None,
                None,
            ));
        }
        items.push(chunk(Delta::default(), Some("stop"), None));
        items.push(chunk(Delta::default(), None, Some(Usage::new(1, n))));
        Ok(Box::pin(futures::stream::iter(items)))
    }

    /// One token per whitespace-separated word.
    async fn count_tokens(&self, text: &str) -> ApiResult<usize> {
        Ok(text.split_whitespace().count())
    }

    /// The messages' text, one line each (no template).
    async fn render_prompt(&self, request: &ChatRequest) -> ApiResult<String> {
        Ok(render(request))
    }

    /// One id per whitespace-separated word.
    async fn encode(&self, text: &str, _special: bool) -> ApiResult<Vec<u32>> {
        let mut words = self
            .words
            .lock()
            .map_err(|_| ApiError::internal("poisoned"))?;
        Ok(text
            .split_whitespace()
            .map(|w| match words.iter().position(|x| x == w) {
                Some(i) => i as u32,
                None => {
                    words.push(w.to_string());
                    words.len() as u32 - 1
                }
            })
            .collect())
    }

    async fn decode(&self, tokens: &[u32]) -> ApiResult<String> {
        let words = self
            .words
            .lock()
            .map_err(|_| ApiError::internal("poisoned"))?;
        let text: Vec<&str> = tokens
            .iter()
            .filter_map(|&t| words.get(t as usize).map(String::as_str))
            .collect();
        Ok(text.join(" "))
    }

    async fn complete(&self, _request: CompletionRequest) -> ApiResult<CompletionStream> {
        Err(ApiError::unsupported(
            "prompt",
            "The scripted engine only chats.",
        ))
    }
}

fn render(request: &ChatRequest) -> String {
    request
        .messages
        .iter()
        .map(|m| match &m.content {
            Some(ferrite_openapi::chat::MessageContent::Text(t)) => format!("{t}\n"),
            _ => "\n".into(),
        })
        .collect()
}
