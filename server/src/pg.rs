//! The PostgreSQL wire-protocol endpoint (the `pgwire` crate), off unless
//! `pg.listen` is set: BI tools, notebooks and `psql` connect with their ordinary
//! drivers. The database name is the dataset; with access control on, the password
//! is an access token (cleartext: use it on loopback or behind TLS termination).
//! Every statement goes through [`query::sql`], the same read-only check, LLM
//! operators, budgets and audit as `/v1/sql` (interface `pg`);
//! `SELECT * FROM ask('question')` runs the three stages and returns the result
//! table, with the answer and the SQL as notices. The session statements clients
//! send on connect (`SET`, `SHOW`, `BEGIN`/`COMMIT`/`ROLLBACK`, `DISCARD`,
//! `DEALLOCATE`) are answered here without touching DuckDB.
//!
//! This is the simple query protocol; the extended protocol (prepared statements
//! with parameters), the catalog queries of `\dt` and of drivers' metadata calls,
//! cancel requests and TLS are not here yet.

use std::{fmt::Debug, net::SocketAddr, sync::Arc};

use arrow::{datatypes::Schema, ipc::reader::StreamReader};
use async_trait::async_trait;
use futures::{stream, Sink, SinkExt};
use pgwire::{
    api::{
        auth::{finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata, DefaultServerParameterProvider, StartupHandler},
        portal::Format,
        query::SimpleQueryHandler,
        results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag},
        ClientInfo, PgWireConnectionState, PgWireServerHandlers, Type,
    },
    error::{ErrorInfo, PgWireError, PgWireResult},
    messages::{response::NoticeResponse, startup::Authentication, PgWireBackendMessage, PgWireFrontendMessage},
};
use serde_json::Value;
use tag_types::SqlRequest;

use crate::{
    ask::{self, AskRequest, Events},
    auth::Principal,
    engine::Engine,
    error::Error,
    query::{self, SqlFormat, SqlResult},
};

/// Serves the endpoint on `listen` until the process ends.
pub async fn serve(engine: Arc<Engine>, listen: SocketAddr) -> crate::Result<()> {
    engine.auth.check_listen(listen)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {listen} (pg.listen, TAG_PG_LISTEN): {e}")))?;
    tracing::info!(address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "PostgreSQL wire protocol listening");
    tokio::spawn(async move {
        loop {
            let (socket, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "pg: accept failed");
                    continue;
                }
            };
            let session = Arc::new(Session { engine: engine.clone(), principal: std::sync::Mutex::new(None) });
            tokio::spawn(async move {
                if let Err(e) = pgwire::tokio::process_socket(socket, None, Handlers(session)).await {
                    tracing::debug!(%peer, error = %e, "pg: connection ended");
                }
            });
        }
    });
    Ok(())
}

/// One connection: who signed in (after the startup) and to which dataset.
struct Session {
    engine: Arc<Engine>,
    principal: std::sync::Mutex<Option<(Principal, String)>>,
}

struct Handlers(Arc<Session>);

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.0.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.0.clone()
    }
}

fn user_error(severity: &str, code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(severity.into(), code.into(), message.into())))
}

/// The SQLSTATE of one of the server's errors.
fn sqlstate(error: &Error) -> &'static str {
    match error {
        Error::InvalidRequest(_) => "22023",
        Error::NotFound { .. } => "3D000",
        Error::Unavailable { .. } => "57P03",
        Error::Unauthorized(_) => "28000",
        Error::Forbidden(_) | Error::RejectedSql(_) => "42501",
        Error::RateLimited { .. } | Error::TooCostly(_) | Error::Confirm { .. } => "53400",
        Error::Sql { .. } => "42000",
        Error::Timeout(_) | Error::Cancelled => "57014",
        Error::LlmNotConfigured(_) | Error::Llm { .. } => "58000",
        Error::Config(_) | Error::Dataset { .. } | Error::Internal { .. } => "XX000",
    }
}

fn to_pg(error: Error) -> PgWireError {
    let mut info = ErrorInfo::new("ERROR".into(), sqlstate(&error).into(), error.to_string());
    info.detail = Some(format!("tag-server error code: {}", error.code()));
    PgWireError::UserError(Box::new(info))
}

