//! The two runtimes side by side: which one serves a model and where that
//! shows, the same prompt on both, llama.cpp's scheduler (KV pool, prefix
//! reuse), structured output that ends with its value, and files only one
//! runtime (or none) can load.

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use ferrite_tests::{
    assert_batched_answer, binary, chat, get, model, post, post_sse, streamed_text, Server,
};
use futures::future::join_all;
use serde_json::{json, Value};

fn on(runtime: &str) -> &'static Server {
    static LLAMA: OnceLock<Server> = OnceLock::new();
    static MISTRAL: OnceLock<Server> = OnceLock::new();
    let cell = if runtime == "llama.cpp" {
        &LLAMA
    } else {
        &MISTRAL
    };
    cell.get_or_init(|| Server::start(&["--runtime", runtime]))
}

const RUNTIMES: [&str; 2] = ["llama.cpp", "mistral.rs"];

/// The default model relabelled as Granite (`make test` writes it).
fn granite() -> String {
    std::env::var("FERRITE_TEST_GRANITE")
        .unwrap_or_else(|_| "models/smollm2-135m-granite.Q4_1.gguf".into())
}

#[tokio::test]
async fn each_listing_says_which_runtime_serves_the_model() {
    for runtime in RUNTIMES {
        let s = on(runtime);
        let (_, v1) = get(&s.url("/v1/models")).await;
        assert_eq!(v1["data"][0]["meta"]["runtime"], runtime, "{v1}");
        let (_, v0) = get(&s.url("/api/v0/models")).await;
        assert_eq!(v0["data"][0]["runtime"], runtime, "{v0}");
        let (_, m) = get(&s.url("/api/v1/models")).await;
        assert_eq!(m["models"][0]["runtime"], runtime, "{m}");
        // The file's own label, as LM Studio shows it.
        assert_eq!(m["models"][0]["quantization"]["name"], "Q4_1", "{m}");
        let (_, answer) = post(
            &s.url("/api/v0/chat/completions"),
            &chat("Hi", json!({"max_tokens": 3})),
        )
        .await;
        let name = answer["runtime"]["name"].as_str().unwrap_or_default();
        assert!(name.starts_with(&format!("ferrite-{runtime}-")), "{answer}");
        assert!(
            s.log()
                .lines()
                .any(|l| l.contains("model loaded") && l.contains(runtime)),
            "{}",
            s.log()
        );
        assert!(!s.log().contains("mix of GPU and CPU"), "{}", s.log());
        let ps = Command::new(binary())
            .args(["ps", "--url", &s.base])
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&ps.stdout);
        assert!(out.contains("RUNTIME") && out.contains(runtime), "{out}");
    }
}

#[tokio::test]
async fn the_same_request_gives_the_same_prompt_on_both_runtimes() {
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let bodies = [
        json!({"messages": [{"role": "system", "content": "Be brief."},
                            {"role": "user", "content": "Name a colour. ¿Sí? 東京"}],
               "max_tokens": 1}),
        json!({"messages": [{"role": "user", "content": "Weather in Paris?"},
                            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                             "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                            {"role": "tool", "tool_call_id": "c1", "content": "sunny"}],
               "tools": tools, "max_tokens": 1}),
    ];
    for body in bodies {
        let mut counts = Vec::new();
        for runtime in RUNTIMES {
            let (status, b) = post(&on(runtime).url("/v1/chat/completions"), &body).await;
            assert_eq!(status, 200, "{runtime}: {b}");
            counts.push(b["usage"]["prompt_tokens"].as_u64().unwrap());
        }
        assert_eq!(counts[0], counts[1], "{body}");
        assert!(counts[0] > 10);
    }
    // Text completions tokenize the same way too.
    let body = json!({"prompt": "The capital of France is", "max_tokens": 1});
    let mut counts = Vec::new();
    for runtime in RUNTIMES {
        let (_, b) = post(&on(runtime).url("/v1/completions"), &body).await;
        counts.push(b["usage"]["prompt_tokens"].clone());
    }
    assert_eq!(counts[0], counts[1]);
}

#[tokio::test]
async fn structured_output_ends_when_its_json_ends_on_both_runtimes() {
    let format = json!({"type": "json_schema", "json_schema": {"name": "cat", "schema": {
        "type": "object", "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"}},
        "required": ["name", "age"], "additionalProperties": false}}});
    for runtime in RUNTIMES {
        let s = on(runtime);
        for stream in [false, true] {
            let body = chat(
                "Describe a cat as JSON.",
                json!({"max_tokens": 200, "temperature": 0, "response_format": format,
                       "stream": stream, "stream_options": {"include_usage": true}}),
            );
            let (content, finish, usage) = if stream {
                let sse = post_sse(&s.url("/v1/chat/completions"), &body).await;
                let finish = sse
                    .events
                    .iter()
                    .find_map(|e| e["choices"][0]["finish_reason"].as_str().map(String::from));
                let usage = sse.events.last().unwrap()["usage"].clone();
                (streamed_text(&sse.events, 0), finish, usage)
            } else {
                let (status, b) = post(&s.url("/v1/chat/completions"), &body).await;
                assert_eq!(status, 200, "{b}");
                let c = b["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .to_string();
                (
                    c,
                    b["choices"][0]["finish_reason"].as_str().map(String::from),
                    b["usage"].clone(),
                )
            };
            let v: Value = serde_json::from_str(&content)
                .unwrap_or_else(|e| panic!("{runtime}: {e}: {content}"));
            assert!(v["name"].is_string() && v["age"].is_i64(), "{runtime}: {v}");
            assert_eq!(
                finish.as_deref(),
                Some("stop"),
                "{runtime} stream={stream}: {content}"
            );
            let used = usage["completion_tokens"].as_u64().unwrap();
            assert!((5..200).contains(&used), "{runtime}: {usage}");
        }
    }
}

