//! Chat templates on both runtimes: a GGUF without one chats with a default
//! chosen from its turn tokens (ChatML for SmolLM2), an override changes
//! the rendered prompt (`/apply-template` says which template), and a
//! template that fails to render is a 400 naming it, never a 500.

use std::path::PathBuf;

use ferrite_tests::{chat, config_file, get, model, post, Server};
use serde_json::json;

/// The default model with `tokenizer.chat_template` removed (`make test`
/// makes it with scripts/gguf-strip-template.py).
fn without_template() -> PathBuf {
    std::env::var("FERRITE_TEST_NOTEMPLATE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../models/SmolLM2-135M-Instruct-notemplate.Q4_1.gguf")
        })
}

#[tokio::test]
async fn a_gguf_without_a_template_chats_with_a_default() {
    let server = Server::start(&["--model", without_template().to_str().unwrap()]);
    let (status, body) = post(
        &server.url("/v1/chat/completions"),
        &chat("Say hi.", json!({"max_tokens": 8, "temperature": 0})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["choices"][0]["message"]["content"].is_string());
    let (status, rendered) = post(
        &server.url("/apply-template"),
        &json!({"messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert_eq!(status, 200, "{rendered}");
    assert_eq!(rendered["template"], "default:chatml", "{rendered}");
    let prompt = rendered["prompt"].as_str().unwrap();
    assert!(
        prompt.ends_with("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"),
        "{prompt:?}"
    );
    let models = get(&server.url("/v1/models")).await.1;
    assert_eq!(models["data"][0]["meta"]["chat_template"], "default:chatml");
    assert!(
        server.log().contains("has no chat template"),
        "{}",
        server.log()
    );
}

#[tokio::test]
async fn overrides_change_the_prompt_and_a_failing_one_is_a_400() {
    let path = model();
    let path = path.to_str().unwrap();
    let plain = "{% for m in messages %}<|im_start|>{{ m['role'] }}\\nPLAIN {{ m['content'] }}<|im_end|>\\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\\n{% endif %}";
    let strict = "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('This template takes no system message.') }}{% endif %}<|im_start|>{{ m['role'] }}\\n{{ m['content'] }}<|im_end|>\\n{% endfor %}<|im_start|>assistant\\n";
    let config = config_file(
        "templates",
        &format!(
            "[registry]\nmax_loaded_models = 1\n\
             [[registry.models]]\nid = \"plain\"\npath = \"{path}\"\nchat_template = \"{plain}\"\n\
             [[registry.models]]\nid = \"strict\"\npath = \"{path}\"\nchat_template = \"{strict}\"\n"
        ),
    );
    let server = Server::start(&["--config", config.to_str().unwrap()]);
    let render = |model: &'static str| {
        let server = &server;
        async move {
            post(
                &server.url("/apply-template"),
                &json!({"model": model, "messages": [{"role": "user", "content": "Hi"}]}),
            )
            .await
        }
    };
    let (status, own) = render("smollm2-135m-instruct").await;
    assert_eq!(status, 200, "{own}");
    assert!(
        matches!(own["template"].as_str(), Some("gguf" | "model")),
        "{own}"
    );
    assert!(!own["prompt"].as_str().unwrap().contains("PLAIN"));
    let (status, plain) = render("plain").await;
    assert_eq!(status, 200, "{plain}");
    assert_eq!(plain["template"], "override");
    assert!(
        plain["prompt"]
            .as_str()
            .unwrap()
            .contains("<|im_start|>user\nPLAIN Hi<|im_end|>"),
        "{plain}"
    );
    let (status, body) = post(
        &server.url("/v1/chat/completions"),
        &json!({"model": "plain", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // A template that raises for these messages: the request's fault.
    let (status, body) = post(
        &server.url("/v1/chat/completions"),
        &json!({"model": "strict", "max_tokens": 4, "messages": [
            {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("chat template (override)"), "{message}");
    assert!(message.contains("no system message"), "{message}");
    let (status, body) = post(
        &server.url("/v1/chat/completions"),
        &json!({"model": "strict", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_bad_override_stops_the_server_at_startup() {
    let server = Server::spawn(&["--chat-template", "no-such-template"]);
    let code = server.wait_exit(std::time::Duration::from_secs(30)).await;
    assert!(matches!(code, Some(Some(c)) if c != 0), "{code:?}");
    assert!(
        server.log().contains("no-such-template"),
        "{}",
        server.log()
    );
}
