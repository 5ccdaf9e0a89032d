//! Embeddings beside a chat model on the real server: the two kinds count
//! apart against `max_loaded_models` (a RAG client's embeddings do not evict
//! the chat model), budgets and auth apply as to chat, and a client that
//! leaves mid-request costs the next one nothing.

use ferrite_tests::{chat, client, config_file, embedding_model, metric, send, Server};
use serde_json::{json, Value};

#[tokio::test]
async fn embeddings_share_the_server_with_chat_under_budgets() {
    let config = config_file(
        "embeddings",
        &format!(
            r#"
[registry]
scan = false
max_loaded_models = 1
embedding_model = "{}"
[budgets]
tokens_per_minute = 30
[budgets.tenants.alice]
tokens_per_minute = 100000
[[auth.api_keys]]
name = "alice"
key = "sk-alice"
[[auth.api_keys]]
name = "bob"
key = "sk-bob"
"#,
            embedding_model().display()
        ),
    );
    let server = Server::start(&["--config", config.to_str().unwrap()]);
    let embed = |body: Value| {
        client()
            .post(server.url("/v1/embeddings"))
            .bearer_auth("sk-bob")
            .json(&body)
    };

    let refused = send(
        client()
            .post(server.url("/v1/embeddings"))
            .json(&json!({"input": "hi"})),
    )
    .await;
    assert_eq!(refused.status, 401, "{}", refused.body);

    let answer = send(
        client()
            .post(server.url("/v1/chat/completions"))
            .bearer_auth("sk-alice")
            .json(&chat("Say hi.", json!({"max_tokens": 4}))),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);

    // No model named: the embedding model, not the chat model.
    let first = send(embed(json!({"input": ["one", "two words"]}))).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["model"], "all-minilm-l6-v2");
    assert_eq!(first.body["data"].as_array().unwrap().len(), 2);
    let used = first.body["usage"]["prompt_tokens"].as_u64().unwrap();
    assert_eq!(used, 3 + 4, "[CLS] one [SEP] and [CLS] two words [SEP]");
    assert_eq!(first.number("x-ratelimit-limit-tokens"), 30);

    // The 7 tokens were charged: 30 - 7 - this one's 2, give or take the
    // one token a minute of 30 refills every 2 s.
    let second = send(embed(json!({"input": "one"}))).await;
    assert_eq!(second.status, 200, "{}", second.body);
    let left = second.number("x-ratelimit-remaining-tokens");
    assert!((21..=23).contains(&left), "{left} tokens left");
    let spent = send(embed(json!({"input": "word ".repeat(60)}))).await;
    assert_eq!(spent.status, 429, "{}", spent.body);
    assert_eq!(
        metric(&server, "ferrite:embedded_inputs_total", "").await,
        3
    );
    let tokens = metric(&server, "ferrite:prompt_tokens_total", "embeddings").await;
    assert_eq!(tokens, 7 + 3);

    // Both resident: one chat model and one embedding model.
    let models = send(
        client()
            .get(server.url("/api/v1/models"))
            .bearer_auth("sk-alice"),
    )
    .await;
    let loaded: Vec<(&str, &str)> = models.body["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| !m["loaded_instances"].as_array().unwrap().is_empty())
        .map(|m| (m["key"].as_str().unwrap(), m["type"].as_str().unwrap()))
        .collect();
    assert_eq!(loaded.len(), 2, "{loaded:?}");
    assert!(
        loaded.contains(&("all-minilm-l6-v2", "embedding")),
        "{loaded:?}"
    );
    assert!(
        loaded.contains(&("smollm2-135m-instruct", "llm")),
        "{loaded:?}"
    );

    // Clients that give up mid-request leave nothing stuck behind them.
    let alice = |body: Value| {
        client()
            .post(server.url("/v1/embeddings"))
            .bearer_auth("sk-alice")
            .json(&body)
    };
    for _ in 0..3 {
        let slow = alice(json!({"input": vec!["a sentence to embed"; 256]}));
        let _ = tokio::time::timeout(std::time::Duration::from_millis(20), slow.send()).await;
    }
    let again = send(alice(json!({"input": "still here"}))).await;
    assert_eq!(again.status, 200, "{}", again.body);
}
