//! The response cache against the real server and model: hits replay the
//! identical answer (streaming too), anything that changes the answer
//! misses, identical concurrent requests share one generation, and
//! configured prompts are precomputed.

use std::time::Duration;

use ferrite_tests::{chat, client, config_file, metric, post_sse, streamed_text, Server};
use serde_json::{json, Value};

fn start(extra_env: &[(&str, &str)]) -> Server {
    let mut env = vec![("FERRITE_CACHE__ENABLED", "true")];
    env.extend_from_slice(extra_env);
    Server::start_with_env(&[], &env)
}

/// Status, the cache headers, and the raw body.
async fn ask(server: &Server, body: &Value, cache_control: Option<&str>) -> (u16, String, String) {
    let mut req = client().post(server.url("/v1/chat/completions")).json(body);
    if let Some(cc) = cache_control {
        req = req.header("cache-control", cc);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let h = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let cache = format!("{}/{}", h("x-ferrite-cache"), h("x-ferrite-cache-source"));
    (status, cache, resp.text().await.unwrap())
}

/// A counter's value in `/metrics` (0 when absent), summed over labels that
/// contain `labels`.

#[tokio::test]
async fn a_hit_replays_the_identical_answer_and_changes_miss() {
    let server = start(&[]);
    let body = chat(
        "Name three colours.",
        json!({"max_tokens": 16, "temperature": 0}),
    );
    let (status, first_cache, first) = ask(&server, &body, None).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first_cache, "miss/");
    let (_, cache, second) = ask(&server, &body, None).await;
    assert_eq!(cache, "hit/cache");
    same_answer(&first, &second);

    // The same request streamed is replayed as a stream.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let sse = post_sse(&server.url("/v1/chat/completions"), &streamed).await;
    let answer: Value = serde_json::from_str(&first).unwrap();
    assert!(sse.done);
    assert_ne!(sse.events[0]["id"], answer["id"], "a response of its own");
    assert_eq!(
        streamed_text(&sse.events, 0),
        answer["choices"][0]["message"]["content"].as_str().unwrap()
    );

    // Anything that can change the answer is another entry.
    for (field, value) in [
        ("temperature", json!(0.5)),
        ("max_tokens", json!(15)),
        ("stop", json!(["\n"])),
    ] {
        let mut other = body.clone();
        other[field] = value;
        if field == "temperature" {
            other["seed"] = json!(3); // seeded: still cacheable
        }
        let (status, cache, _) = ask(&server, &other, None).await;
        assert_eq!((status, cache.as_str()), (200, "miss/"), "{field}");
    }
    // Sampling without a seed is never cached.
    let mut random = body.clone();
    random["temperature"] = json!(0.7);
    for _ in 0..2 {
        assert_eq!(ask(&server, &random, None).await.1, "bypass/");
    }
    // Opting out: the body field and Cache-Control.
    let mut off = body.clone();
    off["cache"] = json!(false);
    assert_eq!(ask(&server, &off, None).await.1, "bypass/");
    assert_eq!(ask(&server, &body, Some("no-store")).await.1, "bypass/");
    // no-cache computes afresh, and the fresh answer is what is cached next.
    let (_, cache, fresh) = ask(&server, &body, Some("no-cache")).await;
    assert_eq!(cache, "miss/");
    let (_, cache, again) = ask(&server, &body, None).await;
    assert_eq!(cache, "hit/cache");
    same_answer(&fresh, &again);
}

/// Two JSON completions with the same answer, each with an id of its own.
fn same_answer(a: &str, b: &str) {
    let (a, b): (Value, Value) = (
        serde_json::from_str(a).unwrap(),
        serde_json::from_str(b).unwrap(),
    );
    assert_eq!(a["choices"], b["choices"]);
    assert_eq!(a["usage"], b["usage"]);
    assert_ne!(a["id"], b["id"], "every response has its own id");
}

#[tokio::test]
async fn five_concurrent_identical_requests_make_one_generation() {
    let server = start(&[]);
    let body = chat(
        "Write a long poem about the sea.",
        json!({"max_tokens": 48, "temperature": 0, "logit_bias": {"0": -100, "2": -100}}),
    );
    let before = metric(&server, "ferrite:engine_generations_total", "").await;
    let runs = (0..5).map(|i| {
        let mut body = body.clone();
        // Streaming or not, it is the same request.
        body["stream"] = json!(i % 2 == 1);
        let server = &server;
        async move {
            if i % 2 == 1 {
                let sse = post_sse(&server.url("/v1/chat/completions"), &body).await;
                (sse.events[0]["id"].clone(), streamed_text(&sse.events, 0))
            } else {
                let (status, _, text) = ask(server, &body, None).await;
                assert_eq!(status, 200, "{text}");
                let v: Value = serde_json::from_str(&text).unwrap();
                let content = v["choices"][0]["message"]["content"].as_str().unwrap();
                (v["id"].clone(), content.to_string())
            }
        }
    });
    let answers = futures::future::join_all(runs).await;
    let after = metric(&server, "ferrite:engine_generations_total", "").await;
    assert_eq!(after - before, 1, "one generation for five requests");
    for a in &answers {
        assert_eq!(a.1, answers[0].1);
    }
    let ids: std::collections::HashSet<String> = answers.iter().map(|a| a.0.to_string()).collect();
    assert_eq!(ids.len(), 5, "each response has its own id");
    assert_eq!(
        metric(
            &server,
            "ferrite:cache_requests_total",
            "source=\"coalesced\""
        )
        .await,
        4
    );
}

