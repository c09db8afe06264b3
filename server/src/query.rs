//! One SQL request, the same for every interface (HTTP today; the wire protocol
//! and MCP call the same function): the principal's dataset, the query checked and
//! prepared, its LLM cost estimated and admitted ([`admit`]: the per-query cap, the
//! daily budget, the confirmation threshold), run within what is left of the
//! budget, and recorded in the audit trail however it ends. Also the questions
//! whose query waits for the client's confirmation ([`PendingAsks`]).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use serde_json::json;
use sha2::{Digest, Sha256};
use tag_types::SqlRequest;

use crate::{
    auth::{budget::seconds_to_midnight, Principal},
    engine::Engine,
    error::{Error, Result},
    execution::{ArrowResult, Estimate, ExecutionStats, QueryOptions, Table},
    state::AuditEntry,
};

/// The form of a query's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlFormat {
    Table,
    Arrow,
}

pub enum SqlResult {
    Table(Table),
    Arrow(ArrowResult),
}

/// A query that ran: the SQL as written, its result and what it cost.
pub struct SqlOutcome {
    pub sql: String,
    pub result: SqlResult,
    pub stats: ExecutionStats,
}

/// Runs `request` for `principal`, who came in through `interface` (`http`, ...),
/// returning at most `max_rows` rows; audited however it ends.
pub async fn sql(
    engine: &Engine,
    principal: &Principal,
    interface: &str,
    request: SqlRequest,
    format: SqlFormat,
    max_rows: usize,
) -> Result<SqlOutcome> {
    let started = Instant::now();
    let mut entry = AuditEntry {
        interface: interface.into(),
        action: "sql".into(),
        dataset: request.dataset.clone(),
        sql: Some(request.sql.clone()),
        ..blank_entry()
    };
    let result = run_sql(engine, principal, request, format, max_rows).await;
    entry.duration_ms = started.elapsed().as_millis() as u64;
    match &result {
        Ok(outcome) => {
            entry.rows = Some(match &outcome.result {
                SqlResult::Table(table) => table.row_count,
                SqlResult::Arrow(arrow) => arrow.row_count,
            });
            add_spend(&mut entry, &outcome.stats);
        }
        Err(error) => failed(&mut entry, error),
    }
    engine.audit(principal, entry).await;
    result
}

async fn run_sql(engine: &Engine, principal: &Principal, request: SqlRequest, format: SqlFormat, max_rows: usize) -> Result<SqlOutcome> {
    let dataset = engine.dataset_for(principal, &request.dataset)?;
    let prepared = engine.executor.prepare(&dataset, &request.sql).await?;
    let mut options = QueryOptions { max_rows, llm: engine.llm.clone(), ..Default::default() };
    let mut admitted = None;
    if !prepared.checked.operators.is_empty() {
        engine.require_llm()?;
        // The token's turn to spend: requests with a daily budget spend one at a time.
        let spending = engine.budgets.spend(principal).await?;
        let estimate = engine.executor.estimate(&dataset, &prepared.checked).await?;
        let key = estimate_key(&dataset.info.name, &prepared.checked.original);
        admit(engine, principal, &key, &estimate, request.confirm, request.estimate_id.as_deref())?;
        options.token_budget = engine.budgets.remaining(principal);
        admitted = Some((spending, estimate));
    }
    engine.metrics.sql_query();
    let sql = prepared.checked.original.clone();
    let (result, mut stats) = match format {
        SqlFormat::Table => {
            let (table, stats) = engine.executor.execute_table(prepared, options).await.map_err(|e| engine.query_failure(&dataset, e))?;
            (SqlResult::Table(table), stats)
        }
        SqlFormat::Arrow => {
            let (arrow, stats) = engine.executor.execute_arrow(prepared, options).await.map_err(|e| engine.query_failure(&dataset, e))?;
            (SqlResult::Arrow(arrow), stats)
        }
    };
    engine.metrics.execution(&stats);
    if let Some((spending, estimate)) = admitted {
        spending.record(stats.usage.prompt_tokens + stats.usage.completion_tokens);
        stats.estimate = Some(estimate);
    }
    stats.budget_remaining = engine.budgets.remaining(principal);
    Ok(SqlOutcome { sql, result, stats })
}

