//! Thinking controls end to end with the real model: budget forcing inside
//! generation (max, min with waits), reasoning split from the answer,
//! multi-round thinking, streaming, concurrent budgets, and bad input.
//!
//! SmolLM2 has no thinking of its own: the server opens the block. Requests
//! that need the block to run to its budget ban the model's end-of-text ids
//! (0 and 2) with `logit_bias`, so it never stops thinking on its own.

use ferrite_tests::{
    assert_batched_answer, chat, counted, metric, post, post_sse, repeatable, Server,
};
use serde_json::{json, Value};

const QUESTION: &str = "What is 12 + 7? Think it through.";

fn url() -> String {
    repeatable().url("/v1/chat/completions")
}

/// A greedy thinking request with end-of-text banned.
fn budget(max: u32, extra_tokens: u32) -> Value {
    chat(
        QUESTION,
        json!({"temperature": 0, "max_tokens": max + extra_tokens,
               "thinking": {"max_tokens": max}, "logit_bias": {"0": -100, "2": -100}}),
    )
}

fn reasoning_tokens(body: &Value) -> u64 {
    body["usage"]["completion_tokens_details"]["reasoning_tokens"]
        .as_u64()
        .unwrap_or_else(|| panic!("no reasoning_tokens in {body}"))
}

fn message(body: &Value) -> (String, String) {
    let m = &body["choices"][0]["message"];
    (
        m["reasoning_content"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        m["content"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn max_budget_gives_exactly_n_reasoning_tokens_then_an_answer() {
    let mut previous = String::new();
    for n in [4, 9, 16] {
        let (status, body) = post(&url(), &budget(n, 24)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(reasoning_tokens(&body), u64::from(n), "{body}");
        let (reasoning, content) = message(&body);
        assert!(!reasoning.is_empty() && !content.is_empty(), "{body}");
        assert!(!reasoning.contains("</think>") && !content.contains("</think>"));
        // Greedy: a smaller budget cuts the same thinking shorter.
        assert!(
            reasoning.starts_with(previous.as_str()),
            "{previous:?} then {reasoning:?}"
        );
        assert!(reasoning.len() > previous.len());
        previous = reasoning;
    }
}

#[tokio::test]
async fn zero_budget_gives_an_empty_thinking_block() {
    let (status, body) = post(&url(), &budget(0, 24)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(reasoning_tokens(&body), 0);
    assert_eq!(body["choices"][0]["message"]["reasoning_content"], "");
    assert!(!message(&body).1.is_empty(), "{body}");
}

#[tokio::test]
async fn min_budget_turns_early_ends_into_waits_at_most_k_times() {
    // Without a minimum, the model ends its thinking early (end of text).
    let free = chat(
        QUESTION,
        json!({"temperature": 0, "max_tokens": 200, "thinking": {"max_tokens": 150}}),
    );
    let (_, body) = post(&url(), &free).await;
    let natural = reasoning_tokens(&body);
    assert!(natural < 150, "the model never stopped thinking: {body}");
    let (reasoning, _) = message(&body);
    assert!(!reasoning.contains("Hmm, wait"));

    let min = natural as u32 + 25;
    for max_waits in [1u32, 64] {
        let req = chat(
            QUESTION,
            json!({"temperature": 0, "max_tokens": 400,
                   // A cap as well: after its waits a model may ramble on.
                   "thinking": {"min_tokens": min, "max_tokens": min + 150,
                                "max_waits": max_waits, "wait": "Hmm, wait"}}),
        );
        let (status, body) = post(&url(), &req).await;
        assert_eq!(status, 200, "{body}");
        let (reasoning, content) = message(&body);
        let waits = reasoning.matches("Hmm, wait").count() as u32;
        assert!(waits >= 1 && waits <= max_waits, "{waits} waits: {body}");
        let spent = reasoning_tokens(&body);
        // Thinking never ends below the minimum unless the waits ran out.
        assert!(
            spent >= u64::from(min) || waits == max_waits,
            "{spent} tokens: {body}"
        );
        assert!(spent > natural, "{body}");
        assert!(!content.is_empty(), "{body}");
    }
}

#[tokio::test]
async fn streaming_splits_reasoning_like_the_json_answer() {
    let plain = budget(10, 20);
    let (_, whole) = post(&url(), &plain).await;
    let mut streamed = plain.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let sse = post_sse(&url(), &streamed).await;
    assert_eq!(sse.status, 200, "{}", sse.raw);
    assert!(sse.done);
    let (mut reasoning, mut content) = (String::new(), String::new());
    for e in &sse.events {
        for c in e["choices"].as_array().into_iter().flatten() {
            reasoning.push_str(c["delta"]["reasoning_content"].as_str().unwrap_or_default());
            content.push_str(c["delta"]["content"].as_str().unwrap_or_default());
        }
    }
    assert_eq!((reasoning, content), message(&whole));
    assert_eq!(
        counted(&sse.events.last().unwrap()["usage"]),
        counted(&whole["usage"])
    );
}

#[tokio::test]
async fn four_concurrent_requests_keep_their_own_budgets() {
    let budgets = [3u32, 6, 9, 12];
    let mut alone = Vec::new();
    for &n in &budgets {
        alone.push(post(&url(), &budget(n, 12)).await.1);
    }
    let together = futures::future::join_all(budgets.iter().map(|&n| async move {
        let body = budget(n, 12);
        post(&url(), &body).await.1
    }))
    .await;
    for ((n, a), t) in budgets.iter().zip(&alone).zip(&together) {
        assert_eq!(reasoning_tokens(t), u64::from(*n), "{t}");
        let ((ar, ac), (tr, tc)) = (message(a), message(t));
        assert_batched_answer(&tr, &ar, &format!("budget {n} reasoning"));
        assert_batched_answer(&tc, &ac, &format!("budget {n} answer"));
    }
}

#[tokio::test]
async fn one_round_and_no_thinking_field_answer_alike() {
    let plain = chat(QUESTION, json!({"temperature": 0, "max_tokens": 24}));
    let mut one = plain.clone();
    one["thinking"] = json!({"rounds": 1});
    let (_, a) = post(&url(), &plain).await;
    let (_, b) = post(&url(), &one).await;
    assert_eq!(a["choices"], b["choices"]);
    assert_eq!(counted(&a["usage"]), counted(&b["usage"]));
    assert!(a["usage"].get("completion_tokens_details").is_none());
}

#[tokio::test]
async fn two_rounds_reanswer_from_the_first_answer_without_its_reasoning() {
    // Its own server: the generation counter must see only this test.
    let server = Server::start(&["--prefix-cache", "0"]);
    let url = server.url("/v1/chat/completions");
    let thinking = json!({"max_tokens": 8, "rounds": 2, "return_rounds": true});
    let req = chat(
        QUESTION,
        json!({"temperature": 0, "max_tokens": 40, "thinking": thinking}),
    );
    let before = metric(&server, "ferrite:engine_generations_total", "").await;
    let (status, body) = post(&url, &req).await;
    assert_eq!(status, 200, "{body}");
    let after = metric(&server, "ferrite:engine_generations_total", "").await;
    assert_eq!(after - before, 2, "two engine calls");

    let rounds = body["ferrite"]["rounds"]
        .as_array()
        .expect("rounds")
        .clone();
    assert_eq!(rounds.len(), 2);
    let first_answer = rounds[0]["answer"].as_str().unwrap();
    let first_reasoning = rounds[0]["reasoning"].as_str().unwrap();
    assert!(
        !first_answer.is_empty() && !first_reasoning.is_empty(),
        "{body}"
    );

    // Round 2 is exactly the original question plus the re-answer note: the
    // same request sent directly has the same prompt and the same answer.
    let question = format!(
        "{QUESTION}\nThe assistant's previous answer is: <answer>{first_answer}</answer>, and please re-answer."
    );
    let direct = chat(
        &question,
        json!({"temperature": 0, "max_tokens": 40, "thinking": {"max_tokens": 8}}),
    );
    let (_, direct) = post(&url, &direct).await;
    assert_eq!(
        counted(&rounds[1]["usage"]),
        counted(&direct["usage"]),
        "round 2 prompt differs"
    );
    assert_eq!(message(&body), message(&direct));
    assert_eq!(rounds[1]["answer"].as_str().unwrap(), message(&direct).1);

    // Usage sums both rounds.
    let sum = |field: &str| {
        rounds
            .iter()
            .map(|r| r["usage"][field].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(
        body["usage"]["prompt_tokens"].as_u64().unwrap(),
        sum("prompt_tokens")
    );
    assert_eq!(
        body["usage"]["completion_tokens"].as_u64().unwrap(),
        sum("completion_tokens")
    );

    // Streaming: the first round is an SSE comment, the last is streamed.
    let mut streamed = req.clone();
    streamed["stream"] = json!(true);
    let sse = post_sse(&url, &streamed).await;
    assert!(sse.done, "{}", sse.raw);
    assert!(
        sse.raw.contains(": ferrite: thinking round 1/2 done"),
        "{}",
        sse.raw
    );
    let content: String = sse
        .events
        .iter()
        .flat_map(|e| e["choices"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["delta"]["content"].as_str().map(String::from))
        .collect();
    assert_eq!(content, message(&body).1);
}

#[tokio::test]
async fn reasoning_effort_sets_a_budget() {
    let req = chat(
        QUESTION,
        json!({"temperature": 0, "max_tokens": 80, "reasoning_effort": "minimal"}),
    );
    let (status, body) = post(&url(), &req).await;
    assert_eq!(status, 200, "{body}");
    assert!(reasoning_tokens(&body) <= 64, "{body}");
    let (_, none) = post(
        &url(),
        &chat(
            QUESTION,
            json!({"temperature": 0, "max_tokens": 8, "reasoning_effort": "none"}),
        ),
    )
    .await;
    assert!(
        none["usage"].get("completion_tokens_details").is_none(),
        "{none}"
    );
}

#[tokio::test]
async fn bad_thinking_options_are_clear_400s() {
    let cases = [
        (
            json!({"thinking": {"min_tokens": 9, "max_tokens": 3}}),
            "thinking.min_tokens",
        ),
        (json!({"thinking": {"rounds": 0}}), "thinking.rounds"),
        (json!({"thinking": {"rounds": 99}}), "thinking.rounds"),
        (
            json!({"thinking": {"max_waits": 1000, "min_tokens": 1}}),
            "thinking.max_waits",
        ),
        (json!({"thinking": {"wait": " "}}), "thinking.wait"),
        (json!({"thinking": {"budget": 3}}), "thinking.budget"),
        (
            json!({"thinking": {"max_tokens": -1}}),
            "thinking.max_tokens",
        ),
        (json!({"reasoning_effort": "extreme"}), "reasoning_effort"),
        (
            json!({"extra_body": {"thinking": {"max_tokens": "x"}}}),
            "thinking.max_tokens",
        ),
        (
            json!({"thinking": {"max_tokens": 4}, "tools": [{"type": "function", "function": {"name": "f"}}]}),
            "thinking",
        ),
        (
            json!({"thinking": {"rounds": 2}, "n": 2}),
            "thinking.rounds",
        ),
    ];
    for (extra, param) in cases {
        let (status, body) = post(&url(), &chat("hi", extra.clone())).await;
        assert_eq!(status, 400, "{extra}: {body}");
        assert_eq!(body["error"]["param"], param, "{extra}: {body}");
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // A literal `extra_body` works like top-level fields.
    let (status, body) = post(
        &url(),
        &chat(
            QUESTION,
            json!({"temperature": 0, "max_tokens": 30,
              "extra_body": {"thinking": {"max_tokens": 3}}, "logit_bias": {"0": -100, "2": -100}}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(reasoning_tokens(&body), 3);
}
