//! Per-tenant budgets: requests per minute (governor), tokens per minute and
//! tokens per day. A request reserves its prompt plus `max_tokens` up front;
//! what it did not use is given back when it ends, so concurrent requests
//! cannot overshoot. Every response carries OpenAI's `x-ratelimit-*` headers;
//! an exhausted budget is a 429 with `Retry-After`. With `budgets.url` the
//! windows live in PostgreSQL (`budget_store.rs`), shared by every replica.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use parking_lot::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ferrite_engine::Engine;
use ferrite_openapi::chat::{ChatRequest, MessageContent};
use ferrite_openapi::common::Usage;
use ferrite_openapi::completions::{CompletionRequest, PromptInput};
use ferrite_openapi::ApiError;
use futures::future::BoxFuture;
use futures::StreamExt;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use moka::sync::Cache;
use serde::{Deserialize, Serialize};
use tower::{Layer, Service, ServiceExt};

use crate::budget_store::SharedLedger;
use crate::context::rendered_tokens;
use crate::service::{take_ready, ChatResponse};
use crate::token_budget::{DailyQuota, TokenBucket};

/// Limits; 0 means unlimited.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetConfig {
    pub requests_per_minute: u32,
    pub tokens_per_minute: u64,
    pub tokens_per_day: u64,
    /// Per-tenant overrides (tenant = API key name or JWT `sub`).
    pub tenants: BTreeMap<String, Limits>,
    /// `postgres://...`: keep the windows there, shared by every replica
    /// (default: in this process).
    pub url: Option<String>,
    /// What to do while that database cannot be reached.
    pub unreachable: Unreachable,
}

/// While the shared budget store is down: serve unmetered (logged and
/// counted in `ferrite:budget_store_errors_total`), or refuse with 503.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unreachable {
    #[default]
    FailOpen,
    FailClosed,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u64>,
    pub tokens_per_day: Option<u64>,
}

impl BudgetConfig {
    pub fn enabled(&self) -> bool {
        self.requests_per_minute > 0
            || self.tokens_per_minute > 0
            || self.tokens_per_day > 0
            || !self.tenants.is_empty()
    }

    pub(crate) fn limits(&self, tenant: &str) -> (u32, u64, u64) {
        let o = self.tenants.get(tenant).cloned().unwrap_or_default();
        (
            o.requests_per_minute.unwrap_or(self.requests_per_minute),
            o.tokens_per_minute.unwrap_or(self.tokens_per_minute),
            o.tokens_per_day.unwrap_or(self.tokens_per_day),
        )
    }
}

type RequestLimiter =
    RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

/// A tenant's token windows.
#[derive(Default)]
pub(crate) struct Tokens {
    pub minute: Option<TokenBucket>,
    pub day: Option<DailyQuota>,
}

impl Tokens {
    /// Reserves `tokens` of the day's and the minute's windows, or the 429
    /// saying which ran out (with nothing taken).
    pub fn reserve(&mut self, tokens: u64, now: Instant) -> Result<u64, ApiError> {
        let day = match self.day.as_mut().map(|q| q.reserve(tokens)) {
            Some(Err(wait)) => return Err(refuse("tokens per day", wait, Vec::new(), self)),
            Some(Ok(n)) => Some(n),
            None => None,
        };
        let minute = match self.minute.as_mut().map(|b| b.reserve(tokens, now)) {
            Some(Err(wait)) => {
                if let (Some(q), Some(n)) = (self.day.as_mut(), day) {
                    q.give_back(n as i64);
                }
                return Err(refuse("tokens per minute", wait, Vec::new(), self));
            }
            Some(Ok(n)) => Some(n),
            None => None,
        };
        Ok(minute.or(day).unwrap_or(tokens))
    }

    pub fn give_back(&mut self, tokens: i64, now: Instant) {
        if let Some(b) = &mut self.minute {
            b.give_back(tokens, now);
        }
        if let Some(q) = &mut self.day {
            q.give_back(tokens);
        }
    }
}

