//! How to load a model and run the engine.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelFormat {
    Gguf,
    Safetensors,
}

/// In-situ quantization for safetensors models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IsqChoice {
    None,
    Q4_0,
    Q4k,
    Q8_0,
}

impl IsqChoice {
    /// The weight type as users see it (llama.cpp's spelling).
    pub fn label(self) -> Option<&'static str> {
        match self {
            IsqChoice::None => None,
            IsqChoice::Q4_0 => Some("Q4_0"),
            IsqChoice::Q4k => Some("Q4_K"),
            IsqChoice::Q8_0 => Some("Q8_0"),
        }
    }

    /// The name mistral.rs's `parse_isq_value` understands.
    pub fn mistral_name(self) -> Option<&'static str> {
        match self {
            IsqChoice::None => None,
            IsqChoice::Q4_0 => Some("q4_0"),
            IsqChoice::Q4k => Some("q4k"),
            IsqChoice::Q8_0 => Some("q8_0"),
        }
    }
}

impl std::str::FromStr for IsqChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" | "off" => Ok(Self::None),
            "q4_0" | "q40" => Ok(Self::Q4_0),
            "q4k" | "q4_k" => Ok(Self::Q4k),
            "q8_0" | "q80" => Ok(Self::Q8_0),
            other => Err(format!(
                "unknown ISQ type `{other}` (q4_0, q4k, q8_0, none)"
            )),
        }
    }
}

/// Which engine runs a model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Runtime {
    /// llama.cpp for `.gguf` files, mistral.rs for safetensors folders.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "llama.cpp")]
    LlamaCpp,
    #[serde(rename = "mistral.rs")]
    MistralRs,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Auto => "auto",
            Runtime::LlamaCpp => "llama.cpp",
            Runtime::MistralRs => "mistral.rs",
        }
    }
}

impl Runtime {
    /// What `auto` means for a model in `format`.
    pub fn resolve(self, format: ModelFormat) -> Runtime {
        match (self, format) {
            (Runtime::Auto, ModelFormat::Gguf) => Runtime::LlamaCpp,
            (Runtime::Auto, ModelFormat::Safetensors) => Runtime::MistralRs,
            (r, _) => r,
        }
    }
}

impl std::str::FromStr for Runtime {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "llama.cpp" | "llamacpp" | "llama-cpp" => Ok(Self::LlamaCpp),
            "mistral.rs" | "mistralrs" | "mistral-rs" => Ok(Self::MistralRs),
            other => Err(format!(
                "unknown runtime `{other}` (auto, llama.cpp, mistral.rs)"
            )),
        }
    }
}

/// Element type of llama.cpp's KV cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvType {
    #[default]
    F16,
    Q8_0,
}

impl std::str::FromStr for KvType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "f16" => Ok(Self::F16),
            "q8_0" => Ok(Self::Q8_0),
            other => Err(format!("unknown KV cache type `{other}` (f16, q8_0)")),
        }
    }
}

