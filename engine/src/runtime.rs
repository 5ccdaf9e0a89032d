//! Which runtime serves a model, and loading it there. With `auto`, a GGUF
//! goes to llama.cpp first and to mistral.rs if llama.cpp cannot load it; a
//! file neither can load gets one line naming its architecture and the
//! runtimes tried.

use std::sync::Arc;

use futures::FutureExt;
use tracing::warn;

use crate::backend::Engine;
use crate::gguf_meta;
use crate::llamacpp::{LlamaCppEngine, LlamaEmbedder};
use crate::locate::locate;
use crate::mistralrs::MistralEngine;
use crate::options::{EngineOptions, ModelFormat, Runtime};

async fn load_on(runtime: Runtime, opts: &EngineOptions) -> anyhow::Result<Arc<dyn Engine>> {
    match runtime {
        Runtime::LlamaCpp => Ok(Arc::new(LlamaCppEngine::load(opts).await?)),
        // mistral.rs panics on some files it does not know; that is a
        // failed load, not a crash.
        _ => match std::panic::AssertUnwindSafe(MistralEngine::load(opts))
            .catch_unwind()
            .await
        {
            Ok(loaded) => Ok(Arc::new(loaded?)),
            Err(_) => anyhow::bail!("mistral.rs stopped while loading it"),
        },
    }
}

/// Loads `opts.path` on the runtime its options ask for; embedding models
/// run on llama.cpp, the runtime that has them.
pub async fn load(opts: &EngineOptions) -> anyhow::Result<Arc<dyn Engine>> {
    let located = locate(&opts.path)?;
    if let Some(file) = &located.file {
        let path = located.dir.join(file);
        let embeddings = tokio::task::spawn_blocking(move || gguf_meta::read(&path))
            .await?
            .is_ok_and(|m| m.embeddings);
        if embeddings {
            // `runtime` is usually the server-wide default for chat models.
            if opts.runtime == Runtime::MistralRs {
                warn!(
                    "{} is an embedding model: it runs on llama.cpp (mistral.rs has no encoder models)",
                    opts.path.display()
                );
            }
            if !opts.adapters.is_empty() {
                anyhow::bail!("LoRA adapters are served with chat models, not embedding models");
            }
            return Ok(Arc::new(LlamaEmbedder::load(opts).await?));
        }
    }
    let first = opts.runtime.resolve(located.format);
    if located.format == ModelFormat::Safetensors && first == Runtime::LlamaCpp {
        anyhow::bail!(
            "llama.cpp runs .gguf files; {} is a safetensors folder (use runtime = \"mistral.rs\")",
            opts.path.display()
        );
    }
    if !opts.adapters.is_empty() {
        // Adapters are of one runtime's kind: no fallback to the other.
        return load_on(first, opts).await;
    }
    let mut tried = vec![first];
    let mut result = load_on(first, opts).await;
    if result.is_err() && opts.runtime == Runtime::Auto && located.format == ModelFormat::Gguf {
        if let Err(e) = &result {
            warn!("llama.cpp could not load the model ({e:#}); trying mistral.rs");
        }
        tried.push(Runtime::MistralRs);
        result = load_on(Runtime::MistralRs, opts).await;
    }
    result.map_err(|e| {
        if located.format != ModelFormat::Gguf {
            return e;
        }
        let file = located
            .dir
            .join(located.file.as_deref().unwrap_or_default());
        let arch = gguf_meta::read(&file)
            .ok()
            .and_then(|m| m.architecture)
            .unwrap_or_else(|| "unknown".into());
        let names: Vec<&str> = tried.iter().map(|r| r.name()).collect();
        anyhow::anyhow!(
            "cannot load {}: architecture `{arch}` is not supported by {} ({})",
            file.display(),
            names.join(" or "),
            first_line(&format!("{e:#}"))
        )
    })
}

/// The first line of an error, without a backtrace (also one quoted in a
/// panic message with its newlines escaped).
fn first_line(s: &str) -> &str {
    let line = s.lines().next().unwrap_or_default();
    line.split("\\n").next().unwrap_or(line)
}
