//! Conversation memory in PostgreSQL, for replicas that share one store:
//! full-text search over a generated `tsvector` (GIN index), ranked by
//! `ts_rank_cd` with the prompt weighted above the answer.

use std::time::Duration;

use async_trait::async_trait;
use ferrite_openapi::memory::{Feedback, Memory};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::Row;
use tokio::sync::OnceCell;

use crate::embedder::{from_bytes, to_bytes};
use crate::memory_store::{now, search_terms, ExportFilter, MemoryStore, NewMemory, StoreError};

/// Replicas starting together must not race each other's `CREATE`s.
const SCHEMA_LOCK: i64 = 0x6665_7272_6974_6501;

const SCHEMA: [&str; 5] = [
    "CREATE TABLE IF NOT EXISTS memories (
        id BIGSERIAL PRIMARY KEY,
        tenant TEXT NOT NULL,
        conversation TEXT,
        model TEXT NOT NULL,
        prompt TEXT NOT NULL,
        answer TEXT NOT NULL,
        prompt_tokens BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        search TSVECTOR GENERATED ALWAYS AS (
            setweight(to_tsvector('english', prompt), 'A')
            || setweight(to_tsvector('english', answer), 'B')
        ) STORED
    )",
    "CREATE INDEX IF NOT EXISTS memories_by_tenant ON memories (tenant, id)",
    "CREATE INDEX IF NOT EXISTS memories_search ON memories USING GIN (search)",
    // Databases from before memory compared by meaning lack the column.
    "ALTER TABLE memories ADD COLUMN IF NOT EXISTS embedding BYTEA",
    "ALTER TABLE memories ADD COLUMN IF NOT EXISTS feedback FLOAT8, \
        ADD COLUMN IF NOT EXISTS feedback_comment TEXT, \
        ADD COLUMN IF NOT EXISTS feedback_at BIGINT",
];

const COLUMNS: &str = "id, conversation, model, prompt, answer, \
                       prompt_tokens, completion_tokens, created_at, \
                       feedback, feedback_comment, feedback_at";

pub struct PostgresStore {
    pool: PgPool,
    schema: OnceCell<()>,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut => StoreError::Busy,
            e => StoreError::Postgres(e.to_string()),
        }
    }
}

impl PostgresStore {
    /// Checks the URL but connects on first use, so that ferrite starts
    /// (and answers without memory) while the database is still coming up.
    pub fn connect(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(timeout)
            .connect_lazy(url)?;
        Ok(Self {
            pool,
            schema: OnceCell::new(),
        })
    }

    pub(crate) async fn pool(&self) -> Result<&PgPool, StoreError> {
        self.schema
            .get_or_try_init(|| async {
                let statements = [
                    &SCHEMA[..],
                    &[crate::response_store::POSTGRES_SCHEMA],
                    &crate::alias_store::POSTGRES_SCHEMA,
                    &crate::conversation_store::POSTGRES_SCHEMA,
                ]
                .concat();
                create_schema(&self.pool, SCHEMA_LOCK, &statements).await
            })
            .await?;
        Ok(&self.pool)
    }
}

/// Runs `statements` once per database, under an advisory lock, so that
/// replicas starting together do not race each other's `CREATE`s.
pub(crate) async fn create_schema(
    pool: &PgPool,
    lock: i64,
    statements: &[&'static str],
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock)
        .execute(&mut *tx)
        .await?;
    for &statement in statements {
        sqlx::query(statement).execute(&mut *tx).await?;
    }
    tx.commit().await
}

