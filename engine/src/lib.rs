//! The inference engines behind ferrite, behind one small [`Engine`] trait.
//! Nothing here knows about HTTP.
//!
//! Layout:
//! - `backend.rs`: the [`Engine`] trait, the seam to the server.
//! - `llamacpp/`: GGUF files on llama.cpp (one context per model, its own
//!   continuous batching scheduler; embedding models batched on their own;
//!   `vision.rs`: a vision projector turning images into embeddings).
//! - `mistralrs/`: safetensors folders (with ISQ) and GGUF on mistral.rs.
//! - `runtime.rs`: which runtime serves a model, and loading it.
//! - `adapters.rs`: a request's LoRA adapters as the model's loaded ones.
//! - Written once for both: `prep.rs` (budgets, thinking plans, sampling
//!   fields), `stream.rs` (events to OpenAI chunks), `stop.rs`,
//!   `reasoning_split.rs`, `json_end.rs`, `thinking.rs` (budget forcing),
//!   `pick.rs` (sampling), `vocab.rs`.
//! - Model files: `locate.rs`, `gguf_meta.rs`, `inspect.rs`, `quantize.rs`,
//!   `bert_gguf.rs` (BERT folders to GGUF embedding models).
//! - `images.rs`: a chat's images decoded and checked before any engine.
//! - `templates.rs`: which chat template a model renders with (overrides,
//!   the model's own, a default by its turn tokens).
//! - `scripted.rs`: a scripted engine for unit tests of middleware.

pub mod adapters;
mod backend;
mod bert_gguf;
mod gauge;
mod gguf_meta;
mod images;
mod inspect;
mod json_end;
mod llamacpp;
mod locate;
mod mistralrs;
mod options;
mod pick;
mod prep;
mod quantize;
mod reasoning_split;
mod runtime;
pub mod scripted;
mod stop;
mod stream;
pub mod templates;
mod thinking;
mod vocab;

pub use backend::{ChatStream, CompletionStream, EmbedInput, Embedded, Engine, ModelInfo};
pub use bert_gguf::{bert_to_gguf, is_bert_folder};
pub use gauge::GaugeGuard;
pub use gguf_meta::{card, Card};
pub use inspect::inspect;
pub use llamacpp::LlamaCppEngine;
pub use locate::{default_id, is_projector, projector_beside, split_part};
pub use mistralrs::MistralEngine;
pub use options::{
    AdapterOptions, Delimiters, EngineOptions, IsqChoice, KvType, ModelFormat, RopeScaling, Runtime,
};
pub use quantize::{requantize, QuantType};
pub use runtime::load;

/// Entries and bytes of KV cache held for prefix reuse, by every model.
pub fn prefix_cache_usage() -> (usize, usize) {
    use std::sync::atomic::Ordering::Relaxed;
    (
        ::mistralrs::core::PREFIX_CACHE_ENTRIES.load(Relaxed)
            + llamacpp::PARKED_ENTRIES.load(Relaxed),
        ::mistralrs::core::PREFIX_CACHE_BYTES.load(Relaxed) + llamacpp::PARKED_BYTES.load(Relaxed),
    )
}
