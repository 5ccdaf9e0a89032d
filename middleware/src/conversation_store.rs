//! The web app's conversations, per tenant, in the same database as memory
//! (SQLite, or PostgreSQL with `memory.url`): one row per conversation, its
//! JSON as served, with the columns a list and a search read.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use sqlx::Row;

use crate::memory_postgres::PostgresStore;
use crate::memory_store::{SqliteStore, StoreError};

/// A conversation as kept: the store knows nothing of its JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredConversation {
    pub id: String,
    pub tenant: String,
    pub title: String,
    pub model: Option<String>,
    pub message_count: i64,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
    /// What a search looks in: the title and the messages' text.
    pub text: String,
    /// The conversation as served (empty in lists).
    pub body: String,
}

/// Every method is confined to one tenant: another tenant's id is not found.
#[async_trait]
pub trait ConversationStore: Send + Sync + 'static {
    /// Adds or replaces; false when the id is another tenant's.
    async fn put(&self, conversation: StoredConversation) -> Result<bool, StoreError>;
    async fn get(&self, tenant: &str, id: &str) -> Result<Option<StoredConversation>, StoreError>;
    /// Most recently changed first, without bodies; with `search`, only
    /// those whose title or messages contain it (any case).
    async fn list(
        &self,
        tenant: &str,
        search: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredConversation>, StoreError>;
    /// Whether it existed (and was the tenant's).
    async fn delete(&self, tenant: &str, id: &str) -> Result<bool, StoreError>;
    /// Most recently changed first, with bodies, in one query (an export).
    async fn all(&self, tenant: &str, limit: usize) -> Result<Vec<StoredConversation>, StoreError>;
}

pub(crate) const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    title TEXT NOT NULL,
    model TEXT,
    message_count INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    text TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_by_tenant ON conversations (tenant, updated_at);
";

pub(crate) const POSTGRES_SCHEMA: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    title TEXT NOT NULL,
    model TEXT,
    message_count BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    text TEXT NOT NULL,
    body TEXT NOT NULL
)",
    "CREATE INDEX IF NOT EXISTS conversations_by_tenant ON conversations (tenant, updated_at)",
];

const SUMMARY: &str = "id, tenant, title, model, message_count, created_at, updated_at";

