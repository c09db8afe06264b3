//! Datasets that live in a database: PostgreSQL, MySQL/MariaDB or SQLite, attached
//! **read-only** through DuckDB's own extensions, which push filters and
//! projections down; nothing is copied. Only the attach step and the introspection
//! queries differ by kind; what comes out is the same [`DatasetInfo`] as for files:
//! tables (as views over the attached catalog, so only the included ones are
//! reachable by name), columns and types, the database's comments as descriptions
//! (the source's `tables` in the configuration override or add to them), primary
//! keys, foreign keys as joins, row counts from the database's statistics, and
//! sample and frequent values from a bounded read of each table.
//!
//! The connection string never leaves this module: it is not logged, and every
//! error message is scrubbed of it ([`Secret::redact`]).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    time::Duration,
};

use duckdb::Connection;
use globset::{Glob, GlobSet, GlobSetBuilder};

use super::{describe_column, extensions, ConnectionSetup, DatasetInfo, TableInfo};
use crate::{
    config::{SourceConfig, SourceKind},
    error::{Error, Result},
    sql::{quote_ident, quote_literal, SOURCE_CATALOG},
};

/// A connection string and the parts of it that came from the environment or a
/// file, so that they can be cut out of any message.
#[derive(Clone)]
pub(crate) struct Secret {
    text: String,
    parts: Vec<String>,
}

impl Secret {
    /// The source's connection string: `url`, the variable `url_env` or the file
    /// `url_file`, with `${NAME}` replaced by the environment variable `NAME`.
    pub(super) fn resolve(name: &str, source: &SourceConfig) -> Result<Secret> {
        let mut parts = Vec::new();
        let raw = match (&source.url, &source.url_env, &source.url_file) {
            (Some(url), _, _) => url.clone(),
            (_, Some(var), _) => {
                let value = std::env::var(var).map_err(|_| {
                    Error::dataset(format!("source {name}: the environment variable {var} (url_env) is not set"))
                })?;
                parts.push(value.clone());
                value
            }
            (_, _, Some(file)) => {
                let value = std::fs::read_to_string(file)
                    .map_err(|e| Error::dataset(format!("source {name}: cannot read url_file {}: {e}", file.display())))?
                    .trim()
                    .to_string();
                parts.push(value.clone());
                value
            }
            (None, None, None) => return Err(Error::Config(format!("sources.{name}: give url, url_env or url_file"))),
        };
        let mut text = String::new();
        let mut rest = raw.as_str();
        while let Some(start) = rest.find("${") {
            let Some(end) = rest[start..].find('}') else { break };
            let var = &rest[start + 2..start + end];
            let value = std::env::var(var)
                .map_err(|_| Error::dataset(format!("source {name}: the environment variable {var} in its URL is not set")))?;
            text.push_str(&rest[..start]);
            text.push_str(&value);
            parts.push(value);
            rest = &rest[start + end + 1..];
        }
        text.push_str(rest);
        parts.retain(|p| p.len() >= 3);
        Ok(Secret { text, parts })
    }

    /// `message` without the connection string, the values it took from the
    /// environment, or a `password=...` / `user:password@` it may carry.
    pub(crate) fn redact(&self, message: &str) -> String {
        let mut out = message.replace(&self.text, "<connection string>");
        for part in &self.parts {
            out = out.replace(part, "<secret>");
        }
        let password = regex::Regex::new(r"(?i)(password\s*=\s*)('[^']*'|\S+)").expect("a valid pattern");
        let out = password.replace_all(&out, "${1}<secret>");
        let userinfo = regex::Regex::new(r"(://[^:/@\s]+):[^@\s]+@").expect("a valid pattern");
        userinfo.replace_all(&out, "${1}:<secret>@").into_owned()
    }
}

/// The extension a kind needs.
fn extension(kind: SourceKind) -> extensions::Extension {
    match kind {
        SourceKind::Postgres => extensions::Extension::Postgres,
        SourceKind::Mysql => extensions::Extension::Mysql,
        SourceKind::Sqlite => extensions::Extension::Sqlite,
    }
}

fn type_name(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::Postgres => "postgres",
        SourceKind::Mysql => "mysql",
        SourceKind::Sqlite => "sqlite",
    }
}

