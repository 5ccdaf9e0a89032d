//! The `ferrite` binary.

mod api;
mod app;
mod bench;
mod bench_cache;
mod cli;
mod config;
mod extract;
mod http_metrics;
mod logging;
mod pipeline;
mod routes;
mod serve;
mod sse;
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
        cli::Command::Openapi => print_openapi(),
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
    println!("{}", api::document().to_pretty_json()?);
    Ok(())
}
