//! `ferrite ls`, `ps`, `load` and `unload`, against a running server.

use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use ferrite_openapi::manage::{LoadProgress, LoadResponse, UnloadResponse, V1Model, V1ModelList};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::client::remote::{duration, size, Client, Remote};

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct LoadArgs {
    /// Model id or alias.
    pub model: String,
    /// Idle seconds before it unloads (default: stays loaded).
    #[arg(long)]
    pub ttl: Option<u64>,
    /// Tokens of context to load it with (as `lms load --context-length`);
    /// a model loaded with another context is loaded again.
    #[arg(long, short = 'c')]
    pub context_length: Option<u32>,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Args)]
pub struct UnloadArgs {
    /// Model id or alias.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub model: Option<String>,
    /// Unload every loaded model.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub remote: Remote,
}

/// `ferrite ls`: every model the server can load.
pub async fn ls(args: ListArgs) -> anyhow::Result<()> {
    let list: V1ModelList = Client::new(&args.remote).get("/api/v1/models").await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if list.models.is_empty() {
        println!("No models. Put .gguf files in the models directory, or add [[registry.models]] entries.");
        return Ok(());
    }
    // Columns as wide as their longest value.
    let width = |f: &dyn Fn(&V1Model) -> usize, title: &str| {
        list.models
            .iter()
            .map(f)
            .max()
            .unwrap_or(0)
            .max(title.len())
    };
    let key = width(
        &|m| {
            let adapters = m.adapters.iter().map(|a| a.key.len() + 2);
            adapters.max().unwrap_or(0).max(m.key.len())
        },
        "MODEL",
    );
    let arch = width(&|m| m.architecture.as_deref().map_or(1, str::len), "ARCH");
    println!(
        "{:<key$} {:>9} {:<arch$} {:<8} {:<12} {:>8}  STATE",
        "MODEL", "SIZE", "ARCH", "QUANT", "FORMAT", "CONTEXT"
    );
    for m in &list.models {
        let state = m
            .loaded_instances
            .first()
            .map_or("not loaded", |i| i.status.as_str());
        println!(
            "{:<key$} {:>9} {:<arch$} {:<8} {:<12} {:>8}  {state}",
            m.key,
            size(m.size_bytes),
            m.architecture.as_deref().unwrap_or("?"),
            m.quantization.as_ref().map_or("?", |q| q.name.as_str()),
            m.format,
            m.max_context_length,
        );
        // Adapters under their model: switched per request with it loaded
        // (llama.cpp), or merged into a model loaded of its own (mistral.rs).
        for a in &m.adapters {
            let state = match a.mode.as_str() {
                "merged" => a
                    .loaded_instances
                    .first()
                    .map_or("not loaded", |i| i.status.as_str()),
                _ => "with its model",
            };
            let lora = format!("  {}", a.key);
            println!(
                "{lora:<key$} {:>9} LoRA adapter, scale {}, {}  {state}",
                "", a.scale, a.mode
            );
        }
    }
    Ok(())
}

/// `ferrite ps`: the loaded models, their memory and idle time.
pub async fn ps(args: ListArgs) -> anyhow::Result<()> {
    let list: V1ModelList = Client::new(&args.remote).get("/api/v1/models").await?;
    let loaded: Vec<_> = list
        .models
        .iter()
        .filter(|m| !m.loaded_instances.is_empty())
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&loaded)?);
        return Ok(());
    }
    if loaded.is_empty() {
        println!("No models are loaded.");
        return Ok(());
    }
    println!(
        "{:<36} {:<8} {:<10} {:>9} {:>9} {:>10} {:>9}",
        "MODEL", "STATUS", "RUNTIME", "MEMORY", "IDLE", "TTL", "REQUESTS"
    );
    for m in loaded {
        for i in &m.loaded_instances {
            let ttl = match (i.ttl_seconds, i.expires_in_seconds) {
                (Some(_), Some(left)) => format!("{} left", duration(left)),
                _ => "none".into(),
            };
            println!(
                "{:<36} {:<8} {:<10} {:>9} {:>9} {:>10} {:>9}",
                i.id,
                i.status,
                m.runtime,
                size(i.memory_bytes),
                duration(i.idle_seconds),
                ttl,
                i.in_flight,
            );
        }
    }
    Ok(())
}

/// `ferrite load MODEL`: loads it, with a progress bar.
pub async fn load(args: LoadArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.remote);
    let body = json!({"model": args.model, "ttl": args.ttl, "context_length": args.context_length,
        "stream": true, "echo_load_config": true});
    let mut events = client.events("/api/v1/models/load", &body).await?;
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template("{msg:<28} [{bar:30}] {percent:>3}% {elapsed}")
            .context("progress style")?
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    while let Some(event) = events.next().await {
        let event = event?;
        match event.name.as_deref() {
            Some("model_load.end") => {
                let done: LoadResponse = serde_json::from_str(&event.data)?;
                bar.set_position(1000);
                bar.finish_with_message("loaded");
                let context = done
                    .load_config
                    .map(|c| format!(" with a context of {} tokens", c.context_length))
                    .unwrap_or_default();
                println!(
                    "Loaded {}{context} in {:.1}s.",
                    done.instance_id, done.load_time_seconds
                );
                return Ok(());
            }
            Some("error") => {
                bar.abandon_with_message("failed");
                let error: serde_json::Value = serde_json::from_str(&event.data)?;
                bail!(
                    "{}",
                    error["error"]["message"].as_str().unwrap_or(&event.data)
                );
            }
            _ => {
                if let Ok(p) = serde_json::from_str::<LoadProgress>(&event.data) {
                    bar.set_message(format!("{} ({})", p.model_instance_id, p.phase));
                    bar.set_position((p.progress * 1000.0) as u64);
                }
            }
        }
    }
    bail!("the server closed the connection before the model loaded")
}

/// `ferrite unload MODEL|--all`.
pub async fn unload(args: UnloadArgs) -> anyhow::Result<()> {
    let body = match &args.model {
        Some(m) => json!({"instance_id": m}),
        None => json!({"all": true}),
    };
    let done: UnloadResponse = Client::new(&args.remote)
        .post("/api/v1/models/unload", &body)
        .await?;
    if done.unloaded.is_empty() {
        println!("No models were loaded.");
    }
    for id in done.unloaded {
        println!("Unloaded {id}.");
    }
    Ok(())
}
