//! Loading a GGUF into llama.cpp and starting its step loop.

use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use anyhow::{anyhow, Context};
use ferrite_openapi::models::ModelMeta;
use llama_cpp_2::context::params::{KvCacheType, LlamaContextParams, RopeScalingType};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaLoraAdapter, LlamaModel};
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::{send_logs_to_tracing, LogOptions};
use tracing::{info, warn};

use super::scheduler::{Job, Limits, Scheduler};
use super::tokenize::Splitter;
use super::vision::Vision;
use crate::backend::ModelInfo;
use crate::gguf_meta;
use crate::locate::{default_id, locate, projector_beside};
use crate::options::{AdapterOptions, EngineOptions, KvType, RopeScaling};
use crate::templates::{self, Template};
use crate::vocab::Vocab;

/// llama.cpp's process-wide state, set up once; its log goes to `tracing`.
static BACKEND: LazyLock<Option<LlamaBackend>> = LazyLock::new(|| {
    send_logs_to_tracing(LogOptions::default());
    LlamaBackend::init().ok()
});

/// A model on llama.cpp with its step loop running.
pub struct Loaded {
    pub model: Arc<LlamaModel>,
    pub jobs: Sender<Job>,
    pub info: ModelInfo,
    pub vocab: Arc<Vocab>,
    pub template: Template,
    pub bos: Option<String>,
    pub eos: Option<String>,
    pub add_bos: bool,
    pub n_vocab: u32,
    pub splitter: Arc<Splitter>,
    pub vision: Option<Arc<Vision>>,
}

/// Physical cores: llama.cpp's threads spin, so hyperthreads only contend.
pub fn default_threads() -> usize {
    num_cpus::get_physical().max(1)
}

fn gpu_layers(opts: &EngineOptions) -> u32 {
    if cfg!(any(feature = "cuda", feature = "metal")) && !opts.force_cpu {
        opts.gpu_layers.unwrap_or(u32::MAX)
    } else {
        0
    }
}

/// A GGUF file opened by llama.cpp, before any context.
pub struct Opened {
    pub model: Arc<LlamaModel>,
    /// The (first) GGUF file.
    pub file: std::path::PathBuf,
    pub backend: &'static LlamaBackend,
    pub header: Option<gguf_meta::GgufMeta>,
    pub size_bytes: u64,
    pub gpu_layers: u32,
    /// The LoRA adapters of `opts.adapters`, in order.
    pub adapters: Vec<LlamaLoraAdapter>,
}

/// Opens the model's file (blocking: call off the async workers).
pub fn open(opts: &EngineOptions) -> anyhow::Result<Opened> {
    let located = locate(&opts.path)?;
    let file = located.dir.join(
        located
            .file
            .as_deref()
            .context("llama.cpp runs .gguf files")?,
    );
    let backend = BACKEND
        .as_ref()
        .ok_or_else(|| anyhow!("llama.cpp could not be initialised"))?;
    let header = gguf_meta::read(&file).ok();
    let gpu_layers = gpu_layers(opts);
    let params = LlamaModelParams::default().with_n_gpu_layers(gpu_layers);
    let mut model = LlamaModel::load_from_file(backend, &file, &params).map_err(|_| {
        anyhow!(
            "llama.cpp cannot load {} (architecture `{}`)",
            file.display(),
            header
                .as_ref()
                .and_then(|h| h.architecture.as_deref())
                .unwrap_or("unknown")
        )
    })?;
    let adapters = opts
        .adapters
        .iter()
        .map(|a| load_adapter(&mut model, a))
        .collect::<anyhow::Result<_>>()?;
    Ok(Opened {
        model: Arc::new(model),
        file,
        backend,
        header,
        size_bytes: located.size_bytes(),
        gpu_layers,
        adapters,
    })
}

/// One GGUF LoRA adapter, checked by llama.cpp against the model's
/// architecture and tensor shapes (its log says which check failed).
fn load_adapter(model: &mut LlamaModel, a: &AdapterOptions) -> anyhow::Result<LlamaLoraAdapter> {
    let path = a.path.display();
    if !a.path.is_file() {
        anyhow::bail!("the LoRA adapter `{}` is not a file: {path}", a.id);
    }
    // llama.cpp's CPU kernels crash the process on F32 LoRA tensors (seen
    // with llama-server of the same version too); F16 ones work.
    let header = gguf_meta::read(&a.path)?;
    if header.quantization.as_deref() == Some("F32") {
        anyhow::bail!(
            "the LoRA adapter `{}` ({path}) has F32 tensors, which crash llama.cpp's CPU kernels; write it as F16 (convert_lora_to_gguf.py --outtype f16)",
            a.id
        );
    }
    let adapter = model.lora_adapter_init(&a.path).map_err(|_| {
        anyhow!(
            "llama.cpp cannot load the LoRA adapter `{}` ({path}): not a GGUF LoRA for this model",
            a.id
        )
    })?;
    info!(adapter = %a.id, path = %path, scale = a.scale, "LoRA adapter loaded");
    Ok(adapter)
}