/// A MySQL URL (`mysql://user:pass@host:port/db`) in the `key=value` form the
/// extension takes; other strings are passed as they are.
fn mysql_connection_string(url: &str) -> String {
    let Ok(parsed) = reqwest::Url::parse(url) else { return url.to_string() };
    if parsed.scheme() != "mysql" {
        return url.to_string();
    }
    let mut parts = vec![format!("host={}", parsed.host_str().unwrap_or("localhost"))];
    if let Some(port) = parsed.port() {
        parts.push(format!("port={port}"));
    }
    if !parsed.username().is_empty() {
        parts.push(format!("user={}", percent_decode(parsed.username())));
    }
    if let Some(password) = parsed.password() {
        parts.push(format!("password={}", percent_decode(password)));
    }
    let database = parsed.path().trim_start_matches('/');
    if !database.is_empty() {
        parts.push(format!("database={}", percent_decode(database)));
    }
    parts.join(" ")
}

/// `%XX` escapes of a URL part decoded.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|hex| u8::from_str_radix(hex, 16).ok()))
            .flatten();
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What the database says about one of its tables.
#[derive(Debug, Default, Clone)]
struct RemoteTable {
    comment: Option<String>,
    rows: Option<u64>,
    columns: BTreeMap<String, String>,
    primary_key: Vec<String>,
}

/// A foreign key: `(schema, table, columns)` references `(schema, table, columns)`.
type ForeignKey = ((String, String, Vec<String>), (String, String, Vec<String>));

#[derive(Debug, Default)]
struct Introspection {
    tables: BTreeMap<(String, String), RemoteTable>,
    foreign_keys: Vec<ForeignKey>,
}

/// Include and exclude patterns over `table` and `schema.table`.
struct Selection {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

impl Selection {
    fn new(name: &str, source: &SourceConfig) -> Result<Selection> {
        let set = |patterns: &[String]| -> Result<Option<GlobSet>> {
            if patterns.is_empty() {
                return Ok(None);
            }
            let mut builder = GlobSetBuilder::new();
            for pattern in patterns {
                let glob = Glob::new(&pattern.to_ascii_lowercase())
                    .map_err(|e| Error::Config(format!("sources.{name}: bad table pattern {pattern:?}: {e}")))?;
                builder.add(glob);
            }
            builder.build().map(Some).map_err(|e| Error::Config(format!("sources.{name}: {e}")))
        };
        Ok(Selection { include: set(&source.include)?, exclude: set(&source.exclude)? })
    }

