//! Embedding models (BERT and other encoders, or any GGUF that names its
//! pooling) on llama.cpp. One context with pooling runs on its own thread;
//! the inputs of every request waiting there are embedded together, packed
//! into as few batches as the context takes.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Context};
use async_trait::async_trait;
use ferrite_openapi::chat::ChatRequest;
use ferrite_openapi::completions::CompletionRequest;
use ferrite_openapi::models::{ModelKind, ModelMeta};
use ferrite_openapi::{ApiError, ApiResult};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::oneshot;
use tracing::info;

use super::load::{default_threads, open, Opened};
use super::tokenize::{self, Splitter};
use crate::backend::ModelInfo;
use crate::backend::{check_ids, ChatStream, CompletionStream, EmbedInput, Embedded, Engine};
use crate::locate::default_id;
use crate::options::EngineOptions;
use crate::prep;

/// Sequences in one batch: attention cost grows with the batch's square.
const MAX_SEQS: usize = 64;

type Vectors = Result<Vec<Vec<f32>>, String>;

struct Job {
    inputs: Vec<Vec<LlamaToken>>,
    reply: oneshot::Sender<Vectors>,
}

pub struct LlamaEmbedder {
    model: Arc<LlamaModel>,
    /// To the embedding thread; it ends when this is dropped.
    jobs: Sender<Job>,
    info: ModelInfo,
    /// The most tokens one input may have.
    context: usize,
    n_vocab: u32,
    splitter: Arc<Splitter>,
    /// The most bytes one token stands for.
    longest: usize,
}

impl LlamaEmbedder {
    pub async fn load(opts: &EngineOptions) -> anyhow::Result<Self> {
        let o = opts.clone();
        tokio::task::spawn_blocking(move || Self::load_blocking(&o))
            .await
            .map_err(|e| anyhow!("the llama.cpp loading task failed: {e}"))?
    }

    fn load_blocking(opts: &EngineOptions) -> anyhow::Result<Self> {
        let started = Instant::now();
        let Opened {
            model,
            backend,
            header,
            size_bytes,
            gpu_layers,
            ..
        } = open(opts)?;
        let context = model
            .n_ctx_train()
            .min(opts.context_length.unwrap_or(u32::MAX))
            .max(1);
        // A non-causal model sees a whole batch at once: the biggest input
        // must fit in one.
        let batch = context.max(opts.batch_size as u32);
        let threads = opts.threads.unwrap_or_else(default_threads) as i32;
        let params = LlamaContextParams::default()
            .with_embeddings(true)
            .with_n_ctx(std::num::NonZeroU32::new(batch))
            .with_n_batch(batch)
            .with_n_ubatch(batch)
            .with_n_seq_max(MAX_SEQS as u32)
            .with_kv_unified(true)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let id = opts.id.clone().unwrap_or_else(|| default_id(&opts.path));
        let (jobs, rx) = channel::<Job>();
        let (ready_tx, ready) = channel::<Result<(), String>>();
        let m = model.clone();
        std::thread::Builder::new()
            .name(format!("llama.cpp {id}"))
            .spawn(move || match m.new_context(backend, params) {
                Ok(ctx) => {
                    let _ = ready_tx.send(Ok(()));
                    run(ctx, &rx, batch as usize);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                }
            })
            .context("starting the llama.cpp thread")?;
        ready
            .recv()
            .context("the llama.cpp thread ended")?
            .map_err(|e| anyhow!("llama.cpp could not create an embedding context: {e}"))?;

        let meta = ModelMeta {
            kind: ModelKind::Embeddings,
            runtime: "llama.cpp".into(),
            format: "gguf".into(),
            path: opts.path.display().to_string(),
            architecture: header.as_ref().and_then(|h| h.architecture.clone()),
            quantization: header.and_then(|h| h.quantization),
            context_length: context,
            max_context_length: model.n_ctx_train(),
            size_bytes,
            device: Some(if gpu_layers > 0 { "gpu" } else { "cpu" }.into()),
            activation_dtype: None,
            isq: None,
            paged_attention: false,
            prefix_cache: false,
            continuous_batching: true,
            max_seqs: MAX_SEQS as u32,
            state: "loaded".into(),
            chat_template: None,
            vision: false,
            mmproj: None,
        };
        info!(
            model = %id,
            runtime = "llama.cpp",
            kind = "embeddings",
            seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
            context_length = context,
            dimensions = model.n_embd(),
            batch_size = batch,
            threads,
            "model loaded"
        );
        Ok(Self {
            n_vocab: u32::try_from(model.n_vocab()).unwrap_or(0),
            splitter: Arc::new(Splitter::of(&model)),
            longest: (0..model.n_vocab())
                .map(|t| {
                    model
                        .vocab()
                        .token_to_piece(LlamaToken(t), true, None)
                        .len()
                })
                .max()
                .unwrap_or(1)
                .max(1),
            model,
            jobs,
            info: ModelInfo {
                id,
                created: ferrite_openapi::common::unix_now(),
                meta,
            },
            context: context as usize,
        })
    }

