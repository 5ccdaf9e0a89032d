//! [`Engine`] on llama.cpp (crate `llama-cpp-2`): GGUF files, as in LM
//! Studio. Requests are prepared here (template, tokens, budget, sampler)
//! and handed to the model's step loop (`scheduler.rs`) on its own thread.

mod embed;
mod load;
mod sampler;
mod scheduler;
mod tokenize;
mod vision;

pub use embed::LlamaEmbedder;
pub use scheduler::{PARKED_BYTES, PARKED_ENTRIES};

use std::collections::HashMap;
use std::sync::atomic::AtomicU32;
use std::sync::mpsc::Sender;
use std::sync::Arc;

use async_trait::async_trait;
use either::Either;
use ferrite_openapi::adapters::display_name;
use ferrite_openapi::chat::ChatRequest;
use ferrite_openapi::common::unix_now;
use ferrite_openapi::completions::{CompletionRequest, PromptInput};
use ferrite_openapi::{ApiError, ApiResult};
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;
use serde_json::Value;
use tokio::sync::mpsc::unbounded_channel;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::adapters::{self, AdapterSet};
use crate::backend::{check_ids, ChatStream, CompletionStream, Engine, ModelInfo};
use crate::gauge::SequencePermit;
use crate::images;
use crate::mistralrs::convert;
use crate::options::{AdapterOptions, Delimiters, EngineOptions};
use crate::prep::{self, Sampling, Tokenize};
use crate::stream::{self, ResponseHead, Run, Structured};
use crate::templates::Template;
use crate::thinking::{Control, Plan};
use crate::vocab::Vocab;
use ferrite_openapi::validate::ImageLimits;
use sampler::Sampler;
use scheduler::Job;
use tokenize::Splitter;
use vision::{ImageSpan, Piece, Vision};

pub struct LlamaCppEngine {
    model: Arc<LlamaModel>,
    /// To the step loop; it ends when this is dropped.
    jobs: Sender<Job>,
    /// One permit per sequence the loop may run (`max_seqs`); more wait here.
    slots: Arc<Semaphore>,
    info: ModelInfo,
    vocab: Arc<Vocab>,
    n_vocab: u32,
    template: Arc<Template>,
    bos: Option<String>,
    eos: Option<String>,
    add_bos: bool,
    max_tokens: Option<usize>,
    delimiters: Delimiters,
    /// Loaded with the model, in the step loop's order.
    adapters: Vec<AdapterOptions>,
    splitter: Arc<Splitter>,
    /// The most bytes one token stands for.
    longest: usize,
    /// The vision projector, when the model has one.
    vision: Option<Arc<Vision>>,
    image_limits: ImageLimits,
}

/// What every sequence of one request shares.
struct SeqSpec {
    knobs: Sampling,
    seed: u64,
    max_len: usize,
    bias: Option<Arc<HashMap<u32, f32>>>,
    thinking: Option<Plan>,
    adapters: AdapterSet,
}

impl LlamaCppEngine {
    pub async fn load(opts: &EngineOptions) -> anyhow::Result<Self> {
        let o = opts.clone();
        let loaded = tokio::task::spawn_blocking(move || load::load(&o))
            .await
            .map_err(|e| anyhow::anyhow!("the llama.cpp loading task failed: {e}"))??;
        let longest = loaded.vocab.longest();
        Ok(Self {
            model: loaded.model,
            jobs: loaded.jobs,
            slots: Arc::new(Semaphore::new(opts.max_seqs.max(1))),
            info: loaded.info,
            vocab: loaded.vocab,
            n_vocab: loaded.n_vocab,
            template: Arc::new(loaded.template),
            bos: loaded.bos,
            eos: loaded.eos,
            add_bos: loaded.add_bos,
            max_tokens: opts.max_tokens,
            delimiters: opts.thinking.clone(),
            adapters: opts.adapters.clone(),
            splitter: loaded.splitter,
            longest,
            vision: loaded.vision,
            image_limits: opts.images,
        })
    }

    /// Tokens of `text`, with BOS when the model wants one and `special`.
    async fn tokenize(&self, text: String, special: bool) -> ApiResult<Vec<u32>> {
        let (model, splitter) = (self.model.clone(), self.splitter.clone());
        let add_bos = special && self.add_bos;
        tokenize::off_workers(text.len(), move || {
            splitter.tokenize(&model, &text, add_bos, true)
        })
        .await
        .ok_or_else(|| ApiError::internal("Tokenizing failed."))
    }

