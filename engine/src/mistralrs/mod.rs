//! [`Engine`] on mistral.rs, through its low-level request channel: Hugging
//! Face safetensors folders with in-situ quantization, and GGUF files.

use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use async_trait::async_trait;
use either::Either;
use ferrite_openapi::chat::ChatRequest;
use ferrite_openapi::common::unix_now;
use ferrite_openapi::completions::{CompletionRequest, PromptInput};
use ferrite_openapi::{ApiError, ApiResult};
use indexmap::IndexMap;
use mistralrs::core::{DetokenizationRequest, TokenizationRequest, Tool, ToolChoice};
use mistralrs::{
    Constraint, CustomLogitsProcessor, MessageContent, MistralRs, NormalRequest, Request,
    RequestMessage, SamplingParams,
};
use tokio::sync::mpsc::channel;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub(crate) mod convert;
mod forward;
mod load;
mod logits;
mod logprobs;

use crate::adapters;
use crate::backend::{check_ids, ChatStream, CompletionStream, Engine, ModelInfo};
use crate::gauge::SequencePermit;
use crate::options::{Delimiters, EngineOptions};
use crate::pick::Pick;
use crate::prep::{self, Sampling, Tokenize};
use crate::stream::{self, ResponseHead, Run};
use crate::thinking::{Control, Plan};
use crate::vocab::Vocab;
use logits::{Choices, LogitBias, Sampler, TokenCounter};
use logprobs::LogprobReport;

pub struct MistralEngine {
    runner: Arc<MistralRs>,
    /// One permit per sequence the engine may run (`max_seqs`). mistral.rs
    /// admits every waiting sequence when nothing is running, so the limit
    /// is kept here; sequences beyond it queue in arrival order.
    slots: Arc<Semaphore>,
    info: ModelInfo,
    vocab_size: Option<u32>,
    max_tokens: Option<usize>,
    vocab: Option<Arc<Vocab>>,
    delimiters: Delimiters,
}

/// Bytes one token stands for at most, when the vocabulary is unknown.
const LONGEST_TOKEN: usize = 256;

/// Everything one engine sequence needs besides its prompt.
struct SeqParams {
    sampling: SamplingParams,
    constraint: Constraint,
    tools: Option<Vec<Tool>>,
    tool_choice: Option<ToolChoice>,
    /// Ask the engine for per-token entries (token text, alternatives).
    engine_logprobs: bool,
    /// Alternatives per token the client asked for, when it wants logprobs.
    top_logprobs: Option<usize>,
    bias: Option<Arc<LogitBias>>,
    /// Set when ferrite samples instead of the engine.
    own: Option<OwnSampling>,
    /// Thinking budget (ferrite then samples).
    thinking: Option<Plan>,
}

/// Ferrite samples itself when the request has a `seed` or wants `logprobs`.
#[derive(Clone, Copy)]
struct OwnSampling {
    seed: u64,
    temperature: f64,
}

impl OwnSampling {
    fn plan(seed: Option<i64>, temperature: Option<f64>, logprobs: bool) -> Option<Self> {
        (seed.is_some() || logprobs).then(|| Self {
            // Two's-complement reinterpretation: any i64 seed is a valid seed.
            seed: seed.map_or_else(rand::random, |s| s as u64),
            temperature: temperature.unwrap_or(1.0),
        })
    }
}

fn sampling(k: &Sampling, max_len: usize, own: bool) -> SamplingParams {
    SamplingParams {
        // When ferrite samples, the engine only takes the argmax of its output.
        temperature: if own { Some(0.0) } else { k.temperature },
        top_k: k.top_k.filter(|&k| k > 0).map(|k| k as usize),
        top_p: k.top_p,
        min_p: k.min_p,
        // One more than asked: the sampler puts the chosen token first.
        top_n_logprobs: k.top_logprobs.map_or(0, |n| n as usize + 1),
        frequency_penalty: k.frequency_penalty,
        presence_penalty: k.presence_penalty,
        repetition_penalty: k.repeat_penalty,
        // Stop sequences are matched in `stop.rs`: mistral.rs's matching leaks them.
        stop_toks: None,
        max_len: Some(max_len),
        logits_bias: None,
        n_choices: 1,
        dry_params: None,
    }
}