    fn takes(&self, schema: &str, table: &str) -> bool {
        let names = [table.to_ascii_lowercase(), format!("{schema}.{table}").to_ascii_lowercase()];
        let matches = |set: &GlobSet| names.iter().any(|n| set.is_match(n));
        self.include.as_ref().is_none_or(matches) && !self.exclude.as_ref().is_some_and(matches)
    }
}

/// A PostgreSQL connection string with the server's own settings added: its
/// `application_name` (so its statements can be found and cancelled) and a
/// `statement_timeout` a little over the query timeout (so nothing it starts runs
/// on after the server gave up, even if the server dies). Settings the string
/// already has are kept.
fn postgres_connection_string(url: &str, application: &str, timeout_secs: u64) -> String {
    let timeout_ms = (timeout_secs + 5) * 1000;
    let is_uri = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let mut out = url.to_string();
    let mut add = |key: &str, kv: String, uri: String| {
        if out.contains(key) {
            return;
        }
        if is_uri {
            out.push(if out.contains('?') { '&' } else { '?' });
            out.push_str(&uri);
        } else {
            out.push(' ');
            out.push_str(&kv);
        }
    };
    add("application_name", format!("application_name={application}"), format!("application_name={application}"));
    add(
        "options",
        format!("options='-c statement_timeout={timeout_ms}'"),
        format!("options=-c%20statement_timeout%3D{timeout_ms}"),
    );
    out
}

/// What a dataset needs of its source while queries run: the secret to cut out
/// of messages, and, for PostgreSQL, the application name its statements carry.
#[derive(Clone)]
pub(crate) struct Attached {
    pub(crate) secret: Secret,
    application: Option<String>,
}

impl Attached {
    /// Cancels the database's statements of this dataset that started within the
    /// last `within` (those of a query that timed out or whose client went away):
    /// DuckDB's scanner does not stop a running PostgreSQL statement when its query
    /// is interrupted. Uses a connection of its own.
    pub(crate) fn cancel_recent(&self, conn: &Connection, within: Duration) {
        let Some(application) = &self.application else { return };
        let sql = format!(
            "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = {} AND pid <> pg_backend_pid() \
             AND state = 'active' AND query_start >= now() - interval '{} milliseconds'",
            quote_literal(application),
            within.as_millis() + 1000
        );
        let call = format!("CALL postgres_execute({}, {})", quote_literal(SOURCE_CATALOG), quote_literal(&sql));
        if let Err(e) = conn.execute_batch(&call) {
            tracing::warn!(error = %self.secret.redact(&e.to_string()), "cannot cancel the query's statements on the database");
        }
    }
}

/// Opens a database for the source: the extension loaded, the source attached
/// read-only as [`SOURCE_CATALOG`], a view per included table, the description
/// read, then the connection set up (`setup`, the operators) and locked.
pub(super) fn open(
    name: &str,
    source: &SourceConfig,
    extension_dir: &Path,
    setup: &ConnectionSetup,
    timeout_secs: u64,
) -> Result<(Connection, DatasetInfo, Attached)> {
    let secret = Secret::resolve(name, source)?;
    let redact = |e: Error| -> Error {
        match e {
            Error::Dataset { message, .. } | Error::Sql { message, .. } | Error::Internal { message, .. } => {
                Error::dataset(secret.redact(&message))
            }
            other => Error::dataset(secret.redact(&other.to_string())),
        }
    };
    let conn = Connection::open_in_memory()?;
    extensions::load(&conn, extension(source.kind), extension_dir)?;
    let application = (source.kind == SourceKind::Postgres)
        .then(|| format!("tag-server:{name}:{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
    let target = match (source.kind, &application) {
        (SourceKind::Mysql, _) => mysql_connection_string(&secret.text),
        (SourceKind::Postgres, Some(application)) => postgres_connection_string(&secret.text, application, timeout_secs),
        (SourceKind::Postgres | SourceKind::Sqlite, _) => secret.text.clone(),
    };
    conn.execute_batch(&format!(
        "ATTACH {} AS {SOURCE_CATALOG} (TYPE {}, READ_ONLY)",
        quote_literal(&target),
        type_name(source.kind)
    ))
    .map_err(|e| redact(Error::from(e)))
    .map_err(|e| Error::dataset(format!("source {name}: cannot attach the database: {}", e.message())))?;
    let info = describe(&conn, name, source, &secret).map_err(redact)?;
    setup(&conn).map_err(|e| Error::dataset(format!("source {name}: cannot register the LLM operators: {}", e.message())))?;
    conn.execute_batch("SET enable_external_access = false; SET lock_configuration = true;")?;
    Ok((conn, info, Attached { secret, application }))
}

/// The schemas a source exposes by default.
fn default_schemas(conn: &Connection, kind: SourceKind) -> Result<Vec<String>> {
    Ok(match kind {
        SourceKind::Postgres => vec!["public".into()],
        SourceKind::Sqlite => vec!["main".into()],
        // The connection's database (its `database=`), not the server's others.
        SourceKind::Mysql => remote_rows(conn, "mysql_query", "SELECT DATABASE() AS name", 1)?.into_iter().flatten().flatten().collect(),
    })
}

fn describe(conn: &Connection, name: &str, source: &SourceConfig, secret: &Secret) -> Result<DatasetInfo> {
    let schemas = if source.schemas.is_empty() { default_schemas(conn, source.kind)? } else { source.schemas.clone() };
    let selection = Selection::new(name, source)?;
    let mut stmt = conn.prepare(&format!(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = {db}
         UNION SELECT schema_name, view_name FROM duckdb_views() WHERE database_name = {db} AND NOT internal
         ORDER BY 1, 2",
        db = quote_literal(SOURCE_CATALOG)
    ))?;
    let remote: Vec<(String, String)> = stmt
        .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))?
        .collect::<duckdb::Result<Vec<_>>>()?
        .into_iter()
        .filter(|(schema, table)| schemas.contains(schema) && selection.takes(schema, table))
        .collect();
    if remote.is_empty() {
        return Err(Error::dataset(format!(
            "source {name}: no tables in schemas {schemas:?} match its include/exclude lists"
        )));
    }
    let introspection = match source.kind {
        SourceKind::Postgres => introspect_remote(conn, &POSTGRES),
        SourceKind::Mysql => introspect_remote(conn, &MYSQL),
        SourceKind::Sqlite => introspect_sqlite(&secret.text),
    }
    .unwrap_or_else(|e| {
        tracing::warn!(dataset = name, error = %secret.redact(&e.to_string()), "cannot read the database's comments and keys");
        Introspection::default()
    });

    // One DuckDB schema per source schema when there are several; else `main`.
    let several = remote.iter().map(|(s, _)| s).collect::<BTreeSet<_>>().len() > 1;
    let display = |schema: &str, table: &str| if several { format!("{schema}.{table}") } else { table.to_string() };
    let mut tables = Vec::new();
    for (schema, table) in &remote {
        let view = if several {
            conn.execute_batch(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema)))?;
            format!("{}.{}", quote_ident(schema), quote_ident(table))
        } else {
            quote_ident(table)
        };
        conn.execute_batch(&format!(
            "CREATE VIEW {view} AS SELECT * FROM {SOURCE_CATALOG}.{}.{}",
            quote_ident(schema),
            quote_ident(table)
        ))?;
        let display_name = display(schema, table);
        let facts = introspection.tables.get(&(schema.clone(), table.clone())).cloned().unwrap_or_default();
        let notes = source.tables.get(&display_name).or_else(|| source.tables.get(table));
        let sample = take_sample(conn, source, schema, table, &view);
        let mut columns = Vec::new();
        let mut column_stmt = conn.prepare(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = ? AND table_name = ? ORDER BY column_index",
        )?;
        let view_schema = if several { schema.as_str() } else { "main" };
        let column_types: Vec<(String, String)> = column_stmt
            .query_map([view_schema, table.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<duckdb::Result<Vec<_>>>()?;
        for (column, data_type) in column_types {
            let mut info = match &sample {
                Some(sample_table) => describe_column(conn, sample_table, &column, &data_type, None)?,
                None => super::ColumnInfo {
                    name: column.clone(),
                    data_type: data_type.clone(),
                    description: None,
                    samples: Vec::new(),
                    distinct_count: 0,
                    values: None,
                },
            };
            info.description = notes.and_then(|n| n.columns.get(&column).cloned()).or_else(|| facts.columns.get(&column).cloned());
            columns.push(info);
        }
        if let Some(sample_table) = &sample {
            conn.execute_batch(&format!("DROP TABLE IF EXISTS {sample_table}"))?;
        }
        let primary_key = (!facts.primary_key.is_empty()).then(|| facts.primary_key.join(", "));
        tables.push(TableInfo {
            name: display_name,
            description: notes.and_then(|n| n.description.clone()).or(facts.comment),
            primary_key: notes.and_then(|n| n.primary_key.clone()).or(primary_key),
            row_count: facts.rows.unwrap_or(0),
            columns,
        });
    }
    let taken: BTreeSet<(String, String)> = remote.iter().cloned().collect();
    let mut joins: Vec<String> = Vec::new();
    for ((from_schema, from_table, from_columns), (to_schema, to_table, to_columns)) in &introspection.foreign_keys {
        if !taken.contains(&(from_schema.clone(), from_table.clone())) || !taken.contains(&(to_schema.clone(), to_table.clone())) {
            continue;
        }
        let (from, to) = (display(from_schema, from_table), display(to_schema, to_table));
        let pairs: Vec<String> = from_columns.iter().zip(to_columns).map(|(a, b)| format!("{from}.{a} = {to}.{b}")).collect();
        joins.push(pairs.join(" AND "));
    }
    joins.extend(source.joins.iter().cloned());
    Ok(DatasetInfo {
        name: name.to_string(),
        description: source.description.clone().unwrap_or_default(),
        tables,
        joins,
        examples: source.examples.clone(),
        verified: source.verified.clone(),
        terms: source.terms.clone(),
    })
}

/// Seconds one table's sample may take.
const SAMPLE_SECONDS: u64 = 10;

/// Reads at most `sample_rows` rows of a table into a temporary table, within a
/// time limit; `None` when that fails (the columns then have no samples). The
/// limit goes to the database itself where the extension can pass a query.
fn take_sample(conn: &Connection, source: &SourceConfig, schema: &str, table: &str, view: &str) -> Option<String> {
    let sample = "__tag_sample";
    let n = source.sample_rows;
    let select = match source.kind {
        SourceKind::Postgres => format!(
            "SELECT * FROM postgres_query({}, {})",
            quote_literal(SOURCE_CATALOG),
            quote_literal(&format!("SELECT * FROM {}.{} LIMIT {n}", quote_ident(schema), quote_ident(table)))
        ),
        SourceKind::Mysql => format!(
            "SELECT * FROM mysql_query({}, {})",
            quote_literal(SOURCE_CATALOG),
            quote_literal(&format!("SELECT * FROM `{}`.`{}` LIMIT {n}", schema.replace('`', "``"), table.replace('`', "``")))
        ),
        SourceKind::Sqlite => format!("SELECT * FROM {view} LIMIT {n}"),
    };
    let interrupt = conn.interrupt_handle();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(Duration::from_secs(SAMPLE_SECONDS)).is_err() {
            interrupt.interrupt();
        }
    });
    let created = conn.execute_batch(&format!("CREATE OR REPLACE TEMP TABLE {sample} AS {select}"));
    let _ = done.send(());
    let _ = watchdog.join();
    match created {
        Ok(()) => Some(sample.to_string()),
        Err(e) => {
            tracing::warn!(schema, table, error = %e, "cannot sample the table; it is described without samples");
            None
        }
    }
}

