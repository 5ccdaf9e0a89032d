//! Comparing by meaning with the real embedding model (all-MiniLM-L6-v2):
//! conversation memory finds a past exchange that a paraphrase shares no
//! word with, in SQLite and in PostgreSQL, and an expert router matches an
//! example by meaning. (Without an embedding model, words alone rank: the
//! stores' unit tests show the same paraphrase missed.)

use ferrite_tests::{
    chat, client, config_file, embedding_model, model_q8, postgres_database, send, Server,
};
use serde_json::json;

const ASKED: &str = "How do I bake sourdough bread at home?";
/// No word in common with `ASKED`.
const PARAPHRASE: &str = "recipe for a leavened loaf";

async fn memory_by_meaning(name: &str, store: &str) {
    let config = config_file(
        name,
        &format!(
            r#"
[registry]
embedding_model = "{}"
[memory]
enabled = true
embedding_model = "all-minilm-l6-v2"
{store}
"#,
            embedding_model().display()
        ),
    );
    let server = Server::start(&["--config", config.to_str().unwrap()]);
    let asked = send(
        client()
            .post(server.url("/v1/chat/completions"))
            .json(&chat(ASKED, json!({"max_tokens": 8}))),
    )
    .await;
    assert_eq!(asked.status, 200, "{}", asked.body);

    let found = send(
        client()
            .get(server.url("/v1/memory/search"))
            .query(&[("q", PARAPHRASE)]),
    )
    .await;
    assert_eq!(found.status, 200, "{}", found.body);
    let data = found.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{}", found.body);
    assert_eq!(data[0]["prompt"], ASKED);

    // And the paraphrase, asked in a chat, is answered with that memory.
    let answer = send(
        client()
            .post(server.url("/v1/chat/completions"))
            .json(&chat(PARAPHRASE, json!({"max_tokens": 4}))),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.body["ferrite"]["memory"]["used"], 1,
        "{}",
        answer.body
    );
    assert_eq!(
        answer.body["ferrite"]["memory"]["ids"],
        json!([data[0]["id"]])
    );

    // Something unrelated finds nothing.
    let unrelated = send(
        client()
            .get(server.url("/v1/memory/search"))
            .query(&[("q", "quarterly tax deadline")]),
    )
    .await;
    assert_eq!(unrelated.body["data"], json!([]), "{}", unrelated.body);
}

#[tokio::test]
async fn memory_finds_a_paraphrase_by_meaning_in_sqlite() {
    let dir = std::env::temp_dir().join(format!("ferrite-meaning-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    memory_by_meaning(
        "meaning-sqlite",
        &format!("path = \"{}\"", dir.join("m.db").display()),
    )
    .await;
}

#[tokio::test]
async fn memory_finds_a_paraphrase_by_meaning_in_postgres() {
    let url = postgres_database("meaning");
    memory_by_meaning("meaning-pg", &format!("url = \"{url}\"")).await;
}

#[tokio::test]
async fn router_examples_compare_by_meaning() {
    let config = config_file(
        "meaning-router",
        &format!(
            r#"
[registry]
embedding_model = "{}"
[[registry.models]]
id = "smol-q8"
path = "{}"
[[routers]]
name = "auto"
default_model = "smollm2-135m-instruct"
threshold = 0.5
embedding_model = "all-minilm-l6-v2"
[[routers.routes]]
name = "code"
model = "smol-q8"
examples = ["Write a Python function that reverses a string."]
"#,
            embedding_model().display(),
            model_q8().display()
        ),
    );
    let server = Server::start(&["--config", config.to_str().unwrap()]);
    let ask = |text: &str| {
        client()
            .post(server.url("/v1/chat/completions"))
            .json(&json!({"model": "auto", "max_tokens": 2,
                          "messages": [{"role": "user", "content": text}]}))
    };
    let coding = send(ask("Implement code flipping text backwards")).await;
    assert_eq!(coding.status, 200, "{}", coding.body);
    let route = &coding.body["ferrite"]["route"];
    assert_eq!(route["route"], "code", "{route}");
    assert_eq!(route["model"], "smol-q8");
    assert!(
        route["reason"]
            .as_str()
            .unwrap()
            .contains("close in meaning"),
        "{route}"
    );
    let other = send(ask("What is the capital of France?")).await;
    assert_eq!(
        other.body["ferrite"]["route"]["route"], "default",
        "{}",
        other.body
    );
}