impl MistralEngine {
    pub async fn load(opts: &EngineOptions) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !opts.thinking.open.trim().is_empty() && !opts.thinking.close.trim().is_empty(),
            "model.thinking.open and model.thinking.close must not be empty"
        );
        let loaded = load::load(opts).await?;
        Ok(Self {
            slots: Arc::new(Semaphore::new(opts.max_seqs.max(1))),
            runner: loaded.runner,
            info: loaded.info,
            vocab_size: loaded.vocab_size,
            max_tokens: opts.max_tokens,
            vocab: loaded.vocab,
            delimiters: opts.thinking.clone(),
        })
    }

    async fn send(&self, request: Request) -> ApiResult<()> {
        let sender = self
            .runner
            .get_sender(None)
            .map_err(|e| ApiError::unavailable(format!("The engine is not available: {e}")))?;
        sender
            .send(request)
            .await
            .map_err(|_| ApiError::unavailable("The engine has stopped."))
    }

    async fn tokenize(
        &self,
        text: Either<Vec<IndexMap<String, MessageContent>>, String>,
        tools: Option<Vec<Tool>>,
    ) -> ApiResult<Vec<u32>> {
        self.tokenize_with(text, tools, true).await
    }

    /// A chat's prompt: its messages rendered with the assistant's turn
    /// opened, then the text a continued answer has so far.
    async fn chat_tokens(
        &self,
        messages: Vec<IndexMap<String, MessageContent>>,
        tools: Option<Vec<Tool>>,
        continued: Option<&str>,
    ) -> ApiResult<Vec<u32>> {
        let mut tokens = self.tokenize(Either::Left(messages), tools).await?;
        if let Some(text) = continued {
            tokens.extend(self.tokenize_piece(text).await?);
        }
        Ok(tokens)
    }

    /// Tokens of a piece of text spliced into a sequence (no BOS).
    async fn tokenize_piece(&self, text: &str) -> ApiResult<Vec<u32>> {
        self.tokenize_with(Either::Right(text.to_string()), None, false)
            .await
    }

    async fn tokenize_with(
        &self,
        text: Either<Vec<IndexMap<String, MessageContent>>, String>,
        tools: Option<Vec<Tool>>,
        special: bool,
    ) -> ApiResult<Vec<u32>> {
        let (tx, mut rx) = channel(1);
        self.send(Request::Tokenize(TokenizationRequest {
            text,
            tools,
            add_generation_prompt: true,
            add_special_tokens: special,
            enable_thinking: None,
            reasoning_effort: None,
            response: tx,
        }))
        .await?;
        rx.recv()
            .await
            .ok_or_else(|| ApiError::unavailable("The engine has stopped."))?
            // A template that cannot render these messages is the request's fault.
            .map_err(|e| {
                let source = self.info.meta.chat_template.as_deref().unwrap_or("model");
                ApiError::invalid(
                    "messages",
                    format!("The chat template ({source}) could not render this chat: {e}"),
                )
            })
    }

    async fn detokenize(&self, tokens: Vec<u32>) -> ApiResult<String> {
        let (tx, mut rx) = channel(1);
        self.send(Request::Detokenize(DetokenizationRequest {
            tokens,
            skip_special_tokens: false,
            response: tx,
        }))
        .await?;
        rx.recv()
            .await
            .ok_or_else(|| ApiError::unavailable("The engine has stopped."))?
            .map_err(|e| ApiError::invalid("prompt", format!("Could not decode the prompt: {e}")))
    }

    fn budget(&self, prompt: usize, limit: Option<u32>, param: &str) -> ApiResult<usize> {
        let ctx = self.info.meta.context_length as usize;
        prep::budget(ctx, self.max_tokens, prompt, limit, param)
    }

    /// Submits one sequence and returns its event channel and token counter.
    async fn submit(
        &self,
        messages: RequestMessage,
        p: &SeqParams,
        seed_offset: u64,
        log_id: &str,
    ) -> ApiResult<Run> {
        let counter = Arc::new(AtomicU32::new(0));
        let control = match (&p.thinking, &self.vocab) {
            (Some(plan), Some(vocab)) => Some(Control::new(plan.clone(), vocab.clone())),
            _ => None,
        };
        let reasoning = control.as_ref().map(Control::counter);
        let mut processors: Vec<Arc<dyn CustomLogitsProcessor>> = vec![Arc::new(TokenCounter {
            count: counter.clone(),
            max_len: p.sampling.max_len.unwrap_or(usize::MAX),
        })];
        if let Some(bias) = &p.bias {
            processors.push(bias.clone());
        }
        let report = p.top_logprobs.map(|top| LogprobReport {
            record: Choices::default(),
            top,
        });
        if let Some(own) = p.own {
            let pick = Pick::new(
                own.seed.wrapping_add(seed_offset),
                own.temperature,
                p.sampling.top_k,
                p.sampling.top_p,
                p.sampling.min_p,
            );
            let sampler = Sampler::new(pick, report.as_ref().map(|r| r.record.clone()));
            processors.push(Arc::new(match control {
                Some(c) => sampler.steered(c),
                None => sampler,
            }));
        }
        let slot = SequencePermit::acquire(&self.slots).await?;
        let (tx, rx) = channel(64);
        self.send(Request::Normal(Box::new(NormalRequest {
            messages,
            sampling_params: p.sampling.clone(),
            response: tx,
            return_logprobs: p.engine_logprobs,
            is_streaming: true,
            id: self.runner.next_request_id(),
            constraint: p.constraint.clone(),
            suffix: None,
            tools: p.tools.clone(),
            tool_choice: p.tool_choice.clone(),
            logits_processors: Some(processors),
            return_raw_logits: false,
            web_search_options: None,
            model_id: None,
            truncate_sequence: false,
        })))
        .await?;
        let cancel = CancellationToken::new();
        Ok(Run {
            index: 0,
            events: forward::forward(rx, log_id.to_string(), cancel.clone(), report, slot),
            generated: counter,
            echo: None,
            cancel,
            reasoning,
            cached: None,
        })
    }
}

