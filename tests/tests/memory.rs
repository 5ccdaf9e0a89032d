//! Conversation memory against the real server and model, stored in a real
//! SQLite file and in a real PostgreSQL database: recall across
//! conversations and restarts, tenant isolation and the memory API on both;
//! a SIGKILL mid-write and a locked or unopenable store on SQLite.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrite_tests::{chat, client, post_sse, postgres_database, send, Reply, Server};
use serde_json::{json, Value};

/// A fresh directory for one test's config and data.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferrite-memory-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Where a test keeps its memory.
enum Store {
    Sqlite,
    /// A database URL.
    Postgres(String),
}

impl Store {
    fn postgres(name: &str) -> Self {
        Store::Postgres(postgres_database(name))
    }

    fn config(&self) -> String {
        match self {
            Store::Sqlite => String::new(),
            Store::Postgres(url) => format!("url = \"{url}\"\n"),
        }
    }
}

/// A server with memory on, API keys for two tenants and one key that may
/// chat but not delete.
fn start(dir: &Path, store: &Store) -> Server {
    let config = dir.join("ferrite.toml");
    let text = format!(
        r#"data_dir = "{}"
[memory]
enabled = true
{}[[auth.api_keys]]
name = "alice"
key = "sk-alice"
[[auth.api_keys]]
name = "bob"
key = "sk-bob"
[[auth.api_keys]]
name = "alice-readonly"
key = "sk-ro"
scopes = ["chat"]
"#,
        dir.join("data").display(),
        store.config()
    );
    std::fs::write(&config, text).unwrap();
    Server::start(&["--config", config.to_str().unwrap()])
}

fn used(reply: &Reply) -> u64 {
    reply.body["ferrite"]["memory"]["used"]
        .as_u64()
        .unwrap_or(0)
}

fn context(reply: &Reply) -> &str {
    reply.body["ferrite"]["memory"]["context"]
        .as_str()
        .unwrap_or("")
}

async fn say(server: &Server, key: &str, conversation: &str, text: &str, extra: Value) -> Reply {
    let body = chat(text, json!({"max_tokens": 12, "temperature": 0}));
    let mut body = body;
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let req = client()
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(key)
        .header("x-ferrite-conversation", conversation)
        .header("x-ferrite-debug", "true")
        .json(&body);
    send(req).await
}

async fn get(server: &Server, key: &str, path: &str) -> Reply {
    send(client().get(server.url(path)).bearer_auth(key)).await
}

async fn delete(server: &Server, key: &str, path: &str) -> Reply {
    send(client().delete(server.url(path)).bearer_auth(key)).await
}

fn ids(list: &Reply) -> Vec<i64> {
    list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect()
}

const FACT: &str = "My cat is called Whiskers and she is orange.";
const QUESTION: &str = "What is the name of my cat?";

#[tokio::test]
async fn a_fact_is_recalled_in_later_conversations_and_after_a_restart() {
    recall("recall", Store::Sqlite).await;
}

#[tokio::test]
async fn postgres_a_fact_is_recalled_in_later_conversations_and_after_a_restart() {
    recall("recall_pg", Store::postgres("recall")).await;
}