fn tokens(r: &PgRow, column: &str) -> Result<u32, sqlx::Error> {
    let n: i64 = r.try_get(column)?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

fn row(r: &PgRow) -> Result<Memory, sqlx::Error> {
    Ok(Memory {
        id: r.try_get("id")?,
        object: "memory".into(),
        conversation: r.try_get("conversation")?,
        model: r.try_get("model")?,
        prompt: r.try_get("prompt")?,
        answer: r.try_get("answer")?,
        prompt_tokens: tokens(r, "prompt_tokens")?,
        completion_tokens: tokens(r, "completion_tokens")?,
        created_at: r.try_get("created_at")?,
        score: None,
        feedback: r
            .try_get::<Option<f64>, _>("feedback")?
            .map(|score| -> Result<Feedback, sqlx::Error> {
                Ok(Feedback {
                    score,
                    comment: r.try_get("feedback_comment")?,
                    created_at: r
                        .try_get::<Option<i64>, _>("feedback_at")?
                        .unwrap_or_default(),
                })
            })
            .transpose()?,
    })
}

#[async_trait]
impl MemoryStore for PostgresStore {
    async fn insert(&self, m: NewMemory) -> Result<i64, StoreError> {
        let id = sqlx::query_scalar(
            "INSERT INTO memories (tenant, conversation, model, prompt, answer, \
             prompt_tokens, completion_tokens, created_at, embedding) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(&m.tenant)
        .bind(&m.conversation)
        .bind(&m.model)
        .bind(&m.prompt)
        .bind(&m.answer)
        .bind(i64::from(m.prompt_tokens))
        .bind(i64::from(m.completion_tokens))
        .bind(now())
        .bind(m.embedding.as_deref().map(to_bytes))
        .fetch_one(self.pool().await?)
        .await?;
        Ok(id)
    }

    async fn embeddings(
        &self,
        tenant: &str,
        limit: usize,
    ) -> Result<Vec<(i64, Vec<f32>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, embedding FROM memories \
             WHERE tenant = $1 AND embedding IS NOT NULL ORDER BY id DESC LIMIT $2",
        )
        .bind(tenant)
        .bind(limit as i64)
        .fetch_all(self.pool().await?)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, from_bytes(r.try_get("embedding")?))))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn get_many(&self, tenant: &str, ids: &[i64]) -> Result<Vec<Memory>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM memories WHERE tenant = $1 AND id = ANY($2)"
        ))
        .bind(tenant)
        .bind(ids)
        .fetch_all(self.pool().await?)
        .await?;
        rows.iter()
            .map(row)
            .collect::<Result<_, _>>()
            .map_err(StoreError::from)
    }

    async fn search_words(
        &self,
        tenant: &str,
        query: &str,
        limit: usize,
    ) -> Result<Vec<Memory>, StoreError> {
        let terms = search_terms(query);
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        // Terms are letters and digits only, so none reads as tsquery syntax.
        let tsquery = terms.join(" | ");
        let sql = format!(
            "SELECT {COLUMNS}, ts_rank_cd(search, q)::FLOAT8 AS rank \
             FROM memories, to_tsquery('english', $1) q \
             WHERE tenant = $2 AND search @@ q \
             ORDER BY rank DESC, id DESC LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(tsquery)
            .bind(tenant)
            .bind(limit as i64)
            .fetch_all(self.pool().await?)
            .await?;
        let mut found = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut m = row(r)?;
            m.score = Some(r.try_get("rank")?);
            found.push(m);
        }
        Ok(found)
    }

    async fn list(
        &self,
        tenant: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<(Vec<Memory>, bool), StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM memories \
             WHERE tenant = $1 AND ($2::BIGINT IS NULL OR id < $2) \
             ORDER BY id DESC LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant)
            .bind(before)
            .bind(limit as i64 + 1)
            .fetch_all(self.pool().await?)
            .await?;
        let mut items = rows.iter().map(row).collect::<Result<Vec<_>, _>>()?;
        let more = items.len() > limit;
        items.truncate(limit);
        Ok((items, more))
    }

    async fn delete(&self, tenant: &str, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM memories WHERE id = $1 AND tenant = $2")
            .bind(id)
            .bind(tenant)
            .execute(self.pool().await?)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_all(&self, tenant: &str) -> Result<usize, StoreError> {
        let done = sqlx::query("DELETE FROM memories WHERE tenant = $1")
            .bind(tenant)
            .execute(self.pool().await?)
            .await?;
        Ok(done.rows_affected() as usize)
    }

    async fn rate(
        &self,
        tenant: &str,
        id: i64,
        score: f64,
        comment: Option<String>,
    ) -> Result<Option<Memory>, StoreError> {
        let sql = format!(
            "UPDATE memories SET feedback = $1, feedback_comment = $2, feedback_at = $3 \
             WHERE id = $4 AND tenant = $5 RETURNING {COLUMNS}"
        );
        let found = sqlx::query(&sql)
            .bind(score)
            .bind(comment)
            .bind(now())
            .bind(id)
            .bind(tenant)
            .fetch_optional(self.pool().await?)
            .await?;
        Ok(found.as_ref().map(row).transpose()?)
    }

    async fn export_page(
        &self,
        tenant: &str,
        filter: &ExportFilter,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Memory>, StoreError> {
        let (cmp, order, after) = filter.direction(after);
        let sql = format!(
            "SELECT {COLUMNS} FROM memories \
             WHERE tenant = $1 AND id {cmp} $2 \
             AND ($3::FLOAT8 IS NULL OR feedback >= $3) \
             AND ($4::BIGINT IS NULL OR created_at >= $4) \
             AND ($5::BIGINT IS NULL OR created_at < $5) \
             AND ($6::TEXT IS NULL OR conversation = $6) \
             ORDER BY id {order} LIMIT $7"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant)
            .bind(after)
            .bind(filter.min_score)
            .bind(filter.since)
            .bind(filter.until)
            .bind(&filter.conversation)
            .bind(limit as i64)
            .fetch_all(self.pool().await?)
            .await?;
        rows.iter()
            .map(row)
            .collect::<Result<_, _>>()
            .map_err(StoreError::from)
    }
}

/// Against a real server when `FERRITE_TEST_POSTGRES_URL` is set (as
/// `make test` does; the end-to-end memory tests require it); the same
/// checks as the SQLite store's.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory_store::conformance;

    /// A store in a fresh database of its own.
    async fn store() -> Option<PostgresStore> {
        let base = std::env::var("FERRITE_TEST_POSTGRES_URL").ok()?;
        let db = format!("ferrite_unit_{}", uuid::Uuid::new_v4().simple());
        let admin = PgPool::connect(&base).await.expect("connect");
        sqlx::query(&format!("CREATE DATABASE {db}"))
            .execute(&admin)
            .await
            .expect("create database");
        let (server, _) = base.rsplit_once('/').expect("URL ends in /database");
        let url = format!("{server}/{db}");
        Some(PostgresStore::connect(&url, Duration::from_secs(5)).expect("url"))
    }

    #[tokio::test]
    async fn search_ranks_by_relevance_within_a_tenant() {
        let Some(s) = store().await else {
            eprintln!("FERRITE_TEST_POSTGRES_URL unset: skipped");
            return;
        };
        conformance::search_ranks_by_relevance_within_a_tenant(&s, "a", "b").await;
    }

    #[tokio::test]
    async fn lists_pages_and_deletes_per_tenant() {
        let Some(s) = store().await else {
            eprintln!("FERRITE_TEST_POSTGRES_URL unset: skipped");
            return;
        };
        conformance::lists_pages_and_deletes_per_tenant(&s, "a", "b").await;
    }

    #[tokio::test]
    async fn rates_and_exports_per_tenant() {
        let Some(s) = store().await else {
            eprintln!("FERRITE_TEST_POSTGRES_URL unset: skipped");
            return;
        };
        conformance::rates_and_exports_per_tenant(&s, "a", "b").await;
    }

    #[tokio::test]
    async fn meaning_finds_what_words_miss() {
        let Some(s) = store().await else {
            eprintln!("FERRITE_TEST_POSTGRES_URL unset: skipped");
            return;
        };
        conformance::meaning_finds_what_words_miss(&s, "a", "b").await;
    }

    #[tokio::test]
    async fn aliases_keep_their_versions() {
        let Some(s) = store().await else {
            eprintln!("FERRITE_TEST_POSTGRES_URL unset: skipped");
            return;
        };
        crate::alias_store::conformance::versions_promote_prune_and_roll_back(&s).await;
    }

    #[tokio::test]
    async fn responses_are_kept_per_tenant() {
        let Some(s) = store().await else {
            eprintln!("FERRITE_TEST_POSTGRES_URL unset: skipped");
            return;
        };
        crate::response_store::conformance::keeps_gets_and_deletes_per_tenant(&s).await;
    }

    #[tokio::test]
    async fn conversations_are_kept_per_tenant() {
        let Some(s) = store().await else {
            eprintln!("FERRITE_TEST_POSTGRES_URL unset: skipped");
            return;
        };
        crate::conversation_store::conformance::keeps_lists_searches_and_deletes_per_tenant(&s)
            .await;
    }
}