/// An audit entry with nothing filled in.
pub(crate) fn blank_entry() -> AuditEntry {
    AuditEntry {
        id: 0,
        at: 0,
        principal: String::new(),
        token_id: None,
        interface: String::new(),
        action: String::new(),
        dataset: String::new(),
        question: None,
        sql: None,
        rows: None,
        llm_calls: 0,
        prompt_tokens: 0,
        completion_tokens: 0,
        estimated_calls: None,
        estimated_tokens: None,
        outcome: "ok".into(),
        message: None,
        duration_ms: 0,
    }
}

/// The query's LLM spend and estimate, into its audit entry.
pub(crate) fn add_spend(entry: &mut AuditEntry, stats: &ExecutionStats) {
    entry.llm_calls += stats.llm_calls;
    entry.prompt_tokens += stats.usage.prompt_tokens;
    entry.completion_tokens += stats.usage.completion_tokens;
    if let Some(estimate) = &stats.estimate {
        entry.estimated_calls = Some(estimate.llm_calls);
        entry.estimated_tokens = Some(estimate.tokens);
    }
}

/// How a request failed, into its audit entry (with the estimate of one that
/// waits for confirmation).
pub(crate) fn failed(entry: &mut AuditEntry, error: &Error) {
    entry.outcome = error.code().into();
    entry.message = Some(crate::text::shorten(&error.to_string(), 500));
    if let Error::Confirm { details, .. } = error {
        entry.estimated_calls = details["estimate"]["llm_calls"].as_u64();
        entry.estimated_tokens = details["estimate"]["tokens"].as_u64();
    }
}

/// What an estimate is of: the dataset and the query.
pub(crate) fn estimate_key(dataset: &str, sql: &str) -> String {
    format!("{dataset}\n{sql}")
}

