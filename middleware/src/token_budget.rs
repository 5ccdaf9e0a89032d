//! Token accounting that can give tokens back. governor's GCRA cannot return
//! cells, and a request's `max_tokens` must be reserved up front and its
//! unused part refunded, so tokens are counted here; requests use governor.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Tokens per minute: a bucket refilled continuously, which may go into debt
/// when a request used more than it reserved.
#[derive(Debug)]
pub struct TokenBucket {
    capacity: f64,
    per_sec: f64,
    level: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn per_minute(tokens: u64, now: Instant) -> Self {
        let capacity = tokens.max(1) as f64;
        Self {
            capacity,
            per_sec: capacity / 60.0,
            level: capacity,
            last: now,
        }
    }

    /// A bucket as stored elsewhere: its level `elapsed` ago.
    pub fn restore(per_minute: u64, level: f64, elapsed: Duration, now: Instant) -> Self {
        let mut b = Self::per_minute(per_minute, now);
        b.level = level.min(b.capacity);
        b.last = now.checked_sub(elapsed).unwrap_or(now);
        b
    }

    /// The level as of `now` (what to store).
    pub fn level(&mut self, now: Instant) -> f64 {
        self.refill(now);
        self.level
    }

    fn refill(&mut self, now: Instant) {
        let secs = now.duration_since(self.last).as_secs_f64();
        self.level = (self.level + secs * self.per_sec).min(self.capacity);
        self.last = now;
    }

    /// Takes `n` tokens, or says how long until they are there. A request
    /// larger than the whole bucket takes a full bucket, so it can run once.
    pub fn reserve(&mut self, n: u64, now: Instant) -> Result<u64, Duration> {
        self.refill(now);
        let n = (n as f64).min(self.capacity);
        if self.level >= n {
            self.level -= n;
            Ok(n as u64)
        } else {
            Err(Duration::from_secs_f64((n - self.level) / self.per_sec))
        }
    }

    /// Returns `n` tokens (negative: charges more).
    pub fn give_back(&mut self, n: i64, now: Instant) {
        self.refill(now);
        self.level = (self.level + n as f64).min(self.capacity);
    }

    pub fn limit(&self) -> u64 {
        self.capacity as u64
    }

    pub fn remaining(&self) -> u64 {
        self.level.max(0.0) as u64
    }

    pub fn until_full(&self) -> Duration {
        Duration::from_secs_f64(((self.capacity - self.level) / self.per_sec).max(0.0))
    }
}

/// Tokens per UTC day.
#[derive(Debug)]
pub struct DailyQuota {
    limit: u64,
    used: i64,
    day: u64,
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl DailyQuota {
    pub fn new(limit: u64) -> Self {
        Self {
            limit: limit.max(1),
            used: 0,
            day: unix_secs() / 86_400,
        }
    }

    /// A quota as stored elsewhere: `used` of day number `day`.
    pub fn restore(limit: u64, used: i64, day: u64) -> Self {
        Self {
            limit: limit.max(1),
            used,
            day,
        }
    }

    /// The day number and the tokens used on it (what to store).
    pub fn state(&mut self) -> (u64, i64) {
        self.roll();
        (self.day, self.used)
    }

    fn roll(&mut self) {
        let today = unix_secs() / 86_400;
        if today != self.day {
            self.day = today;
            self.used = 0;
        }
    }

    /// Takes `n` tokens of today's quota, or says how long until midnight UTC.
    pub fn reserve(&mut self, n: u64) -> Result<u64, Duration> {
        self.roll();
        let n = n.min(self.limit);
        if self.used + n as i64 <= self.limit as i64 {
            self.used += n as i64;
            Ok(n)
        } else {
            Err(self.until_reset())
        }
    }

    pub fn give_back(&mut self, n: i64) {
        self.roll();
        self.used = (self.used - n).max(0);
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn remaining(&self) -> u64 {
        (self.limit as i64 - self.used).max(0) as u64
    }

    pub fn until_reset(&self) -> Duration {
        Duration::from_secs(86_400 - unix_secs() % 86_400)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_refunds_and_refills() {
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let mut b = TokenBucket::per_minute(600, t0);
        assert_eq!(b.reserve(500, t0), Ok(500));
        let wait = b.reserve(200, t0).expect_err("only 100 left");
        assert_eq!(wait, Duration::from_secs(10));
        b.give_back(400, t0);
        assert_eq!(b.remaining(), 500);
        b.refill(at(6));
        assert_eq!(b.remaining(), 560);
        // Larger than the bucket: needs it full, then takes all of it.
        assert!(b.reserve(10_000, at(6)).is_err());
        assert_eq!(b.reserve(10_000, at(66)), Ok(600));
        b.give_back(-100, at(66));
        assert_eq!(b.remaining(), 0);
        assert_eq!(b.until_full(), Duration::from_secs(70));
    }

    #[test]
    fn daily_quota_is_spent_and_refunded() {
        let mut q = DailyQuota::new(1000);
        assert_eq!(q.reserve(800), Ok(800));
        assert!(q.reserve(300).is_err());
        q.give_back(500);
        assert_eq!(q.remaining(), 700);
        assert_eq!(q.reserve(300), Ok(300));
    }
}
