//! A sentence-transformers BERT folder (`config.json`, `model.safetensors`,
//! `tokenizer.json`, pooling config) as a GGUF file for llama.cpp
//! (`ferrite convert`), with the names and keys llama.cpp's own converter
//! writes: matrices in F16, norms, biases and the small embedding tables in
//! F32, the WordPiece vocabulary in llama.cpp's "phantom space" spelling.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use anyhow::{bail, ensure, Context};
use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device};
use serde::Deserialize;
use serde_json::Value as Json;

use crate::quantize::write_gguf;

#[derive(Deserialize)]
struct BertConfig {
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    model_type: String,
    hidden_size: u32,
    intermediate_size: u32,
    num_hidden_layers: u32,
    num_attention_heads: u32,
    max_position_embeddings: u32,
    #[serde(default = "one")]
    type_vocab_size: u32,
    #[serde(default = "bert_eps")]
    layer_norm_eps: f32,
}

fn one() -> u32 {
    1
}

fn bert_eps() -> f32 {
    1e-12
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    serde_json::from_reader(std::io::BufReader::new(file))
        .with_context(|| format!("reading {}", path.display()))
}

/// Whether `dir` holds a BERT model this converter takes.
pub fn is_bert_folder(dir: &Path) -> bool {
    read_json::<BertConfig>(&dir.join("config.json")).is_ok_and(|c| {
        c.model_type == "bert" || c.architectures.iter().any(|a| a.starts_with("Bert"))
    })
}

/// Writes the model in `dir` as the GGUF file `output` (F16 weights).
pub fn bert_to_gguf(dir: &Path, output: &Path) -> anyhow::Result<()> {
    ensure!(
        is_bert_folder(dir),
        "{} is not a BERT model folder (config.json with model_type \"bert\")",
        dir.display()
    );
    let config: BertConfig = read_json(&dir.join("config.json"))?;
    let vocab = WordPiece::read(dir)?;
    let name = dir
        .file_name()
        .map_or_else(|| "bert".into(), |n| n.to_string_lossy().into_owned());

    let mut metadata: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("bert".into())),
        ("general.name", Value::String(name)),
        ("general.file_type", Value::U32(1)),
        (
            "bert.context_length",
            Value::U32(config.max_position_embeddings),
        ),
        ("bert.embedding_length", Value::U32(config.hidden_size)),
        (
            "bert.feed_forward_length",
            Value::U32(config.intermediate_size),
        ),
        ("bert.block_count", Value::U32(config.num_hidden_layers)),
        (
            "bert.attention.head_count",
            Value::U32(config.num_attention_heads),
        ),
        (
            "bert.attention.layer_norm_epsilon",
            Value::F32(config.layer_norm_eps),
        ),
        ("bert.attention.causal", Value::Bool(false)),
        ("bert.pooling_type", Value::U32(pooling_type(dir))),
        ("tokenizer.ggml.model", Value::String("bert".into())),
        (
            "tokenizer.ggml.token_type_count",
            Value::U32(config.type_vocab_size),
        ),
    ];
    metadata.extend(vocab.metadata());

    let weights = dir.join("model.safetensors");
    let tensors = candle_core::safetensors::load(&weights, &Device::Cpu)
        .with_context(|| format!("reading {}", weights.display()))?;
    let mut out: Vec<(String, QTensor)> = Vec::with_capacity(tensors.len());
    for (hf, tensor) in tensors {
        let Some(name) = tensor_name(&hf)? else {
            continue;
        };
        let tensor = tensor.to_dtype(DType::F32)?;
        // llama.cpp adds the token-type row and looks up positions in F32.
        let small = name.starts_with("token_types") || name.starts_with("position_embd");
        let dtype = if tensor.rank() >= 2 && !small {
            GgmlDType::F16
        } else {
            GgmlDType::F32
        };
        out.push((name, QTensor::quantize(&tensor, dtype)?));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));

    let meta: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    write_gguf(output, &meta, &out)
}

/// llama.cpp's name for a Hugging Face BERT tensor; `None` for the parts an
/// embedding model does not use (pooler, masked-LM head, position ids).
fn tensor_name(hf: &str) -> anyhow::Result<Option<String>> {
    let name = hf.strip_prefix("bert.").unwrap_or(hf);
    if name == "embeddings.position_ids" || name.starts_with("pooler.") || name.starts_with("cls.")
    {
        return Ok(None);
    }
    let Some((stem, suffix)) = name.rsplit_once('.') else {
        bail!("unexpected tensor `{hf}`");
    };
    let suffix = match suffix {
        "gamma" => "weight",
        "beta" => "bias",
        s => s,
    };
    let mapped = match stem {
        "embeddings.word_embeddings" => "token_embd".to_string(),
        "embeddings.token_type_embeddings" => "token_types".to_string(),
        "embeddings.position_embeddings" => "position_embd".to_string(),
        "embeddings.LayerNorm" => "token_embd_norm".to_string(),
        _ => {
            let layer = stem
                .strip_prefix("encoder.layer.")
                .and_then(|rest| rest.split_once('.'));
            let part = layer.and_then(|(_, part)| {
                Some(match part {
                    "attention.self.query" => "attn_q",
                    "attention.self.key" => "attn_k",
                    "attention.self.value" => "attn_v",
                    "attention.output.dense" => "attn_output",
                    "attention.output.LayerNorm" => "attn_output_norm",
                    "intermediate.dense" => "ffn_up",
                    "output.dense" => "ffn_down",
                    "output.LayerNorm" => "layer_output_norm",
                    _ => return None,
                })
            });
            match (layer, part) {
                (Some((n, _)), Some(part)) => format!("blk.{n}.{part}"),
                _ => bail!("unexpected tensor `{hf}`"),
            }
        }
    };
    Ok(Some(format!("{mapped}.{suffix}")))
}