async fn recall(name: &str, store: Store) {
    let dir = scratch(name);
    let server = start(&dir, &store);
    let told = say(&server, "sk-alice", "first", FACT, json!({})).await;
    assert_eq!(told.status, 200, "{}", told.body);
    assert_eq!(told.header("x-ferrite-memory-used"), "0");

    let asked = say(&server, "sk-alice", "second", QUESTION, json!({})).await;
    assert_eq!(asked.status, 200);
    assert!(used(&asked) >= 1, "{}", asked.body);
    assert_eq!(
        asked.header("x-ferrite-memory-used"),
        used(&asked).to_string()
    );
    assert!(context(&asked).contains("Whiskers"), "{}", asked.body);

    // The stored exchange: the prompt as the user sent it, the answer, the
    // conversation and real token counts.
    let list = get(&server, "sk-alice", "/v1/memory").await;
    assert_eq!(list.status, 200);
    let first = list.body["data"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(first["prompt"], FACT);
    assert_eq!(first["conversation"], "first");
    assert_eq!(
        first["answer"],
        told.body["choices"][0]["message"]["content"]
    );
    assert_eq!(
        first["completion_tokens"],
        told.body["usage"]["completion_tokens"]
    );

    // Streaming: the memory report rides on the first chunk, and the
    // exchange is stored before the stream ends.
    let mut body = chat(
        QUESTION,
        json!({"max_tokens": 8, "temperature": 0, "stream": true}),
    );
    body["user"] = json!("third");
    let before = ids(&get(&server, "sk-alice", "/v1/memory").await).len();
    let resp = client()
        .post(server.url("/v1/chat/completions"))
        .bearer_auth("sk-alice")
        .json(&body)
        .send()
        .await
        .unwrap();
    let text = resp.text().await.unwrap();
    let first_chunk: Value =
        serde_json::from_str(text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap()).unwrap();
    assert!(first_chunk["ferrite"]["memory"]["used"].as_u64().unwrap() >= 1);
    let list = get(&server, "sk-alice", "/v1/memory").await;
    assert_eq!(ids(&list).len(), before + 1);
    assert_eq!(list.body["data"][0]["conversation"], "third", "from `user`");

    // `memory: false` neither reads nor writes.
    let off = say(&server, "sk-alice", "x", QUESTION, json!({"memory": false})).await;
    assert_eq!(off.header("x-ferrite-memory-used"), "0");
    assert_eq!(used(&off), 0);
    assert_eq!(
        ids(&get(&server, "sk-alice", "/v1/memory").await).len(),
        before + 1
    );

    // A restart keeps everything.
    drop(server);
    let server = start(&dir, &store);
    let list = get(&server, "sk-alice", "/v1/memory").await;
    assert_eq!(ids(&list).len(), before + 1);
    let again = say(&server, "sk-alice", "fourth", QUESTION, json!({})).await;
    assert!(context(&again).contains("Whiskers"), "{}", again.body);
}

#[tokio::test]
async fn tenants_never_see_or_delete_each_others_memory() {
    tenants("tenants", Store::Sqlite).await;
}

#[tokio::test]
async fn postgres_tenants_never_see_or_delete_each_others_memory() {
    tenants("tenants_pg", Store::postgres("tenants")).await;
}

async fn tenants(name: &str, store: Store) {
    let dir = scratch(name);
    let server = start(&dir, &store);
    assert_eq!(
        say(&server, "sk-alice", "a", FACT, json!({})).await.status,
        200
    );
    let alice = ids(&get(&server, "sk-alice", "/v1/memory").await);
    assert_eq!(alice.len(), 1);

    let bob = say(&server, "sk-bob", "b", QUESTION, json!({})).await;
    assert_eq!(bob.status, 200);
    assert_eq!(used(&bob), 0, "{}", bob.body);
    assert!(!context(&bob).contains("Whiskers"));
    // Bob's list holds only his own exchange; search finds nothing of Alice's.
    let list = get(&server, "sk-bob", "/v1/memory").await;
    assert!(!ids(&list).contains(&alice[0]));
    let found = get(&server, "sk-bob", "/v1/memory/search?q=Whiskers").await;
    assert_eq!(found.status, 200);
    assert_eq!(found.body["data"], json!([]));
    let found = get(&server, "sk-alice", "/v1/memory/search?q=whiskers%20orange").await;
    assert_eq!(ids(&found), alice);
    assert!(found.body["data"][0]["score"].as_f64().unwrap() > 0.0);

    // Bob cannot delete Alice's memory, one by one or all at once.
    let gone = delete(&server, "sk-bob", &format!("/v1/memory/{}", alice[0])).await;
    assert_eq!(gone.status, 404, "{}", gone.body);
    assert_eq!(gone.body["error"]["code"], "not_found");
    let all = delete(&server, "sk-bob", "/v1/memory").await;
    assert_eq!(all.status, 200);
    assert_eq!(all.body["deleted"], 1, "only Bob's own exchange");
    // A key without `memory:write` cannot delete at all.
    let ro = delete(&server, "sk-ro", "/v1/memory").await;
    assert_eq!(ro.status, 403);
    assert_eq!(ro.body["error"]["code"], "insufficient_scope");
    assert_eq!(ids(&get(&server, "sk-alice", "/v1/memory").await), alice);
    // Without credentials: 401.
    let anon = send(client().get(server.url("/v1/memory"))).await;
    assert_eq!(anon.status, 401);

    // Alice pages through hers, then deletes them.
    assert_eq!(
        say(&server, "sk-alice", "a", QUESTION, json!({}))
            .await
            .status,
        200
    );
    let page = get(&server, "sk-alice", "/v1/memory?limit=1").await;
    assert_eq!(page.body["has_more"], true);
    let after = page.body["last_id"].as_i64().unwrap();
    let next = get(
        &server,
        "sk-alice",
        &format!("/v1/memory?limit=1&after={after}"),
    )
    .await;
    assert_eq!(ids(&next), alice);
    assert_eq!(next.body["has_more"], false);
    for bad in [
        "/v1/memory?limit=0",
        "/v1/memory?limit=x",
        "/v1/memory/search?q=",
    ] {
        let r = get(&server, "sk-alice", bad).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert_eq!(r.body["error"]["type"], "invalid_request_error");
    }
    let one = delete(&server, "sk-alice", &format!("/v1/memory/{}", alice[0])).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body["deleted"], 1);
    assert_eq!(ids(&get(&server, "sk-alice", "/v1/memory").await).len(), 1);
}

