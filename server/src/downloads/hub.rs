//! The Hugging Face Hub's HTTP API, as `huggingface_hub` speaks it: a
//! repo's files (the tree API, page by page), model search, and a file's
//! `resolve` URL read without following its redirect, so that its sha256
//! (`X-Linked-Etag`) and commit (`X-Repo-Commit`) are known before the body
//! is fetched from wherever the redirect points. The token goes to the Hub
//! only, never to the host that serves the bodies.

use std::time::Duration;

use reqwest::header::{HeaderMap, AUTHORIZATION, ETAG, LOCATION, RANGE};
use reqwest::{Client, RequestBuilder, Response, StatusCode, Url};
use serde::Deserialize;

/// Why the Hub said no, in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("`{0}` is gated: accept its terms on its Hugging Face page, then give ferrite a token (HF_TOKEN or downloads.token).")]
    Gated(String),
    #[error("`{0}` does not exist on the Hub, or it is private (a private repo needs HF_TOKEN).")]
    RepoNotFound(String),
    #[error("`{repo}` has no file `{path}`.")]
    EntryNotFound { repo: String, path: String },
    #[error("`{repo}` has no revision `{revision}`.")]
    RevisionNotFound { repo: String, revision: String },
    #[error("The Hub refused the token (401); check HF_TOKEN.")]
    Unauthorized,
    #[error("The Hub answered {status} for {what}: {message}")]
    Status {
        status: u16,
        what: String,
        message: String,
    },
    #[error("Cannot reach the Hub at {endpoint}: {source}")]
    Network {
        endpoint: String,
        source: reqwest::Error,
    },
    #[error("The Hub sent something ferrite cannot read ({0}).")]
    Protocol(String),
}

/// A repo named `owner/name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoId {
    pub owner: String,
    pub name: String,
}

impl std::fmt::Display for RepoId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

impl RepoId {
    /// `owner/name` with the Hub's characters only: letters, digits, `-`,
    /// `_`, `.`, and no `..`: both parts become folder names.
    pub fn parse(text: &str) -> Option<Self> {
        let (owner, name) = text.split_once('/')?;
        let valid = |s: &str| {
            !s.is_empty()
                && s.len() <= 96
                && !s.starts_with('.')
                && !s.contains("..")
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        (valid(owner) && valid(name)).then(|| Self {
            owner: owner.to_string(),
            name: name.to_string(),
        })
    }
}

/// One file of a repo, as the tree API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoFile {
    pub path: String,
    pub size: u64,
    /// The sha256 of an LFS file's content.
    pub sha256: Option<String>,
}

/// A model the search found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Hit {
    pub id: String,
    pub downloads: u64,
    pub likes: u64,
    pub gguf: bool,
}

/// Where a file's body is, and what it must be.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub url: Url,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    pub commit: Option<String>,
}

#[derive(Deserialize)]
struct TreeEntry {
    #[serde(rename = "type")]
    kind: String,
    path: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    lfs: Option<Lfs>,
}

#[derive(Deserialize)]
struct Lfs {
    oid: String,
    #[serde(default)]
    size: Option<u64>,
}

#[derive(Deserialize)]
struct SearchEntry {
    // The Hub sends `modelId` too, the same.
    id: String,
    #[serde(default)]
    downloads: u64,
    #[serde(default)]
    likes: u64,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Clone)]
pub struct Hub {
    client: Client,
    endpoint: Url,
    token: Option<String>,
}

/// Time to connect and to wait for an answer's head.
const CONNECT: Duration = Duration::from_secs(15);

impl Hub {
    pub fn new(endpoint: &str, token: Option<String>) -> anyhow::Result<Self> {
        let mut endpoint = Url::parse(endpoint)
            .map_err(|e| anyhow::anyhow!("downloads.endpoint `{endpoint}` is not a URL: {e}"))?;
        if !endpoint.path().ends_with('/') {
            endpoint.set_path(&format!("{}/", endpoint.path()));
        }
        let client = Client::builder()
            .user_agent(concat!("ferrite/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT)
            // Redirects are followed by hand: the first answer's headers
            // carry the checksum, and the token stays with the Hub.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            client,
            endpoint,
            token: token.filter(|t| !t.trim().is_empty()),
        })
    }

