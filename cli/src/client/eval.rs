//! `ferrite eval` and `ferrite rollback`: a candidate model against a
//! versioned alias's current version, over an evaluation set in JSONL
//! (`{"prompt", "reference"}` or `{"prompt", "check": {...}}` a line), on a
//! running server; promoted with `--promote` when it wins by the alias's
//! threshold.

use anyhow::{bail, Context};
use clap::Args;
use ferrite_openapi::aliases::{AliasInfo, EvalItem, EvalReport};
use serde_json::json;

use crate::client::remote::{Client, Remote};

#[derive(Args)]
pub struct EvalArgs {
    /// The versioned alias.
    pub alias: String,
    /// The model to compare with the alias's current version.
    #[arg(long)]
    pub candidate: String,
    /// The evaluation set: JSONL, one item a line.
    #[arg(long)]
    pub eval_set: std::path::PathBuf,
    /// Make the candidate current if it wins by the alias's threshold.
    #[arg(long)]
    pub promote: bool,
    /// Print the server's JSON report instead of a summary.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Args)]
pub struct RollbackArgs {
    /// The versioned alias.
    pub alias: String,
    #[command(flatten)]
    pub remote: Remote,
}

pub async fn run(args: EvalArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.eval_set)
        .with_context(|| format!("reading {}", args.eval_set.display()))?;
    let mut items = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let item: EvalItem = serde_json::from_str(line)
            .with_context(|| format!("{} line {}", args.eval_set.display(), n + 1))?;
        items.push(item);
    }
    if items.is_empty() {
        bail!("{} holds no items", args.eval_set.display());
    }
    let body = json!({"candidate": args.candidate, "items": items, "promote": args.promote});
    let path = format!("/api/v1/aliases/{}/evaluate", args.alias);
    let report: EvalReport = Client::new(&args.remote).post(&path, &body).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("{:<6} {:>10} {:>10}", "ITEM", "CANDIDATE", "CURRENT");
    for (i, (a, b)) in report
        .candidate
        .items
        .iter()
        .zip(&report.current.items)
        .enumerate()
    {
        println!("{:<6} {:>10.2} {:>10.2}", i + 1, a.score, b.score);
    }
    println!(
        "{:<6} {:>10.3} {:>10.3}  ({} vs {}, threshold {})",
        "MEAN",
        report.candidate.score,
        report.current.score,
        report.candidate.model,
        report.current.model,
        report.threshold
    );
    println!(
        "Decision: {}; {} is at version {}.",
        report.decision, report.alias, report.version
    );
    Ok(())
}

pub async fn rollback(args: RollbackArgs) -> anyhow::Result<()> {
    let path = format!("/api/v1/aliases/{}/rollback", args.alias);
    let info: AliasInfo = Client::new(&args.remote).post(&path, &json!({})).await?;
    println!(
        "{} is back at version {} ({}).",
        info.name, info.current, info.model
    );
    Ok(())
}