#[tokio::test]
async fn feedback_orders_recall_and_exports_filter_by_it() {
    feedback("feedback", Store::Sqlite).await;
}

#[tokio::test]
async fn postgres_feedback_orders_recall_and_exports_filter_by_it() {
    feedback("feedback_pg", Store::postgres("feedback")).await;
}

async fn rate(server: &Server, key: &str, id: i64, body: Value) -> Reply {
    let url = server.url(&format!("/v1/memory/{id}/feedback"));
    send(client().post(url).bearer_auth(key).json(&body)).await
}

/// The JSONL export's examples.
async fn export(server: &Server, query: &str) -> Vec<Value> {
    let r = client()
        .get(server.url(&format!("/v1/memory/export{query}")))
        .bearer_auth("sk-alice")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/jsonl");
    let text = r.text().await.unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn feedback(name: &str, store: Store) {
    let dir = scratch(name);
    let server = start(&dir, &store);
    for (conversation, fact) in [
        ("a", "My cat is called Whiskers."),
        ("b", "My cat is called Felix."),
    ] {
        let r = say(&server, "sk-alice", conversation, fact, json!({})).await;
        assert_eq!(r.status, 200);
    }
    // The same exchange again: a near duplicate for the export.
    say(
        &server,
        "sk-alice",
        "b",
        "My cat is called Felix.",
        json!({}),
    )
    .await;
    let mut listed = ids(&get(&server, "sk-alice", "/v1/memory").await);
    listed.reverse();
    let (whiskers, felix) = (listed[0], listed[1]);

    // The better scored exchange is recalled first, whichever it is.
    let turns = [
        (whiskers, felix, "Whiskers", "What is my cat called?"),
        (felix, whiskers, "Felix", "Tell me what my cat is called."),
    ];
    for (good, poor, first, question) in turns {
        let r = rate(
            &server,
            "sk-alice",
            good,
            json!({"score": 1.0, "comment": "right"}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["feedback"]["score"], 1.0);
        assert_eq!(r.body["feedback"]["comment"], "right");
        assert_eq!(
            rate(&server, "sk-alice", poor, json!({"score": 0.0}))
                .await
                .status,
            200
        );
        let asked = say(&server, "sk-alice", "c", question, json!({})).await;
        let recalled = context(&asked);
        let (w, f) = (recalled.find("Whiskers"), recalled.find("Felix"));
        assert!(w.is_some() && f.is_some(), "{recalled}");
        assert_eq!(w < f, first == "Whiskers", "{first} first: {recalled}");
    }

    // Bad scores, other tenants' ids and missing scopes are refused.
    for (body, param) in [
        (json!({"score": 1.5}), "score"),
        (json!({"score": "good"}), ""),
        (json!({}), ""),
    ] {
        let r = rate(&server, "sk-alice", felix, body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        if !param.is_empty() {
            assert_eq!(r.body["error"]["param"], param);
        }
    }
    assert_eq!(
        rate(&server, "sk-bob", felix, json!({"score": 1}))
            .await
            .status,
        404
    );
    assert_eq!(
        rate(&server, "sk-ro", felix, json!({"score": 1}))
            .await
            .status,
        403
    );
    let r = send(
        client()
            .post(server.url("/v1/memory/x/feedback"))
            .bearer_auth("sk-alice")
            .json(&json!({"score": 1})),
    )
    .await;
    assert_eq!(r.status, 404);

    // The export: OpenAI fine-tuning lines, filtered, near duplicates once.
    let all = export(&server, "").await;
    let asked_twice = 1;
    assert_eq!(
        all.len() + asked_twice,
        ids(&get(&server, "sk-alice", "/v1/memory?limit=100").await).len()
    );
    assert_eq!(
        all[0]["messages"][0],
        json!({"role": "user", "content": "My cat is called Whiskers."})
    );
    assert_eq!(all[0]["messages"][1]["role"], "assistant");
    assert_eq!(
        export(&server, "?dedupe=false").await.len(),
        all.len() + asked_twice
    );
    let good = export(&server, "?min_score=0.5").await;
    assert_eq!(good.len(), 1);
    assert_eq!(good[0]["messages"][0]["content"], "My cat is called Felix.");
    assert_eq!(export(&server, "?conversation=a").await.len(), 1);
    assert!(export(&server, "?since=2999-01-01").await.is_empty());
    assert_eq!(export(&server, "?until=2999-01-01").await.len(), all.len());
    for bad in ["?since=yesterday", "?min_score=2"] {
        let r = get(&server, "sk-alice", &format!("/v1/memory/export{bad}")).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    // Bob's export holds none of Alice's.
    let bob = client()
        .get(server.url("/v1/memory/export"))
        .bearer_auth("sk-bob")
        .send()
        .await
        .unwrap();
    assert_eq!(bob.text().await.unwrap(), "");

    // `ferrite export` writes the same lines to a file.
    let file = dir.join("good.jsonl");
    let out = std::process::Command::new(ferrite_tests::binary())
        .args([
            "export",
            "--url",
            &server.base,
            "--api-key",
            "sk-alice",
            "--min-score",
            "0.5",
            "-o",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Wrote 1 examples"));
    let written: Value =
        serde_json::from_str(std::fs::read_to_string(&file).unwrap().trim()).unwrap();
    assert_eq!(written, good[0]);
}

/// What the store says about itself, opened by a second process.
fn integrity(db: &Path) -> (String, i64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    conn.execute(
        "INSERT INTO memories_fts (memories_fts) VALUES ('integrity-check')",
        [],
    )
    .expect("the full-text index matches its table");
    let rows = conn
        .query_row("SELECT count(*) FROM memories", [], |r| r.get(0))
        .unwrap();
    (check, rows)
}

#[tokio::test]
async fn killing_the_server_during_writes_leaves_a_readable_store() {
    let dir = scratch("kill");
    let db = dir.join("data/memory.db");
    let server = start(&dir, &Store::Sqlite);
    // Many short exchanges finishing (and being stored) at different
    // moments; the server is killed while the rest are still arriving.
    let url = server.url("/v1/chat/completions");
    let writers: Vec<_> = (0..12)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                let body = chat(
                    &format!("Remember that the number {i} is lucky."),
                    json!({"max_tokens": 2 + i, "temperature": 0}),
                );
                let _ = client()
                    .post(url)
                    .bearer_auth("sk-alice")
                    .json(&body)
                    .send()
                    .await;
            })
        })
        .collect();
    let stored = loop {
        let n = ids(&get(&server, "sk-alice", "/v1/memory?limit=100").await).len();
        if n >= 3 {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    drop(server); // SIGKILL
    for w in writers {
        let _ = w.await;
    }
    let (check, rows) = integrity(&db);
    assert_eq!(check, "ok");
    assert!(rows as usize >= stored, "{rows} rows, {stored} were listed");

    // It reopens, lists what was committed, and takes new writes.
    let server = start(&dir, &Store::Sqlite);
    let list = get(&server, "sk-alice", "/v1/memory?limit=100").await;
    assert_eq!(ids(&list).len(), rows as usize);
    assert_eq!(
        say(&server, "sk-alice", "k", FACT, json!({})).await.status,
        200
    );
    assert_eq!(
        ids(&get(&server, "sk-alice", "/v1/memory?limit=100").await).len(),
        rows as usize + 1
    );
}

#[tokio::test]
async fn a_locked_store_degrades_to_answering_without_memory() {
    let dir = scratch("locked");
    let db = dir.join("data/memory.db");
    let server = start(&dir, &Store::Sqlite);
    assert_eq!(
        say(&server, "sk-alice", "a", FACT, json!({})).await.status,
        200
    );

    // Another process holds the write lock.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let locked = say(&server, "sk-alice", "a", QUESTION, json!({})).await;
    assert_eq!(locked.status, 200, "{}", locked.body);
    assert!(
        server
            .wait_log("could not store the exchange", 1, Duration::from_secs(10))
            .await,
        "{}",
        server.log()
    );
    conn.execute_batch("ROLLBACK").unwrap();
    drop(conn);

    // Nothing stored before was lost, and writes work again.
    let list = get(&server, "sk-alice", "/v1/memory").await;
    assert_eq!(ids(&list).len(), 1);
    assert_eq!(list.body["data"][0]["prompt"], FACT);
    assert_eq!(
        say(&server, "sk-alice", "a", "Thanks!", json!({}))
            .await
            .status,
        200
    );
    assert_eq!(ids(&get(&server, "sk-alice", "/v1/memory").await).len(), 2);
}

#[tokio::test]
async fn a_store_that_cannot_open_leaves_the_server_answering() {
    let dir = scratch("broken");
    // The data directory is a file: the database cannot be created.
    let blocker = dir.join("data");
    std::fs::write(&blocker, "not a directory").unwrap();
    let data_dir = blocker.to_str().unwrap().to_string();
    let server = Server::start_with_env(
        &[],
        &[
            ("FERRITE_MEMORY__ENABLED", "true"),
            ("FERRITE_DATA_DIR", &data_dir),
        ],
    );
    assert!(server.log().contains("conversation memory unavailable"));
    let url = server.url("/v1/chat/completions");
    let sse = post_sse(
        &url,
        &chat(QUESTION, json!({"max_tokens": 4, "stream": true})),
    )
    .await;
    assert_eq!(sse.status, 200);
    assert!(sse.done);
    let resp = client()
        .post(&url)
        .json(&chat(QUESTION, json!({"max_tokens": 4})))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-ferrite-memory"], "unavailable");
    let list = send(client().get(server.url("/v1/memory"))).await;
    assert_eq!(list.status, 503);
    assert_eq!(list.body["error"]["type"], "server_error");
}

#[tokio::test]
async fn postgres_that_is_down_leaves_the_server_answering() {
    let dir = scratch("pg_down");
    // Nothing listens on this port: every store call fails fast.
    let port = ferrite_tests::free_port();
    let store = Store::Postgres(format!("postgres://ferrite:secret@127.0.0.1:{port}/none"));
    let server = start(&dir, &store);
    assert!(
        !server.log().contains("secret"),
        "the password stays out of the log"
    );
    let reply = say(&server, "sk-alice", "a", QUESTION, json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("x-ferrite-memory"), "unavailable");
    let list = get(&server, "sk-alice", "/v1/memory").await;
    assert_eq!(list.status, 503, "{}", list.body);
    assert_eq!(list.body["error"]["code"], "service_unavailable");
}
