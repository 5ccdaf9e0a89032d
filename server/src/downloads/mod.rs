//! Getting models from the Hugging Face Hub as LM Studio users do: a repo
//! (or a link, or search words) and a quantization become a job that
//! fetches its files into `<models dir>/<owner>/<repo>/`, where LM Studio
//! keeps them too, and the registry lists the model once it is complete.
//! Jobs run side by side; each can be cancelled; each reports bytes, speed
//! and time left.
//!
//! # Layout
//! - `hub.rs`: the Hub's HTTP API (tree, search, resolve), its refusals in
//!   plain words.
//! - `pick.rs`: the files a quantization tag means (split parts, projector).
//! - `fetch.rs`: one file: resume, verify, install or leave nothing.
//! - `dedupe.rs`: a file already on disk with the same sha256, hard-linked.
//! - `mod.rs`: `[downloads]`, what a request names, the jobs.

mod dedupe;
mod fetch;
mod hub;
mod pick;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use ferrite_openapi::downloads::{DownloadOption, DownloadOptions, DownloadStatus, SearchHit};
use ferrite_openapi::{ApiError, ApiResult, ErrorCode};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::downloads::DownloadConfig;

use fetch::{FetchError, Progress};
pub use hub::RepoId;
use hub::{Hub, HubError};
use pick::Choice;

/// What a request names: a repo at a revision, a quantization or a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub repo: RepoId,
    pub revision: String,
    pub quantization: Option<String>,
    /// A link to one file names it (its split siblings come with it).
    pub file: Option<String>,
}

impl Wanted {
    /// `owner/repo`, `owner/repo:Q4_K_M` (llama-server), `owner/repo@q4_k_m`
    /// (`lms get`), `hf.co/owner/repo:Q4_K_M` (Ollama), or a link to the
    /// repo or one of its files. `quantization` wins over a tag.
    pub fn parse(model: &str, quantization: Option<&str>) -> ApiResult<Self> {
        let bad = || {
            ApiError::invalid(
                "model",
                format!("`{model}` is not a Hugging Face repo (`owner/repo`, optionally `:QUANT`) or a link to one."),
            )
        };
        let model = model.trim();
        let (path, linked) = match url::Url::parse(model) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {
                (url.path().trim_matches('/').to_string(), true)
            }
            _ => {
                let bare = ["hf.co/", "huggingface.co/"]
                    .iter()
                    .find_map(|p| model.strip_prefix(p))
                    .unwrap_or(model);
                (bare.to_string(), false)
            }
        };
        let mut parts = path.split('/');
        let owner = parts.next().ok_or_else(bad)?;
        let rest = parts.next().ok_or_else(bad)?;
        let (name, tag) = match rest.split_once([':', '@']) {
            Some((name, tag)) if !linked => (name, Some(tag.to_string())),
            _ => (rest, None),
        };
        let repo = RepoId::parse(&format!("{owner}/{name}")).ok_or_else(bad)?;
        let (mut revision, mut file) = ("main".to_string(), None);
        match (parts.next(), linked) {
            (None, _) => {}
            (Some("tree"), true) => {
                revision = parts.next().unwrap_or("main").to_string();
            }
            (Some("blob" | "resolve"), true) => {
                revision = parts.next().ok_or_else(bad)?.to_string();
                let path: Vec<&str> = parts.collect();
                file = Some(path.join("/")).filter(|p| !p.is_empty());
            }
            _ => return Err(bad()),
        }
        Ok(Self {
            repo,
            revision,
            quantization: quantization.map(String::from).or(tag),
            file,
        })
    }
}

/// A job's state.
#[derive(Debug, Clone)]
enum State {
    Downloading,
    Completed { at: SystemTime, key: Option<String> },
    Failed(String),
}

