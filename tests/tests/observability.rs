//! What an operator sees: Prometheus metrics that follow real traffic, and
//! JSON logs with one span per request that keep prompts out unless asked.

use std::time::Duration;

use ferrite_tests::{chat, client, endless, open, post, Server};
use futures::StreamExt;
use serde_json::{json, Value};

async fn scrape(server: &Server) -> String {
    let resp = client().get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain"), "{ct}");
    resp.text().await.unwrap()
}

/// The value of the series `name{labels}` (labels as printed), or 0.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_follow_real_traffic() {
    let server = Server::start(&[]);
    let url = server.url("/v1/chat/completions");
    let (status, body) = post(&url, &chat("Say hi.", json!({"max_tokens": 6}))).await;
    assert_eq!(status, 200);
    let (status, _) = post(
        &server.url("/v1/completions"),
        &json!({"prompt": "Hi", "max_tokens": 3}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = post(&url, &json!({"messages": []})).await;
    assert_eq!(status, 400);
    // A client that leaves mid-stream.
    let mut stream = open(&url, &endless(200, true)).await.bytes_stream();
    stream.next().await.unwrap().unwrap();
    drop(stream);
    assert!(
        server
            .wait_log("outcome=\"cancelled\"", 1, Duration::from_secs(30))
            .await
            || server
                .wait_log("outcome=cancelled", 1, Duration::from_secs(1))
                .await,
        "{}",
        server.log()
    );

    // The abandoned stream's place is given back as its connection is
    // dropped, which may come a moment after its cancellation is logged.
    let mut m = scrape(&server).await;
    for _ in 0..100 {
        if value(&m, "ferrite:requests_in_flight") == 0.0
            && value(&m, "ferrite:requests_running") == 0.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        m = scrape(&server).await;
    }
    let usage = &body["usage"];
    assert_eq!(
        value(&m, "ferrite:generation_tokens_total{endpoint=\"chat\"}"),
        usage["completion_tokens"].as_f64().unwrap()
    );
    assert_eq!(
        value(&m, "ferrite:prompt_tokens_total{endpoint=\"chat\"}"),
        usage["prompt_tokens"].as_f64().unwrap()
    );
    assert_eq!(
        value(
            &m,
            "ferrite:generation_tokens_total{endpoint=\"completions\"}"
        ),
        3.0
    );
    // The finished chat and the abandoned stream both started with a 200.
    let ok = "ferrite:http_requests_total{method=\"POST\",route=\"/v1/chat/completions\",status=\"200\"}";
    assert_eq!(value(&m, ok), 2.0, "{m}");
    for series in [
        "ferrite:http_requests_total{method=\"POST\",route=\"/v1/chat/completions\",status=\"400\"}",
        "ferrite:requests_cancelled_total{endpoint=\"chat\"}",
        "ferrite:requests_total{endpoint=\"chat\",outcome=\"ok\"}",
    ] {
        assert_eq!(value(&m, series), 1.0, "{series}\n{m}");
    }
    // Histograms, with buckets.
    for name in [
        "ferrite:time_to_first_token_seconds",
        "ferrite:inter_token_latency_seconds",
        "ferrite:e2e_request_latency_seconds",
        "ferrite:tokens_per_second",
        "ferrite:http_request_duration_seconds",
    ] {
        assert!(
            m.contains(&format!("# TYPE {name} histogram")),
            "{name}\n{m}"
        );
        assert!(m.contains(&format!("{name}_bucket{{")), "{name}");
    }
    assert!(
        value(
            &m,
            "ferrite:model_load_seconds{model=\"smollm2-135m-instruct\"}"
        ) > 0.0
    );
    assert_eq!(value(&m, "ferrite:models_loaded"), 1.0);
    assert_eq!(value(&m, "ferrite:requests_in_flight"), 0.0);
    assert_eq!(value(&m, "ferrite:requests_running"), 0.0);
    // The engine's prefix cache is reported, within its bound.
    assert!(value(&m, "ferrite:prefix_cache_entries") <= 16.0, "{m}");
    assert!(m.contains("# TYPE ferrite:prefix_cache_bytes gauge"), "{m}");

    // Invented methods become one label value, not a series each.
    let before = m.len();
    for i in 0..300 {
        let method = format!("X{i}FOO");
        let resp = client()
            .request(method.parse().unwrap(), server.url("/health"))
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_client_error(),
            "{method}: {}",
            resp.status()
        );
    }
    let m = scrape(&server).await;
    assert!(!m.contains("X1FOO") && !m.contains("X299FOO"), "{m}");
    let other: f64 = m
        .lines()
        .filter(|l| l.starts_with("ferrite:http_requests_total{method=\"other\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(other, 300.0, "{m}");
    assert!(m.len() < before + 4096, "{} -> {} bytes", before, m.len());
}

#[tokio::test]
async fn json_logs_carry_the_request_span_and_no_prompts_by_default() {
    const SECRET: &str = "my pin is 4921";
    for content in [false, true] {
        let flag = if content { "true" } else { "false" };
        let server =
            Server::start_with_env(&["--log-format", "json"], &[("FERRITE_LOG__CONTENT", flag)]);
        let resp = client()
            .post(server.url("/v1/chat/completions"))
            .header("x-request-id", "req-42")
            .json(&chat(SECRET, json!({"max_tokens": 4})))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-request-id"], "req-42");
        assert!(
            server
                .wait_log("generation finished", 1, Duration::from_secs(10))
                .await
        );
        let log = server.log();
        let lines: Vec<Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        let done = lines
            .iter()
            .find(|l| l["message"] == "generation finished")
            .unwrap();
        assert_eq!(done["span"]["request_id"], "req-42");
        assert_eq!(done["span"]["tenant"], "default");
        assert_eq!(done["span"]["model"], "smollm2-135m-instruct");
        assert_eq!(done["outcome"], "ok");
        assert!(done["completion_tokens"].as_u64().unwrap() >= 1);
        assert_eq!(
            log.contains(SECRET),
            content,
            "prompt logged: {content}\n{log}"
        );
    }
}
