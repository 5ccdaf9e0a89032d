//! Anthropic's Messages API on the suite's runtime (the `anthropic` SDK
//! drives it in tests/python; this checks the wire on both runtimes).

use ferrite_tests::{client, post, Server};
use serde_json::{json, Value};

fn url() -> String {
    Server::shared().url("/v1/messages")
}

fn ask(extra: Value) -> Value {
    let mut body = json!({
        "model": "smollm2-135m-instruct",
        "max_tokens": 12,
        "messages": [{"role": "user", "content": "Say hi."}],
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body
}

#[tokio::test]
async fn a_message_comes_back_whole() {
    let (status, v) = post(&url(), &ask(json!({}))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["type"], "message");
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(v["content"][0]["type"], "text");
    assert!(!v["content"][0]["text"].as_str().unwrap().is_empty());
    assert!(["end_turn", "max_tokens"].contains(&v["stop_reason"].as_str().unwrap()));
    assert!(v["usage"]["output_tokens"].as_u64().unwrap() <= 12);
}

/// What Claude Code 2.x sends: a system message inside `messages`, and a
/// `max_tokens` (32000) far past this model's context, which is a cap.
#[tokio::test]
async fn claude_codes_requests_are_answered() {
    let body = json!({
        "max_tokens": 32000,
        "system": [{"type": "text", "text": "You are terse."}],
        "messages": [
            {"role": "user", "content": "Say hi."},
            {"role": "system", "content": [{"type": "text", "text": "The date is 2026-11-30.",
                                            "cache_control": {"type": "ephemeral"}}]},
        ],
        "stop_sequences": ["\n"],
    });
    let (status, v) = post(&format!("{}?beta=true", url()), &ask(body)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["type"], "message");
    assert!(v["usage"]["output_tokens"].as_u64().unwrap() > 0, "{v}");
}

#[tokio::test]
async fn a_stream_is_anthropics_event_sequence() {
    let body = client()
        .post(url())
        .json(&ask(json!({"stream": true})))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let names: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .filter(|n| *n != "ping")
        .collect();
    assert_eq!(names.first(), Some(&"message_start"), "{body}");
    assert_eq!(names[1], "content_block_start", "{body}");
    assert!(names.contains(&"content_block_delta"), "{body}");
    assert_eq!(
        &names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    let delta: Value = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .find(|v| v["type"] == "message_delta")
        .unwrap();
    assert!(
        delta["usage"]["output_tokens"].as_u64().unwrap() > 0,
        "{delta}"
    );
}

#[tokio::test]
async fn a_forced_tool_comes_back_as_tool_use() {
    // Closed schema: the grammar ends the call after `city`, whatever the
    // batch this request shares on the shared server.
    let tool = json!({"name": "get_weather", "input_schema": {
        "type": "object", "properties": {"city": {"type": "string", "maxLength": 40}},
        "required": ["city"], "additionalProperties": false}});
    let (status, v) = post(
        &url(),
        &ask(json!({"max_tokens": 128, "tools": [tool],
                    "tool_choice": {"type": "tool", "name": "get_weather"}})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["stop_reason"], "tool_use", "{v}");
    let call = v["content"].as_array().unwrap().last().unwrap();
    assert_eq!(call["type"], "tool_use");
    assert_eq!(call["name"], "get_weather");
    assert!(call["input"]["city"].is_string(), "{v}");
}

#[tokio::test]
async fn errors_are_in_anthropics_shape() {
    let (status, v) = post(&url(), &ask(json!({"model": "no-such-model"}))).await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "not_found_error");
    let (status, v) = post(&url(), &json!({"model": "x", "messages": []})).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error");
}