/// llama.cpp's pooling type from sentence-transformers' Pooling module:
/// 1 mean (the default), 2 CLS, 3 last token.
fn pooling_type(dir: &Path) -> u32 {
    let modules: Vec<Json> = read_json(&dir.join("modules.json")).unwrap_or_default();
    let pooling = modules
        .iter()
        .find(|m| m["type"].as_str().is_some_and(|t| t.ends_with("Pooling")))
        .and_then(|m| m["path"].as_str())
        .and_then(|p| read_json::<Json>(&dir.join(p).join("config.json")).ok());
    match pooling {
        Some(c) if c["pooling_mode_cls_token"] == true => 2,
        Some(c) if c["pooling_mode_lasttoken"] == true => 3,
        _ => 1,
    }
}

/// A WordPiece vocabulary from `tokenizer.json`.
struct WordPiece {
    /// By id.
    tokens: Vec<String>,
    special: Vec<bool>,
}

impl WordPiece {
    fn read(dir: &Path) -> anyhow::Result<Self> {
        let json: Json = read_json(&dir.join("tokenizer.json"))?;
        ensure!(
            json["model"]["type"] == "WordPiece",
            "tokenizer.json is not a WordPiece tokenizer"
        );
        let vocab: HashMap<String, u32> =
            serde_json::from_value(json["model"]["vocab"].clone()).context("tokenizer vocab")?;
        let n = vocab.values().max().map_or(0, |m| *m as usize + 1);
        let mut tokens = vec![String::new(); n];
        for (token, id) in vocab {
            tokens[id as usize] = token;
        }
        let mut special = vec![false; n];
        for added in json["added_tokens"].as_array().into_iter().flatten() {
            if let (Some(id), true) = (added["id"].as_u64(), added["special"] == true) {
                if let Some(s) = special.get_mut(id as usize) {
                    *s = true;
                }
            }
        }
        Ok(Self { tokens, special })
    }

    fn id(&self, token: &str) -> Option<u32> {
        self.tokens
            .iter()
            .position(|t| t == token)
            .map(|i| i as u32)
    }

    fn metadata(&self) -> Vec<(&'static str, Value)> {
        // llama.cpp's WordPiece marks word starts (▁) instead of
        // continuations (##).
        let phantom = |t: &String| {
            if t.starts_with('[') && t.ends_with(']') {
                t.clone()
            } else if let Some(rest) = t.strip_prefix("##") {
                rest.to_string()
            } else {
                format!("\u{2581}{t}")
            }
        };
        let mut out = vec![
            (
                "tokenizer.ggml.tokens",
                Value::Array(
                    self.tokens
                        .iter()
                        .map(|t| Value::String(phantom(t)))
                        .collect(),
                ),
            ),
            (
                "tokenizer.ggml.token_type",
                // 3: control, 1: normal.
                Value::Array(
                    self.special
                        .iter()
                        .map(|&s| Value::I32(if s { 3 } else { 1 }))
                        .collect(),
                ),
            ),
        ];
        for (key, token) in [
            ("tokenizer.ggml.bos_token_id", "[CLS]"),
            ("tokenizer.ggml.seperator_token_id", "[SEP]"),
            ("tokenizer.ggml.unknown_token_id", "[UNK]"),
            ("tokenizer.ggml.padding_token_id", "[PAD]"),
            ("tokenizer.ggml.mask_token_id", "[MASK]"),
        ] {
            if let Some(id) = self.id(token) {
                out.push((key, Value::U32(id)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_llama_cpp() {
        let name = |n: &str| tensor_name(n).unwrap();
        assert_eq!(
            name("encoder.layer.3.attention.self.query.weight").as_deref(),
            Some("blk.3.attn_q.weight")
        );
        assert_eq!(
            name("bert.encoder.layer.0.output.LayerNorm.gamma").as_deref(),
            Some("blk.0.layer_output_norm.weight")
        );
        assert_eq!(
            name("embeddings.LayerNorm.bias").as_deref(),
            Some("token_embd_norm.bias")
        );
        assert_eq!(name("pooler.dense.weight"), None);
        assert!(tensor_name("encoder.layer.0.mystery.weight").is_err());
    }
}
