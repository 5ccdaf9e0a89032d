//! Stored Responses API responses on the real server: each tenant sees only
//! its own (another's id is a 404 for GET, DELETE, input items and
//! `previous_response_id`), and they survive a restart, in SQLite and in
//! PostgreSQL, the same stores as conversation memory.

use std::path::PathBuf;

use ferrite_tests::{client, config_file, postgres_database, send, Reply, Server};
use serde_json::{json, Value};

enum Store {
    Sqlite(PathBuf),
    Postgres(String),
}

fn start(name: &str, store: &Store) -> Server {
    let place = match store {
        Store::Sqlite(dir) => format!("data_dir = \"{}\"\n", dir.display()),
        // Memory stays off: responses use its database all the same.
        Store::Postgres(url) => format!("[memory]\nurl = \"{url}\"\n"),
    };
    let config = config_file(
        name,
        &format!(
            r#"{place}
[[auth.api_keys]]
name = "alice"
key = "sk-alice"
[[auth.api_keys]]
name = "bob"
key = "sk-bob"
"#
        ),
    );
    Server::start(&["--config", config.to_str().unwrap()])
}

async fn call(server: &Server, key: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
    let url = server.url(path);
    let req = match method {
        "POST" => client().post(url).json(&body.unwrap_or(Value::Null)),
        "DELETE" => client().delete(url),
        _ => client().get(url),
    };
    send(req.bearer_auth(key)).await
}

async fn kept_per_tenant_across_restarts(name: &str, store: Store) {
    let server = start(name, &store);
    let first = call(
        &server,
        "sk-alice",
        "POST",
        "/v1/responses",
        Some(json!({"input": "My name is Ada.", "max_output_tokens": 8})),
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let id = first.body["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("resp_"), "{id}");
    let path = format!("/v1/responses/{id}");

    // Bob sees none of it, by any route.
    for (method, p) in [
        ("GET", path.clone()),
        ("GET", format!("{path}/input_items")),
        ("DELETE", path.clone()),
    ] {
        let r = call(&server, "sk-bob", method, &p, None).await;
        assert_eq!(r.status, 404, "{method} {p}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "not_found");
    }
    let continued =
        json!({"input": "And mine?", "previous_response_id": id, "max_output_tokens": 4});
    let r = call(
        &server,
        "sk-bob",
        "POST",
        "/v1/responses",
        Some(continued.clone()),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.body["error"]["param"], "previous_response_id");

    // After a restart, Alice's response is still hers, and continues.
    drop(server);
    let server = start(name, &store);
    let got = call(&server, "sk-alice", "GET", &path, None).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body["output"], first.body["output"]);
    let items = call(
        &server,
        "sk-alice",
        "GET",
        &format!("{path}/input_items"),
        None,
    )
    .await;
    assert_eq!(items.body["data"][0]["content"], "My name is Ada.");
    let next = call(
        &server,
        "sk-alice",
        "POST",
        "/v1/responses",
        Some(continued),
    )
    .await;
    assert_eq!(next.status, 200, "{}", next.body);
    let (before, after) = (
        first.body["usage"]["input_tokens"].as_u64().unwrap(),
        next.body["usage"]["input_tokens"].as_u64().unwrap(),
    );
    assert!(
        after > before + 4,
        "the earlier turn is in the prompt: {before} then {after}"
    );

    let deleted = call(&server, "sk-alice", "DELETE", &path, None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(deleted.body["deleted"], true);
    assert_eq!(
        call(&server, "sk-alice", "GET", &path, None).await.status,
        404
    );
}

#[tokio::test]
async fn sqlite_keeps_responses_per_tenant_across_restarts() {
    let dir = std::env::temp_dir().join(format!("ferrite-responses-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    kept_per_tenant_across_restarts("responses-sqlite", Store::Sqlite(dir)).await;
}

#[tokio::test]
async fn postgres_keeps_responses_per_tenant_across_restarts() {
    let url = postgres_database("responses");
    kept_per_tenant_across_restarts("responses-pg", Store::Postgres(url)).await;
}
