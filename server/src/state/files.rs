//! LM Studio's `files` namespace: `uploadFileBase64` keeps a client's file
//! (an image to attach to a chat, `client.files.prepare_image`) and answers
//! with a handle; a chat history names it by `identifier` in a `file` part.
//! Files are held in memory per tenant (another tenant's identifier is
//! unknown to it), within a byte bound and an idle time, as LM Studio keeps
//! them in its own folder.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use ferrite_openapi::{ApiError, ApiResult};
use moka::sync::Cache;
use serde::Deserialize;
use serde_json::{json, Value};

/// Bytes of files kept for all clients together.
const KEPT_BYTES: u64 = 256 << 20;
/// A file unused this long is dropped.
const IDLE: Duration = Duration::from_secs(3600);

pub struct FileStore {
    files: Cache<(String, String), Arc<StoredFile>>,
}

pub struct StoredFile {
    pub bytes: Vec<u8>,
    /// `image`, or `unknown` for a file ferrite cannot attach (LM Studio's words).
    pub kind: &'static str,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Upload {
    name: String,
    content_base64: String,
}

impl Default for FileStore {
    fn default() -> Self {
        Self {
            files: Cache::builder()
                .max_capacity(KEPT_BYTES)
                .weigher(|_, f: &Arc<StoredFile>| u32::try_from(f.bytes.len()).unwrap_or(u32::MAX))
                .time_to_idle(IDLE)
                .build(),
        }
    }
}

impl FileStore {
    /// Keeps an upload of `tenant`'s; answers LM Studio's file handle
    /// fields. An image over `max_bytes` is refused.
    pub fn upload(&self, tenant: &str, upload: Upload, max_bytes: usize) -> ApiResult<Value> {
        if upload.content_base64.len() / 4 * 3 > max_bytes.saturating_add(3) {
            return Err(ApiError::invalid(
                "contentBase64",
                format!("The file is over {max_bytes} bytes (`limits.max_image_bytes`)."),
            ));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(upload.content_base64.trim())
            .map_err(|e| ApiError::invalid("contentBase64", format!("Invalid base64: {e}.")))?;
        let kind = if image::guess_format(&bytes).is_ok() {
            "image"
        } else {
            "unknown"
        };
        let identifier = format!(
            "{}-{}",
            uuid::Uuid::new_v4().simple(),
            sanitize(&upload.name)
        );
        let size = bytes.len();
        self.files.insert(
            (tenant.to_string(), identifier.clone()),
            Arc::new(StoredFile { bytes, kind }),
        );
        Ok(json!({ "identifier": identifier, "fileType": kind, "sizeBytes": size }))
    }

    /// A file of `tenant`'s as an image data URL, for a chat's image part.
    pub fn image_url(&self, tenant: &str, identifier: &str, param: &str) -> ApiResult<String> {
        let file = self
            .files
            .get(&(tenant.to_string(), identifier.to_string()))
            .ok_or_else(|| {
                ApiError::invalid(
                    param,
                    format!("No file `{identifier}`: prepare it with `files.prepareImage` first (files are kept for an hour)."),
                )
            })?;
        if file.kind != "image" {
            return Err(ApiError::unsupported(
                param,
                format!("The file `{identifier}` is not an image; ferrite attaches images only."),
            ));
        }
        let mime = image::guess_format(&file.bytes).map_or("image/png", |f| f.to_mime_type());
        let b64 = base64::engine::general_purpose::STANDARD.encode(&file.bytes);
        Ok(format!("data:{mime};base64,{b64}"))
    }
}

/// A file name's safe characters, for a readable identifier.
fn sanitize(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_see_only_their_own_images() {
        let store = FileStore::default();
        let png = [
            0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n', 0, 0, 0, 13,
        ];
        let upload = Upload {
            name: "a b.png".into(),
            content_base64: base64::engine::general_purpose::STANDARD.encode(png),
        };
        let handle = store.upload("alice", upload, 1 << 20).unwrap();
        assert_eq!(handle["fileType"], "image");
        let id = handle["identifier"].as_str().unwrap();
        assert!(id.ends_with("-ab.png"), "{id}");
        let url = store.image_url("alice", id, "p").unwrap();
        assert!(url.starts_with("data:image/png;base64,"), "{url}");
        assert_eq!(store.image_url("bob", id, "p").unwrap_err().status, 400);
        let text = Upload {
            name: "notes.txt".into(),
            content_base64: base64::engine::general_purpose::STANDARD.encode(b"hello"),
        };
        let handle = store.upload("alice", text, 1 << 20).unwrap();
        let id = handle["identifier"].as_str().unwrap();
        assert_eq!(store.image_url("alice", id, "p").unwrap_err().status, 400);
    }
}
