//! `ferrite server start|stop|status`: a background server, like
//! `lms server`. `start` runs `ferrite serve` detached with its log and pid
//! in the data directory; `stop` signals it to drain and exit; `status`
//! asks whatever server answers at the address.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use ferrite_openapi::manage::V1ModelList;
use indicatif::ProgressBar;
use serde_json::Value;

use crate::client::remote::{duration, Client, Remote};
use ferrite_server::Config;
use ferrite_server::ServeArgs;

#[derive(Subcommand)]
pub enum ServerCommand {
    /// Start `ferrite serve` in the background (arguments go to `serve`).
    Start(StartArgs),
    /// Stop a server started with `ferrite server start`.
    Stop(Remote),
    /// Whether a server answers, and what it has loaded.
    Status(Remote),
}

#[derive(Args)]
pub struct StartArgs {
    /// Seconds to wait for the model to load.
    #[arg(long, default_value_t = 600)]
    pub wait: u64,
    /// `ferrite serve` flags, e.g. `--model m.gguf --port 1235`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub serve: Vec<String>,
}

/// The serve flags, parsed as `ferrite serve` would.
#[derive(Parser)]
#[command(name = "ferrite serve")]
struct ServeLine {
    #[command(flatten)]
    args: ServeArgs,
}

pub async fn run(command: ServerCommand) -> anyhow::Result<()> {
    match command {
        ServerCommand::Start(args) => start(args).await,
        ServerCommand::Stop(remote) => stop(remote).await,
        ServerCommand::Status(remote) => status(remote).await,
    }
}

fn files(data_dir: &std::path::Path, port: u16) -> (PathBuf, PathBuf) {
    (
        data_dir.join(format!("server-{port}.pid")),
        data_dir.join(format!("server-{port}.log")),
    )
}

fn port_of(url: &str) -> anyhow::Result<u16> {
    let url = url::Url::parse(url).with_context(|| format!("bad --url {url}"))?;
    url.port_or_known_default().context("the --url has no port")
}

async fn start(args: StartArgs) -> anyhow::Result<()> {
    let line =
        ServeLine::try_parse_from(std::iter::once("serve".to_string()).chain(args.serve.clone()))?;
    let config = Config::load(line.args.config.as_deref(), line.args.overrides())?;
    let host = match config.host.as_str() {
        "0.0.0.0" | "::" => "127.0.0.1",
        h => h,
    };
    let remote = Remote {
        url: format!("http://{host}:{}", config.port),
        api_key: config.auth.api_key.clone(),
    };
    let client = Client::new(&remote);
    if client.get::<Value>("/health").await.is_ok() {
        bail!("a server already answers at {}", client.base());
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let (pid_file, log_file) = files(&config.data_dir, config.port);
    let log = std::fs::File::create(&log_file)
        .with_context(|| format!("creating {}", log_file.display()))?;
    let mut command = Command::new(std::env::current_exe().context("finding the ferrite binary")?);
    command
        .arg("serve")
        .args(&args.serve)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // Its own process group: the server outlives this terminal's Ctrl-C.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command.spawn().context("starting ferrite serve")?;
    std::fs::write(&pid_file, child.id().to_string())?;

    let spinner = ProgressBar::new_spinner();
    spinner.enable_steady_tick(Duration::from_millis(120));
    spinner.set_message(format!("starting on {} (loading the model)", client.base()));
    let deadline = Instant::now() + Duration::from_secs(args.wait);
    while Instant::now() < deadline {
        if let Some(code) = child.try_wait()? {
            spinner.abandon_with_message("failed");
            let _ = std::fs::remove_file(&pid_file);
            let tail = std::fs::read_to_string(&log_file).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(10).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!("the server exited ({code}):\n{}", tail.join("\n"));
        }
        if client.get::<Value>("/ready").await.is_ok() {
            spinner.finish_with_message(format!(
                "ferrite is running at {} (pid {}, log {})",
                client.base(),
                child.id(),
                log_file.display()
            ));
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    spinner.abandon();
    bail!(
        "the server did not become ready in {}s; its log is {}",
        args.wait,
        log_file.display()
    )
}

/// Whether `pid` is a live ferrite process (not a reused pid).
fn is_ferrite(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("ferrite"))
        // Without /proc, trust the pid file.
        .unwrap_or_else(|_| alive(pid))
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

async fn stop(remote: Remote) -> anyhow::Result<()> {
    let config = Config::load(None, serde_json::json!({}))?;
    let port = port_of(&remote.url)?;
    let (pid_file, _) = files(&config.data_dir, port);
    let pid: Option<i32> = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|p| p.trim().parse().ok());
    let Some(pid) = pid.filter(|&p| p > 0 && is_ferrite(p)) else {
        let _ = std::fs::remove_file(&pid_file);
        if Client::new(&remote).get::<Value>("/health").await.is_ok() {
            bail!(
                "the server at {} was not started by `ferrite server start`; stop it where it runs",
                remote.url
            );
        }
        println!("No server is running at {}.", remote.url);
        return Ok(());
    };
    // SAFETY: plain signal delivery to a pid we checked is ferrite.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        bail!(
            "cannot signal pid {pid}: {}",
            std::io::Error::last_os_error()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(config.http.drain_timeout_secs + 10);
    while Instant::now() < deadline && alive(pid) && is_ferrite(pid) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = std::fs::remove_file(&pid_file);
    println!("Stopped the server at {} (pid {pid}).", remote.url);
    Ok(())
}

async fn status(remote: Remote) -> anyhow::Result<()> {
    let client = Client::new(&remote);
    if client.get::<Value>("/health").await.is_err() {
        println!("No server is running at {}.", client.base());
        std::process::exit(1);
    }
    let ready = client.get::<Value>("/ready").await.is_ok();
    println!(
        "The server is running at {} ({}).",
        client.base(),
        if ready { "ready" } else { "loading its model" }
    );
    if let Ok(list) = client.get::<V1ModelList>("/api/v1/models").await {
        for m in list.models {
            for i in m.loaded_instances {
                println!(
                    "  {} {} (idle {}, {} request(s) running)",
                    i.id,
                    i.status,
                    duration(i.idle_seconds),
                    i.in_flight
                );
            }
        }
    }
    Ok(())
}
