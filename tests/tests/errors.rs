//! Bad input gets an OpenAI error object with the right 4xx status, and the
//! server keeps serving afterwards.

use ferrite_tests::{chat, client, get, post, Server};
use serde_json::{json, Value};

fn url(path: &str) -> String {
    Server::shared().url(path)
}

/// What no error body may carry: a backtrace, or the build machine's paths.
fn assert_clean(body: &Value) {
    let text = body.to_string();
    for leak in [
        "backtrace",
        ".rs:",
        "/root/",
        "/home/",
        "/.cargo/",
        "/rustc/",
        "   0: ",
    ] {
        assert!(!text.contains(leak), "error body leaks `{leak}`: {text}");
    }
    assert!(text.len() < 8192, "error body of {} bytes", text.len());
}

fn assert_error(status: u16, body: &Value, want_status: u16, param: Option<&str>) {
    assert_eq!(status, want_status, "{body}");
    assert_clean(body);
    let e = &body["error"];
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(e["type"].is_string(), "{body}");
    assert!(e.as_object().unwrap().contains_key("param"), "{body}");
    assert!(e.as_object().unwrap().contains_key("code"), "{body}");
    if let Some(p) = param {
        assert_eq!(e["param"], p, "{body}");
    }
}

async fn raw(method: &str, path: &str, content_type: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    let mut req = client()
        .request(method.parse().unwrap(), url(path))
        .body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn malformed_json_is_400() {
    for body in [
        &b"{\"messages\": ["[..],
        b"not json",
        b"",
        b"{\"messages\": []} extra",
    ] {
        let (status, v) = raw(
            "POST",
            "/v1/chat/completions",
            Some("application/json"),
            body.to_vec(),
        )
        .await;
        assert_error(status, &v, 400, None);
    }
}

#[tokio::test]
async fn wrong_types_name_the_field() {
    let cases = [
        (json!({"messages": "hello"}), "messages"),
        (
            json!({"messages": [{"role": "user", "content": 5}]}),
            "messages[0].content",
        ),
        (
            json!({"messages": [{"role": "wizard", "content": "x"}]}),
            "messages[0].role",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}),
            "temperature",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 1.5}),
            "max_tokens",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "stream": "yes"}),
            "stream",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "stop": 7}),
            "stop",
        ),
        (json!({"model": "x"}), "messages"),
    ];
    for (body, param) in cases {
        let (status, v) = post(&url("/v1/chat/completions"), &body).await;
        assert_error(status, &v, 400, Some(param));
    }
}

#[tokio::test]
async fn absurd_numbers_are_400() {
    let cases = [
        (json!({"temperature": 1e308}), "temperature"),
        (json!({"temperature": -1}), "temperature"),
        (json!({"top_p": 0}), "top_p"),
        (json!({"max_tokens": 0}), "max_tokens"),
        (json!({"max_tokens": -5}), "max_tokens"),
        (json!({"max_tokens": 1e30}), "max_tokens"),
        (json!({"max_tokens": 99999999999_i64}), "max_tokens"),
        (json!({"n": 0}), "n"),
        (json!({"n": 4096}), "n"),
        (json!({"presence_penalty": 50}), "presence_penalty"),
        (
            json!({"top_logprobs": 50, "logprobs": true}),
            "top_logprobs",
        ),
        (json!({"logit_bias": {"12": 1000}}), "logit_bias"),
    ];
    for (extra, param) in cases {
        let (status, v) = post(&url("/v1/chat/completions"), &chat("hi", extra)).await;
        assert_error(status, &v, 400, Some(param));
    }
}

#[tokio::test]
async fn empty_messages_and_missing_content_are_400() {
    let (status, v) = post(&url("/v1/chat/completions"), &json!({"messages": []})).await;
    assert_error(status, &v, 400, Some("messages"));
    let (status, v) = post(
        &url("/v1/chat/completions"),
        &json!({"messages": [{"role": "user"}]}),
    )
    .await;
    assert_error(status, &v, 400, Some("messages[0].content"));
    let (status, v) = post(&url("/v1/completions"), &json!({"prompt": []})).await;
    assert_error(status, &v, 400, Some("prompt"));
}

