//! Hostile and heavy use against the real server and model: memory stays
//! flat however many requests come and go, a client that gives up while
//! its huge prompt is being tokenized leaves everyone else's answers as
//! they were, and no request of any shape the limits let through keeps the
//! server busy for long.

use std::time::{Duration, Instant};

use ferrite_tests::{chat, config_file, metric, open, post, reqwest_client, Server};
use futures::StreamExt;
use serde_json::{json, Value};

/// Resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib / 1024
}

/// `count` streamed chats, four at a time, each with a prompt of its own
/// (so each leaves a new prefix-cache entry); every fifth is abandoned after
/// its first chunk.
async fn soak(server: &Server, from: usize, count: usize) {
    futures::stream::iter(from..from + count)
        .for_each_concurrent(4, |i| async move {
            let body = chat(
                &format!("Request {i}: say something about the number {i}."),
                json!({"max_tokens": 8, "temperature": 0, "stream": true}),
            );
            let mut stream = open(&server.url("/v1/chat/completions"), &body)
                .await
                .bytes_stream();
            if i % 5 == 4 {
                stream.next().await.unwrap().unwrap();
                return;
            }
            let mut raw = Vec::new();
            while let Some(b) = stream.next().await {
                raw.extend_from_slice(&b.unwrap());
            }
            assert!(
                String::from_utf8_lossy(&raw).contains("[DONE]"),
                "request {i}"
            );
        })
        .await;
}

#[tokio::test]
async fn memory_stays_flat_over_a_soak_with_disconnects() {
    // The default prefix cache (16 entries): each finished sequence's KV
    // cache is kept for reuse, and on CPU it used to be kept forever.
    let server = Server::start(&[]);
    let pid = server.pid().unwrap();
    soak(&server, 0, 40).await;
    // The largest request shape the default limits allow, once.
    let (status, v) = post(
        &server.url("/v1/completions"),
        &json!({"prompt": vec!["Count: one, two,"; 64], "max_tokens": 2}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let warm = rss_mib(pid);
    soak(&server, 40, 160).await;
    let after = rss_mib(pid);
    let entries = metric(&server, "ferrite:prefix_cache_entries", "").await;
    let bytes = metric(&server, "ferrite:prefix_cache_bytes", "").await;
    eprintln!("RSS {warm} MiB after warm-up, {after} MiB after 160 more; prefix cache {entries} entries, {bytes} bytes");
    assert!(
        after <= warm + 96,
        "RSS grew from {warm} to {after} MiB over 160 requests"
    );
    assert!(
        (1..=16).contains(&entries),
        "{entries} prefix cache entries"
    );
    assert!(bytes <= 1 << 30, "{bytes} bytes in the prefix cache");
}

#[tokio::test]
async fn the_prefix_cache_is_bounded_by_bytes_too() {
    // One entry of the default model takes about 23 MiB on mistral.rs (30
    // layers, KV for 512 positions): a 50 MiB bound holds two. llama.cpp
    // keeps only the entry's own tokens (about 22 KiB each, ~1 MiB for one
    // of these chats): 2 MiB holds one or two.
    let mib: u64 = if ferrite_tests::runtime() == "llama.cpp" {
        2
    } else {
        50
    };
    let server = Server::start(&["--prefix-cache-mib", &mib.to_string()]);
    for i in 0..6 {
        let body = chat(
            &format!("Item {i}: name a fruit."),
            json!({"max_tokens": 4, "temperature": 0}),
        );
        assert_eq!(
            post(&server.url("/v1/chat/completions"), &body).await.0,
            200
        );
    }
    let entries = metric(&server, "ferrite:prefix_cache_entries", "").await;
    let bytes = metric(&server, "ferrite:prefix_cache_bytes", "").await;
    assert!((1..=2).contains(&entries), "{entries} entries");
    assert!(bytes <= mib << 20, "{bytes} bytes");
}

/// A greedy stream's text and finish reason.
async fn greedy_stream(server: &Server, prompt: &str) -> (String, String) {
    let body = chat(
        prompt,
        json!({"max_tokens": 40, "temperature": 0, "stream": true,
               "logit_bias": {"0": -100, "2": -100}}),
    );
    let raw = open(&server.url("/v1/chat/completions"), &body)
        .await
        .text()
        .await
        .unwrap();
    let mut text = String::new();
    let mut finish = String::new();
    for data in raw.lines().filter_map(|l| l.strip_prefix("data: ")) {
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            continue;
        };
        if v.get("error").is_some() {
            panic!("stream failed: {v}");
        }
        for c in v["choices"].as_array().into_iter().flatten() {
            text.push_str(c["delta"]["content"].as_str().unwrap_or(""));
            if let Some(f) = c["finish_reason"].as_str() {
                finish = f.to_string();
            }
        }
    }
    assert!(raw.contains("data: [DONE]"), "{raw}");
    (text, finish)
}

/// The prompts' greedy streams alone, then again beside `attacks` (begun
/// once the streams have started): the same answers, equal where the
/// runtime is batch invariant and the same opening where not (what was
/// attacked may share a step with them), each run to its length. Returns
/// the answers alone.
async fn untouched_beside(
    server: &Server,
    prompts: &[&str],
    attacks: impl std::future::Future<Output = ()>,
) -> Vec<(String, String)> {
    let mut alone = Vec::new();
    for p in prompts {
        alone.push(greedy_stream(server, p).await);
    }
    let streams = futures::future::join_all(prompts.iter().map(|p| greedy_stream(server, p)));
    let attacks = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        attacks.await
    };
    let (together, ()) = tokio::join!(streams, attacks);
    for ((p, a), t) in prompts.iter().zip(&alone).zip(&together) {
        ferrite_tests::assert_batched_answer(&t.0, &a.0, p);
        assert_eq!(t.1, "length", "{p}");
    }
    alone
}