/// Reads a two-dimensional text result of `sql` run by the extension's
/// pass-through function (`postgres_query`, `mysql_query`).
fn remote_rows(conn: &Connection, function: &str, sql: &str, width: usize) -> Result<Vec<Vec<Option<String>>>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT * FROM {function}({}, {})",
        quote_literal(SOURCE_CATALOG),
        quote_literal(sql)
    ))?;
    let rows = stmt.query_map([], |row| {
        (0..width)
            .map(|i| {
                row.get::<_, duckdb::types::Value>(i).map(|value| match value {
                    duckdb::types::Value::Null => None,
                    duckdb::types::Value::Text(text) => Some(text),
                    other => Some(crate::execution::values::cell_text(&crate::execution::values::to_json(other))),
                })
            })
            .collect::<duckdb::Result<Vec<_>>>()
    })?;
    Ok(rows.collect::<duckdb::Result<Vec<_>>>()?)
}

fn split_list(text: Option<&String>) -> Vec<String> {
    text.map(|t| t.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()).unwrap_or_default()
}

/// The three catalog queries of a database the extension can pass queries to: its
/// tables `(schema, table, comment, row estimate)`, commented columns `(schema,
/// table, column, comment)` and keys (see [`record_keys`]).
struct CatalogQueries {
    function: &'static str,
    tables: &'static str,
    columns: &'static str,
    keys: &'static str,
}