#[tokio::test]
async fn the_next_turn_of_a_chat_reuses_the_kv_of_the_last() {
    let s = on("llama.cpp");
    let first = json!({"messages": [{"role": "system", "content": "You are a helpful assistant who answers questions about geography in detail."},
                                    {"role": "user", "content": "What is the capital of France?"}],
                       "max_tokens": 12, "temperature": 0});
    let (_, a) = post(&s.url("/v1/chat/completions"), &first).await;
    let answer = a["choices"][0]["message"]["content"].as_str().unwrap();
    let mut messages = first["messages"].as_array().unwrap().clone();
    messages.push(json!({"role": "assistant", "content": answer}));
    messages.push(json!({"role": "user", "content": "And of Spain?"}));
    let (_, b) = post(
        &s.url("/v1/chat/completions"),
        &json!({"messages": messages, "max_tokens": 4, "temperature": 0}),
    )
    .await;
    let cached = b["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    let prompt = b["usage"]["prompt_tokens"].as_u64().unwrap();
    let first_prompt = a["usage"]["prompt_tokens"].as_u64().unwrap();
    // At least the whole first prompt came from the cache.
    assert!(cached >= first_prompt && cached < prompt, "{a}\n{b}");
}

#[tokio::test]
async fn a_small_kv_pool_makes_sequences_wait_and_gives_the_same_answers() {
    // Room for about two of these at once: the others wait, none fails.
    let s = Server::start(&[
        "--runtime",
        "llama.cpp",
        "--kv-cache-tokens",
        "400",
        "--max-seqs",
        "4",
        "--prefix-cache",
        "0",
        "--batch-size",
        "64",
    ]);
    // Counting: the model is sure of every token, so the answers are
    // checkable; a long system message makes each prompt ~120 tokens.
    let system = "You are a careful assistant. Follow the instruction exactly. ".repeat(8);
    let starts = [1, 40, 200, 500];
    let prompt = |i: usize| {
        json!({"messages": [{"role": "system", "content": system},
                            {"role": "user", "content": format!("Count from {} to {}, separated by commas.", starts[i], starts[i] + 30)}],
               "max_tokens": 40, "temperature": 0, "logit_bias": {"2": -100}})
    };
    let mut alone = Vec::new();
    for i in 0..4 {
        let (status, b) = post(&s.url("/v1/chat/completions"), &prompt(i)).await;
        assert_eq!(status, 200, "{b}");
        alone.push(b["choices"][0]["message"]["content"].clone());
    }
    let together = join_all((0..4).map(|i| {
        let body = prompt(i);
        let url = s.url("/v1/chat/completions");
        async move { post(&url, &body).await }
    }))
    .await;
    for (i, (status, b)) in together.into_iter().enumerate() {
        assert_eq!(status, 200, "{b}");
        assert_batched_answer(
            b["choices"][0]["message"]["content"].as_str().unwrap(),
            alone[i].as_str().unwrap(),
            &format!("request {i}"),
        );
        assert_eq!(b["usage"]["completion_tokens"], 40);
        let text = b["choices"][0]["message"]["content"].as_str().unwrap();
        // Its own count, not another sequence's.
        let own = starts[i].to_string();
        assert!(text.trim_start().starts_with(&own), "request {i}: {text}");
    }
    // The pool held about two at a time: the others waited for room.
    assert!(
        s.log().contains("KV cache full; the sequence"),
        "{}",
        s.log()
    );
}

#[tokio::test]
async fn a_gguf_only_llama_cpp_can_load_loads_and_answers() {
    let s = Server::start(&["--model", &granite(), "--runtime", "auto"]);
    let (_, models) = get(&s.url("/v1/models")).await;
    assert_eq!(models["data"][0]["meta"]["architecture"], "granite");
    assert_eq!(models["data"][0]["meta"]["runtime"], "llama.cpp");
    let (status, b) = post(
        &s.url("/v1/chat/completions"),
        &chat(
            "What is the capital of France?",
            json!({"max_tokens": 8, "temperature": 0}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{b}");
    // Granite with neutral scales is the same network: the same answer.
    let (_, plain) = post(
        &on("llama.cpp").url("/v1/chat/completions"),
        &chat(
            "What is the capital of France?",
            json!({"max_tokens": 8, "temperature": 0}),
        ),
    )
    .await;
    assert_batched_answer(
        b["choices"][0]["message"]["content"].as_str().unwrap(),
        plain["choices"][0]["message"]["content"].as_str().unwrap(),
        "granite against llama",
    );
}

/// The server's exit and its log when the model cannot load.
fn failed_start(args: &[&str]) -> String {
    let s = Server::spawn(args);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while s.exit_code().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(s.exit_code().is_some(), "still running:\n{}", s.log());
    s.log()
}

#[tokio::test]
async fn a_file_no_runtime_loads_gets_one_clear_line() {
    // mistral.rs alone on the Granite file.
    let log = failed_start(&["--model", &granite(), "--runtime", "mistral.rs"]);
    assert!(
        log.contains("architecture `granite` is not supported by mistral.rs"),
        "{log}"
    );
    assert!(
        !log.contains("stack backtrace") && !log.contains("panicked"),
        "{log}"
    );
    // An architecture nobody knows: both runtimes are tried and named.
    let mut bytes = std::fs::read(model()).unwrap();
    let key = b"general.architecture";
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    // Value type (u32) and string length (u64), then the name itself.
    let name = at + 4 + 8;
    assert_eq!(&bytes[name..name + 5], b"llama");
    bytes[name..name + 5].copy_from_slice(b"zorba");
    let path = std::env::temp_dir().join(format!("ferrite-zorba-{}.gguf", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    let log = failed_start(&["--model", path.to_str().unwrap(), "--runtime", "auto"]);
    let line = log
        .lines()
        .find(|l| l.contains("architecture `zorba` is not supported"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("llama.cpp or mistral.rs"), "{line}");
    assert!(
        !log.contains("stack backtrace") && !log.contains("panicked at"),
        "{log}"
    );
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn an_empty_text_prompt_is_answered_or_refused_clearly() {
    let body = json!({"prompt": "", "max_tokens": 4, "temperature": 0});
    // llama.cpp starts from the start-of-text token, as OpenAI does.
    let (status, b) = post(&on("llama.cpp").url("/v1/completions"), &body).await;
    assert_eq!(status, 200, "{b}");
    assert!(
        b["usage"]["completion_tokens"].as_u64().unwrap() >= 1,
        "{b}"
    );
    // mistral.rs refuses it: a 400 that names the prompt.
    let (status, b) = post(&on("mistral.rs").url("/v1/completions"), &body).await;
    assert_eq!(status, 400, "{b}");
    assert_eq!(b["error"]["param"], "prompt", "{b}");
    assert_eq!(b["error"]["type"], "invalid_request_error", "{b}");
}

#[tokio::test]
async fn a_q8_0_kv_cache_answers_like_f16() {
    let s = Server::start(&["--runtime", "llama.cpp", "--kv-cache-type", "q8_0"]);
    assert!(s.log().contains("kv_cache_type=Q8_0"), "{}", s.log());
    let body = chat(
        "Count from 1 to 10, separated by commas.",
        json!({"max_tokens": 12, "temperature": 0}),
    );
    let (status, b) = post(&s.url("/v1/chat/completions"), &body).await;
    assert_eq!(status, 200, "{b}");
    // Counting is sure enough to survive the KV cache's 8-bit rounding.
    let text = b["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.contains("1, 2, 3"), "{text}");
}
