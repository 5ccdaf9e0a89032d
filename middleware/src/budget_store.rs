//! Budgets shared by replicas: each tenant's windows are one PostgreSQL row,
//! changed under its row lock, so requests on any replica take from the
//! same windows and cannot overshoot, and a restart keeps them. The
//! arithmetic is the in-process one (`token_budget.rs`: a bucket of tokens
//! per minute, a quota per UTC day, and here a bucket of requests per
//! minute), run on the database's clock so replicas need not agree on time.

use std::time::{Duration, Instant};

use ferrite_openapi::ApiError;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Row;
use tokio::sync::OnceCell;

use crate::budget::{refuse, request_headers, token_headers, Tokens};
use crate::memory_postgres::create_schema;
use crate::token_budget::{DailyQuota, TokenBucket};

/// Replicas starting together must not race each other's `CREATE`.
const SCHEMA_LOCK: i64 = 0x6665_7272_6974_6502;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS budget_windows (
    tenant TEXT PRIMARY KEY,
    requests DOUBLE PRECISION NOT NULL,
    tokens DOUBLE PRECISION NOT NULL,
    day BIGINT NOT NULL,
    day_used BIGINT NOT NULL,
    changed_at DOUBLE PRECISION NOT NULL
)";

/// Creates the tenant's row (windows full) or locks the existing one, and
/// reads it with the database's clock, in one round trip.
const LOCK_ROW: &str = "INSERT INTO budget_windows AS b \
    (tenant, requests, tokens, day, day_used, changed_at) \
    VALUES ($1, $2, $3, $4, 0, extract(epoch FROM clock_timestamp())) \
    ON CONFLICT (tenant) DO UPDATE SET tenant = b.tenant \
    RETURNING requests, tokens, day, day_used, changed_at, \
    extract(epoch FROM clock_timestamp())::float8 AS now";

const WRITE_ROW: &str = "UPDATE budget_windows \
    SET requests = $2, tokens = $3, day = $4, day_used = $5, changed_at = $6 \
    WHERE tenant = $1";

/// A tenant's limits: requests a minute, tokens a minute, tokens a day.
pub type Limits = (u32, u64, u64);

/// A reservation granted (the tokens taken and the headers to send), or
/// the 429 saying what ran out.
pub type Granted = Result<(u64, Vec<(String, String)>), ApiError>;

pub struct SharedLedger {
    pool: PgPool,
    schema: OnceCell<()>,
}

/// One tenant's windows, read from its row.
struct Windows {
    requests: Option<(TokenBucket, u32)>,
    tokens: Tokens,
}

impl SharedLedger {
    /// Checks the URL but connects on first use, so that ferrite starts
    /// while the database is still coming up.
    pub fn connect(url: &str) -> Result<Self, sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            // Short: a request waits this long before the store counts as down.
            .acquire_timeout(Duration::from_secs(2))
            .connect_lazy(url)?;
        Ok(Self {
            pool,
            schema: OnceCell::new(),
        })
    }

    async fn pool(&self) -> Result<&PgPool, sqlx::Error> {
        self.schema
            .get_or_try_init(|| create_schema(&self.pool, SCHEMA_LOCK, &[SCHEMA]))
            .await?;
        Ok(&self.pool)
    }

    /// Reserves `tokens` and one request for `tenant`. The outer error is
    /// the store's; the inner one the tenant's 429.
    pub async fn admit(
        &self,
        tenant: &str,
        limits: Limits,
        tokens: u64,
    ) -> Result<Granted, sqlx::Error> {
        self.change(tenant, limits, |w, now| w.admit(tokens, now))
            .await
    }

    /// Gives back what a request reserved and did not use (negative:
    /// charges what it used beyond).
    pub async fn give_back(
        &self,
        tenant: &str,
        limits: Limits,
        tokens: i64,
    ) -> Result<(), sqlx::Error> {
        self.change(tenant, limits, |w, now| w.tokens.give_back(tokens, now))
            .await
    }

    /// Runs `f` on the tenant's windows inside one transaction holding the
    /// row's lock, and stores what it left.
    async fn change<R>(
        &self,
        tenant: &str,
        (rpm, tpm, tpd): Limits,
        f: impl FnOnce(&mut Windows, Instant) -> R,
    ) -> Result<R, sqlx::Error> {
        let mut tx = self.pool().await?.begin().await?;
        let row = sqlx::query(LOCK_ROW)
            .bind(tenant)
            .bind(f64::from(rpm))
            .bind(tpm as f64)
            .bind(today())
            .fetch_one(&mut *tx)
            .await?;
        let (changed, db_now): (f64, f64) = (row.try_get("changed_at")?, row.try_get("now")?);
        let elapsed = Duration::from_secs_f64((db_now - changed).max(0.0));
        let now = Instant::now();
        let day: i64 = row.try_get("day")?;
        let mut windows = Windows {
            requests: (rpm > 0).then(|| {
                let level = row.try_get("requests").unwrap_or(f64::from(rpm));
                (
                    TokenBucket::restore(u64::from(rpm), level, elapsed, now),
                    rpm,
                )
            }),
            tokens: Tokens {
                minute: (tpm > 0).then(|| {
                    let level = row.try_get("tokens").unwrap_or(tpm as f64);
                    TokenBucket::restore(tpm, level, elapsed, now)
                }),
                day: (tpd > 0).then(|| {
                    let used = row.try_get("day_used").unwrap_or(0);
                    DailyQuota::restore(tpd, used, day.max(0) as u64)
                }),
            },
        };
        let result = f(&mut windows, now);
        let (day, day_used) = windows.tokens.day.as_mut().map_or((today(), 0), |q| {
            let (day, used) = q.state();
            (day as i64, used)
        });
        sqlx::query(WRITE_ROW)
            .bind(tenant)
            .bind(
                windows
                    .requests
                    .as_mut()
                    .map_or(f64::from(rpm), |(b, _)| b.level(now)),
            )
            .bind(
                windows
                    .tokens
                    .minute
                    .as_mut()
                    .map_or(tpm as f64, |b| b.level(now)),
            )
            .bind(day)
            .bind(day_used)
            .bind(db_now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(result)
    }
}

impl Windows {
    fn admit(&mut self, tokens: u64, now: Instant) -> Granted {
        let reserved = self.tokens.reserve(tokens, now)?;
        let mut headers = Vec::new();
        if let Some((bucket, rpm)) = &mut self.requests {
            match bucket.reserve(1, now) {
                Ok(_) => {
                    request_headers(*rpm, bucket.remaining(), bucket.until_full(), &mut headers)
                }
                Err(wait) => {
                    self.tokens.give_back(reserved as i64, now);
                    request_headers(*rpm, 0, wait, &mut headers);
                    return Err(refuse("requests per minute", wait, headers, &self.tokens));
                }
            }
        }
        token_headers(&self.tokens, &mut headers);
        Ok((reserved, headers))
    }
}

fn today() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    (secs / 86_400) as i64
}
