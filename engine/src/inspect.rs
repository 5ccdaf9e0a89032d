//! What a model is before it is loaded: its header's facts and the
//! configured settings, cheap enough for every model listing.

use ferrite_openapi::models::{ModelKind, ModelMeta};

use crate::gguf_meta;
use crate::locate::{locate, HfConfig};
use crate::options::{EngineOptions, ModelFormat};

/// Used when a header does not say (LM Studio shows the same fallback).
const UNKNOWN_CONTEXT: u32 = 4096;

/// Reads the model's header; fails when the file is missing or unreadable.
pub fn inspect(opts: &EngineOptions) -> anyhow::Result<ModelMeta> {
    let located = locate(&opts.path)?;
    let mut kind = ModelKind::Llm;
    // A projector only counts on the runtime that runs it.
    let projector = match (located.format, opts.runtime.resolve(located.format).name()) {
        (ModelFormat::Gguf, "llama.cpp") => opts.mmproj.clone().or_else(|| {
            crate::locate::projector_beside(
                &located
                    .dir
                    .join(located.file.as_deref().unwrap_or_default()),
            )
        }),
        _ => None,
    };
    let (format, architecture, quantization, context_length, isq) = match located.format {
        ModelFormat::Gguf => {
            let file = located
                .dir
                .join(located.file.as_deref().unwrap_or_default());
            let meta = gguf_meta::read(&file)?;
            if meta.embeddings {
                kind = ModelKind::Embeddings;
            }
            (
                "gguf",
                meta.architecture,
                meta.quantization,
                meta.context_length,
                None,
            )
        }
        ModelFormat::Safetensors => {
            let cfg = HfConfig::read(&located.dir);
            let isq = opts.isq.label().map(String::from);
            (
                "safetensors",
                cfg.architectures.first().cloned(),
                isq.clone(),
                cfg.max_position_embeddings,
                isq,
            )
        }
    };
    Ok(ModelMeta {
        kind,
        // Embedding models run on llama.cpp whatever the default runtime.
        runtime: match kind {
            ModelKind::Embeddings => "llama.cpp".into(),
            ModelKind::Llm => opts.runtime.resolve(located.format).name().into(),
        },
        format: format.into(),
        path: opts.path.display().to_string(),
        architecture,
        quantization,
        context_length: context_length
            .unwrap_or(UNKNOWN_CONTEXT)
            .min(opts.context_length.unwrap_or(u32::MAX))
            .max(1),
        max_context_length: context_length.unwrap_or(UNKNOWN_CONTEXT),
        size_bytes: located.size_bytes(),
        device: None,
        activation_dtype: None,
        isq,
        paged_attention: false,
        prefix_cache: opts.prefix_cache > 0,
        continuous_batching: opts.max_seqs > 1,
        max_seqs: u32::try_from(opts.max_seqs).unwrap_or(u32::MAX),
        state: "not-loaded".into(),
        chat_template: None,
        vision: projector.is_some(),
        mmproj: projector.map(|p| p.display().to_string()),
    })
}
