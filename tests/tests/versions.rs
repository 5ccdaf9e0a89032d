//! Versioned aliases with the real server and models: requests naming the
//! alias reach its current version; an evaluation on this server promotes a
//! candidate only when it wins by the threshold; the history survives a
//! restart; rollback, and never past the first version; decisions are kept
//! and counted; `ferrite eval` drives it. The two versions are the default
//! model in Q4_1 and Q8_0: the evaluation set is made of the prompts where
//! their greedy answers differ, with the Q8_0 answers as references.

use std::path::PathBuf;
use std::process::Command;

use ferrite_tests::{binary, config_file, get, metric, model_q8, post, Server};
use serde_json::{json, Value};

const BASE: &str = "smollm2-135m-instruct";

fn start(data: &std::path::Path) -> Server {
    let cfg = config_file(
        "versions",
        &format!(
            "data_dir = \"{}\"\n[registry]\nmax_loaded_models = 2\n\
             [[registry.models]]\nid = \"smol-q8\"\npath = \"{}\"\n\
             [[aliases]]\nname = \"assistant\"\nmodel = \"{BASE}\"\nthreshold = 0.1\nkeep = 2\n",
            data.display(),
            model_q8().display()
        ),
    );
    // Greedy answers must repeat exactly: prefix reuse off (see
    // `ferrite_tests::repeatable`).
    Server::start(&["--config", cfg.to_str().unwrap(), "--prefix-cache", "0"])
}

async fn answer(server: &Server, model: &str, prompt: &str) -> Value {
    let (status, body) = post(
        &server.url("/v1/chat/completions"),
        &json!({"model": model, "messages": [{"role": "user", "content": prompt}],
                "max_tokens": 24, "temperature": 0}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn content(body: &Value) -> String {
    body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn evaluate(server: &Server, body: Value) -> (u16, Value) {
    post(&server.url("/api/v1/aliases/assistant/evaluate"), &body).await
}

#[tokio::test]
async fn an_alias_follows_its_versions_through_evaluation_and_rollback() {
    let data = std::env::temp_dir().join(format!("ferrite-versions-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let server = start(&data);
    let (_, alias) = get(&server.url("/api/v1/aliases/assistant")).await;
    assert_eq!(alias["current"], 1, "{alias}");
    assert_eq!(alias["model"], BASE);
    assert_eq!(answer(&server, "assistant", "Hi").await["model"], BASE);

    // Prompts where the two quantizations answer differently.
    let prompts = [
        "Write one sentence about the sea.",
        "Name three fruits and their colours.",
        "Describe a cat in a few words.",
        "What is the capital of France? Explain briefly.",
        "Give me a tip for sleeping well.",
        "Write a haiku about autumn.",
        "List two uses of copper.",
        "Why is the sky blue?",
    ];
    let mut items = Vec::new();
    for p in prompts {
        let q8 = content(&answer(&server, "smol-q8", p).await);
        let q4 = content(&answer(&server, BASE, p).await);
        if q8 != q4 {
            items.push(json!({"prompt": p, "reference": q8, "max_tokens": 24}));
        }
    }
    assert!(!items.is_empty(), "the quantizations answered alike");

    // Without `promote`, nothing changes; with it, the winner is current.
    let (status, report) = evaluate(&server, json!({"candidate": "smol-q8", "items": items})).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["decision"], "evaluate");
    assert_eq!(report["candidate"]["score"], 1.0);
    assert_eq!(report["current"]["score"], 0.0);
    assert_eq!(report["version"], 1);
    let (_, report) = evaluate(
        &server,
        json!({"candidate": "smol-q8", "items": items, "promote": true}),
    )
    .await;
    assert_eq!(report["decision"], "promote", "{report}");
    assert_eq!(report["version"], 2);
    assert_eq!(answer(&server, "assistant", "Hi").await["model"], "smol-q8");
    // The old version does not win it back.
    let (_, report) = evaluate(
        &server,
        json!({"candidate": BASE, "items": items, "promote": true}),
    )
    .await;
    assert_eq!(report["decision"], "keep", "{report}");
    assert_eq!(report["version"], 2);
    assert_eq!(
        metric(
            &server,
            "ferrite:alias_decisions_total",
            "action=\"promote\""
        )
        .await,
        1
    );

    // The other checks score too: JSON validity, a regex, a judge model.
    let checks = json!([
        {"prompt": "Reply with the JSON object {\"a\": 1} only.", "check": {"type": "json"}},
        {"prompt": "Say hello.", "check": {"type": "regex", "pattern": "(?i)h"}},
        {"prompt": "Name a colour.", "check": {"type": "judge", "model": "smol-q8", "rubric": "Names a colour."}},
    ]);
    let (status, report) = evaluate(&server, json!({"candidate": BASE, "items": checks})).await;
    assert_eq!(status, 200, "{report}");
    for side in ["candidate", "current"] {
        let scores = report[side]["items"].as_array().unwrap();
        assert_eq!(scores.len(), 3);
        assert!(scores
            .iter()
            .all(|s| (0.0..=1.0).contains(&s["score"].as_f64().unwrap())));
    }

    // Bad requests are the caller's, said plainly.
    for (body, param) in [
        (json!({"candidate": "smol-q8", "items": []}), "items"),
        (
            json!({"candidate": "smol-q8", "items": [{"prompt": "Q"}]}),
            "items[0]",
        ),
        (
            json!({"candidate": "smol-q8", "items": [{"prompt": "Q", "check": {"type": "regex", "pattern": "("}}]}),
            "items[0]",
        ),
    ] {
        let (status, e) = evaluate(&server, body).await;
        assert_eq!(status, 400, "{e}");
        assert_eq!(e["error"]["param"], param);
    }
    let (status, _) = evaluate(&server, json!({"candidate": "nope", "items": items})).await;
    assert_eq!(status, 404);
    let (status, _) = post(
        &server.url("/api/v1/aliases/other/evaluate"),
        &json!({"candidate": "smol-q8", "items": items}),
    )
    .await;
    assert_eq!(status, 404);

    // `ferrite eval` reads a JSONL set and prints the decision.
    let set: PathBuf = data.join("set.jsonl");
    let lines: Vec<String> = items.iter().map(Value::to_string).collect();
    std::fs::write(&set, lines.join("\n")).unwrap();
    let out = Command::new(binary())
        .args(["eval", "assistant", "--candidate", BASE, "--eval-set"])
        .arg(&set)
        .args(["--url", &server.base])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("Decision: evaluate; assistant is at version 2."),
        "{text}"
    );

    // The history is kept across a restart; rollback never passes the first.
    drop(server);
    let server = start(&data);
    assert_eq!(answer(&server, "assistant", "Hi").await["model"], "smol-q8");
    let (status, alias) = post(
        &server.url("/api/v1/aliases/assistant/rollback"),
        &json!({}),
    )
    .await;
    assert_eq!(status, 200, "{alias}");
    assert_eq!(alias["current"], 1);
    assert_eq!(alias["decisions"][0]["action"], "rollback");
    assert!(alias["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["action"] == "promote" && d["candidate_score"] == 1.0));
    assert_eq!(answer(&server, "assistant", "Hi").await["model"], BASE);
    let (status, e) = post(
        &server.url("/api/v1/aliases/assistant/rollback"),
        &json!({}),
    )
    .await;
    assert_eq!(status, 409, "{e}");
    let (_, list) = get(&server.url("/api/v1/aliases")).await;
    assert_eq!(list["data"][0]["versions"].as_array().unwrap().len(), 2);
}
