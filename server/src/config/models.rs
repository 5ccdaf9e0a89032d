//! `[registry]`: the models besides the startup one, where they are found,
//! how many stay loaded and for how long.

use std::path::PathBuf;

use ferrite_engine::{AdapterOptions, Delimiters, IsqChoice, ModelFormat, RopeScaling, Runtime};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// Scanned for models; default `~/.lmstudio/models` when it exists,
    /// else `~/.cache/ferrite/models`.
    pub dir: Option<PathBuf>,
    /// Whether to scan `dir` at all.
    pub scan: bool,
    /// Models resident at once; loading one more evicts the least recently
    /// used idle one (LM Studio's auto-evict keeps 1).
    pub max_loaded_models: usize,
    /// Idle seconds before a just-in-time loaded model unloads; 0 = never.
    pub ttl_secs: u64,
    /// Models by hand, with their own settings.
    pub models: Vec<ModelEntry>,
    /// An embedding model offered beside the startup model, as LM Studio
    /// ships one; memory and routers embed with it where configured to.
    pub embedding_model: Option<PathBuf>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            dir: None,
            scan: true,
            max_loaded_models: 1,
            ttl_secs: 3600,
            models: Vec::new(),
            embedding_model: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub id: String,
    pub path: PathBuf,
    /// Checked against the file when given.
    #[serde(default)]
    pub format: Option<ModelFormat>,
    #[serde(default)]
    pub isq: Option<IsqChoice>,
    /// `auto`, `llama.cpp` or `mistral.rs`; the server's default when unset.
    #[serde(default)]
    pub runtime: Option<Runtime>,
    #[serde(default)]
    pub context_length: Option<u32>,
    /// Allows a `context_length` past the trained one (llama.cpp:
    /// `linear` or `yarn`); without it a longer context is a 400.
    #[serde(default)]
    pub rope_scaling: Option<RopeScaling>,
    /// The chat template instead of the model's own: a built-in name
    /// (`chatml`, `llama3`, `gemma`, `phi3`, `mistral`) or Jinja.
    #[serde(default)]
    pub chat_template: Option<String>,
    /// The same from a file.
    #[serde(default)]
    pub chat_template_file: Option<PathBuf>,
    /// Its vision projector (`mmproj*.gguf`); unset: one beside its file.
    #[serde(default)]
    pub mmproj: Option<PathBuf>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub thinking: Option<Delimiters>,
    #[serde(default)]
    pub max_tokens: Option<usize>,
    /// Idle seconds before it unloads, whoever loaded it; 0 = never.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
    /// LoRA adapters served with it: GGUF files with a GGUF model
    /// (llama.cpp), PEFT folders with a safetensors folder (mistral.rs).
    #[serde(default)]
    pub adapters: Vec<AdapterOptions>,
}

impl RegistryConfig {
    pub fn dir(&self) -> Option<PathBuf> {
        if let Some(dir) = &self.dir {
            return Some(dir.clone());
        }
        let home = PathBuf::from(std::env::var_os("HOME").filter(|h| !h.is_empty())?);
        let lmstudio = home.join(".lmstudio/models");
        Some(if lmstudio.is_dir() {
            lmstudio
        } else {
            home.join(".cache/ferrite/models")
        })
    }
}
