//! Continuous batching and cancellation: concurrent streams all finish, and a
//! client that goes away frees its engine slot at once.

use std::time::{Duration, Instant};

use ferrite_tests::{
    assert_batched_answer, chat, client, endless, open, post, post_sse, streamed_text, Server,
};
use futures::StreamExt;
use serde_json::json;

#[tokio::test]
async fn eight_concurrent_streams_all_complete() {
    let server = Server::shared();
    let started = Instant::now();
    let runs = (0..8).map(|i| {
        let url = server.url("/v1/chat/completions");
        async move {
            let body = chat(
                &format!("Tell me fact number {i} about the moon."),
                json!({"max_tokens": 24, "temperature": 0, "stream": true,
                       "logit_bias": {"0": -100, "2": -100},
                       "stream_options": {"include_usage": true}}),
            );
            post_sse(&url, &body).await
        }
    });
    let results = futures::future::join_all(runs).await;
    for sse in &results {
        assert_eq!(sse.status, 200, "{}", sse.raw);
        assert!(sse.done);
        assert_eq!(sse.events.last().unwrap()["usage"]["completion_tokens"], 24);
        assert!(!streamed_text(&sse.events, 0).is_empty());
    }
    let ids: std::collections::HashSet<_> = results
        .iter()
        .map(|s| s.events[0]["id"].to_string())
        .collect();
    assert_eq!(ids.len(), 8, "each stream is its own completion");
    eprintln!("8 x 24 tokens in {:?}", started.elapsed());
}

#[tokio::test]
async fn batched_greedy_answers_equal_one_at_a_time_answers() {
    // Prompts of different lengths: continuous batching joins them mid-way.
    let prompts = [
        "Apples are",
        "The ocean is very",
        "One, two,",
        "Red, green, blue and",
    ];
    let server = Server::shared();
    let url = server.url("/v1/completions");
    let body = |p: &str| {
        json!({"prompt": p, "max_tokens": 12, "temperature": 0,
                                "logit_bias": {"0": -100, "2": -100}})
    };
    let mut alone = Vec::new();
    for p in prompts {
        let (status, b) = post(&url, &body(p)).await;
        assert_eq!(status, 200, "{b}");
        alone.push(b["choices"][0]["text"].as_str().unwrap().to_string());
    }
    for _ in 0..3 {
        let bodies: Vec<_> = prompts.iter().map(|p| body(p)).collect();
        let together = futures::future::join_all(bodies.iter().map(|b| post(&url, b))).await;
        for (i, (_, b)) in together.iter().enumerate() {
            assert_batched_answer(
                b["choices"][0]["text"].as_str().unwrap(),
                &alone[i],
                &format!("prompt {:?}", prompts[i]),
            );
        }
        // One request with several prompts batches them inside the engine too.
        let (_, b) = post(
            &url,
            &json!({"prompt": prompts, "max_tokens": 12, "temperature": 0,
                                        "logit_bias": {"0": -100, "2": -100}}),
        )
        .await;
        for (i, expected) in alone.iter().enumerate() {
            assert_batched_answer(
                b["choices"][i]["text"].as_str().unwrap(),
                expected,
                &format!("prompt {:?}", prompts[i]),
            );
        }
    }
}

