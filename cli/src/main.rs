//! The `ferrite` binary: `ferrite serve` runs the server (the
//! `ferrite-server` library); every other command is a client of a running
//! server, or a local tool.
//!
//! # Layout
//! - `cli.rs`: the command line.
//! - `client/`: the client commands (`ls`, `ps`, `load`, `unload`, `chat`,
//!   `export`, `eval`, `rollback`, `server start|stop|status`, the
//!   benchmarks) and what they share: the
//!   HTTP client (`remote.rs`) and an SSE reader (`sse_read.rs`);
//!   `quantize.rs` re-quantizes a GGUF file locally, `convert.rs` makes a
//!   GGUF embedding model of a BERT folder.

mod cli;
mod client;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use cli::Command;
use client::{
    bench, bench_cache, bench_soak, chat, convert, daemon, eval, export, get, models, quantize,
};

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ferrite: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run(cli::Cli::parse()));
    // Work on the blocking pool (a tokenizer run for a client that left)
    // must not hold the exit: `serve` has already drained for its bounded
    // time.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    // A llama.cpp thread may still be mid-step after a drain timeout: exit
    // without running C++'s static destructors under it (they tear down
    // the ggml state it is using, which can crash the exit). Everything of
    // ours was dropped above; only the standard streams are left to flush.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let status = if code == ExitCode::SUCCESS { 0 } else { 1 };
    // SAFETY: _exit(2) ends the process at once; nothing runs after it.
    unsafe { libc::_exit(status) }
}

async fn run(cli: cli::Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => ferrite_server::serve(*args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::BenchCache(args) => bench_cache::run(args).await,
        Command::BenchSoak(args) => bench_soak::run(args).await,
        Command::Openapi => print_openapi(),
        Command::Ls(args) => models::ls(args).await,
        Command::Ps(args) => models::ps(args).await,
        Command::Load(args) => models::load(args).await,
        Command::Get(args) => get::run(args).await,
        Command::Unload(args) => models::unload(args).await,
        Command::Chat(args) => chat::run(args).await,
        Command::Export(args) => export::run(args).await,
        Command::Eval(args) => eval::run(args).await,
        Command::Rollback(args) => eval::rollback(args).await,
        Command::Server(command) => daemon::run(command).await,
        Command::Quantize(args) => quantize::run(args),
        Command::Convert(args) => convert::run(args),
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
    println!(
        "{}",
        serde_json::to_string_pretty(&ferrite_server::openapi_json())?
    );
    Ok(())
}
