//! Command-line interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ferrite_engine::Runtime;
use serde_json::{json, Map, Value};

#[derive(Parser)]
#[command(
    name = "ferrite",
    version,
    about = "An OpenAI-compatible LLM server on mistral.rs"
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
    Bench(crate::bench::BenchArgs),
    /// Time response-cache hits against a running server.
    BenchCache(crate::bench_cache::CacheBenchArgs),
    /// Run many short chats against a server and print its memory as they go.
    BenchSoak(crate::bench_soak::SoakArgs),
    /// Print the OpenAPI 3.1 document (the same one `/openapi.json` serves).
    Openapi,
    /// List the models a running server can load.
    Ls(crate::models_cmd::ListArgs),
    /// List the models a running server has loaded, with memory and idle time.
    Ps(crate::models_cmd::ListArgs),
    /// Load a model into a running server, with a progress bar.
    Load(crate::models_cmd::LoadArgs),
    /// Unload a model (or --all) from a running server.
    Unload(crate::models_cmd::UnloadArgs),
    /// Chat with a model of a running server in the terminal (streaming).
    Chat(crate::chat_cmd::ChatArgs),
    /// Start, stop or check a background server.
    #[command(subcommand)]
    Server(crate::daemon::ServerCommand),
    /// Re-quantize a GGUF model file (e.g. to Q8_0).
    Quantize(crate::quantize_cmd::QuantizeArgs),
}

/// Flags override the config file and `FERRITE_*` variables.
#[derive(Args, Default)]
pub struct ServeArgs {
    /// TOML config file (default: ./ferrite.toml when present).
    #[arg(long, env = "FERRITE_CONFIG")]
    pub config: Option<PathBuf>,
    /// A .gguf file or a Hugging Face safetensors folder.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The id clients use for the model (default: derived from the file name).
    #[arg(long)]
    pub model_id: Option<String>,
    #[arg(long)]
    pub host: Option<String>,
    #[arg(long)]
    pub port: Option<u16>,
    /// Engine for the model: auto (llama.cpp for .gguf, mistral.rs for
    /// safetensors folders), llama.cpp or mistral.rs.
    #[arg(long)]
    pub runtime: Option<String>,
    /// llama.cpp compute threads (default: the physical cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// llama.cpp: most tokens one decode step carries (prompt chunks included).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// llama.cpp: KV cache tokens shared by the model's sequences (default: its context).
    #[arg(long)]
    pub kv_cache_tokens: Option<u32>,
    /// llama.cpp: KV cache type, f16 or q8_0.
    #[arg(long)]
    pub kv_cache_type: Option<String>,
    /// llama.cpp on CUDA/Metal builds: layers offloaded to the GPU (default: all).
    #[arg(long)]
    pub gpu_layers: Option<u32>,
    /// In-situ quantization for safetensors models: q4_0, q4k, q8_0 or none.
    #[arg(long)]
    pub isq: Option<String>,
    /// Sequences decoded together (continuous batching).
    #[arg(long)]
    pub max_seqs: Option<usize>,
    /// Sequences kept in the prefix cache (0 disables it).
    #[arg(long)]
    pub prefix_cache: Option<usize>,
    /// Most MiB of KV cache the prefix cache keeps per model.
    #[arg(long)]
    pub prefix_cache_mib: Option<usize>,
    /// Activation dtype: auto, f32, f16 or bf16.
    #[arg(long)]
    pub dtype: Option<String>,
    /// Run on the CPU even when a GPU is available.
    #[arg(long)]
    pub cpu: bool,
    /// Turn PagedAttention off (it is on by default in CUDA/Metal builds).
    #[arg(long)]
    pub no_paged_attn: bool,
    /// GPU memory for the PagedAttention KV cache, in MiB.
    #[arg(long)]
    pub paged_attn_mem: Option<usize>,
    #[arg(long)]
    pub paged_attn_block_size: Option<usize>,
    /// Largest request body in bytes (413 beyond).
    #[arg(long)]
    pub max_body_bytes: Option<usize>,
    /// Seconds a request may take before its response starts.
    #[arg(long)]
    pub request_timeout: Option<u64>,
    /// Seconds in-flight requests may run after SIGINT/SIGTERM.
    #[arg(long)]
    pub drain_timeout: Option<u64>,
    /// Requests in flight at once before 503s.
    #[arg(long)]
    pub max_in_flight: Option<usize>,
    /// Allow a CORS origin (repeatable; `*` for any).
    #[arg(long = "cors-origin")]
    pub cors_origins: Vec<String>,
    /// Log format: text or json.
    #[arg(long)]
    pub log_format: Option<String>,
    /// Where ferrite keeps its state (the memory database).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Turn conversation memory on.
    #[arg(long)]
    pub memory: bool,
    /// Turn the response cache off.
    #[arg(long)]
    pub no_cache: bool,
    /// Models resident at once; loading another evicts the least recently used.
    #[arg(long)]
    pub max_loaded_models: Option<usize>,
    /// A folder of models to offer (LM Studio's `publisher/repo/file.gguf` layout works).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    /// Idle seconds before a just-in-time loaded model unloads (0 = never).
    #[arg(long)]
    pub ttl: Option<u64>,
    /// Require this bearer token on /v1 routes (tenant `default`).
    #[arg(long, env = "FERRITE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

fn put(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        map.insert(key.to_string(), v);
    }
}

