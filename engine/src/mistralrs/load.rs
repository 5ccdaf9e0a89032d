//! Loading a model into a mistral.rs runner, and reporting honestly which
//! engine features ended up active.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use ferrite_openapi::models::ModelMeta;
use mistralrs::core::{
    GGUFArchitecture, GGUFLoaderBuilder, GGUFSpecificConfig, Loader, MemoryGpuConfig,
    MistralRsBuilder, ModelDType, NormalLoaderBuilder, NormalSpecificConfig, PagedAttentionConfig,
    PagedCacheType, SchedulerConfig, TryIntoDType,
};
use mistralrs::{
    paged_attn_supported, parse_isq_value, AutoDeviceMapParams, DefaultSchedulerMethod, Device,
    DeviceMapSetting, MistralRs, TokenSource,
};
use mistralrs_quant::{LoraAdapter, LoraConfig, ShardedSafeTensors};
use tracing::{info, warn};

use crate::backend::ModelInfo;
use crate::gguf_meta;
use crate::locate::{default_id, locate, HfConfig, Located};
use crate::options::{EngineOptions, IsqChoice, ModelFormat};
use crate::templates;
use crate::vocab::Vocab;

/// A loaded runner plus what the adapter needs to know about it.
pub struct Loaded {
    pub runner: Arc<MistralRs>,
    pub info: ModelInfo,
    pub vocab_size: Option<u32>,
    /// Token bytes, for thinking budgets; `None` if the tokenizer is unreadable.
    pub vocab: Option<Arc<Vocab>>,
}

fn dtype_for(opts: &EngineOptions, on_cpu: bool) -> anyhow::Result<ModelDType> {
    match opts.dtype.to_ascii_lowercase().as_str() {
        // Measured here: BF16/F16 activations (mistral.rs's auto pick) are slower on CPU.
        "auto" if on_cpu => Ok(ModelDType::F32),
        other => other.parse().map_err(anyhow::Error::msg),
    }
}

/// What loading produced before the engine starts.
struct Built {
    pipeline: Arc<tokio::sync::Mutex<dyn mistralrs::core::Pipeline>>,
    located: Located,
    device: mistralrs::Device,
    dtype: ModelDType,
    paged: bool,
    isq: Option<mistralrs::IsqType>,
    source: Source,
}

/// A model's loader and what its files say about it.
struct Source {
    loader: Box<dyn Loader>,
    architecture: Option<String>,
    quantization: Option<String>,
    vocab_size: Option<u32>,
    vocab: Option<Vocab>,
    /// Where its chat template comes from (the model meta says it).
    template: String,
}

/// The template mistral.rs renders with when it is not the model's own (an
/// override, or a default for files with none), written where mistral.rs
/// reads it (`jinja_explicit`), and where it came from.
fn explicit_template(
    opts: &EngineOptions,
    has_own: bool,
    vocab: Option<&Vocab>,
) -> anyhow::Result<(Option<String>, String)> {
    let template = match templates::configured(opts)? {
        Some(t) => t,
        None if has_own => return Ok((None, "model".into())),
        None => {
            let t = templates::fallback(|text| vocab.is_some_and(|v| v.has_token(text)));
            warn!(
                path = %opts.path.display(),
                template = %t.source,
                "the model has no chat template; using a default (set chat_template to choose another)"
            );
            t
        }
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&template.text, &mut hasher);
    let name = format!(
        "ferrite-template-{:016x}.jinja",
        std::hash::Hasher::finish(&hasher)
    );
    let path = std::env::temp_dir().join(name);
    std::fs::write(&path, &template.text)
        .with_context(|| format!("writing the chat template to {}", path.display()))?;
    Ok((Some(path.to_string_lossy().into_owned()), template.source))
}

fn paged_config(opts: &EngineOptions, paged: bool) -> anyhow::Result<Option<PagedAttentionConfig>> {
    if opts.paged_attn && !paged {
        info!("PagedAttention is off: it needs a CUDA or Metal build and device");
    }
    if !paged {
        return Ok(None);
    }
    let mem = match opts.paged_attn_mem_mb {
        Some(mb) => MemoryGpuConfig::MbAmount(mb),
        None => MemoryGpuConfig::Utilization(0.9),
    };
    Ok(Some(PagedAttentionConfig::new(
        Some(opts.paged_attn_block_size),
        mem,
        PagedCacheType::Auto,
    )?))
}

