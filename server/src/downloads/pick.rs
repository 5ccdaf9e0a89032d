//! Which files a quantization means, as llama-server's `-hf owner/repo:TAG`
//! picks them: the GGUF whose quantization matches the tag (any case); with
//! no tag Q4_K_M, then Q8_0, then the first GGUF. A split model is all of
//! its parts (`name-00001-of-00003.gguf`...), and a repo's projector
//! (`mmproj-*.gguf`) comes along for vision models.

use std::collections::BTreeMap;

use ferrite_engine::split_part;

use super::hub::RepoFile;

/// The quantizations tried, in order, when none is asked for.
const DEFAULTS: [&str; 2] = ["Q4_K_M", "Q8_0"];

/// One way to download a repo's model: its files and their size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// As the file names spell it (`Q4_K_M`), or the file's stem.
    pub quantization: String,
    /// The model's files, the first part first.
    pub files: Vec<RepoFile>,
    /// The repo's projector, for vision models.
    pub mmproj: Option<RepoFile>,
    /// Whether it is what a download without a tag gets.
    pub recommended: bool,
}

impl Choice {
    pub fn size(&self) -> u64 {
        self.all().map(|f| f.size).sum()
    }

    /// Every file to fetch.
    pub fn all(&self) -> impl Iterator<Item = &RepoFile> {
        self.files.iter().chain(self.mmproj.as_ref())
    }
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn is_gguf(path: &str) -> bool {
    base_name(path).to_ascii_lowercase().ends_with(".gguf")
}

fn is_mmproj(path: &str) -> bool {
    base_name(path).to_ascii_lowercase().starts_with("mmproj")
}

/// The quantization a GGUF's name carries (`…-Q4_K_M.gguf`, `….q8_0.gguf`,
/// `…-IQ4_XS-00001-of-00002.gguf`), upper-cased.
pub fn quantization(path: &str) -> Option<String> {
    let name = base_name(path);
    let stem = match split_part(name) {
        Some((prefix, _, _)) => prefix,
        None => name.strip_suffix(".gguf").unwrap_or(name),
    };
    let upper = stem.to_ascii_uppercase();
    let tokens: Vec<&str> = upper.split(['-', '.']).collect();
    // The last token that reads as a quantization: `Q4_K_M`, `IQ3_XXS`,
    // `F16`, `BF16`, `TQ1_0`, `MXFP4`, also `UD-Q4_K_XL` as `Q4_K_XL`.
    tokens
        .iter()
        .rev()
        .find(|t| {
            let body = t
                .strip_prefix("IQ")
                .or_else(|| t.strip_prefix("TQ"))
                .or_else(|| t.strip_prefix('Q'))
                .or_else(|| t.strip_prefix("BF"))
                .or_else(|| t.strip_prefix('F'))
                .or_else(|| t.strip_prefix("MXFP"));
            body.is_some_and(|b| {
                b.starts_with(|c: char| c.is_ascii_digit())
                    && b.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        })
        .map(|t| t.to_string())
}

/// Every downloadable model of a repo, one per quantization (a split
/// model's parts together), largest last; the one a download without a tag
/// gets is `recommended`.
pub fn options(files: &[RepoFile]) -> Vec<Choice> {
    let mut models: BTreeMap<String, Vec<RepoFile>> = BTreeMap::new();
    let mut mmprojs = Vec::new();
    for f in files.iter().filter(|f| is_gguf(&f.path)) {
        if is_mmproj(&f.path) {
            mmprojs.push(f.clone());
            continue;
        }
        let key = match split_part(&f.path) {
            Some((prefix, _, of)) => format!("{prefix}-of-{of}"),
            None => f.path.clone(),
        };
        models.entry(key).or_default().push(f.clone());
    }
    let mut choices: Vec<Choice> = models
        .into_values()
        .filter_map(|mut parts| {
            parts.sort_by(|a, b| a.path.cmp(&b.path));
            // A split model with a part missing cannot load.
            if let Some((_, _, of)) = split_part(&parts[0].path) {
                if parts.len() != of as usize {
                    return None;
                }
            }
            let quantization = quantization(&parts[0].path).unwrap_or_else(|| {
                let name = base_name(&parts[0].path);
                name.strip_suffix(".gguf").unwrap_or(name).to_string()
            });
            Some(Choice {
                mmproj: projector(&mmprojs, &quantization),
                quantization,
                files: parts,
                recommended: false,
            })
        })
        .collect();
    choices.sort_by_key(|c| c.size());
    let default = DEFAULTS
        .iter()
        .find_map(|tag| choices.iter().position(|c| c.quantization == *tag))
        .or_else(|| {
            // The first GGUF by name, as llama-server takes it.
            (0..choices.len())
                .min_by(|&a, &b| choices[a].files[0].path.cmp(&choices[b].files[0].path))
        });
    if let Some(i) = default {
        choices[i].recommended = true;
    }
    choices
}

/// The projector to take with a model: one of its own quantization, else
/// F16, else the first.
fn projector(mmprojs: &[RepoFile], quantization: &str) -> Option<RepoFile> {
    let named = |q: &str| {
        mmprojs
            .iter()
            .find(|m| self::quantization(&m.path).as_deref() == Some(q))
    };
    named(quantization)
        .or_else(|| named("F16"))
        .or_else(|| mmprojs.iter().min_by(|a, b| a.path.cmp(&b.path)))
        .cloned()
}

/// The choice for `tag` (any case; a name the files contain also works),
/// or the recommended one; `None` when nothing matches.
pub fn pick(choices: &[Choice], tag: Option<&str>) -> Option<Choice> {
    let Some(tag) = tag.map(str::trim).filter(|t| !t.is_empty()) else {
        return choices.iter().find(|c| c.recommended).cloned();
    };
    let upper = tag.to_ascii_uppercase();
    choices
        .iter()
        .find(|c| c.quantization == upper)
        .or_else(|| {
            choices.iter().find(|c| {
                c.files
                    .iter()
                    .any(|f| base_name(&f.path).to_ascii_uppercase().contains(&upper))
            })
        })
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64) -> RepoFile {
        RepoFile {
            path: path.into(),
            size,
            sha256: None,
        }
    }

    #[test]
    fn quantizations_are_read_from_names() {
        for (name, q) in [
            ("Qwen2.5-7B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
            ("SmolLM2-135M-Instruct.Q4_1.gguf", "Q4_1"),
            ("model-iq4_xs-00001-of-00002.gguf", "IQ4_XS"),
            ("gemma-3-270m-it-BF16.gguf", "BF16"),
            ("sub/dir/model-UD-Q4_K_XL.gguf", "Q4_K_XL"),
        ] {
            assert_eq!(quantization(name).as_deref(), Some(q), "{name}");
        }
        assert_eq!(quantization("model.gguf"), None);
        assert_eq!(
            split_part("m-Q8_0-00002-of-00003.gguf"),
            Some(("m-Q8_0", 2, 3))
        );
        assert_eq!(split_part("m-Q8_0.gguf"), None);
    }

    #[test]
    fn picks_as_llama_server_does() {
        let files = vec![
            file("README.md", 10),
            file("m-Q8_0.gguf", 800),
            file("m-Q4_K_M.gguf", 400),
            file("m-F16-00001-of-00002.gguf", 1000),
            file("m-F16-00002-of-00002.gguf", 1000),
            file("m-Q2_K-00001-of-00002.gguf", 100),
            file("mmproj-m-F16.gguf", 50),
        ];
        let choices = options(&files);
        // The incomplete split (Q2_K) is not offered; the projector is no model.
        let names: Vec<&str> = choices.iter().map(|c| c.quantization.as_str()).collect();
        assert_eq!(names, ["Q4_K_M", "Q8_0", "F16"]);
        let default = pick(&choices, None).unwrap();
        assert_eq!(default.quantization, "Q4_K_M");
        assert_eq!(default.mmproj.unwrap().path, "mmproj-m-F16.gguf");
        let f16 = pick(&choices, Some("f16")).unwrap();
        assert_eq!(f16.files.len(), 2);
        assert_eq!(f16.size(), 2050);
        assert!(pick(&choices, Some("q5_k_m")).is_none());
        let only = options(&[file("b.gguf", 1), file("a.gguf", 2)]);
        assert_eq!(pick(&only, None).unwrap().files[0].path, "a.gguf");
    }
}
