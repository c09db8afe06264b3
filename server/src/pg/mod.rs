//! The PostgreSQL wire-protocol endpoint (the `pgwire` crate), off unless
//! `pg.listen` is set: BI tools, notebooks and `psql` connect with their ordinary
//! drivers. The database name is the dataset; with access control on, the password
//! is an access token: SCRAM-SHA-256 (pgwire's) when the user name is the token's
//! id and the token has a SCRAM verifier, else a cleartext password (use TLS or
//! loopback).
//!
//! Every statement goes through [`query::sql`], the same read-only check, LLM
//! operators, budgets and audit as `/v1/sql` (interface `pg`);
//! `SELECT * FROM ask('question')` runs the three stages and returns the result
//! table, with the answer and the SQL as notices. The session statements clients
//! send on connect ([`statements`]) are answered here without touching DuckDB.
//!
//! Both query protocols: simple, and extended (parse, bind with parameters bound
//! as literals by [`params`], describe, execute with row limits on portals), with
//! text or binary results. Describing a statement plans it with no rows; describing
//! a portal runs it (its columns are then known exactly) and keeps the result for
//! its execute. A cancel request (psql's Ctrl-C, JDBC's `Statement.cancel`) stops
//! the session's running query and its LLM calls.
//!
//! TLS is optional for clients once `pg.tls_cert` and `pg.tls_key` are set.
//!
//! Catalog queries (psql's `\d`, drivers' metadata calls, BI tools' sync) are
//! answered by [`catalog`], a PostgreSQL-shaped catalog of the dataset.


mod catalog;
mod compat;
mod params;
mod statements;

use std::{
    collections::HashMap,
    fmt::Debug,
    net::SocketAddr,
    sync::{
        atomic::{AtomicI32, Ordering},
        Arc, Mutex, Weak,
    },
};

use arrow::{array::RecordBatch, datatypes::Schema, ipc::reader::StreamReader};
use async_trait::async_trait;
use futures::{stream, Sink, SinkExt, StreamExt};
use pgwire::{
    api::{
        auth::{finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata, DefaultServerParameterProvider, StartupHandler},
        cancel::CancelHandler,
        portal::{Format, Portal},
        query::{send_describe_response, ExtendedQueryHandler, SimpleQueryHandler},
        results::{DataRowEncoder, DescribePortalResponse, DescribeResponse, DescribeStatementResponse, FieldInfo, QueryResponse, Response, Tag},
        stmt::{QueryParser, StoredStatement},
        store::PortalStore,
        ClientInfo, ClientPortalStore, PgWireConnectionState, Type, DEFAULT_NAME,
    },
    error::{ErrorInfo, PgWireError, PgWireResult},
    messages::{
        cancel::CancelRequest,
        extendedquery::{Bind, BindComplete, Describe, TARGET_TYPE_BYTE_PORTAL},
        response::NoticeResponse,
        startup::{Authentication, SecretKey},
        PgWireBackendMessage, PgWireFrontendMessage,
    },
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
use params::Prepared;
use pgwire::api::auth::sasl::{scram::ScramAuth, SASLState};
use pgwire::tokio::TlsAcceptor;
use statements::{ask_question, cursor_statement, is_ask, CursorStatement, session_statement, show_value, SessionReply};

/// Serves the endpoint on `listen` until the process ends.
pub async fn serve(engine: Arc<Engine>, listen: SocketAddr) -> crate::Result<()> {
    engine.auth.check_listen(listen)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {listen} (pg.listen, TAG_PG_LISTEN): {e}")))?;
    let tls = tls_acceptor(&engine.config.pg)?;
    tracing::info!(address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), tls = tls.is_some(), "PostgreSQL wire protocol listening");
    let sessions = Arc::new(Sessions::default());
    tokio::spawn(async move {
        loop {
            let (socket, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "pg: accept failed");
                    continue;
                }
            };
            let session = sessions.open(engine.clone());
            let (sessions, tls) = (sessions.clone(), tls.clone());
            tokio::spawn(async move {
                let pid = session.pid;
                if let Err(e) = connection(socket, tls, session, sessions.clone()).await {
                    tracing::debug!(%peer, error = %e, "pg: connection ended");
                }
                sessions.close(pid);
            });
        }
    });
    Ok(())
}

