//! Layered configuration: built-in defaults, then a TOML file, then
//! `FERRITE_*` environment variables, then command-line flags. Every
//! section's type is here or in the middleware crate, so the rooms it
//! configures import it and it imports none of them.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ferrite_engine::EngineOptions;
use ferrite_middleware::auth::AuthConfig;
use ferrite_middleware::budget::BudgetConfig;
use ferrite_middleware::cache::CacheConfig;
use ferrite_middleware::context::LongContextConfig;
use ferrite_middleware::memory::MemoryConfig;
use ferrite_middleware::route_classifier::RouterConfig;
use ferrite_middleware::thinking::ThinkingConfig;
use ferrite_openapi::validate::RequestLimits;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

pub mod aliases;
pub mod downloads;
pub mod images;
pub mod models;

use aliases::AliasConfig;
use downloads::DownloadConfig;
use images::ImagesConfig;
use models::RegistryConfig;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub host: String,
    pub port: u16,
    /// A second port serving the same API, for tools that assume Ollama's
    /// (11434); off unless set.
    pub ollama_port: Option<u16>,
    /// The startup model, and the engine settings other models start from.
    pub model: EngineOptions,
    /// The other models: a directory to scan, entries, residency limits.
    pub registry: RegistryConfig,
    /// Virtual models that route each request to a specialist model.
    pub routers: Vec<RouterConfig>,
    pub http: HttpOptions,
    /// The shape of one request: prompts and completions it may ask for.
    pub limits: RequestLimits,
    pub log: LogOptions,
    pub auth: AuthConfig,
    /// Where ferrite keeps its state (the memory database).
    pub data_dir: PathBuf,
    pub memory: MemoryConfig,
    pub cache: CacheConfig,
    pub budgets: BudgetConfig,
    /// `reasoning_effort` budgets and multi-round thinking limits.
    pub thinking: ThinkingConfig,
    /// Prompts longer than the context: the default policy, MemAgent's sizes
    /// and prompts.
    pub long_context: LongContextConfig,
    /// The desktop system's orchestrator API (`/chat`, `/generate`...).
    pub orchestrator: OrchestratorConfig,
    /// Versioned aliases, promoted by evaluation.
    pub aliases: Vec<AliasConfig>,
    /// Getting models from the Hugging Face Hub.
    pub downloads: DownloadConfig,
    /// Image URLs: fetched for clients or not.
    pub images: ImagesConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpOptions {
    /// Largest accepted request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// Longest a request may take before its response starts (408).
    pub request_timeout_secs: u64,
    /// On SIGINT/SIGTERM, how long in-flight requests may still run.
    pub drain_timeout_secs: u64,
    /// Requests generating or queued at once; more get 503.
    pub max_in_flight: usize,
    /// Open connections, SDK sockets included; more wait to be accepted
    /// (and an SDK socket past it gets 503).
    pub max_connections: usize,
    /// Calls and channels one SDK socket may have running; more are
    /// refused with the protocol's error.
    pub socket_in_flight: usize,
    /// Per SDK socket, twice: bytes of the calls running (more are refused
    /// with the protocol's error), and bytes waiting to be sent to its
    /// client (calls writing more wait for it to read).
    pub socket_bytes: usize,
    /// Seconds a client may leave what is sent to it unread before its
    /// socket is closed.
    pub slow_client_secs: u64,
    /// Origins allowed by CORS; empty turns CORS off, `["*"]` allows any.
    pub cors_origins: Vec<String>,
    /// Serve the web app at `/`.
    pub ui: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogOptions {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter, e.g. `info` or `ferrite=debug,info`.
    pub filter: String,
    /// Also log prompts and answers (off: they may be private).
    pub content: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 1234,
            ollama_port: None,
            model: EngineOptions::default(),
            images: ImagesConfig::default(),
            registry: RegistryConfig::default(),
            routers: Vec::new(),
            http: HttpOptions::default(),
            limits: RequestLimits::default(),
            log: LogOptions::default(),
            auth: AuthConfig::default(),
            data_dir: default_data_dir(),
            memory: MemoryConfig::default(),
            cache: CacheConfig::default(),
            budgets: BudgetConfig::default(),
            thinking: ThinkingConfig::default(),
            long_context: LongContextConfig::default(),
            orchestrator: OrchestratorConfig::default(),
            aliases: Vec::new(),
            downloads: DownloadConfig::default(),
        }
    }
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024 * 1024,
            request_timeout_secs: 600,
            drain_timeout_secs: 30,
            max_in_flight: 256,
            max_connections: 1024,
            socket_in_flight: 16,
            socket_bytes: 8 << 20,
            slow_client_secs: 30,
            ui: true,
            cors_origins: Vec::new(),
        }
    }
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            format: "text".into(),
            // llama.cpp reports every tensor it loads at info level.
            filter: "info,llama-cpp-2=warn".into(),
            content: false,
        }
    }
}