    fn not_for_text(&self) -> ApiError {
        ApiError::invalid(
            "model",
            format!(
                "`{}` is an embedding model: it makes embeddings (POST /v1/embeddings) and cannot generate text.",
                self.info.id
            ),
        )
    }

    /// Each input's tokens; text gets the model's own framing ([CLS] … [SEP]).
    async fn tokens(&self, inputs: Vec<EmbedInput>) -> ApiResult<Vec<Vec<LlamaToken>>> {
        for (i, input) in inputs.iter().enumerate() {
            if let EmbedInput::Text(text) = input {
                prep::surely_too_long(text, self.context, self.longest)
                    .map_err(|e| e.with_param(format!("input[{i}]")))?;
            }
        }
        let (model, splitter) = (self.model.clone(), self.splitter.clone());
        let bytes = inputs
            .iter()
            .map(|i| match i {
                EmbedInput::Text(t) => t.len(),
                EmbedInput::Tokens(_) => 0,
            })
            .sum();
        let ids = tokenize::off_workers(bytes, move || {
            inputs
                .into_iter()
                .map(|input| match input {
                    EmbedInput::Text(text) => splitter.tokenize(&model, &text, true, false),
                    EmbedInput::Tokens(ids) => ids,
                })
                .collect::<Vec<Vec<u32>>>()
        })
        .await
        .ok_or_else(|| ApiError::internal("Tokenizing failed."))?;
        ids.into_iter()
            .enumerate()
            .map(|(i, ids)| {
                check_ids(&ids, Some(self.n_vocab))?;
                if ids.len() > self.context {
                    return Err(ApiError::invalid(
                        "input",
                        format!(
                            "`input[{i}]` is {} tokens; `{}` takes at most {} per input.",
                            ids.len(),
                            self.info.id,
                            self.context
                        ),
                    ));
                }
                Ok(ids.into_iter().map(|t| LlamaToken(t as i32)).collect())
            })
            .collect()
    }
}

#[async_trait]
impl Engine for LlamaEmbedder {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    async fn chat(&self, _request: ChatRequest) -> ApiResult<ChatStream> {
        Err(self.not_for_text())
    }

    async fn complete(&self, _request: CompletionRequest) -> ApiResult<CompletionStream> {
        Err(self.not_for_text())
    }

    async fn count_tokens(&self, text: &str) -> ApiResult<usize> {
        Ok(self.encode(text, false).await?.len())
    }

    async fn encode(&self, text: &str, special: bool) -> ApiResult<Vec<u32>> {
        let (model, splitter) = (self.model.clone(), self.splitter.clone());
        let text = text.to_owned();
        tokenize::off_workers(text.len(), move || {
            splitter.tokenize(&model, &text, special, false)
        })
        .await
        .ok_or_else(|| ApiError::internal("Tokenizing failed."))
    }

