//! How a chat request reaches a model.

pub mod documents;
pub mod embedder;
pub mod experts;
pub mod files;
pub mod generate;
pub mod images;
pub mod pipeline;
pub mod stream;