#[async_trait]
impl Tokenize for MistralEngine {
    async fn piece(&self, text: &str) -> ApiResult<Vec<u32>> {
        self.tokenize_piece(text).await
    }
}

#[async_trait]
impl Engine for MistralEngine {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    async fn chat(&self, req: ChatRequest) -> ApiResult<ChatStream> {
        adapters::select(&[], req.adapters.as_deref())?;
        if let Some((param, _)) = crate::images::parts(&req.messages).first() {
            return Err(ApiError::invalid(
                param,
                "The mistral.rs runtime takes no images for this model: serve its GGUF with a vision projector on llama.cpp (`runtime = \"llama.cpp\"`).",
            ));
        }
        let wants_logprobs = req.logprobs == Some(true);
        let (rendered, continued) = req.prompt_parts();
        let messages = convert::messages(rendered);
        let tools = convert::request_tools(&req);
        let (tool_choice, forced) = convert::tool_choice(&req);
        let constraint =
            convert::bounded_whitespace(convert::constraint(req.response_format.as_ref(), forced)?);
        let bias = convert::logit_bias(req.logit_bias.as_ref(), self.vocab_size)?;

        let thinking = match req.thinking.as_ref().filter(|t| t.thinks()) {
            Some(t) => {
                Some(prep::plan_thinking(t, &self.delimiters, self.vocab.as_deref(), self).await?)
            }
            None => None,
        };
        // mistral.rs tokenizes on its step loop: a prompt no tokenization
        // could fit is refused before it holds every other stream up.
        let ctx = self.info.meta.context_length as usize;
        let longest = self.vocab.as_deref().map_or(LONGEST_TOKEN, Vocab::longest);
        prep::chat_surely_too_long(&req, ctx, longest)?;
        let mut prompt = self
            .chat_tokens(messages.clone(), tools.clone(), continued.as_deref())
            .await?;
        if thinking.is_some() {
            prep::open_thinking(
                &mut prompt,
                &self.delimiters.open,
                self.vocab.as_deref(),
                self,
            )
            .await?;
        }
        let max_len = self.budget(
            prompt.len(),
            prep::chat_limit(&req, ctx, prompt.len())?,
            prep::limit_param(&req),
        )?;
        let knobs = Sampling::chat(&req);
        let own = OwnSampling::plan(req.seed, req.temperature, wants_logprobs).or_else(|| {
            // Budgets need ferrite's sampler; greedy unless asked, like the engine.
            thinking.as_ref().map(|_| OwnSampling {
                seed: rand::random(),
                temperature: req.temperature.unwrap_or(0.0),
            })
        });
        let params = SeqParams {
            sampling: sampling(&knobs, max_len, own.is_some()),
            constraint,
            tools,
            tool_choice,
            engine_logprobs: wants_logprobs,
            top_logprobs: knobs.top_logprobs.map(|n| n as usize),
            bias: bias.map(|b| Arc::new(LogitBias(b))),
            own,
            thinking,
        };
        let id = prep::new_id("chatcmpl");
        let mut runs = Vec::new();
        for index in 0..req.n.unwrap_or(1) {
            // A thinking or continued answer's prompt is ferrite's own (the
            // block is opened in it, or the answer so far follows the turn).
            let msg = if params.thinking.is_some() || continued.is_some() {
                RequestMessage::CompletionTokens(prompt.clone())
            } else {
                RequestMessage::Chat {
                    messages: messages.clone(),
                    enable_thinking: None,
                    reasoning_effort: None,
                }
            };
            let run = self.submit(msg, &params, index.into(), &id).await?;
            runs.push(Run { index, ..run });
        }
        let head = ResponseHead {
            id,
            created: unix_now(),
            model: self.info.id.clone(),
            prompt_tokens: prompt.len() as u32,
            stops: req.stop.as_ref().map(|s| s.to_vec()).unwrap_or_default(),
            thinking: params.thinking.is_some().then(|| self.delimiters.clone()),
            structured: prep::structured(&req, true),
        };
        Ok(stream::chat_stream(head, runs))
    }

