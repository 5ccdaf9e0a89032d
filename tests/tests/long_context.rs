//! Prompts longer than the context with the real default model, its context
//! cut to 1024 tokens so that inputs of 4x and 20x it stay quick: the
//! truncation policies, and MemAgent's mechanics (chunks read in order,
//! every call within the window, progress comments, usage summed, memory
//! bounded, a client that leaves stops the reading). A 135M model does not
//! find needles reliably, so what it answers is not checked, only how.

use std::sync::OnceLock;
use std::time::Duration;

use ferrite_tests::{client, post, post_sse, runtime, send, Server};
use futures::StreamExt;
use serde_json::{json, Value};

const CONTEXT: u64 = 1024;

fn start() -> Server {
    Server::start_with_env(
        &[],
        &[
            ("FERRITE_MODEL__CONTEXT_LENGTH", "1024"),
            ("FERRITE_LONG_CONTEXT__MEMORY_TOKENS", "64"),
        ],
    )
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(start)
}

/// A conversation of about `tokens` tokens: turns of varied sentences.
fn conversation(tokens: usize, question: &str) -> Vec<Value> {
    let mut messages = vec![json!({"role": "system", "content": "You answer briefly."})];
    let mut i = 0;
    // About 12 tokens a sentence, 5 sentences a turn.
    while messages.len() * 60 < tokens {
        let text: String = (0..5)
            .map(|k| {
                format!(
                    "Ship {} sailed from port {} carrying {} crates of tea. ",
                    i * 5 + k,
                    i % 7,
                    (i * 13 + k) % 90
                )
            })
            .collect();
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        messages.push(json!({"role": role, "content": text}));
        i += 1;
    }
    if messages.last().is_some_and(|m| m["role"] == "user") {
        messages.push(json!({"role": "assistant", "content": "Noted."}));
    }
    messages.push(json!({"role": "user", "content": question}));
    messages
}

async fn ask(body: Value) -> (u16, Value) {
    post(&server().url("/v1/chat/completions"), &body).await
}

#[tokio::test]
async fn error_is_still_the_default() {
    let (status, body) =
        ask(json!({"messages": conversation(4096, "Which ship?"), "max_tokens": 8})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "context_length_exceeded");
}

#[tokio::test]
async fn truncation_keeps_what_its_policy_says_and_says_so() {
    for policy in ["truncate_middle", "rolling_window"] {
        let messages = conversation(4096, "Which ship carried tea?");
        let r = send(
            client()
                .post(server().url("/v1/chat/completions"))
                .json(&json!({
                    "messages": messages, "max_tokens": 8, "context_overflow": policy,
                })),
        )
        .await;
        assert_eq!(r.status, 200, "{policy}: {}", r.body);
        let report = &r.body["ferrite"]["context"];
        assert_eq!(report["policy"], policy);
        assert!(
            report["prompt_tokens"].as_u64().unwrap() > 3 * CONTEXT,
            "{report}"
        );
        assert!(report["dropped_messages"].as_u64().unwrap() > 0);
        let prompt = r.body["usage"]["prompt_tokens"].as_u64().unwrap();
        assert!(prompt + 8 <= CONTEXT, "{prompt} prompt tokens");
        assert!(r.header("x-ferrite-context").starts_with(policy));
    }
}

#[tokio::test]
async fn memagent_reads_four_contexts_in_order_and_reports_it() {
    let sse = post_sse(
        &server().url("/v1/chat/completions"),
        &json!({
            "messages": conversation(4 * CONTEXT as usize, "Which ship carried the most crates?"),
            "max_tokens": 16, "stream": true, "stream_options": {"include_usage": true},
            "context_overflow": "memagent", "return_memory": true,
        }),
    )
    .await;
    assert_eq!(sse.status, 200, "{}", sse.raw);
    let progress: Vec<&str> = sse
        .raw
        .lines()
        .filter_map(|l| l.strip_prefix(": ferrite: memagent chunk "))
        .collect();
    let n = progress.len();
    assert!(n >= 4, "{progress:?}");
    for (k, p) in progress.iter().enumerate() {
        assert_eq!(*p, format!("{}/{n}", k + 1));
    }
    assert!(sse.done);
    let first = sse
        .events
        .iter()
        .find(|e| e["ferrite"]["memagent"].is_object())
        .unwrap();
    assert_eq!(first["ferrite"]["memagent"]["chunks"], n);
    let memory = first["ferrite"]["memagent"]["memory"].as_str().unwrap();
    let usage = &sse.events.last().unwrap()["usage"];
    // Every chunk's call read its share: the sum passes the input's size,
    // and each memory write is bounded (64 tokens), the answer by 16.
    assert!(
        usage["prompt_tokens"].as_u64().unwrap() > 4 * CONTEXT,
        "{usage}"
    );
    assert!(usage["completion_tokens"].as_u64().unwrap() <= 64 * n as u64 + 16);
    let tokens = post(&server().url("/tokenize"), &json!({"content": memory}))
        .await
        .1;
    assert!(tokens["tokens"].as_array().unwrap().len() <= 66, "{memory}");
}

#[tokio::test]
async fn memagent_reads_twenty_contexts() {
    if runtime() != "llama.cpp" {
        // mistral.rs prefills about 5x slower on CPU: 4x above shows it works.
        return;
    }
    let (status, body) = ask(json!({
        "messages": conversation(20 * CONTEXT as usize, "Which port did ship 3 sail from?"),
        "max_tokens": 16, "context_overflow": "memagent",
    }))
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["ferrite"]["memagent"]["chunks"].as_u64().unwrap() >= 20,
        "{body}"
    );
    assert!(
        body["ferrite"]["context"]["dropped_tokens"]
            .as_u64()
            .unwrap()
            > 19 * CONTEXT
    );
    assert!(body["choices"][0]["message"]["content"].is_string());
}

#[tokio::test]
async fn a_client_that_leaves_stops_the_reading() {
    // A server of its own: the other tests' generations would count too.
    let server = &start();
    let body = json!({
        "messages": conversation(20 * CONTEXT as usize, "Which ship?"),
        "max_tokens": 8, "stream": true, "context_overflow": "memagent",
    });
    let generations =
        || async { ferrite_tests::metric(server, "ferrite:engine_generations_total", "").await };
    let mut stream = client()
        .post(server.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let mut seen = String::new();
    while !seen.contains("memagent chunk 1/") {
        seen.push_str(&String::from_utf8_lossy(
            &stream.next().await.unwrap().unwrap(),
        ));
    }
    drop(stream);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = generations().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        generations().await,
        before,
        "no chunk is read after the client left"
    );
}