impl Session {
    fn signed_in(&self) -> PgWireResult<(Principal, String)> {
        self.principal.lock().expect("session lock").clone().ok_or_else(|| user_error("FATAL", "08P01", "not signed in"))
    }

    /// The principal of `password` (a token), or the open principal when tokens
    /// are not required; then the dataset named as the database, if it may use it.
    fn sign_in(&self, database: Option<&str>, password: Option<&str>) -> PgWireResult<()> {
        let header = password.map(|p| format!("Bearer {p}"));
        let principal = self
            .engine
            .auth
            .resolve(header.as_deref())
            .map_err(|_| user_error("FATAL", "28P01", "password authentication failed: give an access token as the password"))?;
        let database = database.unwrap_or_default();
        // Unknown and not allowed read the same, as on the HTTP API.
        self.engine
            .dataset_for(&principal, database)
            .map_err(|_| user_error("FATAL", "3D000", format!("database \"{database}\" does not exist (a database is a dataset)")))?;
        *self.principal.lock().expect("session lock") = Some((principal, database.to_string()));
        Ok(())
    }
}

#[async_trait]
impl StartupHandler for Session {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let parameters = DefaultServerParameterProvider::default();
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                let database = client.metadata().get("database").cloned();
                if self.engine.auth.required().unwrap_or(true) {
                    client.set_state(PgWireConnectionState::AuthenticationInProgress);
                    client.send(PgWireBackendMessage::Authentication(Authentication::CleartextPassword)).await?;
                } else {
                    self.sign_in(database.as_deref(), None)?;
                    finish_authentication(client, &parameters).await?;
                }
            }
            PgWireFrontendMessage::PasswordMessageFamily(password) => {
                let password = password.into_password()?;
                let database = client.metadata().get("database").cloned();
                self.sign_in(database.as_deref(), Some(&password.password))?;
                finish_authentication(client, &parameters).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// What a session statement answers, or `None` for a statement to run.
enum SessionReply {
    Tag(&'static str),
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
fn session_statement(sql: &str) -> Option<Result<SessionReply, Error>> {
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
        "begin" | "start" => SessionReply::Tag("BEGIN"),
        "commit" | "end" => SessionReply::Tag("COMMIT"),
        "rollback" | "abort" => SessionReply::Tag("ROLLBACK"),
        "discard" => SessionReply::Tag("DISCARD ALL"),
        "deallocate" => SessionReply::Tag("DEALLOCATE"),
        "show" => SessionReply::Show(words.collect::<Vec<_>>().join(" ")),
        _ => return None,
    };
    Some(Ok(reply))
}

/// The values `SHOW` answers (what drivers ask on connect).
fn show_value(name: &str) -> Option<&'static str> {
    Some(match name {
        "server_version" => "16.0 (tag-server)",
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

/// `SELECT * FROM ask('...')`: the question, unquoted.
fn ask_question(sql: &str) -> Option<String> {
    static PATTERN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(?is)^\s*select\s+\*\s+from\s+ask\s*\(\s*'((?:[^']|'')*)'\s*\)\s*$").expect("valid pattern")
    });
    PATTERN.captures(sql).map(|c| c[1].replace("''", "'"))
}

fn text_field(name: &str, datatype: Type) -> FieldInfo {
    FieldInfo::new(name.into(), None, None, datatype, FieldFormat::Text)
}

/// Rows of an Arrow IPC stream as a query response.
fn arrow_response(bytes: &[u8]) -> PgWireResult<Response> {
    let reader = StreamReader::try_new(bytes, None).map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    let schema: Arc<Schema> = reader.schema();
    let fields = Arc::new(arrow_pg::datatypes::arrow_schema_to_pg_fields(&schema, &Format::UnifiedText)?);
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        rows.extend(arrow_pg::datatypes::encode_recordbatch(fields.clone(), batch));
    }
    Ok(Response::Query(QueryResponse::new(fields, stream::iter(rows))))
}

