//! The inference engine behind ferrite: a small [`Engine`] trait, its
//! mistral.rs implementation, and a scripted engine for unit tests of layers.
//! Nothing here knows about HTTP.

mod backend;
mod convert;
mod gauge;
mod gguf_meta;
mod inspect;
mod load;
mod logits;
mod logprobs;
mod mistral_engine;
mod options;
mod quantize;
mod reasoning_split;
pub mod scripted;
mod stop;
mod stream;
mod thinking;
mod vocab;

pub use backend::{ChatStream, CompletionStream, Engine, ModelInfo};
pub use gauge::GaugeGuard;
pub use inspect::inspect;
pub use load::default_id;
pub use mistral_engine::MistralEngine;
pub use options::{Delimiters, EngineOptions, IsqChoice, ModelFormat};
pub use quantize::{requantize, QuantType};

/// Entries and bytes of KV cache held for prefix reuse, by every model.
pub fn prefix_cache_usage() -> (usize, usize) {
    use std::sync::atomic::Ordering::Relaxed;
    (
        mistralrs::core::PREFIX_CACHE_ENTRIES.load(Relaxed),
        mistralrs::core::PREFIX_CACHE_BYTES.load(Relaxed),
    )
}
