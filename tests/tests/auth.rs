//! API keys and JWTs against the real server: the right credentials pass,
//! every kind of wrong one gets a 401 OpenAI error, health checks stay open.

use std::path::PathBuf;
use std::process::Command;

use base64::Engine as _;
use ferrite_tests::{chat, client, Server};
use jsonwebtoken::{encode, get_current_timestamp, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

fn temp(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("ferrite-auth-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

fn start(config: &str) -> Server {
    let path = temp("ferrite.toml", config);
    Server::start(&["--config", path.to_str().unwrap()])
}

async fn call(server: &Server, token: Option<&str>, path: &str) -> (u16, Value) {
    let mut req = if path == "/v1/chat/completions" {
        let body = chat("Say hi.", json!({"max_tokens": 2}));
        client().post(server.url(path)).json(&body)
    } else {
        client().get(server.url(path))
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    if status == 401 {
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    }
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn assert_401(status: u16, body: &Value, what: &str) {
    assert_eq!(status, 401, "{what}: {body}");
    assert_eq!(body["error"]["code"], "invalid_api_key", "{what}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{what}");
}

fn hs256(claims: &Value, secret: &str) -> String {
    let key = EncodingKey::from_secret(secret.as_bytes());
    encode(&Header::new(Algorithm::HS256), claims, &key).unwrap()
}

fn claims(sub: &str, aud: &str, exp_in: i64) -> Value {
    let exp = get_current_timestamp() as i64 + exp_in;
    json!({"sub": sub, "iss": "test-idp", "aud": aud, "exp": exp})
}

#[tokio::test]
async fn api_keys_and_hs256_jwts() {
    let server = start(
        r#"
[[auth.api_keys]]
name = "alice"
key = "sk-alice-123"

[auth.jwt]
algorithm = "HS256"
secret = "a-long-shared-secret"
issuer = "test-idp"
audience = "ferrite"
leeway_secs = 5
"#,
    );
    // Open without credentials.
    for path in ["/health", "/ready"] {
        assert_eq!(call(&server, None, path).await.0, 200, "{path}");
    }
    // A key, and a JWT signed here, are accepted on every /v1 route.
    let jwt = hs256(&claims("carol", "ferrite", 300), SECRET);
    for token in ["sk-alice-123", jwt.as_str()] {
        for path in ["/v1/models", "/v1/chat/completions"] {
            let (status, body) = call(&server, Some(token), path).await;
            assert_eq!(status, 200, "{path}: {body}");
        }
    }
    // Missing, wrong, expired, wrong audience, wrong issuer, wrong key.
    let mut wrong_iss = claims("carol", "ferrite", 300);
    wrong_iss["iss"] = json!("evil-idp");
    let bad = [
        ("no token", None),
        ("wrong key", Some("sk-alice-124".to_string())),
        (
            "expired",
            Some(hs256(
                &claims("carol", "ferrite", -600),
                "a-long-shared-secret",
            )),
        ),
        (
            "wrong audience",
            Some(hs256(
                &claims("carol", "other", 300),
                "a-long-shared-secret",
            )),
        ),
        (
            "wrong issuer",
            Some(hs256(&wrong_iss, "a-long-shared-secret")),
        ),
        (
            "wrong signing key",
            Some(hs256(&claims("carol", "ferrite", 300), "guessed-secret")),
        ),
        ("alg none", Some(alg_none(&claims("carol", "ferrite", 300)))),
        // Configured claims are required, not only checked when present.
        ("no audience", Some(hs256(&without(&["aud"]), SECRET))),
        ("no issuer", Some(hs256(&without(&["iss"]), SECRET))),
        (
            "no audience nor issuer",
            Some(hs256(&without(&["aud", "iss"]), SECRET)),
        ),
        ("no subject", Some(hs256(&without(&["sub"]), SECRET))),
        ("empty subject", Some(hs256(&with_sub(""), SECRET))),
        ("blank subject", Some(hs256(&with_sub("   "), SECRET))),
        ("numeric subject", Some(hs256(&with_sub(7), SECRET))),
        ("three dots of nothing", Some("a.b.c".to_string())),
        ("bad base64", Some("e30.e30.!!!!".to_string())),
        (
            "huge",
            Some(format!(
                "{}.{}.{}",
                "e".repeat(40_000),
                "e".repeat(40_000),
                "x".repeat(20_000)
            )),
        ),
    ];
    for (what, token) in &bad {
        for path in ["/v1/models", "/v1/chat/completions", "/v1/nope"] {
            let (status, body) = call(&server, token.as_deref(), path).await;
            assert_401(status, &body, what);
            assert_plain(&body, what);
        }
    }

    // The scheme name is case-insensitive, as HTTP says.
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        for token in ["sk-alice-123", jwt.as_str()] {
            let resp = client()
                .get(server.url("/v1/models"))
                .header("authorization", format!("{scheme} {token}"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{scheme}");
        }
    }
    // Headers no credential can be: an OpenAI 401 body, not an empty 400.
    for (what, value) in [
        ("bytes past ASCII", b"Bearer \xff\xfe\xfd".to_vec()),
        (
            "half a megabyte",
            format!("Bearer {}", "k".repeat(512 << 10)).into_bytes(),
        ),
        ("another scheme", b"Basic YWxpY2U6c2VjcmV0".to_vec()),
    ] {
        let resp = client()
            .get(server.url("/v1/models"))
            .header(
                "authorization",
                reqwest::header::HeaderValue::from_bytes(&value).unwrap(),
            )
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(Value::Null);
        assert_401(status, &body, what);
        assert_plain(&body, what);
    }
}

const SECRET: &str = "a-long-shared-secret";

/// Good claims for carol, less `names`.
fn without(names: &[&str]) -> Value {
    let mut c = claims("carol", "ferrite", 300);
    for n in names {
        c.as_object_mut().unwrap().remove(*n);
    }
    c
}

fn with_sub(sub: impl Into<Value>) -> Value {
    let mut c = claims("carol", "ferrite", 300);
    c["sub"] = sub.into();
    c
}

/// A 401 message in plain words: nothing of the JWT library's internals.
fn assert_plain(body: &Value, what: &str) {
    let message = body["error"]["message"].as_str().unwrap_or_default();
    for internal in [
        "Error",
        "Base64",
        "Json",
        "Utf8",
        "InvalidToken",
        "InvalidByte",
        "line ",
    ] {
        assert!(!message.contains(internal), "{what}: {message}");
    }
    assert!(message.len() < 200, "{what}: {message}");
}

/// An unsigned token (`"alg": "none"`), the classic bypass.
fn alg_none(claims: &Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64.encode(serde_json::to_vec(claims).unwrap());
    format!("{header}.{payload}.")
}

#[tokio::test]
async fn rs256_rejects_algorithm_confusion() {
    let dir = std::env::temp_dir().join(format!("ferrite-auth-rsa-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let private = dir.join("key.pem");
    let public = dir.join("pub.pem");
    let ok = Command::new("openssl")
        .args(["genrsa", "-out", private.to_str().unwrap(), "2048"])
        .output()
        .unwrap()
        .status
        .success()
        && Command::new("openssl")
            .args(["rsa", "-in", private.to_str().unwrap(), "-pubout", "-out"])
            .arg(&public)
            .output()
            .unwrap()
            .status
            .success();
    assert!(ok, "openssl could not make a key pair");
    let server = start(&format!(
        "[auth.jwt]\nalgorithm = \"RS256\"\npublic_key_file = \"{}\"\nissuer = \"test-idp\"\naudience = \"any\"\n",
        public.display()
    ));
    let c = claims("dave", "any", 300);
    let key = EncodingKey::from_rsa_pem(&std::fs::read(&private).unwrap()).unwrap();
    let rs256 = |claims: &Value| encode(&Header::new(Algorithm::RS256), claims, &key).unwrap();
    let good = rs256(&c);
    assert_eq!(call(&server, Some(&good), "/v1/models").await.0, 200);
    // Signed right, but without the configured audience or issuer.
    for missing in [&["aud"][..], &["iss"], &["aud", "iss"]] {
        let mut partial = c.clone();
        for claim in missing {
            partial.as_object_mut().unwrap().remove(*claim);
        }
        let (status, body) = call(&server, Some(&rs256(&partial)), "/v1/models").await;
        assert_401(status, &body, &format!("RS256 without {missing:?}"));
        assert_plain(&body, "RS256");
    }
    // HS256 "signed" with the public key as the secret: refused, because only
    // RS256 is accepted.
    let public_pem = std::fs::read_to_string(&public).unwrap();
    let forged = hs256(&c, &public_pem);
    let (status, body) = call(&server, Some(&forged), "/v1/models").await;
    assert_401(status, &body, "algorithm confusion");
}