    /// A completion prompt's tokens; an empty one starts from BOS (nothing
    /// can be generated from no token at all).
    async fn text_prompt(&self, text: String) -> ApiResult<Vec<u32>> {
        let ctx = self.info.meta.context_length as usize;
        prep::surely_too_long(&text, ctx, self.longest).map_err(|e| e.with_param("prompt"))?;
        let ids = self.tokenize(text, true).await?;
        if !ids.is_empty() {
            return Ok(ids);
        }
        let bos = self.model.vocab().bos().0;
        u32::try_from(bos).map(|b| vec![b]).map_err(|_| {
            ApiError::invalid(
                "prompt",
                "The prompt is empty and this model has no start token.",
            )
        })
    }

    /// The chat rendered by the GGUF's Jinja template, as mistral.rs does;
    /// a continued answer's text follows the opened assistant turn.
    async fn render(&self, req: &ChatRequest) -> ApiResult<String> {
        let template = self.template.clone();
        let (messages, continued) = req.prompt_parts();
        let messages = convert::messages_with(messages, Some(Vision::marker()));
        let tools = req.tools.as_deref().map(convert::tools).unwrap_or_default();
        let (bos, eos) = (self.bos.clone(), self.eos.clone());
        tokio::task::spawn_blocking(move || {
            ::mistralrs::core::apply_chat_template_to(
                messages,
                true,
                None,
                None,
                &::mistralrs::core::ChatTemplateValue(Either::Left(template.text.clone())),
                bos,
                eos,
                None,
                tools,
            )
        })
        .await
        .map_err(|_| ApiError::internal("Rendering the chat template failed."))?
        .map(|text| text + continued.as_deref().unwrap_or_default())
        .map_err(|e| {
            let source = &self.template.source;
            ApiError::invalid(
                "messages",
                format!("The chat template ({source}) could not render this chat: {e}"),
            )
        })
    }

    /// One grammar sampler per choice for a JSON schema, refused when the
    /// schema admits no output.
    async fn grammars(&self, schema: &Value, n: u32) -> ApiResult<Vec<LlamaSampler>> {
        let schema = schema.to_string();
        let model = self.model.clone();
        let bad = |msg: String| ApiError::invalid("response_format", msg);
        tokio::task::spawn_blocking(move || {
            let grammar = llama_cpp_2::json_schema_to_grammar(&schema)
                .map_err(|_| bad("This JSON schema cannot be turned into a grammar.".into()))?;
            let compile = || {
                LlamaSampler::grammar(&model, &grammar, "root")
                    .map_err(|e| bad(format!("This JSON schema's grammar is invalid: {e}")))
            };
            let mut first = compile()?;
            let mut all = LlamaTokenDataArray::from_iter(
                (0..model.n_vocab()).map(|i| LlamaTokenData::new(LlamaToken(i), 0.0, 0.0)),
                false,
            );
            all.apply_sampler(&mut first);
            if !all.data.iter().any(|d| d.logit().is_finite()) {
                return Err(bad("This JSON schema admits no output.".into()));
            }
            // Applying a grammar leaves its state as it was.
            let mut out = vec![first];
            for _ in 1..n {
                out.push(compile()?);
            }
            Ok(out)
        })
        .await
        .map_err(|_| ApiError::internal("Compiling the grammar failed."))?
    }

    /// The rendered chat's tokens with its images: each marker in the text
    /// becomes the image's wrapping tokens and embeddings (decoded and
    /// encoded on the blocking pool).
    async fn with_images(
        &self,
        req: &ChatRequest,
        text: String,
    ) -> ApiResult<(Vec<u32>, Vec<ImageSpan>)> {
        let parts = images::parts(&req.messages);
        let Some(vision) = self.vision.clone() else {
            let param = parts.first().map_or("messages", |p| p.0.as_str());
            return Err(ApiError::invalid(
                param,
                "This model takes no images: it has no vision projector (an `mmproj*.gguf` beside its file, `mmproj` in its registry entry, or `--mmproj`).",
            ));
        };
        let urls: Vec<(String, String)> =
            parts.into_iter().map(|(p, u)| (p, u.to_string())).collect();
        let (model, splitter) = (self.model.clone(), self.splitter.clone());
        let (limits, add_bos) = (self.image_limits, self.add_bos);
        tokio::task::spawn_blocking(move || {
            let segments: Vec<&str> = text.split(Vision::marker()).collect();
            if segments.len() != urls.len() + 1 {
                return Err(ApiError::invalid(
                    "messages",
                    "The chat template dropped or repeated an image: it must keep each message's content as it is.",
                ));
            }
            let mut prompt = Vec::new();
            let mut spans = Vec::new();
            for (i, segment) in segments.iter().enumerate() {
                prompt.extend(splitter.tokenize(&model, segment, add_bos && i == 0, true));
                let Some((param, url)) = urls.get(i) else { break };
                let image = images::decode(url, &limits).map_err(|m| ApiError::invalid(param, m))?;
                let pieces = vision.encode(&image).map_err(|m| ApiError::invalid(param, m))?;
                for piece in pieces.iter().cloned() {
                    match piece {
                        Piece::Tokens(ids) => prompt.extend(ids),
                        Piece::Image { embd, len, non_causal, hash } => {
                            spans.push(ImageSpan { start: prompt.len(), len, embd, non_causal });
                            prompt.extend(vision::placeholders(&hash, len));
                        }
                    }
                }
            }
            Ok((prompt, spans))
        })
        .await
        .map_err(|_| ApiError::internal("Preparing the images failed."))?
    }