    async fn decode(&self, tokens: &[u32]) -> ApiResult<String> {
        check_ids(tokens, Some(self.n_vocab))?;
        let vocab = self.model.vocab();
        let bytes: Vec<u8> = tokens
            .iter()
            .flat_map(|&t| vocab.token_to_piece(LlamaToken(t as i32), true, None))
            .collect();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn embed(&self, inputs: Vec<EmbedInput>) -> ApiResult<Embedded> {
        let inputs = self.tokens(inputs).await?;
        let prompt_tokens = inputs.iter().map(Vec::len).sum();
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { inputs, reply })
            .map_err(|_| ApiError::internal("The embedding thread has stopped."))?;
        let vectors = answer
            .await
            .map_err(|_| ApiError::internal("The embedding thread has stopped."))?
            .map_err(|e| ApiError::internal(format!("Embedding failed: {e}")))?;
        Ok(Embedded {
            vectors,
            prompt_tokens,
        })
    }
}

/// The embedding thread: everything waiting is embedded in one go.
fn run(mut ctx: LlamaContext<'_>, rx: &Receiver<Job>, batch_tokens: usize) {
    while let Ok(first) = rx.recv() {
        let jobs: Vec<Job> = std::iter::once(first)
            .chain(rx.try_iter())
            // A client that left needs no answer.
            .filter(|j| !j.reply.is_closed())
            .collect();
        let inputs: Vec<(usize, &[LlamaToken])> = jobs
            .iter()
            .enumerate()
            .flat_map(|(j, job)| job.inputs.iter().map(move |t| (j, t.as_slice())))
            .collect();
        let mut answers: Vec<Vectors> = jobs.iter().map(|_| Ok(Vec::new())).collect();
        for group in pack(&inputs, batch_tokens) {
            let embedded = embed_batch(&mut ctx, group);
            for (k, (j, _)) in group.iter().enumerate() {
                match (&embedded, &mut answers[*j]) {
                    (Ok(vectors), Ok(out)) => out.push(vectors[k].clone()),
                    (Err(e), answer) => *answer = Err(e.clone()),
                    (Ok(_), Err(_)) => {}
                }
            }
        }
        for (job, answer) in jobs.into_iter().zip(answers) {
            let _ = job.reply.send(answer);
        }
    }
}

/// Consecutive groups of inputs that fit one batch each.
fn pack<'a, T>(inputs: &'a [(usize, &'a [T])], batch_tokens: usize) -> Vec<&'a [(usize, &'a [T])]> {
    let mut groups = Vec::new();
    let (mut start, mut tokens) = (0, 0);
    for (i, (_, input)) in inputs.iter().enumerate() {
        if i > start && (i - start == MAX_SEQS || tokens + input.len() > batch_tokens) {
            groups.push(&inputs[start..i]);
            (start, tokens) = (i, 0);
        }
        tokens += input.len();
    }
    if start < inputs.len() {
        groups.push(&inputs[start..]);
    }
    groups
}

/// One batch: each input its own sequence, pooled, then scaled to unit
/// length as OpenAI's and sentence-transformers' embeddings are.
fn embed_batch(ctx: &mut LlamaContext<'_>, group: &[(usize, &[LlamaToken])]) -> Vectors {
    let n = group.iter().map(|(_, t)| t.len()).sum();
    let mut batch = LlamaBatch::new(n, 1);
    for (s, (_, tokens)) in group.iter().enumerate() {
        batch
            .add_sequence(tokens, s as i32, true)
            .map_err(|e| e.to_string())?;
    }
    // Causal embedding models keep a KV cache; encoders have none.
    ctx.clear_kv_cache();
    ctx.decode(&mut batch).map_err(|e| e.to_string())?;
    (0..group.len())
        .map(|s| {
            let v = ctx
                .embeddings_seq_ith(s as i32)
                .map_err(|e| e.to_string())?;
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            Ok(v.iter().map(|x| x / norm).collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_by_tokens_and_sequences() {
        let long = [0u8; 300];
        let short = [0u8; 10];
        let inputs: Vec<(usize, &[u8])> = vec![(0, &long), (0, &long), (1, &short), (1, &long)];
        let groups = pack(&inputs, 512);
        let sizes: Vec<usize> = groups.iter().map(|g| g.len()).collect();
        assert_eq!(sizes, vec![1, 2, 1]);
        let many: Vec<(usize, &[u8])> = (0..MAX_SEQS + 1).map(|_| (0, &short[..])).collect();
        assert_eq!(pack(&many, 10_000).len(), 2);
    }
}
