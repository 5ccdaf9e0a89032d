//! The APIs ferrite speaks, a room each: each translates its wire format to
//! and from the one chat road (`chat/`), with its routes and its error
//! shape, over the shared plumbing in `http/`. No room imports another,
//! except LM Studio's REST API, whose v0 streams are OpenAI's unchanged.
//! - `openai/`: chat and text completions, embeddings, models;
//! - `anthropic/`: the Messages API;
//! - `responses/`: OpenAI's Responses API;
//! - `lmstudio_rest/`: LM Studio's REST API (v0, v1 model management and
//!   downloads);
//! - `lmstudio_sdk/`: LM Studio's SDK protocol over WebSockets;
//! - `ollama/`: Ollama's API;
//! - `orchestrator/`: the desktop system's orchestrator API.

pub mod anthropic;
pub mod lmstudio_rest;
pub mod lmstudio_sdk;
pub mod ollama;
pub mod openai;
pub mod orchestrator;
pub mod responses;