    fn budget(&self, prompt: usize, limit: Option<u32>, param: &str) -> ApiResult<usize> {
        let ctx = self.info.meta.context_length as usize;
        prep::budget(ctx, self.max_tokens, prompt, limit, param)
    }

    /// Hands one sequence to the step loop once a slot is free.
    async fn submit(
        &self,
        prompt: Vec<u32>,
        spec: &SeqSpec,
        offset: u64,
        grammar: Option<LlamaSampler>,
        images: Vec<ImageSpan>,
    ) -> ApiResult<Run> {
        let control = spec
            .thinking
            .clone()
            .map(|plan| Control::new(plan, self.vocab.clone()));
        let reasoning = control.as_ref().map(Control::counter);
        let sampler = Sampler::new(
            spec.seed.wrapping_add(offset),
            spec.knobs.clone(),
            spec.bias.clone(),
            grammar,
            control,
            self.vocab.clone(),
        );
        let slot = SequencePermit::acquire(&self.slots).await?;
        let (tx, events) = unbounded_channel();
        let (cancel, generated, cached) = (
            CancellationToken::new(),
            Arc::new(AtomicU32::new(0)),
            Arc::new(AtomicU32::new(0)),
        );
        let job = Job {
            prompt,
            max_len: spec.max_len,
            sampler,
            events: tx,
            cancel: cancel.clone(),
            generated: generated.clone(),
            cached: cached.clone(),
            slot: Some(slot),
            span: tracing::Span::current(),
            adapters: spec.adapters.clone(),
            images,
        };
        self.jobs
            .send(job)
            .map_err(|_| ApiError::unavailable("The engine has stopped."))?;
        Ok(Run {
            index: 0,
            events,
            generated,
            echo: None,
            cancel,
            reasoning,
            cached: Some(cached),
        })
    }
}

fn seed(s: Option<i64>) -> u64 {
    // Two's-complement reinterpretation: any i64 seed is a valid seed.
    s.map_or_else(rand::random, |s| s as u64)
}

#[async_trait]
impl Tokenize for LlamaCppEngine {
    async fn piece(&self, text: &str) -> ApiResult<Vec<u32>> {
        self.tokenize(text.to_string(), false).await
    }
}

#[async_trait]
impl Engine for LlamaCppEngine {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    async fn chat(&self, req: ChatRequest) -> ApiResult<ChatStream> {
        let adapters = adapters::select(&self.adapters, req.adapters.as_deref())?;
        let (_, forced) = convert::tool_choice(&req);
        let schema = match convert::constraint(req.response_format.as_ref(), forced)? {
            ::mistralrs::Constraint::JsonSchema(schema) => Some(schema),
            _ => None,
        };
        let bias = convert::logit_bias(req.logit_bias.as_ref(), Some(self.n_vocab))?;
        let thinking = match req.thinking.as_ref().filter(|t| t.thinks()) {
            Some(t) => {
                Some(prep::plan_thinking(t, &self.delimiters, Some(&self.vocab), self).await?)
            }
            None => None,
        };
        let text = self.render(&req).await?;
        let ctx = self.info.meta.context_length as usize;
        prep::surely_too_long(&text, ctx, self.longest)?;
        let (mut prompt, spans) = if images::any(&req.messages) {
            self.with_images(&req, text).await?
        } else {
            (self.tokenize(text, true).await?, Vec::new())
        };
        if thinking.is_some() {
            prep::open_thinking(&mut prompt, &self.delimiters.open, Some(&self.vocab), self)
                .await?;
        }
        let max_len = self.budget(
            prompt.len(),
            prep::chat_limit(&req, ctx, prompt.len())?,
            prep::limit_param(&req),
        )?;
        let n = req.n.unwrap_or(1);
        let mut grammars = match &schema {
            Some(s) => self.grammars(s, n).await?.into_iter().map(Some).collect(),
            None => vec![],
        };
        let spec = SeqSpec {
            knobs: Sampling::chat(&req),
            seed: seed(req.seed),
            max_len,
            bias: bias.map(Arc::new),
            thinking,
            adapters,
        };
        let head = ResponseHead {
            id: prep::new_id("chatcmpl"),
            created: unix_now(),
            model: display_name(&self.info.id, req.adapters.as_deref()),
            prompt_tokens: prompt.len() as u32,
            stops: req.stop.as_ref().map(|s| s.to_vec()).unwrap_or_default(),
            thinking: spec.thinking.is_some().then(|| self.delimiters.clone()),
            structured: prep::structured(&req, false),
        };
        let mut runs = Vec::new();
        for index in 0..n {
            let grammar = grammars.pop().flatten();
            let run = self
                .submit(prompt.clone(), &spec, index.into(), grammar, spans.clone())
                .await?;
            runs.push(Run {
                index,
                cached: run.cached.clone().filter(|_| index == 0),
                ..run
            });
        }
        Ok(stream::chat_stream(head, runs))
    }