impl ServeArgs {
    /// The flags that were given, shaped like the config file.
    pub fn overrides(&self) -> Value {
        let mut root = Map::new();
        put(&mut root, "host", self.host.clone().map(Value::from));
        put(&mut root, "port", self.port.map(Value::from));
        put(
            &mut root,
            "data_dir",
            self.data_dir.as_ref().map(|p| json!(p)),
        );

        let mut model = Map::new();
        put(&mut model, "path", self.model.as_ref().map(|p| json!(p)));
        put(&mut model, "id", self.model_id.clone().map(Value::from));
        put(&mut model, "isq", self.isq.clone().map(Value::from));
        // Accept the spellings `FromStr` knows; serde names the valid ones.
        let runtime = self.runtime.clone().map(|r| match r.parse::<Runtime>() {
            Ok(known) => known.name().to_string(),
            Err(_) => r,
        });
        put(&mut model, "runtime", runtime.map(Value::from));
        put(&mut model, "threads", self.threads.map(Value::from));
        put(&mut model, "batch_size", self.batch_size.map(Value::from));
        put(
            &mut model,
            "kv_cache_tokens",
            self.kv_cache_tokens.map(Value::from),
        );
        put(
            &mut model,
            "kv_cache_type",
            self.kv_cache_type.clone().map(Value::from),
        );
        put(&mut model, "gpu_layers", self.gpu_layers.map(Value::from));
        put(&mut model, "max_seqs", self.max_seqs.map(Value::from));
        put(
            &mut model,
            "prefix_cache",
            self.prefix_cache.map(Value::from),
        );
        put(
            &mut model,
            "prefix_cache_mib",
            self.prefix_cache_mib.map(Value::from),
        );
        put(&mut model, "dtype", self.dtype.clone().map(Value::from));
        put(
            &mut model,
            "force_cpu",
            self.cpu.then_some(Value::Bool(true)),
        );
        put(
            &mut model,
            "paged_attn",
            self.no_paged_attn.then_some(Value::Bool(false)),
        );
        put(
            &mut model,
            "paged_attn_mem_mb",
            self.paged_attn_mem.map(Value::from),
        );
        put(
            &mut model,
            "paged_attn_block_size",
            self.paged_attn_block_size.map(Value::from),
        );

        let mut registry = Map::new();
        put(
            &mut registry,
            "max_loaded_models",
            self.max_loaded_models.map(Value::from),
        );
        put(
            &mut registry,
            "dir",
            self.models_dir.as_ref().map(|p| json!(p)),
        );
        put(&mut registry, "ttl_secs", self.ttl.map(Value::from));

        let mut http = Map::new();
        put(
            &mut http,
            "max_body_bytes",
            self.max_body_bytes.map(Value::from),
        );
        put(
            &mut http,
            "request_timeout_secs",
            self.request_timeout.map(Value::from),
        );
        put(
            &mut http,
            "drain_timeout_secs",
            self.drain_timeout.map(Value::from),
        );
        put(
            &mut http,
            "max_in_flight",
            self.max_in_flight.map(Value::from),
        );
        if !self.cors_origins.is_empty() {
            http.insert("cors_origins".into(), json!(self.cors_origins));
        }

        let mut auth = Map::new();
        put(&mut auth, "api_key", self.api_key.clone().map(Value::from));

        let mut memory = Map::new();
        put(
            &mut memory,
            "enabled",
            self.memory.then_some(Value::Bool(true)),
        );
        let mut cache = Map::new();
        put(
            &mut cache,
            "enabled",
            self.no_cache.then_some(Value::Bool(false)),
        );

        let mut log = Map::new();
        put(&mut log, "format", self.log_format.clone().map(Value::from));

        for (key, section) in [
            ("model", model),
            ("registry", registry),
            ("http", http),
            ("log", log),
            ("auth", auth),
            ("memory", memory),
            ("cache", cache),
        ] {
            if !section.is_empty() {
                root.insert(key.into(), Value::Object(section));
            }
        }
        Value::Object(root)
    }
}
