//! `ferrite bench`: N concurrent streaming chat requests against any
//! OpenAI-compatible base URL; prints time to first token, per-stream decode
//! speed and aggregate throughput.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use futures::StreamExt;
use serde_json::{json, Value};

use crate::client::sse_read;

#[derive(Args, Clone)]
pub struct BenchArgs {
    /// Base URL of the API (with /v1).
    #[arg(long, default_value = "http://127.0.0.1:1234/v1")]
    pub base_url: String,
    /// Model id to request (default: whatever the server has loaded).
    #[arg(long)]
    pub model: Option<String>,
    /// Streams in flight at once.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Total requests (default: 4 x concurrency).
    #[arg(long)]
    pub requests: Option<usize>,
    #[arg(long, default_value_t = 128)]
    pub max_tokens: u32,
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f64,
    #[arg(
        long,
        default_value = "Write a short story about a robot who learns to paint."
    )]
    pub prompt: String,
    /// `TOKEN_ID=BIAS`, repeatable; e.g. ban end-of-text ids so every
    /// request generates exactly --max-tokens.
    #[arg(long = "logit-bias", value_parser = parse_bias)]
    pub logit_bias: Vec<(u32, f32)>,
    /// Ask for a thinking block of at most this many tokens (ferrite's
    /// `thinking.max_tokens`); its tokens count as generated tokens.
    #[arg(long)]
    pub thinking_max: Option<u32>,
    #[arg(long, env = "OPENAI_API_KEY")]
    pub api_key: Option<String>,
    /// Also print the figures as one JSON line.
    #[arg(long)]
    pub json: bool,
    /// Seconds one request may take before it counts as failed.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Start each prompt with the request's number, so that no server can
    /// reuse an earlier request's KV cache (for prompt-processing figures).
    #[arg(long)]
    pub unique: bool,
}

fn parse_bias(s: &str) -> Result<(u32, f32), String> {
    let (id, bias) = s.split_once('=').ok_or("expected TOKEN_ID=BIAS")?;
    Ok((
        id.parse().map_err(|e| format!("token id: {e}"))?,
        bias.parse().map_err(|e| format!("bias: {e}"))?,
    ))
}

/// One finished stream.
struct Sample {
    ttft: Duration,
    tokens: u64,
    decode_secs: f64,
    /// Prompt tokens computed (not reused), when the server reports usage.
    prompt_tokens: u64,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.concurrency >= 1, "--concurrency must be at least 1");
    let total = args.requests.unwrap_or(args.concurrency * 4);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout))
        .build()
        .context("HTTP client")?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (client, args, next) = (client.clone(), args.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= total {
                    break;
                }
                out.push(one(&client, &args, i).await);
            }
            out
        }));
    }
    let mut samples = Vec::new();
    let mut failures = Vec::new();
    for w in workers {
        for r in w.await.context("bench worker panicked")? {
            match r {
                Ok(s) => samples.push(s),
                Err(e) => failures.push(e.to_string()),
            }
        }
    }
    let wall = started.elapsed().as_secs_f64();
    report(&args, total, &samples, &failures, wall);
    if samples.is_empty() {
        bail!(
            "every request failed: {}",
            failures.first().cloned().unwrap_or_default()
        );
    }
    Ok(())
}

