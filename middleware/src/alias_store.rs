//! Versioned aliases: each alias's ordered versions (a model each), which one
//! is current, and every evaluation decision with its scores; kept in the
//! memory stores' database (SQLite or PostgreSQL), so that a promotion
//! survives a restart and every replica sees it.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use sqlx::Row;

use crate::memory_postgres::PostgresStore;
use crate::memory_store::{now, SqliteStore, StoreError};

#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    /// 1 for the first; the first is never removed.
    pub version: i64,
    pub model: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AliasState {
    /// Oldest first.
    pub versions: Vec<Version>,
    pub current: i64,
}

impl AliasState {
    pub fn current(&self) -> Option<&Version> {
        self.versions.iter().find(|v| v.version == self.current)
    }

    /// The newest version older than the current one.
    pub fn previous(&self) -> Option<&Version> {
        self.versions
            .iter()
            .rev()
            .find(|v| v.version < self.current)
    }
}

/// What was decided about an alias, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub alias: String,
    /// `promote`, `keep` (the candidate did not win) or `rollback`.
    pub action: String,
    pub candidate: String,
    pub current: String,
    pub candidate_score: Option<f64>,
    pub current_score: Option<f64>,
    /// The evaluation report as JSON (empty for a rollback).
    pub report: String,
    pub created_at: i64,
}

#[async_trait]
pub trait AliasStore: Send + Sync + 'static {
    /// The alias's versions and its current one; a new alias starts with
    /// `first` as version 1.
    async fn alias(&self, name: &str, first: &str) -> Result<AliasState, StoreError>;
    /// Adds `model` as the newest version and makes it current; keeps the
    /// first version, the current one and the `keep` newest.
    async fn promote(&self, name: &str, model: &str, keep: usize)
        -> Result<AliasState, StoreError>;
    /// Makes the newest version older than the current one current; `None`
    /// when the current one is the first.
    async fn rollback(&self, name: &str) -> Result<Option<AliasState>, StoreError>;
    async fn record(&self, decision: Decision) -> Result<(), StoreError>;
    /// Newest first.
    async fn decisions(&self, name: &str, limit: usize) -> Result<Vec<Decision>, StoreError>;
}

pub(crate) const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS aliases (alias TEXT PRIMARY KEY, current INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS alias_versions (
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    model TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (alias, version)
);
CREATE TABLE IF NOT EXISTS alias_decisions (
    id INTEGER PRIMARY KEY,
    alias TEXT NOT NULL,
    action TEXT NOT NULL,
    candidate TEXT NOT NULL,
    current TEXT NOT NULL,
    candidate_score REAL,
    current_score REAL,
    report TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
";

pub(crate) const POSTGRES_SCHEMA: [&str; 3] = [
    "CREATE TABLE IF NOT EXISTS aliases (alias TEXT PRIMARY KEY, current BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS alias_versions (
        alias TEXT NOT NULL,
        version BIGINT NOT NULL,
        model TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (alias, version)
    )",
    "CREATE TABLE IF NOT EXISTS alias_decisions (
        id BIGSERIAL PRIMARY KEY,
        alias TEXT NOT NULL,
        action TEXT NOT NULL,
        candidate TEXT NOT NULL,
        current TEXT NOT NULL,
        candidate_score FLOAT8,
        current_score FLOAT8,
        report TEXT NOT NULL,
        created_at BIGINT NOT NULL
    )",
];

/// The versions a promotion keeps: the first, the current and the newest.
fn pruned(versions: &[i64], current: i64, keep: usize) -> Vec<i64> {
    let newest: Vec<i64> = versions.iter().rev().take(keep.max(1)).copied().collect();
    versions
        .iter()
        .copied()
        .filter(|v| *v != 1 && *v != current && !newest.contains(v))
        .collect()
}

