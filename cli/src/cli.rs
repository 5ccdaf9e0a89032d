//! Command-line interface.

use clap::{Parser, Subcommand};
use ferrite_server::ServeArgs;

#[derive(Parser)]
#[command(
    name = "ferrite",
    version,
    about = "An OpenAI-compatible LLM server (llama.cpp and mistral.rs), and its client"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Load a model and serve the OpenAI API (default port 1234, like LM Studio).
    Serve(Box<ServeArgs>),
    /// Drive an OpenAI-compatible server with concurrent streams and print latency figures.
    Bench(crate::client::bench::BenchArgs),
    /// Time response-cache hits against a running server.
    BenchCache(crate::client::bench_cache::CacheBenchArgs),
    /// Run many short chats against a server and print its memory as they go.
    BenchSoak(crate::client::bench_soak::SoakArgs),
    /// Print the OpenAPI 3.1 document (the same one `/openapi.json` serves).
    Openapi,
    /// List the models a running server can load.
    Ls(crate::client::models::ListArgs),
    /// List the models a running server has loaded, with memory and idle time.
    Ps(crate::client::models::ListArgs),
    /// Load a model into a running server, with a progress bar.
    Load(crate::client::models::LoadArgs),
    /// Download a model from the Hugging Face Hub into a running server's
    /// models directory (as `lms get`): a repo, a link, or search words.
    Get(crate::client::get::GetArgs),
    /// Unload a model (or --all) from a running server.
    Unload(crate::client::models::UnloadArgs),
    /// Chat with a model of a running server in the terminal (streaming).
    Chat(crate::client::chat::ChatArgs),
    /// Evaluate a candidate model against a versioned alias (and promote it).
    Eval(crate::client::eval::EvalArgs),
    /// Make a versioned alias's previous version current again.
    Rollback(crate::client::eval::RollbackArgs),
    /// Write your stored exchanges as OpenAI fine-tuning JSONL.
    Export(crate::client::export::ExportArgs),
    /// Start, stop or check a background server.
    #[command(subcommand)]
    Server(crate::client::daemon::ServerCommand),
    /// Re-quantize a GGUF model file (e.g. to Q8_0).
    Quantize(crate::client::quantize::QuantizeArgs),
    /// Convert a sentence-transformers BERT folder to a GGUF embedding model.
    Convert(crate::client::convert::ConvertArgs),
}
