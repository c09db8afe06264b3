//! Server state that must survive a restart: conversations and their turns,
//! feedback on answers, saved examples (question → SQL, pending or approved), and
//! the audit trail ([`audit`]). A SQLite file under the
//! data directory; every call runs on a blocking thread so async code never waits
//! on disk.
//!
//! Ownership is a column: a conversation belongs to the principal (the token's
//! name) that started it, and every read or change takes the caller's owner
//! filter (`None` for an admin, who sees all). Someone else's conversation or
//! turn is "not found", never "forbidden", so its existence does not leak.

pub mod audit;

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{Error, Result};

pub use tag_types::{AuditEntry, AuditPage, Conversation, ExampleStatus, Feedback, Rating, SavedExample, Turn};

#[derive(Clone)]
pub struct StateStore {
    conn: Arc<Mutex<Connection>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    dataset TEXT NOT NULL,
    title TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    owner TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    question TEXT NOT NULL,
    sql TEXT,
    answer TEXT NOT NULL,
    row_count INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS turns_by_conversation ON turns(conversation_id, id);
CREATE TABLE IF NOT EXISTS feedback (
    turn_id INTEGER PRIMARY KEY REFERENCES turns(id) ON DELETE CASCADE,
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    comment TEXT,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS examples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset TEXT NOT NULL,
    question TEXT NOT NULL,
    sql TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved')),
    saved_by TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS examples_by_dataset ON examples(dataset, status);
";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl StateStore {
    /// Opens (creating when missing) `state.sqlite3` in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            Error::Config(format!("cannot create data directory {} (TAG_DATA_DIR): {e}", data_dir.display()))
        })?;
        let conn = Connection::open(data_dir.join("state.sqlite3"))?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;")?;
        conn.execute_batch(SCHEMA)?;
        // State files from before ownership: their conversations belong to nobody
        // (only an admin sees them once tokens are required).
        let has_owner: bool = conn
            .prepare("SELECT 1 FROM pragma_table_info('conversations') WHERE name = 'owner'")?
            .exists([])?;
        if !has_owner {
            conn.execute_batch("ALTER TABLE conversations ADD COLUMN owner TEXT NOT NULL DEFAULT ''")?;
        }
        conn.execute_batch(audit::SCHEMA)?;
        Ok(StateStore { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Writes a consistent copy of the whole state database to `file` (SQLite's
    /// `VACUUM INTO`: a snapshot, while other connections go on reading and writing).
    pub async fn backup_to(&self, file: &Path) -> Result<()> {
        if file.exists() {
            return Err(Error::InvalidRequest(format!("{} exists; give a new file to back up into", file.display())));
        }
        let target = file.to_string_lossy().into_owned();
        self.with(move |conn| {
            conn.execute("VACUUM INTO ?1", [&target])?;
            Ok(())
        })
        .await
    }

    async fn with<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().map_err(|_| Error::internal("state lock poisoned"))?;
            work(&mut conn)
        })
        .await
        .map_err(Error::from)?
    }

    /// A new conversation of `owner` (the principal's name).
    pub async fn create_conversation(&self, dataset: &str, title: &str, owner: &str) -> Result<Conversation> {
        let conversation = Conversation {
            id: uuid::Uuid::new_v4().to_string(),
            dataset: dataset.to_string(),
            title: title.to_string(),
            created_at: now(),
            updated_at: now(),
        };
        let (row, owner) = (conversation.clone(), owner.to_string());
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO conversations (id, dataset, title, created_at, updated_at, owner) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![row.id, row.dataset, row.title, row.created_at, row.updated_at, owner],
            )?;
            Ok(())
        })
        .await?;
        Ok(conversation)
    }

    /// A conversation `owner` may see (`None`: anyone's).
    pub async fn conversation(&self, id: &str, owner: Option<&str>) -> Result<Conversation> {
        let (id, owner) = (id.to_string(), owner.map(str::to_string));
        self.with(move |conn| {
            conn.query_row(
                "SELECT id, dataset, title, created_at, updated_at FROM conversations WHERE id = ?1 AND (?2 IS NULL OR owner = ?2)",
                params![id, owner],
                conversation_from_row,
            )
            .optional()?
            .ok_or_else(|| Error::not_found("conversation", id))
        })
        .await
    }

    pub async fn conversations(&self, owner: Option<&str>) -> Result<Vec<Conversation>> {
        let owner = owner.map(str::to_string);
        self.with(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT id, dataset, title, created_at, updated_at FROM conversations WHERE ?1 IS NULL OR owner = ?1 \
                 ORDER BY updated_at DESC, created_at DESC",
            )?;
            let rows = stmt.query_map(params![owner], conversation_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    pub async fn turns(&self, conversation_id: &str) -> Result<Vec<Turn>> {
        let id = conversation_id.to_string();
        self.with(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT id, question, sql, answer, row_count, created_at FROM turns WHERE conversation_id = ?1 ORDER BY id",
            )?;
            let rows = stmt
                .query_map(params![id], |row| {
                    Ok(Turn {
                        id: row.get(0)?,
                        question: row.get(1)?,
                        sql: row.get(2)?,
                        answer: row.get(3)?,
                        row_count: row.get::<_, Option<i64>>(4)?.map(|n| n as u64),
                        created_at: row.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    pub async fn add_turn(
        &self,
        conversation_id: &str,
        question: &str,
        sql: Option<&str>,
        answer: &str,
        row_count: Option<u64>,
    ) -> Result<i64> {
        let (id, question, sql, answer) =
            (conversation_id.to_string(), question.to_string(), sql.map(str::to_string), answer.to_string());
        self.with(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO turns (conversation_id, question, sql, answer, row_count, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, question, sql, answer, row_count.map(|n| n as i64), now()],
            )?;
            let turn_id = tx.last_insert_rowid();
            tx.execute("UPDATE conversations SET updated_at = ?2 WHERE id = ?1", params![id, now()])?;
            tx.commit()?;
            Ok(turn_id)
        })
        .await
    }

    pub async fn rename_conversation(&self, id: &str, title: &str, owner: Option<&str>) -> Result<()> {
        let (id, title, owner) = (id.to_string(), title.to_string(), owner.map(str::to_string));
        self.with(move |conn| {
            let changed = conn.execute(
                "UPDATE conversations SET title = ?2 WHERE id = ?1 AND (?3 IS NULL OR owner = ?3)",
                params![id, title, owner],
            )?;
            if changed == 0 {
                return Err(Error::not_found("conversation", id));
            }
            Ok(())
        })
        .await
    }

    pub async fn delete_conversation(&self, id: &str, owner: Option<&str>) -> Result<()> {
        let (id, owner) = (id.to_string(), owner.map(str::to_string));
        self.with(move |conn| {
            let changed =
                conn.execute("DELETE FROM conversations WHERE id = ?1 AND (?2 IS NULL OR owner = ?2)", params![id, owner])?;
            if changed == 0 {
                return Err(Error::not_found("conversation", id));
            }
            Ok(())
        })
        .await
    }

    /// Records (or replaces) the feedback on a turn of a conversation `owner` may see.
    pub async fn set_feedback(&self, turn_id: i64, rating: Rating, comment: Option<&str>, owner: Option<&str>) -> Result<Feedback> {
        let (rating, comment, who) = (rating.as_str(), comment.map(str::to_string), owner.map(str::to_string));
        self.with(move |conn| {
            let changed = conn.execute(
                "INSERT INTO feedback (turn_id, rating, comment, created_at)
                 SELECT t.id, ?2, ?3, ?4 FROM turns t JOIN conversations c ON c.id = t.conversation_id
                 WHERE t.id = ?1 AND (?5 IS NULL OR c.owner = ?5)
                 ON CONFLICT (turn_id) DO UPDATE SET rating = excluded.rating, comment = excluded.comment, created_at = excluded.created_at",
                params![turn_id, rating, comment, now(), who],
            )?;
            if changed == 0 {
                return Err(Error::not_found("turn", turn_id.to_string()));
            }
            Ok(())
        })
        .await?;
        self.feedback(Some(turn_id), owner).await?.pop().ok_or_else(|| Error::internal("the feedback just written is missing"))
    }

    /// Feedback on one turn, or on all turns (newest first), of the conversations
    /// `owner` may see.
    pub async fn feedback(&self, turn_id: Option<i64>, owner: Option<&str>) -> Result<Vec<Feedback>> {
        let owner = owner.map(str::to_string);
        self.with(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT f.turn_id, t.conversation_id, t.question, f.rating, f.comment, f.created_at
                 FROM feedback f JOIN turns t ON t.id = f.turn_id JOIN conversations c ON c.id = t.conversation_id
                 WHERE (?1 IS NULL OR f.turn_id = ?1) AND (?2 IS NULL OR c.owner = ?2) ORDER BY f.created_at DESC, f.turn_id DESC",
            )?;
            let rows = stmt
                .query_map(params![turn_id, owner], |row| {
                    Ok(Feedback {
                        turn_id: row.get(0)?,
                        conversation_id: row.get(1)?,
                        question: row.get(2)?,
                        rating: if row.get::<_, String>(3)? == "up" { Rating::Up } else { Rating::Down },
                        comment: row.get(4)?,
                        created_at: row.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }
}

const EXAMPLE_COLUMNS: &str = "id, dataset, question, sql, status, saved_by, created_at";

fn example_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SavedExample> {
    Ok(SavedExample {
        id: row.get(0)?,
        dataset: row.get(1)?,
        question: row.get(2)?,
        sql: row.get(3)?,
        status: if row.get::<_, String>(4)? == "approved" { ExampleStatus::Approved } else { ExampleStatus::Pending },
        saved_by: row.get(5)?,
        created_at: row.get(6)?,
    })
}

impl StateStore {
    /// Saves an example of `dataset`, by `saved_by`, as `status`.
    pub async fn save_example(&self, dataset: &str, question: &str, sql: &str, status: ExampleStatus, saved_by: &str) -> Result<SavedExample> {
        let (dataset, question, sql, saved_by) = (dataset.to_string(), question.to_string(), sql.to_string(), saved_by.to_string());
        self.with(move |conn| {
            let example = conn.query_row(
                &format!(
                    "INSERT INTO examples (dataset, question, sql, status, saved_by, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     RETURNING {EXAMPLE_COLUMNS}"
                ),
                params![dataset, question, sql, status.as_str(), saved_by, now()],
                example_from_row,
            )?;
            Ok(example)
        })
        .await
    }

    /// The saved examples of `dataset` (all datasets: `None`), with `status` (any:
    /// `None`), oldest first.
    pub async fn examples(&self, dataset: Option<&str>, status: Option<ExampleStatus>) -> Result<Vec<SavedExample>> {
        let (dataset, status) = (dataset.map(str::to_string), status.map(ExampleStatus::as_str));
        self.with(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {EXAMPLE_COLUMNS} FROM examples WHERE (?1 IS NULL OR dataset = ?1) AND (?2 IS NULL OR status = ?2) ORDER BY id"
            ))?;
            let rows = stmt.query_map(params![dataset, status], example_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    /// Approves a pending example of `dataset`.
    pub async fn approve_example(&self, dataset: &str, id: i64) -> Result<SavedExample> {
        let dataset = dataset.to_string();
        self.with(move |conn| {
            conn.query_row(
                &format!("UPDATE examples SET status = 'approved' WHERE id = ?1 AND dataset = ?2 RETURNING {EXAMPLE_COLUMNS}"),
                params![id, dataset],
                example_from_row,
            )
            .optional()?
            .ok_or_else(|| Error::not_found("example", id.to_string()))
        })
        .await
    }

    /// Deletes an example of `dataset`.
    pub async fn delete_example(&self, dataset: &str, id: i64) -> Result<()> {
        let dataset = dataset.to_string();
        self.with(move |conn| match conn.execute("DELETE FROM examples WHERE id = ?1 AND dataset = ?2", params![id, dataset])? {
            0 => Err(Error::not_found("example", id.to_string())),
            _ => Ok(()),
        })
        .await
    }

    /// The dataset, question and SQL of a turn of a conversation `owner` may see.
    pub async fn turn_source(&self, turn_id: i64, owner: Option<&str>) -> Result<(String, String, Option<String>)> {
        let owner = owner.map(str::to_string);
        self.with(move |conn| {
            conn.query_row(
                "SELECT c.dataset, t.question, t.sql FROM turns t JOIN conversations c ON c.id = t.conversation_id
                 WHERE t.id = ?1 AND (?2 IS NULL OR c.owner = ?2)",
                params![turn_id, owner],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?
            .ok_or_else(|| Error::not_found("turn", turn_id.to_string()))
        })
        .await
    }
}

fn conversation_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Conversation> {
    Ok(Conversation {
        id: row.get(0)?,
        dataset: row.get(1)?,
        title: row.get(2)?,
        created_at: row.get(3)?,
        updated_at: row.get(4)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_owner_or_an_admin_sees_and_changes_a_conversation() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let ann = store.create_conversation("movies", "ann's", "ann").await.unwrap();
        let turn = store.add_turn(&ann.id, "q", None, "a", None).await.unwrap();
        let bob = Some("bob");
        assert!(matches!(store.conversation(&ann.id, bob).await, Err(Error::NotFound { .. })));
        assert!(store.conversations(bob).await.unwrap().is_empty());
        assert!(matches!(store.rename_conversation(&ann.id, "mine", bob).await, Err(Error::NotFound { .. })));
        assert!(matches!(store.delete_conversation(&ann.id, bob).await, Err(Error::NotFound { .. })));
        assert!(matches!(store.set_feedback(turn, Rating::Down, None, bob).await, Err(Error::NotFound { .. })));
        assert_eq!(store.conversation(&ann.id, None).await.unwrap().title, "ann's", "unchanged, and an admin sees it");
        assert!(store.feedback(None, None).await.unwrap().is_empty());
        assert_eq!(store.conversations(Some("ann")).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_backup_is_a_whole_state_database_taken_while_it_is_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let conversation = store.create_conversation("movies", "kept", "ann").await.unwrap();
        store.add_turn(&conversation.id, "q1", Some("SELECT 1"), "a1", Some(1)).await.unwrap();
        let file = dir.path().join("backup.sqlite3");
        store.backup_to(&file).await.unwrap();
        // The server goes on writing; the backup is the snapshot.
        store.add_turn(&conversation.id, "q2", None, "a2", None).await.unwrap();
        let restored = tempfile::tempdir().unwrap();
        std::fs::copy(&file, restored.path().join("state.sqlite3")).unwrap();
        let from_backup = StateStore::open(restored.path()).unwrap();
        let turns = from_backup.turns(&conversation.id).await.unwrap();
        assert_eq!(turns.iter().map(|t| t.question.as_str()).collect::<Vec<_>>(), ["q1"]);
        let again = store.backup_to(&file).await.unwrap_err().to_string();
        assert!(again.contains("exists"), "an existing file is never overwritten: {again}");
    }

    #[tokio::test]
    async fn conversations_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let store = StateStore::open(dir.path()).unwrap();
            let conversation = store.create_conversation("movies", "first", "ann").await.unwrap();
            store.add_turn(&conversation.id, "q1", Some("SELECT 1"), "a1", Some(1)).await.unwrap();
            conversation.id
        };
        let store = StateStore::open(dir.path()).unwrap();
        let turns = store.turns(&id).await.unwrap();
        assert_eq!(turns.len(), 1);
        assert_eq!(turns[0].question, "q1");
        let feedback = store.set_feedback(turns[0].id, Rating::Down, Some("wrong year"), Some("ann")).await.unwrap();
        assert_eq!((feedback.rating.as_str(), feedback.question.as_str()), ("down", "q1"));
        store.set_feedback(turns[0].id, Rating::Up, None, None).await.unwrap();
        let all = store.feedback(None, None).await.unwrap();
        assert_eq!(all.len(), 1, "a second verdict replaces the first");
        assert_eq!((all[0].rating.as_str(), all[0].comment.as_deref()), ("up", None));
        assert!(matches!(store.set_feedback(turns[0].id + 1, Rating::Up, None, None).await, Err(Error::NotFound { .. })));
        store.rename_conversation(&id, "renamed", Some("ann")).await.unwrap();
        assert_eq!(store.conversation(&id, None).await.unwrap().title, "renamed");
        store.delete_conversation(&id, None).await.unwrap();
        assert!(matches!(store.conversation(&id, None).await, Err(Error::NotFound { .. })));
        assert!(store.turns(&id).await.unwrap().is_empty());
        assert!(store.feedback(None, None).await.unwrap().is_empty(), "feedback goes with its conversation");
    }
}
