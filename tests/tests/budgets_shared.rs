//! Budgets shared by replicas (`budgets.url`): two real ferrite processes on
//! one PostgreSQL database draw on the same windows, see each other's
//! reservations and refunds, keep them over a restart, and behave as
//! configured when the database is down.

use std::time::Duration;

use ferrite_tests::{chat, client, postgres_database, send, Reply, Server};
use futures::StreamExt;
use serde_json::json;

const DAY: &str = "x-ratelimit-remaining-tokens-day";

fn replica(url: &str, tokens_per_day: &str) -> Server {
    Server::start_with_env(
        &[],
        &[
            ("FERRITE_BUDGETS__URL", url),
            ("FERRITE_BUDGETS__TOKENS_PER_DAY", tokens_per_day),
        ],
    )
}

async fn ask(server: &Server, max_tokens: u32) -> Reply {
    send(
        client()
            .post(server.url("/v1/chat/completions"))
            .json(&chat("Say hi.", json!({"max_tokens": max_tokens}))),
    )
    .await
}

fn left(r: &Reply) -> i64 {
    r.number(DAY) as i64
}

fn used(r: &Reply) -> i64 {
    r.body["usage"]["total_tokens"].as_i64().unwrap_or(0)
}

#[tokio::test]
async fn two_replicas_spend_one_budget_and_a_restart_keeps_it() {
    let url = postgres_database("budgets_shared");
    let a = replica(&url, "400");
    let mut b = replica(&url, "400");

    // Alternating replicas: the figure each answer reports (its own
    // reservation taken) counts what the other spent. A refund lands just
    // after the answer ends, hence the pause.
    let first = ask(&a, 4).await;
    assert_eq!(first.status, 200, "{}", first.body);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = ask(&b, 4).await;
    assert_eq!(second.status, 200, "{}", second.body);
    let reserved = 400 - left(&first);
    assert!(
        reserved >= used(&first),
        "{reserved} reserved for {}",
        used(&first)
    );
    assert_eq!(
        left(&second),
        400 - used(&first) - reserved,
        "b sees what a spent"
    );

    // A reservation in flight on a is taken from b's window too, and comes
    // back when a's client leaves.
    let before = left(&ask(&b, 4).await);
    let mut stream = client()
        .post(a.url("/v1/chat/completions"))
        .json(&chat(
            "Count to a hundred.",
            json!({"max_tokens": 200, "stream": true}),
        ))
        .send()
        .await
        .unwrap()
        .bytes_stream();
    stream.next().await.expect("the stream starts").unwrap();
    let during = ask(&b, 4).await;
    assert!(
        left(&during) < before - 150,
        "a's reservation of 200 shows on b: {before} then {}",
        left(&during)
    );
    drop(stream);
    let mut after = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = left(&ask(&b, 1).await);
        if after > left(&during) + 100 {
            break;
        }
    }
    assert!(
        after > left(&during) + 100,
        "the unused reservation came back: {} then {after}",
        left(&during)
    );

    // Spent down to nothing: both refuse.
    let mut refused = Vec::new();
    for i in 0..40 {
        let server = if i % 2 == 0 { &a } else { &b };
        let r = ask(server, 16).await;
        if r.status == 429 {
            refused.push(i % 2);
            if refused.contains(&0) && refused.contains(&1) {
                break;
            }
        } else {
            assert_eq!(r.status, 200, "{}", r.body);
        }
    }
    assert!(refused.contains(&0) && refused.contains(&1), "{refused:?}");

    // A restarted replica finds the window as it was left.
    drop(b);
    b = replica(&url, "400");
    let r = ask(&b, 16).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "rate_limit_exceeded");
}

#[tokio::test]
async fn concurrent_requests_on_both_replicas_cannot_overshoot() {
    let url = postgres_database("budgets_race");
    let (a, b) = (replica(&url, "300"), replica(&url, "300"));
    let asks = (0..10).map(|i| {
        let server = if i % 2 == 0 { &a } else { &b };
        ask(server, 40)
    });
    let replies = futures::future::join_all(asks).await;
    let spent: i64 = replies.iter().filter(|r| r.status == 200).map(used).sum();
    assert!(replies.iter().any(|r| r.status == 429));
    assert!(spent <= 300, "{spent} tokens spent of 300");
}

#[tokio::test]
async fn an_unreachable_store_fails_open_or_closed_as_configured() {
    // Nothing listens on port 1.
    let url = "postgres://ferrite@127.0.0.1:1/ferrite";
    let open = replica(url, "400");
    let r = ask(&open, 4).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header(DAY).is_empty(), "unmetered, so no figures");
    assert!(open
        .log()
        .contains("the shared budget store is unreachable"));

    let closed = Server::start_with_env(
        &[],
        &[
            ("FERRITE_BUDGETS__URL", url),
            ("FERRITE_BUDGETS__TOKENS_PER_DAY", "400"),
            ("FERRITE_BUDGETS__UNREACHABLE", "fail_closed"),
        ],
    );
    let r = ask(&closed, 4).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("budget store"));
}
