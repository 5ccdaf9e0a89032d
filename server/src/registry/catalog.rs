//! Which models this server can load: the startup model, the entries in
//! config, and every model found in the models directory (LM Studio's
//! `publisher/repo/file.gguf` layout, or any folder of `.gguf` files and
//! safetensors folders).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ferrite_engine::{default_id, AdapterOptions, EngineOptions, ModelFormat, Runtime};
use ferrite_openapi::adapters::AdapterChoice;
use ferrite_openapi::models::{ModelKind, ModelMeta};
use ferrite_openapi::ApiResult;
use tracing::warn;

use crate::config::models::{ModelEntry, RegistryConfig};

/// One loadable model.
#[derive(Debug)]
pub struct Spec {
    pub id: String,
    pub aliases: Vec<String>,
    pub options: EngineOptions,
    /// The entry's own TTL, which beats every other.
    pub ttl: Option<Option<Duration>>,
    /// Header facts, read once, or why they cannot be read.
    header: OnceLock<Result<ModelMeta, String>>,
    /// Adapters merged at scales of a request's own (`base@a*0.5`): a model
    /// no configuration names, which only `models:manage` may build.
    pub custom_scales: bool,
}

impl Spec {
    fn new(id: String, aliases: Vec<String>, options: EngineOptions) -> Self {
        Self {
            id,
            aliases,
            options,
            ttl: None,
            header: OnceLock::new(),
            custom_scales: false,
        }
    }

    pub fn answers_to(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case(&self.id) || self.aliases.iter().any(|a| a == name)
    }

    pub fn has_adapter(&self, id: &str) -> bool {
        self.options.adapters.iter().any(|a| a.id == id)
    }

    /// What the header says, before loading (read on first use: it may
    /// block on the file, so async code reaches it through the registry).
    pub fn inspected(&self) -> Result<&ModelMeta, &str> {
        self.header
            .get_or_init(|| {
                ferrite_engine::inspect(&self.options).map_err(|e| {
                    warn!(model = %self.id, "cannot read the model's header: {e:#}");
                    format!("{e:#}")
                })
            })
            .as_ref()
            .map_err(String::as_str)
    }

    /// The header's facts if they were read already (no file access).
    pub fn read_header(&self) -> Option<Result<&ModelMeta, &str>> {
        self.header
            .get()
            .map(|h| h.as_ref().map_err(String::as_str))
    }

    pub fn meta(&self) -> Option<&ModelMeta> {
        self.inspected().ok()
    }

    /// Who published it, from an alias like `publisher/repo`, else `local`.
    pub fn publisher(&self) -> String {
        self.aliases
            .iter()
            .find_map(|a| a.split_once('/').map(|(p, _)| p.to_string()))
            .unwrap_or_else(|| "local".into())
    }

    /// The same model loaded with a context of `tokens` (at most what it
    /// was trained for).
    pub fn with_context_length(&self, tokens: u32) -> Spec {
        let mut options = self.options.clone();
        options.context_length = Some(tokens);
        Spec {
            id: self.id.clone(),
            aliases: self.aliases.clone(),
            options,
            ttl: self.ttl,
            header: self.header.clone(),
            custom_scales: self.custom_scales,
        }
    }

    /// Whether each adapter set is a model of its own, with the adapters
    /// merged in as it loads (mistral.rs on a safetensors folder).
    pub fn merges_adapters(&self) -> bool {
        !self.options.adapters.is_empty() && !is_gguf(&self.options.path)
    }