/// The pg type of an answer's column (its DuckDB type name), and the value as text.
fn pg_type(data_type: &str) -> Type {
    match data_type.to_ascii_uppercase().as_str() {
        "BOOLEAN" => Type::BOOL,
        "TINYINT" | "SMALLINT" | "INTEGER" | "BIGINT" | "UTINYINT" | "USMALLINT" | "UINTEGER" => Type::INT8,
        "FLOAT" | "DOUBLE" | "REAL" => Type::FLOAT8,
        _ => Type::TEXT,
    }
}

fn json_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(if *b { "t".into() } else { "f".into() }),
        other => Some(other.to_string()),
    }
}

/// Sends a notice (`NOTICE`, `WARNING`) to the client ahead of the result.
async fn notice<C>(client: &mut C, severity: &str, code: &str, message: String) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let info = ErrorInfo::new(severity.into(), code.into(), message);
    client.send(PgWireBackendMessage::NoticeResponse(NoticeResponse::from(info))).await?;
    Ok(())
}

impl Session {
    async fn run<C>(&self, client: &mut C, sql: &str) -> PgWireResult<Response>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (principal, dataset) = self.signed_in()?;
        if let Some(statement) = session_statement(sql) {
            return Ok(match statement.map_err(to_pg)? {
                SessionReply::Tag(tag) => Response::Execution(Tag::new(tag)),
                SessionReply::Show(name) => {
                    let fields = Arc::new(vec![text_field(&name, Type::TEXT)]);
                    let mut encoder = DataRowEncoder::new(fields.clone());
                    let value = show_value(&name).ok_or_else(|| user_error("ERROR", "42704", format!("unrecognized configuration parameter \"{name}\"")))?;
                    encoder.encode_field(&value)?;
                    Response::Query(QueryResponse::new(fields, stream::iter(vec![encoder.finish()])))
                }
            });
        }
        if let Some(question) = ask_question(sql) {
            let request = AskRequest { question, dataset, conversation_id: None, confirm: false, estimate_id: None };
            let answer = ask::ask(&self.engine, &principal, "pg", request, Events::default()).await.map_err(to_pg)?;
            for message in [format!("answer: {}", answer.answer), format!("sql: {}", answer.sql.as_deref().unwrap_or("(none)"))] {
                notice(client, "NOTICE", "00000", message).await?;
            }
            let fields: Vec<FieldInfo> = answer.columns.iter().map(|c| text_field(&c.name, pg_type(&c.data_type))).collect();
            let fields = Arc::new(fields);
            let mut rows = Vec::new();
            for row in &answer.rows {
                let mut encoder = DataRowEncoder::new(fields.clone());
                for value in row {
                    encoder.encode_field(&json_text(value))?;
                }
                rows.push(encoder.finish());
            }
            return Ok(Response::Query(QueryResponse::new(fields, stream::iter(rows))));
        }
        let request = SqlRequest { sql: sql.to_string(), dataset, confirm: false, estimate_id: None };
        let max_rows = self.engine.config.query.max_rows;
        let outcome = query::sql(&self.engine, &principal, "pg", request, SqlFormat::Arrow, max_rows).await.map_err(to_pg)?;
        match outcome.result {
            SqlResult::Arrow(arrow) => {
                if arrow.truncated {
                    let message = format!("the result was cut at {max_rows} rows (query.max_rows, TAG_QUERY_MAX_ROWS)");
                    notice(client, "WARNING", "01000", message).await?;
                }
                arrow_response(&arrow.bytes)
            }
            SqlResult::Table(_) => Err(user_error("ERROR", "XX000", "asked for Arrow, got a table")),
        }
    }
}

#[async_trait]
impl SimpleQueryHandler for Session {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + pgwire::api::ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let sql = query.trim().trim_end_matches(';').trim();
        if sql.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        Ok(vec![self.run(client, sql).await?])
    }
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
    fn session_statements_are_answered_and_queries_are_not() {
        let reply = |sql| session_statement(sql).map(|r| r.map(|reply| match reply {
            SessionReply::Tag(tag) => tag.to_string(),
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
        assert_eq!(reply("DELETE FROM movies"), None, "writes go to the allow-list, which refuses them");
    }
}
