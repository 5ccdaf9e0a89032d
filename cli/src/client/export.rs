//! `ferrite export`: the caller's stored exchanges as OpenAI fine-tuning
//! JSONL, streamed from `GET /v1/memory/export` to stdout or a file.

use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::client::remote::{Client, Remote};

#[derive(Args)]
pub struct ExportArgs {
    /// Only exchanges scored at least this (0 to 1).
    #[arg(long)]
    pub min_score: Option<f64>,
    /// Created on or after: a date (2026-11-01) or Unix seconds.
    #[arg(long)]
    pub since: Option<String>,
    /// Created before: a date or Unix seconds.
    #[arg(long)]
    pub until: Option<String>,
    /// Only this conversation's exchanges.
    #[arg(long)]
    pub conversation: Option<String>,
    /// Keep near-duplicate exchanges.
    #[arg(long)]
    pub keep_duplicates: bool,
    /// Write here instead of stdout.
    #[arg(long, short)]
    pub output: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub remote: Remote,
}

pub async fn run(args: ExportArgs) -> anyhow::Result<()> {
    let mut query: Vec<(&str, String)> = vec![("dedupe", (!args.keep_duplicates).to_string())];
    let optional = [
        ("min_score", args.min_score.map(|s| s.to_string())),
        ("since", args.since),
        ("until", args.until),
        ("conversation", args.conversation),
    ];
    query.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
    let resp = Client::new(&args.remote)
        .get_raw("/v1/memory/export", &query)
        .await?;
    let mut out: Box<dyn tokio::io::AsyncWrite + Unpin> = match &args.output {
        Some(path) => Box::new(
            tokio::fs::File::create(path)
                .await
                .with_context(|| format!("creating {}", path.display()))?,
        ),
        None => Box::new(tokio::io::stdout()),
    };
    let mut body = resp.bytes_stream();
    let mut lines = 0usize;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.context("the export broke off")?;
        lines += chunk.iter().filter(|&&b| b == b'\n').count();
        out.write_all(&chunk).await?;
    }
    out.flush().await?;
    if let Some(path) = &args.output {
        eprintln!("Wrote {lines} examples to {}.", path.display());
    }
    Ok(())
}