    /// The model that serves `adapters` (a request's choice) on this one:
    /// itself, which switches adapters per request (llama.cpp), or a model
    /// of its own with them merged in as it loads (mistral.rs on a
    /// safetensors folder), which then takes the request without them.
    pub fn serving(
        self: Arc<Self>,
        adapters: &mut Option<Vec<AdapterChoice>>,
    ) -> ApiResult<Arc<Spec>> {
        let set = ferrite_engine::adapters::select(&self.options.adapters, adapters.as_deref())?;
        if !self.merges_adapters() {
            return Ok(self);
        }
        *adapters = None;
        if set.is_empty() {
            return Ok(self);
        }
        // `id@a,b`, with `*scale` where a request's scale is its own.
        let (merged, names): (Vec<AdapterOptions>, Vec<String>) = set
            .iter()
            .filter_map(|&(i, scale)| {
                let a = self.options.adapters.get(i)?;
                let name = match a.scale == scale {
                    true => a.id.clone(),
                    false => format!("{}*{scale}", a.id),
                };
                Some((AdapterOptions { scale, ..a.clone() }, name))
            })
            .unzip();
        let mut options = self.options.clone();
        options.adapters = merged;
        options.merge_adapters = true;
        let id = format!("{}@{}", self.id, names.join(","));
        options.id = Some(id.clone());
        Ok(Arc::new(Spec {
            custom_scales: names.iter().any(|n| n.contains('*')),
            id,
            aliases: Vec::new(),
            options,
            ttl: self.ttl,
            header: self.header.clone(),
        }))
    }

    /// Chat or embeddings, as the header says (read it off the async
    /// workers first); an unreadable file counts as a chat model.
    pub fn kind(&self) -> ModelKind {
        self.meta().map(|m| m.kind).unwrap_or_default()
    }
}

