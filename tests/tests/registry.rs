//! Many models in one server, for real: the default model under two ids
//! plus the same model re-quantized to Q8_0 by `ferrite quantize`, loaded
//! just in time, evicted least-recently-used, unloaded after their TTL,
//! and managed through LM Studio's REST API.

use std::time::Duration;

use ferrite_tests::{
    chat, client, config_file, get, metric, model, model_q8, post, post_sse, streamed_text, Server,
};
use futures::StreamExt;
use serde_json::{json, Value};

/// The startup model (`smollm2-135m-instruct`), `smol-q8`, `smol-again`
/// (the startup file under a second id), `broken` (not a GGUF file) and
/// `truncated` (a GGUF header without its weights: it fails only to load).
fn registry(name: &str, max_loaded: usize, extra: &str) -> String {
    let broken = config_file(&format!("{name}-broken"), "not a model").with_extension("gguf");
    std::fs::write(&broken, b"this is not a GGUF file").unwrap();
    let truncated = broken.with_file_name("truncated.gguf");
    let whole = std::fs::read(model()).unwrap();
    std::fs::write(&truncated, &whole[..16 << 20]).unwrap();
    let path = config_file(
        name,
        &format!(
            r#"[registry]
max_loaded_models = {max_loaded}
[[registry.models]]
id = "smol-q8"
path = "{q8}"
aliases = ["q8"]
[[registry.models]]
id = "smol-again"
path = "{q4}"
[[registry.models]]
id = "broken"
path = "{broken}"
[[registry.models]]
id = "truncated"
path = "{truncated}"
{extra}"#,
            q8 = model_q8().display(),
            q4 = model().display(),
            broken = broken.display(),
            truncated = truncated.display(),
        ),
    );
    path.display().to_string()
}

fn start(name: &str, max_loaded: usize, extra: &str) -> Server {
    Server::start(&["--config", &registry(name, max_loaded, extra)])
}

/// Model id -> `loaded_instances` as `/api/v1/models` reports them.
async fn instances(server: &Server) -> Vec<(String, Vec<Value>)> {
    let (status, v) = get(&server.url("/api/v1/models")).await;
    assert_eq!(status, 200, "{v}");
    v["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["key"].as_str().unwrap().to_string(),
                m["loaded_instances"].as_array().unwrap().clone(),
            )
        })
        .collect()
}

async fn loaded(server: &Server) -> Vec<String> {
    instances(server)
        .await
        .into_iter()
        .filter(|(_, i)| !i.is_empty())
        .map(|(id, _)| id)
        .collect()
}

