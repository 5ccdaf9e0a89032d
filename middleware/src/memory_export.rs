//! A tenant's stored exchanges as OpenAI chat fine-tuning JSONL
//! (`{"messages": [...]}` a line), read from the store a page at a time, so
//! that any number of rows exports in constant memory, bar the set of
//! 8-byte hashes near-duplicate removal keeps (about 40 bytes a distinct
//! exchange with the set's overhead).

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use ferrite_openapi::memory::{Memory, TrainingExample, TrainingMessage};
use futures::stream::BoxStream;
use futures::StreamExt;

use crate::memory_store::{ExportFilter, MemoryStore, StoreError};

/// Rows read per query.
pub const PAGE: usize = 500;

/// The memories `filter` takes, oldest first, a page per item.
pub fn pages(
    store: Arc<dyn MemoryStore>,
    tenant: String,
    filter: ExportFilter,
) -> BoxStream<'static, Result<Vec<Memory>, StoreError>> {
    async_stream::try_stream! {
        let mut after = 0;
        loop {
            let page = store.export_page(&tenant, &filter, after, PAGE).await?;
            let full = page.len() == PAGE;
            let Some(last) = page.last() else { break };
            after = last.id;
            yield page;
            if !full {
                break;
            }
        }
    }
    .boxed()
}

/// JSONL text, a page of lines per item, oldest exchange first.
pub fn jsonl(
    store: Arc<dyn MemoryStore>,
    tenant: String,
    filter: ExportFilter,
    dedupe: bool,
) -> BoxStream<'static, Result<String, StoreError>> {
    let mut pages = pages(store, tenant, filter);
    async_stream::try_stream! {
        let mut seen = HashSet::new();
        while let Some(page) = pages.next().await {
            let page = page?;
            let mut lines = String::new();
            for m in &page {
                if m.prompt.trim().is_empty() || m.answer.trim().is_empty() {
                    continue;
                }
                if dedupe && !seen.insert(fingerprint(m)) {
                    continue;
                }
                // Strings and a fixed shape: serializing cannot fail.
                if let Ok(line) = serde_json::to_string(&example(m)) {
                    lines.push_str(&line);
                    lines.push('\n');
                }
            }
            if !lines.is_empty() {
                yield lines;
            }
        }
    }
    .boxed()
}

fn example(m: &Memory) -> TrainingExample {
    let message = |role: &str, content: &str| TrainingMessage {
        role: role.into(),
        content: content.into(),
    };
    TrainingExample {
        messages: vec![message("user", &m.prompt), message("assistant", &m.answer)],
    }
}

/// Near duplicates hash alike: case, punctuation and spacing are ignored.
fn fingerprint(m: &Memory) -> u64 {
    let mut h = DefaultHasher::new();
    for text in [&m.prompt, &m.answer] {
        for word in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            word.to_lowercase().hash(&mut h);
        }
        0xffu8.hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory_store::{NewMemory, SqliteStore};

    #[tokio::test]
    async fn pages_filters_and_near_duplicates() {
        let dir = std::env::temp_dir().join(format!("ferrite-export-{}", uuid::Uuid::new_v4()));
        let store = Arc::new(
            SqliteStore::open(&dir.join("m.db"), std::time::Duration::from_secs(5)).unwrap(),
        );
        // More than a page, every third a near duplicate of the one before.
        for i in 0..(PAGE + 100) {
            let n = if i % 3 == 2 { i - 1 } else { i };
            let prompt = if i % 3 == 2 {
                format!("WHAT is {n}?!")
            } else {
                format!("What is {n}?")
            };
            let id = store
                .insert(NewMemory {
                    tenant: "t".into(),
                    conversation: Some(format!("c{}", i % 2)),
                    model: "m".into(),
                    prompt,
                    answer: format!("It is {n}."),
                    prompt_tokens: 1,
                    completion_tokens: 1,
                    embedding: None,
                })
                .await
                .unwrap();
            store
                .rate("t", id, (i % 10) as f64 / 10.0, None)
                .await
                .unwrap();
        }
        let read = |filter: ExportFilter, dedupe: bool| {
            let s = store.clone();
            async move {
                let text: Vec<String> = jsonl(s, "t".into(), filter, dedupe)
                    .map(|r| r.unwrap())
                    .collect()
                    .await;
                text.concat()
                    .lines()
                    .map(|l| serde_json::from_str::<TrainingExample>(l).unwrap())
                    .collect::<Vec<_>>()
            }
        };
        let all = read(ExportFilter::default(), false).await;
        assert_eq!(all.len(), PAGE + 100);
        assert_eq!(all[0].messages[0].content, "What is 0?");
        assert_eq!(all[0].messages[1].role, "assistant");
        let distinct = read(ExportFilter::default(), true).await;
        assert_eq!(distinct.len(), PAGE + 100 - (PAGE + 100) / 3);
        let good = ExportFilter {
            min_score: Some(0.8),
            ..ExportFilter::default()
        };
        assert_eq!(read(good, false).await.len(), (PAGE + 100) / 10 * 2);
        let one = ExportFilter {
            conversation: Some("c1".into()),
            ..ExportFilter::default()
        };
        assert_eq!(read(one, false).await.len(), (PAGE + 100) / 2);
        let later = ExportFilter {
            since: Some(crate::memory_store::now() + 60),
            ..ExportFilter::default()
        };
        assert!(read(later, false).await.is_empty());
        // Another tenant's export is empty.
        assert_eq!(
            jsonl(store.clone(), "u".into(), ExportFilter::default(), true)
                .count()
                .await,
            0
        );
    }
}
