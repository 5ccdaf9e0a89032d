//! Ollama's model names on ferrite's ids. Ollama names a model `name:tag`;
//! ferrite lists each model as `<id>:latest` and reads a name back thus:
//! - `<id>` or `<id>:latest` (or an alias) is that model;
//! - `<id>:<quant>` is that model when its quantization is `<quant>`;
//! - `hf.co/<owner>/<repo>[:<quant>]` (also `huggingface.co/...`), as Ollama
//!   pulls from the Hub, is the file of that quantization (or any, without
//!   one) downloaded from that repo into `<models dir>/<owner>/<repo>/`.
//!
//! Anything else is passed on as is, to be found or refused as unknown.

use std::sync::Arc;

use crate::registry::catalog::Spec;
use crate::registry::Registry;

/// The name `/api/tags` and `/api/ps` give a model.
pub fn listed(id: &str) -> String {
    match id.contains(':') {
        true => id.to_string(),
        false => format!("{id}:latest"),
    }
}

/// A Hub repository and the quantization a name asks for.
pub struct HubName<'a> {
    pub repo: &'a str,
    pub quant: Option<&'a str>,
}

/// `hf.co/owner/repo[:quant]`, if the name is one.
pub fn hub(name: &str) -> Option<HubName<'_>> {
    let rest = [
        "hf.co/",
        "huggingface.co/",
        "https://hf.co/",
        "https://huggingface.co/",
    ]
    .iter()
    .find_map(|p| name.strip_prefix(p))?;
    let (repo, quant) = match rest.rsplit_once(':') {
        Some((repo, tag)) if !tag.eq_ignore_ascii_case("latest") => (repo, Some(tag)),
        Some((repo, _)) => (repo, None),
        None => (rest, None),
    };
    Some(HubName { repo, quant })
}

fn quant_matches(spec: &Spec, quant: &str) -> bool {
    let file = spec
        .options
        .path
        .file_name()
        .map(|f| f.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let quant = quant.to_ascii_lowercase();
    spec.read_header()
        .and_then(Result::ok)
        .and_then(|m| m.quantization.as_deref())
        .is_some_and(|q| q.eq_ignore_ascii_case(&quant))
        || file.contains(&quant)
}

/// The ferrite name for an Ollama name, given the models known now.
pub fn resolve(name: &str, specs: &[Arc<Spec>]) -> String {
    let name = name.trim();
    if let Some(hub) = hub(name) {
        let prefix = format!("{}/", hub.repo.to_ascii_lowercase());
        let found = specs.iter().find(|s| {
            s.aliases
                .iter()
                .any(|a| a.to_ascii_lowercase().starts_with(&prefix))
                && hub.quant.is_none_or(|q| quant_matches(s, q))
        });
        return match found {
            Some(spec) => spec.id.clone(),
            None => name.to_string(),
        };
    }
    if specs.iter().any(|s| s.answers_to(name)) {
        return name.to_string();
    }
    match name.rsplit_once(':') {
        Some((base, tag)) if tag.eq_ignore_ascii_case("latest") => base.to_string(),
        Some((base, tag)) => match specs.iter().find(|s| s.answers_to(base)) {
            Some(spec) if quant_matches(spec, tag) => base.to_string(),
            _ => name.to_string(),
        },
        None => name.to_string(),
    }
}

/// The same against the models known now; the models directory is
/// rescanned only for a name none of them answers (requests stay off the
/// disk).
pub async fn lookup(registry: &Arc<Registry>, name: &str) -> String {
    let current = registry.current();
    let mapped = resolve(name, &current);
    if current.iter().any(|s| s.answers_to(&mapped)) {
        return mapped;
    }
    resolve(name, &registry.specs().await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_names_split_repo_and_quantization() {
        let h = hub("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M").unwrap();
        assert_eq!(h.repo, "bartowski/Llama-3.2-1B-Instruct-GGUF");
        assert_eq!(h.quant, Some("Q4_K_M"));
        let h = hub("huggingface.co/owner/repo:latest").unwrap();
        assert_eq!((h.repo, h.quant), ("owner/repo", None));
        assert!(hub("smollm2:latest").is_none());
        assert_eq!(listed("smollm2"), "smollm2:latest");
        assert_eq!(listed("a:b"), "a:b");
    }
}
