//! Budgets per token: requests per minute (a sliding window) and LLM tokens per day
//! (prompt plus completion, UTC days, as the accounting counts them), enforced
//! across concurrent requests. Requests that spend LLM tokens take the token's one
//! permit in turn while it has a daily budget, and start only while the day's use
//! is under it, so an overrun is at most the last request's own spend. The day's
//! use starts from the audit trail, so a restart forgets nothing.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Principal;
use crate::error::{Error, Result};

/// Seconds since the epoch at the start of the current UTC day.
fn today() -> i64 {
    let now = super::now();
    now - now.rem_euclid(86_400)
}

/// Seconds until the daily budgets renew (midnight UTC).
pub fn seconds_to_midnight() -> u64 {
    (today() + 86_400 - super::now()).max(1) as u64
}

#[derive(Default)]
struct Use {
    minute: VecDeque<Instant>,
    day: i64,
    /// LLM tokens spent today; `None` until read from the audit trail.
    spent: Option<u64>,
    permit: Option<Arc<Semaphore>>,
}

/// Reads a token's LLM tokens spent since a moment (the audit trail's sum).
pub type SpentSince = Box<dyn Fn(&str, i64) -> Result<u64> + Send + Sync>;

pub struct Budgets {
    uses: Mutex<HashMap<String, Use>>,
    spent_since: SpentSince,
}

/// The right to spend a token's LLM budget, held while the request runs; give the
/// spend back with [`Spending::record`].
pub struct Spending {
    budgets: Arc<Budgets>,
    token: Option<String>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Spending {
    /// Adds what the request spent to the day's use.
    pub fn record(&self, tokens: u64) {
        let Some(token) = &self.token else { return };
        if let Ok(mut uses) = self.budgets.uses.lock() {
            let entry = uses.entry(token.clone()).or_default();
            if let Some(spent) = entry.spent.as_mut() {
                *spent += tokens;
            }
        }
    }
}

impl Budgets {
    pub fn new(spent_since: SpentSince) -> Budgets {
        Budgets { uses: Mutex::new(HashMap::new()), spent_since }
    }

    /// Counts a request against the principal's requests per minute; over the limit
    /// is `RateLimited` with the seconds until one more is allowed.
    pub fn admit(&self, principal: &Principal) -> Result<()> {
        let (Some(token), Some(limit)) = (&principal.token, principal.limits.requests_per_minute) else { return Ok(()) };
        let mut uses = self.uses.lock().map_err(|_| Error::internal("budget lock poisoned"))?;
        let entry = uses.entry(token.clone()).or_default();
        let now = Instant::now();
        while entry.minute.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60)) {
            entry.minute.pop_front();
        }
        if entry.minute.len() >= limit as usize {
            let oldest = entry.minute.front().copied().unwrap_or(now);
            let wait = Duration::from_secs(60).saturating_sub(now.duration_since(oldest));
            return Err(Error::RateLimited {
                message: format!("{limit} requests per minute for this token; try again in {} s", wait.as_secs().max(1)),
                retry_after: wait.as_secs().max(1),
            });
        }
        entry.minute.push_back(now);
        Ok(())
    }

    /// Waits for the principal's turn to spend LLM tokens (while it has a daily
    /// budget, one request at a time), then checks the day's use is under it.
    pub async fn spend(self: &Arc<Self>, principal: &Principal) -> Result<Spending> {
        let (Some(token), Some(limit)) = (&principal.token, principal.limits.tokens_per_day) else {
            return Ok(Spending { budgets: self.clone(), token: None, _permit: None });
        };
        let semaphore = {
            let mut uses = self.uses.lock().map_err(|_| Error::internal("budget lock poisoned"))?;
            uses.entry(token.clone()).or_default().permit.get_or_insert_with(|| Arc::new(Semaphore::new(1))).clone()
        };
        let permit = semaphore.acquire_owned().await.map_err(|_| Error::internal("budget permit closed"))?;
        let spent = self.spent_today(token)?;
        if spent >= limit {
            return Err(Error::RateLimited {
                message: format!("this token's {limit} LLM tokens for today are spent ({spent}); the budget renews at midnight UTC"),
                retry_after: seconds_to_midnight(),
            });
        }
        Ok(Spending { budgets: self.clone(), token: Some(token.clone()), _permit: Some(permit) })
    }

    /// LLM tokens the principal may still spend today; `None`: no daily budget.
    pub fn remaining(&self, principal: &Principal) -> Option<u64> {
        let (token, limit) = (principal.token.as_ref()?, principal.limits.tokens_per_day?);
        let spent = self.spent_today(token).ok()?;
        Some(limit.saturating_sub(spent))
    }

    fn spent_today(&self, token: &str) -> Result<u64> {
        let day = today();
        {
            let uses = self.uses.lock().map_err(|_| Error::internal("budget lock poisoned"))?;
            if let Some(Use { spent: Some(spent), day: d, .. }) = uses.get(token) {
                if *d == day {
                    return Ok(*spent);
                }
            }
        }
        let spent = (self.spent_since)(token, day)?;
        let mut uses = self.uses.lock().map_err(|_| Error::internal("budget lock poisoned"))?;
        let entry = uses.entry(token.to_string()).or_default();
        entry.day = day;
        entry.spent = Some(spent);
        Ok(spent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Limits, Role};

    fn principal(rpm: Option<u32>, per_day: Option<u64>) -> Principal {
        Principal {
            name: "p".into(),
            role: Role::Analyst,
            datasets: None,
            token: Some("t1".into()),
            limits: Limits { requests_per_minute: rpm, tokens_per_day: per_day, confirm_calls: None },
        }
    }

    #[test]
    fn requests_per_minute_are_counted_in_a_sliding_window() {
        let budgets = Budgets::new(Box::new(|_, _| Ok(0)));
        let p = principal(Some(2), None);
        budgets.admit(&p).unwrap();
        budgets.admit(&p).unwrap();
        match budgets.admit(&p) {
            Err(Error::RateLimited { retry_after, .. }) => assert!((1..=60).contains(&retry_after)),
            other => panic!("{other:?}"),
        }
        assert!(budgets.admit(&principal(None, None)).is_ok(), "no limit, no count");
    }

    #[tokio::test]
    async fn the_day_starts_from_the_audit_and_stops_at_the_budget() {
        let budgets = Arc::new(Budgets::new(Box::new(|token, _| Ok(if token == "t1" { 90 } else { 0 }))));
        let p = principal(None, Some(100));
        assert_eq!(budgets.remaining(&p), Some(10));
        let spending = budgets.spend(&p).await.unwrap();
        spending.record(15);
        drop(spending);
        assert_eq!(budgets.remaining(&p), Some(0));
        assert!(matches!(budgets.spend(&p).await, Err(Error::RateLimited { .. })));
    }
}