/// The TLS acceptor of `pg.tls_cert` and `pg.tls_key`, when both are set.
fn tls_acceptor(config: &crate::config::PgConfig) -> crate::Result<Option<TlsAcceptor>> {
    use pgwire::tokio::tokio_rustls::rustls::{
        self,
        pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    };
    let (cert, key) = match (&config.tls_cert, &config.tls_key) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        _ => return Err(Error::Config("pg.tls_cert and pg.tls_key (TAG_PG_TLS_CERT, TAG_PG_TLS_KEY) go together: set both or neither".into())),
    };
    let unreadable = |what: &str, path: &std::path::Path, e: &dyn std::fmt::Display| {
        Error::Config(format!("cannot read the {what} {} (pg.tls_{what}): {e}", path.display()))
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| unreadable("cert", cert, &e))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| unreadable("key", key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| Error::Config(format!("pg.tls_cert and pg.tls_key do not make a TLS configuration: {e}")))?;
    Ok(Some(TlsAcceptor::from(Arc::new(server))))
}

/// How long a client has to finish its startup (pgwire's own limit).
const STARTUP_TIME: std::time::Duration = std::time::Duration::from_secs(60);

/// One connection, as pgwire's `process_socket`, but closed when the client says
/// `Terminate` (pgwire ignores it, and asyncpg's `close()` waits for the server to
/// hang up) or after a fatal error.
async fn connection(socket: tokio::net::TcpStream, tls: Option<TlsAcceptor>, session: Arc<Session>, sessions: Arc<Sessions>) -> std::io::Result<()> {
    use pgwire::tokio::server::{negotiate_tls, process_error, process_message};
    let startup_timeout = tokio::time::sleep(STARTUP_TIME);
    tokio::pin!(startup_timeout);
    let negotiated = tokio::select! {
        _ = &mut startup_timeout => return Ok(()),
        negotiated = negotiate_tls::<Prepared>(socket, tls) => negotiated?,
    };
    let Some(mut socket) = negotiated else { return Ok(()) };
    let copy = Arc::new(pgwire::api::NoopHandler);
    loop {
        let starting = matches!(socket.state(), PgWireConnectionState::AwaitingStartup | PgWireConnectionState::AuthenticationInProgress);
        let message = if starting {
            tokio::select! {
                _ = &mut startup_timeout => None,
                message = socket.next() => message,
            }
        } else {
            socket.next().await
        };
        let Some(Ok(message)) = message else { break };
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            break;
        }
        let in_extended = match socket.state() {
            PgWireConnectionState::CopyInProgress(in_extended) => in_extended,
            _ => message.is_extended_query(),
        };
        let processed = process_message(message, &mut socket, session.clone(), session.clone(), session.clone(), copy.clone(), sessions.clone()).await;
        if let Err(e) = processed {
            // A fatal error (a failed sign-in) ends the connection with the error
            // alone: pgwire's process_error would send ReadyForQuery first, which
            // asyncpg takes for a protocol violation.
            let info = ErrorInfo::from(e);
            if info.is_fatal() {
                socket.send(PgWireBackendMessage::ErrorResponse(info.into())).await?;
                break;
            }
            process_error(&mut socket, PgWireError::UserError(Box::new(info)), in_extended).await?;
        }
    }
    Ok(())
}

/// The open sessions by process id, for cancel requests (which come on a
/// connection of their own, naming the process id and secret key the session was
/// given at its start).
#[derive(Default)]
struct Sessions {
    next_pid: AtomicI32,
    live: Mutex<HashMap<i32, Weak<Session>>>,
    catalogs: Arc<catalog::Catalogs>,
}

impl Sessions {
    fn open(&self, engine: Arc<Engine>) -> Arc<Session> {
        let pid = self.next_pid.fetch_add(1, Ordering::Relaxed) + 1;
        let session = Arc::new(Session {
            engine,
            pid,
            secret: rand::random(),
            principal: Mutex::new(None),
            cancel: tokio::sync::Notify::new(),
            described: Mutex::new(HashMap::new()),
            cursors: Mutex::new(HashMap::new()),
            catalogs: self.catalogs.clone(),
            scram: tokio::sync::Mutex::new(None),
        });
        self.live.lock().expect("sessions lock").insert(pid, Arc::downgrade(&session));
        session
    }

    fn close(&self, pid: i32) {
        self.live.lock().expect("sessions lock").remove(&pid);
    }
}

/// A secret key's bytes: a cancel request's key is decoded as bytes or as a
/// 32-bit integer depending on the protocol version pgwire assumes for it.
fn key_bytes(key: &SecretKey) -> Vec<u8> {
    match key {
        SecretKey::I32(key) => key.to_be_bytes().to_vec(),
        SecretKey::Bytes(bytes) => bytes.to_vec(),
    }
}