async fn ask(server: &Server, model: &str) -> Value {
    let (status, v) = post(
        &server.url("/v1/chat/completions"),
        &chat(
            "Name a colour.",
            json!({"model": model, "max_tokens": 6, "temperature": 0}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{model}: {v}");
    v
}

#[tokio::test]
async fn models_load_just_in_time_and_the_least_recently_used_is_evicted() {
    let server = start("lru", 1, "");
    let (_, list) = get(&server.url("/v1/models")).await;
    let states: Vec<(&str, &str)> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["meta"].is_object())
        .map(|m| {
            (
                m["id"].as_str().unwrap(),
                m["meta"]["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("smollm2-135m-instruct", "loaded"),
            ("smol-q8", "not-loaded"),
            ("smol-again", "not-loaded"),
            ("truncated", "not-loaded"),
        ]
    );
    assert_eq!(list["data"][1]["meta"]["quantization"], "Q8_0");

    // By alias: loads smol-q8 and evicts the idle startup model.
    let v = ask(&server, "q8").await;
    assert_eq!(v["model"], "smol-q8");
    assert_eq!(loaded(&server).await, ["smol-q8"]);
    let v = ask(&server, "smol-again").await;
    assert_eq!(v["model"], "smol-again");
    assert_eq!(loaded(&server).await, ["smol-again"]);
    // The same file under two ids gives the same greedy answer.
    let again = v["choices"][0]["message"]["content"].clone();
    let v = ask(&server, "smollm2-135m-instruct").await;
    assert_eq!(v["choices"][0]["message"]["content"], again);
    assert_eq!(
        metric(&server, "ferrite:model_unloads_total", "reason=\"lru\"").await,
        3
    );
    assert_eq!(metric(&server, "ferrite:models_loaded", "").await, 1);

    // No model: the loaded one answers, as in LM Studio.
    let (status, v) = post(
        &server.url("/v1/chat/completions"),
        &chat("Hi", json!({"max_tokens": 2})),
    )
    .await;
    assert_eq!(
        (status, v["model"].as_str()),
        (200, Some("smollm2-135m-instruct"))
    );

    let (status, v) = post(
        &server.url("/v1/chat/completions"),
        &chat("Hi", json!({"model": "gpt-4o", "max_tokens": 2})),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(v["error"]["code"], "model_not_found");
    assert_eq!(v["error"]["param"], "model");

    // A model that cannot load is a clear error, and the server goes on.
    let (status, v) = post(
        &server.url("/v1/chat/completions"),
        &chat("Hi", json!({"model": "broken", "max_tokens": 2})),
    )
    .await;
    assert_eq!(status, 500, "{v}");
    assert_eq!(v["error"]["code"], "model_load_failed");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("not a readable GGUF file"), "{message}");
    assert!(!message.contains("\n"), "one line, no backtrace: {message}");
    ask(&server, "smol-q8").await;

    // LM Studio's v0 listing agrees.
    let (_, v0) = get(&server.url("/api/v0/models")).await;
    let q8 = v0["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "smol-q8")
        .unwrap();
    assert_eq!(q8["state"], "loaded");
    assert_eq!(q8["quantization"], "Q8_0");
    let (_, one) = get(&server.url("/api/v0/models/smol-again")).await;
    assert_eq!(one["state"], "not-loaded");
    assert_eq!(one["arch"], "llama");
}

#[tokio::test]
async fn idle_models_unload_after_their_ttl() {
    let server = start("ttl", 3, "");
    // The request's own `ttl`, as in LM Studio.
    let (status, _) = post(
        &server.url("/v1/chat/completions"),
        &chat("Hi", json!({"model": "smol-q8", "max_tokens": 2, "ttl": 2})),
    )
    .await;
    assert_eq!(status, 200);
    let all = instances(&server).await;
    let q8 = &all.iter().find(|(id, _)| id == "smol-q8").unwrap().1[0];
    assert_eq!(q8["ttl_seconds"], 2);
    assert!(q8["expires_in_seconds"].as_f64().unwrap() <= 2.0);
    // The startup model was loaded by hand: it has no TTL.
    assert_eq!(all[0].1[0]["ttl_seconds"], Value::Null);
    assert_eq!(loaded(&server).await, ["smollm2-135m-instruct", "smol-q8"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while loaded(&server).await.len() > 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(loaded(&server).await, ["smollm2-135m-instruct"]);
    assert_eq!(
        metric(&server, "ferrite:model_unloads_total", "reason=\"ttl\"").await,
        1
    );
    // And it comes back on the next request.
    ask(&server, "smol-q8").await;
}

#[tokio::test]
async fn two_models_serve_concurrent_requests() {
    let server = start("concurrent", 2, "");
    let solo_a = ask(&server, "smollm2-135m-instruct").await;
    let solo_b = ask(&server, "smol-q8").await;
    let calls = (0..4).map(|i| {
        let model = if i % 2 == 0 {
            "smollm2-135m-instruct"
        } else {
            "smol-q8"
        };
        let url = server.url("/v1/chat/completions");
        async move {
            let body = chat(
                "Name a colour.",
                json!({"model": model, "max_tokens": 6, "temperature": 0}),
            );
            (model, post(&url, &body).await)
        }
    });
    for (model, (status, v)) in futures::future::join_all(calls).await {
        assert_eq!(status, 200);
        assert_eq!(v["model"], model);
        let solo = if model == "smol-q8" { &solo_b } else { &solo_a };
        assert_eq!(v["choices"], solo["choices"], "{model}");
    }
    assert_eq!(
        metric(&server, "ferrite:model_unloads_total", "").await,
        0,
        "two fit"
    );
}

#[tokio::test]
async fn a_busy_model_is_not_evicted_under_its_requests() {
    let server = start("busy", 1, "");
    // A long stream on the startup model...
    let long = client()
        .post(server.url("/v1/chat/completions"))
        .json(&chat(
            "Write a long story.",
            json!({"max_tokens": 120, "stream": true, "logit_bias": {"0": -100, "2": -100}}),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(long.status(), 200);
    let mut body = long.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    // ...while another model is asked for: it waits for the stream to end.
    let other = tokio::spawn({
        let url = server.url("/v1/chat/completions");
        async move {
            post(
                &url,
                &chat("Hi", json!({"model": "smol-q8", "max_tokens": 3})),
            )
            .await
        }
    });
    // Meanwhile the startup model stays, busy.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = instances(&server).await;
    assert_eq!(all[0].1[0]["in_flight"], 1, "{all:?}");
    assert!(all[1].1.is_empty(), "smol-q8 waits: {all:?}");
    let mut raw = String::from_utf8_lossy(&first).into_owned();
    while let Some(b) = body.next().await {
        raw.push_str(&String::from_utf8_lossy(&b.unwrap()));
    }
    assert!(raw.contains("\"finish_reason\":\"length\""), "{raw}");
    assert!(raw.ends_with("data: [DONE]\n\n"));
    assert!(!raw.contains("\"error\""));
    let (status, v) = other.await.unwrap();
    assert_eq!((status, v["model"].as_str()), (200, Some("smol-q8")));
    assert_eq!(loaded(&server).await, ["smol-q8"]);
}

#[tokio::test]
async fn a_just_in_time_loaded_stream_holds_its_model_to_the_end() {
    let server = start("jit-hold", 1, "");
    let startup = instances(&server).await[0].0.clone();
    // A long stream to a model that is not loaded: load comments first...
    let long = client()
        .post(server.url("/v1/chat/completions"))
        .json(&chat(
            "Write a long story.",
            json!({"model": "smol-q8", "max_tokens": 120, "stream": true,
                   "logit_bias": {"0": -100, "2": -100}}),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(long.status(), 200);
    let mut body = long.bytes_stream();
    let mut raw = String::new();
    // ...then the answer's first chunks.
    while !raw.contains("data: {") {
        let bytes = body.next().await.expect("stream ended early").unwrap();
        raw.push_str(&String::from_utf8_lossy(&bytes));
    }
    assert!(raw.starts_with(": ferrite: loading model smol-q8"), "{raw}");
    let all = instances(&server).await;
    let q8 = all.iter().find(|(id, _)| id == "smol-q8").unwrap();
    assert_eq!(q8.1[0]["in_flight"], 1, "counted while it streams: {all:?}");
    // Another model asked for now waits: smol-q8 is not evicted under the stream.
    let other = tokio::spawn({
        let url = server.url("/v1/chat/completions");
        let startup = startup.clone();
        async move {
            post(
                &url,
                &chat("Hi", json!({"model": startup, "max_tokens": 3})),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(loaded(&server).await, ["smol-q8"]);
    while let Some(b) = body.next().await {
        raw.push_str(&String::from_utf8_lossy(&b.unwrap()));
    }
    assert!(raw.contains("\"finish_reason\":\"length\""), "{raw}");
    assert!(raw.ends_with("data: [DONE]\n\n"));
    assert!(!raw.contains("\"error\""), "{raw}");
    let (status, v) = other.await.unwrap();
    assert_eq!((status, v["model"].as_str()), (200, Some(startup.as_str())));
    assert_eq!(loaded(&server).await, [startup]);
}

#[tokio::test]
async fn streaming_to_a_model_being_loaded_pings_until_it_answers() {
    let server = start("pings", 1, "");
    let s = post_sse(
        &server.url("/v1/chat/completions"),
        &chat(
            "Hi",
            json!({"model": "smol-q8", "max_tokens": 5, "stream": true}),
        ),
    )
    .await;
    assert_eq!(s.status, 200);
    assert!(
        s.raw.starts_with(": ferrite: loading model smol-q8: "),
        "{}",
        s.raw
    );
    assert!(s.done);
    assert_eq!(s.events[0]["model"], "smol-q8");
    assert!(!streamed_text(&s.events, 0).is_empty());
    // A model that fails to load ends such a stream with an error event...
    let s = post_sse(
        &server.url("/v1/chat/completions"),
        &chat("Hi", json!({"model": "truncated", "stream": true})),
    )
    .await;
    assert_eq!(s.status, 200);
    let error = s.events.last().unwrap();
    assert_eq!(error["error"]["code"], "model_load_failed", "{}", s.raw);
    assert!(s.done);
    // ...and a file that is not a model fails before any stream starts.
    let s = post_sse(
        &server.url("/v1/chat/completions"),
        &chat("Hi", json!({"model": "broken", "stream": true})),
    )
    .await;
    assert_eq!(s.status, 500, "{}", s.raw);
    assert!(s.raw.contains("model_load_failed"), "{}", s.raw);
}

#[tokio::test]
async fn load_and_unload_through_lm_studios_rest_api() {
    let server = start("manage", 2, "");
    let url = |p: &str| server.url(p);

    // Streamed load: start, progress, end.
    let r = client()
        .post(url("/api/v1/models/load"))
        .json(&json!({"model": "smol-q8", "stream": true, "ttl": 300}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let raw = r.text().await.unwrap();
    let kinds: Vec<&str> = raw
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(kinds.first(), Some(&"model_load.start"), "{raw}");
    assert_eq!(kinds.last(), Some(&"model_load.end"), "{raw}");
    let end: Value = serde_json::from_str(
        raw.lines()
            .rev()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(end["status"], "loaded");
    assert_eq!(end["instance_id"], "smol-q8");
    assert_eq!(end["type"], "llm");
    assert!(end["load_time_seconds"].as_f64().unwrap() > 0.0);
    let progress: Vec<f64> = raw
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["progress"].as_f64())
        .collect();
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");

    // Plain load of a loaded model answers at once.
    let (status, v) = post(
        &url("/api/v1/models/load"),
        &json!({"model": "q8", "echo_load_config": true}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["load_config"]["context_length"], 8192);
    assert_eq!(loaded(&server).await, ["smollm2-135m-instruct", "smol-q8"]);

    let (status, v) = post(
        &url("/api/v1/models/unload"),
        &json!({"instance_id": "smol-q8"}),
    )
    .await;
    assert_eq!((status, v["unloaded"].clone()), (200, json!(["smol-q8"])));
    let (status, v) = post(
        &url("/api/v1/models/unload"),
        &json!({"instance_id": "smol-q8"}),
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("model_not_loaded"))
    );
    let (status, v) = post(
        &url("/api/v1/models/unload"),
        &json!({"instance_id": "nope"}),
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("model_not_found"))
    );
    let (status, v) = post(&url("/api/v1/models/unload"), &json!({})).await;
    assert_eq!(
        (status, v["error"]["param"].as_str()),
        (400, Some("instance_id"))
    );
    let (status, v) = post(&url("/api/v1/models/load"), &json!({"model": 7})).await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = post(&url("/api/v1/models/load"), &json!({"model": "broken"})).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (500, Some("model_load_failed"))
    );

    let (status, v) = post(&url("/api/v1/models/unload"), &json!({"all": true})).await;
    assert_eq!(
        (status, v["unloaded"].clone()),
        (200, json!(["smollm2-135m-instruct"]))
    );
    assert!(loaded(&server).await.is_empty());
    // Nothing loaded: the next request loads the startup model again.
    let (status, v) = post(
        &url("/v1/chat/completions"),
        &chat("Hi", json!({"max_tokens": 2})),
    )
    .await;
    assert_eq!(
        (status, v["model"].as_str()),
        (200, Some("smollm2-135m-instruct"))
    );
}

/// `FERRITE_TEST_SPLIT`: the default model split in three parts (`make
/// test` makes it with scripts/gguf-split.py).
fn split_dir() -> std::path::PathBuf {
    std::env::var("FERRITE_TEST_SPLIT")
        .map(Into::into)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/split")
        })
}

#[tokio::test]
async fn a_split_model_lists_once_and_answers() {
    // A models folder in LM Studio's layout holding the three parts.
    let models = config_file("split-scan", "").with_file_name("models");
    let repo = models.join("test/SmolLM2-135M-Instruct-split-GGUF");
    std::fs::create_dir_all(&repo).unwrap();
    for part in std::fs::read_dir(split_dir()).unwrap() {
        let part = part.unwrap().path();
        let link = repo.join(part.file_name().unwrap());
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&part, &link).unwrap();
    }
    let server = Server::start_with_env(
        &[],
        &[
            ("FERRITE_REGISTRY__SCAN", "true"),
            ("FERRITE_REGISTRY__DIR", models.to_str().unwrap()),
        ],
    );
    let ids: Vec<String> = get(&server.url("/v1/models")).await.1["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    let split: Vec<&String> = ids.iter().filter(|id| id.contains("q4_1")).collect();
    assert_eq!(split, ["smollm2-135m-instruct-q4_1"], "{ids:?}");
    let answer = ask(&server, "smollm2-135m-instruct-q4_1").await;
    assert!(answer["choices"][0]["message"]["content"].is_string());
    let models = get(&server.url("/api/v1/models")).await.1;
    let entry = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "smollm2-135m-instruct-q4_1")
        .unwrap()
        .clone();
    // Its size is every part's.
    let whole: u64 = std::fs::read_dir(split_dir())
        .unwrap()
        .map(|p| p.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(entry["size_bytes"], whole, "{entry}");
}