fn sqlite_state(tx: &rusqlite::Transaction<'_>, name: &str) -> rusqlite::Result<AliasState> {
    let current = tx.query_row(
        "SELECT current FROM aliases WHERE alias = ?1",
        [name],
        |r| r.get(0),
    )?;
    let mut stmt = tx.prepare_cached(
        "SELECT version, model, created_at FROM alias_versions WHERE alias = ?1 ORDER BY version",
    )?;
    let versions = stmt
        .query_map([name], |r| {
            Ok(Version {
                version: r.get(0)?,
                model: r.get(1)?,
                created_at: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(AliasState { versions, current })
}

#[async_trait]
impl AliasStore for SqliteStore {
    async fn alias(&self, name: &str, first: &str) -> Result<AliasState, StoreError> {
        let (name, first) = (name.to_string(), first.to_string());
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let known: Option<i64> = tx
                .query_row("SELECT current FROM aliases WHERE alias = ?1", [&name], |r| r.get(0))
                .optional()?;
            if known.is_none() {
                tx.execute("INSERT INTO aliases (alias, current) VALUES (?1, 1)", [&name])?;
                tx.execute(
                    "INSERT INTO alias_versions (alias, version, model, created_at) VALUES (?1, 1, ?2, ?3)",
                    params![name, first, now()],
                )?;
            }
            let state = sqlite_state(&tx, &name)?;
            tx.commit()?;
            Ok(state)
        })
        .await
    }

    async fn promote(
        &self,
        name: &str,
        model: &str,
        keep: usize,
    ) -> Result<AliasState, StoreError> {
        let (name, model) = (name.to_string(), model.to_string());
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let next: i64 = tx.query_row(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM alias_versions WHERE alias = ?1",
                [&name],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO alias_versions (alias, version, model, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![name, next, model, now()],
            )?;
            tx.execute("UPDATE aliases SET current = ?2 WHERE alias = ?1", params![name, next])?;
            let state = sqlite_state(&tx, &name)?;
            let all: Vec<i64> = state.versions.iter().map(|v| v.version).collect();
            for v in pruned(&all, next, keep) {
                tx.execute(
                    "DELETE FROM alias_versions WHERE alias = ?1 AND version = ?2",
                    params![name, v],
                )?;
            }
            let state = sqlite_state(&tx, &name)?;
            tx.commit()?;
            Ok(state)
        })
        .await
    }

    async fn rollback(&self, name: &str) -> Result<Option<AliasState>, StoreError> {
        let name = name.to_string();
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let state = sqlite_state(&tx, &name)?;
            let Some(previous) = state.previous() else {
                return Ok(None);
            };
            tx.execute(
                "UPDATE aliases SET current = ?2 WHERE alias = ?1",
                params![name, previous.version],
            )?;
            let state = sqlite_state(&tx, &name)?;
            tx.commit()?;
            Ok(Some(state))
        })
        .await
    }

    async fn record(&self, d: Decision) -> Result<(), StoreError> {
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO alias_decisions (alias, action, candidate, current, candidate_score, \
                 current_score, report, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    d.alias,
                    d.action,
                    d.candidate,
                    d.current,
                    d.candidate_score,
                    d.current_score,
                    d.report,
                    d.created_at
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn decisions(&self, name: &str, limit: usize) -> Result<Vec<Decision>, StoreError> {
        let name = name.to_string();
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT alias, action, candidate, current, candidate_score, current_score, report, \
                 created_at FROM alias_decisions WHERE alias = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![name, limit as i64], |r| {
                Ok(Decision {
                    alias: r.get(0)?,
                    action: r.get(1)?,
                    candidate: r.get(2)?,
                    current: r.get(3)?,
                    candidate_score: r.get(4)?,
                    current_score: r.get(5)?,
                    report: r.get(6)?,
                    created_at: r.get(7)?,
                })
            })?;
            rows.collect()
        })
        .await
    }
}

async fn pg_state(tx: &mut sqlx::PgConnection, name: &str) -> Result<AliasState, sqlx::Error> {
    let current: i64 = sqlx::query_scalar("SELECT current FROM aliases WHERE alias = $1")
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
    let rows = sqlx::query(
        "SELECT version, model, created_at FROM alias_versions WHERE alias = $1 ORDER BY version",
    )
    .bind(name)
    .fetch_all(&mut *tx)
    .await?;
    let versions = rows
        .iter()
        .map(|r| Version {
            version: r.get(0),
            model: r.get(1),
            created_at: r.get(2),
        })
        .collect();
    Ok(AliasState { versions, current })
}

