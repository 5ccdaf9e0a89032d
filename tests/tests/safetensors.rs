//! A Hugging Face safetensors folder, quantized in place (ISQ) at load time.
//! The folder is the default model converted by `scripts/gguf-to-hf.py`.

use std::path::PathBuf;

use ferrite_tests::{chat, get, post, Server};
use serde_json::json;

fn folder() -> PathBuf {
    std::env::var("FERRITE_TEST_SAFETENSORS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/smollm2-135m-hf")
        })
}

#[tokio::test]
async fn safetensors_load_with_in_situ_quantization() {
    let dir = folder();
    assert!(
        dir.join("config.json").exists(),
        "run `make test` to create {}",
        dir.display()
    );
    for (flag, expected) in [(None, "Q4_K"), (Some("q8_0"), "Q8_0")] {
        let mut args = vec!["--model", dir.to_str().unwrap()];
        if let Some(isq) = flag {
            args.extend(["--isq", isq]);
        }
        let server = Server::start(&args);
        let (_, models) = get(&server.url("/v1/models")).await;
        let meta = &models["data"][0]["meta"];
        assert_eq!(meta["format"], "safetensors");
        assert_eq!(meta["architecture"], "LlamaForCausalLM");
        assert_eq!(meta["isq"], expected, "default ISQ is a 4-bit type");
        assert_eq!(meta["activation_dtype"], "f32", "f32 activations on CPU");
        // Real weights and tokenizer: the model still knows its geography.
        let (status, body) = post(
            &server.url("/v1/completions"),
            &json!({"prompt": "The capital of France is", "max_tokens": 4, "temperature": 0}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let text = body["choices"][0]["text"].as_str().unwrap();
        assert!(text.contains("Paris"), "{expected}: {text:?}");
        let (status, body) = post(
            &server.url("/v1/chat/completions"),
            &chat("Say hello.", json!({"max_tokens": 8, "temperature": 0})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(!body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .is_empty());
    }
}
