//! Test harness: starts the real `ferrite` binary with the real default
//! model on a free port and talks to it over HTTP.

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

/// `FERRITE_BIN`, or the `ferrite` binary next to this test executable.
pub fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("FERRITE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/release/deps/<test> -> target/release/ferrite
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    dir.join("ferrite")
}

/// The runtime the suite runs on: `FERRITE_TEST_RUNTIME`, else what
/// `auto` picks for the default model (llama.cpp).
pub fn runtime() -> String {
    std::env::var("FERRITE_TEST_RUNTIME").unwrap_or_else(|_| "llama.cpp".into())
}

/// Whether concurrent greedy answers equal the same answers run alone.
/// mistral.rs (with ferrite's patch) is batch-invariant; llama.cpp is not,
/// as with llama-server: which rows share a step and where a sequence's KV
/// sits change the last bits of its logits, which can flip a near-tie.
pub fn batch_invariant() -> bool {
    runtime() == "mistral.rs"
}

/// Checks a batched greedy answer against the same request run alone:
/// equal where the runtime is batch-invariant; elsewhere its first
/// characters (a token or two) must match: its own sequence's text, not
/// another's or garbage; after that a near tie may go either way.
pub fn assert_batched_answer(got: &str, alone: &str, what: &str) {
    if batch_invariant() {
        assert_eq!(got, alone, "{what}");
        return;
    }
    let shared = got
        .chars()
        .zip(alone.chars())
        .take_while(|(a, b)| a == b)
        .count();
    let shorter = got.chars().count().min(alone.chars().count());
    assert!(
        shared >= shorter.min(6),
        "{what}: batched {got:?} strays from alone {alone:?}"
    );
}

/// A server whose answers repeat exactly from one request to the next,
/// for tests that compare answers across requests: the shared server on a
/// batch-invariant runtime; on llama.cpp one of the test's own (each test
/// runs on a thread of its own), with prefix reuse off so that every
/// request computes its prompt the same way at the same KV cells.
pub fn repeatable() -> &'static Server {
    if batch_invariant() {
        return Server::shared();
    }
    thread_local! {
        static OWN: &'static Server =
            Box::leak(Box::new(Server::start(&["--prefix-cache", "0"])));
    }
    OWN.with(|s| *s)
}

/// A `usage` object without `prompt_tokens_details`: how many prompt
/// tokens were reused depends on what ran before.
pub fn counted(usage: &Value) -> Value {
    let mut u = usage.clone();
    if let Some(o) = u.as_object_mut() {
        o.remove("prompt_tokens_details");
    }
    u
}

