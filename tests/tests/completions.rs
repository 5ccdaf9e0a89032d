//! `/v1/completions` end to end.

use ferrite_tests::{post, post_sse, Server};
use serde_json::json;

fn url() -> String {
    Server::shared().url("/v1/completions")
}

#[tokio::test]
async fn text_completion_continues_the_prompt() {
    let (status, body) = post(
        &url(),
        &json!({"prompt": "The capital of France is", "max_tokens": 5, "temperature": 0}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "text_completion");
    assert!(body["id"].as_str().unwrap().starts_with("cmpl-"));
    let text = body["choices"][0]["text"].as_str().unwrap();
    // The continuation keeps its leading space: "is" + " Paris".
    assert!(text.starts_with(' '), "{text:?}");
    assert_eq!(body["usage"]["completion_tokens"], 5);
    assert_eq!(body["usage"]["prompt_tokens"], 5);
    assert_eq!(body["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn the_default_is_sixteen_tokens_like_openai() {
    let (_, body) = post(
        &url(),
        &json!({"prompt": "Once upon a time", "temperature": 0,
                "logit_bias": {"0": -100, "2": -100}}),
    )
    .await;
    assert_eq!(body["usage"]["completion_tokens"], 16, "{body}");
}

#[tokio::test]
async fn streaming_list_prompts_echo_and_logprobs() {
    let body = json!({"prompt": ["1, 2, 3, 4,", "a b c d e f"], "max_tokens": 4,
        "temperature": 0, "stream": true, "stream_options": {"include_usage": true}});
    let sse = post_sse(&url(), &body).await;
    assert_eq!(sse.status, 200, "{}", sse.raw);
    assert!(sse.done);
    let mut texts = [String::new(), String::new()];
    for e in &sse.events {
        assert_eq!(e["object"], "text_completion");
        for c in e["choices"].as_array().unwrap() {
            texts[c["index"].as_u64().unwrap() as usize].push_str(c["text"].as_str().unwrap());
        }
    }
    assert!(texts.iter().all(|t| !t.is_empty()), "{texts:?}");
    let usage = &sse.events.last().unwrap()["usage"];
    assert_eq!(usage["completion_tokens"], 8);

    // Non-streaming gives the same text per prompt (greedy).
    let mut plain = body.clone();
    plain["stream"] = json!(false);
    let (_, b) = post(&url(), &plain).await;
    for i in 0..2 {
        assert_eq!(b["choices"][i]["text"], texts[i].as_str());
        assert_eq!(b["choices"][i]["index"], i);
    }

    let (_, b) = post(
        &url(),
        &json!({"prompt": "Hello", "max_tokens": 3, "temperature": 0, "echo": true, "logprobs": 2}),
    )
    .await;
    let c = &b["choices"][0];
    let text = c["text"].as_str().unwrap();
    assert!(text.starts_with("Hello"), "{text:?}");
    let lp = &c["logprobs"];
    assert_eq!(lp["tokens"].as_array().unwrap().len(), 3);
    let offsets: Vec<u64> = lp["text_offset"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_u64().unwrap())
        .collect();
    assert_eq!(offsets[0], 5, "offsets count the echoed prompt");
    let joined: String = lp["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(format!("Hello{joined}"), text);
    for (i, t) in lp["tokens"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            &text[offsets[i] as usize..][..t.as_str().unwrap().len()],
            t.as_str().unwrap()
        );
        assert!(lp["token_logprobs"][i].as_f64().unwrap() <= 0.0);
        assert_eq!(lp["top_logprobs"][i].as_object().unwrap().len(), 2);
    }
}

#[tokio::test]
async fn stop_sequences_apply_to_text_completions() {
    let base = json!({"prompt": "1, 2, 3, 4,", "max_tokens": 12, "temperature": 0});
    let (_, full) = post(&url(), &base).await;
    let text = full["choices"][0]["text"].as_str().unwrap().to_string();
    let stop = text.trim_start().split(',').next().unwrap().to_string();
    assert!(!stop.is_empty(), "{text:?}");
    let mut body = base.clone();
    body["stop"] = json!([","]);
    let (_, cut) = post(&url(), &body).await;
    assert_eq!(cut["choices"][0]["text"], text[..text.find(',').unwrap()]);
    assert_eq!(cut["choices"][0]["finish_reason"], "stop");
}

/// Found by schemathesis: a choice whose last token ends inside a multi-byte
/// character used to lose its final chunk, and the request failed with 500
/// (vendor/README.md, patch 5). Prompts of odd characters make the model
/// emit byte tokens, so some choices end mid-character.
#[tokio::test]
async fn choices_ending_inside_a_character_still_finish() {
    let prompts = ["5å$", "\u{1f}Í\u{cad70}\u{95}", "oý¿$â", "𝐓𝐡𝐞 \u{1a}*>ÿô"];
    for seed in 0..6 {
        let (status, body) = post(
            &url(),
            &json!({"prompt": prompts, "max_tokens": 16, "seed": seed, "temperature": 1}),
        )
        .await;
        assert_eq!(status, 200, "seed {seed}: {body}");
        let choices = body["choices"].as_array().unwrap();
        assert_eq!(choices.len(), prompts.len());
        assert!(
            choices.iter().all(|c| c["finish_reason"].is_string()),
            "{body}"
        );
    }
}