async fn one(client: &reqwest::Client, args: &BenchArgs, i: usize) -> anyhow::Result<Sample> {
    let prompt = if args.unique {
        format!("Request {i} of a benchmark. {}", args.prompt)
    } else {
        args.prompt.clone()
    };
    let mut body = json!({
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if let Some(m) = &args.model {
        body["model"] = json!(m);
    }
    if let Some(n) = args.thinking_max {
        body["thinking"] = json!({ "max_tokens": n });
    }
    if !args.logit_bias.is_empty() {
        let bias: serde_json::Map<String, Value> = args
            .logit_bias
            .iter()
            .map(|(id, b)| (id.to_string(), json!(b)))
            .collect();
        body["logit_bias"] = Value::Object(bias);
    }
    let mut req = client
        .post(format!(
            "{}/chat/completions",
            args.base_url.trim_end_matches('/')
        ))
        .json(&body);
    if let Some(key) = &args.api_key {
        req = req.bearer_auth(key);
    }
    let t0 = Instant::now();
    let resp = req.send().await.context("request failed")?;
    if !resp.status().is_success() {
        bail!(
            "HTTP {}: {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }
    let mut first: Option<Instant> = None;
    let mut tokens = 0u64;
    let mut prompt_tokens = 0u64;
    let mut chunks = 0u64;
    let mut events = std::pin::pin!(sse_read::events(resp.bytes_stream()));
    while let Some(event) = events.next().await {
        let data = event.context("stream broke")?.data;
        if data == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(&data).context("bad SSE data")?;
        if let Some(err) = v.get("error") {
            bail!("stream error: {err}");
        }
        let delta = &v["choices"][0]["delta"];
        let has_text = ["content", "reasoning_content"]
            .iter()
            .any(|f| delta[f].as_str().is_some_and(|s| !s.is_empty()));
        if has_text {
            chunks += 1;
            first.get_or_insert_with(Instant::now);
        }
        if let Some(n) = v["usage"]["completion_tokens"].as_u64() {
            tokens = n;
            let cached = v["usage"]["prompt_tokens_details"]["cached_tokens"]
                .as_u64()
                .unwrap_or(0);
            prompt_tokens = v["usage"]["prompt_tokens"].as_u64().unwrap_or(0) - cached;
        }
    }
    let end = Instant::now();
    let first = first.context("no tokens received")?;
    // Servers that ignore include_usage: count content chunks instead.
    let tokens = if tokens == 0 { chunks } else { tokens };
    Ok(Sample {
        ttft: first - t0,
        tokens,
        decode_secs: (end - first).as_secs_f64(),
        prompt_tokens,
    })
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn report(args: &BenchArgs, total: usize, samples: &[Sample], failures: &[String], wall: f64) {
    let mut ttft: Vec<f64> = samples.iter().map(|s| s.ttft.as_secs_f64()).collect();
    ttft.sort_by(f64::total_cmp);
    let mut decode: Vec<f64> = samples
        .iter()
        .filter(|s| s.tokens > 1 && s.decode_secs > 0.0)
        .map(|s| (s.tokens - 1) as f64 / s.decode_secs)
        .collect();
    decode.sort_by(f64::total_cmp);
    let tokens: u64 = samples.iter().map(|s| s.tokens).sum();
    let aggregate = tokens as f64 / wall;
    // Prompt tokens computed per second of time to first token.
    let mut prompt: Vec<f64> = samples
        .iter()
        .filter(|s| s.prompt_tokens > 0)
        .map(|s| s.prompt_tokens as f64 / s.ttft.as_secs_f64())
        .collect();
    prompt.sort_by(f64::total_cmp);
    println!(
        "ferrite bench: {} concurrent, {} requests, max_tokens {}, {}",
        args.concurrency, total, args.max_tokens, args.base_url
    );
    println!(
        "  ok / failed          {} / {}",
        samples.len(),
        failures.len()
    );
    println!(
        "  TTFT p50 / p95       {:.3} s / {:.3} s",
        percentile(&ttft, 0.5),
        percentile(&ttft, 0.95)
    );
    println!(
        "  decode per stream    p50 {:.1} tok/s, p5 {:.1} tok/s",
        percentile(&decode, 0.5),
        percentile(&decode, 0.05)
    );
    println!("  aggregate            {aggregate:.1} tok/s ({tokens} tokens in {wall:.1} s)");
    if !prompt.is_empty() {
        println!(
            "  prompt processing    p50 {:.1} tok/s",
            percentile(&prompt, 0.5)
        );
    }
    if let Some(f) = failures.first() {
        println!("  first failure        {f}");
    }
    if args.json {
        println!(
            "{}",
            json!({
                "concurrency": args.concurrency, "requests": total, "ok": samples.len(),
                "ttft_p50_s": percentile(&ttft, 0.5), "ttft_p95_s": percentile(&ttft, 0.95),
                "decode_tok_s_p50": percentile(&decode, 0.5), "aggregate_tok_s": aggregate,
                "tokens": tokens, "wall_s": wall,
                "prompt_tok_s_p50": percentile(&prompt, 0.5),
            })
        );
    }
}
