//! llama-server's token routes on the real model: `/tokenize`,
//! `/detokenize`, `/apply-template`, on the suite's runtime.

use ferrite_tests::{chat, post, Server};
use serde_json::{json, Value};

fn url(path: &str) -> String {
    Server::shared().url(path)
}

fn ids(v: &Value) -> Vec<u64> {
    v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn text_round_trips_through_tokens() {
    let text = "The harbour at dawn is quiet.";
    let (status, v) = post(&url("/tokenize"), &json!({"content": text})).await;
    assert_eq!(status, 200, "{v}");
    let tokens = ids(&v);
    assert!(tokens.len() > 3 && tokens.len() < 20, "{tokens:?}");
    let (status, v) = post(&url("/detokenize"), &json!({"tokens": tokens})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["content"], text);
    // With pieces: each token's text, which together are the text.
    let (_, v) = post(
        &url("/tokenize"),
        &json!({"content": text, "with_pieces": true}),
    )
    .await;
    let pieces = v["tokens"].as_array().unwrap();
    assert_eq!(pieces.len(), tokens.len());
    assert_eq!(pieces[0]["id"], tokens[0]);
    let joined: String = pieces
        .iter()
        .map(|p| p["piece"].as_str().unwrap())
        .collect();
    assert_eq!(joined, text);
}

#[tokio::test]
async fn the_rendered_prompt_counts_as_the_chat_request_does() {
    let request = chat("Name a colour.", json!({"max_tokens": 1, "temperature": 0}));
    let (status, v) = post(&url("/apply-template"), &request).await;
    assert_eq!(status, 200, "{v}");
    let prompt = v["prompt"].as_str().unwrap();
    assert!(
        prompt.contains("<|im_start|>user\nName a colour.<|im_end|>"),
        "{prompt}"
    );
    assert!(prompt.ends_with("<|im_start|>assistant\n"), "{prompt}");
    // Counting the rendered prompt gives the prompt tokens chat reports.
    let (_, v) = post(
        &url("/tokenize"),
        &json!({"content": prompt, "add_special": true}),
    )
    .await;
    let counted = ids(&v).len() as u64;
    let (status, answer) = post(&url("/v1/chat/completions"), &request).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["usage"]["prompt_tokens"], counted, "{answer}");
}

#[tokio::test]
async fn bad_token_requests_are_400s_or_404s() {
    let (status, v) = post(
        &url("/detokenize"),
        &json!({"tokens": [1, 4_000_000_000u64]}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["param"], "tokens", "{v}");
    let (status, v) = post(&url("/detokenize"), &json!({"tokens": [-1]})).await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = post(&url("/tokenize"), &json!({"text": "no content field"})).await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = post(
        &url("/tokenize"),
        &json!({"content": "hi", "model": "no-such-model"}),
    )
    .await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["error"]["code"], "model_not_found");
    let (status, v) = post(&url("/apply-template"), &json!({"messages": []})).await;
    assert_eq!(status, 400, "{v}");
}
