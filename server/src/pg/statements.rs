//! The statements a PostgreSQL session answers without DuckDB: the session
//! settings, transactions and `SHOW`s drivers and BI tools send on connect, and
//! the `ask('question')` form that runs the three stages.

use crate::error::Error;

/// The PostgreSQL version the endpoint says it speaks (drivers read the number).
pub const SERVER_VERSION: &str = "16.0 (tag-server)";

/// What a session statement answers, or `None` for a statement to run.
pub enum SessionReply {
    Tag(&'static str),
    /// `BEGIN`: a (read-only) transaction starts.
    Begin,
    /// `COMMIT` or `ROLLBACK` (the tag): it ends.
    End(&'static str),
    Show(String),
}

/// Settings of the client's session that `SET` and `RESET` may name: what drivers
/// and BI tools send on connect. They are acknowledged, not applied (DuckDB's
/// configuration is locked); any other setting is refused.
const CLIENT_SETTINGS: &[&str] = &[
    "application_name",
    "bytea_output",
    "client_encoding",
    "client_min_messages",
    "datestyle",
    "extra_float_digits",
    "intervalstyle",
    "lock_timeout",
    "names",
    "search_path",
    "statement_timeout",
    "standard_conforming_strings",
    "time zone",
    "timezone",
    "idle_in_transaction_session_timeout",
    "characteristics",
    "transaction",
    "all",
];

/// A session statement's reply, `Some(Err)` for a session setting that is not a
/// client's, or `None` for a statement to run as a query. Only a single statement
/// is one (several go to the allow-list, which refuses them).
pub fn session_statement(sql: &str) -> Option<Result<SessionReply, Error>> {
    if sql.contains(';') {
        return None;
    }
    let lower = sql.to_ascii_lowercase();
    let mut words = lower.split_whitespace();
    let first = words.next()?;
    let reply = match first {
        "set" | "reset" => {
            let rest: Vec<&str> = words.skip_while(|w| *w == "session" || *w == "local").collect();
            let rest = rest.join(" ");
            let name = rest.split(|c: char| c == '=' || c.is_whitespace()).next().unwrap_or_default();
            let allowed = CLIENT_SETTINGS.iter().any(|s| rest == *s || rest.starts_with(&format!("{s} ")) || name == *s);
            if !allowed {
                return Some(Err(Error::RejectedSql(format!(
                    "only the client session settings drivers send can be {}: {} is refused",
                    first.to_ascii_uppercase(),
                    if name.is_empty() { "this" } else { name }
                ))));
            }
            SessionReply::Tag(if first == "set" { "SET" } else { "RESET" })
        }
        "begin" | "start" => SessionReply::Begin,
        "commit" | "end" => SessionReply::End("COMMIT"),
        // Savepoints of a read-only transaction have nothing to undo.
        "savepoint" => SessionReply::Tag("SAVEPOINT"),
        "release" => SessionReply::Tag("RELEASE"),
        "rollback" if lower.split_whitespace().nth(1) == Some("to") => SessionReply::Tag("ROLLBACK"),
        "rollback" | "abort" => SessionReply::End("ROLLBACK"),
        "discard" => SessionReply::Tag("DISCARD ALL"),
        "deallocate" => SessionReply::Tag("DEALLOCATE"),
        "show" => SessionReply::Show(words.collect::<Vec<_>>().join(" ")),
        "select" if is_version(&lower) => SessionReply::Show("version".into()),
        _ => return None,
    };
    Some(Ok(reply))
}

/// `SELECT version()`, as drivers and SQLAlchemy ask it to learn the PostgreSQL
/// version they speak to.
fn is_version(lower: &str) -> bool {
    static PATTERN: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"^select\s+(pg_catalog\.)?version\s*\(\s*\)$").expect("valid pattern"));
    PATTERN.is_match(lower.trim())
}

/// The values `SHOW` answers (what drivers ask on connect).
pub fn show_value(name: &str) -> Option<&'static str> {
    Some(match name {
        "server_version" => SERVER_VERSION,
        "version" => concat!("PostgreSQL 16.0 (tag-server ", env!("CARGO_PKG_VERSION"), ", DuckDB v1.4.4)"),
        "server_encoding" | "client_encoding" => "UTF8",
        "standard_conforming_strings" | "integer_datetimes" => "on",
        "transaction isolation level" | "transaction_isolation" => "read committed",
        "transaction_read_only" | "default_transaction_read_only" => "on",
        "datestyle" => "ISO, MDY",
        "timezone" | "time zone" => "UTC",
        "search_path" => "main",
        "max_identifier_length" => "63",
        _ => return None,
    })
}

/// A statement on a cursor: what psycopg's server-side cursors (and SQL editors'
/// paging) send to read a large result a slice at a time.
#[derive(Debug, PartialEq)]
pub enum CursorStatement {
    /// `DECLARE name [BINARY] CURSOR [WITH HOLD] FOR query`
    Declare { name: String, binary: bool, query: String },
    /// `FETCH [NEXT | FORWARD n | n | ALL | FORWARD ALL] [FROM] name`: `None` is all.
    Fetch { name: String, count: Option<usize> },
    /// `CLOSE name`, or `CLOSE ALL` (`None`).
    Close { name: Option<String> },
}

const NAME: &str = r#"("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)"#;

/// A cursor's name as written: quoted as is, unquoted in lower case.
fn cursor_name(written: &str) -> String {
    match written.strip_prefix('"').and_then(|w| w.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => written.to_ascii_lowercase(),
    }
}