fn gguf_source(located: &Located, opts: &EngineOptions) -> anyhow::Result<Source> {
    let file = located.file.clone().context("GGUF file name")?;
    let meta = gguf_meta::read(&located.dir.join(&file))?;
    // mistral.rs panics on an architecture it does not know.
    let arch = meta.architecture.as_deref().unwrap_or("unknown");
    if GGUFArchitecture::from_value(arch).is_err() {
        bail!("mistral.rs has no GGUF loader for architecture `{arch}`");
    }
    if opts.isq != IsqChoice::None {
        info!(
            "ISQ does not apply to GGUF models (already quantized: {:?})",
            meta.quantization
        );
    }
    let (jinja, template) = explicit_template(opts, meta.chat_template, meta.vocab.as_ref())?;
    let loader = GGUFLoaderBuilder::new(
        None,
        None,
        located.dir.to_string_lossy().into_owned(),
        // A split model's every part (llama.cpp finds them from the first).
        located.gguf_files(),
        GGUFSpecificConfig { topology: None },
        false,
        jinja,
    )
    .build();
    Ok(Source {
        loader,
        architecture: meta.architecture,
        quantization: meta.quantization,
        vocab_size: meta.vocab_size,
        vocab: meta.vocab,
        template,
    })
}

/// Whether a model folder brings its own chat template.
fn has_template(dir: &std::path::Path) -> bool {
    let config = std::fs::read(dir.join("tokenizer_config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    config.is_some_and(|c| c.get("chat_template").is_some_and(|t| !t.is_null()))
        || dir.join("chat_template.jinja").is_file()
        || dir.join("chat_template.json").is_file()
}

fn safetensors_source(located: &Located, opts: &EngineOptions) -> anyhow::Result<Source> {
    let cfg = HfConfig::read(&located.dir);
    let vocab = Vocab::from_tokenizer_json(&located.dir.join("tokenizer.json"))
        .map_err(|e| info!("no token table, thinking budgets are off: {e:#}"))
        .ok();
    let has_own = has_template(&located.dir);
    let (jinja, template) = explicit_template(opts, has_own, vocab.as_ref())?;
    let loader = NormalLoaderBuilder::new(
        NormalSpecificConfig {
            topology: None,
            organization: Default::default(),
            write_uqff: None,
            from_uqff: None,
            imatrix: None,
            calibration_file: None,
            hf_cache_path: None,
            matformer_config_path: None,
            matformer_slice_name: None,
        },
        None,
        None,
        Some(located.dir.to_string_lossy().into_owned()),
        false,
        jinja,
    )
    .build(None)?;
    Ok(Source {
        loader,
        architecture: cfg.architectures.first().cloned(),
        quantization: opts.isq.label().map(String::from),
        vocab_size: cfg.vocab_size,
        vocab,
        template,
    })
}

/// PEFT adapters merged into the weights as they load: mistral.rs's
/// linear layers add every adapter on this thread's list (scaled by
/// alpha / r) before quantizing. The list is this thread's, so it is
/// emptied when the load ends, whatever happens: blocking threads are reused.
struct MergedLora;

impl MergedLora {
    fn push(opts: &EngineOptions, dtype: &ModelDType, device: &Device) -> anyhow::Result<Self> {
        mistralrs_quant::clear_applied_loras();
        let guard = Self;
        if !opts.merge_adapters {
            return Ok(guard);
        }
        let dtype = dtype.try_into_dtype(&[device])?;
        for a in &opts.adapters {
            let read = || -> anyhow::Result<LoraAdapter> {
                let config = std::fs::read_to_string(a.path.join("adapter_config.json"))?;
                let mut config: LoraConfig = serde_json::from_str(&config)?;
                config.alpha *= f64::from(a.scale);
                let weights = [a.path.join("adapter_model.safetensors")];
                // SAFETY: the file is mapped read-only for the load, as
                // mistral.rs maps the model's own weights.
                let weights = unsafe {
                    ShardedSafeTensors::sharded(&weights, dtype, device, None, Arc::new(|_| true))
                }?;
                Ok(LoraAdapter { config, weights })
            };
            let adapter = read().with_context(|| {
                format!(
                    "adapter `{}`: {} is not a PEFT LoRA folder (adapter_config.json, adapter_model.safetensors)",
                    a.id,
                    a.path.display()
                )
            })?;
            info!(adapter = %a.id, scale = a.scale, "merging LoRA adapter into the weights");
            mistralrs_quant::push_applied_lora(adapter);
        }
        Ok(guard)
    }
}

impl Drop for MergedLora {
    fn drop(&mut self) {
        mistralrs_quant::clear_applied_loras();
    }
}

/// Reads the model's metadata and tokenizer and loads (maybe quantizes)
/// every weight: all of it file work, kept off the async workers.
fn build(opts: &EngineOptions) -> anyhow::Result<Built> {
    let located = locate(&opts.path)?;
    let device = mistralrs::best_device(opts.force_cpu).context("selecting a device")?;
    let on_cpu = device.is_cpu();
    let dtype = dtype_for(opts, on_cpu)?;
    let paged = opts.paged_attn && paged_attn_supported() && !on_cpu;
    let paged_cfg = paged_config(opts, paged)?;
    let isq = match located.format {
        ModelFormat::Gguf => None,
        ModelFormat::Safetensors => opts
            .isq
            .mistral_name()
            .map(|name| parse_isq_value(name, Some(&device)).map_err(anyhow::Error::msg))
            .transpose()?,
    };
    if opts.merge_adapters && located.format == ModelFormat::Gguf {
        bail!("mistral.rs merges PEFT adapters into safetensors models; GGUF models take GGUF adapters on llama.cpp");
    }
    let source = match located.format {
        ModelFormat::Gguf => gguf_source(&located, opts)?,
        ModelFormat::Safetensors => safetensors_source(&located, opts)?,
    };
    info!(
        path = %opts.path.display(),
        format = ?located.format,
        ?dtype,
        device = ?device,
        "loading model"
    );
    // mistral.rs draws its own progress bars when stderr is a terminal.
    let silent = !std::io::IsTerminal::is_terminal(&std::io::stderr());
    let lora = MergedLora::push(opts, &dtype, &device)?;
    let pipeline = source.loader.load_model_from_hf(
        None,
        TokenSource::None,
        &dtype,
        &device,
        silent,
        DeviceMapSetting::Auto(AutoDeviceMapParams::default_text()),
        isq,
        paged_cfg,
    );
    drop(lora);
    let pipeline = pipeline?;
    Ok(Built {
        pipeline,
        located,
        device,
        dtype,
        paged,
        isq,
        source,
    })
}

pub async fn load(opts: &EngineOptions) -> anyhow::Result<Loaded> {
    let started = Instant::now();
    let o = opts.clone();
    let built = tokio::task::spawn_blocking(move || build(&o))
        .await
        .context("model loading task failed")??;
    let pipeline = built.pipeline.clone();
    let cache_config = pipeline.lock().await.get_metadata().cache_config.clone();
    let scheduler = match (built.paged, cache_config) {
        (true, Some(config)) => SchedulerConfig::PagedAttentionMeta {
            max_num_seqs: opts.max_seqs,
            config,
        },
        _ => SchedulerConfig::DefaultScheduler {
            method: DefaultSchedulerMethod::Fixed(
                opts.max_seqs
                    .try_into()
                    .context("--max-seqs must be at least 1")?,
            ),
        },
    };
    let paged_active = matches!(scheduler, SchedulerConfig::PagedAttentionMeta { .. });
    let id = opts.id.clone().unwrap_or_else(|| default_id(&opts.path));
    // Read by the engine as it starts; one server-wide value, so models
    // loading side by side cannot disagree.
    mistralrs::core::set_prefix_cache_max_bytes(opts.prefix_cache_mib.saturating_mul(1 << 20));
    let runner = MistralRsBuilder::new(pipeline, scheduler, false, None)
        .with_model_id(id.clone())
        .with_no_prefix_cache(opts.prefix_cache == 0)
        .with_prefix_cache_n(opts.prefix_cache.max(1))
        .build()
        .await;
    let trained = runner
        .max_sequence_length(None)
        .ok()
        .flatten()
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(4096);
    let context_length = trained.min(opts.context_length.unwrap_or(u32::MAX).max(1));
    let mut meta = model_meta(opts, &built, context_length, paged_active);
    meta.max_context_length = trained.max(context_length);
    info!(
        model = %id,
        runtime = "mistral.rs",
        seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
        context_length,
        quantization = meta.quantization.as_deref().unwrap_or("none"),
        isq = meta.isq.as_deref().unwrap_or("none"),
        paged_attention = meta.paged_attention,
        prefix_cache = meta.prefix_cache,
        continuous_batching = meta.continuous_batching,
        max_seqs = meta.max_seqs,
        "model loaded"
    );
    Ok(Loaded {
        runner,
        info: ModelInfo {
            id,
            created: ferrite_openapi::common::unix_now(),
            meta,
        },
        vocab_size: built.source.vocab_size,
        vocab: built.source.vocab.map(Arc::new),
    })
}

/// What `/v1/models` and the log say about the loaded model.
fn model_meta(opts: &EngineOptions, built: &Built, context_length: u32, paged: bool) -> ModelMeta {
    let on_cpu = built.device.is_cpu();
    ModelMeta {
        kind: Default::default(),
        runtime: "mistral.rs".into(),
        format: match built.located.format {
            ModelFormat::Gguf => "gguf".into(),
            ModelFormat::Safetensors => "safetensors".into(),
        },
        path: opts.path.display().to_string(),
        architecture: built.source.architecture.clone(),
        quantization: built.source.quantization.clone(),
        context_length,
        max_context_length: context_length,
        size_bytes: built.located.size_bytes(),
        device: Some(if on_cpu {
            "cpu".into()
        } else {
            format!("{:?}", built.device)
        }),
        activation_dtype: Some(built.dtype.to_string()),
        isq: built.isq.and(opts.isq.label()).map(String::from),
        paged_attention: paged,
        prefix_cache: opts.prefix_cache > 0,
        continuous_batching: opts.max_seqs > 1,
        max_seqs: u32::try_from(opts.max_seqs).unwrap_or(u32::MAX),
        state: "loaded".into(),
        chat_template: Some(built.source.template.clone()),
        vision: false,
        mmproj: None,
    }
}
