//! `ferrite bench-cache`: what a response-cache hit costs. One deterministic
//! request is generated once (the miss), then asked again and again; the
//! figures are set against a plain `GET /health` on the same connection, the
//! floor any HTTP request pays, and against the miss.

use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use serde_json::json;

use crate::client::bench::percentile;

#[derive(Args, Clone)]
pub struct CacheBenchArgs {
    /// Base URL of the server (without /v1).
    #[arg(long, default_value = "http://127.0.0.1:1234")]
    pub base_url: String,
    /// Hits (and health checks) to time.
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    #[arg(long, default_value_t = 64)]
    pub max_tokens: u32,
    #[arg(long, env = "OPENAI_API_KEY")]
    pub api_key: Option<String>,
}

/// Milliseconds, sorted.
struct Timings(Vec<f64>);

impl Timings {
    fn p(&self, q: f64) -> f64 {
        percentile(&self.0, q)
    }

    fn sorted(mut v: Vec<f64>) -> Self {
        v.sort_by(f64::total_cmp);
        Self(v)
    }
}

fn server_timing(resp: &reqwest::Response) -> Option<f64> {
    let v = resp.headers().get("server-timing")?.to_str().ok()?;
    v.split(';')
        .find_map(|p| p.trim().strip_prefix("dur="))
        .and_then(|d| d.parse().ok())
}

pub async fn run(args: CacheBenchArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let base = args.base_url.trim_end_matches('/');
    let auth = |r: reqwest::RequestBuilder| match &args.api_key {
        Some(k) => r.bearer_auth(k),
        None => r,
    };
    // A prompt of this run only, so that the first request is a real miss.
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let body = json!({
        "messages": [{"role": "user", "content": format!("Describe the colour blue. (run {nonce})")}],
        "max_tokens": args.max_tokens, "temperature": 0,
    });
    let chat = format!("{base}/v1/chat/completions");

    let started = Instant::now();
    let resp = auth(client.post(&chat).json(&body)).send().await?;
    let cache = resp.headers().get("x-ferrite-cache").cloned();
    resp.error_for_status()?.bytes().await?;
    let miss_ms = started.elapsed().as_secs_f64() * 1e3;
    if cache.as_ref().and_then(|v| v.to_str().ok()) != Some("miss") {
        bail!("the first request was not a cache miss ({cache:?}): is the cache on?");
    }

    let mut health = Vec::with_capacity(args.requests);
    let mut hits = Vec::with_capacity(args.requests);
    let mut server = Vec::with_capacity(args.requests);
    for _ in 0..args.requests {
        let t = Instant::now();
        client
            .get(format!("{base}/health"))
            .send()
            .await?
            .bytes()
            .await?;
        health.push(t.elapsed().as_secs_f64() * 1e3);

        let t = Instant::now();
        let resp = auth(client.post(&chat).json(&body)).send().await?;
        let hit = resp.headers().get("x-ferrite-cache").cloned();
        server.extend(server_timing(&resp));
        resp.bytes().await.context("hit body")?;
        hits.push(t.elapsed().as_secs_f64() * 1e3);
        if hit.as_ref().and_then(|v| v.to_str().ok()) != Some("hit") {
            bail!("expected a cache hit, got {hit:?}");
        }
    }
    let (health, hits, server) = (
        Timings::sorted(health),
        Timings::sorted(hits),
        Timings::sorted(server),
    );
    println!(
        "miss (generation of {} tokens): {miss_ms:.1} ms",
        args.max_tokens
    );
    println!(
        "GET /health round trip:  p50 {:.3} ms  p99 {:.3} ms",
        health.p(0.5),
        health.p(0.99)
    );
    println!(
        "cache hit round trip:    p50 {:.3} ms  p99 {:.3} ms",
        hits.p(0.5),
        hits.p(0.99)
    );
    println!(
        "cache hit server time:   p50 {:.3} ms  p99 {:.3} ms  (Server-Timing)",
        server.p(0.5),
        server.p(0.99)
    );
    println!(
        "hit vs miss: {:.0}x faster; hit minus /health floor: {:.3} ms (p50)",
        miss_ms / hits.p(0.5),
        hits.p(0.5) - health.p(0.5)
    );
    Ok(())
}
