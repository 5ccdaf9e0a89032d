//! Expert routing with real models: the virtual model `auto` classifies
//! each request, answers through the chosen specialist, falls back past a
//! route whose model is broken, and can have a draft reviewed.

use ferrite_tests::{
    chat, client, config_file, metric, model, model_q8, post, post_sse, send, Server,
};
use serde_json::{json, Value};

fn start(name: &str) -> Server {
    let broken = config_file(&format!("{name}-broken"), "").with_extension("gguf");
    std::fs::write(&broken, b"GGUF? no: broken on purpose").unwrap();
    let path = config_file(
        name,
        &format!(
            r#"[registry]
max_loaded_models = 1
[[registry.models]]
id = "smol-q8"
path = "{q8}"
[[registry.models]]
id = "smol-again"
path = "{q4}"
[[registry.models]]
id = "broken"
path = "{broken}"

[[routers]]
name = "auto"
default_model = "smollm2-135m-instruct"
threshold = 0.35
[[routers.routes]]
name = "code"
model = "smol-q8"
keywords = ["python", "rust", "function"]
patterns = ['fn\s+\w+\(']
[[routers.routes]]
name = "geography"
model = "smol-again"
examples = ["What is the capital of France?", "Which river flows through Cairo?"]
[[routers.routes]]
name = "legal"
model = "broken"
fallbacks = ["smol-q8"]
keywords = ["contract", "lawsuit"]

[[routers]]
name = "nowhere"
default_model = "broken"

[[routers]]
name = "reviewed"
default_model = "smollm2-135m-instruct"
review = {{ reviewer = "smol-again", orchestrator = "smollm2-135m-instruct" }}
[[routers.routes]]
name = "code"
model = "smol-q8"
keywords = ["python"]
"#,
            q8 = model_q8().display(),
            q4 = model().display(),
            broken = broken.display(),
        ),
    );
    Server::start(&["--config", path.to_str().unwrap()])
}

async fn routed(server: &Server, router: &str, question: &str) -> (String, String, Value) {
    let r = send(
        client()
            .post(server.url("/v1/chat/completions"))
            .json(&chat(
                question,
                json!({"model": router, "max_tokens": 8, "temperature": 0}),
            )),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let model = r.header("x-ferrite-routed-model").to_string();
    let route = r.header("x-ferrite-route").to_string();
    assert_eq!(
        r.body["model"],
        model.as_str(),
        "the body names the model that answered"
    );
    assert_eq!(r.body["ferrite"]["route"]["model"], model.as_str());
    assert_eq!(r.body["ferrite"]["route"]["route"], route.as_str());
    (model, route, r.body)
}

#[tokio::test]
async fn the_router_picks_a_specialist_and_says_why() {
    let server = start("routes");
    let (model, route, body) = routed(
        &server,
        "auto",
        "Write a Python function that sorts a list.",
    )
    .await;
    assert_eq!((model.as_str(), route.as_str()), ("smol-q8", "code"));
    let why = &body["ferrite"]["route"];
    assert_eq!(why["router"], "auto");
    assert_eq!(why["reason"], "keywords `python`, `function`");
    assert!((why["confidence"].as_f64().unwrap() - 0.75).abs() < 1e-9);

    let (model, route, body) = routed(&server, "auto", "What is the capital of Spain?").await;
    assert_eq!(
        (model.as_str(), route.as_str()),
        ("smol-again", "geography")
    );
    let reason = body["ferrite"]["route"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("What is the capital of France?"),
        "{reason}"
    );

    let (model, route, body) = routed(&server, "auto", "Tell me a joke.").await;
    assert_eq!(
        (model.as_str(), route.as_str()),
        ("smollm2-135m-instruct", "default")
    );
    assert!(body["ferrite"]["route"]["reason"]
        .as_str()
        .unwrap()
        .contains("threshold"));

    // Streaming: the decision rides on the first chunk.
    let s = post_sse(
        &server.url("/v1/chat/completions"),
        &chat(
            "fix fn main() for me",
            json!({"model": "auto", "max_tokens": 4, "stream": true}),
        ),
    )
    .await;
    assert!(s.done);
    assert_eq!(s.events[0]["ferrite"]["route"]["route"], "code");
    assert_eq!(s.events[0]["model"], "smol-q8");

    // The router is listed as a model; text completions need a real one.
    let (_, models) = ferrite_tests::get(&server.url("/v1/models")).await;
    assert!(models["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == "auto"));
    let (status, v) = post(
        &server.url("/v1/completions"),
        &json!({"model": "auto", "prompt": "Hi"}),
    )
    .await;
    assert_eq!((status, v["error"]["param"].as_str()), (400, Some("model")));

    assert_eq!(
        metric(&server, "ferrite:route_decisions_total", "route=\"code\"").await,
        2
    );
    assert_eq!(
        metric(
            &server,
            "ferrite:route_decisions_total",
            "route=\"default\""
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_route_whose_model_is_broken_falls_back() {
    let server = start("fallback");
    let (model, route, body) = routed(&server, "auto", "Can you check this contract for me?").await;
    assert_eq!((model.as_str(), route.as_str()), ("smol-q8", "legal"));
    let fallbacks = body["ferrite"]["route"]["fallbacks"].as_array().unwrap();
    assert_eq!(fallbacks.len(), 1);
    assert_eq!(fallbacks[0]["model"], "broken");
    assert!(fallbacks[0]["error"]
        .as_str()
        .unwrap()
        .contains("failed to load"));
    assert_eq!(
        metric(&server, "ferrite:route_fallbacks_total", "model=\"broken\"").await,
        1
    );
    // With nothing left to fall back to, the error says what was tried.
    let (status, v) = post(
        &server.url("/v1/chat/completions"),
        &chat("Hi", json!({"model": "nowhere"})),
    )
    .await;
    assert_eq!(status, 500, "{v}");
    assert_eq!(v["error"]["code"], "route_failed");
    assert!(v["error"]["message"].as_str().unwrap().contains("broken:"));
    // Bad requests are not retried elsewhere: they fail as themselves.
    let (status, v) = post(
        &server.url("/v1/chat/completions"),
        &chat("Python?", json!({"model": "auto", "max_tokens": 100000})),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], "context_length_exceeded");
}

#[tokio::test]
async fn a_reviewed_route_drafts_reviews_and_orchestrates() {
    let server = start("review");
    let before = metric(&server, "ferrite:engine_generations_total", "").await;
    let (model, route, body) =
        routed(&server, "reviewed", "Write Python to add two numbers.").await;
    assert_eq!(route, "code");
    assert_eq!(model, "smollm2-135m-instruct", "the orchestrator answers");
    let why = &body["ferrite"]["route"];
    assert_eq!(why["specialist"], "smol-q8");
    assert_eq!(why["reviewed_by"], "smol-again");
    assert!(!body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .is_empty());
    // Three generations, and usage counts all three.
    let after = metric(&server, "ferrite:engine_generations_total", "").await;
    assert_eq!(after - before, 3);
    assert!(body["usage"]["completion_tokens"].as_u64().unwrap() > 8);
}
