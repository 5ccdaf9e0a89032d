//! Which chat template a model renders with: the operator's override
//! (`chat_template`, a built-in name or Jinja; `chat_template_file`), else
//! the one in the model's files, else a default chosen from its vocabulary:
//! the family's own turn format where its turn tokens show it (Llama 3,
//! Gemma, Phi-3, Mistral), ChatML otherwise, as llama.cpp falls back.

use std::path::Path;

use anyhow::Context;

use crate::options::EngineOptions;

/// A template and where it came from (`/apply-template` and the model's
/// meta say which).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// `gguf`, `tokenizer_config`, `override`, `file:PATH`, `lmstudio`, or
    /// `default:NAME`.
    pub source: String,
    pub text: String,
}

const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const LLAMA3: &str = "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

// Gemma has no system turn: a system message is a user turn of its own.
const GEMMA: &str = "{{ bos_token }}{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant' else 'user' %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}";

const PHI3: &str = "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}";

const MISTRAL: &str = "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'assistant' %}{{ ' ' + message['content'] + eos_token }}{% else %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endif %}{% endfor %}";

/// The built-in templates, by llama-server's `--chat-template` names.
const BUILTIN: [(&str, &str); 5] = [
    ("chatml", CHATML),
    ("llama3", LLAMA3),
    ("gemma", GEMMA),
    ("phi3", PHI3),
    ("mistral", MISTRAL),
];

/// The turn tokens that show a family, checked in this order.
const FAMILIES: [(&str, &[&str]); 5] = [
    ("llama3", &["<|start_header_id|>", "<|eot_id|>"]),
    ("gemma", &["<start_of_turn>", "<end_of_turn>"]),
    ("chatml", &["<|im_start|>", "<|im_end|>"]),
    ("phi3", &["<|assistant|>", "<|end|>"]),
    ("mistral", &["[INST]", "[/INST]"]),
];

pub fn builtin(name: &str) -> Option<&'static str> {
    BUILTIN
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, t)| *t)
}

/// The default for a model whose files carry no template: its family's,
/// judged by which turn tokens its vocabulary has as single tokens.
pub fn fallback(has_token: impl Fn(&str) -> bool) -> Template {
    let name = FAMILIES
        .iter()
        .find(|(_, tokens)| tokens.iter().all(|t| has_token(t)))
        .map_or("chatml", |(name, _)| *name);
    Template {
        source: format!("default:{name}"),
        text: builtin(name).unwrap_or(CHATML).to_string(),
    }
}

/// The operator's override, if any: `chat_template` (a built-in name, or
/// Jinja) wins over `chat_template_file`.
pub fn configured(opts: &EngineOptions) -> anyhow::Result<Option<Template>> {
    if let Some(given) = opts
        .chat_template
        .as_deref()
        .filter(|t| !t.trim().is_empty())
    {
        let template = match builtin(given.trim()) {
            Some(text) => Template {
                source: format!("override:{}", given.trim().to_ascii_lowercase()),
                text: text.to_string(),
            },
            None if given.contains("{{") || given.contains("{%") => Template {
                source: "override".into(),
                text: given.to_string(),
            },
            None => anyhow::bail!(
                "chat_template `{given}` is neither a built-in template ({}) nor Jinja",
                BUILTIN.map(|(n, _)| n).join(", ")
            ),
        };
        return Ok(Some(template));
    }
    match &opts.chat_template_file {
        Some(path) => Ok(Some(Template {
            source: format!("file:{}", path.display()),
            text: read(path)?,
        })),
        None => Ok(None),
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("chat_template_file {} cannot be read", path.display()))
}

/// LM Studio's per-model prompt template, where its config for the model
/// carries one (`llm.prediction.promptTemplate`, Jinja), in the file LM
/// Studio keeps beside its models folder.
pub fn lmstudio(models_dir: &Path, rel: &str) -> Option<String> {
    let config = models_dir
        .parent()?
        .join(".internal/user-concrete-model-default-config")
        .join(format!("{rel}.json"));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(config).ok()?).ok()?;
    find_template(&json)
}

/// The Jinja of a `llm.prediction.promptTemplate` field anywhere in `v`.
fn find_template(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Object(map) => {
            if map.get("key").and_then(|k| k.as_str()) == Some("llm.prediction.promptTemplate") {
                let value = map.get("value")?;
                return value["jinjaPromptTemplate"]["template"]
                    .as_str()
                    .filter(|t| !t.trim().is_empty())
                    .map(String::from);
            }
            map.values().find_map(find_template)
        }
        serde_json::Value::Array(items) => items.iter().find_map(find_template),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vocabulary_shows_its_family() {
        let has = |tokens: &'static [&'static str]| move |t: &str| tokens.contains(&t);
        let llama = has(&["<|start_header_id|>", "<|eot_id|>", "<|im_start|>"]);
        assert_eq!(fallback(llama).source, "default:llama3");
        let gemma = has(&["<start_of_turn>", "<end_of_turn>"]);
        assert_eq!(fallback(gemma).source, "default:gemma");
        assert_eq!(fallback(has(&[])).source, "default:chatml");
        assert_eq!(fallback(has(&["<|im_start|>"])).text, CHATML);
    }

    #[test]
    fn overrides_are_names_jinja_or_files() {
        let opts = |t: &str| EngineOptions {
            chat_template: Some(t.into()),
            ..EngineOptions::default()
        };
        let t = configured(&opts("Gemma")).unwrap().unwrap();
        assert_eq!(
            (t.source.as_str(), t.text.as_str()),
            ("override:gemma", GEMMA)
        );
        let t = configured(&opts("{{ messages[0]['content'] }}"))
            .unwrap()
            .unwrap();
        assert_eq!(t.source, "override");
        assert!(configured(&opts("no-such-template")).is_err());
        assert_eq!(configured(&EngineOptions::default()).unwrap(), None);
    }

    #[test]
    fn lm_studios_per_model_template_is_found() {
        let json = serde_json::json!({"preset": "", "operation": {"fields": [
            {"key": "llm.prediction.temperature", "value": 0.5},
            {"key": "llm.prediction.promptTemplate", "value": {"type": "jinja",
                "jinjaPromptTemplate": {"template": "{{ x }}"}, "stopStrings": []}}
        ]}});
        assert_eq!(find_template(&json).as_deref(), Some("{{ x }}"));
        assert_eq!(
            find_template(&serde_json::json!({"load": {"fields": []}})),
            None
        );
    }
}