const POSTGRES: CatalogQueries = CatalogQueries {
    function: "postgres_query",
    tables: "SELECT n.nspname AS schema_name, c.relname AS table_name, obj_description(c.oid, 'pg_class') AS comment, \
         CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint::text END AS row_estimate \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')",
    columns: "SELECT n.nspname AS schema_name, c.relname AS table_name, a.attname AS column_name, \
         col_description(c.oid, a.attnum) AS comment \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE a.attnum > 0 AND NOT a.attisdropped AND col_description(c.oid, a.attnum) IS NOT NULL",
    keys: "SELECT con.contype::text AS kind, n.nspname AS schema_name, c.relname AS table_name, \
         (SELECT string_agg(a.attname, ',' ORDER BY k.i) FROM unnest(con.conkey) WITH ORDINALITY k(n, i) \
            JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n) AS columns, \
         fn.nspname AS referenced_schema, fc.relname AS referenced_table, \
         (SELECT string_agg(a.attname, ',' ORDER BY k.i) FROM unnest(con.confkey) WITH ORDINALITY k(n, i) \
            JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n) AS referenced_columns \
         FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_class fc ON fc.oid = con.confrelid LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace \
         WHERE con.contype IN ('p', 'f') ORDER BY 2, 3, con.conname",
};