pub fn ttl_of(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// What the models configuration offers, as specs the registry loads.
impl RegistryConfig {
    /// The startup model first, then config entries, then the directory's.
    /// `previous` keeps specs whose header was already read.
    pub fn specs(&self, startup: &EngineOptions, previous: &[Arc<Spec>]) -> Vec<Arc<Spec>> {
        let mut out: Vec<Arc<Spec>> = Vec::new();
        // Config may offer one file under two ids; a scanned file already
        // offered is not offered again.
        let mut push = |mut spec: Spec, scanned: bool| {
            if scanned
                && out
                    .iter()
                    .any(|s| same_file(&s.options.path, &spec.options.path))
            {
                return;
            }
            // Two repos' files named alike (`model-Q4_K_M.gguf`): the later
            // one is keyed by its path in the models directory.
            if scanned && out.iter().any(|s| s.answers_to(&spec.id)) {
                if let Some((folder, _)) = spec.aliases[0].rsplit_once('/') {
                    spec.id = format!("{}/{}", folder.to_ascii_lowercase(), spec.id);
                }
            }
            if out.iter().any(|s| s.answers_to(&spec.id)) {
                return;
            }
            let kept = previous
                .iter()
                .find(|p| p.id == spec.id && p.options.path == spec.options.path);
            out.push(kept.cloned().unwrap_or_else(|| Arc::new(spec)));
        };
        push(startup_spec(startup), false);
        if let Some(path) = &self.embedding_model {
            let mut options = startup.clone();
            options.path = path.clone();
            options.id = None;
            options.adapters.clear();
            options.rope_scaling = None;
            (options.chat_template, options.chat_template_file) = (None, None);
            options.mmproj = None;
            push(startup_spec(&options), false);
        }
        for entry in &self.models {
            push(entry_spec(entry, startup), false);
        }
        if self.scan {
            if let Some(dir) = self.dir() {
                for (path, rel) in scan(&dir) {
                    let mut options = startup.clone();
                    options.path = path;
                    options.id = None;
                    options.adapters.clear();
                    options.rope_scaling = None;
                    // LM Studio's per-model prompt template, if it has one.
                    options.chat_template = ferrite_engine::templates::lmstudio(&dir, &rel);
                    options.chat_template_file = None;
                    options.mmproj = None;
                    let id = default_id(&options.path);
                    let mut aliases = vec![rel.clone()];
                    if let Some((repo, _)) = rel.rsplit_once('/') {
                        aliases.push(repo.to_string());
                    }
                    push(Spec::new(id, aliases, options), true);
                }
            }
        }
        out
    }

    /// Config mistakes that should stop the server at startup.
    pub fn check(&self, startup: &EngineOptions) -> anyhow::Result<()> {
        check_adapters("model", startup)?;
        check_rope("model", startup)?;
        check_template("model", startup)?;
        for e in &self.models {
            anyhow::ensure!(
                !e.id.trim().is_empty(),
                "registry.models: an entry has no id"
            );
            let owner = format!("registry.models `{}`", e.id);
            let options = entry_spec(e, startup).options;
            check_adapters(&owner, &options)?;
            check_rope(&owner, &options)?;
            check_template(&owner, &options)?;
            if let Some(format) = e.format {
                let gguf = is_gguf(&e.path);
                anyhow::ensure!(
                    gguf == (format == ModelFormat::Gguf),
                    "registry.models `{}`: {} is not a {format:?} model",
                    e.id,
                    e.path.display()
                );
            }
        }
        Ok(())
    }
}

/// Adapter ids are named in `base@a,b`, so they are distinct and plain;
/// and only llama.cpp switches adapters per request.
fn check_adapters(owner: &str, options: &EngineOptions) -> anyhow::Result<()> {
    let adapters = &options.adapters;
    let gguf = is_gguf(&options.path);
    anyhow::ensure!(
        adapters.is_empty() || !gguf || options.runtime != Runtime::MistralRs,
        "{owner}: a GGUF model takes GGUF LoRA adapters on the llama.cpp runtime; mistral.rs merges PEFT adapters into safetensors models"
    );
    for (i, a) in adapters.iter().enumerate() {
        anyhow::ensure!(
            is_gguf(&a.path) == gguf,
            "{owner}: adapter `{}` must be {} ({})",
            a.id,
            match gguf {
                true => "a GGUF LoRA file, as the model is GGUF (llama.cpp)",
                false => "a PEFT folder, as the model is a safetensors folder (mistral.rs merges it at load)",
            },
            a.path.display()
        );
        anyhow::ensure!(
            !a.id.trim().is_empty() && !a.id.contains(['@', ',', '*']),
            "{owner}: adapter id `{}` must be non-empty, without `@`, `,` or `*`",
            a.id
        );
        anyhow::ensure!(
            adapters[..i].iter().all(|b| b.id != a.id),
            "{owner}: adapter id `{}` is used twice",
            a.id
        );
        anyhow::ensure!(
            a.scale.is_finite() && a.scale.abs() <= ferrite_openapi::adapters::MAX_SCALE,
            "{owner}: adapter `{}` has scale {}, outside ±{}",
            a.id,
            a.scale,
            ferrite_openapi::adapters::MAX_SCALE
        );
    }
    Ok(())
}

/// RoPE scaling is llama.cpp's (mistral.rs reads it from `config.json`).
/// A chat template override that is not a known name, not Jinja, or an
/// unreadable file stops the server at startup.
fn check_template(owner: &str, options: &EngineOptions) -> anyhow::Result<()> {
    ferrite_engine::templates::configured(options)
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("{owner}: {e:#}"))
}

fn check_rope(owner: &str, options: &EngineOptions) -> anyhow::Result<()> {
    anyhow::ensure!(
        options.rope_scaling.is_none()
            || (is_gguf(&options.path) && options.runtime != Runtime::MistralRs),
        "{owner}: `rope_scaling` applies to GGUF models on the llama.cpp runtime (mistral.rs takes a model's RoPE scaling from its config.json)"
    );
    Ok(())
}

fn is_gguf(path: &Path) -> bool {
    path.extension().is_some_and(|x| x == "gguf")
}

pub fn startup_spec(opts: &EngineOptions) -> Spec {
    let id = opts.id.clone().unwrap_or_else(|| default_id(&opts.path));
    let aliases = opts
        .path
        .file_name()
        .map(|f| vec![f.to_string_lossy().into_owned()])
        .unwrap_or_default();
    Spec::new(id, aliases, opts.clone())
}

