//! Each token's raw bytes and whether it is a special (control) token, read
//! from the GGUF header or `tokenizer.json`. Thinking budgets need them inside
//! the sampling step, where the engine's async tokenizer cannot be called.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use serde_json::Value;

#[derive(Debug, Default)]
pub struct Vocab {
    bytes: Vec<Vec<u8>>,
    special: Vec<bool>,
}

/// How a tokenizer spells bytes in its token strings.
#[derive(Clone, Copy, PartialEq)]
enum Spelling {
    /// GPT-2 byte-level BPE: every byte is one printable character.
    ByteLevel,
    /// SentencePiece: `▁` is a space, `<0xNN>` a raw byte.
    SentencePiece,
}

/// GPT-2's `bytes_to_unicode`, inverted: character -> byte.
fn byte_level_table() -> HashMap<char, u8> {
    let printable = |b: u8| (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
    let mut table = HashMap::with_capacity(256);
    let mut next = 256u32;
    for b in 0..=255u8 {
        let c = if printable(b) {
            char::from(b)
        } else {
            let c = char::from_u32(next).unwrap_or('\u{FFFD}');
            next += 1;
            c
        };
        table.insert(c, b);
    }
    table
}

fn decode(token: &str, spelling: Spelling, table: &HashMap<char, u8>) -> Vec<u8> {
    match spelling {
        Spelling::ByteLevel => token
            .chars()
            .flat_map(|c| match table.get(&c) {
                Some(&b) => vec![b],
                None => c.to_string().into_bytes(),
            })
            .collect(),
        Spelling::SentencePiece => {
            let hex = token
                .strip_prefix("<0x")
                .and_then(|t| t.strip_suffix('>'))
                .filter(|h| h.len() == 2);
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(b) => vec![b],
                None => token.replace('\u{2581}', " ").into_bytes(),
            }
        }
    }
}

impl Vocab {
    fn build(tokens: Vec<(String, bool)>, spelling: Spelling) -> Self {
        let table = byte_level_table();
        let (bytes, special) = tokens
            .into_iter()
            .map(|(t, special)| {
                let b = if special {
                    t.into_bytes()
                } else {
                    decode(&t, spelling, &table)
                };
                (b, special)
            })
            .unzip();
        Self { bytes, special }
    }

    /// From each token's bytes and whether it is a control token.
    pub fn from_parts(bytes: Vec<Vec<u8>>, special: Vec<bool>) -> Self {
        Self { bytes, special }
    }

    #[cfg(test)]
    pub fn for_tests(tokens: Vec<(Vec<u8>, bool)>) -> Self {
        let (bytes, special) = tokens.into_iter().unzip();
        Self { bytes, special }
    }

    /// Whether `text` is one of the vocabulary's tokens, spelled whole.
    pub fn has_token(&self, text: &str) -> bool {
        self.bytes.iter().any(|b| b == text.as_bytes())
    }

    /// The most bytes any one token stands for.
    pub fn longest(&self) -> usize {
        self.bytes.iter().map(Vec::len).max().unwrap_or(1).max(1)
    }

    pub fn bytes(&self, id: u32) -> &[u8] {
        self.bytes.get(id as usize).map_or(&[], Vec::as_slice)
    }

    /// Control tokens (end of turn, end of text...): sampling one while
    /// thinking is an attempt to stop.
    pub fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize).copied().unwrap_or(false)
    }

    /// From GGUF metadata (`tokenizer.ggml.*`).
    pub fn from_gguf(content: &candle_core::quantized::gguf_file::Content) -> anyhow::Result<Self> {
        let md = &content.metadata;
        let model = md
            .get("tokenizer.ggml.model")
            .and_then(|v| v.to_string().ok())
            .map_or("gpt2", String::as_str);
        let spelling = if model == "llama" || model == "t5" {
            Spelling::SentencePiece
        } else {
            Spelling::ByteLevel
        };
        let tokens = md
            .get("tokenizer.ggml.tokens")
            .and_then(|v| v.to_vec().ok())
            .context("no tokenizer.ggml.tokens")?;
        let types = md
            .get("tokenizer.ggml.token_type")
            .and_then(|v| v.to_vec().ok());
        let tokens = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| {
                // GGUF token types: 3 = control.
                let special = types
                    .and_then(|ty| ty.get(i))
                    .and_then(|v| v.to_i32().ok())
                    .is_some_and(|ty| ty == 3);
                (t.to_string().cloned().unwrap_or_default(), special)
            })
            .collect();
        Ok(Self::build(tokens, spelling))
    }

    /// From a Hugging Face `tokenizer.json`.
    pub fn from_tokenizer_json(path: &Path) -> anyhow::Result<Self> {
        let json: Value = serde_json::from_slice(
            &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        )?;
        let byte_level = json["decoder"].to_string().contains("ByteLevel")
            || json["pre_tokenizer"].to_string().contains("ByteLevel");
        let spelling = if byte_level {
            Spelling::ByteLevel
        } else {
            Spelling::SentencePiece
        };
        let mut tokens: Vec<(String, bool)> = Vec::new();
        let mut put = |id: usize, text: &str, special: bool| {
            if tokens.len() <= id {
                tokens.resize(id + 1, (String::new(), false));
            }
            tokens[id] = (text.to_string(), special);
        };
        match &json["model"]["vocab"] {
            Value::Object(map) => {
                for (text, id) in map {
                    if let Some(id) = id.as_u64() {
                        put(id as usize, text, false);
                    }
                }
            }
            // Unigram: a list of [piece, score] in id order.
            Value::Array(list) => {
                for (id, entry) in list.iter().enumerate() {
                    if let Some(text) = entry.get(0).and_then(Value::as_str) {
                        put(id, text, false);
                    }
                }
            }
            _ => anyhow::bail!("{} has no model.vocab", path.display()),
        }
        for added in json["added_tokens"].as_array().into_iter().flatten() {
            if let (Some(id), Some(text)) = (added["id"].as_u64(), added["content"].as_str()) {
                put(
                    id as usize,
                    text,
                    added["special"].as_bool().unwrap_or(false),
                );
            }
        }
        Ok(Self::build(tokens, spelling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_byte_level_and_sentencepiece() {
        let t = byte_level_table();
        assert_eq!(decode("Ġthe", Spelling::ByteLevel, &t), b" the");
        assert_eq!(decode("Ċ", Spelling::ByteLevel, &t), b"\n");
        // "é" is two bytes, each its own byte-level character.
        assert_eq!(decode("Ã©", Spelling::ByteLevel, &t), "é".as_bytes());
        assert_eq!(decode("▁the", Spelling::SentencePiece, &t), b" the");
        assert_eq!(decode("<0x0A>", Spelling::SentencePiece, &t), b"\n");
    }
}