#[tokio::test]
async fn unknown_models_are_404() {
    let (status, v) = post(
        &url("/v1/chat/completions"),
        &chat("hi", json!({"model": "gpt-9"})),
    )
    .await;
    assert_error(status, &v, 404, Some("model"));
    assert_eq!(v["error"]["code"], "model_not_found");
    let (status, v) = post(
        &url("/v1/completions"),
        &json!({"model": "nope", "prompt": "x"}),
    )
    .await;
    assert_error(status, &v, 404, Some("model"));
}

#[tokio::test]
async fn fields_the_engine_cannot_honour_are_named() {
    let cases = [
        (
            json!({"audio": {"voice": "alloy", "format": "wav"}}),
            "audio",
        ),
        (json!({"modalities": ["text", "audio"]}), "modalities"),
        (json!({"web_search_options": {}}), "web_search_options"),
        (json!({"functions": [{"name": "f"}]}), "functions"),
        (
            json!({"prediction": {"type": "content", "content": "x"}}),
            "prediction",
        ),
    ];
    for (extra, param) in cases {
        let (status, v) = post(&url("/v1/chat/completions"), &chat("hi", extra)).await;
        assert_error(status, &v, 400, Some(param));
    }
    let (status, v) = post(
        &url("/v1/chat/completions"),
        &json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}),
    )
    .await;
    // The default model has no vision projector.
    assert_error(status, &v, 400, Some("messages[0].content[0].image_url"));
    let (status, v) = post(
        &url("/v1/completions"),
        &json!({"prompt": "x", "suffix": "y"}),
    )
    .await;
    assert_error(status, &v, 400, Some("suffix"));
}

#[tokio::test]
async fn prompts_longer_than_the_context_are_context_length_exceeded() {
    let long = "word ".repeat(9000);
    for stream in [false, true] {
        let (status, v) = post(
            &url("/v1/chat/completions"),
            &chat(&long, json!({"stream": stream})),
        )
        .await;
        assert_error(status, &v, 400, None);
        assert_eq!(v["error"]["code"], "context_length_exceeded");
    }
    // Prompt fits, but prompt + max_tokens does not.
    let (status, v) = post(
        &url("/v1/chat/completions"),
        &chat(&"word ".repeat(4000), json!({"max_tokens": 6000})),
    )
    .await;
    assert_error(status, &v, 400, Some("max_tokens"));
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    let (status, v) = post(&url("/v1/completions"), &json!({"prompt": long})).await;
    assert_error(status, &v, 400, None);
    assert_eq!(v["error"]["code"], "context_length_exceeded");
}

#[tokio::test]
async fn invalid_grammar_is_400_not_500() {
    let (status, v) = post(
        &url("/v1/chat/completions"),
        &chat(
            "hi",
            json!({"response_format": {"type": "json_schema",
            "json_schema": {"name": "x", "schema": {"type": "no-such-type"}}}}),
        ),
    )
    .await;
    assert_error(status, &v, 400, None);
    // Schemas that admit no value: they only refer to themselves. Those at
    // the root fail before the answer starts, so streamed or not; one inside
    // a property fails once the answer reaches it.
    for (schema, streams) in [
        (json!({"$ref": "#"}), &[false, true][..]),
        (
            json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}),
            &[false, true],
        ),
        (
            json!({"type": "object", "properties": {"x": {"$ref": "#/properties/x"}}, "required": ["x"]}),
            &[false],
        ),
    ] {
        for &stream in streams {
            let body = chat(
                "hi",
                json!({"max_tokens": 16, "stream": stream, "response_format": {"type": "json_schema",
                    "json_schema": {"name": "x", "schema": schema}}}),
            );
            let (status, v) = post(&url("/v1/chat/completions"), &body).await;
            assert_error(status, &v, 400, Some("response_format"));
        }
    }
}

