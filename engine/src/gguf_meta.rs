//! Facts read from a GGUF header before loading: architecture, vocabulary
//! (size and token bytes) and the dominant weight quantization.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use candle_core::quantized::gguf_file::Content;

use crate::vocab::Vocab;

#[derive(Debug, Default)]
pub struct GgufMeta {
    pub architecture: Option<String>,
    pub vocab_size: Option<u32>,
    pub quantization: Option<String>,
    /// The context the model was trained for (`{arch}.context_length`).
    pub context_length: Option<u32>,
    pub vocab: Option<Vocab>,
}

pub fn read(path: &Path) -> anyhow::Result<GgufMeta> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let content = Content::read(&mut file)
        .with_context(|| format!("{} is not a readable GGUF file", path.display()))?;
    let md = &content.metadata;
    let architecture = md
        .get("general.architecture")
        .and_then(|v| v.to_string().ok())
        .cloned();
    let context_length = architecture
        .as_ref()
        .and_then(|a| md.get(&format!("{a}.context_length")))
        .and_then(|v| v.to_u64().ok().or_else(|| v.to_u32().ok().map(u64::from)))
        .and_then(|n| u32::try_from(n).ok());
    let vocab_size = md
        .get("tokenizer.ggml.tokens")
        .and_then(|v| v.to_vec().ok())
        .and_then(|v| u32::try_from(v.len()).ok());

    // The quantization most of the weights use (norms stay F32 in every file).
    let mut by_type: HashMap<String, u64> = HashMap::new();
    for info in content.tensor_infos.values() {
        if info.shape.rank() >= 2 {
            *by_type.entry(format!("{:?}", info.ggml_dtype)).or_default() +=
                info.shape.elem_count() as u64;
        }
    }
    let quantization = by_type
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(name, _)| name);

    Ok(GgufMeta {
        architecture,
        vocab_size,
        quantization,
        context_length,
        vocab: Vocab::from_gguf(&content).ok(),
    })
}