fn entry_spec(e: &ModelEntry, defaults: &EngineOptions) -> Spec {
    let mut options = defaults.clone();
    options.path = e.path.clone();
    options.id = Some(e.id.clone());
    options.isq = e.isq.unwrap_or(defaults.isq);
    options.runtime = e.runtime.unwrap_or(defaults.runtime);
    options.context_length = e.context_length.or(defaults.context_length);
    options.rope_scaling = e.rope_scaling;
    options.chat_template = e.chat_template.clone();
    options.chat_template_file = e.chat_template_file.clone();
    options.mmproj = e.mmproj.clone();
    options.max_tokens = e.max_tokens.or(defaults.max_tokens);
    options.adapters = e.adapters.clone();
    if let Some(t) = &e.thinking {
        options.thinking = t.clone();
    }
    let mut spec = Spec::new(e.id.clone(), e.aliases.clone(), options);
    spec.ttl = e.ttl_secs.map(ttl_of);
    spec
}

pub fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// A split model's second part or later (`-00002-of-00003.gguf`): the
/// model is its first part, which llama.cpp loads the others from.
fn later_part(name: &str) -> bool {
    ferrite_engine::split_part(name).is_some_and(|(_, part, _)| part > 1)
}

/// Models under `dir` (three levels deep, as in `publisher/repo/file.gguf`),
/// with their paths relative to `dir`.
fn scan(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    walk(dir, dir, 0, &mut found);
    found.sort();
    found
}

