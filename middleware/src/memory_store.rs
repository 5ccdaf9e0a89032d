//! Where conversation memory lives: a small async trait, so that a shared
//! database (`memory_postgres`) can back several replicas, and its SQLite
//! implementation (one file, WAL, FTS5 full-text search ranked by bm25).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use ferrite_openapi::memory::{Feedback, Memory};
use rusqlite::{params, params_from_iter, Connection, ErrorCode};

use crate::embedder::{cosine, from_bytes, to_bytes};

/// An exchange to remember.
#[derive(Debug, Clone)]
pub struct NewMemory {
    pub tenant: String,
    pub conversation: Option<String>,
    pub model: String,
    pub prompt: String,
    pub answer: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// The prompt's embedding, when memory compares by meaning.
    pub embedding: Option<Vec<f32>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the memory store is locked by another writer")]
    Busy,
    #[error("memory store: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("memory store (PostgreSQL): {0}")]
    Postgres(String),
    #[error("memory store task failed: {0}")]
    Task(String),
}

/// The most recent memories whose embeddings a query is compared with.
const MEANING_CANDIDATES: usize = 5000;

/// Which exchanges an export takes.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    /// Only those scored at least this (unscored ones are left out).
    pub min_score: Option<f64>,
    /// Unix seconds: created at or after.
    pub since: Option<i64>,
    /// Unix seconds: created before.
    pub until: Option<i64>,
    pub conversation: Option<String>,
    /// Newest first: a page then lies below the id `after` (0: from the
    /// newest), so the latest N exchanges are one query.
    pub newest_first: bool,
}

impl ExportFilter {
    /// The id comparison, sort order and cursor of a page after `after`.
    pub(crate) fn direction(&self, after: i64) -> (&'static str, &'static str, i64) {
        match (self.newest_first, after) {
            (true, 0) => ("<", "DESC", i64::MAX),
            (true, _) => ("<", "DESC", after),
            (false, _) => (">", "ASC", after),
        }
    }
}