#[tokio::test]
async fn a_sequence_parked_by_the_scheduler_resumes_intact() {
    // mistral.rs batches only sequences of equal length and parks the others.
    // A long request starts, a short one with the same prompt joins a few
    // tokens later (so they alternate), and both start from a prefix-cache
    // hit (every chat shares the system prompt). When the short one ends the
    // long one is parked, and must resume exactly where it was.
    let server = Server::start(&[]);
    let url = server.url("/v1/chat/completions");
    let (status, _) = post(
        &url,
        &chat("Hello!", json!({"max_tokens": 4, "temperature": 0})),
    )
    .await;
    assert_eq!(status, 200);
    for prompt in [
        "Count from 1 to 10, separated by commas.",
        "Count from 1 to 12, separated by commas.",
        "Count from 1 to 9, separated by commas.",
    ] {
        let long = chat(
            prompt,
            json!({"max_tokens": 30, "temperature": 0, "stream": true}),
        );
        let mut bytes = open(&url, &long).await.bytes_stream();
        let mut raw = String::new();
        while raw.matches("\"content\"").count() < 4 {
            raw.push_str(&String::from_utf8_lossy(
                &bytes.next().await.unwrap().unwrap(),
            ));
        }
        let short = chat(prompt, json!({"max_tokens": 6, "temperature": 0}));
        let (status, _) = post(&url, &short).await;
        assert_eq!(status, 200);
        while let Some(b) = bytes.next().await {
            raw.push_str(&String::from_utf8_lossy(&b.unwrap()));
        }
        let events: Vec<serde_json::Value> = raw
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect();
        let long_text = streamed_text(&events, 0);
        // The same request alone (its full prompt is cached now, so it is
        // computed afresh rather than from a partial prefix).
        let mut alone = long.clone();
        alone["stream"] = json!(false);
        let (_, alone) = post(&url, &alone).await;
        assert_batched_answer(
            &long_text,
            alone["choices"][0]["message"]["content"].as_str().unwrap(),
            prompt,
        );
    }
}

#[tokio::test]
async fn a_dropped_client_frees_its_slot() {
    // One sequence at a time: a request that was not cancelled would block the next.
    let server = Server::start(&["--max-seqs", "1"]);
    let url = server.url("/v1/chat/completions");

    // Streaming client reads a few chunks, then hangs up.
    let mut bytes = open(&url, &endless(4000, true)).await.bytes_stream();
    let mut seen = 0;
    while let Some(b) = bytes.next().await {
        seen += String::from_utf8_lossy(&b.unwrap())
            .matches("data: ")
            .count();
        if seen >= 4 {
            break;
        }
    }
    drop(bytes);
    assert!(
        server
            .wait_log("generation cancelled", 1, Duration::from_secs(10))
            .await,
        "server log should say the stream was cancelled:\n{}",
        server.log()
    );
    let t = Instant::now();
    let (status, body) = post(&url, &chat("Hi", json!({"max_tokens": 4}))).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "next request waited {:?}",
        t.elapsed()
    );

    // A non-streaming client that times out is cancelled the same way.
    let short = ferrite_tests::reqwest_client(Duration::from_secs(2));
    let err = short.post(&url).json(&endless(4000, false)).send().await;
    assert!(err.is_err(), "the long request should time out client-side");
    assert!(
        server
            .wait_log("generation cancelled", 2, Duration::from_secs(10))
            .await,
        "{}",
        server.log()
    );
    let t = Instant::now();
    let (status, _) = post(&url, &chat("Hi", json!({"max_tokens": 4}))).await;
    assert_eq!(status, 200);
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "next request waited {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn a_full_server_answers_503() {
    let server = Server::start(&["--max-in-flight", "1"]);
    let url = server.url("/v1/chat/completions");
    let resp = open(&url, &endless(400, true)).await;
    let (status, body) = post(&url, &chat("Hi", json!({"max_tokens": 2}))).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "server_overloaded");
    drop(resp);
    // The slot comes back once the first stream is gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = post(&url, &chat("Hi", json!({"max_tokens": 2}))).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn max_seqs_bounds_the_sequences_the_engine_runs() {
    // With one slot, a second request waits until the first has finished
    // (mistral.rs alone would run both: it admits every waiting sequence
    // when nothing is running).
    let server = Server::start(&["--max-seqs", "1"]);
    let url = server.url("/v1/chat/completions");
    let order = std::sync::Mutex::new(Vec::new());
    let first = async {
        let resp = client().post(&url).json(&endless(40, true)).send().await;
        let text = resp.unwrap().text().await.unwrap();
        assert!(text.contains("[DONE]"));
        order.lock().unwrap().push("first done");
    };
    let second = async {
        // Give the first request a head start into the engine.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let resp = client().post(&url).json(&endless(4, true)).send().await;
        order.lock().unwrap().push("second started");
        assert!(resp.unwrap().text().await.unwrap().contains("[DONE]"));
    };
    tokio::join!(first, second);
    assert_eq!(*order.lock().unwrap(), ["first done", "second started"]);
}