    async fn complete(&self, req: CompletionRequest) -> ApiResult<CompletionStream> {
        let n = req.n.unwrap_or(1);
        prep::check_best_of(&req)?;
        let adapters = adapters::select(&self.adapters, req.adapters.as_deref())?;
        let bias = convert::logit_bias(req.logit_bias.as_ref(), Some(self.n_vocab))?.map(Arc::new);
        let limit = req.completion_limit()?;
        let echo = req.echo.unwrap_or(false);
        let knobs = Sampling::completion(&req);
        let base_seed = seed(req.seed);
        let mut runs = Vec::new();
        let mut prompt_tokens = 0u32;
        for (p_index, input) in req.prompt.inputs().into_iter().enumerate() {
            let (ids, text) = match input {
                PromptInput::Text(t) => (self.text_prompt(t.clone()).await?, t),
                PromptInput::Tokens(ids) => {
                    prep::check_tokens(&ids, Some(self.n_vocab))?;
                    let text = ids
                        .iter()
                        .flat_map(|&t| self.vocab.bytes(t).to_vec())
                        .collect::<Vec<u8>>();
                    (ids, String::from_utf8_lossy(&text).into_owned())
                }
            };
            let spec = SeqSpec {
                knobs: knobs.clone(),
                seed: base_seed,
                max_len: self.budget(ids.len(), limit, "max_tokens")?,
                bias: bias.clone(),
                thinking: None,
                adapters: adapters.clone(),
            };
            prompt_tokens += ids.len() as u32;
            for choice in 0..n {
                let index = p_index as u32 * n + choice;
                let run = self
                    .submit(ids.clone(), &spec, index.into(), None, Vec::new())
                    .await?;
                runs.push(Run {
                    index,
                    echo: echo.then(|| text.clone()),
                    cached: run.cached.clone().filter(|_| choice == 0),
                    ..run
                });
            }
        }
        let head = ResponseHead {
            id: prep::new_id("cmpl"),
            created: unix_now(),
            model: display_name(&self.info.id, req.adapters.as_deref()),
            prompt_tokens,
            stops: req.stop.as_ref().map(|s| s.to_vec()).unwrap_or_default(),
            thinking: None,
            structured: Structured::Free,
        };
        Ok(stream::completion_stream(head, runs))
    }

    async fn count_tokens(&self, text: &str) -> ApiResult<usize> {
        // Past what the trained context could hold, the bytes say enough:
        // llama.cpp's tokenizer takes about a second a MiB.
        let trained = self.info.meta.max_context_length.max(1) as usize;
        if prep::surely_too_long(text, trained, self.longest).is_err() {
            return Ok(text.len() / self.longest);
        }
        Ok(self.tokenize(text.to_string(), true).await?.len())
    }

    async fn encode(&self, text: &str, special: bool) -> ApiResult<Vec<u32>> {
        self.tokenize(text.to_string(), special).await
    }

    async fn decode(&self, tokens: &[u32]) -> ApiResult<String> {
        check_ids(tokens, Some(self.n_vocab))?;
        let bytes: Vec<u8> = tokens
            .iter()
            .flat_map(|&t| self.vocab.bytes(t).iter().copied())
            .collect();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn render_prompt(&self, request: &ChatRequest) -> ApiResult<String> {
        self.render(request).await
    }
}
