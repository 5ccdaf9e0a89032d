//! `ferrite serve`'s flags, and how they override the config file.

use std::path::PathBuf;

use clap::Args;
use ferrite_engine::Runtime;
use serde_json::{json, Map, Value};

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
    /// Also serve on this port (Ollama's is 11434), for tools that assume it.
    #[arg(long)]
    pub ollama_port: Option<u16>,
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
    /// Do not serve the web app at `/` (the API stays).
    #[arg(long)]
    pub no_ui: bool,
    /// Models resident at once; loading another evicts the least recently used.
    #[arg(long)]
    pub max_loaded_models: Option<usize>,
    /// A folder of models to offer (LM Studio's `publisher/repo/file.gguf` layout works).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    /// An embedding model (GGUF) to offer beside the chat model.
    #[arg(long)]
    pub embedding_model: Option<PathBuf>,
    /// Idle seconds before a just-in-time loaded model unloads (0 = never).
    #[arg(long)]
    pub ttl: Option<u64>,
    /// A LoRA adapter served with the model, as llama-server's `--lora`: a
    /// GGUF LoRA file, or a PEFT folder for a safetensors model (repeatable;
    /// its id is the file's name, as in `model@id`).
    #[arg(long = "lora", value_name = "PATH")]
    pub loras: Vec<PathBuf>,
    /// The startup model's chat template instead of its own, as
    /// llama-server's: a built-in name (`chatml`, `llama3`, `gemma`, `phi3`,
    /// `mistral`) or Jinja.
    #[arg(long, value_name = "NAME_OR_JINJA")]
    pub chat_template: Option<String>,
    /// The same, from a file.
    #[arg(long, value_name = "PATH")]
    pub chat_template_file: Option<PathBuf>,
    /// The startup model's vision projector (`mmproj*.gguf`), as
    /// llama-server's; unset: one beside the model's file, if any.
    #[arg(long, value_name = "PATH")]
    pub mmproj: Option<PathBuf>,
    /// Require this bearer token on /v1 routes (tenant `default`).
    #[arg(long, env = "FERRITE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

impl ServeArgs {
    /// The flags that were given, shaped like the config file.
    pub fn overrides(&self) -> Value {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| json!(p));
        let on = |flag: bool, value: bool| flag.then_some(Value::Bool(value));
        // Accept the spellings `FromStr` knows; serde names the valid ones.
        let runtime = self.runtime.clone().map(|r| match r.parse::<Runtime>() {
            Ok(known) => known.name().to_string(),
            Err(_) => r,
        });
        let cors = (!self.cors_origins.is_empty()).then(|| json!(self.cors_origins));
        let loras = (!self.loras.is_empty()).then(|| {
            let adapters: Vec<Value> = self
                .loras
                .iter()
                .map(|p| json!({"id": ferrite_engine::default_id(p), "path": p}))
                .collect();
            Value::Array(adapters)
        });
        // (section, key, value); "" is the top level.
        let given = [
            ("", "host", self.host.clone().map(Value::from)),
            ("", "port", self.port.map(Value::from)),
            ("", "ollama_port", self.ollama_port.map(Value::from)),
            ("", "data_dir", path(&self.data_dir)),
            ("model", "path", path(&self.model)),
            ("model", "id", self.model_id.clone().map(Value::from)),
            ("model", "isq", self.isq.clone().map(Value::from)),
            ("model", "runtime", runtime.map(Value::from)),
            ("model", "threads", self.threads.map(Value::from)),
            ("model", "batch_size", self.batch_size.map(Value::from)),
            (
                "model",
                "kv_cache_tokens",
                self.kv_cache_tokens.map(Value::from),
            ),
            (
                "model",
                "kv_cache_type",
                self.kv_cache_type.clone().map(Value::from),
            ),
            ("model", "gpu_layers", self.gpu_layers.map(Value::from)),
            ("model", "adapters", loras),
            (
                "model",
                "chat_template",
                self.chat_template.clone().map(Value::from),
            ),
            (
                "model",
                "chat_template_file",
                path(&self.chat_template_file),
            ),
            ("model", "mmproj", path(&self.mmproj)),
            ("model", "max_seqs", self.max_seqs.map(Value::from)),
            ("model", "prefix_cache", self.prefix_cache.map(Value::from)),
            (
                "model",
                "prefix_cache_mib",
                self.prefix_cache_mib.map(Value::from),
            ),
            ("model", "dtype", self.dtype.clone().map(Value::from)),
            ("model", "force_cpu", on(self.cpu, true)),
            ("model", "paged_attn", on(self.no_paged_attn, false)),
            (
                "model",
                "paged_attn_mem_mb",
                self.paged_attn_mem.map(Value::from),
            ),
            (
                "model",
                "paged_attn_block_size",
                self.paged_attn_block_size.map(Value::from),
            ),
            (
                "registry",
                "max_loaded_models",
                self.max_loaded_models.map(Value::from),
            ),
            ("registry", "dir", path(&self.models_dir)),
            ("registry", "embedding_model", path(&self.embedding_model)),
            ("registry", "ttl_secs", self.ttl.map(Value::from)),
            (
                "http",
                "max_body_bytes",
                self.max_body_bytes.map(Value::from),
            ),
            (
                "http",
                "request_timeout_secs",
                self.request_timeout.map(Value::from),
            ),
            (
                "http",
                "drain_timeout_secs",
                self.drain_timeout.map(Value::from),
            ),
            ("http", "max_in_flight", self.max_in_flight.map(Value::from)),
            ("http", "cors_origins", cors),
            ("http", "ui", on(self.no_ui, false)),
            ("auth", "api_key", self.api_key.clone().map(Value::from)),
            ("memory", "enabled", on(self.memory, true)),
            ("cache", "enabled", on(self.no_cache, false)),
            ("log", "format", self.log_format.clone().map(Value::from)),
        ];
        let mut root = Map::new();
        for (section, key, value) in given {
            let Some(value) = value else { continue };
            let map = if section.is_empty() {
                &mut root
            } else {
                match root
                    .entry(section)
                    .or_insert_with(|| Value::Object(Map::new()))
                {
                    Value::Object(map) => map,
                    _ => continue,
                }
            };
            map.insert(key.into(), value);
        }
        Value::Object(root)
    }
}
