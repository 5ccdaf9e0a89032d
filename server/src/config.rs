//! Layered configuration: built-in defaults, then a TOML file, then
//! `FERRITE_*` environment variables, then command-line flags.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ferrite_engine::EngineOptions;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub model: EngineOptions,
    pub http: HttpOptions,
    pub log: LogOptions,
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
    /// Origins allowed by CORS; empty turns CORS off, `["*"]` allows any.
    pub cors_origins: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogOptions {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter, e.g. `info` or `ferrite=debug,info`.
    pub filter: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 1234,
            model: EngineOptions::default(),
            http: HttpOptions::default(),
            log: LogOptions::default(),
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
            cors_origins: Vec::new(),
        }
    }
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            format: "text".into(),
            filter: "info".into(),
        }
    }
}

const SECTIONS: [&str; 5] = ["host", "port", "model", "http", "log"];

impl Config {
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
        fig.merge(env)
            .merge(Serialized::globals(overrides))
            .extract()
            .context("invalid configuration")
    }
}

#[cfg(test)]
// figment's Jail fixes the closure's error type; it is not ours to shrink.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn layers_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("ferrite.toml", "port = 2000\n[model]\nmax_seqs = 4\n")?;
            jail.set_env("FERRITE_PORT", "3000");
            jail.set_env("FERRITE_HTTP__MAX_BODY_BYTES", "10");
            jail.set_env("FERRITE_BIN", "/not/config");
            let cfg = Config::load(None, serde_json::json!({"model": {"max_seqs": 8}}))
                .map_err(|e| e.to_string())?;
            assert_eq!(cfg.port, 3000);
            assert_eq!(cfg.http.max_body_bytes, 10);
            assert_eq!(cfg.model.max_seqs, 8);
            assert_eq!(cfg.host, "127.0.0.1");
            Ok(())
        });
    }

    #[test]
    fn rejects_unknown_keys() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("ferrite.toml", "prot = 2000\n")?;
            assert!(Config::load(None, serde_json::json!({})).is_err());
            Ok(())
        });
    }
}