/// `FERRITE_TEST_MODEL`, or the default model fetched by `make test`.
pub fn model() -> PathBuf {
    if let Ok(p) = std::env::var("FERRITE_TEST_MODEL") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// `FERRITE_TEST_MODEL_Q8`: the default model re-quantized to Q8_0 by
/// `ferrite quantize` (`make test` makes it).
pub fn model_q8() -> PathBuf {
    if let Ok(p) = std::env::var("FERRITE_TEST_MODEL_Q8") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q8_0.gguf")
}

/// `FERRITE_TEST_EMBED`: all-MiniLM-L6-v2 as a GGUF, made by `ferrite
/// convert` (`make test` makes it).
pub fn embedding_model() -> PathBuf {
    if let Ok(p) = std::env::var("FERRITE_TEST_EMBED") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/all-MiniLM-L6-v2.F16.gguf")
}

/// A config file of the test's own, in a fresh temporary folder.
pub fn config_file(name: &str, toml: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferrite-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("ferrite.toml");
    std::fs::write(&path, toml).expect("write config");
    path
}

/// A port that is free now, taken below the kernel's ephemeral range
/// (32768 and up): a port the kernel handed out could be handed again to a
/// test client's outgoing connection before the server binds it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    // Each test process starts at its own offset, so parallel binaries
    // rarely try the same ports.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 12_000 + (std::process::id() % 200) as u16 * 100;
    for _ in 0..20_000 {
        let port = 12_000 + (base - 12_000 + NEXT.fetch_add(1, Ordering::Relaxed)) % 20_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 12000 and 32000")
}

/// A running server. Killed on drop; also dies with the test process.
pub struct Server {
    child: Mutex<Option<Child>>,
    pub port: u16,
    pub base: String,
    log: Arc<Mutex<String>>,
    readers: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Server {
    /// Starts `ferrite serve` with the default model plus `extra` flags,
    /// without waiting for it.
    pub fn spawn(extra: &[&str]) -> Server {
        Self::spawn_with_env(extra, &[])
    }

    pub fn spawn_with_env(extra: &[&str], env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let mut cmd = Command::new(binary());
        cmd.arg("serve");
        if !extra.contains(&"--model") {
            cmd.arg("--model").arg(model());
        }
        cmd.args(["--port", &port.to_string()])
            .args(extra)
            .env("RUST_LOG", "info,llama-cpp-2=warn")
            // Engine tests repeat greedy requests to compare answers: a
            // response cache would answer them without the engine. The
            // cache tests turn it back on through `env`.
            .env("FERRITE_CACHE__ENABLED", "false")
            // Models in the user's own models folder must not change what tests see.
            .env("FERRITE_REGISTRY__SCAN", "false")
            .env_remove("FERRITE_CONFIG")
            .env_remove("FERRITE_API_KEY")
            // Stored responses (and memory) of its own, never the user's,
            // unless the test names a data directory.
            .env(
                "XDG_DATA_HOME",
                std::env::temp_dir()
                    .join(format!("ferrite-test-data-{}-{port}", std::process::id())),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // `FERRITE_TEST_RUNTIME` runs the suite on one runtime (`make test`
        // runs it once per runtime); flags and `env` still win.
        let model_arg = extra
            .iter()
            .position(|a| *a == "--model")
            .and_then(|i| extra.get(i + 1));
        let gguf = model_arg.is_none_or(|m| m.ends_with(".gguf"));
        if let (Ok(runtime), true) = (std::env::var("FERRITE_TEST_RUNTIME"), gguf) {
            cmd.env("FERRITE_MODEL__RUNTIME", runtime);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to
        // SIGTERM the server when this test process dies.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        // PDEATHSIG fires when the spawning *thread* exits, and test threads
        // are short-lived: spawn from a thread that lives as long as the process.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(cmd.spawn());
            loop {
                std::thread::park();
            }
        });
        let mut child = rx
            .recv()
            .expect("spawner thread")
            .expect("spawn ferrite (run `make build` first)");
        let log = Arc::new(Mutex::new(String::new()));
        // FERRITE_TEST_LOGS=DIR keeps each server's output for post-mortems.
        let keep = std::env::var("FERRITE_TEST_LOGS").ok().and_then(|dir| {
            std::fs::create_dir_all(&dir).ok()?;
            std::fs::File::create(format!("{dir}/server-{port}.log")).ok()
        });
        let keep = Arc::new(Mutex::new(keep));
        let mut readers = Vec::new();
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = log.clone();
            let keep = keep.clone();
            readers.push(std::thread::spawn(move || {
                let mut pipe = pipe;
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut l) = log.lock() {
                        l.push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                    if let Ok(mut guard) = keep.lock() {
                        if let Some(f) = guard.as_mut() {
                            let _ = std::io::Write::write_all(f, &buf[..n]);
                        }
                    }
                }
            }));
        }
        Server {
            child: Mutex::new(Some(child)),
            port,
            base: format!("http://127.0.0.1:{port}"),
            log,
            readers: Mutex::new(readers),
        }
    }

    /// Starts a server and waits until `/ready` says 200.
    pub fn start(extra: &[&str]) -> Server {
        Self::start_with_env(extra, &[])
    }

    /// Starts a server with extra environment and waits until it is ready.
    /// Tries again on a new port if another process took this one first.
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Server {
        for _ in 0..4 {
            let s = Self::spawn_with_env(extra, env);
            match s.ready() {
                Ok(()) => return s,
                Err(log) if log.contains("Address already in use") => continue,
                Err(log) => panic!("{log}"),
            }
        }
        panic!("four ports in a row were taken before the server could bind them")
    }

    /// One server per test binary, with default flags.
    pub fn shared() -> &'static Server {
        static SERVER: OnceLock<Server> = OnceLock::new();
        SERVER.get_or_init(|| Server::start(&[]))
    }

    pub fn wait_ready(&self) {
        if let Err(why) = self.ready() {
            panic!("{why}");
        }
    }

    fn ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(180);
        while Instant::now() < deadline {
            if get_blocking(&format!("{}/ready", self.base)).is_ok_and(|(s, _)| s == 200) {
                return Ok(());
            }
            if let Some(code) = self.exit_code() {
                // All of its output, so the caller can tell why it exited.
                let readers = self.readers.lock().map(|mut r| std::mem::take(&mut *r));
                for r in readers.unwrap_or_default() {
                    let _ = r.join();
                }
                return Err(format!(
                    "server exited with {code:?} before ready:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("server not ready in time:\n{}", self.log()))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Everything the server printed so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Waits up to `within` for `needle` to show up `times` times in the
    /// server log. Async, so that the test's own connections keep running.
    pub async fn wait_log(&self, needle: &str, times: usize, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.log().matches(needle).count() >= times {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.lock().ok()?.as_ref().map(|c| c.id())
    }

    /// Waits for the process to exit on its own and for all of its output
    /// to be read; returns the exit code (`None` for a signal), or `None` if
    /// it is still running after `within`.
    pub async fn wait_exit(&self, within: Duration) -> Option<Option<i32>> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(code) = self.exit_code() {
                let readers = self.readers.lock().map(|mut r| std::mem::take(&mut *r));
                for r in readers.unwrap_or_default() {
                    let _ = r.join();
                }
                return Some(code);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    pub fn exit_code(&self) -> Option<Option<i32>> {
        let mut guard = self.child.lock().ok()?;
        let child = guard.as_mut()?;
        child.try_wait().ok().flatten().map(|s| s.code())
    }

    /// Sends SIGTERM, as `docker stop` or Kubernetes would.
    pub fn sigterm(&self) {
        if let Some(pid) = self.pid() {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM);
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(mut guard) = self.child.lock() {
            if let Some(mut c) = guard.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// A GET without an async runtime: status and body (used while waiting).
pub fn get_blocking(url: &str) -> std::io::Result<(u16, String)> {
    use std::io::Write;
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = std::net::TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

pub fn client() -> reqwest::Client {
    reqwest_client(Duration::from_secs(300))
}

/// A client for streams: it waits on progress (each read within five
/// minutes), not on the whole answer's time, which depends on how fast the
/// machine is that day.
pub fn streaming_client() -> reqwest::Client {
    reqwest::Client::builder()
        .read_timeout(Duration::from_secs(300))
        .build()
        .expect("http client")
}

/// A client whose requests give up after `timeout`.
pub fn reqwest_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .expect("http client")
}

/// Status and body, parsed as JSON when it is JSON.
async fn status_and_json(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v)
}

/// A whole response: status, headers and the body as JSON (`Null` if not).
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// A header's value, or "" when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// A header that must hold a number.
    pub fn number(&self, name: &str) -> u64 {
        self.header(name)
            .parse()
            .unwrap_or_else(|_| panic!("{name}: {:?}", self.header(name)))
    }
}

/// Sends a prepared request and reads all of its response.
pub async fn send(req: reqwest::RequestBuilder) -> Reply {
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.json().await.unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}

/// POSTs JSON; returns status and parsed body.
pub async fn post(url: &str, body: &Value) -> (u16, Value) {
    status_and_json(client().post(url).json(body).send().await.expect("request")).await
}

pub async fn get(url: &str) -> (u16, Value) {
    status_and_json(client().get(url).send().await.expect("request")).await
}

/// POSTs a request and returns the response once its head arrived with 200,
/// for tests that read (or abandon) the body themselves.
pub async fn open(url: &str, body: &Value) -> reqwest::Response {
    let resp = client().post(url).json(body).send().await.expect("request");
    assert_eq!(resp.status(), 200);
    resp
}

/// The sum of a Prometheus metric's samples whose line contains `labels`.
pub async fn metric(server: &Server, name: &str, labels: &str) -> u64 {
    let text = client()
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// A parsed SSE response: the JSON events, and whether `[DONE]` ended it.
pub struct Sse {
    pub status: u16,
    pub events: Vec<Value>,
    pub done: bool,
    pub raw: String,
}

pub async fn post_sse(url: &str, body: &Value) -> Sse {
    let r = streaming_client()
        .post(url)
        .json(body)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let mut raw = String::new();
    let mut stream = r.bytes_stream();
    while let Some(b) = stream.next().await {
        raw.push_str(&String::from_utf8_lossy(&b.expect("stream")));
    }
    let mut events = Vec::new();
    let mut done = false;
    for block in raw.split("\n\n") {
        for line in block.lines() {
            if let Some(data) = line.strip_prefix("data: ") {
                if data == "[DONE]" {
                    done = true;
                } else if let Ok(v) = serde_json::from_str(data) {
                    events.push(v);
                }
            }
        }
    }
    Sse {
        status,
        events,
        done,
        raw,
    }
}

/// The content of a streamed chat choice, concatenated.
pub fn streamed_text(events: &[Value], index: u64) -> String {
    events
        .iter()
        .flat_map(|e| e["choices"].as_array().cloned().unwrap_or_default())
        .filter(|c| c["index"].as_u64() == Some(index))
        .filter_map(|c| c["delta"]["content"].as_str().map(String::from))
        .collect()
}

/// A chat request that runs to exactly `max_tokens`: SmolLM2's end-of-text
/// ids are banned.
pub fn endless(max_tokens: u32, stream: bool) -> Value {
    chat(
        "Write a very long story about a lighthouse keeper.",
        serde_json::json!({"max_tokens": max_tokens, "temperature": 0.8, "stream": stream,
               "logit_bias": {"0": -100, "2": -100}}),
    )
}

/// A chat request body with one user message.
pub fn chat(content: &str, extra: Value) -> Value {
    let mut body = serde_json::json!({"messages": [{"role": "user", "content": content}]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    body
}

/// A fresh, empty PostgreSQL database for one test, on the server that
/// `FERRITE_TEST_POSTGRES_URL` names (`make test` starts one with
/// scripts/postgres.sh). Returns its URL.
pub fn postgres_database(name: &str) -> String {
    let base = std::env::var("FERRITE_TEST_POSTGRES_URL").expect(
        "FERRITE_TEST_POSTGRES_URL must name a PostgreSQL server; `make test` sets it from scripts/postgres.sh",
    );
    let db = format!("ferrite_{name}_{}", std::process::id());
    for sql in [
        format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
        format!("CREATE DATABASE {db}"),
    ] {
        let out = std::process::Command::new("psql")
            .args([base.as_str(), "-v", "ON_ERROR_STOP=1", "-qc", &sql])
            .output()
            .expect("psql (PostgreSQL's client) runs");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (server, _) = base
        .rsplit_once('/')
        .expect("FERRITE_TEST_POSTGRES_URL ends in /database");
    format!("{server}/{db}")
}