/// Locks the alias's row for the transaction, so that replicas promoting
/// at once take turns.
async fn pg_lock(tx: &mut sqlx::PgConnection, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT current FROM aliases WHERE alias = $1 FOR UPDATE")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

#[async_trait]
impl AliasStore for PostgresStore {
    async fn alias(&self, name: &str, first: &str) -> Result<AliasState, StoreError> {
        let mut tx = self.pool().await?.begin().await?;
        let created = sqlx::query(
            "INSERT INTO aliases (alias, current) VALUES ($1, 1) ON CONFLICT (alias) DO NOTHING",
        )
        .bind(name)
        .execute(&mut *tx)
        .await?;
        if created.rows_affected() > 0 {
            sqlx::query(
                "INSERT INTO alias_versions (alias, version, model, created_at) VALUES ($1, 1, $2, $3)",
            )
            .bind(name)
            .bind(first)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        }
        let state = pg_state(&mut tx, name).await?;
        tx.commit().await?;
        Ok(state)
    }

    async fn promote(
        &self,
        name: &str,
        model: &str,
        keep: usize,
    ) -> Result<AliasState, StoreError> {
        let mut tx = self.pool().await?.begin().await?;
        pg_lock(&mut tx, name).await?;
        let next: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM alias_versions WHERE alias = $1",
        )
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO alias_versions (alias, version, model, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(name)
        .bind(next)
        .bind(model)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE aliases SET current = $2 WHERE alias = $1")
            .bind(name)
            .bind(next)
            .execute(&mut *tx)
            .await?;
        let state = pg_state(&mut tx, name).await?;
        let all: Vec<i64> = state.versions.iter().map(|v| v.version).collect();
        let gone = pruned(&all, next, keep);
        sqlx::query("DELETE FROM alias_versions WHERE alias = $1 AND version = ANY($2)")
            .bind(name)
            .bind(&gone)
            .execute(&mut *tx)
            .await?;
        let state = pg_state(&mut tx, name).await?;
        tx.commit().await?;
        Ok(state)
    }

    async fn rollback(&self, name: &str) -> Result<Option<AliasState>, StoreError> {
        let mut tx = self.pool().await?.begin().await?;
        pg_lock(&mut tx, name).await?;
        let state = pg_state(&mut tx, name).await?;
        let Some(previous) = state.previous() else {
            return Ok(None);
        };
        sqlx::query("UPDATE aliases SET current = $2 WHERE alias = $1")
            .bind(name)
            .bind(previous.version)
            .execute(&mut *tx)
            .await?;
        let state = pg_state(&mut tx, name).await?;
        tx.commit().await?;
        Ok(Some(state))
    }

    async fn record(&self, d: Decision) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO alias_decisions (alias, action, candidate, current, candidate_score, \
             current_score, report, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&d.alias)
        .bind(&d.action)
        .bind(&d.candidate)
        .bind(&d.current)
        .bind(d.candidate_score)
        .bind(d.current_score)
        .bind(&d.report)
        .bind(d.created_at)
        .execute(self.pool().await?)
        .await?;
        Ok(())
    }

    async fn decisions(&self, name: &str, limit: usize) -> Result<Vec<Decision>, StoreError> {
        let rows = sqlx::query(
            "SELECT alias, action, candidate, current, candidate_score, current_score, report, \
             created_at FROM alias_decisions WHERE alias = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(name)
        .bind(limit as i64)
        .fetch_all(self.pool().await?)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Decision {
                alias: r.get(0),
                action: r.get(1),
                candidate: r.get(2),
                current: r.get(3),
                candidate_score: r.get(4),
                current_score: r.get(5),
                report: r.get(6),
                created_at: r.get(7),
            })
            .collect())
    }
}

/// Checks both stores pass, against a fresh store.
#[cfg(test)]
pub(crate) mod conformance {
    use super::*;

    pub async fn versions_promote_prune_and_roll_back(s: &dyn AliasStore) {
        let state = s.alias("assistant", "base").await.unwrap();
        assert_eq!(state.current, 1);
        assert_eq!(state.current().unwrap().model, "base");
        // Known already: the first model given later changes nothing.
        assert_eq!(s.alias("assistant", "other").await.unwrap(), state);
        for model in ["v2", "v3", "v4"] {
            s.promote("assistant", model, 2).await.unwrap();
        }
        let state = s.alias("assistant", "base").await.unwrap();
        let kept: Vec<i64> = state.versions.iter().map(|v| v.version).collect();
        assert_eq!(kept, [1, 3, 4], "the first and the two newest");
        assert_eq!(state.current().unwrap().model, "v4");
        let back = s.rollback("assistant").await.unwrap().unwrap();
        assert_eq!(back.current().unwrap().model, "v3");
        let back = s.rollback("assistant").await.unwrap().unwrap();
        assert_eq!(back.current().unwrap().model, "base");
        assert!(
            s.rollback("assistant").await.unwrap().is_none(),
            "the first stays"
        );
        s.record(Decision {
            alias: "assistant".into(),
            action: "keep".into(),
            candidate: "v5".into(),
            current: "base".into(),
            candidate_score: Some(0.25),
            current_score: Some(0.5),
            report: "{}".into(),
            created_at: now(),
        })
        .await
        .unwrap();
        let decisions = s.decisions("assistant", 10).await.unwrap();
        assert_eq!(decisions.len(), 1);
        assert_eq!(decisions[0].candidate_score, Some(0.25));
        assert!(s.decisions("other", 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn sqlite() {
        let dir = std::env::temp_dir().join(format!("ferrite-alias-{}", uuid::Uuid::new_v4()));
        let s = SqliteStore::open(&dir.join("m.db"), std::time::Duration::from_secs(5)).unwrap();
        versions_promote_prune_and_roll_back(&s).await;
    }
}
