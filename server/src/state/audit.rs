//! The audit trail: one row per ask or sql request, whoever made it and however it
//! ended (refusals included), in the state database. Written by the engine's one
//! code path for every interface; read by `GET /v1/audit` (admins) and by the
//! daily budgets (a token's LLM tokens since midnight).

use rusqlite::params;

use super::{now, AuditEntry, AuditPage, StateStore};
use crate::error::{Error, Result};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    principal TEXT NOT NULL,
    token_id TEXT,
    interface TEXT NOT NULL,
    action TEXT NOT NULL,
    dataset TEXT NOT NULL,
    question TEXT,
    sql TEXT,
    rows INTEGER,
    llm_calls INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    estimated_calls INTEGER,
    estimated_tokens INTEGER,
    outcome TEXT NOT NULL,
    message TEXT,
    duration_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_token ON audit(token_id, at);
CREATE INDEX IF NOT EXISTS audit_by_time ON audit(at);
";

/// Which entries `GET /v1/audit` returns.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    pub principal: Option<String>,
    pub dataset: Option<String>,
    pub action: Option<String>,
    /// `ok`, or an error code.
    pub outcome: Option<String>,
    /// Seconds since the epoch, inclusive.
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Entries with a smaller id (the previous page's `next_before`).
    pub before: Option<i64>,
    /// Default 50, at most 500.
    pub limit: Option<u32>,
}

const COLUMNS: &str = "id, at, principal, token_id, interface, action, dataset, question, sql, rows, llm_calls, \
prompt_tokens, completion_tokens, estimated_calls, estimated_tokens, outcome, message, duration_ms";

fn entry_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEntry> {
    let count = |i: usize| row.get::<_, Option<i64>>(i).map(|n| n.map(|n| n.max(0) as u64));
    Ok(AuditEntry {
        id: row.get(0)?,
        at: row.get(1)?,
        principal: row.get(2)?,
        token_id: row.get(3)?,
        interface: row.get(4)?,
        action: row.get(5)?,
        dataset: row.get(6)?,
        question: row.get(7)?,
        sql: row.get(8)?,
        rows: count(9)?,
        llm_calls: count(10)?.unwrap_or(0),
        prompt_tokens: count(11)?.unwrap_or(0),
        completion_tokens: count(12)?.unwrap_or(0),
        estimated_calls: count(13)?,
        estimated_tokens: count(14)?,
        outcome: row.get(15)?,
        message: row.get(16)?,
        duration_ms: count(17)?.unwrap_or(0),
    })
}

impl StateStore {
    /// Appends one entry (its `id` and, when 0, `at` are filled in); the new id.
    pub async fn record_audit(&self, mut entry: AuditEntry) -> Result<i64> {
        if entry.at == 0 {
            entry.at = now();
        }
        self.with(move |conn| {
            let n = |v: u64| v.min(i64::MAX as u64) as i64;
            conn.execute(
                &format!(
                    "INSERT INTO audit ({}) VALUES (NULL, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
                    COLUMNS
                ),
                params![
                    entry.at,
                    entry.principal,
                    entry.token_id,
                    entry.interface,
                    entry.action,
                    entry.dataset,
                    entry.question,
                    entry.sql,
                    entry.rows.map(n),
                    n(entry.llm_calls),
                    n(entry.prompt_tokens),
                    n(entry.completion_tokens),
                    entry.estimated_calls.map(n),
                    entry.estimated_tokens.map(n),
                    entry.outcome,
                    entry.message,
                    n(entry.duration_ms),
                ],
            )?;
            Ok(conn.last_insert_rowid())
        })
        .await
    }

    /// Entries matching `filter`, newest first, one page.
    pub async fn audit(&self, filter: AuditFilter) -> Result<AuditPage> {
        let limit = filter.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(Error::InvalidRequest(format!("limit must be 1 to 500, not {limit}")));
        }
        self.with(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM audit WHERE (?1 IS NULL OR principal = ?1) AND (?2 IS NULL OR dataset = ?2) \
                 AND (?3 IS NULL OR action = ?3) AND (?4 IS NULL OR outcome = ?4) AND (?5 IS NULL OR at >= ?5) \
                 AND (?6 IS NULL OR at <= ?6) AND (?7 IS NULL OR id < ?7) ORDER BY id DESC LIMIT ?8"
            ))?;
            let entries = stmt
                .query_map(
                    params![
                        filter.principal,
                        filter.dataset,
                        filter.action,
                        filter.outcome,
                        filter.since,
                        filter.until,
                        filter.before,
                        limit + 1
                    ],
                    entry_from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let more = entries.len() > limit as usize;
            let entries: Vec<AuditEntry> = entries.into_iter().take(limit as usize).collect();
            let next_before = if more { entries.last().map(|e| e.id) } else { None };
            Ok(AuditPage { entries, next_before })
        })
        .await
    }

    /// LLM tokens (prompt plus completion) a token spent since `since` (seconds
    /// since the epoch). Blocking: for the budgets, which cache it.
    pub fn tokens_spent_since(&self, token_id: &str, since: i64) -> Result<u64> {
        let conn = self.conn.lock().map_err(|_| Error::internal("state lock poisoned"))?;
        let spent: i64 = conn.query_row(
            "SELECT coalesce(sum(prompt_tokens + completion_tokens), 0) FROM audit WHERE token_id = ?1 AND at >= ?2",
            params![token_id, since],
            |row| row.get(0),
        )?;
        Ok(spent.max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(principal: &str, outcome: &str, tokens: u64) -> AuditEntry {
        AuditEntry {
            id: 0,
            at: 0,
            principal: principal.into(),
            token_id: Some(format!("{principal}-token")),
            interface: "http".into(),
            action: "sql".into(),
            dataset: "movies".into(),
            question: None,
            sql: Some("SELECT 1".into()),
            rows: Some(1),
            llm_calls: 1,
            prompt_tokens: tokens,
            completion_tokens: 1,
            estimated_calls: None,
            estimated_tokens: None,
            outcome: outcome.into(),
            message: None,
            duration_ms: 3,
        }
    }

    #[tokio::test]
    async fn entries_page_back_filter_and_sum_a_tokens_spend() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        for i in 0..5 {
            store.record_audit(entry(if i % 2 == 0 { "ann" } else { "bob" }, "ok", 10)).await.unwrap();
        }
        store.record_audit(entry("ann", "rejected_sql", 0)).await.unwrap();
        let page = store.audit(AuditFilter { limit: Some(4), ..Default::default() }).await.unwrap();
        assert_eq!(page.entries.len(), 4);
        assert!(page.entries.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        let rest = store.audit(AuditFilter { before: page.next_before, ..Default::default() }).await.unwrap();
        assert_eq!((rest.entries.len(), rest.next_before), (2, None));
        let ann = store.audit(AuditFilter { principal: Some("ann".into()), outcome: Some("ok".into()), ..Default::default() });
        assert_eq!(ann.await.unwrap().entries.len(), 3);
        assert_eq!(store.tokens_spent_since("ann-token", 0).unwrap(), 3 * 11 + 1);
        assert_eq!(store.tokens_spent_since("ann-token", now() + 10).unwrap(), 0);
        assert!(store.audit(AuditFilter { limit: Some(0), ..Default::default() }).await.is_err());
    }
}