/// One download: a model's files, fetched one after another.
pub struct Job {
    pub id: String,
    pub repo: RepoId,
    pub quantization: String,
    pub total: u64,
    /// The model's first file, where it will be.
    pub path: PathBuf,
    started: SystemTime,
    progress: Progress,
    /// The repo's commit the files came from (`X-Repo-Commit`).
    commit: Mutex<Option<String>>,
    state: Mutex<State>,
    cancel: CancellationToken,
    speed: Mutex<Speed>,
}

/// Bytes a second, smoothed over the last seconds.
struct Speed {
    at: Instant,
    bytes: u64,
    rate: f64,
}

impl Job {
    pub fn downloaded(&self) -> u64 {
        self.progress.bytes.load(Ordering::Relaxed)
    }

    pub fn is_running(&self) -> bool {
        matches!(*self.state.lock(), State::Downloading)
    }

    /// Bytes a second now (updated at most four times a second).
    pub fn bytes_per_second(&self) -> f64 {
        let now = Instant::now();
        let bytes = self.downloaded();
        let mut s = self.speed.lock();
        let dt = now.duration_since(s.at).as_secs_f64();
        if dt >= 0.25 {
            let instant = bytes.saturating_sub(s.bytes) as f64 / dt;
            s.rate = if s.rate == 0.0 {
                instant
            } else {
                0.7 * s.rate + 0.3 * instant
            };
            s.at = now;
            s.bytes = bytes;
        }
        s.rate
    }

    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// LM Studio's status object.
    pub fn status(&self) -> DownloadStatus {
        let downloaded = self.downloaded();
        let mut status = DownloadStatus {
            job_id: Some(self.id.clone()),
            total_size_bytes: Some(self.total),
            downloaded_bytes: Some(downloaded),
            started_at: Some(iso(self.started)),
            model: Some(self.repo.to_string()),
            quantization: Some(self.quantization.clone()),
            path: Some(self.path.display().to_string()),
            fetched_bytes: Some(self.progress.fetched.load(Ordering::Relaxed)),
            commit: self.commit.lock().clone(),
            ..DownloadStatus::default()
        };
        match self.state.lock().clone() {
            State::Downloading => {
                let rate = self.bytes_per_second();
                status.status = "downloading".into();
                status.bytes_per_second = Some(rate);
                if rate > 0.0 {
                    let left = self.total.saturating_sub(downloaded) as f64 / rate;
                    let eta = SystemTime::now() + Duration::from_secs_f64(left.min(1e9));
                    status.estimated_completion = Some(iso(eta));
                }
            }
            State::Completed { at, key } => {
                status.status = "completed".into();
                status.completed_at = Some(iso(at));
                status.model_key = key;
            }
            State::Failed(why) => {
                status.status = "failed".into();
                status.error = Some(why);
            }
        }
        status
    }
}

fn iso(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// What starting a download gave.
pub enum Started {
    Job(Arc<Job>),
    /// Every file is in place already: the model's path.
    Already(PathBuf),
}

/// The download manager: the Hub, the jobs, the hashes seen.
pub struct Downloads {
    hub: Hub,
    dir: Option<PathBuf>,
    hf_cache: Option<PathBuf>,
    stall: Duration,
    jobs: Mutex<Vec<Arc<Job>>>,
    hashes: Arc<dedupe::Hashes>,
}

/// Finished jobs kept for their status.
const KEPT: usize = 256;

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        let (status, code) = match &e {
            HubError::Gated(_) | HubError::Unauthorized => (403, ErrorCode::GatedRepo),
            HubError::RepoNotFound(_)
            | HubError::EntryNotFound { .. }
            | HubError::RevisionNotFound { .. } => (404, ErrorCode::NotFound),
            _ => (502, ErrorCode::UpstreamUnavailable),
        };
        let kind = if status == 502 {
            "server_error"
        } else {
            "invalid_request_error"
        };
        ApiError::new(status, kind, e.to_string())
            .with_param("model")
            .with_code(code)
    }
}

