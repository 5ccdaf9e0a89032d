//! The `ferrite` binary.

mod api;
mod app;
mod bench;
mod bench_cache;
mod bench_soak;
mod chat_cmd;
mod cli;
mod config;
mod daemon;
mod experts;
mod extract;
mod http_metrics;
mod listen;
mod logging;
mod models_cmd;
mod pipeline;
mod quantize_cmd;
mod registry;
mod remote;
mod routes;
mod serve;
mod sse;
mod sse_read;
mod state;
mod telemetry;
mod unread_body;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Serve(args) => serve::run(*args).await,
        cli::Command::Bench(args) => bench::run(args).await,
        cli::Command::BenchCache(args) => bench_cache::run(args).await,
        cli::Command::BenchSoak(args) => bench_soak::run(args).await,
        cli::Command::Openapi => print_openapi(),
        cli::Command::Ls(args) => models_cmd::ls(args).await,
        cli::Command::Ps(args) => models_cmd::ps(args).await,
        cli::Command::Load(args) => models_cmd::load(args).await,
        cli::Command::Unload(args) => models_cmd::unload(args).await,
        cli::Command::Chat(args) => chat_cmd::run(args).await,
        cli::Command::Server(command) => daemon::run(command).await,
        cli::Command::Quantize(args) => quantize_cmd::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrite: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_openapi() -> anyhow::Result<()> {
    let doc = api::document_json(&api::document());
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}
