//! The HTTP client behind the `lms`-like commands: they talk to a running
//! server, wherever it runs.

use anyhow::{anyhow, bail, Context};
use clap::Args;
use futures::stream::{BoxStream, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::client::sse_read;

#[derive(Args, Clone)]
pub struct Remote {
    /// The server to talk to.
    #[arg(long, env = "FERRITE_URL", default_value = "http://127.0.0.1:1234")]
    pub url: String,
    /// Bearer token, when the server requires one.
    #[arg(long, env = "FERRITE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

pub use crate::client::sse_read::Event;

pub struct Client {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl Client {
    pub fn new(remote: &Remote) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: remote.url.trim_end_matches('/').to_string(),
            key: remote.api_key.clone(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.key {
            Some(key) => r.bearer_auth(key),
            None => r,
        }
    }

    async fn send(&self, r: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let resp = r.send().await.map_err(|e| {
            if e.is_connect() {
                anyhow!(
                    "no server answers at {} (start one with `ferrite server start`)",
                    self.base
                )
            } else {
                anyhow!(e)
            }
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or_default();
        match body["error"]["message"].as_str() {
            Some(m) => bail!("{m} ({status})"),
            None => bail!("the server answered {status}"),
        }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let resp = self.send(self.request(reqwest::Method::GET, path)).await?;
        resp.json().await.context("reading the server's answer")
    }

    /// GETs `path` with `query`; the body is the caller's to read.
    pub async fn get_raw(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<reqwest::Response> {
        self.send(self.request(reqwest::Method::GET, path).query(query))
            .await
    }

    /// GETs `path` with `query` and reads the JSON answer.
    pub async fn get_query<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        let resp = self.get_raw(path, query).await?;
        resp.json().await.context("reading the server's answer")
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        let resp = self
            .send(self.request(reqwest::Method::DELETE, path))
            .await?;
        resp.json().await.context("reading the server's answer")
    }

    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> anyhow::Result<T> {
        let resp = self
            .send(self.request(reqwest::Method::POST, path).json(body))
            .await?;
        resp.json().await.context("reading the server's answer")
    }

    /// POSTs `body` and reads the answer as server-sent events.
    pub async fn events(
        &self,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<BoxStream<'static, anyhow::Result<Event>>> {
        let resp = self
            .send(self.request(reqwest::Method::POST, path).json(body))
            .await?;
        let events = sse_read::events(resp.bytes_stream()).map(|e| e.map_err(anyhow::Error::from));
        Ok(events.boxed())
    }
}

/// `1.2 GB`, `138 MB`.
pub fn size(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..=999_999 => format!("{:.0} KB", b / 1e3),
        1_000_000..=999_999_999 => format!("{:.0} MB", b / 1e6),
        _ => format!("{:.2} GB", b / 1e9),
    }
}

/// `45s`, `12m 03s`, `2h 05m`.
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(duration(725.0), "12m 05s");
        assert_eq!(size(138_000_000), "138 MB");
    }
}
