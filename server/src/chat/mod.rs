//! How a chat request reaches a model.

pub mod documents;
pub mod embedder;
pub mod evaluate;
pub mod experts;
pub mod generate;
pub mod images;
pub mod pipeline;
pub mod stream;