fn walk(root: &Path, dir: &Path, depth: usize, found: &mut Vec<(PathBuf, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let rel = |p: &Path| {
        p.strip_prefix(root)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_lowercase();
        if path.is_dir() && !name.starts_with('.') {
            let safetensors = path.join("config.json").is_file()
                && std::fs::read_dir(&path).is_ok_and(|d| {
                    d.filter_map(Result::ok)
                        .any(|f| f.path().extension().is_some_and(|x| x == "safetensors"))
                });
            if safetensors {
                found.push((path.clone(), rel(&path)));
            } else if depth < 2 {
                walk(root, &path, depth + 1, found);
            }
        } else if name.ends_with(".gguf")
            && !ferrite_engine::is_projector(Path::new(&name))
            && !later_part(&name)
        {
            found.push((path.clone(), rel(&path)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_lmstudio_layout_and_skips_duplicates() {
        let dir = std::env::temp_dir().join(format!("ferrite-scan-{}", std::process::id()));
        let repo = dir.join("lmstudio-community/SmolLM2-GGUF");
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::write(repo.join("SmolLM2.Q8_0.gguf"), b"x").unwrap();
        std::fs::write(repo.join("mmproj-f16.gguf"), b"x").unwrap();
        std::fs::write(dir.join("other.Q4_K_M.gguf"), b"x").unwrap();
        // A split model is one model, its first part; a file named like
        // another repo's is keyed by its folder.
        let split = dir.join("big/Big-GGUF");
        std::fs::create_dir_all(&split).unwrap();
        for part in 1..=2 {
            let name = format!("Big-Q4_K_M-0000{part}-of-00002.gguf");
            std::fs::write(split.join(name), b"x").unwrap();
        }
        let twin = dir.join("zz/SmolLM2-GGUF");
        std::fs::create_dir_all(&twin).unwrap();
        std::fs::write(twin.join("SmolLM2.Q8_0.gguf"), b"y").unwrap();
        let config = RegistryConfig {
            dir: Some(dir.clone()),
            models: vec![ModelEntry {
                id: "again".into(),
                path: dir.join("other.Q4_K_M.gguf"),
                format: None,
                isq: None,
                runtime: None,
                context_length: Some(512),
                rope_scaling: None,
                chat_template: None,
                chat_template_file: None,
                mmproj: None,
                aliases: vec![],
                thinking: None,
                max_tokens: None,
                ttl_secs: Some(0),
                adapters: vec![],
            }],
            ..RegistryConfig::default()
        };
        let startup = EngineOptions {
            path: dir.join("missing.gguf"),
            ..EngineOptions::default()
        };
        let specs = config.specs(&startup, &[]);
        let ids: Vec<&str> = specs.iter().map(|s| s.id.as_str()).collect();
        // `other` is already offered as `again`.
        assert_eq!(
            ids,
            [
                "missing",
                "again",
                "big-q4_k_m",
                "smollm2",
                "zz/smollm2-gguf/smollm2"
            ]
        );
        assert_eq!(specs[1].options.context_length, Some(512));
        assert_eq!(specs[1].ttl, Some(None));
        assert!(specs[2]
            .options
            .path
            .ends_with("Big-Q4_K_M-00001-of-00002.gguf"));
        assert!(specs[3].answers_to("lmstudio-community/SmolLM2-GGUF"));
        assert!(specs[3].answers_to("lmstudio-community/SmolLM2-GGUF/SmolLM2.Q8_0.gguf"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn adapters_must_be_nameable_and_of_the_models_kind() {
        let adapter = |id: &str| AdapterOptions {
            id: id.into(),
            path: "a.gguf".into(),
            scale: 1.0,
        };
        let options = |path: &str, adapters| EngineOptions {
            path: path.into(),
            adapters,
            ..EngineOptions::default()
        };
        assert!(check_adapters("m", &options("m.gguf", vec![adapter("a"), adapter("b")])).is_ok());
        let peft = AdapterOptions {
            path: "a-peft".into(),
            ..adapter("a")
        };
        assert!(check_adapters("m", &options("hf-folder", vec![peft.clone()])).is_ok());
        for bad in [
            options("m.gguf", vec![peft]),
            options("m.gguf", vec![adapter("a"), adapter("a")]),
            options("m.gguf", vec![adapter("a@b")]),
            options("m.gguf", vec![adapter("")]),
            options("hf-folder", vec![adapter("a")]),
            EngineOptions {
                runtime: Runtime::MistralRs,
                ..options("m.gguf", vec![adapter("a")])
            },
        ] {
            assert!(check_adapters("m", &bad).is_err(), "{:?}", bad.adapters);
        }
    }

    #[test]
    fn a_safetensors_model_serves_adapters_as_models_with_them_merged() {
        let peft = |id: &str, scale| AdapterOptions {
            id: id.into(),
            path: format!("{id}-peft").into(),
            scale,
        };
        let options = EngineOptions {
            path: "hf-folder".into(),
            adapters: vec![peft("a", 1.0), peft("b", 0.5)],
            ..EngineOptions::default()
        };
        let spec = Arc::new(Spec::new("hf".into(), vec![], options));
        let choice = |id: &str, scale| AdapterChoice {
            id: id.into(),
            scale,
        };
        let mut asked = Some(vec![choice("b", None), choice("a", Some(2.0))]);
        let merged = spec.clone().serving(&mut asked).unwrap();
        assert_eq!(asked, None, "the merged model runs the request as it is");
        assert_eq!(merged.id, "hf@a*2,b");
        assert!(merged.options.merge_adapters);
        let scales: Vec<f32> = merged.options.adapters.iter().map(|a| a.scale).collect();
        assert_eq!(scales, [2.0, 0.5]);
        // Scale 0 is the base itself; an unknown adapter is the request's fault.
        let mut zero = Some(vec![choice("a", Some(0.0))]);
        assert!(Arc::ptr_eq(
            &spec.clone().serving(&mut zero).unwrap(),
            &spec
        ));
        assert!(spec
            .clone()
            .serving(&mut Some(vec![choice("c", None)]))
            .is_err());
        // A GGUF model switches adapters per request: itself, adapters kept.
        let gguf = Arc::new(Spec::new(
            "m".into(),
            vec![],
            EngineOptions {
                path: "m.gguf".into(),
                adapters: vec![peft("a", 1.0)],
                ..EngineOptions::default()
            },
        ));
        let mut asked = Some(vec![choice("a", None)]);
        assert!(Arc::ptr_eq(
            &gguf.clone().serving(&mut asked).unwrap(),
            &gguf
        ));
        assert!(asked.is_some());
    }
}