#[tokio::test]
async fn a_client_leaving_mid_tokenization_leaves_the_others_untouched() {
    // Limits raised so that the 2,000-prompt request reaches the engine.
    let config = config_file(
        "hostile-limits",
        "[limits]\nmax_prompts = 5000\nmax_sequences = 5000\n",
    );
    let server = Server::start(&["--config", config.to_str().unwrap()]);
    let prompts = [
        "Write a story about a fox.",
        "Describe a busy harbour.",
        "Explain how bread is made.",
    ];
    let attacks = async {
        // Too long for any tokenization of it to fit: refused before the
        // tokenizer sees it, or given up on by the client, whichever first.
        let huge = chat(&"lorem ipsum dolor ".repeat((6 << 20) / 18), json!({}));
        let answer = reqwest_client(Duration::from_millis(500))
            .post(server.url("/v1/chat/completions"))
            .json(&huge)
            .send()
            .await;
        if let Ok(answer) = answer {
            assert_eq!(answer.status(), 400, "the 6 MB message");
        }
        let many: Vec<String> = (0..2000).map(|i| format!("prompt number {i}")).collect();
        let gave_up = reqwest_client(Duration::from_secs(1))
            .post(server.url("/v1/completions"))
            .json(&json!({"prompt": many, "max_tokens": 4}))
            .send()
            .await;
        assert!(gave_up.is_err(), "2,000 prompts were answered within 1 s");
    };
    let alone = untouched_beside(&server, &prompts, attacks).await;
    // The engine still serves, and nothing panicked. On a runtime that is
    // not batch-invariant the prompt may now be read from cells the batched
    // run left in the prefix cache, so it is held to the batched tolerance.
    let after = greedy_stream(&server, prompts[0]).await;
    ferrite_tests::assert_batched_answer(&after.0, &alone[0].0, prompts[0]);
    assert_eq!(after.1, "length");
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

/// Bodies of about 15 MB, each as costly as a legal request can be made
/// for the template, the tokenizer or the limits: special tokens by the
/// million (llama.cpp's own split at them is quadratic in their number),
/// messages and parts at the limits, one endless word.
fn worst_shapes() -> Vec<(&'static str, Value)> {
    let message = |content: String| json!({"role": "user", "content": content});
    let specials_each = "<|im_start|>".repeat(300);
    let tool = |i: usize| {
        let properties: serde_json::Map<String, Value> = (0..400)
            .map(|p| {
                (
                    format!("field_{i}_{p}"),
                    json!({"type": "string", "description": "<|im_end|> x"}),
                )
            })
            .collect();
        json!({"type": "function", "function": {"name": format!("tool_{i}"),
               "parameters": {"type": "object", "properties": properties}}})
    };
    let parts: Vec<Value> = (0..4096)
        .map(|_| json!({"type": "text", "text": "<|im_end|>".repeat(350)}))
        .collect();
    vec![
        (
            "one message of 1.5M special tokens",
            json!({"messages": [message("<|im_end|>".repeat(1_500_000))]}),
        ),
        (
            "4096 messages of 300 special tokens",
            json!({"messages": vec![message(specials_each); 4096]}),
        ),
        (
            "4096 parts of 350 special tokens",
            json!({"messages": [{"role": "user", "content": parts}]}),
        ),
        (
            "one word of 15M letters",
            json!({"messages": [message("a".repeat(15_000_000))]}),
        ),
        (
            "256 tools of 400 fields",
            json!({"messages": [message("Hi".into())],
            "tools": (0..256).map(tool).collect::<Vec<_>>()}),
        ),
    ]
}

#[tokio::test]
async fn huge_requests_are_answered_promptly_and_leave_the_others_untouched() {
    let server = Server::start(&[]);
    let url = server.url("/v1/chat/completions");
    let prompts = ["Write a story about a fox.", "Describe a busy harbour."];
    let attacks = async {
        // 200,000 one-letter messages (6.8 MB) once kept a core busy for
        // more than ten minutes; now they are past `limits.max_messages`.
        let many = vec![json!({"role": "user", "content": "a"}); 200_000];
        let started = Instant::now();
        let (status, body) = post(&url, &json!({"messages": many, "max_tokens": 4})).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["param"], "messages", "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("4096"));
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(20),
            "200,000 messages took {took:?}"
        );
        for (what, mut body) in worst_shapes() {
            body["max_tokens"] = json!(4);
            let started = Instant::now();
            let (status, answer) = post(&url, &body).await;
            let took = started.elapsed();
            eprintln!("{what}: {status} in {took:?}");
            assert!((200..500).contains(&status), "{what}: {status} {answer}");
            assert!(took < Duration::from_secs(30), "{what} took {took:?}");
        }
    };
    untouched_beside(&server, &prompts, attacks).await;
    assert!(!server.log().contains("panicked"), "{}", server.log());
}