/// `search` as a LIKE pattern that matches it literally.
fn pattern(search: &str) -> String {
    let escaped = search
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl ConversationStore for SqliteStore {
    async fn put(&self, c: StoredConversation) -> Result<bool, StoreError> {
        self.run(move |conn| {
            // Another tenant's row is left alone: nothing changes.
            let n = conn.execute(
                "INSERT INTO conversations \
                 (id, tenant, title, model, message_count, created_at, updated_at, text, body) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                 ON CONFLICT (id) DO UPDATE SET title = excluded.title, model = excluded.model, \
                 message_count = excluded.message_count, updated_at = excluded.updated_at, \
                 text = excluded.text, body = excluded.body \
                 WHERE conversations.tenant = excluded.tenant",
                params![
                    c.id,
                    c.tenant,
                    c.title,
                    c.model,
                    c.message_count,
                    c.created_at,
                    c.updated_at,
                    c.text,
                    c.body
                ],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn get(&self, tenant: &str, id: &str) -> Result<Option<StoredConversation>, StoreError> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.run(move |conn| {
            conn.query_row(
                &format!(
                    "SELECT {SUMMARY}, text, body FROM conversations WHERE id = ?1 AND tenant = ?2"
                ),
                params![id, tenant],
                sqlite_full,
            )
            .optional()
        })
        .await
    }

    async fn list(
        &self,
        tenant: &str,
        search: Option<&str>,
        n: usize,
    ) -> Result<Vec<StoredConversation>, StoreError> {
        let tenant = tenant.to_string();
        let like = search.map(pattern);
        self.run(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {SUMMARY} FROM conversations WHERE tenant = ?1 \
                 AND (?2 IS NULL OR lower(text) LIKE ?2 ESCAPE '\\') \
                 ORDER BY updated_at DESC, id LIMIT ?3"
            ))?;
            let rows = stmt.query_map(params![tenant, like, limit(n)], sqlite_summary)?;
            rows.collect()
        })
        .await
    }

    async fn delete(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.run(move |conn| {
            let n = conn.execute(
                "DELETE FROM conversations WHERE id = ?1 AND tenant = ?2",
                params![id, tenant],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn all(&self, tenant: &str, n: usize) -> Result<Vec<StoredConversation>, StoreError> {
        let tenant = tenant.to_string();
        self.run(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {SUMMARY}, text, body FROM conversations WHERE tenant = ?1 \
                 ORDER BY updated_at DESC, id LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![tenant, limit(n)], sqlite_full)?;
            rows.collect()
        })
        .await
    }
}

fn sqlite_summary(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredConversation> {
    Ok(StoredConversation {
        id: row.get(0)?,
        tenant: row.get(1)?,
        title: row.get(2)?,
        model: row.get(3)?,
        message_count: row.get(4)?,
        created_at: row.get(5)?,
        updated_at: row.get(6)?,
        text: String::new(),
        body: String::new(),
    })
}

/// A row of the summary's columns, then `text` and `body`.
fn sqlite_full(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredConversation> {
    Ok(StoredConversation {
        text: row.get(7)?,
        body: row.get(8)?,
        ..sqlite_summary(row)?
    })
}

fn pg_full(r: &sqlx::postgres::PgRow) -> StoredConversation {
    StoredConversation {
        text: r.get(7),
        body: r.get(8),
        ..pg_summary(r)
    }
}

fn pg_summary(r: &sqlx::postgres::PgRow) -> StoredConversation {
    StoredConversation {
        id: r.get(0),
        tenant: r.get(1),
        title: r.get(2),
        model: r.get(3),
        message_count: r.get(4),
        created_at: r.get(5),
        updated_at: r.get(6),
        text: String::new(),
        body: String::new(),
    }
}

#[async_trait]
impl ConversationStore for PostgresStore {
    async fn put(&self, c: StoredConversation) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO conversations \
             (id, tenant, title, model, message_count, created_at, updated_at, text, body) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title, model = EXCLUDED.model, \
             message_count = EXCLUDED.message_count, updated_at = EXCLUDED.updated_at, \
             text = EXCLUDED.text, body = EXCLUDED.body \
             WHERE conversations.tenant = EXCLUDED.tenant",
        )
        .bind(&c.id)
        .bind(&c.tenant)
        .bind(&c.title)
        .bind(&c.model)
        .bind(c.message_count)
        .bind(c.created_at)
        .bind(c.updated_at)
        .bind(&c.text)
        .bind(&c.body)
        .execute(self.pool().await?)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn get(&self, tenant: &str, id: &str) -> Result<Option<StoredConversation>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SUMMARY}, text, body FROM conversations WHERE id = $1 AND tenant = $2"
        ))
        .bind(id)
        .bind(tenant)
        .fetch_optional(self.pool().await?)
        .await?;
        Ok(row.as_ref().map(pg_full))
    }

    async fn list(
        &self,
        tenant: &str,
        search: Option<&str>,
        n: usize,
    ) -> Result<Vec<StoredConversation>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SUMMARY} FROM conversations WHERE tenant = $1 \
             AND ($2::text IS NULL OR lower(text) LIKE $2 ESCAPE '\\') \
             ORDER BY updated_at DESC, id LIMIT $3"
        ))
        .bind(tenant)
        .bind(search.map(pattern))
        .bind(limit(n))
        .fetch_all(self.pool().await?)
        .await?;
        Ok(rows.iter().map(pg_summary).collect())
    }

    async fn delete(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM conversations WHERE id = $1 AND tenant = $2")
            .bind(id)
            .bind(tenant)
            .execute(self.pool().await?)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn all(&self, tenant: &str, n: usize) -> Result<Vec<StoredConversation>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SUMMARY}, text, body FROM conversations WHERE tenant = $1 \
             ORDER BY updated_at DESC, id LIMIT $2"
        ))
        .bind(tenant)
        .bind(limit(n))
        .fetch_all(self.pool().await?)
        .await?;
        Ok(rows.iter().map(pg_full).collect())
    }
}