/// The id of an estimate of `key`: the same query with the same estimate has the
/// same id, so a confirmation holds until the estimate changes.
pub(crate) fn estimate_id(key: &str, estimate: &Estimate) -> String {
    let digest = Sha256::digest(format!("{key}\n{}\n{}", estimate.llm_calls, estimate.tokens).as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Whether a query with this estimate may run now: refused over the per-query cap
/// (`too_costly`) or over what is left of the daily budget (`rate_limited`); over
/// the principal's confirmation threshold it runs only when the request confirms
/// this very estimate (`confirmation_required`, `estimate_changed`).
pub fn admit(engine: &Engine, principal: &Principal, key: &str, estimate: &Estimate, confirm: bool, given: Option<&str>) -> Result<()> {
    let max = engine.config.query.max_llm_calls;
    if estimate.llm_calls > max {
        return Err(Error::TooCostly(format!(
            "the query is estimated at {} LLM calls; one query may make at most {max} (query.max_llm_calls). \
Narrow it with cheap SQL predicates (WHERE, LIMIT) before the LLM operators",
            estimate.llm_calls
        )));
    }
    if let Some(remaining) = engine.budgets.remaining(principal) {
        if estimate.tokens > remaining {
            return Err(Error::RateLimited {
                message: format!(
                    "the query is estimated at {} LLM tokens and this token has {remaining} left today; the budget renews at midnight UTC",
                    estimate.tokens
                ),
                retry_after: seconds_to_midnight(),
            });
        }
    }
    let Some(threshold) = principal.limits.confirm_calls.filter(|t| estimate.llm_calls > *t) else { return Ok(()) };
    let id = estimate_id(key, estimate);
    let details = json!({ "estimate": estimate, "estimate_id": id });
    let about = format!("about {} LLM calls and about {} tokens", estimate.llm_calls, estimate.tokens);
    match (confirm, given) {
        (false, _) => Err(Error::Confirm {
            code: "confirmation_required",
            message: format!(
                "this query needs {about}, over the {threshold} calls that need a confirmation; \
send the same request with \"confirm\": true and \"estimate_id\": \"{id}\" to run it"
            ),
            details,
        }),
        (true, None) => Err(Error::InvalidRequest(
            "\"confirm\": true needs the \"estimate_id\" of the estimate being confirmed".into(),
        )),
        (true, Some(given)) if given != id => Err(Error::Confirm {
            code: "estimate_changed",
            message: format!(
                "the estimate changed since it was confirmed: the query now needs {about}; \
confirm again with \"estimate_id\": \"{id}\""
            ),
            details,
        }),
        (true, Some(_)) => Ok(()),
    }
}

/// A question whose query waits for confirmation: what the confirming request
/// needs to run it without writing the SQL again.
#[derive(Debug, Clone)]
pub struct PendingAsk {
    pub owner: String,
    pub dataset: String,
    pub question: String,
    pub conversation_id: Option<String>,
    pub sql: String,
    created: Instant,
}

/// How long a question waits for its confirmation.
pub const PENDING_FOR: Duration = Duration::from_secs(15 * 60);
/// Questions kept waiting at most (the oldest go first).
const MAX_PENDING: usize = 1000;

/// Questions waiting for confirmation, by estimate id; in memory (a restart asks
/// again).
#[derive(Default)]
pub struct PendingAsks(Mutex<HashMap<String, PendingAsk>>);

impl PendingAsks {
    pub fn put(&self, estimate_id: String, owner: &str, dataset: &str, question: &str, conversation_id: Option<String>, sql: String) {
        let Ok(mut pending) = self.0.lock() else { return };
        pending.retain(|_, p| p.created.elapsed() < PENDING_FOR);
        if pending.len() >= MAX_PENDING {
            if let Some(oldest) = pending.iter().min_by_key(|(_, p)| p.created).map(|(id, _)| id.clone()) {
                pending.remove(&oldest);
            }
        }
        let ask = PendingAsk {
            owner: owner.into(),
            dataset: dataset.into(),
            question: question.into(),
            conversation_id,
            sql,
            created: Instant::now(),
        };
        pending.insert(estimate_id, ask);
    }

    /// The waiting question of `owner` with this estimate id (still waiting).
    pub fn get(&self, estimate_id: &str, owner: &str) -> Option<PendingAsk> {
        let pending = self.0.lock().ok()?;
        pending.get(estimate_id).filter(|p| p.owner == owner && p.created.elapsed() < PENDING_FOR).cloned()
    }

    /// Takes the question out; `None` when another request took it first.
    pub fn remove(&self, estimate_id: &str) -> Option<PendingAsk> {
        self.0.lock().ok()?.remove(estimate_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_estimate_id_follows_the_query_and_its_estimate() {
        let estimate = Estimate { llm_calls: 300, tokens: 9000, ..Default::default() };
        let key = estimate_key("movies", "SELECT 1");
        assert_eq!(estimate_id(&key, &estimate), estimate_id(&key, &estimate.clone()));
        assert_ne!(estimate_id(&key, &estimate), estimate_id(&key, &Estimate { llm_calls: 301, ..estimate.clone() }));
        assert_ne!(estimate_id(&key, &estimate), estimate_id(&estimate_key("support", "SELECT 1"), &estimate));
    }

    #[test]
    fn a_pending_question_is_taken_once_and_only_by_its_owner() {
        let pending = PendingAsks::default();
        pending.put("e1".into(), "ann", "movies", "q", None, "SELECT 1".into());
        assert!(pending.get("e1", "bob").is_none());
        assert_eq!(pending.get("e1", "ann").map(|p| p.sql), Some("SELECT 1".into()));
        assert!(pending.remove("e1").is_some());
        assert!(pending.get("e1", "ann").is_none() && pending.remove("e1").is_none());
    }
}
