//! `/v1/chat/completions` end to end: the real server, model and HTTP.

use ferrite_tests::{chat, post, post_sse, repeatable, streamed_text, Server};
use serde_json::{json, Value};

/// A prompt the model answers with high confidence at every token.
const COUNTING: &str = "Count from 1 to 10, separated by commas.";

fn url(path: &str) -> String {
    Server::shared().url(path)
}

#[tokio::test]
async fn non_streaming_chat_returns_a_completion_object() {
    let (status, body) = post(
        &url("/v1/chat/completions"),
        &chat("Say hello.", json!({"max_tokens": 16, "temperature": 0})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert!(body["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(body["model"], "smollm2-135m-instruct");
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(!choice["message"]["content"].as_str().unwrap().is_empty());
    assert!(["stop", "length"].contains(&choice["finish_reason"].as_str().unwrap()));
    let usage = &body["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 5);
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn streaming_matches_the_openai_chunk_format() {
    let body = chat(
        "Count to three.",
        json!({"max_tokens": 12, "temperature": 0}),
    );
    let mut streaming = body.clone();
    streaming["stream"] = json!(true);
    let sse = post_sse(&url("/v1/chat/completions"), &streaming).await;
    assert_eq!(sse.status, 200, "{}", sse.raw);
    assert!(sse.done, "stream must end with data: [DONE]");
    let first = &sse.events[0];
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    for e in &sse.events {
        assert_eq!(e["object"], "chat.completion.chunk");
        assert_eq!(e["id"], first["id"], "same id on every chunk");
        assert_eq!(
            e["created"], first["created"],
            "same created on every chunk"
        );
        assert!(e.get("usage").is_none(), "no usage without include_usage");
    }
    let last = sse.events.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "length");
    assert_eq!(last["choices"][0]["delta"], json!({}));

    // Greedy decoding: the stream and the plain response carry the same text.
    let (_, plain) = post(&url("/v1/chat/completions"), &body).await;
    assert_eq!(
        streamed_text(&sse.events, 0),
        plain["choices"][0]["message"]["content"].as_str().unwrap()
    );
}

#[tokio::test]
async fn include_usage_adds_a_final_usage_chunk() {
    let sse = post_sse(
        &url("/v1/chat/completions"),
        &chat(
            "Hi",
            json!({"max_tokens": 5, "temperature": 0, "stream": true,
                   "stream_options": {"include_usage": true}}),
        ),
    )
    .await;
    let last = sse.events.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["completion_tokens"], 5);
    assert!(last["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let with_usage = sse
        .events
        .iter()
        .filter(|e| e.get("usage").is_some())
        .count();
    assert_eq!(with_usage, 1);
}

#[tokio::test]
async fn max_tokens_gives_exactly_that_many_tokens_and_length() {
    for (field, n, logprobs) in [
        ("max_tokens", 7, false),
        ("max_completion_tokens", 3, false),
        ("max_tokens", 1, true),
        ("max_tokens", 5, true),
    ] {
        let (status, body) = post(
            &url("/v1/chat/completions"),
            &chat(
                "Write a long story about a dragon.",
                json!({field: n, "temperature": 0, "logprobs": logprobs}),
            ),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["usage"]["completion_tokens"], n, "{field}");
        if logprobs {
            // One entry per generated token: the tokens really are n.
            let entries = body["choices"][0]["logprobs"]["content"].as_array();
            assert_eq!(entries.map(Vec::len), Some(n), "{body}");
        }
        assert_eq!(body["choices"][0]["finish_reason"], "length");
    }
}

#[tokio::test]
async fn stop_sequences_end_the_answer_before_the_stop() {
    // Find a word the model really says, then stop on it.
    let base = chat(COUNTING, json!({"max_tokens": 30, "temperature": 0}));
    let (_, full) = post(&url("/v1/chat/completions"), &base).await;
    let text = full["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let words: Vec<&str> = text.split(' ').collect();
    assert!(words.len() > 6, "need a longer answer: {text}");
    let stop = format!(" {}", words[4]);
    let cut = &text[..text.find(&stop).unwrap()];

    for stream in [false, true] {
        let mut body = base.clone();
        body["stop"] = json!([stop.clone(), "never-appears-xyz"]);
        body["stream"] = json!(stream);
        let (got, finish) = if stream {
            let sse = post_sse(&url("/v1/chat/completions"), &body).await;
            let finish = sse
                .events
                .iter()
                .find_map(|e| e["choices"][0]["finish_reason"].as_str().map(String::from));
            (streamed_text(&sse.events, 0), finish)
        } else {
            let (_, b) = post(&url("/v1/chat/completions"), &body).await;
            (
                b["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                b["choices"][0]["finish_reason"].as_str().map(String::from),
            )
        };
        assert_eq!(got, cut, "stream={stream}, stop={stop:?}");
        assert_eq!(finish.as_deref(), Some("stop"));
    }
    // A single string works too.
    let mut body = base.clone();
    body["stop"] = json!(stop);
    let (_, b) = post(&url("/v1/chat/completions"), &body).await;
    assert_eq!(b["choices"][0]["message"]["content"], cut);
}

/// JSON whitespace is bounded as llama.cpp's grammars bound it, on both
/// runtimes: a model pushed hard towards spaces and newlines still has to
/// finish the value instead of spending its budget on indentation.
#[tokio::test]
async fn json_whitespace_is_bounded() {
    let mut bias = serde_json::Map::new();
    for ws in ["\n", " ", "\n\n", "  "] {
        let (_, v) = post(&url("/tokenize"), &json!({"content": ws})).await;
        for id in v["tokens"].as_array().unwrap() {
            bias.insert(id.to_string(), json!(100));
        }
    }
    let schema = json!({"type": "object", "properties": {"ok": {"type": "boolean"}},
                        "required": ["ok"], "additionalProperties": false});
    let (status, body) = post(
        &url("/v1/chat/completions"),
        &chat(
            "Is water wet? Answer as JSON.",
            json!({"max_tokens": 200, "temperature": 0, "logit_bias": bias,
                   "response_format": {"type": "json_schema",
                       "json_schema": {"name": "answer", "schema": schema}}}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "stop", "{content:?}");
    let v: Value = serde_json::from_str(content).unwrap_or_else(|e| panic!("{e}: {content:?}"));
    assert!(v["ok"].is_boolean(), "{content:?}");
}

#[tokio::test]
async fn json_schema_output_parses_and_matches_the_schema() {
    let schema = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "pets": {"type": "array", "items": {"type": "string"}, "maxItems": 3}
        },
        "required": ["name", "age", "pets"],
        "additionalProperties": false
    });
    let (status, body) = post(
        &url("/v1/chat/completions"),
        &chat(
            "Invent a person and describe them as JSON.",
            json!({"max_tokens": 120, "temperature": 0,
                   "response_format": {"type": "json_schema",
                       "json_schema": {"name": "person", "schema": schema, "strict": true}}}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    let v: Value = serde_json::from_str(content).unwrap_or_else(|e| panic!("{e}: {content}"));
    let obj = v.as_object().unwrap();
    assert!(obj["name"].is_string());
    assert!(obj["age"].is_i64() || obj["age"].is_u64());
    assert!(obj["pets"].as_array().unwrap().iter().all(Value::is_string));
    assert!(obj["pets"].as_array().unwrap().len() <= 3);
    assert_eq!(obj.len(), 3, "no additional properties");

    let (_, body) = post(
        &url("/v1/chat/completions"),
        &chat(
            "Give me a JSON object about cats.",
            json!({"max_tokens": 60, "temperature": 0, "response_format": {"type": "json_object"}}),
        ),
    )
    .await;
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    if body["choices"][0]["finish_reason"] == "stop" {
        assert!(serde_json::from_str::<Value>(content).unwrap().is_object());
    } else {
        assert!(content.trim_start().starts_with('{'), "{content}");
    }
}

#[tokio::test]
async fn a_forced_tool_choice_returns_a_tool_call() {
    let tools = json!([{"type": "function", "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                        "required": ["city"], "additionalProperties": false}}}]);
    for stream in [false, true] {
        let body = chat(
            "What is the weather in Paris?",
            json!({"max_tokens": 60, "temperature": 0, "tools": tools, "stream": stream,
                   "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}),
        );
        let (calls, finish) = if stream {
            let sse = post_sse(&url("/v1/chat/completions"), &body).await;
            let calls: Vec<Value> = sse
                .events
                .iter()
                .filter_map(|e| e["choices"][0]["delta"]["tool_calls"].as_array().cloned())
                .flatten()
                .collect();
            let finish = sse
                .events
                .iter()
                .find_map(|e| e["choices"][0]["finish_reason"].as_str().map(String::from));
            (calls, finish)
        } else {
            let (status, b) = post(&url("/v1/chat/completions"), &body).await;
            assert_eq!(status, 200, "{b}");
            (
                b["choices"][0]["message"]["tool_calls"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
                b["choices"][0]["finish_reason"].as_str().map(String::from),
            )
        };
        assert_eq!(calls.len(), 1, "stream={stream}");
        assert_eq!(calls[0]["type"], "function");
        assert_eq!(calls[0]["function"]["name"], "get_weather");
        let args: Value =
            serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
        assert!(args["city"].is_string(), "{args}");
        assert!(calls[0]["id"].as_str().is_some_and(|s| !s.is_empty()));
        assert_eq!(finish.as_deref(), Some("tool_calls"));
    }
}

#[tokio::test]
async fn n_returns_several_choices_and_seed_reproduces_them() {
    let body = chat(
        "Tell me a fun fact.",
        json!({"max_tokens": 12, "temperature": 1.0, "seed": 1234, "n": 2}),
    );
    let (status, a) = post(&repeatable().url("/v1/chat/completions"), &body).await;
    assert_eq!(status, 200, "{a}");
    let (_, b) = post(&repeatable().url("/v1/chat/completions"), &body).await;
    let texts = |v: &Value| -> Vec<String> {
        v["choices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["message"]["content"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(texts(&a).len(), 2);
    assert_eq!(texts(&a), texts(&b), "same seed, same choices");
    assert_eq!(
        a["usage"]["completion_tokens"],
        b["usage"]["completion_tokens"]
    );
    let mut other = body.clone();
    other["seed"] = json!(99);
    let runs = [post(&repeatable().url("/v1/chat/completions"), &other)
        .await
        .1];
    assert!(
        runs.iter().any(|r| texts(r) != texts(&a)) || texts(&a)[0] != texts(&a)[1],
        "different seeds should sample differently"
    );
}

#[tokio::test]
async fn logprobs_are_natural_log_probabilities() {
    let (status, body) = post(
        &url("/v1/chat/completions"),
        &chat(
            "Hello!",
            json!({"max_tokens": 6, "temperature": 0, "logprobs": true, "top_logprobs": 3}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let entries = body["choices"][0]["logprobs"]["content"]
        .as_array()
        .unwrap();
    assert_eq!(entries.len(), 6);
    let mut text = String::new();
    for e in entries {
        let lp = e["logprob"].as_f64().unwrap();
        assert!(lp <= 0.0, "{e}");
        let top = e["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        let total: f64 = top
            .iter()
            .map(|t| t["logprob"].as_f64().unwrap().exp())
            .sum();
        assert!(
            total <= 1.0 + 1e-4,
            "probabilities of alternatives sum to {total}"
        );
        // Greedy: the chosen token is the most likely one.
        assert_eq!(top[0]["token"], e["token"]);
        assert!((top[0]["logprob"].as_f64().unwrap() - lp).abs() < 1e-6);
        text.push_str(e["token"].as_str().unwrap());
    }
    assert_eq!(
        text.trim_start(),
        body["choices"][0]["message"]["content"].as_str().unwrap()
    );
}

#[tokio::test]
async fn logit_bias_steers_the_first_token() {
    // The text of token 1000, read back through a token-id prompt with echo.
    let (status, echo) = post(
        &url("/v1/completions"),
        &json!({"prompt": [1000], "max_tokens": 1, "temperature": 0, "echo": true}),
    )
    .await;
    assert_eq!(status, 200, "{echo}");
    let full = echo["choices"][0]["text"].as_str().unwrap();
    let (status, plain) = post(
        &url("/v1/completions"),
        &json!({"prompt": [1000], "max_tokens": 1, "temperature": 0}),
    )
    .await;
    assert_eq!(status, 200, "{plain}");
    let token = full
        .strip_suffix(plain["choices"][0]["text"].as_str().unwrap())
        .unwrap();
    assert!(!token.is_empty());

    let body = chat("Say something.", json!({"max_tokens": 1, "temperature": 0}));
    let (_, before) = post(&url("/v1/chat/completions"), &body).await;
    let mut biased = body.clone();
    biased["logit_bias"] = json!({"1000": 100});
    let (status, after) = post(&url("/v1/chat/completions"), &biased).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(
        after["choices"][0]["message"]["content"],
        token.trim_start()
    );
    assert_ne!(
        before["choices"][0]["message"]["content"],
        after["choices"][0]["message"]["content"]
    );

    // Ids outside the vocabulary are refused by name.
    let mut bad = body.clone();
    bad["logit_bias"] = json!({"999999": 5});
    let (status, b) = post(&url("/v1/chat/completions"), &bad).await;
    assert_eq!(status, 400);
    assert_eq!(b["error"]["param"], "logit_bias");
}

#[tokio::test]
async fn lm_studio_style_requests_work() {
    // LM Studio scripts omit `model`, send max_tokens -1 and system prompts.
    // The seed and stop keep the unbounded answer short and repeatable.
    let (status, body) = post(
        &url("/v1/chat/completions"),
        &json!({"messages": [
            {"role": "system", "content": "Always answer in rhymes."},
            {"role": "user", "content": "Introduce yourself."}],
            "temperature": 0.7, "seed": 7, "stop": "\n", "max_tokens": -1, "stream": false}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(["stop", "length"].contains(&body["choices"][0]["finish_reason"].as_str().unwrap()));
    // Array-of-parts content and a multi-turn tool conversation.
    let (status, body) = post(
        &url("/v1/chat/completions"),
        &json!({"model": "smollm2-135m-instruct", "max_tokens": 8, "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": [{"type": "text", "text": "Weather in Oslo?"}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1",
                "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "-3C and snowing"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn models_are_listed_with_honest_engine_facts() {
    let (status, body) = ferrite_tests::get(&url("/v1/models")).await;
    assert_eq!(status, 200);
    assert_eq!(body["object"], "list");
    let m = &body["data"][0];
    assert_eq!(m["id"], "smollm2-135m-instruct");
    assert_eq!(m["object"], "model");
    assert_eq!(m["meta"]["context_length"], 8192);
    assert_eq!(m["meta"]["quantization"], "Q4_1");
    assert_eq!(
        m["meta"]["paged_attention"], false,
        "a CPU build has no PagedAttention"
    );
    assert_eq!(m["meta"]["prefix_cache"], true);
    let (status, one) = ferrite_tests::get(&url("/v1/models/smollm2-135m-instruct")).await;
    assert_eq!(status, 200);
    assert_eq!(one["id"], m["id"]);
    let (status, missing) = ferrite_tests::get(&url("/v1/models/gpt-4")).await;
    assert_eq!(status, 404);
    assert_eq!(missing["error"]["code"], "model_not_found");
}

#[tokio::test]
async fn a_continued_answer_goes_on_from_the_text_it_was_given() {
    let server = repeatable();
    let prefix = "The three primary colours are";
    let question = json!({"role": "user", "content": "Name the three primary colours."});
    let messages = json!([question, {"role": "assistant", "content": prefix}]);
    let continued = |extra: Value| {
        let mut body = json!({"messages": messages, "continue_final_message": true});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    // The prompt is the chat's opened answer turn, then the text so far.
    let (_, opened) = post(
        &server.url("/apply-template"),
        &json!({"messages": [question]}),
    )
    .await;
    let (status, rendered) = post(&server.url("/apply-template"), &continued(json!({}))).await;
    assert_eq!(status, 200, "{rendered}");
    let prompt = rendered["prompt"].as_str().unwrap();
    assert_eq!(
        prompt,
        format!("{}{prefix}", opened["prompt"].as_str().unwrap())
    );

    // The answer is what a raw completion of that prompt gives: only what
    // is added, streamed or not.
    let greedy = json!({"max_tokens": 12, "temperature": 0});
    let (status, answer) = post(
        &server.url("/v1/chat/completions"),
        &continued(greedy.clone()),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (_, raw) = post(
        &server.url("/v1/completions"),
        &json!({"prompt": prompt, "max_tokens": 12, "temperature": 0}),
    )
    .await;
    let text = answer["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(!text.is_empty());
    assert_eq!(text, raw["choices"][0]["text"], "{answer}");
    let mut streamed = continued(greedy);
    streamed["stream"] = json!(true);
    let sse = post_sse(&server.url("/v1/chat/completions"), &streamed).await;
    assert_eq!(streamed_text(&sse.events, 0), text);

    // Only the assistant's own text can be continued, and not into thinking.
    for (body, why) in [
        (
            json!({"messages": [question], "continue_final_message": true}),
            "assistant",
        ),
        (
            continued(json!({"thinking": {"max_tokens": 8}})),
            "thinking",
        ),
    ] {
        let (status, error) = post(&server.url("/v1/chat/completions"), &body).await;
        assert_eq!(status, 400, "{error}");
        assert_eq!(error["error"]["param"], "continue_final_message");
        assert!(error["error"]["message"].as_str().unwrap().contains(why));
    }
}