/// The request headers: the limit, what is left and when it is full again.
pub(crate) fn request_headers(
    limit: u32,
    left: u64,
    reset: Duration,
    out: &mut Vec<(String, String)>,
) {
    out.push(("x-ratelimit-limit-requests".into(), limit.to_string()));
    out.push(("x-ratelimit-remaining-requests".into(), left.to_string()));
    out.push(("x-ratelimit-reset-requests".into(), duration(reset)));
}

/// One tenant's budgets.
struct Tenant {
    requests: Option<(RequestLimiter, u32)>,
    tokens: Mutex<Tokens>,
}

impl Tenant {
    fn new((rpm, tpm, tpd): (u32, u64, u64)) -> Self {
        let now = Instant::now();
        let requests = NonZeroU32::new(rpm).map(|n| {
            let limiter = RateLimiter::direct(Quota::per_minute(n))
                .with_middleware::<StateInformationMiddleware>();
            (limiter, rpm)
        });
        Self {
            requests,
            tokens: Mutex::new(Tokens {
                minute: (tpm > 0).then(|| TokenBucket::per_minute(tpm, now)),
                day: (tpd > 0).then(|| DailyQuota::new(tpd)),
            }),
        }
    }

    /// The token headers as they stand.
    fn token_headers(&self, out: &mut Vec<(String, String)>) {
        token_headers(&self.tokens.lock(), out);
    }

    fn give_back(&self, tokens: i64) {
        self.tokens.lock().give_back(tokens, Instant::now());
    }

    /// Reserves `tokens` and one request, or the 429 saying what ran out.
    fn admit(self: &Arc<Self>, tokens: u64) -> Result<Ticket, ApiError> {
        let mut headers = Vec::new();
        let reserved = self.tokens.lock().reserve(tokens, Instant::now())?;
        if let Some((limiter, rpm)) = &self.requests {
            match limiter.check() {
                Ok(state) => {
                    let left = state.remaining_burst_capacity();
                    let interval = state.quota().replenish_interval();
                    let full = interval * rpm.saturating_sub(left);
                    request_headers(*rpm, left.into(), full, &mut headers);
                }
                Err(not_until) => {
                    self.give_back(reserved as i64);
                    let wait = not_until.wait_time_from(DefaultClock::default().now());
                    request_headers(*rpm, 0, wait, &mut headers);
                    let t = self.tokens.lock();
                    return Err(refuse("requests per minute", wait, headers, &t));
                }
            }
        }
        Ok(Ticket {
            account: Account::Local(self.clone()),
            reserved,
            used: 0,
            exact: false,
            headers,
        })
    }
}

pub(crate) fn token_headers(t: &Tokens, out: &mut Vec<(String, String)>) {
    if let Some(b) = &t.minute {
        out.push(("x-ratelimit-limit-tokens".into(), b.limit().to_string()));
        out.push((
            "x-ratelimit-remaining-tokens".into(),
            b.remaining().to_string(),
        ));
        out.push(("x-ratelimit-reset-tokens".into(), duration(b.until_full())));
    }
    if let Some(q) = &t.day {
        out.push(("x-ratelimit-limit-tokens-day".into(), q.limit().to_string()));
        out.push((
            "x-ratelimit-remaining-tokens-day".into(),
            q.remaining().to_string(),
        ));
        out.push((
            "x-ratelimit-reset-tokens-day".into(),
            duration(q.until_reset()),
        ));
    }
}

/// The 429 for an exhausted budget, with every header.
pub(crate) fn refuse(
    what: &str,
    wait: Duration,
    mut out: Vec<(String, String)>,
    tokens: &Tokens,
) -> ApiError {
    token_headers(tokens, &mut out);
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    out.push(("retry-after".into(), secs.to_string()));
    metrics::counter!("ferrite:rate_limited_requests_total", "limit" => what.to_string())
        .increment(1);
    ApiError::rate_limited(format!(
        "Rate limit reached on {what}. Please try again in {}.",
        duration(wait)
    ))
    .with_headers(out)
}

/// OpenAI's duration style: `20ms`, `1.5s`, `6m0s`, `1h2m3s`.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m, s) = (
        ms / 3_600_000,
        ms / 60_000 % 60,
        (ms % 60_000) as f64 / 1000.0,
    );
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

