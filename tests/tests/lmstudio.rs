//! LM Studio's REST API v0 against the real server and model: model
//! objects, and completions carrying `stats`, `model_info` and `runtime`
//! with LM Studio's field names and types.

use ferrite_tests::{chat, get, post, post_sse, Server};
use serde_json::{json, Value};

fn url(path: &str) -> String {
    Server::shared().url(path)
}

fn check_extras(body: &Value, max_tokens: u64) {
    let stats = &body["stats"];
    let generation = stats["generation_time"].as_f64().unwrap();
    let ttft = stats["time_to_first_token"].as_f64().unwrap();
    let speed = stats["tokens_per_second"].as_f64().unwrap();
    assert!(ttft > 0.0 && generation > 0.0, "{body}");
    let tokens = body["usage"]["completion_tokens"].as_u64().unwrap();
    assert_eq!(tokens, max_tokens);
    assert!((speed - tokens as f64 / generation).abs() < 1e-6 * speed.max(1.0));
    assert_eq!(stats["stop_reason"], "maxPredictedTokensReached");
    let info = &body["model_info"];
    assert_eq!(info["arch"], "llama");
    assert_eq!(info["quant"], "Q4_1");
    assert_eq!(info["format"], "gguf");
    assert!(info["context_length"].as_u64().unwrap() >= 2048);
    let runtime = &body["runtime"];
    let name = runtime["name"].as_str().unwrap();
    assert!(
        name.starts_with(&format!("ferrite-{}-", ferrite_tests::runtime())),
        "{name}"
    );
    assert!(runtime["version"].is_string());
    // As in LM Studio, the llama.cpp runtime reads GGUF only.
    let formats = if ferrite_tests::runtime() == "llama.cpp" {
        json!(["gguf"])
    } else {
        json!(["gguf", "safetensors"])
    };
    assert_eq!(runtime["supported_formats"], formats);
}

#[tokio::test]
async fn models_are_listed_with_lm_studio_fields() {
    let (status, list) = get(&url("/api/v0/models")).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["object"], "list");
    let model = &list["data"][0];
    assert_eq!(model["object"], "model");
    assert_eq!(model["type"], "llm");
    assert_eq!(model["arch"], "llama");
    assert_eq!(model["compatibility_type"], "gguf");
    assert_eq!(model["quantization"], "Q4_1");
    assert_eq!(model["state"], "loaded");
    assert!(model["publisher"].is_string());
    assert!(model["max_context_length"].as_u64().unwrap() >= 2048);
    let id = model["id"].as_str().unwrap();
    let (status, one) = get(&url(&format!("/api/v0/models/{id}"))).await;
    assert_eq!(status, 200);
    assert_eq!(&one, model);
    let (status, missing) = get(&url("/api/v0/models/publisher/no-such-model")).await;
    assert_eq!(status, 404);
    assert_eq!(missing["error"]["code"], "model_not_found");
}

#[tokio::test]
async fn chat_answers_as_v1_does_plus_stats() {
    let body = chat("Name a colour.", json!({"max_tokens": 6, "temperature": 0}));
    let (status, v1) = post(&url("/v1/chat/completions"), &body).await;
    assert_eq!(status, 200, "{v1}");
    let (status, v0) = post(&url("/api/v0/chat/completions"), &body).await;
    assert_eq!(status, 200, "{v0}");
    assert_eq!(v0["object"], "chat.completion");
    assert_eq!(
        v0["choices"][0]["message"]["content"],
        v1["choices"][0]["message"]["content"]
    );
    assert_eq!(v0["choices"][0]["finish_reason"], "length");
    // The second request may reuse the first's KV (`cached_tokens`).
    for field in ["prompt_tokens", "completion_tokens", "total_tokens"] {
        assert_eq!(v0["usage"][field], v1["usage"][field], "{field}");
    }
    check_extras(&v0, 6);
}

#[tokio::test]
async fn text_completion_has_stats_and_stop_reasons() {
    let body = json!({"prompt": "The capital of France is", "max_tokens": 5, "temperature": 0});
    let (status, v0) = post(&url("/api/v0/completions"), &body).await;
    assert_eq!(status, 200, "{v0}");
    assert_eq!(v0["object"], "text_completion");
    assert!(v0["choices"][0]["text"].as_str().unwrap().contains("Paris"));
    check_extras(&v0, 5);
    // A stop string ends it: LM Studio reports that as `eosFound` too.
    let body = json!({"prompt": "The capital of France is", "max_tokens": 20,
                      "temperature": 0, "stop": ["."]});
    let (_, stopped) = post(&url("/api/v0/completions"), &body).await;
    assert_eq!(stopped["choices"][0]["finish_reason"], "stop", "{stopped}");
    assert_eq!(stopped["stats"]["stop_reason"], "eosFound");
}

#[tokio::test]
async fn streaming_and_errors_are_those_of_v1() {
    let body = chat("Hi", json!({"max_tokens": 4, "stream": true}));
    let sse = post_sse(&url("/api/v0/chat/completions"), &body).await;
    assert_eq!(sse.status, 200);
    assert!(sse.done);
    let (status, bad) = post(&url("/api/v0/chat/completions"), &json!({"messages": []})).await;
    assert_eq!(status, 400, "{bad}");
    assert_eq!(bad["error"]["type"], "invalid_request_error");
    let (status, unknown) = post(
        &url("/api/v0/completions"),
        &json!({"model": "nope", "prompt": "x"}),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(unknown["error"]["code"], "model_not_found");
}
