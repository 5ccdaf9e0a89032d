//! `ferrite bench-soak`: does a server's memory stay flat under a long run?
//! Streams many short chats, each with a prompt of its own (so each leaves a
//! new prefix-cache entry), abandons some mid-stream, and prints the
//! server's resident memory from its `/metrics` as the count grows.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use futures::StreamExt;
use serde_json::json;

#[derive(Args, Clone)]
pub struct SoakArgs {
    /// Base URL of the server (without /v1).
    #[arg(long, default_value = "http://127.0.0.1:1234")]
    pub base_url: String,
    #[arg(long, default_value_t = 1000)]
    pub requests: usize,
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Every Nth request is dropped after its first chunk (0: none).
    #[arg(long, default_value_t = 5)]
    pub abandon_every: usize,
    /// Print a row every this many requests.
    #[arg(long, default_value_t = 100)]
    pub report_every: usize,
    #[arg(long, default_value_t = 8)]
    pub max_tokens: u32,
    #[arg(long, env = "OPENAI_API_KEY")]
    pub api_key: Option<String>,
    /// Read the resident memory of this local process from /proc instead
    /// of the server's /metrics (for servers that do not report it).
    #[arg(long)]
    pub pid: Option<u32>,
}

/// Resident memory of a local process, in bytes (Linux).
fn proc_rss(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS line")?;
    Ok(kib * 1024.0)
}

/// A gauge's value from the server's Prometheus text.
async fn gauge(client: &reqwest::Client, base: &str, name: &str) -> anyhow::Result<f64> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .with_context(|| format!("{name} is not in {base}/metrics"))
}

async fn row(client: &reqwest::Client, args: &SoakArgs, base: &str, done: usize, started: Instant) {
    let mib = |v: f64| v / f64::from(1 << 20);
    let rss = match args.pid {
        Some(pid) => proc_rss(pid),
        None => gauge(client, base, "process_resident_memory_bytes").await,
    };
    // Servers without these gauges (other servers, older ferrite) show "-".
    let entries = gauge(client, base, "ferrite:prefix_cache_entries").await;
    let kv = gauge(client, base, "ferrite:prefix_cache_bytes").await;
    let show = |v: anyhow::Result<f64>, f: &dyn Fn(f64) -> f64| {
        v.map_or_else(|_| "-".to_string(), |v| format!("{:.0}", f(v)))
    };
    println!(
        "  {done:>8}  {:>9}  {:>14}  {:>8}  {:>6.1}",
        show(rss, &mib),
        show(entries, &|v| v),
        show(kv, &mib),
        started.elapsed().as_secs_f64()
    );
}

async fn one(
    client: &reqwest::Client,
    args: &SoakArgs,
    base: &str,
    i: usize,
) -> anyhow::Result<()> {
    let body = json!({
        "messages": [{"role": "user", "content": format!("Request {i}: say something about the number {i}.")}],
        "max_tokens": args.max_tokens,
        "temperature": 0,
        "stream": true,
        // Every request a generation: the soak is about the engine.
        "cache": false,
    });
    let mut req = client
        .post(format!("{base}/v1/chat/completions"))
        .json(&body);
    if let Some(k) = &args.api_key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await?;
    if !resp.status().is_success() {
        bail!("HTTP {}", resp.status());
    }
    let mut stream = resp.bytes_stream();
    let abandon = args.abandon_every > 0 && i % args.abandon_every == args.abandon_every - 1;
    while let Some(chunk) = stream.next().await {
        chunk?;
        if abandon {
            return Ok(());
        }
    }
    Ok(())
}

pub async fn run(args: SoakArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.concurrency >= 1, "--concurrency must be at least 1");
    let base = args.base_url.trim_end_matches('/').to_string();
    let client = reqwest::Client::new();
    let started = Instant::now();
    println!(
        "ferrite bench-soak: {} requests, {} at a time, every {} abandoned, {base}",
        args.requests, args.concurrency, args.abandon_every
    );
    println!("  requests  RSS (MiB)  prefix entries  KV (MiB)  secs");
    row(&client, &args, &base, 0, started).await;
    let failed = AtomicUsize::new(0);
    let step = args.report_every.max(1);
    // Batches of `report_every`, so each row is read with nothing running.
    for from in (0..args.requests).step_by(step) {
        let to = (from + step).min(args.requests);
        futures::stream::iter(from..to)
            .for_each_concurrent(args.concurrency, |i| {
                let (client, args, base, failed) = (&client, &args, &base, &failed);
                async move {
                    if one(client, args, base, i).await.is_err() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .await;
        row(&client, &args, &base, to, started).await;
    }
    let failed = failed.into_inner();
    if failed > 0 {
        bail!("{failed} of {} requests failed", args.requests);
    }
    Ok(())
}