const MYSQL: CatalogQueries = CatalogQueries {
    function: "mysql_query",
    tables: "SELECT TABLE_SCHEMA, TABLE_NAME, NULLIF(TABLE_COMMENT, '') AS comment, CAST(TABLE_ROWS AS CHAR) AS row_estimate FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')",
    columns: "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLUMN_COMMENT FROM information_schema.COLUMNS \
         WHERE COLUMN_COMMENT <> '' AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')",
    keys: "SELECT IF(CONSTRAINT_NAME = 'PRIMARY', 'p', 'f') AS kind, TABLE_SCHEMA, TABLE_NAME, \
         GROUP_CONCAT(COLUMN_NAME ORDER BY ORDINAL_POSITION) AS columns, REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME, \
         GROUP_CONCAT(REFERENCED_COLUMN_NAME ORDER BY ORDINAL_POSITION) AS referenced_columns \
         FROM information_schema.KEY_COLUMN_USAGE \
         WHERE CONSTRAINT_NAME = 'PRIMARY' OR REFERENCED_TABLE_NAME IS NOT NULL \
         GROUP BY CONSTRAINT_NAME, TABLE_SCHEMA, TABLE_NAME, REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME \
         ORDER BY 2, 3, CONSTRAINT_NAME",
};

/// Comments, row estimates and keys, read with the database's own catalog queries.
fn introspect_remote(conn: &Connection, queries: &CatalogQueries) -> Result<Introspection> {
    let mut found = Introspection::default();
    for row in remote_rows(conn, queries.function, queries.tables, 4)? {
        let (Some(schema), Some(table)) = (row[0].clone(), row[1].clone()) else { continue };
        let entry = found.tables.entry((schema, table)).or_default();
        entry.comment = row[2].clone();
        entry.rows = row[3].as_deref().and_then(|n| n.parse().ok());
    }
    for row in remote_rows(conn, queries.function, queries.columns, 4)? {
        if let [Some(schema), Some(table), Some(column), Some(comment)] = &row[..] {
            found.tables.entry((schema.clone(), table.clone())).or_default().columns.insert(column.clone(), comment.clone());
        }
    }
    let keys = remote_rows(conn, queries.function, queries.keys, 7)?;
    record_keys(&mut found, keys);
    Ok(found)
}

/// Rows of `(kind p|f, schema, table, columns, referenced schema, table, columns)`.
fn record_keys(found: &mut Introspection, keys: Vec<Vec<Option<String>>>) {
    for row in keys {
        let (Some(kind), Some(schema), Some(table)) = (row[0].as_deref(), row[1].clone(), row[2].clone()) else { continue };
        let columns = split_list(row[3].as_ref());
        match (kind, row[4].clone(), row[5].clone()) {
            ("p", _, _) => found.tables.entry((schema, table)).or_default().primary_key = columns,
            ("f", Some(to_schema), Some(to_table)) => {
                found.foreign_keys.push(((schema, table, columns), (to_schema, to_table, split_list(row[6].as_ref()))))
            }
            _ => {}
        }
    }
}