/// Where a reservation is kept.
enum Account {
    Local(Arc<Tenant>),
    Shared {
        ledger: Arc<SharedLedger>,
        tenant: String,
        limits: (u32, u64, u64),
    },
    /// Let through while the shared store was down (`fail_open`).
    Unmetered,
}

impl Account {
    fn give_back(&self, tokens: i64) {
        match self {
            Self::Local(tenant) => tenant.give_back(tokens),
            Self::Shared { .. } if tokens == 0 => {}
            Self::Shared {
                ledger,
                tenant,
                limits,
            } => {
                // Dropped on an async worker: the refund runs as its own task.
                let (ledger, tenant, limits) = (ledger.clone(), tenant.clone(), *limits);
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        if let Err(e) = ledger.give_back(&tenant, limits, tokens).await {
                            tracing::warn!(%tenant, error = %e, "cannot refund a budget reservation");
                            metrics::counter!("ferrite:budget_store_errors_total").increment(1);
                        }
                    });
                }
            }
            Self::Unmetered => {}
        }
    }
}

/// A request's reservation; whatever was not used goes back when it drops.
struct Ticket {
    account: Account,
    reserved: u64,
    /// Tokens seen so far (exact once usage arrived).
    used: u64,
    exact: bool,
    headers: Vec<(String, String)>,
}

impl Ticket {
    /// Counts what a streamed chunk shows: exact usage when it comes, else
    /// about one token per choice in the chunk.
    fn observe(&mut self, prompt_estimate: u64, usage: Option<Usage>, choices: usize) {
        if let Some(u) = usage {
            self.used = u64::from(u.total_tokens);
            self.exact = true;
        } else if !self.exact {
            self.used = self.used.max(prompt_estimate) + choices as u64;
        }
    }
}

/// A request let through: the headers to send, and its reservation, which
/// settles when this is dropped.
pub struct Admission {
    pub headers: Vec<(String, String)>,
    ticket: Ticket,
    prompt: u64,
}

impl Admission {
    /// Feeds each streamed item's usage (if any) and number of choices.
    pub fn observe(&mut self, usage: Option<Usage>, choices: usize) {
        self.ticket.observe(self.prompt, usage, choices);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.account
            .give_back(self.reserved as i64 - self.used as i64);
    }
}

/// The tenants' budgets, shared by every clone of the layer.
pub struct Budgets {
    config: BudgetConfig,
    tenants: Cache<String, Arc<Tenant>>,
    /// The windows in PostgreSQL, when `budgets.url` is set.
    ledger: Option<Arc<SharedLedger>>,
    engine: Arc<dyn Engine>,
}

impl Budgets {
    pub fn new(
        config: BudgetConfig,
        ledger: Option<Arc<SharedLedger>>,
        engine: Arc<dyn Engine>,
    ) -> Arc<Self> {
        Arc::new(Self {
            config,
            // Idle longer than a day, a tenant's windows have all reset.
            tenants: Cache::builder()
                .time_to_idle(Duration::from_secs(90_000))
                .build(),
            ledger,
            engine,
        })
    }

    /// The same tenants' budgets, counting tokens with another model's
    /// tokenizer: every loaded model draws on one budget per tenant.
    pub fn share(&self, engine: Arc<dyn Engine>) -> Arc<Self> {
        Arc::new(Self {
            config: self.config.clone(),
            // A moka cache's clones share their entries.
            tenants: self.tenants.clone(),
            ledger: self.ledger.clone(),
            engine,
        })
    }

    /// Reserves `prompt + completion` tokens and one request for `tenant`,
    /// or the 429 saying what ran out.
    pub async fn admit(
        &self,
        tenant: &str,
        prompt: u64,
        completion: u64,
    ) -> Result<Admission, ApiError> {
        let mut ticket = match &self.ledger {
            None => {
                let local = self.tenant(tenant);
                let mut ticket = local.admit(prompt + completion)?;
                local.token_headers(&mut ticket.headers);
                ticket
            }
            Some(ledger) => {
                self.admit_shared(ledger, tenant, prompt + completion)
                    .await?
            }
        };
        Ok(Admission {
            headers: std::mem::take(&mut ticket.headers),
            ticket,
            prompt,
        })
    }

