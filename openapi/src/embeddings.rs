//! `POST /v1/embeddings` (and LM Studio's `/api/v0/embeddings`), as OpenAI
//! documents it.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};

/// OpenAI's limit on inputs in one request.
pub const MAX_INPUTS: usize = 2048;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingRequest {
    /// An embedding model (default: the loaded model).
    #[serde(default)]
    pub model: Option<String>,
    pub input: EmbeddingInput,
    #[serde(default)]
    pub encoding_format: EncodingFormat,
    /// The vector size wanted; only the model's own size is accepted.
    #[serde(default)]
    pub dimensions: Option<u32>,
    #[serde(default)]
    pub user: Option<String>,
    /// LM Studio extension: idle seconds before a just-in-time loaded model
    /// unloads.
    #[serde(default)]
    pub ttl: Option<u64>,
}

/// Text or token ids, one or many.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

/// One input, borrowed.
pub enum InputRef<'a> {
    Text(&'a str),
    Tokens(&'a [u32]),
}

impl EmbeddingInput {
    pub fn items(&self) -> Vec<InputRef<'_>> {
        match self {
            Self::Text(t) => vec![InputRef::Text(t)],
            Self::Texts(ts) => ts.iter().map(|t| InputRef::Text(t)).collect(),
            Self::Tokens(ids) => vec![InputRef::Tokens(ids)],
            Self::TokenLists(lists) => lists.iter().map(|l| InputRef::Tokens(l)).collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    #[default]
    Float,
    /// Little-endian f32s, base64-encoded (what the OpenAI SDKs ask for).
    Base64,
}

impl EmbeddingRequest {
    pub fn validate(&self) -> ApiResult<()> {
        let items = self.input.items();
        if items.is_empty() {
            return Err(ApiError::invalid("input", "`input` must not be empty."));
        }
        if items.len() > MAX_INPUTS {
            return Err(ApiError::invalid(
                "input",
                format!(
                    "`input` may hold at most {MAX_INPUTS} items, got {}.",
                    items.len()
                ),
            ));
        }
        let empty = items.iter().position(|i| match i {
            InputRef::Text(t) => t.is_empty(),
            InputRef::Tokens(ids) => ids.is_empty(),
        });
        if let Some(i) = empty {
            return Err(ApiError::invalid(
                "input",
                format!("`input[{i}]` is empty; every input needs at least one token."),
            ));
        }
        if self.dimensions == Some(0) {
            return Err(ApiError::invalid(
                "dimensions",
                "`dimensions` must be at least 1.",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingResponse {
    /// Always `list`.
    pub object: String,
    pub data: Vec<Embedding>,
    pub model: String,
    pub usage: EmbeddingUsage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Embedding {
    /// Always `embedding`.
    pub object: String,
    pub embedding: Vector,
    pub index: usize,
}

/// Floats, or (with `encoding_format: base64`) their bytes in base64.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Vector {
    Float(Vec<f32>),
    Base64(String),
}

impl Vector {
    pub fn encode(v: Vec<f32>, format: EncodingFormat) -> Self {
        match format {
            EncodingFormat::Float => Self::Float(v),
            EncodingFormat::Base64 => {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Self::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingUsage {
    pub prompt_tokens: usize,
    pub total_tokens: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(body: serde_json::Value) -> EmbeddingRequest {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn every_input_shape_parses() {
        for input in [
            json!("hi"),
            json!(["a", "b"]),
            json!([1, 2, 3]),
            json!([[1, 2], [3]]),
        ] {
            let r = request(json!({"model": "m", "input": input}));
            assert!(r.validate().is_ok(), "{input}");
        }
        assert_eq!(
            request(json!({"input": [[1, 2], [3]]})).input.items().len(),
            2
        );
    }

    #[test]
    fn empty_inputs_are_refused() {
        for input in [json!(""), json!([]), json!(["a", ""]), json!([[1], []])] {
            let r = request(json!({"input": input}));
            assert_eq!(r.validate().unwrap_err().status, 400, "{input}");
        }
    }

    #[test]
    fn base64_is_little_endian_f32() {
        let Vector::Base64(b) = Vector::encode(vec![1.0, -2.5], EncodingFormat::Base64) else {
            panic!("not base64");
        };
        let bytes = base64::engine::general_purpose::STANDARD.decode(b).unwrap();
        assert_eq!(&bytes[..4], &1.0f32.to_le_bytes());
        assert_eq!(&bytes[4..], &(-2.5f32).to_le_bytes());
    }
}