/// Every method is confined to one tenant: no call can reach another's rows.
#[async_trait]
pub trait MemoryStore: Send + Sync + 'static {
    async fn insert(&self, memory: NewMemory) -> Result<i64, StoreError>;
    /// The memories sharing words with `query`, best first (full text).
    async fn search_words(
        &self,
        tenant: &str,
        query: &str,
        limit: usize,
    ) -> Result<Vec<Memory>, StoreError>;
    /// The newest stored embeddings, at most `limit`.
    async fn embeddings(
        &self,
        tenant: &str,
        limit: usize,
    ) -> Result<Vec<(i64, Vec<f32>)>, StoreError>;
    async fn get_many(&self, tenant: &str, ids: &[i64]) -> Result<Vec<Memory>, StoreError>;

    /// The most relevant memories for `query`, best first: by words, and
    /// with `meaning` (the query's embedding) also by cosine similarity of
    /// at least `min_similarity`, the two rankings fused (reciprocal rank
    /// fusion), so that a paraphrase sharing no word is found.
    async fn search(
        &self,
        tenant: &str,
        query: &str,
        meaning: Option<(&[f32], f32)>,
        limit: usize,
    ) -> Result<Vec<Memory>, StoreError> {
        let words = self.search_words(tenant, query, limit).await?;
        let Some((q, min_similarity)) = meaning else {
            return Ok(words);
        };
        let mut near: Vec<(i64, f32)> = self
            .embeddings(tenant, MEANING_CANDIDATES)
            .await?
            .into_iter()
            .map(|(id, v)| (id, cosine(q, &v)))
            .filter(|(_, s)| *s >= min_similarity)
            .collect();
        near.sort_by(|a, b| b.1.total_cmp(&a.1));
        near.truncate(limit);
        let word_ids: Vec<i64> = words.iter().map(|m| m.id).collect();
        let near_ids: Vec<i64> = near.iter().map(|(id, _)| *id).collect();
        let order = fuse(&[&word_ids, &near_ids], limit);
        let missing: Vec<i64> = order
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| !word_ids.contains(id))
            .collect();
        let mut rows: HashMap<i64, Memory> = words.into_iter().map(|m| (m.id, m)).collect();
        for m in self.get_many(tenant, &missing).await? {
            rows.insert(m.id, m);
        }
        Ok(order
            .into_iter()
            .filter_map(|(id, score)| {
                rows.remove(&id).map(|mut m| {
                    m.score = Some(score);
                    m
                })
            })
            .collect())
    }
    /// Newest first, strictly older than `before` when given; and whether
    /// more follow.
    async fn list(
        &self,
        tenant: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<(Vec<Memory>, bool), StoreError>;
    /// Whether the memory existed (and was the tenant's).
    async fn delete(&self, tenant: &str, id: i64) -> Result<bool, StoreError>;
    async fn delete_all(&self, tenant: &str) -> Result<usize, StoreError>;
    /// Scores a memory (a new score replaces the old); the memory as it is
    /// now, or `None` when the tenant has no memory `id`.
    async fn rate(
        &self,
        tenant: &str,
        id: i64,
        score: f64,
        comment: Option<String>,
    ) -> Result<Option<Memory>, StoreError>;
    /// Oldest first, the memories after id `after` that `filter` takes, at
    /// most `limit`: an export reads a page at a time.
    async fn export_page(
        &self,
        tenant: &str,
        filter: &ExportFilter,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Memory>, StoreError>;
}

/// Columns added since the first schema, with their types.
const ADDED_COLUMNS: [(&str, &str); 4] = [
    ("embedding", "BLOB"),
    ("feedback", "REAL"),
    ("feedback_comment", "TEXT"),
    ("feedback_at", "INTEGER"),
];

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS memories (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    conversation TEXT,
    model TEXT NOT NULL,
    prompt TEXT NOT NULL,
    answer TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS memories_by_tenant ON memories (tenant, id);
CREATE VIRTUAL TABLE IF NOT EXISTS memories_fts USING fts5 (
    prompt, answer, content = 'memories', content_rowid = 'id',
    tokenize = 'porter unicode61'
);
CREATE TRIGGER IF NOT EXISTS memories_ai AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts (rowid, prompt, answer) VALUES (new.id, new.prompt, new.answer);
END;
CREATE TRIGGER IF NOT EXISTS memories_ad AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, prompt, answer)
    VALUES ('delete', old.id, old.prompt, old.answer);
END;
";

const COLUMNS: &str = "m.id, m.conversation, m.model, m.prompt, m.answer, \
                       m.prompt_tokens, m.completion_tokens, m.created_at, \
                       m.feedback, m.feedback_comment, m.feedback_at";

/// SQLite in WAL mode: readers never block the writer, and a killed process
/// loses no committed transaction (synchronous=FULL).
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    pub fn open(path: &Path, busy_timeout: Duration) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Task(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(busy_timeout)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        // Files from older versions lack the newer columns.
        for (name, kind) in ADDED_COLUMNS {
            let has = conn
                .prepare("SELECT 1 FROM pragma_table_info('memories') WHERE name = ?1")?
                .exists([name])?;
            if !has {
                conn.execute_batch(&format!("ALTER TABLE memories ADD COLUMN {name} {kind}"))?;
            }
        }
        conn.execute_batch(crate::response_store::SQLITE_SCHEMA)?;
        conn.execute_batch(crate::alias_store::SQLITE_SCHEMA)?;
        conn.execute_batch(crate::conversation_store::SQLITE_SCHEMA)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection off the async threads.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn
                .lock()
                .map_err(|_| StoreError::Task("connection lock poisoned".into()))?;
            f(&mut conn).map_err(|e| match e.sqlite_error_code() {
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy,
                _ => StoreError::Db(e),
            })
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Memory> {
    Ok(Memory {
        id: r.get(0)?,
        object: "memory".into(),
        conversation: r.get(1)?,
        model: r.get(2)?,
        prompt: r.get(3)?,
        answer: r.get(4)?,
        prompt_tokens: r.get(5)?,
        completion_tokens: r.get(6)?,
        created_at: r.get(7)?,
        score: None,
        feedback: r.get::<_, Option<f64>>(8)?.map(|score| Feedback {
            score,
            comment: r.get(9).ok().flatten(),
            created_at: r
                .get::<_, Option<i64>>(10)
                .ok()
                .flatten()
                .unwrap_or_default(),
        }),
    })
}

/// The text's distinct words (letters and digits only, lowercased, at
/// least two characters, at most 64), so that no user text is read as query
/// syntax by either store.
pub fn search_terms(text: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        let word = word.to_lowercase();
        if word.chars().count() >= 2 && !terms.contains(&word) {
            terms.push(word);
        }
        if terms.len() == 64 {
            break;
        }
    }
    terms
}

/// An FTS5 query matching any of the text's words, each quoted. `None` when
/// the text has no words.
pub fn fts_query(text: &str) -> Option<String> {
    let terms = search_terms(text);
    (!terms.is_empty()).then(|| {
        terms
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(" OR ")
    })
}

/// Reciprocal rank fusion: each ranking gives an id 1/(60 + rank); the
/// best `limit` ids by their sum (newer first on ties).
pub fn fuse(rankings: &[&[i64]], limit: usize) -> Vec<(i64, f64)> {
    let mut sums: HashMap<i64, f64> = HashMap::new();
    for ranking in rankings {
        for (rank, id) in ranking.iter().enumerate() {
            *sums.entry(*id).or_default() += 1.0 / (60.0 + rank as f64);
        }
    }
    let mut order: Vec<(i64, f64)> = sums.into_iter().collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
    order.truncate(limit);
    order
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[async_trait]
impl MemoryStore for SqliteStore {
    async fn embeddings(
        &self,
        tenant: &str,
        limit: usize,
    ) -> Result<Vec<(i64, Vec<f32>)>, StoreError> {
        let tenant = tenant.to_string();
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, embedding FROM memories \
                 WHERE tenant = ?1 AND embedding IS NOT NULL ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![tenant, limit as i64], |r| {
                Ok((r.get(0)?, from_bytes(&r.get::<_, Vec<u8>>(1)?)))
            })?;
            rows.collect()
        })
        .await
    }

    async fn get_many(&self, tenant: &str, ids: &[i64]) -> Result<Vec<Memory>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; ids.len()].join(", ");
        let sql =
            format!("SELECT {COLUMNS} FROM memories m WHERE m.tenant = ? AND m.id IN ({marks})");
        let values: Vec<rusqlite::types::Value> = std::iter::once(tenant.to_string().into())
            .chain(ids.iter().map(|&id| id.into()))
            .collect();
        self.run(move |conn| {
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(params_from_iter(values), row)?;
            rows.collect()
        })
        .await
    }

    async fn insert(&self, m: NewMemory) -> Result<i64, StoreError> {
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO memories (tenant, conversation, model, prompt, answer, \
                 prompt_tokens, completion_tokens, created_at, embedding) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    m.tenant,
                    m.conversation,
                    m.model,
                    m.prompt,
                    m.answer,
                    m.prompt_tokens,
                    m.completion_tokens,
                    now(),
                    m.embedding.as_deref().map(to_bytes),
                ],
            )?;
            Ok(conn.last_insert_rowid())
        })
        .await
    }

    async fn search_words(
        &self,
        tenant: &str,
        query: &str,
        limit: usize,
    ) -> Result<Vec<Memory>, StoreError> {
        let Some(fts) = fts_query(query) else {
            return Ok(Vec::new());
        };
        let tenant = tenant.to_string();
        self.run(move |conn| {
            // bm25 is lower-is-better; the prompt weighs twice the answer.
            let sql = format!(
                "SELECT {COLUMNS}, bm25(memories_fts, 2.0, 1.0) AS rank \
                 FROM memories_fts JOIN memories m ON m.id = memories_fts.rowid \
                 WHERE memories_fts MATCH ?1 AND m.tenant = ?2 \
                 ORDER BY rank, m.id DESC LIMIT ?3"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![fts, tenant, limit as i64], |r| {
                let mut m = row(r)?;
                m.score = Some(-r.get::<_, f64>(11)?);
                Ok(m)
            })?;
            rows.collect()
        })
        .await
    }

    async fn list(
        &self,
        tenant: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<(Vec<Memory>, bool), StoreError> {
        let tenant = tenant.to_string();
        self.run(move |conn| {
            let sql = format!(
                "SELECT {COLUMNS} FROM memories m \
                 WHERE m.tenant = ?1 AND (?2 IS NULL OR m.id < ?2) \
                 ORDER BY m.id DESC LIMIT ?3"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut items = stmt
                .query_map(params![tenant, before, limit as i64 + 1], row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let more = items.len() > limit;
            items.truncate(limit);
            Ok((items, more))
        })
        .await
    }

    async fn delete(&self, tenant: &str, id: i64) -> Result<bool, StoreError> {
        let tenant = tenant.to_string();
        self.run(move |conn| {
            let n = conn.execute(
                "DELETE FROM memories WHERE id = ?1 AND tenant = ?2",
                params![id, tenant],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_all(&self, tenant: &str) -> Result<usize, StoreError> {
        let tenant = tenant.to_string();
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let n = tx.execute("DELETE FROM memories WHERE tenant = ?1", params![tenant])?;
            tx.commit()?;
            Ok(n)
        })
        .await
    }

    async fn rate(
        &self,
        tenant: &str,
        id: i64,
        score: f64,
        comment: Option<String>,
    ) -> Result<Option<Memory>, StoreError> {
        let tenant = tenant.to_string();
        self.run(move |conn| {
            let n = conn.execute(
                "UPDATE memories SET feedback = ?1, feedback_comment = ?2, feedback_at = ?3 \
                 WHERE id = ?4 AND tenant = ?5",
                params![score, comment, now(), id, tenant],
            )?;
            if n == 0 {
                return Ok(None);
            }
            let sql = format!("SELECT {COLUMNS} FROM memories m WHERE m.id = ?1");
            conn.query_row(&sql, [id], row).map(Some)
        })
        .await
    }

    async fn export_page(
        &self,
        tenant: &str,
        filter: &ExportFilter,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Memory>, StoreError> {
        let tenant = tenant.to_string();
        let f = filter.clone();
        let (cmp, order, after) = f.direction(after);
        self.run(move |conn| {
            let sql = format!(
                "SELECT {COLUMNS} FROM memories m \
                 WHERE m.tenant = ?1 AND m.id {cmp} ?2 \
                 AND (?3 IS NULL OR m.feedback >= ?3) \
                 AND (?4 IS NULL OR m.created_at >= ?4) \
                 AND (?5 IS NULL OR m.created_at < ?5) \
                 AND (?6 IS NULL OR m.conversation = ?6) \
                 ORDER BY m.id {order} LIMIT ?7"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(
                params![
                    tenant,
                    after,
                    f.min_score,
                    f.since,
                    f.until,
                    f.conversation,
                    limit as i64
                ],
                row,
            )?;
            rows.collect()
        })
        .await
    }
}

/// Checks every store must pass, run by each store's own tests against a
/// fresh store; tenants `a` and `b` start empty.
#[cfg(test)]
pub(crate) mod conformance {
    use super::{ExportFilter, MemoryStore, NewMemory};

    fn memory(tenant: &str, prompt: &str, answer: &str) -> NewMemory {
        NewMemory {
            tenant: tenant.into(),
            conversation: None,
            model: "m".into(),
            prompt: prompt.into(),
            answer: answer.into(),
            prompt_tokens: 3,
            completion_tokens: 4,
            embedding: None,
        }
    }

    pub async fn search_ranks_by_relevance_within_a_tenant(s: &dyn MemoryStore, a: &str, b: &str) {
        s.insert(memory(a, "The weather is nice", "Yes it is"))
            .await
            .unwrap();
        let cat = s
            .insert(memory(a, "My cat is called Whiskers", "Nice name"))
            .await
            .unwrap();
        s.insert(memory(b, "My cat is called Felix", "Ok"))
            .await
            .unwrap();
        let hits = s
            .search(a, "what is my cat called?", None, 5)
            .await
            .unwrap();
        assert_eq!(hits[0].id, cat);
        assert!(hits[0].score.is_some_and(|x| x > 0.0));
        assert!(hits.iter().all(|m| !m.prompt.contains("Felix")));
        // Query syntax of either store is just text.
        let syntax = "\"unbalanced & | !( NEAR(";
        assert!(s.search(a, syntax, None, 5).await.unwrap().is_empty());
    }

    /// A score is kept with the exchange, per tenant, and exports filter by it.
    pub async fn rates_and_exports_per_tenant(s: &dyn MemoryStore, a: &str, b: &str) {
        let good = s
            .insert(memory(a, "Good question", "Good answer"))
            .await
            .unwrap();
        let poor = s
            .insert(memory(a, "Poor question", "Poor answer"))
            .await
            .unwrap();
        let rated = s.rate(a, good, 0.9, Some("spot on".into())).await.unwrap();
        let feedback = rated.unwrap().feedback.unwrap();
        assert_eq!(feedback.score, 0.9);
        assert_eq!(feedback.comment.as_deref(), Some("spot on"));
        s.rate(a, poor, 0.2, None).await.unwrap().unwrap();
        // Another tenant's memory cannot be scored, nor a missing one.
        assert!(s.rate(b, good, 0.0, None).await.unwrap().is_none());
        assert!(s.rate(a, good + 1000, 0.0, None).await.unwrap().is_none());
        let (listed, _) = s.list(a, None, 10).await.unwrap();
        assert_eq!(listed[0].feedback.as_ref().unwrap().score, 0.2);
        let filter = ExportFilter {
            min_score: Some(0.5),
            ..ExportFilter::default()
        };
        let page = s.export_page(a, &filter, 0, 10).await.unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].id, good);
        let all = s
            .export_page(a, &ExportFilter::default(), 0, 10)
            .await
            .unwrap();
        assert_eq!(all.iter().map(|m| m.id).collect::<Vec<_>>(), [good, poor]);
        assert_eq!(
            s.export_page(a, &ExportFilter::default(), good, 10)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(s
            .export_page(b, &ExportFilter::default(), 0, 10)
            .await
            .unwrap()
            .is_empty());
        let newest = ExportFilter {
            newest_first: true,
            ..ExportFilter::default()
        };
        let latest = s.export_page(a, &newest, 0, 1).await.unwrap();
        assert_eq!(latest.iter().map(|m| m.id).collect::<Vec<_>>(), [poor]);
        let before = s.export_page(a, &newest, poor, 10).await.unwrap();
        assert_eq!(before.iter().map(|m| m.id).collect::<Vec<_>>(), [good]);
    }

    /// With embeddings (made-up 2-d ones here), a memory sharing no word
    /// with the query is found by meaning, and words still rank.
    pub async fn meaning_finds_what_words_miss(s: &dyn MemoryStore, a: &str, b: &str) {
        let with = |prompt: &str, v: [f32; 2], tenant: &str| NewMemory {
            embedding: Some(v.to_vec()),
            ..memory(tenant, prompt, "ok")
        };
        let bread = s
            .insert(with("How do I bake sourdough?", [1.0, 0.0], a))
            .await
            .unwrap();
        let tax = s
            .insert(with("When are taxes due?", [0.0, 1.0], a))
            .await
            .unwrap();
        s.insert(with("How do I bake sourdough?", [1.0, 0.0], b))
            .await
            .unwrap();
        let query = "recipe for a leavened loaf";
        assert!(s.search(a, query, None, 5).await.unwrap().is_empty());
        let hits = s
            .search(a, query, Some((&[0.9, 0.1], 0.5)), 5)
            .await
            .unwrap();
        assert_eq!(hits.iter().map(|m| m.id).collect::<Vec<_>>(), [bread]);
        let both = s
            .search(a, "taxes", Some((&[0.9, 0.1], 0.5)), 5)
            .await
            .unwrap();
        assert_eq!(both.iter().map(|m| m.id).collect::<Vec<_>>(), [tax, bread]);
    }

    pub async fn lists_pages_and_deletes_per_tenant(s: &dyn MemoryStore, a: &str, b: &str) {
        let mut ids = vec![];
        for i in 0..5 {
            let m = memory(a, &format!("note number{i}"), "x");
            ids.push(s.insert(m).await.unwrap());
        }
        let other = s.insert(memory(b, "p", "x")).await.unwrap();
        let (page, more) = s.list(a, None, 2).await.unwrap();
        assert_eq!(
            page.iter().map(|m| m.id).collect::<Vec<_>>(),
            [ids[4], ids[3]]
        );
        assert!(more);
        let (page, more) = s.list(a, Some(ids[1]), 2).await.unwrap();
        assert_eq!(page.iter().map(|m| m.id).collect::<Vec<_>>(), [ids[0]]);
        assert!(!more);
        assert!(!s.delete(a, other).await.unwrap());
        assert!(s.delete(a, ids[0]).await.unwrap());
        assert_eq!(s.search(a, "number1", None, 5).await.unwrap().len(), 1);
        assert_eq!(s.delete_all(a).await.unwrap(), 4);
        assert_eq!(s.list(b, None, 10).await.unwrap().0.len(), 1);
        // The search index followed the deletions.
        assert!(s.search(a, "number1", None, 5).await.unwrap().is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(name: &str) -> SqliteStore {
        let dir = std::env::temp_dir().join(format!("ferrite-mem-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        SqliteStore::open(&dir.join("memory.db"), Duration::from_millis(100)).expect("open")
    }

    #[test]
    fn fts_queries_quote_every_word() {
        assert_eq!(
            fts_query("What's my cat's name? \"x\" AND NEAR(").as_deref(),
            Some("\"what\" OR \"my\" OR \"cat\" OR \"name\" OR \"and\" OR \"near\"")
        );
        assert_eq!(fts_query("? !"), None);
    }

    #[tokio::test]
    async fn search_ranks_by_relevance_within_a_tenant() {
        conformance::search_ranks_by_relevance_within_a_tenant(&store("rank"), "a", "b").await;
    }

    #[tokio::test]
    async fn lists_pages_and_deletes_per_tenant() {
        conformance::lists_pages_and_deletes_per_tenant(&store("list"), "a", "b").await;
    }

    #[tokio::test]
    async fn rates_and_exports_per_tenant() {
        conformance::rates_and_exports_per_tenant(&store("rate"), "a", "b").await;
    }

    #[tokio::test]
    async fn meaning_finds_what_words_miss() {
        conformance::meaning_finds_what_words_miss(&store("meaning"), "a", "b").await;
    }

    #[test]
    fn fusion_rewards_agreement() {
        let order = fuse(&[&[1, 2, 3], &[3, 4]], 3);
        assert_eq!(order[0].0, 3);
        assert_eq!(order.len(), 3);
    }
}