/// How llama.cpp stretches a model's rotary positions past the context it
/// was trained for (llama-server's `--rope-scaling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RopeScaling {
    Linear,
    Yarn,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineOptions {
    /// Which engine runs the model.
    pub runtime: Runtime,
    /// A `.gguf` file, or a folder with `config.json` and `*.safetensors`.
    pub path: PathBuf,
    /// The id clients use; derived from the file name when empty.
    pub id: Option<String>,
    /// In-situ quantization applied when loading safetensors (ignored for GGUF).
    pub isq: IsqChoice,
    /// Sequences decoded together by continuous batching.
    pub max_seqs: usize,
    /// Finished sequences kept in the prefix cache; 0 disables it.
    pub prefix_cache: usize,
    /// Bound on the prefix cache's KV tensors, in MiB, per model.
    pub prefix_cache_mib: usize,
    /// Activation dtype (`auto`, `f32`, `f16`, `bf16`); `auto` means f32 on CPU.
    pub dtype: String,
    pub force_cpu: bool,
    /// PagedAttention (CUDA/Metal builds only).
    pub paged_attn: bool,
    /// GPU memory for the PagedAttention KV cache, in MiB; unset = 90% of free.
    pub paged_attn_mem_mb: Option<usize>,
    pub paged_attn_block_size: usize,
    /// Most tokens one completion may generate, whatever it asks for
    /// (llama.cpp's `--n-predict`); unset = what the context leaves.
    pub max_tokens: Option<usize>,
    /// Caps the context below what the model supports (prompt + completion).
    pub context_length: Option<u32>,
    /// llama.cpp: allows contexts past the trained one, stretching the
    /// rotary positions this way (unset: a longer context is refused).
    pub rope_scaling: Option<RopeScaling>,
    /// The chat template instead of the model's own: a built-in name
    /// (`chatml`, `llama3`, `gemma`, `phi3`, `mistral`) or Jinja.
    pub chat_template: Option<String>,
    /// The same, from a file (`chat_template` wins).
    pub chat_template_file: Option<PathBuf>,
    /// llama.cpp: the vision projector (`mmproj*.gguf`); unset = one beside
    /// the model's file, if any.
    pub mmproj: Option<PathBuf>,
    /// What an image may be (the server's `[limits]`).
    #[serde(skip)]
    pub images: ferrite_openapi::validate::ImageLimits,
    /// How this model's thinking block is delimited.
    pub thinking: Delimiters,
    /// llama.cpp: compute threads; unset = the machine's physical cores.
    pub threads: Option<usize>,
    /// llama.cpp: most tokens one decode step carries (prompt chunks plus
    /// one token per running sequence).
    pub batch_size: usize,
    /// llama.cpp: tokens of KV cache shared by all of the model's
    /// sequences; unset = the model's context length.
    pub kv_cache_tokens: Option<u32>,
    /// llama.cpp: KV cache element type.
    pub kv_cache_type: KvType,
    /// llama.cpp: layers offloaded to the GPU on CUDA/Metal builds; unset = all.
    pub gpu_layers: Option<u32>,
    /// LoRA adapters loaded with the model; requests select them by id.
    pub adapters: Vec<AdapterOptions>,
    /// mistral.rs: merge every adapter into the weights as they load (a
    /// model of its own per adapter set); set by the registry, not config.
    #[serde(skip)]
    pub merge_adapters: bool,
}

/// A LoRA adapter served with a model: a GGUF LoRA file on llama.cpp, a
/// PEFT folder (`adapter_config.json`, `adapter_model.safetensors`) on mistral.rs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterOptions {
    pub id: String,
    pub path: PathBuf,
    /// The scale of a request that names the adapter without one.
    #[serde(default = "unit_scale")]
    pub scale: f32,
}

fn unit_scale() -> f32 {
    1.0
}

/// The strings around a thinking block in the model's output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Delimiters {
    pub open: String,
    pub close: String,
}

impl Default for Delimiters {
    fn default() -> Self {
        Self {
            open: "<think>".into(),
            close: "</think>".into(),
        }
    }
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            runtime: Runtime::Auto,
            path: PathBuf::from("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
            id: None,
            isq: IsqChoice::Q4k,
            max_seqs: 16,
            prefix_cache: 16,
            prefix_cache_mib: 1024,
            dtype: "auto".into(),
            force_cpu: false,
            paged_attn: true,
            paged_attn_mem_mb: None,
            paged_attn_block_size: 32,
            max_tokens: None,
            context_length: None,
            rope_scaling: None,
            chat_template: None,
            chat_template_file: None,
            mmproj: None,
            images: Default::default(),
            thinking: Delimiters::default(),
            threads: None,
            batch_size: 512,
            kv_cache_tokens: None,
            kv_cache_type: KvType::F16,
            gpu_layers: None,
            adapters: Vec::new(),
            merge_adapters: false,
        }
    }
}