/// Loads the model (blocking: call off the async workers).
pub fn load(opts: &EngineOptions) -> anyhow::Result<Loaded> {
    let started = Instant::now();
    let Opened {
        model,
        file,
        backend,
        header,
        size_bytes,
        gpu_layers: layers,
        adapters,
    } = open(opts)?;
    let architecture = header.as_ref().and_then(|m| m.architecture.clone());
    let vocab = token_table(&model);
    let specials = Specials::of(&model, &vocab);
    let splitter = Arc::new(Splitter::of(&model));
    let template = chat_template(opts, &model)?;
    let plan = Plan::new(opts, &model);
    let vision = vision(opts, &file, &model, plan.threads)?;
    let id = opts.id.clone().unwrap_or_else(|| default_id(&opts.path));
    let jobs = start(&id, backend, &model, &vocab, &specials, &plan, adapters)?;

    let meta = ModelMeta {
        kind: Default::default(),
        runtime: "llama.cpp".into(),
        format: "gguf".into(),
        path: opts.path.display().to_string(),
        architecture,
        quantization: header.and_then(|m| m.quantization),
        context_length: plan.context_length,
        max_context_length: model.n_ctx_train(),
        size_bytes,
        device: Some(if layers > 0 { "gpu" } else { "cpu" }.into()),
        activation_dtype: None,
        isq: None,
        paged_attention: false,
        prefix_cache: opts.prefix_cache > 0,
        continuous_batching: plan.limits.max_seqs > 1,
        max_seqs: u32::try_from(plan.limits.max_seqs).unwrap_or(u32::MAX),
        state: "loaded".into(),
        chat_template: Some(template.source.clone()),
        vision: vision.is_some(),
        mmproj: vision.as_ref().map(|(path, _)| path.display().to_string()),
    };
    info!(
        model = %id,
        runtime = "llama.cpp",
        seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
        context_length = plan.context_length,
        kv_cache_tokens = plan.limits.pool,
        kv_cache_type = ?opts.kv_cache_type,
        batch_size = plan.limits.batch,
        threads = plan.threads,
        gpu_layers = layers.min(model.n_layer()),
        quantization = meta.quantization.as_deref().unwrap_or("unknown"),
        max_seqs = plan.limits.max_seqs,
        prefix_cache = opts.prefix_cache,
        "model loaded"
    );
    Ok(Loaded {
        model,
        jobs,
        info: ModelInfo {
            id,
            created: ferrite_openapi::common::unix_now(),
            meta,
        },
        vocab,
        template,
        bos: specials.bos,
        eos: specials.eos,
        add_bos: specials.add_bos,
        n_vocab: specials.n_vocab,
        splitter,
        vision: vision.map(|(_, v)| Arc::new(v)),
    })
}

/// The projector named for the model (it must load), else one beside its
/// file (a warning when it does not fit this model: it may be another's).
fn vision(
    opts: &EngineOptions,
    file: &std::path::Path,
    model: &Arc<LlamaModel>,
    threads: usize,
) -> anyhow::Result<Option<(std::path::PathBuf, Vision)>> {
    if let Some(path) = &opts.mmproj {
        return Ok(Some((path.clone(), Vision::load(model, path, threads)?)));
    }
    let Some(path) = projector_beside(file) else {
        return Ok(None);
    };
    match Vision::load(model, &path, threads) {
        Ok(v) => Ok(Some((path, v))),
        Err(e) => {
            warn!(projector = %path.display(), "the projector beside the model does not fit it; images are off: {e:#}");
            Ok(None)
        }
    }
}

/// The override, else the GGUF's template, else a default by the model's
/// turn tokens (said once in the log).
fn chat_template(opts: &EngineOptions, model: &LlamaModel) -> anyhow::Result<Template> {
    if let Some(t) = templates::configured(opts)? {
        return Ok(t);
    }
    if let Some(text) = model
        .chat_template(None)
        .ok()
        .and_then(|t| t.to_string().ok())
    {
        return Ok(Template {
            source: "gguf".into(),
            text,
        });
    }
    // A turn token is one token when its text is tokenized with specials.
    let one_token = |text: &str| model.vocab().tokenize(text.as_bytes(), false, true).len() == 1;
    let t = templates::fallback(one_token);
    warn!(
        path = %opts.path.display(),
        template = %t.source,
        "the GGUF has no chat template; using a default (set chat_template to choose another)"
    );
    Ok(t)
}

/// The model's special tokens: as text for the chat template, as ids for
/// the scheduler.
struct Specials {
    n_vocab: u32,
    bos: Option<String>,
    eos: Option<String>,
    add_bos: bool,
    /// What generation ends with (end of turn when there is no EOS).
    eos_id: u32,
    /// Per token: whether it ends generation.
    eog: Vec<bool>,
}