pub fn cursor_statement(sql: &str) -> Option<CursorStatement> {
    use std::sync::LazyLock;
    static DECLARE: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(&format!(
            r"(?is)^declare\s+{NAME}\s+((?:binary\s+|insensitive\s+|asensitive\s+|no\s+scroll\s+|scroll\s+)*)cursor\s+(?:with(?:out)?\s+hold\s+)?for\s+(.+)$"
        ))
        .expect("valid pattern")
    });
    static FETCH: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(&format!(r"(?is)^fetch\s+(?:(next|all|forward\s+all|forward\s+\d+|forward|\d+)\s+)?(?:(?:from|in)\s+)?{NAME}$")).expect("valid pattern")
    });
    static CLOSE: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(&format!(r"(?is)^close\s+{NAME}$")).expect("valid pattern"));
    if let Some(c) = DECLARE.captures(sql) {
        let binary = c[2].to_ascii_lowercase().contains("binary");
        return Some(CursorStatement::Declare { name: cursor_name(&c[1]), binary, query: c[3].to_string() });
    }
    if let Some(c) = FETCH.captures(sql) {
        let how = c.get(1).map(|m| m.as_str().to_ascii_lowercase()).unwrap_or_default();
        let count = if how.ends_with("all") {
            None
        } else {
            Some(how.split_whitespace().last().and_then(|n| n.parse().ok()).unwrap_or(1))
        };
        return Some(CursorStatement::Fetch { name: cursor_name(&c[2]), count });
    }
    if let Some(c) = CLOSE.captures(sql) {
        let name = (!c[1].eq_ignore_ascii_case("all")).then(|| cursor_name(&c[1]));
        return Some(CursorStatement::Close { name });
    }
    None
}

/// Whether `sql` is a question, `SELECT * FROM ask(...)`, whatever its argument
/// (a parameter, before it is bound).
pub fn is_ask(sql: &str) -> bool {
    static PATTERN: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"(?is)^\s*select\s+\*\s+from\s+ask\s*\(").expect("valid pattern"));
    PATTERN.is_match(sql)
}

/// `SELECT * FROM ask('...')`: the question, unquoted.
pub fn ask_question(sql: &str) -> Option<String> {
    static PATTERN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(?is)^\s*select\s+\*\s+from\s+ask\s*\(\s*'((?:[^']|'')*)'\s*\)\s*$").expect("valid pattern")
    });
    PATTERN.captures(sql).map(|c| c[1].replace("''", "'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ask_is_recognised_with_its_quotes_and_nothing_else_is() {
        assert_eq!(ask_question("SELECT * FROM ask('Which film''s gross is highest?')").as_deref(), Some("Which film's gross is highest?"));
        assert_eq!(ask_question("select *\nfrom ASK ( 'x' ) ").as_deref(), Some("x"));
        assert_eq!(ask_question("SELECT * FROM ask('x') WHERE 1=1"), None);
        assert_eq!(ask_question("SELECT title FROM movies"), None);
    }

    #[test]
    fn cursor_statements_are_recognised() {
        use CursorStatement::*;
        assert_eq!(
            cursor_statement(r#"DECLARE "Big" BINARY NO SCROLL CURSOR WITH HOLD FOR SELECT 1"#),
            Some(Declare { name: "Big".into(), binary: true, query: "SELECT 1".into() })
        );
        assert_eq!(cursor_statement("declare c cursor for select\n2"), Some(Declare { name: "c".into(), binary: false, query: "select\n2".into() }));
        assert_eq!(cursor_statement(r#"FETCH FORWARD 100 FROM "big""#), Some(Fetch { name: "big".into(), count: Some(100) }));
        assert_eq!(cursor_statement("fetch all in C"), Some(Fetch { name: "c".into(), count: None }));
        assert_eq!(cursor_statement("FETCH c"), Some(Fetch { name: "c".into(), count: Some(1) }));
        assert_eq!(cursor_statement("CLOSE ALL"), Some(Close { name: None }));
        assert_eq!(cursor_statement("SELECT 1"), None);
    }

    #[test]
    fn session_statements_are_answered_and_queries_are_not() {
        let reply = |sql| session_statement(sql).map(|r| r.map(|reply| match reply {
            SessionReply::Tag(tag) | SessionReply::End(tag) => tag.to_string(),
            SessionReply::Begin => "BEGIN".to_string(),
            SessionReply::Show(name) => format!("show {name}"),
        }).map_err(|e| e.code()));
        assert_eq!(reply("SET extra_float_digits = 3"), Some(Ok("SET".into())));
        assert_eq!(reply("set session timezone to 'UTC'"), Some(Ok("SET".into())));
        assert_eq!(reply("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"), Some(Ok("SET".into())));
        assert_eq!(reply("RESET ALL"), Some(Ok("RESET".into())));
        assert_eq!(reply("begin read only"), Some(Ok("BEGIN".into())));
        assert_eq!(reply("SHOW server_version"), Some(Ok("show server_version".into())));
        assert_eq!(reply("SET enable_external_access = true"), Some(Err("rejected_sql")), "not a client setting");
        assert_eq!(reply("SET memory_limit = '1GB'"), Some(Err("rejected_sql")));
        assert_eq!(reply("BEGIN; DROP TABLE movies"), None, "several statements go to the allow-list");
        assert_eq!(reply("SELECT 1"), None);
        assert_eq!(reply("select pg_catalog.version()"), Some(Ok("show version".into())));
        assert_eq!(reply("SAVEPOINT sa_1"), Some(Ok("SAVEPOINT".into())));
        assert_eq!(reply("ROLLBACK TO SAVEPOINT sa_1"), Some(Ok("ROLLBACK".into())));
        assert_eq!(reply("RELEASE SAVEPOINT sa_1"), Some(Ok("RELEASE".into())));
        assert_eq!(reply("DELETE FROM movies"), None, "writes go to the allow-list, which refuses them");
    }
}