/// SQLite has no comments; keys come from its pragmas and row counts from
/// `sqlite_stat1` or the largest rowid (no scan), read with a read-only SQLite
/// connection of its own.
fn introspect_sqlite(path: &str) -> Result<Introspection> {
    let path = path.strip_prefix("sqlite:").unwrap_or(path);
    let sqlite = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut found = Introspection::default();
    let names: Vec<String> = {
        let mut stmt = sqlite.prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%'")?;
        let names = stmt.query_map([], |row| row.get(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
        names
    };
    let has_stats = sqlite.query_row("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'", [], |row| row.get::<_, i64>(0))? > 0;
    for table in names {
        let quoted = format!("\"{}\"", table.replace('"', "\"\""));
        let entry = found.tables.entry(("main".into(), table.clone())).or_default();
        let stat: Option<String> = if has_stats {
            sqlite.query_row("SELECT stat FROM sqlite_stat1 WHERE tbl = ?1 AND idx IS NULL", [&table], |row| row.get(0)).ok()
        } else {
            None
        };
        entry.rows = stat
            .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
            .or_else(|| sqlite.query_row(&format!("SELECT max(rowid) FROM {quoted}"), [], |row| row.get::<_, Option<i64>>(0)).ok().flatten().map(|n| n as u64));
        let mut info = sqlite.prepare(&format!("PRAGMA table_info({quoted})"))?;
        let mut key: Vec<(i64, String)> = info
            .query_map([], |row| Ok((row.get::<_, i64>(5)?, row.get::<_, String>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .filter(|(position, _)| *position > 0)
            .collect();
        key.sort();
        entry.primary_key = key.into_iter().map(|(_, column)| column).collect();
        let mut fks = sqlite.prepare(&format!("PRAGMA foreign_key_list({quoted})"))?;
        let rows: Vec<(i64, String, String, Option<String>)> = fks
            .query_map([], |row| Ok((row.get(0)?, row.get(2)?, row.get(3)?, row.get(4)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut by_id: BTreeMap<i64, (String, Vec<String>, Vec<String>)> = BTreeMap::new();
        for (id, to_table, from, to) in rows {
            let fk = by_id.entry(id).or_insert_with(|| (to_table, Vec::new(), Vec::new()));
            fk.1.push(from);
            fk.2.push(to.unwrap_or_default());
        }
        for (_, (to_table, from, to)) in by_id {
            found.foreign_keys.push((("main".into(), table.clone(), from), ("main".into(), to_table, to)));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(url: &str) -> SourceConfig {
        SourceConfig::new(SourceKind::Postgres, url.into())
    }

    #[test]
    fn secrets_are_cut_out_of_messages() {
        std::env::set_var("SOURCE_TEST_PASSWORD_7C1", "hunter2-secret");
        let secret = Secret::resolve("wh", &source("postgres://reader:${SOURCE_TEST_PASSWORD_7C1}@db:5432/shop")).unwrap();
        assert_eq!(secret.text, "postgres://reader:hunter2-secret@db:5432/shop");
        let message = "connection to postgres://reader:hunter2-secret@db:5432/shop failed; password hunter2-secret";
        let redacted = secret.redact(message);
        assert!(!redacted.contains("hunter2"), "{redacted}");
        assert!(redacted.contains("<connection string>"), "{redacted}");
        let other = Secret::resolve("wh", &source("host=db password=plain user=x")).unwrap();
        assert_eq!(other.redact("failed: host=db password='plain x' user=x"), "failed: host=db password=<secret> user=x");
        assert_eq!(other.redact("at mysql://u:pw@h/d"), "at mysql://u:<secret>@h/d");
        let missing = Secret::resolve("wh", &source("postgres://u:${SOURCE_TEST_NOT_SET_7C1}@h/d")).err().unwrap();
        assert!(missing.to_string().contains("SOURCE_TEST_NOT_SET_7C1"), "{missing}");
    }

    #[test]
    fn postgres_connections_carry_the_servers_name_and_a_statement_timeout() {
        assert_eq!(
            postgres_connection_string("host=db dbname=shop", "tag-server:wh:1", 120),
            "host=db dbname=shop application_name=tag-server:wh:1 options='-c statement_timeout=125000'"
        );
        assert_eq!(
            postgres_connection_string("postgres://u@db/shop?sslmode=require", "a", 10),
            "postgres://u@db/shop?sslmode=require&application_name=a&options=-c%20statement_timeout%3D15000"
        );
        assert_eq!(postgres_connection_string("postgresql://db/shop", "a", 1), "postgresql://db/shop?application_name=a&options=-c%20statement_timeout%3D6000");
        let own = "host=db application_name=mine options='-c work_mem=64MB'";
        assert_eq!(postgres_connection_string(own, "a", 1), own);
    }

    #[test]
    fn mysql_urls_become_key_value_strings_and_patterns_select_tables() {
        assert_eq!(mysql_connection_string("mysql://reader:p%40ss@db:3307/shop"), "host=db port=3307 user=reader password=p@ss database=shop");
        assert_eq!(mysql_connection_string("host=db user=x"), "host=db user=x");
        let mut config = source("x");
        config.include = vec!["order*".into(), "public.customers".into()];
        config.exclude = vec!["*_audit".into()];
        let selection = Selection::new("wh", &config).unwrap();
        assert!(selection.takes("public", "orders"));
        assert!(selection.takes("public", "Customers"));
        assert!(!selection.takes("public", "orders_audit"));
        assert!(!selection.takes("public", "products"));
    }
}
