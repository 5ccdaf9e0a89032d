//! Where a model's weights are, in which format, and the id it gets.

use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::options::ModelFormat;

/// Where the weights are and in which format.
pub struct Located {
    pub format: ModelFormat,
    /// The folder mistral.rs treats as the model id.
    pub dir: PathBuf,
    /// The GGUF file name inside `dir`.
    pub file: Option<String>,
}

impl Located {
    /// Bytes of weights: the GGUF file (every part of a split one), or the
    /// folder's safetensors.
    pub fn size_bytes(&self) -> u64 {
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        match &self.file {
            Some(_) => self
                .gguf_files()
                .iter()
                .map(|f| size(&self.dir.join(f)))
                .sum(),
            None => std::fs::read_dir(&self.dir)
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
                        .map(|p| size(&p))
                        .sum()
                })
                .unwrap_or(0),
        }
    }
}

impl Located {
    /// The GGUF's files: itself, or every part of a split model
    /// (`name-00001-of-00003.gguf`...), in order.
    pub fn gguf_files(&self) -> Vec<String> {
        let Some(file) = &self.file else {
            return Vec::new();
        };
        match split_part(file) {
            Some((prefix, _, of)) => (1..=of)
                .map(|part| format!("{prefix}-{part:05}-of-{of:05}.gguf"))
                .collect(),
            None => vec![file.clone()],
        }
    }
}

/// A split model's part: `name-00002-of-00003.gguf` → (`name`, 2, 3),
/// from a file name or a path.
pub fn split_part(path: &str) -> Option<(&str, u32, u32)> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let (rest, of) = name.strip_suffix(".gguf")?.rsplit_once("-of-")?;
    let (prefix, part) = rest.rsplit_once('-')?;
    let digits = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(part) || !digits(of) {
        return None;
    }
    Some((prefix, part.parse().ok()?, of.parse().ok()?))
}

/// `mmproj*.gguf` beside a model's file, LM Studio's layout (the first by
/// name when there are several).
pub fn projector_beside(file: &Path) -> Option<PathBuf> {
    let dir = file.parent()?;
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p != file && is_projector(p))
        .collect();
    found.sort();
    found.into_iter().next()
}

/// Whether a file is a vision projector by its name (`mmproj*.gguf`), as
/// LM Studio and llama-server's `-hf` tell them apart.
pub fn is_projector(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(|n| n.to_ascii_lowercase())
        .is_some_and(|n| n.starts_with("mmproj") && n.ends_with(".gguf"))
}

pub fn locate(path: &Path) -> anyhow::Result<Located> {
    if path.is_file() {
        if path.extension().and_then(|e| e.to_str()) != Some("gguf") {
            bail!("{} is not a .gguf file", path.display());
        }
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let file = path.file_name().map(|f| f.to_string_lossy().into_owned());
        return Ok(Located {
            format: ModelFormat::Gguf,
            dir,
            file,
        });
    }
    if !path.is_dir() {
        bail!("model path {} does not exist", path.display());
    }
    let entries: Vec<String> = std::fs::read_dir(path)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if entries.iter().any(|e| e == "config.json")
        && entries.iter().any(|e| e.ends_with(".safetensors"))
    {
        return Ok(Located {
            format: ModelFormat::Safetensors,
            dir: path.to_path_buf(),
            file: None,
        });
    }
    let ggufs: Vec<&String> = entries.iter().filter(|e| e.ends_with(".gguf")).collect();
    match ggufs.as_slice() {
        [one] => Ok(Located {
            format: ModelFormat::Gguf,
            dir: path.to_path_buf(),
            file: Some((*one).clone()),
        }),
        [] => bail!(
            "{} holds neither a .gguf file nor config.json with *.safetensors",
            path.display()
        ),
        _ => bail!(
            "{} holds several .gguf files; pass one of them as --model",
            path.display()
        ),
    }
}

/// `SmolLM2-135M-Instruct.Q4_1.gguf` -> `smollm2-135m-instruct`.
pub fn default_id(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    // A split model is named after its parts' common name.
    let stem = match split_part(&name) {
        Some((prefix, _, _)) => prefix,
        None => name.strip_suffix(".gguf").unwrap_or(&name),
    };
    let stem = match stem.rsplit_once('.') {
        // Drop a trailing quantization tag such as `.Q4_1` or `.q8_0`.
        Some((base, tag)) if is_quant_tag(tag) => base,
        _ => stem,
    };
    stem.to_ascii_lowercase()
}

/// `Q4_1`, `q8_0`, `IQ4_XS`, `F16`, `BF16`...
fn is_quant_tag(tag: &str) -> bool {
    let t = tag.to_ascii_lowercase();
    ["q", "iq", "f", "bf"].iter().any(|p| {
        t.strip_prefix(p)
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
    })
}

#[derive(serde::Deserialize, Default)]
pub struct HfConfig {
    #[serde(default)]
    pub architectures: Vec<String>,
    pub vocab_size: Option<u32>,
    pub max_position_embeddings: Option<u32>,
}

impl HfConfig {
    pub fn read(dir: &Path) -> Self {
        std::fs::read(dir.join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_lmstudio_like_ids() {
        assert_eq!(
            default_id(Path::new("models/SmolLM2-135M-Instruct.Q4_1.gguf")),
            "smollm2-135m-instruct"
        );
        assert_eq!(default_id(Path::new("/m/Qwen2.5-0.5B")), "qwen2.5-0.5b");
        assert_eq!(default_id(Path::new("llama.gguf")), "llama");
        assert_eq!(
            default_id(Path::new("m/Qwen3-235B-Q4_K_M-00001-of-00003.gguf")),
            "qwen3-235b-q4_k_m"
        );
        assert_eq!(default_id(Path::new("m.Q8_0-00002-of-00003.gguf")), "m");
    }
}