/// Checks both stores pass, each against a fresh store.
#[cfg(test)]
pub(crate) mod conformance {
    use super::{ConversationStore, StoredConversation};

    fn conversation(
        id: &str,
        tenant: &str,
        title: &str,
        text: &str,
        at: i64,
    ) -> StoredConversation {
        StoredConversation {
            id: id.into(),
            tenant: tenant.into(),
            title: title.into(),
            model: Some("m".into()),
            message_count: 2,
            created_at: at,
            updated_at: at,
            text: format!("{title}\n{text}"),
            body: format!("{{\"id\":\"{id}\"}}"),
        }
    }

    pub async fn keeps_lists_searches_and_deletes_per_tenant(s: &dyn ConversationStore) {
        let a = conversation("c1", "a", "Rivers", "The Nile is long", 1);
        assert!(s.put(a.clone()).await.unwrap());
        assert!(s
            .put(conversation("c2", "a", "Cooking", "50% less_salt", 2))
            .await
            .unwrap());
        assert!(s
            .put(conversation("c3", "b", "Rivers too", "nile", 3))
            .await
            .unwrap());
        assert_eq!(s.get("a", "c1").await.unwrap(), Some(a.clone()));
        assert_eq!(s.get("b", "c1").await.unwrap(), None, "another tenant's");
        // Another tenant cannot overwrite it.
        assert!(!s
            .put(conversation("c1", "b", "Mine now", "", 9))
            .await
            .unwrap());
        assert_eq!(s.get("a", "c1").await.unwrap(), Some(a));

        let ids =
            |list: Vec<StoredConversation>| list.into_iter().map(|c| c.id).collect::<Vec<_>>();
        assert_eq!(ids(s.list("a", None, 10).await.unwrap()), ["c2", "c1"]);
        assert_eq!(ids(s.list("a", None, 1).await.unwrap()), ["c2"]);
        assert_eq!(ids(s.list("a", Some("NILE"), 10).await.unwrap()), ["c1"]);
        // Wildcards are literal.
        assert_eq!(ids(s.list("a", Some("50%"), 10).await.unwrap()), ["c2"]);
        assert!(s.list("a", Some("%x%"), 10).await.unwrap().is_empty());
        assert!(s.list("a", Some("s_lt"), 10).await.unwrap().is_empty());
        let listed = s.list("a", None, 10).await.unwrap();
        assert!(listed
            .iter()
            .all(|c| c.body.is_empty() && c.text.is_empty()));

        // A replacement moves it to the top.
        let mut renamed = conversation("c1", "a", "Long rivers", "The Nile is long", 1);
        renamed.updated_at = 5;
        assert!(s.put(renamed.clone()).await.unwrap());
        assert_eq!(s.get("a", "c1").await.unwrap(), Some(renamed.clone()));
        assert_eq!(ids(s.list("a", None, 10).await.unwrap()), ["c1", "c2"]);
        // All of a tenant's, whole, newest first.
        let all = s.all("a", 10).await.unwrap();
        assert_eq!(all[0], renamed);
        assert_eq!(ids(all), ["c1", "c2"]);
        assert_eq!(ids(s.all("a", 1).await.unwrap()), ["c1"]);
        assert_eq!(ids(s.all("b", 10).await.unwrap()), ["c3"]);

        assert!(!s.delete("b", "c1").await.unwrap());
        assert!(s.delete("a", "c1").await.unwrap());
        assert_eq!(s.get("a", "c1").await.unwrap(), None);
        assert_eq!(ids(s.list("b", None, 10).await.unwrap()), ["c3"]);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn sqlite_keeps_lists_searches_and_deletes_per_tenant() {
        let path =
            std::env::temp_dir().join(format!("ferrite-conversations-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let store = SqliteStore::open(&path, Duration::from_secs(1)).unwrap();
        conformance::keeps_lists_searches_and_deletes_per_tenant(&store).await;
        let _ = std::fs::remove_file(&path);
    }
}