#[tokio::test]
async fn request_shapes_past_the_limits_are_400() {
    // 1 KB bodies that would start hundreds of sequences.
    let many: Vec<&str> = vec!["a"; 65];
    let (status, v) = post(
        &url("/v1/completions"),
        &json!({"prompt": many, "max_tokens": 1}),
    )
    .await;
    assert_error(status, &v, 400, Some("prompt"));
    assert_eq!(v["error"]["code"], "too_many_prompts");
    let tokens: Vec<Vec<u32>> = vec![vec![1, 2]; 2000];
    let (status, v) = post(&url("/v1/completions"), &json!({"prompt": tokens})).await;
    assert_error(status, &v, 400, Some("prompt"));
    let (status, v) = post(
        &url("/v1/completions"),
        &json!({"prompt": vec!["a"; 5], "n": 16, "max_tokens": 1}),
    )
    .await;
    assert_error(status, &v, 400, Some("n"));
    assert_eq!(v["error"]["code"], "too_many_completions");
    let (status, v) = post(
        &url("/api/v0/completions"),
        &json!({"prompt": vec!["a"; 100], "max_tokens": 1}),
    )
    .await;
    assert_error(status, &v, 400, Some("prompt"));
    // Within the limits, a list of prompts is answered.
    let (status, v) = post(
        &url("/v1/completions"),
        &json!({"prompt": vec!["a"; 64], "max_tokens": 1}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"].as_array().unwrap().len(), 64);
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    // A small limit keeps the body inside the socket buffers: the server
    // answers 413 without reading it, and a client still writing a body of
    // many megabytes would see the connection close instead of the answer.
    let server = Server::start(&["--max-body-bytes", "4096"]);
    let url = server.url("/v1/chat/completions");
    let big = serde_json::to_vec(&chat(&"a ".repeat(4096), json!({}))).unwrap();
    // Declared by Content-Length.
    let r = client()
        .post(&url)
        .header("content-type", "application/json");
    let r = r.body(big.clone()).send().await.unwrap();
    let status = r.status().as_u16();
    assert_error(status, &r.json().await.unwrap(), 413, None);
    // Chunked, no length declared: cut off while reading.
    let chunks = futures::stream::iter(
        big.chunks(1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let r = client()
        .post(&url)
        .header("content-type", "application/json");
    let r = r
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert_error(status, &r.json().await.unwrap(), 413, None);
    // A body under the limit still works.
    let (status, _) = post(&url, &chat("hi", json!({"max_tokens": 1}))).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn wrong_media_type_is_415() {
    let body = serde_json::to_vec(&chat("hi", json!({}))).unwrap();
    for ct in ["text/plain", "application/x-www-form-urlencoded"] {
        let (status, v) = raw("POST", "/v1/chat/completions", Some(ct), body.clone()).await;
        assert_error(status, &v, 415, None);
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_are_404_and_405() {
    let (status, v) = get(&url("/v1/nope")).await;
    assert_error(status, &v, 404, None);
    let (status, v) = raw("GET", "/v1/chat/completions", None, vec![]).await;
    assert_error(status, &v, 405, None);
    let (status, v) = raw("DELETE", "/v1/models", None, vec![]).await;
    assert_error(status, &v, 405, None);
}

#[tokio::test]
async fn the_server_still_answers_after_bad_input() {
    // Runs alongside the tests above; whatever they sent, nothing crashed.
    for _ in 0..3 {
        let (status, _) = raw(
            "POST",
            "/v1/chat/completions",
            Some("application/json"),
            b"{".to_vec(),
        )
        .await;
        assert_eq!(status, 400);
    }
    let (status, v) = post(
        &url("/v1/chat/completions"),
        &chat("Hi", json!({"max_tokens": 3})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (status, _) = get(&url("/health")).await;
    assert_eq!(status, 200);
    assert!(
        !Server::shared().log().contains("panicked"),
        "{}",
        Server::shared().log()
    );
}

/// Sends a request head announcing a body that has not arrived yet, and
/// returns the response head the server answers with.
async fn head_before_body(path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url("").trim_start_matches("http://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 64\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(30), tcp.read(&mut buf))
        .await
        .expect("a response before the body")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase()
}

#[tokio::test]
async fn responses_that_skip_the_body_close_the_connection() {
    // Answered without reading the body: keep-alive would be a lie (hyper
    // drops the connection), so the response says so and clients reconnect.
    for path in ["/v1/nope", "/health"] {
        let head = head_before_body(path).await;
        assert!(head.contains("connection: close"), "{path}: {head}");
    }
    // Bodies that are read keep the connection alive.
    let resp = client()
        .post(url("/v1/chat/completions"))
        .json(&chat("Hi", json!({"max_tokens": 1})))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("connection").is_none());
}
