//! `ferrite get`, as `lms get`: a model from the Hugging Face Hub through a
//! running server (which downloads it into its models directory). Search
//! words list matching repos to pick from; a repo lists its quantizations
//! with their sizes; the download shows bytes, speed and time left, and
//! Ctrl-C cancels it.

use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use ferrite_openapi::downloads::{DownloadOptions, DownloadStatus, SearchResults};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::client::remote::{size, Client, Remote};

#[derive(Args)]
pub struct GetArgs {
    /// `owner/repo`, `owner/repo:Q4_K_M`, a Hugging Face link, or words to
    /// search for.
    #[arg(required = true, num_args = 1..)]
    pub model: Vec<String>,
    /// The quantization (`Q4_K_M`, `q8_0`...); default: Q4_K_M, then Q8_0,
    /// then the first GGUF.
    #[arg(long, short = 'q')]
    pub quantization: Option<String>,
    /// Take the first match and the recommended quantization without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    pub remote: Remote,
}

/// Whether the words name a repo or a link rather than a search.
fn names_a_repo(text: &str) -> bool {
    text.starts_with("http://") || text.starts_with("https://") || text.contains('/')
}

/// A line read from the terminal, or the default on an empty line.
fn ask(prompt: &str, choices: usize) -> anyhow::Result<usize> {
    print!("{prompt} [1-{choices}, Enter for 1]: ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let line = line.trim();
    if line.is_empty() {
        return Ok(0);
    }
    match line.parse::<usize>() {
        Ok(n) if (1..=choices).contains(&n) => Ok(n - 1),
        _ => bail!("`{line}` is not one of 1-{choices}"),
    }
}

pub async fn run(args: GetArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.remote);
    let words = args.model.join(" ");
    let mut model = words.trim().to_string();
    if !(args.model.len() == 1 && names_a_repo(&model)) {
        let found: SearchResults = client
            .get_query(
                "/api/v1/models/download/search",
                &[("query", words.clone()), ("limit", "10".into())],
            )
            .await?;
        if found.results.is_empty() {
            bail!("no model on the Hub matches `{words}`");
        }
        for (i, hit) in found.results.iter().enumerate() {
            let kind = if hit.gguf { "GGUF" } else { "    " };
            println!(
                "{:>3}. {kind} {:<60} {:>9} downloads",
                i + 1,
                hit.id,
                hit.downloads
            );
        }
        let i = if args.yes {
            0
        } else {
            ask("Which model?", found.results.len())?
        };
        model = found.results[i].id.clone();
    }
    let quantization = match (
        &args.quantization,
        model.contains([':', '@']) || model.contains("/blob/") || model.contains("/resolve/"),
    ) {
        (Some(q), _) => Some(q.clone()),
        (None, true) => None,
        (None, false) if args.yes => None,
        (None, false) => {
            let offered: DownloadOptions = client
                .get_query(
                    "/api/v1/models/download/options",
                    &[("model", model.clone())],
                )
                .await?;
            let mut options = offered.options;
            // The recommended one first, so Enter takes it.
            options.sort_by_key(|o| !o.recommended);
            for (i, o) in options.iter().enumerate() {
                let mark = if o.recommended { " (recommended)" } else { "" };
                println!(
                    "{:>3}. {:<10} {:>9}{mark}",
                    i + 1,
                    o.quantization,
                    size(o.size_bytes)
                );
            }
            let i = ask("Which quantization?", options.len())?;
            Some(options[i].quantization.clone())
        }
    };
    let started: DownloadStatus = client
        .post(
            "/api/v1/models/download",
            &json!({"model": model, "quantization": quantization}),
        )
        .await?;
    let done = match started.job_id.clone() {
        None => started,
        Some(job) => follow(&client, &job).await?,
    };
    match done.status.as_str() {
        "already_downloaded" | "completed" => {
            let key = done.model_key.as_deref().unwrap_or(&model);
            let path = done.path.as_deref().unwrap_or("");
            let already = if done.status == "already_downloaded" {
                " (already downloaded)"
            } else {
                ""
            };
            println!("{key}{already}: {path}");
            println!("Load it with `ferrite load {key}`, or name it in a request.");
            Ok(())
        }
        _ => bail!(
            "the download failed: {}",
            done.error.as_deref().unwrap_or("no reason given")
        ),
    }
}

/// Polls the job, drawing its progress, until it ends; Ctrl-C cancels it.
async fn follow(client: &Client, job: &str) -> anyhow::Result<DownloadStatus> {
    let path = format!("/api/v1/models/download/status/{job}");
    let bar = ProgressBar::new(1);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .context("progress style")?
        .progress_chars("=> "),
    );
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => {
                let _ = client.delete(&format!("/api/v1/models/download/{job}")).await;
                bar.abandon_with_message("cancelled");
                bail!("cancelled");
            }
        }
        let status: DownloadStatus = client.get(&path).await?;
        bar.set_length(status.total_size_bytes.unwrap_or(0).max(1));
        bar.set_position(status.downloaded_bytes.unwrap_or(0));
        bar.set_message(format!(
            "{} {}",
            status.model.as_deref().unwrap_or_default(),
            status.quantization.as_deref().unwrap_or_default()
        ));
        match status.status.as_str() {
            "downloading" => continue,
            "completed" => bar.finish(),
            _ => bar.abandon(),
        }
        return Ok(status);
    }
}
