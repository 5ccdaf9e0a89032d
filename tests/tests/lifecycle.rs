//! Start-up, readiness, configuration layers, request ids, CORS and
//! graceful shutdown of the real binary.

use std::time::{Duration, Instant};

use ferrite_tests::{chat, client, endless, get, get_blocking, open, post, Server};
use futures::StreamExt;
use serde_json::{json, Value};

#[tokio::test]
async fn ready_is_503_until_the_model_is_loaded_and_health_is_always_up() {
    let server = Server::spawn(&[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut statuses = Vec::new();
    let mut first_body = None;
    while Instant::now() < deadline {
        match get_blocking(&server.url("/ready")) {
            Ok((status, body)) => {
                if statuses.is_empty() {
                    first_body = Some(body);
                    // While loading, liveness already answers.
                    assert_eq!(get_blocking(&server.url("/health")).unwrap().0, 200);
                }
                statuses.push(status);
                if status == 200 {
                    break;
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    assert_eq!(
        statuses.first(),
        Some(&503),
        "bound before loading: {statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&200));
    let body: Value = serde_json::from_str(&first_body.unwrap()).unwrap();
    assert_eq!(body["error"]["type"], "server_error");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("loading"));
    // Chat is refused the same way while loading; after, it works.
    let (status, _) = post(
        &server.url("/v1/chat/completions"),
        &chat("Hi", json!({"max_tokens": 2})),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn config_file_env_and_flags_layer() {
    let dir = std::env::temp_dir().join(format!("ferrite-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("ferrite.toml");
    std::fs::write(
        &cfg,
        "[model]\nid = \"from-file\"\nmax_seqs = 2\n[http]\nmax_body_bytes = 999999\n",
    )
    .unwrap();
    let server = Server::spawn_with_env(
        &["--config", cfg.to_str().unwrap(), "--max-seqs", "3"],
        &[("FERRITE_HTTP__MAX_BODY_BYTES", "2048")],
    );
    server.wait_ready();
    let (_, models) = get(&server.url("/v1/models")).await;
    assert_eq!(models["data"][0]["id"], "from-file");
    assert_eq!(models["data"][0]["meta"]["max_seqs"], 3, "flag beats file");
    let big = chat(&"x".repeat(4000), json!({}));
    let (status, body) = post(&server.url("/v1/chat/completions"), &big).await;
    assert_eq!(status, 413, "env beats file: {body}");
    let (status, _) = post(
        &server.url("/v1/chat/completions"),
        &chat("Hi", json!({"model": "from-file", "max_tokens": 2})),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bad_config_and_missing_models_fail_loudly() {
    let server = Server::spawn(&["--model", "/nonexistent/model.gguf"]);
    assert_eq!(
        server.wait_exit(Duration::from_secs(30)).await,
        Some(Some(1))
    );
    assert!(server.log().contains("does not exist"), "{}", server.log());

    let server = Server::spawn_with_env(&[], &[("FERRITE_HTTP__MAX_IN_FLIGHT", "lots")]);
    assert_eq!(
        server.wait_exit(Duration::from_secs(30)).await,
        Some(Some(1))
    );
    assert!(
        server.log().contains("invalid configuration"),
        "{}",
        server.log()
    );
}

#[tokio::test]
async fn request_ids_are_echoed_or_made_and_cors_is_off_by_default() {
    let server = Server::shared();
    let r = client()
        .get(server.url("/v1/models"))
        .header("x-request-id", "my-trace-123")
        .header("origin", "http://example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "my-trace-123");
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = client().get(server.url("/health")).send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"].len(), 36, "a generated uuid");
}

#[tokio::test]
async fn cors_can_be_enabled() {
    let server = Server::start(&["--cors-origin", "http://example.com"]);
    let r = client()
        .request(reqwest::Method::OPTIONS, server.url("/v1/chat/completions"))
        .header("origin", "http://example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://example.com"
    );
    let r = client()
        .get(server.url("/v1/models"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn sigterm_drains_in_flight_streams_then_exits() {
    let server = Server::start(&[]);
    let mut body = endless(40, true);
    body["stream_options"] = json!({"include_usage": true});
    let url = server.url("/v1/chat/completions");
    let mut bytes = open(&url, &body).await.bytes_stream();
    let mut raw = String::new();
    if let Some(b) = bytes.next().await {
        raw.push_str(&String::from_utf8_lossy(&b.unwrap()));
    }
    server.sigterm();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // No new connections once shutdown began...
    assert!(std::net::TcpStream::connect(("127.0.0.1", server.port)).is_err());
    // ...but the stream in flight runs to its end.
    while let Some(b) = bytes.next().await {
        raw.push_str(&String::from_utf8_lossy(&b.unwrap()));
    }
    assert!(raw.contains("data: [DONE]"), "{raw}");
    assert!(raw.contains("\"completion_tokens\":40"), "{raw}");
    assert_eq!(
        server.wait_exit(Duration::from_secs(10)).await,
        Some(Some(0)),
        "{}",
        server.log()
    );
}

#[tokio::test]
async fn the_drain_timeout_bounds_shutdown() {
    let server = Server::start(&["--drain-timeout", "1"]);
    let url = server.url("/v1/chat/completions");
    let mut bytes = open(&url, &endless(4000, true)).await.bytes_stream();
    let _ = bytes.next().await;
    let started = Instant::now();
    server.sigterm();
    let code = server.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(code, Some(Some(0)));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(server.log().contains("drain timeout"), "{}", server.log());
}