#[async_trait]
impl CancelHandler for Sessions {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let session = self.live.lock().expect("sessions lock").get(&request.pid).and_then(Weak::upgrade);
        match session {
            Some(session) if key_bytes(&request.secret_key) == session.secret.to_be_bytes() => {
                tracing::info!(pid = request.pid, "pg: cancel request");
                session.cancel.notify_waiters();
            }
            other => tracing::debug!(pid = request.pid, key = ?request.secret_key, ours = ?other.map(|s| s.secret), "pg: cancel request for no session of ours"),
        }
    }
}

/// One connection: who signed in (after the startup) and to which dataset.
struct Session {
    engine: Arc<Engine>,
    pid: i32,
    secret: i32,
    principal: Mutex<Option<(Principal, String)>>,
    /// Woken by a cancel request: the running query (if any) stops.
    cancel: tokio::sync::Notify,
    /// Portals described before their execute: the result of running them.
    described: Mutex<HashMap<String, Response>>,
    /// Cursors declared in this session, by name.
    cursors: Mutex<HashMap<String, Cursor>>,
    /// The datasets' catalogs in PostgreSQL's shape, shared by all sessions.
    catalogs: Arc<catalog::Catalogs>,
    /// A SCRAM-SHA-256 sign-in under way: its exchange, and the token's principal
    /// once the client's proof checks out.
    scram: tokio::sync::Mutex<Option<Scram>>,
}

/// One SCRAM exchange (pgwire's), for the token named as the user.
struct Scram {
    auth: ScramAuth,
    state: SASLState,
    principal: Principal,
}

/// The verifier pgwire's SCRAM checks the client's proof against.
#[derive(Debug)]
struct Verifier(pgwire::api::auth::Password);

#[async_trait]
impl pgwire::api::auth::AuthSource for Verifier {
    async fn get_password(&self, _login: &pgwire::api::auth::LoginInfo) -> PgWireResult<pgwire::api::auth::Password> {
        Ok(self.0.clone())
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
        Error::Sql { message, .. } => sql_sqlstate(message),
        Error::Timeout(_) | Error::Cancelled => "57014",
        Error::LlmNotConfigured(_) | Error::Llm { .. } => "58000",
        Error::Config(_) | Error::Dataset { .. } | Error::Internal { .. } => "XX000",
    }
}