#[tokio::test]
async fn configured_prompts_are_precomputed_and_counted_apart() {
    let dir = std::env::temp_dir().join(format!("ferrite-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("ferrite.toml");
    std::fs::write(
        &config,
        r#"
[cache]
ttl_secs = 600
[[cache.precompute]]
max_tokens = 12
messages = [{ role = "user", content = "What is the capital of France?" }]
"#,
    )
    .unwrap();
    let server = Server::start_with_env(
        &["--config", config.to_str().unwrap()],
        &[("FERRITE_CACHE__ENABLED", "true")],
    );
    assert!(
        server
            .wait_log("precomputed a cached answer", 1, Duration::from_secs(60))
            .await,
        "{}",
        server.log()
    );
    let body = chat(
        "What is the capital of France?",
        json!({"max_tokens": 12, "temperature": 0}),
    );
    let generations = metric(&server, "ferrite:engine_generations_total", "").await;
    let (status, cache, _) = ask(&server, &body, None).await;
    assert_eq!((status, cache.as_str()), (200, "hit/precomputed"));
    assert_eq!(
        metric(&server, "ferrite:engine_generations_total", "").await,
        generations,
        "answered without the engine"
    );
    assert_eq!(
        metric(
            &server,
            "ferrite:cache_requests_total",
            "source=\"precomputed\""
        )
        .await,
        1
    );
}

/// A chat answer for a tenant's key: status, cache header, the body.
async fn ask_as(server: &Server, key: &str, body: &Value) -> (u16, String, Value) {
    let resp = client()
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let cache = resp
        .headers()
        .get("x-ferrite-cache")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, cache, resp.json().await.unwrap())
}

async fn memories(server: &Server, key: &str) -> Vec<Value> {
    let resp = client()
        .get(server.url("/v1/memory"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    v["data"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn tenants_share_no_cached_answer_or_generation_and_each_remembers() {
    let config = config_file(
        "cache-tenants",
        r#"[memory]
enabled = true
[[auth.api_keys]]
name = "alice"
key = "sk-alice"
[[auth.api_keys]]
name = "bob"
key = "sk-bob"
"#,
    );
    let data = config.with_file_name("data");
    let _ = std::fs::remove_dir_all(&data);
    let server = Server::start_with_env(
        &["--config", config.to_str().unwrap()],
        &[
            ("FERRITE_CACHE__ENABLED", "true"),
            ("FERRITE_DATA_DIR", data.to_str().unwrap()),
        ],
    );
    let body = chat(
        "Name a large animal.",
        json!({"max_tokens": 8, "temperature": 0}),
    );
    let (status, cache, a1) = ask_as(&server, "sk-alice", &body).await;
    assert_eq!((status, cache.as_str()), (200, "miss"), "{a1}");
    // Bob asking the same learns nothing from the cache.
    let (_, cache, b1) = ask_as(&server, "sk-bob", &body).await;
    assert_eq!(cache, "miss");
    let (_, cache, a2) = ask_as(&server, "sk-alice", &body).await;
    assert_eq!(cache, "hit");
    let ids: std::collections::HashSet<&Value> = [&a1["id"], &b1["id"], &a2["id"]].into();
    assert_eq!(ids.len(), 3, "every response has its own id");
    assert_eq!(a1["choices"], a2["choices"]);
    // Every completed exchange is in its tenant's memory, the hit too.
    assert_eq!(memories(&server, "sk-alice").await.len(), 2);
    let bob = memories(&server, "sk-bob").await;
    assert_eq!(bob.len(), 1);
    assert_eq!(bob[0]["prompt"], "Name a large animal.");

    // Identical requests in flight together: one generation per tenant.
    let long = chat(
        "Write a long poem about rivers.",
        json!({"max_tokens": 24, "temperature": 0, "logit_bias": {"0": -100, "2": -100}}),
    );
    let before = metric(&server, "ferrite:engine_generations_total", "").await;
    let (a, b) = tokio::join!(
        ask_as(&server, "sk-alice", &long),
        ask_as(&server, "sk-bob", &long)
    );
    assert_eq!((a.1.as_str(), b.1.as_str()), ("miss", "miss"));
    let after = metric(&server, "ferrite:engine_generations_total", "").await;
    assert_eq!(after - before, 2, "no generation shared across tenants");
    assert_eq!(a.2["choices"], b.2["choices"], "greedy: the same answer");
}