    fn url(&self, path: &str) -> Result<Url, HubError> {
        self.endpoint
            .join(path)
            .map_err(|e| HubError::Protocol(format!("bad URL {path}: {e}")))
    }

    /// A request to the Hub itself, with the token.
    fn hub(&self, builder: RequestBuilder) -> RequestBuilder {
        match &self.token {
            Some(token) => builder.header(AUTHORIZATION, format!("Bearer {token}")),
            None => builder,
        }
    }

    async fn send(&self, builder: RequestBuilder) -> Result<Response, HubError> {
        builder.send().await.map_err(|source| HubError::Network {
            endpoint: self.endpoint.to_string(),
            source,
        })
    }

    /// Every file of `repo` at `revision`, following the tree API's pages.
    pub async fn files(&self, repo: &RepoId, revision: &str) -> Result<Vec<RepoFile>, HubError> {
        let mut next = Some(self.url(&format!(
            "api/models/{repo}/tree/{}?recursive=true",
            encode(revision)
        ))?);
        let mut files = Vec::new();
        while let Some(url) = next.take() {
            let response = self.send(self.hub(self.client.get(url))).await?;
            let response = check(response, repo, None, revision).await?;
            next = next_page(response.headers(), &self.endpoint);
            let entries: Vec<TreeEntry> = response
                .json()
                .await
                .map_err(|e| HubError::Protocol(format!("the file list of {repo}: {e}")))?;
            files.extend(entries.into_iter().filter(|e| e.kind == "file").map(|e| {
                let (size, sha256) = match e.lfs {
                    Some(lfs) => (lfs.size.unwrap_or(e.size), Some(lfs.oid)),
                    None => (e.size, None),
                };
                RepoFile {
                    path: e.path,
                    size,
                    sha256,
                }
            }));
        }
        Ok(files)
    }

    /// Models matching `words`, GGUF repos first, most downloaded first.
    pub async fn search(&self, words: &str, limit: usize) -> Result<Vec<Hit>, HubError> {
        let mut url = self.url("api/models")?;
        url.query_pairs_mut()
            .append_pair("search", words)
            .append_pair("sort", "downloads")
            .append_pair("direction", "-1")
            .append_pair("limit", &limit.clamp(1, 100).to_string());
        let response = self.send(self.hub(self.client.get(url))).await?;
        if !response.status().is_success() {
            return Err(status_error(response, "the search").await);
        }
        let entries: Vec<SearchEntry> = response
            .json()
            .await
            .map_err(|e| HubError::Protocol(format!("the search results: {e}")))?;
        let mut hits: Vec<Hit> = entries
            .into_iter()
            .map(|e| Hit {
                gguf: e.tags.iter().any(|t| t.eq_ignore_ascii_case("gguf"))
                    || e.id.to_ascii_lowercase().contains("gguf"),
                id: e.id,
                downloads: e.downloads,
                likes: e.likes,
            })
            .collect();
        // Stable: the Hub's order (downloads) within each group.
        hits.sort_by_key(|h| !h.gguf);
        hits.truncate(limit);
        Ok(hits)
    }

    /// Where `path`'s body is and what it must hash to.
    pub async fn resolve(
        &self,
        repo: &RepoId,
        revision: &str,
        path: &str,
    ) -> Result<Resolved, HubError> {
        let url = self.url(&format!(
            "{repo}/resolve/{}/{}",
            encode(revision),
            path.split('/').map(encode).collect::<Vec<_>>().join("/")
        ))?;
        let response = self.send(self.hub(self.client.head(url.clone()))).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = |name: &str| {
            headers.get(name).and_then(|v| v.to_str().ok()).map(|v| {
                v.trim()
                    .trim_start_matches("W/")
                    .trim_matches('"')
                    .to_string()
            })
        };
        let number = |name: &str| text(name).and_then(|v| v.parse::<u64>().ok());
        let body = if status.is_redirection() {
            let location = text(LOCATION.as_str())
                .ok_or_else(|| HubError::Protocol("a redirect without Location".into()))?;
            url.join(&location)
                .map_err(|e| HubError::Protocol(format!("redirect to {location}: {e}")))?
        } else if status.is_success() {
            url
        } else {
            check(response, repo, Some(path), revision).await?;
            return Err(HubError::Protocol(format!("HEAD answered {status}")));
        };
        Ok(Resolved {
            url: body,
            // The linked size and etag describe an LFS file; a small file
            // in git has its own size and a git hash for an etag.
            size: number("x-linked-size").or_else(|| number("content-length")),
            sha256: text("x-linked-etag")
                .or_else(|| text(ETAG.as_str()))
                .filter(|e| is_sha256(e)),
            commit: text("x-repo-commit"),
        })
    }