/// The SQLSTATE of a DuckDB error, by its kind (what drivers and BI tools tell
/// apart): an unknown table or column, a syntax error, a bad value; else the
/// generic syntax-or-access class.
fn sql_sqlstate(message: &str) -> &'static str {
    if message.contains("Table with name") || message.contains("Table Function with name") {
        "42P01"
    } else if message.contains("Referenced column") || message.contains("column") && message.contains("not found") {
        "42703"
    } else if message.contains("Function with name") {
        "42883"
    } else if message.contains("Parser Error") {
        "42601"
    } else if message.contains("Conversion Error") {
        "22P02"
    } else if message.contains("Out of Range Error") {
        "22003"
    } else if message.contains("Division by zero") {
        "22012"
    } else {
        "42000"
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
        self.enter(database, principal)
    }

    /// Signs `principal` in to the dataset named as the database, if it may use it.
    fn enter(&self, database: Option<&str>, principal: Principal) -> PgWireResult<()> {
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
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.server_version = statements::SERVER_VERSION.into();
        parameters.date_style = "ISO, MDY".into();
        client.set_pid_and_secret_key(self.pid, SecretKey::I32(self.secret));
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                let database = client.metadata().get("database").cloned();
                if !self.engine.auth.required().unwrap_or(true) {
                    self.sign_in(database.as_deref(), None)?;
                    return finish_authentication(client, &parameters).await;
                }
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                // A user naming a token (its id) that has a SCRAM verifier signs in
                // with SCRAM-SHA-256; any other gives the token as the password.
                let user = client.metadata().get("user").cloned().unwrap_or_default();
                match self.engine.auth.store().scram(&user) {
                    Some((verifier, principal)) => {
                        let source = Verifier(pgwire::api::auth::Password::new(Some(verifier.salt), verifier.salted_password));
                        let mut auth = ScramAuth::new(Arc::new(source));
                        auth.set_iterations(crate::auth::store::SCRAM_ITERATIONS);
                        *self.scram.lock().await = Some(Scram { auth, state: SASLState::Initial, principal });
                        client.send(PgWireBackendMessage::Authentication(Authentication::SASL(vec!["SCRAM-SHA-256".into()]))).await?;
                    }
                    None => client.send(PgWireBackendMessage::Authentication(Authentication::CleartextPassword)).await?,
                }
            }
            PgWireFrontendMessage::PasswordMessageFamily(password) => {
                let database = client.metadata().get("database").cloned();
                let mut scram = self.scram.lock().await;
                let Some(exchange) = scram.as_mut() else {
                    let password = password.into_password()?;
                    self.sign_in(database.as_deref(), Some(&password.password))?;
                    return finish_authentication(client, &parameters).await;
                };
                let message = if matches!(exchange.state, SASLState::Initial) {
                    let initial = password.into_sasl_initial_response()?;
                    if initial.auth_method != "SCRAM-SHA-256" {
                        return Err(PgWireError::UnsupportedSASLAuthMethod(initial.auth_method));
                    }
                    exchange.state = SASLState::ScramClientFirstReceived;
                    pgwire::messages::startup::PasswordMessageFamily::SASLInitialResponse(initial)
                } else {
                    pgwire::messages::startup::PasswordMessageFamily::SASLResponse(password.into_sasl_response()?)
                };
                let (reply, state) = exchange
                    .auth
                    .process_scram_message(client, message, &exchange.state)
                    .await
                    .map_err(|_| user_error("FATAL", "28P01", "password authentication failed: SCRAM's proof does not match the token"))?;
                client.send(PgWireBackendMessage::Authentication(reply)).await?;
                exchange.state = state;
                if matches!(exchange.state, SASLState::Finished) {
                    let principal = exchange.principal.clone();
                    *scram = None;
                    self.enter(database.as_deref(), principal)?;
                    finish_authentication(client, &parameters).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn field(name: &str, datatype: Type, format: &Format, i: usize) -> FieldInfo {
    FieldInfo::new(name.into(), None, None, datatype, format.format_for(i))
}

/// The type a column is sent as: its own where arrow-pg encodes it, else the
/// nearest one it does. DuckDB names the zone of a `TIMESTAMPTZ` (`Etc/UTC`) where
/// arrow-pg takes only offsets (the values are instants either way, so this
/// relabels them and changes none); a `TINYINT` would go as PostgreSQL's one-byte
/// `"char"`, so it goes as `int2`; a `UINTEGER` as `int8` (arrow-pg's `int4` does
/// not hold it, and `oid` is for the catalog's, see [`pg_fields`]); what arrow-pg cannot encode at all (intervals,
/// maps, unions, ...) or encodes wrong (a `TIME` comes out NULL) goes as its text.
fn wire_type(data_type: &arrow::datatypes::DataType) -> arrow::datatypes::DataType {
    use arrow::datatypes::DataType::*;
    let encodable = |t: &arrow::datatypes::DataType| {
        matches!(
            t,
            Null | Boolean | Int16 | Int32 | Int64 | UInt16 | UInt64 | Float32 | Float64 | Utf8 | LargeUtf8 | Utf8View | Date32 | Date64
                | Decimal128(_, _) | Binary | LargeBinary | BinaryView
        )
    };
    match data_type {
        Timestamp(unit, Some(tz)) if !tz.starts_with(['+', '-']) => Timestamp(*unit, Some("+00:00".into())),
        Timestamp(_, _) => data_type.clone(),
        Int8 | UInt8 => Int16,
        UInt32 => Int64,
        // arrow-pg encodes no list of decimals.
        List(item) | LargeList(item) | FixedSizeList(item, _) if encodable(item.data_type()) && !matches!(item.data_type(), Decimal128(_, _)) => data_type.clone(),
        t if encodable(t) => t.clone(),
        _ => Utf8,
    }
}

/// `schema` with each column's wire type, or `None` when they all are already.
fn wire_schema(schema: &Schema) -> Option<Schema> {
    let fields: Vec<_> = schema.fields().iter().map(|f| Arc::new(f.as_ref().clone().with_data_type(wire_type(f.data_type())))).collect();
    (fields.iter().zip(schema.fields().iter()).any(|(a, b)| a != b)).then(|| Schema::new(fields))
}

/// The schema and batches of an Arrow IPC stream, each column as its wire type.
fn read_arrow(bytes: &[u8]) -> PgWireResult<(Arc<Schema>, Vec<RecordBatch>)> {
    let arrow_error = |e: arrow::error::ArrowError| PgWireError::ApiError(Box::new(e));
    let reader = StreamReader::try_new(bytes, None).map_err(arrow_error)?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>().map_err(arrow_error)?;
    let Some(relabelled) = wire_schema(&schema) else { return Ok((schema, batches)) };
    let relabelled = Arc::new(relabelled);
    let batches = batches
        .into_iter()
        .map(|batch| {
            let columns = batch
                .columns()
                .iter()
                .zip(relabelled.fields())
                .map(|(column, field)| arrow::compute::cast(column, field.data_type()))
                .collect::<Result<Vec<_>, _>>()?;
            RecordBatch::try_new(relabelled.clone(), columns)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(arrow_error)?;
    Ok((relabelled, batches))
}

/// The row description of `schema`: arrow-pg's, except that a `UInt32` column is
/// an `oid` (and a list of them an `oid[]`). Only the catalog's oid columns are
/// `UInt32` here ([`wire_type`] sends a dataset's as `int8`); clients such as
/// asyncpg read their type introspection's answer only with those types.
fn pg_fields(schema: &Schema, format: &Format) -> PgWireResult<Vec<FieldInfo>> {
    use arrow::datatypes::DataType::{List, UInt32};
    let fields = arrow_pg::datatypes::arrow_schema_to_pg_fields(schema, format)?;
    Ok(fields
        .into_iter()
        .zip(schema.fields())
        .enumerate()
        .map(|(i, (info, field))| match field.data_type() {
            UInt32 => FieldInfo::new(info.name().into(), None, None, Type::OID, format.format_for(i)),
            List(item) if item.data_type() == &UInt32 => FieldInfo::new(info.name().into(), None, None, Type::OID_ARRAY, format.format_for(i)),
            _ => info,
        })
        .collect())
}

/// Rows as a query response, in the client's formats.
fn rows_response(schema: &Schema, batches: impl IntoIterator<Item = RecordBatch>, format: &Format) -> PgWireResult<Response> {
    let fields = Arc::new(pg_fields(schema, format)?);
    let mut rows = Vec::new();
    for batch in batches {
        rows.extend(arrow_pg::datatypes::encode_recordbatch(fields.clone(), batch));
    }
    Ok(Response::Query(QueryResponse::new(fields, stream::iter(rows))))
}

/// A declared cursor: its result, read a slice at a time by `FETCH`.
struct Cursor {
    schema: Arc<Schema>,
    binary: bool,
    batches: std::collections::VecDeque<RecordBatch>,
}

impl Cursor {
    /// The cursor's columns, in its format (binary for a `BINARY` cursor).
    fn fields(&self) -> PgWireResult<Vec<FieldInfo>> {
        let format = if self.binary { Format::UnifiedBinary } else { Format::UnifiedText };
        pg_fields(&self.schema, &format)
    }

    /// The next `count` rows (all that are left for `None`).
    fn take(&mut self, count: Option<usize>) -> Vec<RecordBatch> {
        let mut wanted = count.unwrap_or(usize::MAX);
        let mut taken = Vec::new();
        while wanted > 0 {
            let Some(batch) = self.batches.pop_front() else { break };
            if batch.num_rows() > wanted {
                self.batches.push_front(batch.slice(wanted, batch.num_rows() - wanted));
                taken.push(batch.slice(0, wanted));
                break;
            }
            wanted -= batch.num_rows();
            taken.push(batch);
        }
        taken
    }
}

/// The pg type of an answer's column (its DuckDB type name): integers, floating
/// point and booleans as themselves, the rest as text.
fn answer_type(data_type: &str) -> Type {
    match params::pg_type_of(data_type) {
        Type::INT2 | Type::INT4 | Type::INT8 => Type::INT8,
        Type::FLOAT4 | Type::FLOAT8 => Type::FLOAT8,
        Type::BOOL => Type::BOOL,
        _ => Type::TEXT,
    }
}

/// One JSON value of an answer's row into the row, as its column's type.
fn encode_json(encoder: &mut DataRowEncoder, value: &Value, pg_type: &Type) -> PgWireResult<()> {
    match *pg_type {
        Type::INT8 => encoder.encode_field(&value.as_i64()),
        Type::FLOAT8 => encoder.encode_field(&value.as_f64()),
        Type::BOOL => encoder.encode_field(&value.as_bool()),
        _ => encoder.encode_field(&match value {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }),
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

/// A statement's text as the client sent it, without the blanks and semicolons
/// around it.
fn trimmed(sql: &str) -> &str {
    sql.trim().trim_end_matches(';').trim()
}

impl Session {
    /// Runs one statement, stopped by a cancel request that comes meanwhile.
    async fn run<C>(&self, client: &mut C, sql: &str, format: &Format) -> PgWireResult<Response>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let cancelled = self.cancel.notified();
        tokio::pin!(cancelled);
        cancelled.as_mut().enable();
        tokio::select! {
            response = self.run_statement(client, sql, format) => response,
            // Dropping the statement's future stops it: DuckDB is interrupted and
            // its LLM calls are cancelled.
            _ = cancelled => {
                self.audit_cancelled(sql).await;
                Err(to_pg(Error::Cancelled))
            }
        }
    }

    /// A statement stopped by a cancel request did not get to write its own audit
    /// entry: this is it.
    async fn audit_cancelled(&self, sql: &str) {
        let Ok((principal, dataset)) = self.signed_in() else { return };
        let sql = trimmed(sql);
        let (action, question) = match ask_question(sql) {
            Some(question) => ("ask", Some(question)),
            None => ("sql", None),
        };
        let mut entry = crate::state::AuditEntry {
            interface: "pg".into(),
            action: action.into(),
            dataset,
            sql: Some(sql.to_string()),
            question,
            ..query::blank_entry()
        };
        query::failed(&mut entry, &Error::Cancelled);
        self.engine.audit(&principal, entry).await;
    }

    async fn run_statement<C>(&self, client: &mut C, sql: &str, format: &Format) -> PgWireResult<Response>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let sql = trimmed(sql);
        if sql.is_empty() {
            return Ok(Response::EmptyQuery);
        }
        if let Some(statement) = cursor_statement(sql) {
            return self.cursor(client, statement, format).await;
        }
        let (principal, dataset) = self.signed_in()?;
        if let Some(statement) = session_statement(sql) {
            return Ok(match statement.map_err(to_pg)? {
                SessionReply::Tag(tag) => Response::Execution(Tag::new(tag)),
                SessionReply::Begin => Response::TransactionStart(Tag::new("BEGIN")),
                SessionReply::End(tag) => Response::TransactionEnd(Tag::new(tag)),
                SessionReply::Show(name) => {
                    let fields = Arc::new(vec![field(&name, Type::TEXT, format, 0)]);
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
            let types: Vec<Type> = answer.columns.iter().map(|c| answer_type(&c.data_type)).collect();
            let fields: Vec<FieldInfo> = answer.columns.iter().zip(&types).enumerate().map(|(i, (c, t))| field(&c.name, t.clone(), format, i)).collect();
            let fields = Arc::new(fields);
            let mut rows = Vec::new();
            for row in &answer.rows {
                let mut encoder = DataRowEncoder::new(fields.clone());
                for (value, pg_type) in row.iter().zip(&types) {
                    encode_json(&mut encoder, value, pg_type)?;
                }
                rows.push(encoder.finish());
            }
            return Ok(Response::Query(QueryResponse::new(fields, stream::iter(rows))));
        }
        let (schema, batches) = self.query(client, &principal, dataset, sql).await?;
        rows_response(&schema, batches, format)
    }

    /// Runs a query as `/v1/sql` does (a result over `query.max_rows` is cut there,
    /// with a warning): its schema and batches.
    async fn query<C>(&self, client: &mut C, principal: &Principal, dataset: String, sql: &str) -> PgWireResult<(Arc<Schema>, Vec<RecordBatch>)>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(catalog) = self.catalog_for(&dataset, sql)? {
            return catalog.query_blocking(sql.to_string()).await;
        }
        let request = SqlRequest { sql: sql.to_string(), dataset, confirm: false, estimate_id: None };
        let max_rows = self.engine.config.query.max_rows;
        let outcome = query::sql(&self.engine, principal, "pg", request, SqlFormat::Arrow, max_rows).await.map_err(to_pg)?;
        let SqlResult::Arrow(arrow) = outcome.result else { return Err(user_error("ERROR", "XX000", "asked for Arrow, got a table")) };
        if arrow.truncated {
            let message = format!("the result was cut at {max_rows} rows (query.max_rows, TAG_QUERY_MAX_ROWS)");
            notice(client, "WARNING", "01000", message).await?;
        }
        read_arrow(&arrow.bytes)
    }

    /// The dataset's catalog database when `sql` is a catalog query
    /// ([`catalog::is_catalog_query`]) of the session's `dataset`.
    fn catalog_for(&self, dataset: &str, sql: &str) -> PgWireResult<Option<Arc<catalog::PgCatalog>>> {
        let (principal, _) = self.signed_in()?;
        let dataset = self.engine.dataset_for(&principal, dataset).map_err(to_pg)?;
        if !catalog::is_catalog_query(sql, &dataset.info) {
            return Ok(None);
        }
        Ok(Some(self.catalogs.get(&dataset)?))
    }

    /// `DECLARE` runs the query and keeps its result; `FETCH` returns the next rows
    /// of it; `CLOSE` forgets it.
    async fn cursor<C>(&self, client: &mut C, statement: CursorStatement, format: &Format) -> PgWireResult<Response>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let no_cursor = |name: &str| user_error("ERROR", "34000", format!("cursor \"{name}\" does not exist"));
        match statement {
            CursorStatement::Declare { name, binary, query } => {
                let (principal, dataset) = self.signed_in()?;
                let (schema, batches) = self.query(client, &principal, dataset, trimmed(&query)).await?;
                let cursor = Cursor { schema, binary, batches: batches.into() };
                self.cursors.lock().expect("session lock").insert(name, cursor);
                Ok(Response::Execution(Tag::new("DECLARE CURSOR")))
            }
            CursorStatement::Fetch { name, count } => {
                let (schema, batches, binary) = {
                    let mut cursors = self.cursors.lock().expect("session lock");
                    let cursor = cursors.get_mut(&name).ok_or_else(|| no_cursor(&name))?;
                    (cursor.schema.clone(), cursor.take(count), cursor.binary)
                };
                // A binary cursor's rows are binary whatever the portal asks.
                let format = if binary { &Format::UnifiedBinary } else { format };
                let mut response = rows_response(&schema, batches, format)?;
                if let Response::Query(query) = &mut response {
                    query.set_command_tag("FETCH");
                }
                Ok(response)
            }
            CursorStatement::Close { name: Some(name) } => {
                self.cursors.lock().expect("session lock").remove(&name).ok_or_else(|| no_cursor(&name))?;
                Ok(Response::Execution(Tag::new("CLOSE CURSOR")))
            }
            CursorStatement::Close { name: None } => {
                self.cursors.lock().expect("session lock").clear();
                Ok(Response::Execution(Tag::new("CLOSE CURSOR ALL")))
            }
        }
    }

    /// The columns and parameter types of a parsed statement, without running it.
    async fn describe_statement(&self, statement: &Prepared) -> PgWireResult<DescribeStatementResponse> {
        let parameters = statement.parameters.clone();
        let sql = trimmed(&statement.sql);
        if sql.is_empty() {
            return Ok(DescribeStatementResponse::no_data());
        }
        if let Some(statement) = cursor_statement(sql) {
            let fields = match statement {
                CursorStatement::Fetch { name, .. } => match self.cursors.lock().expect("session lock").get(&name) {
                    Some(cursor) => cursor.fields()?,
                    None => vec![],
                },
                _ => vec![],
            };
            return Ok(DescribeStatementResponse::new(parameters, fields));
        }
        if let Some(reply) = session_statement(sql) {
            let fields = match reply.map_err(to_pg)? {
                SessionReply::Show(name) => vec![field(&name, Type::TEXT, &Format::UnifiedText, 0)],
                _ => vec![],
            };
            return Ok(DescribeStatementResponse::new(parameters, fields));
        }
        if is_ask(sql) {
            return Err(user_error(
                "ERROR",
                "0A000",
                "a question's columns are known only once it is answered: run ask(...) unprepared (simple query), or bind and describe the portal",
            ));
        }
        let (principal, dataset) = self.signed_in()?;
        let dataset = self.engine.dataset_for(&principal, &dataset).map_err(to_pg)?;
        let nulls = vec!["NULL".to_string(); parameters.len()];
        let planned = if parameters.is_empty() { sql.to_string() } else { params::substitute(sql, &nulls)? };
        // The catalog's columns go as they are (its oids as oid); a dataset's as their wire types.
        let schema = match self.catalog_for(&dataset.info.name, &planned)? {
            Some(catalog) => catalog.query_blocking(planned).await?.0,
            None => {
                let schema = self.engine.executor.describe(&dataset, &planned).await.map_err(to_pg)?;
                wire_schema(&schema).map(Arc::new).unwrap_or(schema)
            }
        };
        let fields = pg_fields(&schema, &Format::UnifiedText)?;
        Ok(DescribeStatementResponse::new(parameters, fields))
    }
}

#[async_trait]
impl SimpleQueryHandler for Session {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Ok(vec![self.run(client, query, &Format::UnifiedText).await?])
    }
}

/// Parses a statement of the extended protocol: its parameters' types, inferred
/// over the columns of the session's dataset where the client left them open.
struct Parser {
    engine: Arc<Engine>,
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Prepared;

    async fn parse_sql<C>(&self, client: &C, sql: &str, types: &[Type]) -> PgWireResult<Prepared>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let dataset = client.metadata().get("database").and_then(|name| self.engine.catalog.get(name).ok());
        Ok(params::prepare(sql, types, dataset.as_ref().map(|d| &d.info)))
    }
}

#[async_trait]
impl ExtendedQueryHandler for Session {
    type Statement = Prepared;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        Arc::new(Parser { engine: self.engine.clone() })
    }

    /// pgwire's bind, after forgetting what an earlier portal of the same name
    /// left described.
    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let portal_name = message.portal_name.as_deref().unwrap_or(DEFAULT_NAME);
        self.described.lock().expect("session lock").remove(portal_name);
        let statement_name = message.statement_name.as_deref().unwrap_or(DEFAULT_NAME);
        let statement = client.portal_store().get_statement(statement_name).ok_or_else(|| PgWireError::StatementNotFound(statement_name.to_owned()))?;
        let portal = Portal::try_new(&message, statement)?;
        client.portal_store().put_portal(Arc::new(portal));
        client.send(PgWireBackendMessage::BindComplete(BindComplete::new())).await?;
        Ok(())
    }

    /// A cursor is a portal too: psycopg describes it by name after `DECLARE`.
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if message.target_type == TARGET_TYPE_BYTE_PORTAL {
            let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
            let fields = match self.cursors.lock().expect("session lock").get(name) {
                Some(cursor) => Some(cursor.fields()?),
                None => None,
            };
            if let Some(fields) = fields {
                return send_describe_response(client, &DescribePortalResponse::new(fields)).await;
            }
        }
        self._on_describe(client, message).await
    }

    async fn do_describe_statement<C>(&self, _client: &mut C, target: &StoredStatement<Prepared>) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.describe_statement(&target.statement).await
    }

    async fn do_describe_portal<C>(&self, client: &mut C, portal: &Portal<Prepared>) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let sql = params::bind(portal)?;
        let response = self.run(client, &sql, &portal.result_column_format).await?;
        let fields = match &response {
            Response::Query(query) => DescribePortalResponse::new(query.row_schema().as_ref().clone()),
            _ => DescribePortalResponse::no_data(),
        };
        self.described.lock().expect("session lock").insert(portal.name.clone(), response);
        Ok(fields)
    }

    async fn do_query<C>(&self, client: &mut C, portal: &Portal<Prepared>, _max_rows: usize) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(response) = self.described.lock().expect("session lock").remove(&portal.name) {
            return Ok(response);
        }
        let sql = params::bind(portal)?;
        self.run(client, &sql, &portal.result_column_format).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PgConfig;

    #[test]
    fn tls_needs_both_a_certificate_and_a_key_that_can_be_read() {
        let mut config = PgConfig::default();
        assert!(tls_acceptor(&config).unwrap().is_none(), "off by default");
        config.tls_cert = Some("/nonexistent/cert.pem".into());
        let error = tls_acceptor(&config).err().unwrap().to_string();
        assert!(error.contains("go together"), "{error}");
        config.tls_key = Some("/nonexistent/key.pem".into());
        let error = tls_acceptor(&config).err().unwrap().to_string();
        assert!(error.contains("cannot read the cert /nonexistent/cert.pem"), "{error}");
    }

    #[test]
    fn columns_go_as_types_arrow_pg_encodes() {
        use arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};
        assert_eq!(wire_type(&DataType::Timestamp(TimeUnit::Microsecond, Some("Etc/UTC".into()))), DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())));
        assert_eq!(wire_type(&DataType::Int8), DataType::Int16);
        assert_eq!(wire_type(&DataType::UInt32), DataType::Int64);
        assert_eq!(wire_type(&DataType::Interval(IntervalUnit::MonthDayNano)), DataType::Utf8);
        assert_eq!(wire_type(&DataType::Time64(TimeUnit::Microsecond)), DataType::Utf8);
        let list = DataType::List(Arc::new(Field::new("item", DataType::Int32, true)));
        assert_eq!(wire_type(&list), list);
        assert_eq!(wire_type(&DataType::List(Arc::new(Field::new("item", DataType::Decimal128(2, 1), true)))), DataType::Utf8);
        let schema = Schema::new(vec![Field::new("n", DataType::Int64, false)]);
        assert!(wire_schema(&schema).is_none(), "nothing to change");
    }
}
