//! Prompts longer than the context with the real default model, its context
//! cut to 1024 tokens so that inputs of 4x to 20x it stay quick: the
//! truncation policies, and MemAgent's mechanics (chunks read in order,
//! every call within the window, progress comments, usage summed, memory
//! bounded, a client that leaves stops the reading). A 135M model does not
//! find needles reliably, so what it answers is not checked, only how.

use std::sync::OnceLock;
use std::time::Duration;

use ferrite_tests::{client, get, post, post_sse, runtime, send, streamed_text, Server};
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

/// A request for a long answer to a conversation of about `tokens`: SmolLM2's
/// end-of-text ids are banned so that it runs to its limit.
fn endless(tokens: usize, extra: Value) -> Value {
    let mut body = json!({
        "messages": conversation(tokens, "Tell the whole story of these ships, at length."),
        "temperature": 0.7, "seed": 7, "logit_bias": {"0": -100, "1": -100, "2": -100},
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        body[k] = v.clone();
    }
    body
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
async fn memagent_reads_ten_contexts() {
    if runtime() != "llama.cpp" {
        // mistral.rs prefills about 5x slower on CPU: 4x above shows it works.
        return;
    }
    // Streamed, so that the wait is on each chunk's progress comment rather
    // than on the whole reading, whose time depends on the machine's day;
    // ten contexts (about two minutes here) show the reading goes on, and
    // BENCHMARKS.md that its cost is linear.
    let sse = post_sse(
        &server().url("/v1/chat/completions"),
        &json!({
            "messages": conversation(10 * CONTEXT as usize, "Which port did ship 3 sail from?"),
            "max_tokens": 16, "stream": true, "context_overflow": "memagent",
        }),
    )
    .await;
    assert_eq!(sse.status, 200, "{}", sse.raw);
    assert!(sse.done, "{}", sse.raw);
    let first = sse
        .events
        .iter()
        .find(|e| e["ferrite"]["memagent"].is_object())
        .unwrap();
    assert!(
        first["ferrite"]["memagent"]["chunks"].as_u64().unwrap() >= 10,
        "{first}"
    );
    let report = sse
        .events
        .iter()
        .find_map(|e| e["ferrite"]["context"]["dropped_tokens"].as_u64());
    assert!(report.unwrap() > 9 * CONTEXT, "{}", sse.raw);
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

#[tokio::test]
async fn without_a_policy_an_answer_stops_at_the_window() {
    let (status, body) = ask(endless(400, json!({}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["usage"]["total_tokens"], CONTEXT, "{}", body["usage"]);
    // A limit past the window is OpenAI's 400.
    let (status, body) = ask(endless(400, json!({"max_tokens": 1200}))).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "context_length_exceeded");
}

#[tokio::test]
async fn under_a_policy_an_answer_goes_on_past_the_window() {
    // mistral.rs decodes about 3x slower on CPU: one policy shows it there.
    let policies = match runtime().as_str() {
        "llama.cpp" => &["rolling_window", "truncate_middle"][..],
        _ => &["rolling_window"][..],
    };
    for &policy in policies {
        let sse = post_sse(
            &server().url("/v1/chat/completions"),
            &endless(
                400,
                json!({"max_tokens": 800, "stream": true, "context_overflow": policy,
                       "stream_options": {"include_usage": true}}),
            ),
        )
        .await;
        assert_eq!(sse.status, 200, "{}", sse.raw);
        assert!(sse.done, "{}", sse.raw);
        assert!(
            sse.raw.contains(": ferrite: context shift 1:"),
            "{policy}: {}",
            sse.raw
        );
        let last = sse.events.last().unwrap();
        // The whole answer the client asked for, though it is longer than
        // the window, in one stream that ends as any other.
        assert_eq!(last["usage"]["completion_tokens"], 800, "{last}");
        let report = &last["ferrite"]["context"];
        assert_eq!(report["policy"], policy, "{last}");
        assert!(report["shifts"].as_u64().unwrap() >= 1, "{report}");
        let finish: Vec<&Value> = sse
            .events
            .iter()
            .filter_map(|e| e["choices"][0]["finish_reason"].as_str().map(|_| e))
            .collect();
        assert_eq!(finish.len(), 1);
        assert_eq!(finish[0]["choices"][0]["finish_reason"], "length");
        let text = streamed_text(&sse.events, 0);
        let tokens = post(&server().url("/tokenize"), &json!({"content": text}))
            .await
            .1;
        let n = tokens["tokens"].as_array().unwrap().len() as u64;
        assert!(n > CONTEXT - 400, "{n} tokens streamed");
    }
}

#[tokio::test]
async fn the_context_is_chosen_at_load_and_per_request() {
    // A server of its own: it reloads its model.
    let server = &start();
    let meta = || async {
        let models = get(&server.url("/v1/models")).await.1;
        models["data"][0].clone()
    };
    let first = meta().await;
    let id = first["id"].as_str().unwrap().to_string();
    assert_eq!(first["meta"]["context_length"], CONTEXT, "{first}");
    let trained = first["meta"]["max_context_length"].as_u64().unwrap();
    assert!(trained > CONTEXT, "{first}");

    let (status, loaded) = post(
        &server.url("/api/v1/models/load"),
        &json!({"model": id, "context_length": 512, "echo_load_config": true}),
    )
    .await;
    assert_eq!(status, 200, "{loaded}");
    assert_eq!(loaded["load_config"]["context_length"], 512);
    assert_eq!(meta().await["meta"]["context_length"], 512);
    let v1 = get(&server.url("/api/v1/models")).await.1;
    let entry = v1["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == id.as_str())
        .unwrap();
    assert_eq!(entry["max_context_length"], trained, "{entry}");
    assert_eq!(
        entry["loaded_instances"][0]["config"]["context_length"],
        512
    );

    let long = json!({"messages": conversation(700, "Which ship?"), "max_tokens": 8});
    let (status, body) = post(&server.url("/v1/chat/completions"), &long).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("512"));

    // A request may name the context it needs: the model loads again.
    let mut wide = long.clone();
    wide["context_length"] = json!(2048);
    let (status, body) = post(&server.url("/v1/chat/completions"), &wide).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(meta().await["meta"]["context_length"], 2048);

    for url in ["/api/v1/models/load", "/v1/chat/completions"] {
        let (status, body) = post(
            &server.url(url),
            &json!({"model": id, "context_length": 10, "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .await;
        assert_eq!(status, 400, "{url}: {body}");
        assert_eq!(body["error"]["param"], "context_length");
    }
    assert_eq!(meta().await["meta"]["context_length"], 2048);
}