impl Downloads {
    /// `models_dir`: the registry's, unless `[downloads]` names another.
    pub fn new(config: &DownloadConfig, models_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        Ok(Self {
            hub: Hub::new(&config.endpoint(), config.token())?,
            dir: config.dir.clone().or(models_dir),
            hf_cache: config.hf_cache(),
            stall: Duration::from_secs(config.stall_secs.max(1)),
            jobs: Mutex::new(Vec::new()),
            hashes: Arc::default(),
        })
    }

    fn dir(&self) -> ApiResult<&Path> {
        self.dir.as_deref().ok_or_else(|| {
            ApiError::unavailable("No models directory: set registry.dir or downloads.dir.")
        })
    }

    /// Repos matching `words`, GGUF ones first.
    pub async fn search(&self, words: &str, limit: usize) -> ApiResult<Vec<SearchHit>> {
        let hits = self.hub.search(words, limit).await?;
        Ok(hits
            .into_iter()
            .map(|h| SearchHit {
                id: h.id,
                downloads: h.downloads,
                likes: h.likes,
                gguf: h.gguf,
            })
            .collect())
    }

    /// What `wanted`'s repo offers.
    pub async fn choices(&self, wanted: &Wanted) -> ApiResult<Vec<Choice>> {
        let files = self.hub.files(&wanted.repo, &wanted.revision).await?;
        let choices = pick::options(&files);
        if choices.is_empty() {
            return Err(not_offered(
                "model",
                format!(
                    "`{}` has no GGUF model files; ferrite downloads GGUF models.",
                    wanted.repo
                ),
            ));
        }
        Ok(choices)
    }

    /// The quantizations `wanted`'s repo offers, as the API lists them.
    pub async fn options(&self, wanted: &Wanted) -> ApiResult<DownloadOptions> {
        let choices = self.choices(wanted).await?;
        Ok(DownloadOptions {
            model: wanted.repo.to_string(),
            options: choices
                .iter()
                .map(|c| DownloadOption {
                    quantization: c.quantization.clone(),
                    size_bytes: c.size(),
                    files: c.all().map(|f| f.path.clone()).collect(),
                    recommended: c.recommended,
                })
                .collect(),
        })
    }

    /// The choice `wanted` means.
    pub async fn choose(&self, wanted: &Wanted) -> ApiResult<Choice> {
        let choices = self.choices(wanted).await?;
        let chosen = match &wanted.file {
            Some(file) => choices
                .iter()
                .find(|c| c.files.iter().any(|f| &f.path == file))
                .cloned(),
            None => pick::pick(&choices, wanted.quantization.as_deref()),
        };
        chosen.ok_or_else(|| {
            let offered: Vec<&str> = choices.iter().map(|c| c.quantization.as_str()).collect();
            let asked = wanted
                .file
                .clone()
                .or_else(|| wanted.quantization.clone())
                .unwrap_or_default();
            not_offered(
                "quantization",
                format!(
                    "`{}` has no `{asked}`; it offers {}.",
                    wanted.repo,
                    offered.join(", ")
                ),
            )
        })
    }

    /// Each file's place: `<dir>/<owner>/<repo>/<file name>`. A name from
    /// the Hub is used only when it is a plain GGUF file name.
    fn targets(&self, repo: &RepoId, choice: &Choice) -> ApiResult<Vec<PathBuf>> {
        let folder = self.dir()?.join(&repo.owner).join(&repo.name);
        choice
            .all()
            .map(|f| {
                let name = f.path.rsplit('/').next().unwrap_or_default();
                let plain = !name.starts_with('.')
                    && name.to_ascii_lowercase().ends_with(".gguf")
                    && !name.contains(['\\', '\0'])
                    && name.len() <= 255;
                match plain {
                    true => Ok(folder.join(name)),
                    false => Err(ApiError::invalid(
                        "model",
                        format!(
                            "`{repo}` names a file ferrite will not write: `{}`.",
                            f.path
                        ),
                    )),
                }
            })
            .collect()
    }

