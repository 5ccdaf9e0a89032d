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
    /// An embedding model: an encoder, or a file that names its pooling.
    pub embeddings: bool,
    /// Whether it carries a chat template (`tokenizer.chat_template`).
    pub chat_template: bool,
}

/// llama.cpp's encoder-only architectures: they embed, they cannot chat.
const ENCODERS: &[&str] = &[
    "bert",
    "nomic-bert",
    "nomic-bert-moe",
    "jina-bert-v2",
    "jina-bert-v3",
    "neo-bert",
    "modern-bert",
    "eurobert",
    "t5encoder",
];

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
    let pooled = architecture
        .as_ref()
        .and_then(|a| md.get(&format!("{a}.pooling_type")))
        .and_then(|v| {
            v.to_u32()
                .ok()
                .or_else(|| v.to_i32().ok().map(|n| n as u32))
        })
        .is_some_and(|p| p != 0);
    let embeddings = pooled
        || architecture
            .as_deref()
            .is_some_and(|a| ENCODERS.contains(&a));
    let vocab_size = md
        .get("tokenizer.ggml.tokens")
        .and_then(|v| v.to_vec().ok())
        .and_then(|v| u32::try_from(v.len()).ok());

    // The file's own label, as LM Studio shows it; else the type most of
    // the weights use (norms stay F32 in every file).
    let labelled = md
        .get("general.file_type")
        .and_then(|v| v.to_u32().ok())
        .and_then(file_type_label)
        .map(String::from);
    let quantization = labelled.or_else(|| {
        let mut by_type: HashMap<String, u64> = HashMap::new();
        for info in content.tensor_infos.values() {
            if info.shape.rank() >= 2 {
                *by_type
                    .entry(dtype_label(&format!("{:?}", info.ggml_dtype)))
                    .or_default() += info.shape.elem_count() as u64;
            }
        }
        by_type
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map(|(name, _)| name)
    });

    Ok(GgufMeta {
        architecture,
        vocab_size,
        quantization,
        context_length,
        vocab: Vocab::from_gguf(&content).ok(),
        embeddings,
        chat_template: md.contains_key("tokenizer.chat_template"),
    })
}

/// llama.cpp's `llama_ftype` names, as `general.file_type` numbers them.
pub fn file_type_label(t: u32) -> Option<&'static str> {
    Some(match t {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        _ => return None,
    })
}

/// candle's tensor type names (`Q4K`, `Q8_0`, `F16`) in llama.cpp's spelling.
fn dtype_label(candle: &str) -> String {
    match candle.strip_suffix('K') {
        Some(base) => format!("{}_K", base.to_ascii_uppercase()),
        None => candle.to_ascii_uppercase(),
    }
}

/// What a model card shows of a GGUF: its chat template's text and how many
/// weights the file holds (a split file's first part counts only its own).
pub struct Card {
    pub chat_template: Option<String>,
    pub parameters: u64,
}

pub fn card(path: &Path) -> anyhow::Result<Card> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let content = Content::read(&mut file)
        .with_context(|| format!("{} is not a readable GGUF file", path.display()))?;
    Ok(Card {
        chat_template: content
            .metadata
            .get("tokenizer.chat_template")
            .and_then(|v| v.to_string().ok())
            .cloned(),
        parameters: content
            .tensor_infos
            .values()
            .map(|t| t.shape.elem_count() as u64)
            .sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_llama_cpp() {
        assert_eq!(file_type_label(15), Some("Q4_K_M"));
        assert_eq!(file_type_label(3), Some("Q4_1"));
        assert_eq!(dtype_label("Q4K"), "Q4_K");
        assert_eq!(dtype_label("Q8_0"), "Q8_0");
        assert_eq!(dtype_label("BF16"), "BF16");
    }
}