/// `$XDG_DATA_HOME/ferrite`, else `~/.local/share/ferrite`, else `./data`.
fn default_data_dir() -> PathBuf {
    let xdg = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty());
    let home = std::env::var_os("HOME").filter(|v| !v.is_empty());
    match (xdg, home) {
        (Some(xdg), _) => PathBuf::from(xdg).join("ferrite"),
        (None, Some(home)) => PathBuf::from(home).join(".local/share/ferrite"),
        (None, None) => PathBuf::from("data"),
    }
}

const SECTIONS: [&str; 19] = [
    "host",
    "port",
    "model",
    "registry",
    "routers",
    "http",
    "limits",
    "log",
    "auth",
    "data_dir",
    "memory",
    "cache",
    "budgets",
    "thinking",
    "long_context",
    "orchestrator",
    "aliases",
    "downloads",
    "images",
];

impl Config {
    /// The memory database file.
    pub fn memory_path(&self) -> PathBuf {
        self.memory
            .path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("memory.db"))
    }

    /// Defaults < `file` (or `./ferrite.toml` if present) < env < `overrides`.
    pub fn load(file: Option<&Path>, overrides: serde_json::Value) -> anyhow::Result<Config> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        let default_file = PathBuf::from("ferrite.toml");
        match file {
            Some(path) => {
                anyhow::ensure!(path.exists(), "config file {} not found", path.display());
                fig = fig.merge(Toml::file_exact(path));
            }
            None if default_file.exists() => fig = fig.merge(Toml::file_exact(default_file)),
            None => {}
        }
        // Only this config's sections: other FERRITE_* variables (scripts,
        // tests) are not configuration mistakes.
        let env = Env::prefixed("FERRITE_").split("__").filter(|key| {
            // Keys are still upper case here; figment lowercases them later.
            let section = key.as_str().split('.').next().unwrap_or_default();
            SECTIONS.iter().any(|s| s.eq_ignore_ascii_case(section))
        });
        let mut config: Config = fig
            .merge(env)
            .merge(Serialized::globals(overrides))
            .extract()
            .context("invalid configuration")?;
        // Every model decodes images within the request limits.
        config.model.images = config.limits.images();
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config file of its own per test (tests run in parallel).
    fn file(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("ferrite-{}-{name}.toml", std::process::id()));
        std::fs::write(&path, text).expect("write temp config");
        path
    }

    // The environment layer is covered end to end (tests/tests/lifecycle.rs):
    // setting variables here would race with the other tests.
    #[test]
    fn layers_in_order() {
        let path = file("layers", "port = 2000\n[model]\nmax_seqs = 4\n");
        let cfg = Config::load(Some(&path), serde_json::json!({"model": {"max_seqs": 8}}));
        let cfg = cfg.expect("valid config");
        assert_eq!(cfg.port, 2000);
        assert_eq!(cfg.model.max_seqs, 8);
        assert_eq!(cfg.host, "127.0.0.1");
        assert_eq!(cfg.http.max_body_bytes, 16 * 1024 * 1024);
    }

    #[test]
    fn rejects_unknown_keys_and_missing_files() {
        let path = file("unknown", "prot = 2000\n");
        assert!(Config::load(Some(&path), serde_json::json!({})).is_err());
        let missing = Path::new("/nonexistent/ferrite.toml");
        assert!(Config::load(Some(missing), serde_json::json!({})).is_err());
    }
}

/// `[orchestrator]` in the config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrchestratorConfig {
    pub enabled: bool,
    /// Where the API is served: `/orchestrator` serves
    /// `/orchestrator/chat`; empty serves `/chat` (and ferrite's own
    /// `/health` answers the health check).
    pub prefix: String,
    /// The model (default: the server's default chat model).
    pub model: Option<String>,
    pub system_prompt: String,
    /// Files placed in the system message: read at start, and again when
    /// they change.
    pub documents: Vec<PathBuf>,
    /// Latest exchanges of the conversation sent with each message.
    pub history_turns: usize,
    /// The answer's limit when the client gives none.
    pub max_tokens: u32,
    /// The conversation's name in the memory store (one per tenant).
    pub conversation: String,
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            prefix: "/orchestrator".into(),
            model: None,
            system_prompt: "You are a helpful assistant.".into(),
            documents: Vec::new(),
            history_turns: 10,
            max_tokens: 512,
            conversation: "orchestrator".into(),
        }
    }
}