    async fn admit_shared(
        &self,
        ledger: &Arc<SharedLedger>,
        tenant: &str,
        tokens: u64,
    ) -> Result<Ticket, ApiError> {
        let limits = self.config.limits(tenant);
        let (account, reserved, headers) = match ledger.admit(tenant, limits, tokens).await {
            Ok(granted) => {
                let (reserved, headers) = granted?;
                let account = Account::Shared {
                    ledger: ledger.clone(),
                    tenant: tenant.to_string(),
                    limits,
                };
                (account, reserved, headers)
            }
            Err(e) => {
                metrics::counter!("ferrite:budget_store_errors_total").increment(1);
                tracing::warn!(%tenant, error = %e, "the shared budget store is unreachable");
                if self.config.unreachable == Unreachable::FailClosed {
                    return Err(ApiError::unavailable(
                        "Budgets cannot be checked: the shared budget store is unreachable.",
                    ));
                }
                (Account::Unmetered, 0, Vec::new())
            }
        };
        Ok(Ticket {
            account,
            reserved,
            used: 0,
            exact: false,
            headers,
        })
    }

    fn tenant(&self, name: &str) -> Arc<Tenant> {
        self.tenants.get_with(name.to_string(), || {
            Arc::new(Tenant::new(self.config.limits(name)))
        })
    }