    /// Starts fetching `choice` of `wanted`, or says every file is there
    /// already; the same files asked for again join the running job.
    pub async fn start(
        self: &Arc<Self>,
        wanted: &Wanted,
        choice: Choice,
        key_of: KeyOf,
    ) -> ApiResult<Started> {
        let targets = self.targets(&wanted.repo, &choice)?;
        let first = targets[0].clone();
        if let Some(job) = self
            .jobs
            .lock()
            .iter()
            .find(|j| j.path == first && j.is_running())
        {
            return Ok(Started::Job(job.clone()));
        }
        let folder = first.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = self.dir()?.to_path_buf();
        let sizes: Vec<u64> = choice.all().map(|f| f.size).collect();
        let check = targets.clone();
        let already = tokio::task::spawn_blocking(move || -> std::io::Result<bool> {
            std::fs::create_dir_all(&folder)?;
            // Nothing is written through a link out of the models folder.
            let (root, real) = (dir.canonicalize()?, folder.canonicalize()?);
            if !real.starts_with(&root) {
                return Err(std::io::Error::other(
                    "the model's folder leads outside the models directory",
                ));
            }
            Ok(check.iter().zip(&sizes).all(|(t, &size)| {
                std::fs::metadata(t).is_ok_and(|m| m.is_file() && m.len() == size)
            }))
        })
        .await
        .map_err(|e| ApiError::internal(format!("Preparing the download failed: {e}")))?
        .map_err(|e| ApiError::internal(format!("Cannot prepare the models folder: {e}")))?;
        if already {
            metrics::counter!("ferrite:downloads_total", "outcome" => "already_downloaded")
                .increment(1);
            return Ok(Started::Already(first));
        }
        let job = Arc::new(Job {
            id: format!("job_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]),
            repo: wanted.repo.clone(),
            quantization: choice.quantization.clone(),
            total: choice.size(),
            path: first,
            started: SystemTime::now(),
            progress: Progress {
                bytes: Arc::new(AtomicU64::new(0)),
                fetched: Arc::new(AtomicU64::new(0)),
            },
            commit: Mutex::new(None),
            state: Mutex::new(State::Downloading),
            cancel: CancellationToken::new(),
            speed: Mutex::new(Speed {
                at: Instant::now(),
                bytes: 0,
                rate: 0.0,
            }),
        });
        {
            let mut jobs = self.jobs.lock();
            if jobs.len() >= KEPT {
                if let Some(i) = jobs.iter().position(|j| !j.is_running()) {
                    jobs.remove(i);
                }
            }
            jobs.push(job.clone());
        }
        info!(job = %job.id, model = %job.repo, quantization = %job.quantization, bytes = job.total, "download started");
        let this = self.clone();
        let (run, revision) = (job.clone(), wanted.revision.clone());
        tokio::spawn(async move {
            let outcome = this.run(&run, &revision, &choice, &targets).await;
            let state = match outcome {
                Ok(()) => {
                    let key = key_of(run.path.clone()).await;
                    let commit = run.commit.lock().clone();
                    info!(job = %run.id, model = %run.repo, key = key.as_deref().unwrap_or("-"), commit = commit.as_deref().unwrap_or("-"), "download completed");
                    metrics::counter!("ferrite:downloads_total", "outcome" => "completed")
                        .increment(1);
                    State::Completed {
                        at: SystemTime::now(),
                        key,
                    }
                }
                Err(e) => {
                    let outcome = match e {
                        FetchError::Cancelled => "cancelled",
                        _ => "failed",
                    };
                    warn!(job = %run.id, model = %run.repo, "download {outcome}: {e}");
                    metrics::counter!("ferrite:downloads_total", "outcome" => outcome).increment(1);
                    State::Failed(e.to_string())
                }
            };
            *run.state.lock() = state;
        });
        Ok(Started::Job(job))
    }

    async fn run(
        &self,
        job: &Job,
        revision: &str,
        choice: &Choice,
        targets: &[PathBuf],
    ) -> Result<(), FetchError> {
        for (file, target) in choice.all().zip(targets) {
            if job.cancel.is_cancelled() {
                return Err(FetchError::Cancelled);
            }
            let present = tokio::fs::metadata(target)
                .await
                .is_ok_and(|m| m.len() == file.size);
            if present {
                job.progress.bytes.fetch_add(file.size, Ordering::Relaxed);
                continue;
            }
            let resolved = self.hub.resolve(&job.repo, revision, &file.path).await?;
            if let Some(commit) = &resolved.commit {
                job.commit.lock().get_or_insert_with(|| commit.clone());
            }
            let sha256 = resolved.sha256.clone().or_else(|| file.sha256.clone());
            if let Some(sha) = &sha256 {
                if self.link_existing(sha, file.size, target).await {
                    info!(job = %job.id, file = %file.path, "linked a file already on disk");
                    job.progress.bytes.fetch_add(file.size, Ordering::Relaxed);
                    continue;
                }
            }
            let resolved = hub::Resolved {
                sha256: sha256.clone(),
                size: resolved.size.or(Some(file.size)),
                ..resolved
            };
            fetch::fetch(
                &self.hub,
                &resolved,
                target,
                &job.progress,
                &job.cancel,
                self.stall,
            )
            .await?;
            if let Some(sha) = sha256 {
                self.hashes.remember(target, &sha);
            }
        }
        Ok(())
    }

    /// Hard-links a file with `sha256` already on disk to `target`.
    async fn link_existing(&self, sha256: &str, size: u64, target: &Path) -> bool {
        let (Some(dir), hashes) = (self.dir.clone(), self.hashes.clone()) else {
            return false;
        };
        let (cache, sha, target) = (
            self.hf_cache.clone(),
            sha256.to_string(),
            target.to_path_buf(),
        );
        tokio::task::spawn_blocking(move || {
            let source = hashes.find(&sha, size, &dir, cache.as_deref())?;
            (source != target && dedupe::link(&source, &target)).then_some(())
        })
        .await
        .ok()
        .flatten()
        .is_some()
    }

    pub fn job(&self, id: &str) -> Option<Arc<Job>> {
        self.jobs.lock().iter().find(|j| j.id == id).cloned()
    }
}

/// 404: the repo has no such model.
fn not_offered(param: &str, message: String) -> ApiError {
    ApiError::new(404, "invalid_request_error", message)
        .with_param(param)
        .with_code(ErrorCode::NotFound)
}

/// The key the registry gives a model file, once it is in place.
pub type KeyOf =
    Arc<dyn Fn(PathBuf) -> futures::future::BoxFuture<'static, Option<String>> + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_links_and_tags() {
        let w = Wanted::parse("bartowski/SmolLM2-GGUF:q4_k_m", None).unwrap();
        assert_eq!(w.repo.to_string(), "bartowski/SmolLM2-GGUF");
        assert_eq!(w.quantization.as_deref(), Some("q4_k_m"));
        let w = Wanted::parse("owner/repo@Q8_0", Some("Q4_0")).unwrap();
        assert_eq!(w.quantization.as_deref(), Some("Q4_0"));
        let w = Wanted::parse("hf.co/owner/repo:IQ4_XS", None).unwrap();
        assert_eq!(
            (w.repo.owner.as_str(), w.quantization.as_deref()),
            ("owner", Some("IQ4_XS"))
        );
        let w = Wanted::parse("https://huggingface.co/owner/repo", None).unwrap();
        assert_eq!((w.revision.as_str(), w.file), ("main", None));
        let w = Wanted::parse(
            "https://huggingface.co/owner/repo/blob/v2/sub/m-Q8_0.gguf?download=true",
            None,
        )
        .unwrap();
        assert_eq!(w.revision, "v2");
        assert_eq!(w.file.as_deref(), Some("sub/m-Q8_0.gguf"));
        for bad in [
            "repo",
            "../x/y",
            "owner/../y",
            "https://huggingface.co/owner",
            "a/b/c",
        ] {
            assert!(Wanted::parse(bad, None).is_err(), "{bad}");
        }
    }
}