    async fn complete(&self, req: CompletionRequest) -> ApiResult<CompletionStream> {
        let n = req.n.unwrap_or(1);
        prep::check_best_of(&req)?;
        adapters::select(&[], req.adapters.as_deref())?;
        let bias = convert::logit_bias(req.logit_bias.as_ref(), self.vocab_size)?;
        let limit = req.completion_limit()?;
        let own = OwnSampling::plan(req.seed, req.temperature, req.logprobs.is_some());
        let knobs = Sampling::completion(&req);
        let bias = bias.map(|b| Arc::new(LogitBias(b)));
        let echo = req.echo.unwrap_or(false);
        let id = prep::new_id("cmpl");
        let mut runs = Vec::new();
        let mut prompt_tokens = 0u32;
        for (p_index, input) in req.prompt.inputs().into_iter().enumerate() {
            let (ids, text) = match input {
                PromptInput::Text(t) => (self.tokenize(Either::Right(t.clone()), None).await?, t),
                PromptInput::Tokens(ids) => {
                    prep::check_tokens(&ids, self.vocab_size)?;
                    let text = if echo {
                        self.detokenize(ids.clone()).await?
                    } else {
                        String::new()
                    };
                    (ids, text)
                }
            };
            let max_len = self.budget(ids.len(), limit, "max_tokens")?;
            prompt_tokens += ids.len() as u32;
            let params = SeqParams {
                sampling: sampling(&knobs, max_len, own.is_some()),
                constraint: Constraint::None,
                tools: None,
                tool_choice: None,
                // Always: the entries carry the first token's untrimmed text.
                engine_logprobs: true,
                top_logprobs: req.logprobs.map(|n| n as usize),
                bias: bias.clone(),
                own,
                thinking: None,
            };
            for choice in 0..n {
                let index = p_index as u32 * n + choice;
                let msg = RequestMessage::CompletionTokens(ids.clone());
                let run = self.submit(msg, &params, index.into(), &id).await?;
                runs.push(Run {
                    index,
                    echo: echo.then(|| text.clone()),
                    ..run
                });
            }
        }
        let head = ResponseHead {
            id,
            created: unix_now(),
            model: self.info.id.clone(),
            prompt_tokens,
            stops: req.stop.as_ref().map(|s| s.to_vec()).unwrap_or_default(),
            thinking: None,
            structured: stream::Structured::Free,
        };
        Ok(stream::completion_stream(head, runs))
    }

    async fn count_tokens(&self, text: &str) -> ApiResult<usize> {
        // At most a BOS token more than the text alone: fine for budgets.
        Ok(self
            .tokenize(Either::Right(text.to_string()), None)
            .await?
            .len())
    }

    async fn encode(&self, text: &str, special: bool) -> ApiResult<Vec<u32>> {
        self.tokenize_with(Either::Right(text.to_string()), None, special)
            .await
    }

    async fn decode(&self, tokens: &[u32]) -> ApiResult<String> {
        check_ids(tokens, self.vocab_size)?;
        self.detokenize(tokens.to_vec()).await
    }

    /// mistral.rs renders and tokenizes in one step: the prompt is its
    /// tokens decoded, special tokens included.
    async fn render_prompt(&self, request: &ChatRequest) -> ApiResult<String> {
        let (messages, continued) = request.prompt_parts();
        let tools = convert::request_tools(request);
        let tokens = self
            .chat_tokens(convert::messages(messages), tools, continued.as_deref())
            .await?;
        self.detokenize(tokens).await
    }
}