    /// Prompt tokens (as the tokenizer counts the messages' text), and the
    /// most the request may generate.
    async fn reservation(&self, req: &ChatRequest) -> (u64, u64) {
        // The prompt as the chat template renders it (roles, tools), so that
        // the reservation covers what the engine will count; the messages'
        // text where the engine cannot render.
        let prompt = match rendered_tokens(self.engine.as_ref(), req).await {
            Some(n) => u64::from(n),
            None => {
                let text: String = req
                    .messages
                    .iter()
                    .filter_map(|m| match &m.content {
                        Some(MessageContent::Text(t)) => Some(t.clone()),
                        Some(MessageContent::Parts(_)) => serde_json::to_string(&m.content).ok(),
                        None => None,
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                match self.engine.count_tokens(&text).await {
                    Ok(n) => n as u64,
                    Err(_) => text.len() as u64 / 4,
                }
            }
        };
        let context = u64::from(self.engine.info().meta.context_length);
        let limit = req
            .max_completion_tokens
            .or(req.max_tokens)
            .filter(|&n| n > 0)
            .map_or(context.saturating_sub(prompt), |n| n as u64);
        // A cap the engine cuts to the context is reserved as cut.
        let limit = if req.context.max_tokens_is_cap {
            limit.min(context.saturating_sub(prompt))
        } else {
            limit
        };
        let n = u64::from(req.n.unwrap_or(1).max(1));
        (prompt, limit.min(context) * n)
    }

    /// The same for a text completion: every prompt, every choice.
    pub async fn completion_reservation(&self, req: &CompletionRequest) -> (u64, u64) {
        let context = u64::from(self.engine.info().meta.context_length);
        let inputs = req.prompt.inputs();
        let runs = inputs.len() as u64 * u64::from(req.n.unwrap_or(1).max(1));
        let mut prompt = 0;
        for input in inputs {
            prompt += match input {
                PromptInput::Tokens(ids) => ids.len() as u64,
                PromptInput::Text(t) => match self.engine.count_tokens(&t).await {
                    Ok(n) => n as u64,
                    Err(_) => t.len() as u64 / 4,
                },
            };
        }
        let limit = req
            .completion_limit()
            .ok()
            .flatten()
            .map_or(context, u64::from);
        (prompt, limit.min(context) * runs)
    }
}

#[derive(Clone)]
pub struct BudgetLayer {
    budgets: Arc<Budgets>,
}

impl BudgetLayer {
    pub fn new(budgets: Arc<Budgets>) -> Self {
        Self { budgets }
    }
}

impl<S> Layer<S> for BudgetLayer {
    type Service = BudgetService<S>;

    fn layer(&self, inner: S) -> BudgetService<S> {
        BudgetService {
            inner,
            budgets: self.budgets.clone(),
        }
    }
}

#[derive(Clone)]
pub struct BudgetService<S> {
    inner: S,
    budgets: Arc<Budgets>,
}

impl<S> Service<ChatRequest> for BudgetService<S>
where
    S: Service<ChatRequest, Response = ChatResponse, Error = ApiError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = ChatResponse;
    type Error = ApiError;
    type Future = BoxFuture<'static, Result<ChatResponse, ApiError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ApiError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        let inner = take_ready(&mut self.inner);
        let budgets = self.budgets.clone();
        Box::pin(async move {
            let (prompt, completion) = budgets.reservation(&req).await;
            let mut admission = budgets
                .admit(&req.context.tenant, prompt, completion)
                .await?;
            let headers = std::mem::take(&mut admission.headers);
            let mut resp = match inner.oneshot(req).await {
                Ok(resp) => resp,
                Err(e) => return Err(e.with_headers(headers)),
            };
            resp.outcome.rate_limits.extend(headers);
            resp.stream = resp
                .stream
                .map(move |item| {
                    if let Ok(chunk) = &item {
                        admission.observe(chunk.usage, chunk.choices.len());
                    }
                    item
                })
                .boxed();
            Ok(resp)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::EngineService;
    use ferrite_engine::scripted::ScriptedEngine;
    use ferrite_openapi::chat::{ChatMessage, Role};

    fn service(config: BudgetConfig) -> BudgetService<EngineService> {
        let engine = Arc::new(ScriptedEngine::new("one two three"));
        let budgets = Budgets::new(config, None, engine.clone());
        BudgetLayer::new(budgets).layer(EngineService::new(engine))
    }

    fn request(tenant: &str, max_tokens: i64) -> ChatRequest {
        let mut r = ChatRequest {
            messages: vec![ChatMessage::text(Role::User, "a b c d")],
            max_tokens: Some(max_tokens),
            ..ChatRequest::default()
        };
        r.context.tenant = tenant.into();
        r
    }

    async fn finish(resp: ChatResponse) -> Vec<(String, String)> {
        let _ = resp.stream.collect::<Vec<_>>().await;
        resp.outcome.rate_limits
    }

    fn get<'a>(h: &'a [(String, String)], name: &str) -> &'a str {
        h.iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    #[tokio::test]
    async fn requests_per_minute_per_tenant() {
        let svc = service(BudgetConfig {
            requests_per_minute: 2,
            ..BudgetConfig::default()
        });
        for left in ["1", "0"] {
            let h = finish(svc.clone().oneshot(request("a", 5)).await.unwrap()).await;
            assert_eq!(get(&h, "x-ratelimit-remaining-requests"), left);
            assert_eq!(get(&h, "x-ratelimit-limit-requests"), "2");
        }
        let err = svc.clone().oneshot(request("a", 5)).await.err().unwrap();
        assert_eq!(err.status, 429);
        assert_eq!(err.kind, "rate_limit_exceeded");
        assert_eq!(get(&err.headers, "retry-after"), "30");
        assert!(svc.clone().oneshot(request("b", 5)).await.is_ok());
    }

    #[tokio::test]
    async fn unused_tokens_come_back() {
        let svc = service(BudgetConfig {
            tokens_per_minute: 100,
            ..BudgetConfig::default()
        });
        // 4 prompt + 60 reserved; the scripted answer uses 1 + 3.
        let resp = svc.clone().oneshot(request("a", 60)).await.unwrap();
        assert_eq!(
            get(&resp.outcome.rate_limits, "x-ratelimit-remaining-tokens"),
            "36"
        );
        // While the first is in flight, a second cannot reserve 64.
        let err = svc.clone().oneshot(request("a", 60)).await.err().unwrap();
        assert_eq!(err.status, 429);
        finish(resp).await;
        let resp = svc.clone().oneshot(request("a", 60)).await.unwrap();
        let left: u64 = get(&resp.outcome.rate_limits, "x-ratelimit-remaining-tokens")
            .parse()
            .unwrap();
        assert!((32..=33).contains(&left), "{left}");
    }

    #[test]
    fn durations_like_openai() {
        assert_eq!(duration(Duration::from_millis(20)), "20ms");
        assert_eq!(duration(Duration::from_secs(1)), "1s");
        assert_eq!(duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(duration(Duration::from_secs(360)), "6m0s");
        assert_eq!(duration(Duration::from_secs(3723)), "1h2m3s");
    }
}