    /// The body from byte `from` on; the token only when the body is on the
    /// Hub's own host. Redirects on the way (a CDN's own) are followed.
    pub async fn body(&self, resolved: &Resolved, from: u64) -> Result<Response, HubError> {
        let mut url = resolved.url.clone();
        for _ in 0..5 {
            let mut request = self.client.get(url.clone());
            if url.host_str() == self.endpoint.host_str() && url.port() == self.endpoint.port() {
                request = self.hub(request);
            }
            if from > 0 {
                request = request.header(RANGE, format!("bytes={from}-"));
            }
            let response = self.send(request).await?;
            if response.status().is_redirection() {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| HubError::Protocol("a redirect without Location".into()))?;
                url = url
                    .join(location)
                    .map_err(|e| HubError::Protocol(format!("redirect to {location}: {e}")))?;
                continue;
            }
            let ok = response.status().is_success()
                || response.status() == StatusCode::RANGE_NOT_SATISFIABLE;
            if !ok {
                return Err(status_error(response, "a file's body").await);
            }
            return Ok(response);
        }
        Err(HubError::Protocol("too many redirects".into()))
    }
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit())
}

fn encode(part: &str) -> String {
    url::form_urlencoded::byte_serialize(part.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The tree API's next page: `Link: <url>; rel="next"`.
fn next_page(headers: &HeaderMap, endpoint: &Url) -> Option<Url> {
    let link = headers.get("link")?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        next.then(|| endpoint.join(target).ok()).flatten()
    })
}

/// The Hub's refusal as a [`HubError`]: `X-Error-Code` says which.
async fn check(
    response: Response,
    repo: &RepoId,
    path: Option<&str>,
    revision: &str,
) -> Result<Response, HubError> {
    if response.status().is_success() {
        return Ok(response);
    }
    let code = response
        .headers()
        .get("x-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let status = response.status();
    Err(match code.as_str() {
        "GatedRepo" => HubError::Gated(repo.to_string()),
        "RepoNotFound" => HubError::RepoNotFound(repo.to_string()),
        "EntryNotFound" => HubError::EntryNotFound {
            repo: repo.to_string(),
            path: path.unwrap_or_default().to_string(),
        },
        "RevisionNotFound" => HubError::RevisionNotFound {
            repo: repo.to_string(),
            revision: revision.to_string(),
        },
        _ if status == StatusCode::UNAUTHORIZED => HubError::Unauthorized,
        _ if status == StatusCode::NOT_FOUND => match path {
            Some(path) => HubError::EntryNotFound {
                repo: repo.to_string(),
                path: path.to_string(),
            },
            None => HubError::RepoNotFound(repo.to_string()),
        },
        _ => return Err(status_error(response, &repo.to_string()).await),
    })
}

async fn status_error(response: Response, what: &str) -> HubError {
    let status = response.status().as_u16();
    let message = response
        .headers()
        .get("x-error-message")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let message = match message {
        Some(m) => m,
        None => response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect(),
    };
    HubError::Status {
        status,
        what: what.to_string(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_names_stay_inside_one_folder() {
        assert!(RepoId::parse("bartowski/SmolLM2-135M-Instruct-GGUF").is_some());
        for bad in [
            "a",
            "a/b/c",
            "../x",
            "a/..",
            "a/.hidden",
            "a/b c",
            "/a/b",
            "a/",
        ] {
            assert!(RepoId::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_next_page_comes_from_the_link_header() {
        let endpoint = Url::parse("http://hub.test/").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "link",
            "<http://hub.test/api/models/a/b/tree/main?cursor=xyz>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        let next = next_page(&headers, &endpoint).unwrap();
        assert_eq!(next.query(), Some("cursor=xyz"));
        assert!(next_page(&HeaderMap::new(), &endpoint).is_none());
    }
}
