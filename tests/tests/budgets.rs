//! Per-tenant budgets against the real server: OpenAI's rate-limit headers on
//! every answer, 429 with `Retry-After` when spent, recovery after the
//! window, and `max_tokens` reserved so concurrent requests cannot overshoot.

use std::time::{Duration, Instant};

use ferrite_tests::{chat, client, send, Reply, Server};
use futures::StreamExt;
use serde_json::json;

fn start(config: &str, name: &str) -> Server {
    let path = std::env::temp_dir().join(format!(
        "ferrite-budgets-{}-{name}.toml",
        std::process::id()
    ));
    std::fs::write(&path, config).unwrap();
    Server::start(&["--config", path.to_str().unwrap()])
}

async fn ask(server: &Server, key: &str, max_tokens: u32) -> Reply {
    send(
        client()
            .post(server.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&chat("Say hi.", json!({"max_tokens": max_tokens}))),
    )
    .await
}

#[tokio::test]
async fn requests_per_minute_run_out_per_tenant_and_come_back() {
    let server = start(
        r#"
[budgets]
requests_per_minute = 3
[budgets.tenants.bob]
requests_per_minute = 10
[[auth.api_keys]]
name = "alice"
key = "sk-alice"
[[auth.api_keys]]
name = "bob"
key = "sk-bob"
"#,
        "rpm",
    );
    for left in [2, 1, 0] {
        let r = ask(&server, "sk-alice", 2).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.number("x-ratelimit-limit-requests"), 3);
        assert_eq!(r.number("x-ratelimit-remaining-requests"), left);
        assert!(!r.header("x-ratelimit-reset-requests").is_empty());
    }
    let refused = ask(&server, "sk-alice", 2).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.body["error"]["type"], "rate_limit_exceeded");
    assert_eq!(refused.body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(refused.number("x-ratelimit-remaining-requests"), 0);
    let retry = refused.number("retry-after");
    assert!((1..=20).contains(&retry), "one request every 20s: {retry}");
    // Text completions draw on the same budget.
    let legacy = client()
        .post(server.url("/v1/completions"))
        .bearer_auth("sk-alice")
        .json(&json!({"prompt": "Hi", "max_tokens": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.status(), 429);
    assert_eq!(legacy.headers()["x-ratelimit-limit-requests"], "3");

    // Another tenant has its own (overridden) budget.
    let bob_started = Instant::now();
    for _ in 0..4 {
        let r = ask(&server, "sk-bob", 2).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.number("x-ratelimit-limit-requests"), 10);
    }
    let legacy = client()
        .post(server.url("/v1/completions"))
        .bearer_auth("sk-bob")
        .json(&json!({"prompt": "Hi", "max_tokens": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.status(), 200);
    // The bucket refills one request every 6 s: a slow machine may see one back.
    let refilled = bob_started.elapsed().as_secs() / 6;
    let remaining: u64 = legacy.headers()["x-ratelimit-remaining-requests"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (5..=5 + refilled).contains(&remaining),
        "{remaining} left after 5 of 10 in {refilled} refills"
    );

    // After Retry-After, Alice may ask again.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let again = ask(&server, "sk-alice", 2).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.number("x-ratelimit-remaining-requests"), 0);
}

#[tokio::test]
async fn max_tokens_is_reserved_up_front_and_the_rest_returned() {
    let server = start(
        r#"
[budgets]
tokens_per_minute = 600
[[auth.api_keys]]
name = "alice"
key = "sk-alice"
"#,
        "tpm",
    );
    // A long request holds its reservation while it streams...
    let long = chat(
        "Write a very long story about a lighthouse keeper.",
        json!({"max_tokens": 400, "temperature": 0, "stream": true,
               "logit_bias": {"0": -100, "2": -100}}),
    );
    let resp = client()
        .post(server.url("/v1/chat/completions"))
        .bearer_auth("sk-alice")
        .json(&long)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let reserved_left: u64 = resp.headers()["x-ratelimit-remaining-tokens"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        reserved_left < 200,
        "400 tokens plus the prompt reserved: {reserved_left}"
    );
    assert_eq!(resp.headers()["x-ratelimit-limit-tokens"], "600");

    // ...so a second that would overshoot the budget is refused at once.
    let refused = ask(&server, "sk-alice", 300).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(refused.number("retry-after") >= 1);
    assert!(refused.number("x-ratelimit-remaining-tokens") < 300);
    assert!(!refused.header("x-ratelimit-reset-tokens").is_empty());

    // The client stops reading early: only what was generated is charged.
    let started = Instant::now();
    let mut stream = resp.bytes_stream();
    let mut seen = 0;
    while seen < 10 {
        let chunk = stream.next().await.unwrap().unwrap();
        seen += String::from_utf8_lossy(&chunk).matches("data: ").count();
    }
    drop(stream);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = ask(&server, "sk-alice", 8).await;
    assert_eq!(after.status, 200, "{}", after.body);
    let generous = 600 - 100 - 8 - 80; // prompt, tokens made, this request's reservation
    let left = after.number("x-ratelimit-remaining-tokens");
    assert!(
        left >= generous,
        "{left} left after {:?}: the unused reservation came back",
        started.elapsed()
    );
}