impl Specials {
    fn of(model: &LlamaModel, vocab: &Vocab) -> Self {
        let n_vocab = u32::try_from(model.n_vocab()).unwrap_or(0);
        let lv = model.vocab();
        let text = |t: LlamaToken| {
            (t.0 >= 0 && (t.0 as u32) < n_vocab)
                .then(|| String::from_utf8_lossy(vocab.bytes(t.0 as u32)).into_owned())
        };
        let eos_id = if lv.eos().0 >= 0 {
            lv.eos().0
        } else {
            lv.eot().0
        };
        Self {
            n_vocab,
            bos: text(lv.bos()),
            eos: text(lv.eos()),
            add_bos: lv.should_add_bos(),
            eos_id: eos_id.max(0) as u32,
            eog: (0..n_vocab)
                .map(|t| lv.is_eog(LlamaToken(t as i32)))
                .collect(),
        }
    }
}

/// The context's shape: one KV pool shared by every sequence.
struct Plan {
    params: LlamaContextParams,
    limits: Limits,
    context_length: u32,
    threads: usize,
}

impl Plan {
    fn new(opts: &EngineOptions, model: &LlamaModel) -> Self {
        let trained = model.n_ctx_train();
        // Past the trained context only where the operator allows RoPE
        // scaling; the registry refuses longer contexts otherwise.
        let context_length = match (opts.rope_scaling, opts.context_length) {
            (Some(_), Some(asked)) => asked,
            (_, asked) => trained.min(asked.unwrap_or(u32::MAX)),
        }
        .max(1);
        let pool = opts.kv_cache_tokens.unwrap_or(context_length).max(1);
        let threads = opts.threads.unwrap_or_else(default_threads);
        let max_seqs = opts.max_seqs.max(1);
        let kv_type = match opts.kv_cache_type {
            KvType::F16 => KvCacheType::F16,
            KvType::Q8_0 => KvCacheType::Q8_0,
        };
        let batch = opts.batch_size.max(1);
        let params = LlamaContextParams::default()
            .with_n_ctx(std::num::NonZeroU32::new(pool))
            .with_n_batch(batch as u32)
            .with_n_ubatch(batch.min(512) as u32)
            .with_n_seq_max((max_seqs + opts.prefix_cache) as u32)
            .with_kv_unified(true)
            .with_type_k(kv_type)
            .with_type_v(kv_type)
            .with_n_threads(threads as i32)
            .with_n_threads_batch(threads as i32);
        let params = match opts.rope_scaling {
            Some(scaling) if context_length > trained && trained > 0 => {
                let kind = match scaling {
                    RopeScaling::Linear => RopeScalingType::Linear,
                    RopeScaling::Yarn => RopeScalingType::Yarn,
                };
                params
                    .with_rope_scaling_type(kind)
                    .with_rope_freq_scale(trained as f32 / context_length as f32)
                    .with_yarn_orig_ctx(trained)
            }
            _ => params,
        };
        // K and V of every layer; q8_0 packs 32 values in 34 bytes.
        let kv_width =
            (model.n_embd() as usize / model.n_head().max(1) as usize) * model.n_head_kv() as usize;
        let token_bytes = match opts.kv_cache_type {
            KvType::F16 => 2 * kv_width * 2,
            KvType::Q8_0 => 2 * kv_width * 34 / 32,
        } * model.n_layer() as usize;
        Self {
            params,
            limits: Limits {
                max_seqs,
                parked: opts.prefix_cache,
                parked_bytes: opts.prefix_cache_mib.saturating_mul(1 << 20),
                token_bytes,
                pool: pool as usize,
                batch,
                n_embd: model.n_embd() as usize,
            },
            // One sequence may use the whole pool, never more.
            context_length: context_length.min(pool),
            threads,
        }
    }
}

/// Starts the model's scheduler thread with its context; the jobs go there.
fn start(
    id: &str,
    backend: &'static LlamaBackend,
    model: &Arc<LlamaModel>,
    vocab: &Arc<Vocab>,
    specials: &Specials,
    plan: &Plan,
    adapters: Vec<LlamaLoraAdapter>,
) -> anyhow::Result<Sender<Job>> {
    let (jobs, rx) = channel::<Job>();
    let (ready_tx, ready) = channel::<Result<(), String>>();
    let (m, v) = (model.clone(), vocab.clone());
    let (params, limits) = (plan.params.clone(), plan.limits.clone());
    let (eog, eos_id) = (specials.eog.clone(), specials.eos_id);
    std::thread::Builder::new()
        .name(format!("llama.cpp {id}"))
        .spawn(move || {
            let ctx = match m.new_context(backend, params) {
                Ok(ctx) => ctx,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            Scheduler::new(ctx, v, eog, eos_id, limits, adapters).run(rx);
        })
        .context("starting the llama.cpp thread")?;
    ready
        .recv()
        .context("the llama.cpp thread ended")?
        .map_err(|e| {
            let pool = plan.limits.pool;
            anyhow!("llama.cpp could not create a context of {pool} tokens: {e}")
        })?;
    Ok(jobs)
}

/// Every token's bytes as llama.cpp decodes it, and which are control tokens.
fn token_table(model: &LlamaModel) -> Arc<Vocab> {
    let lv = model.vocab();
    let (bytes, special) = (0..model.n_vocab())
        .map(|t| {
            let t = LlamaToken(t);
            (
                lv.token_to_piece(t, true, None),
                lv.is_control(t) || lv.is_eog(t),
            )
        })
        .unzip();
    Arc::new(Vocab::from_parts(bytes, special))
}
