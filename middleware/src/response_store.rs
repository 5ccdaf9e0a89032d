//! Stored Responses API responses (`store: true`), for `previous_response_id`,
//! `GET`/`DELETE /v1/responses/{id}` and input items: one small async trait,
//! implemented by both conversation memory stores (SQLite and PostgreSQL),
//! so that responses live in the same database and survive a restart.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use sqlx::Row;

use crate::memory_postgres::PostgresStore;
use crate::memory_store::{now, SqliteStore, StoreError};

/// A response as kept: JSON texts, so the store knows nothing of the API.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub id: String,
    pub tenant: String,
    pub created_at: i64,
    /// The response object as served.
    pub response: String,
    /// This response's own input items.
    pub input_items: String,
    /// The chat so far, through this response's output: what a response
    /// that names this one continues from, without walking a chain.
    pub conversation: String,
}

/// Every method is confined to one tenant: another tenant's id is not found.
#[async_trait]
pub trait ResponseStore: Send + Sync + 'static {
    async fn put(&self, response: StoredResponse) -> Result<(), StoreError>;
    async fn get(&self, tenant: &str, id: &str) -> Result<Option<StoredResponse>, StoreError>;
    /// Whether it existed (and was the tenant's).
    async fn delete(&self, tenant: &str, id: &str) -> Result<bool, StoreError>;
}

pub(crate) const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    response TEXT NOT NULL,
    input_items TEXT NOT NULL,
    conversation TEXT NOT NULL
);
";

pub(crate) const POSTGRES_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    response TEXT NOT NULL,
    input_items TEXT NOT NULL,
    conversation TEXT NOT NULL
)";

const COLUMNS: &str = "id, tenant, created_at, response, input_items, conversation";

#[async_trait]
impl ResponseStore for SqliteStore {
    async fn put(&self, r: StoredResponse) -> Result<(), StoreError> {
        self.run(move |conn| {
            conn.execute(
                &format!(
                    "INSERT OR REPLACE INTO responses ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                ),
                params![
                    r.id,
                    r.tenant,
                    r.created_at,
                    r.response,
                    r.input_items,
                    r.conversation
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn get(&self, tenant: &str, id: &str) -> Result<Option<StoredResponse>, StoreError> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.run(move |conn| {
            conn.query_row(
                &format!("SELECT {COLUMNS} FROM responses WHERE id = ?1 AND tenant = ?2"),
                params![id, tenant],
                |row| {
                    Ok(StoredResponse {
                        id: row.get(0)?,
                        tenant: row.get(1)?,
                        created_at: row.get(2)?,
                        response: row.get(3)?,
                        input_items: row.get(4)?,
                        conversation: row.get(5)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn delete(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.run(move |conn| {
            let n = conn.execute(
                "DELETE FROM responses WHERE id = ?1 AND tenant = ?2",
                params![id, tenant],
            )?;
            Ok(n > 0)
        })
        .await
    }
}

#[async_trait]
impl ResponseStore for PostgresStore {
    async fn put(&self, r: StoredResponse) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO responses ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (id) DO UPDATE SET response = EXCLUDED.response, \
             input_items = EXCLUDED.input_items, conversation = EXCLUDED.conversation"
        ))
        .bind(&r.id)
        .bind(&r.tenant)
        .bind(r.created_at)
        .bind(&r.response)
        .bind(&r.input_items)
        .bind(&r.conversation)
        .execute(self.pool().await?)
        .await?;
        Ok(())
    }

    async fn get(&self, tenant: &str, id: &str) -> Result<Option<StoredResponse>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM responses WHERE id = $1 AND tenant = $2"
        ))
        .bind(id)
        .bind(tenant)
        .fetch_optional(self.pool().await?)
        .await?;
        Ok(row.map(|r| StoredResponse {
            id: r.get(0),
            tenant: r.get(1),
            created_at: r.get(2),
            response: r.get(3),
            input_items: r.get(4),
            conversation: r.get(5),
        }))
    }

    async fn delete(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM responses WHERE id = $1 AND tenant = $2")
            .bind(id)
            .bind(tenant)
            .execute(self.pool().await?)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// A response to store now.
pub fn stored(
    id: &str,
    tenant: &str,
    response: String,
    input_items: String,
    conversation: String,
) -> StoredResponse {
    StoredResponse {
        id: id.to_string(),
        tenant: tenant.to_string(),
        created_at: now(),
        response,
        input_items,
        conversation,
    }
}

/// Checks both stores pass, each against a fresh store.
#[cfg(test)]
pub(crate) mod conformance {
    use super::{stored, ResponseStore};

    pub async fn keeps_gets_and_deletes_per_tenant(s: &dyn ResponseStore) {
        let r = stored("resp_1", "a", "{}".into(), "[]".into(), "[]".into());
        s.put(r.clone()).await.unwrap();
        assert_eq!(s.get("a", "resp_1").await.unwrap(), Some(r));
        assert_eq!(
            s.get("b", "resp_1").await.unwrap(),
            None,
            "another tenant's"
        );
        assert!(!s.delete("b", "resp_1").await.unwrap());
        assert!(s.delete("a", "resp_1").await.unwrap());
        assert_eq!(s.get("a", "resp_1").await.unwrap(), None);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn sqlite_keeps_gets_and_deletes_per_tenant() {
        let path =
            std::env::temp_dir().join(format!("ferrite-responses-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let store = SqliteStore::open(&path, Duration::from_secs(1)).unwrap();
        conformance::keeps_gets_and_deletes_per_tenant(&store).await;
        // A fresh connection sees what was committed (a restart keeps it).
        store
            .put(stored("resp_2", "a", "{}".into(), "[]".into(), "[]".into()))
            .await
            .unwrap();
        drop(store);
        let again = SqliteStore::open(&path, Duration::from_secs(1)).unwrap();
        assert!(again.get("a", "resp_2").await.unwrap().is_some());
    }
}
