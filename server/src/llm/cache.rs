//! The persistent response cache of operator calls: SQLite under the data folder,
//! keyed by the SHA-256 of backend, model, the full prompt (every message) and the
//! sampling parameters (temperature is always 0, the completion cap, the answer
//! constraint). It survives restarts, keeps at most `max_entries` answers (least
//! recently used go first), and can be disabled or cleared.

use std::{path::Path, sync::Mutex};

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{ChatRequest, Constraint, Usage};
use crate::error::{Error, Result};

pub struct ResponseCache {
    store: Mutex<Store>,
    max_entries: usize,
}

/// The connection and its number of entries, kept here so that a put does not
/// count the table (a scan of up to `max_entries` rows) each time.
struct Store {
    conn: Connection,
    entries: u64,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache").field("max_entries", &self.max_entries).finish()
    }
}

/// A cached answer and the usage of the call that produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedAnswer {
    pub text: String,
    pub usage: Usage,
}

impl ResponseCache {
    pub fn open(path: &Path, max_entries: usize) -> Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::Config(format!("cannot create {}: {e}", parent.display())))?;
        }
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS responses (
                 key TEXT PRIMARY KEY,
                 answer TEXT NOT NULL,
                 prompt_tokens INTEGER NOT NULL,
                 completion_tokens INTEGER NOT NULL,
                 last_used INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS responses_last_used ON responses(last_used);",
        )?;
        let entries = conn.query_row("SELECT count(*) FROM responses", [], |row| row.get::<_, i64>(0))? as u64;
        Ok(ResponseCache { store: Mutex::new(Store { conn, entries }), max_entries: max_entries.max(1) })
    }

    /// The cache key of `request` sent to `model` on `backend`.
    pub fn key(backend: &str, model: &str, request: &ChatRequest) -> String {
        let constraint = request.constraint.as_ref().map(|c| match c {
            Constraint::YesNo => json!("yes_no"),
            Constraint::OneOf(labels) => json!({ "one_of": labels }),
            Constraint::UnitScore => json!("unit_score"),
            Constraint::NumberList => json!("number_list"),
            Constraint::Grammar(grammar) => json!({ "grammar": grammar }),
        });
        let mut material = json!({
            "backend": backend,
            "model": model,
            "messages": request.messages,
            "max_tokens": request.max_tokens,
            "temperature": 0,
            "constraint": constraint,
        });
        match request.sampling {
            super::Sampling::Greedy => {}
            super::Sampling::Prose => material["sampling"] = json!("prose"),
            super::Sampling::Random { temperature, seed } => material["sampling"] = json!({ "temperature": temperature, "seed": seed }),
        }
        Sha256::digest(material.to_string().as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Store>> {
        self.store.lock().map_err(|_| Error::internal("response cache lock poisoned"))
    }

    // Statements are prepared once per connection (`prepare_cached`): an operator
    // looks up and stores one answer per distinct prompt.
    pub fn get(&self, key: &str) -> Result<Option<CachedAnswer>> {
        let store = self.lock()?;
        let found = store
            .conn
            .prepare_cached(
                "UPDATE responses SET last_used = (SELECT coalesce(max(last_used), 0) + 1 FROM responses)
                 WHERE key = ?1 RETURNING answer, prompt_tokens, completion_tokens",
            )?
            .query_row(
                params![key],
                |row| {
                    Ok(CachedAnswer {
                        text: row.get(0)?,
                        usage: Usage {
                            prompt_tokens: row.get::<_, i64>(1)? as u64,
                            completion_tokens: row.get::<_, i64>(2)? as u64,
                            cached_prompt_tokens: 0,
                        },
                    })
                },
            )
            .optional()?;
        Ok(found)
    }

    pub fn put(&self, key: &str, answer: &str, usage: Usage) -> Result<()> {
        let mut store = self.lock()?;
        let existed = store.conn.prepare_cached("SELECT 1 FROM responses WHERE key = ?1")?.exists(params![key])?;
        store
            .conn
            .prepare_cached(
                "INSERT OR REPLACE INTO responses (key, answer, prompt_tokens, completion_tokens, last_used)
                 VALUES (?1, ?2, ?3, ?4, (SELECT coalesce(max(last_used), 0) + 1 FROM responses))",
            )?
            .execute(params![key, answer, usage.prompt_tokens as i64, usage.completion_tokens as i64])?;
        store.entries += u64::from(!existed);
        let excess = store.entries.saturating_sub(self.max_entries as u64);
        if excess > 0 {
            // Evict a tenth more than needed, so eviction is not paid on every insert.
            let evict = excess + (self.max_entries as u64 / 10);
            let evicted = store
                .conn
                .prepare_cached("DELETE FROM responses WHERE key IN (SELECT key FROM responses ORDER BY last_used LIMIT ?1)")?
                .execute(params![evict as i64])?;
            store.entries -= evicted as u64;
        }
        Ok(())
    }

    pub fn len(&self) -> Result<u64> {
        let store = self.lock()?;
        Ok(store.conn.query_row("SELECT count(*) FROM responses", [], |row| row.get::<_, i64>(0))? as u64)
    }

    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Removes every entry; returns how many there were.
    pub fn clear(&self) -> Result<u64> {
        let mut store = self.lock()?;
        let removed = store.conn.execute("DELETE FROM responses", [])? as u64;
        store.entries = 0;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Message;

    fn request(prompt: &str) -> ChatRequest {
        ChatRequest::new(vec![Message::system("s"), Message::user(prompt)], 8)
    }

    #[test]
    fn answers_survive_reopening_and_keys_cover_every_parameter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.sqlite3");
        let key = ResponseCache::key("openai", "m", &request("is it?"));
        let usage = Usage { prompt_tokens: 12, completion_tokens: 1, cached_prompt_tokens: 0 };
        ResponseCache::open(&path, 10).unwrap().put(&key, "yes", usage).unwrap();
        let cache = ResponseCache::open(&path, 10).unwrap();
        assert_eq!(cache.get(&key).unwrap(), Some(CachedAnswer { text: "yes".into(), usage }));

        let mut constrained = request("is it?");
        constrained.constraint = Some(Constraint::YesNo);
        let others = [
            ResponseCache::key("embedded", "m", &request("is it?")),
            ResponseCache::key("openai", "other", &request("is it?")),
            ResponseCache::key("openai", "m", &request("is it not?")),
            ResponseCache::key("openai", "m", &ChatRequest::new(request("is it?").messages, 9)),
            ResponseCache::key("openai", "m", &constrained),
        ];
        for other in others {
            assert_ne!(other, key);
            assert_eq!(cache.get(&other).unwrap(), None);
        }
        assert_eq!(cache.clear().unwrap(), 1);
        assert_eq!(cache.get(&key).unwrap(), None);
    }

    #[test]
    fn the_least_recently_used_entries_are_evicted() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResponseCache::open(&dir.path().join("c.sqlite3"), 10).unwrap();
        for i in 0..10 {
            cache.put(&format!("k{i}"), "a", Usage::default()).unwrap();
        }
        cache.get("k0").unwrap(); // k0 is now the most recently used
        cache.put("k10", "a", Usage::default()).unwrap();
        assert!(cache.len().unwrap() <= 10);
        assert!(cache.get("k0").unwrap().is_some(), "recently used entries stay");
        assert!(cache.get("k1").unwrap().is_none(), "the least recently used entry went first");
        assert!(cache.get("k10").unwrap().is_some());
    }

    #[test]
    fn storing_an_answer_again_does_not_count_as_a_new_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite3");
        let cache = ResponseCache::open(&path, 10).unwrap();
        for i in 0..9 {
            cache.put(&format!("k{i}"), "a", Usage::default()).unwrap();
        }
        for _ in 0..5 {
            cache.put("k8", "b", Usage::default()).unwrap();
        }
        drop(cache);
        // Reopened, it counts the 9 entries it holds: one more fits, none is evicted.
        let cache = ResponseCache::open(&path, 10).unwrap();
        cache.put("k9", "a", Usage::default()).unwrap();
        assert_eq!(cache.len().unwrap(), 10);
        assert!(cache.get("k0").unwrap().is_some());
        assert_eq!(cache.get("k8").unwrap().map(|a| a.text).as_deref(), Some("b"));
        cache.put("k10", "a", Usage::default()).unwrap();
        assert_eq!(cache.len().unwrap(), 9, "over the limit, the 2 least recently used went (one over, and a tenth)");
        assert!(cache.get("k1").unwrap().is_none());
    }
}
