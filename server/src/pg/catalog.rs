//! The dataset as PostgreSQL's system catalog shows a database, for the catalog
//! queries of psql (`\dt`, `\d table`), drivers' metadata calls (pgJDBC's
//! `DatabaseMetaData`, SQLAlchemy's reflection) and BI tools' schema sync.
//!
//! Those queries are PostgreSQL's own SQL over `pg_class`, `pg_attribute`,
//! `pg_type`, `pg_index`, `pg_constraint`, `pg_description`, `information_schema`
//! and its functions (`format_type`, `pg_get_constraintdef`, ...). DuckDB's own
//! `pg_catalog` views answer with DuckDB's type names and oids, without keys or
//! comments, and lack many of the tables and functions. So each dataset gets a
//! small in-memory DuckDB database holding only its catalog, in PostgreSQL's shape ([`catalog.sql`](catalog.sql)): the tables with
//! their comments, the columns with PostgreSQL types, the primary keys as unique
//! indexes and constraints, the joins of the dataset's description as foreign
//! keys. It holds no data of the dataset, reaches no file (external access off,
//! configuration locked), and runs only single `SELECT` statements (DuckDB's own
//! parser decides), so a catalog query needs no other check. It is built once per
//! dataset (again when the dataset is reloaded) and shared by the sessions, each
//! query on a connection of its own.
//!
//! [`is_catalog_query`] routes: a statement naming a catalog table, or calling a
//! catalog function without naming a table of the dataset, is answered here.

use std::sync::{Arc, LazyLock, Mutex};

use arrow::{array::RecordBatch, datatypes::Schema};
use duckdb::{params, Connection};
use pgwire::{api::Type, error::PgWireResult};
use postgres_types::Kind;
use sqlparser::tokenizer::Token;
use tag_types::DatasetInfo;

use crate::catalog::Dataset;

use super::{compat, params::{pg_type_of, tokens}, user_error};

const SCHEMA: &str = include_str!("catalog.sql");

/// The names of the catalog's tables, views and functions (`CREATE TABLE x`,
/// `CREATE VIEW x`, `CREATE MACRO x` in [`SCHEMA`]).
static NAMES: LazyLock<(Vec<String>, Vec<String>)> = LazyLock::new(|| {
    let mut relations = Vec::new();
    let mut functions = Vec::new();
    for line in SCHEMA.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("CREATE") {
            continue;
        }
        let (Some(kind), Some(name)) = (words.next(), words.next()) else { continue };
        let name = name.split(['(', ' ']).next().unwrap_or_default().to_ascii_lowercase();
        match kind {
            "TABLE" | "VIEW" if !name.starts_with("tag_") => relations.push(name),
            "MACRO" if !name.starts_with("tag_") => functions.push(name),
            _ => {}
        }
    }
    (relations, functions)
});

/// Whether `sql` is a catalog query: it names one of the catalog's tables or
/// `information_schema`, or calls one of its functions and names none of the
/// tables of `dataset`.
pub fn is_catalog_query(sql: &str, dataset: &DatasetInfo) -> bool {
    let lower = sql.to_ascii_lowercase();
    if !(lower.contains("pg_") || lower.contains("information_schema") || NAMES.1.iter().any(|f| lower.contains(f.as_str()))) {
        return false;
    }
    let Ok(tokens) = tokens(sql) else { return false };
    let words: Vec<String> = tokens
        .iter()
        .filter_map(|t| match t {
            Token::Word(w) => Some(w.value.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    let (relations, functions) = &*NAMES;
    if words.iter().any(|w| w == "information_schema" || relations.contains(w)) {
        return true;
    }
    words.iter().any(|w| functions.contains(w)) && !words.iter().any(|w| dataset.tables.iter().any(|t| t.name.eq_ignore_ascii_case(w)))
}

/// The PostgreSQL types the catalog lists: the built-in ones drivers map, and
/// their arrays.
const TYPES: &[Type] = &[
    Type::BOOL, Type::BYTEA, Type::CHAR, Type::NAME, Type::INT8, Type::INT2, Type::INT4, Type::TEXT, Type::OID, Type::JSON,
    Type::FLOAT4, Type::FLOAT8, Type::BPCHAR, Type::VARCHAR, Type::DATE, Type::TIME, Type::TIMESTAMP, Type::TIMESTAMPTZ,
    Type::INTERVAL, Type::NUMERIC, Type::UUID, Type::JSONB, Type::REGCLASS, Type::REGTYPE, Type::REGPROC,
    Type::BOOL_ARRAY, Type::BYTEA_ARRAY, Type::INT8_ARRAY, Type::INT2_ARRAY, Type::INT4_ARRAY, Type::TEXT_ARRAY, Type::OID_ARRAY,
    Type::FLOAT4_ARRAY, Type::FLOAT8_ARRAY, Type::VARCHAR_ARRAY, Type::DATE_ARRAY, Type::TIMESTAMP_ARRAY,
    Type::TIMESTAMPTZ_ARRAY, Type::NUMERIC_ARRAY, Type::UUID_ARRAY, Type::INTERVAL_ARRAY, Type::TIME_ARRAY,
];

/// `format_type`'s name of a type, and its length (-1: variable).
fn display(t: &Type) -> (String, i16) {
    if let Kind::Array(element) = t.kind() {
        return (format!("{}[]", display(element).0), -1);
    }
    let (name, len) = match *t {
        Type::BOOL => ("boolean", 1),
        Type::CHAR => ("\"char\"", 1),
        Type::NAME => ("name", 64),
        Type::INT2 => ("smallint", 2),
        Type::INT4 => ("integer", 4),
        Type::INT8 => ("bigint", 8),
        Type::OID | Type::REGCLASS | Type::REGTYPE | Type::REGPROC => (t.name(), 4),
        Type::FLOAT4 => ("real", 4),
        Type::FLOAT8 => ("double precision", 8),
        Type::BPCHAR => ("character", -1),
        Type::VARCHAR => ("character varying", -1),
        Type::DATE => ("date", 4),
        Type::TIME => ("time without time zone", 8),
        Type::TIMESTAMP => ("timestamp without time zone", 8),
        Type::TIMESTAMPTZ => ("timestamp with time zone", 8),
        Type::INTERVAL => ("interval", 16),
        Type::UUID => ("uuid", 16),
        _ => (t.name(), -1),
    };
    (name.to_string(), len)
}

/// PostgreSQL's type category letter.
fn category(t: &Type) -> &'static str {
    match *t {
        _ if matches!(t.kind(), Kind::Array(_)) => "A",
        Type::BOOL => "B",
        Type::INT2 | Type::INT4 | Type::INT8 | Type::FLOAT4 | Type::FLOAT8 | Type::NUMERIC | Type::OID | Type::REGCLASS | Type::REGTYPE | Type::REGPROC => "N",
        Type::DATE | Type::TIME | Type::TIMESTAMP | Type::TIMESTAMPTZ => "D",
        Type::INTERVAL => "T",
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::CHAR => "S",
        _ => "U",
    }
}

/// A column's PostgreSQL type and type modifier (-1 for none; a numeric's
/// precision and scale).
fn column_type(duckdb_type: &str) -> (Type, i32) {
    let t = pg_type_of(duckdb_type);
    let typmod = match (&t, duckdb_type.split_once('(')) {
        (&Type::NUMERIC, Some((_, args))) => {
            let mut numbers = args.trim_end_matches(')').split(',').map(|n| n.trim().parse::<i32>().unwrap_or(0));
            let (precision, scale) = (numbers.next().unwrap_or(18), numbers.next().unwrap_or(3));
            ((precision << 16) | scale) + 4
        }
        (&Type::NUMERIC, None) => ((18 << 16) | 3) + 4,
        _ => -1,
    };
    (t, typmod)
}

/// The catalogs built so far, by dataset name, with the dataset each was built
/// from.
#[derive(Default)]
pub struct Catalogs {
    built: Mutex<std::collections::HashMap<String, (Arc<Dataset>, Arc<PgCatalog>)>>,
}

impl Catalogs {
    /// The catalog of `dataset`, built now if it was not yet, or was built from
    /// what the dataset was before a reload.
    pub fn get(&self, dataset: &Arc<Dataset>) -> PgWireResult<Arc<PgCatalog>> {
        let mut built = self.built.lock().expect("catalogs lock");
        if let Some((from, catalog)) = built.get(&dataset.info.name) {
            if Arc::ptr_eq(from, dataset) {
                return Ok(catalog.clone());
            }
        }
        let catalog = Arc::new(PgCatalog::new(&dataset.info)?);
        built.insert(dataset.info.name.clone(), (dataset.clone(), catalog.clone()));
        Ok(catalog)
    }
}

/// The catalog database of one dataset.
pub struct PgCatalog {
    conn: Mutex<Connection>,
}

fn duck_error(e: duckdb::Error) -> pgwire::error::PgWireError {
    user_error("ERROR", super::sql_sqlstate(&e.to_string()), format!("catalog query: {e}"))
}

/// The first oid given to the dataset's tables, indexes and constraints.
const FIRST_OID: i64 = 16384;

impl PgCatalog {
    pub fn new(info: &DatasetInfo) -> PgWireResult<PgCatalog> {
        let conn = Connection::open_in_memory().map_err(duck_error)?;
        let started = std::time::Instant::now();
        conn.execute_batch(SCHEMA).map_err(duck_error)?;
        fill(&conn, info).map_err(duck_error)?;
        conn.execute_batch("SET enable_external_access = false; SET lock_configuration = true;").map_err(duck_error)?;
        tracing::debug!(dataset = %info.name, ms = started.elapsed().as_millis() as u64, "pg: catalog built");
        Ok(PgCatalog { conn: Mutex::new(conn) })
    }

    /// [`PgCatalog::query`] on a blocking thread, off the runtime's.
    pub async fn query_blocking(self: Arc<Self>, sql: String) -> PgWireResult<(Arc<Schema>, Vec<RecordBatch>)> {
        tokio::task::spawn_blocking(move || self.query(&sql)).await.map_err(|e| pgwire::error::PgWireError::ApiError(Box::new(e)))?
    }

    /// Runs one catalog query: its schema and rows.
    pub fn query(&self, sql: &str) -> PgWireResult<(Arc<Schema>, Vec<RecordBatch>)> {
        let rewritten = compat::rewrite(sql)?;
        tracing::debug!(%sql, %rewritten, "pg: catalog query");
        let sql = rewritten;
        let conn = self.conn.lock().expect("catalog lock").try_clone().map_err(duck_error)?;
        let serialized: String = conn.query_row(&format!("SELECT json_serialize_sql({})", crate::sql::quote_literal(&sql)), [], |row| row.get(0)).map_err(duck_error)?;
        let parsed: serde_json::Value = serde_json::from_str(&serialized).unwrap_or_default();
        let statements = parsed["statements"].as_array().map_or(0, Vec::len);
        if parsed["error"] != serde_json::Value::Bool(false) || statements != 1 {
            // A statement DuckDB cannot parse gets its syntax error; any other is not a query.
            let reason = parsed["error_message"].as_str().filter(|m| m.contains("syntax error")).map(|m| format!(" ({m})")).unwrap_or_default();
            return Err(user_error("ERROR", "42501", format!("only a single read-only query (SELECT) may run on the catalog{reason}")));
        }
        let mut statement = conn.prepare(&sql).map_err(duck_error)?;
        let arrow = statement.query_arrow([]).map_err(duck_error)?;
        let schema = arrow.get_schema();
        Ok((schema, arrow.collect()))
    }
}

/// A row of `pg_class`: a table (`kind` `r`, heap) or a primary key's index (`i`,
/// btree). A table says it has triggers: psql shows foreign keys only then
/// (PostgreSQL's are triggers).
fn insert_relation(conn: &Connection, oid: i64, name: &str, kind: &str, columns: usize, rows: u64, has_index: bool) -> duckdb::Result<()> {
    let table = kind == "r";
    conn.execute(
        "INSERT INTO pg_class (oid, relname, relnamespace, reltype, reloftype, relowner, relam, relfilenode, reltablespace, relpages,
             reltuples, relallvisible, reltoastrelid, relhasindex, relisshared, relpersistence, relkind, relnatts, relchecks,
             relhasrules, relhastriggers, relhassubclass, relrowsecurity, relforcerowsecurity, relispopulated, relreplident,
             relispartition, relrewrite, relfrozenxid, relminmxid)
         VALUES (?, ?, 2200, 0, 0, 10, ?, ?, 0, 0, ?, 0, 0, ?, false, 'p', ?, ?, 0, false, ?, false, false, false, true, ?, false, 0, 0, 0)",
        params![oid, name, if table { 2 } else { 403 }, oid, rows as f64, has_index, kind, columns as i64, table, if table { "d" } else { "n" }],
    )?;
    Ok(())
}

/// The catalog's rows for `info`.
fn fill(conn: &Connection, info: &DatasetInfo) -> duckdb::Result<()> {
    conn.execute(
        "INSERT INTO pg_database (oid, datname, datdba, encoding, datlocprovider, datistemplate, datallowconn, datconnlimit, dattablespace, datcollate, datctype)
         VALUES (16383, ?, 10, 6, 'c', false, true, -1, 1663, 'C.UTF-8', 'C.UTF-8')",
        [&info.name],
    )?;
    for t in TYPES {
        let (name, len) = display(t);
        let (element, array) = match t.kind() {
            Kind::Array(element) => (element.oid(), 0),
            _ => (0, TYPES.iter().find(|a| matches!(a.kind(), Kind::Array(e) if e == t)).map_or(0, |a| a.oid())),
        };
        conn.execute(
            "INSERT INTO pg_type (oid, typname, typnamespace, typowner, typlen, typbyval, typtype, typcategory, typispreferred, typisdefined,
                 typdelim, typrelid, typelem, typarray, typinput, typoutput, typreceive, typsend, typalign, typstorage, typnotnull,
                 typbasetype, typtypmod, typndims, typcollation)
             VALUES (?, ?, 11, 10, ?, ? BETWEEN 1 AND 8, 'b', ?, false, true, ',', 0, ?, ?, ?, ?, ?, ?, 'i', CASE WHEN ? = -1 THEN 'x' ELSE 'p' END, false, 0, -1, 0, ?)",
            params![
                t.oid(),
                t.name(),
                len,
                len,
                category(t),
                element,
                array,
                if element != 0 { "array_in".to_string() } else { format!("{}in", t.name()) },
                if element != 0 { "array_out".to_string() } else { format!("{}out", t.name()) },
                if element != 0 { "array_recv".to_string() } else { format!("{}recv", t.name()) },
                if element != 0 { "array_send".to_string() } else { format!("{}send", t.name()) },
                len,
                if category(t) == "S" { 100 } else { 0 },
            ],
        )?;
        conn.execute("INSERT INTO tag_type_display VALUES (?, ?)", params![t.oid(), name])?;
    }
    let mut next_oid = FIRST_OID;
    let mut oid = || {
        next_oid += 1;
        next_oid
    };
    let mut tables = Vec::new();
    for table in &info.tables {
        let relation = oid();
        tables.push((table, relation));
        insert_relation(conn, relation, &table.name, "r", table.columns.len(), table.row_count, table.primary_key.is_some())?;
        if let Some(description) = &table.description {
            conn.execute("INSERT INTO pg_description VALUES (?, 1259, 0, ?)", params![relation, description])?;
        }
        for (i, column) in table.columns.iter().enumerate() {
            let (pg_type, typmod) = column_type(&column.data_type);
            let not_null = table.primary_key.as_deref() == Some(column.name.as_str());
            conn.execute(
                "INSERT INTO pg_attribute (attrelid, attname, atttypid, attlen, attnum, attcacheoff, atttypmod, attndims, attbyval,
                     attalign, attstorage, attcompression, attnotnull, atthasdef, atthasmissing, attidentity, attgenerated,
                     attisdropped, attislocal, attinhcount, attstattarget, attcollation)
                 SELECT ?, ?, oid, typlen, ?, -1, ?, CASE WHEN typcategory = 'A' THEN 1 ELSE 0 END, typbyval, typalign, typstorage,
                     '', ?, false, false, '', '', false, true, 0, -1, typcollation
                 FROM pg_type WHERE oid = ?",
                params![relation, column.name, (i + 1) as i64, typmod, not_null, pg_type.oid()],
            )?;
            if let Some(description) = &column.description {
                conn.execute("INSERT INTO pg_description VALUES (?, 1259, ?, ?)", params![relation, (i + 1) as i64, description])?;
            }
        }
    }
    let attnum = |table: &tag_types::TableInfo, column: &str| table.columns.iter().position(|c| c.name == column).map(|i| (i + 1) as i64);
    let quoted = crate::sql::quote_ident;
    // Each table's primary key index, by the table's oid.
    let mut keys = std::collections::HashMap::new();
    for &(table, relation) in &tables {
        let Some((key, number)) = table.primary_key.as_deref().and_then(|key| Some((key, attnum(table, key)?))) else { continue };
        let (index, constraint) = (oid(), oid());
        keys.insert(relation, index);
        let index_name = format!("{}_pkey", table.name);
        insert_relation(conn, index, &index_name, "i", 1, table.row_count, false)?;
        conn.execute(
            "INSERT INTO pg_index VALUES (?, ?, 1, 1, true, false, true, false, true, false, true, false, true, true, false, [?], [0], [0], [0], NULL, NULL)",
            params![index, relation, number],
        )?;
        conn.execute(
            "INSERT INTO pg_constraint VALUES (?, ?, 2200, 'p', false, false, true, ?, 0, ?, 0, 0, ' ', ' ', ' ', true, 0, true, [?], NULL,
                 NULL, NULL, NULL, NULL, NULL, NULL)",
            params![constraint, index_name, relation, index, number],
        )?;
        let definition = format!("PRIMARY KEY ({})", quoted(key));
        conn.execute("INSERT INTO tag_definitions VALUES (?, ?)", params![constraint, definition])?;
        let index_definition = format!("CREATE UNIQUE INDEX {} ON main.{} USING btree ({})", quoted(&index_name), quoted(&table.name), quoted(key));
        conn.execute("INSERT INTO tag_definitions VALUES (?, ?)", params![index, index_definition])?;
    }
    for (from, to) in info.joins.iter().filter_map(|join| foreign_key(join, info)) {
        let (Some(&(from_table, from_oid)), Some(&(to_table, to_oid))) =
            (tables.iter().find(|(t, _)| t.name == from.0), tables.iter().find(|(t, _)| t.name == to.0))
        else {
            continue;
        };
        let (Some(from_number), Some(to_number)) = (attnum(from_table, &from.1), attnum(to_table, &to.1)) else { continue };
        let index = keys.get(&to_oid).copied().unwrap_or(0);
        let constraint = oid();
        let name = format!("{}_{}_fkey", from.0, from.1);
        conn.execute(
            "INSERT INTO pg_constraint VALUES (?, ?, 2200, 'f', false, false, true, ?, 0, ?, 0, ?, 'a', 'a', 's', true, 0, true, [?], [?],
                 NULL, NULL, NULL, NULL, NULL, NULL)",
            params![constraint, name, from_oid, index, to_oid, from_number, to_number],
        )?;
        let definition = format!("FOREIGN KEY ({}) REFERENCES {}({})", quoted(&from.1), quoted(&to.0), quoted(&to.1));
        conn.execute("INSERT INTO tag_definitions VALUES (?, ?)", params![constraint, definition])?;
    }
    Ok(())
}

/// A join `a.x = b.y` of the dataset's description as a foreign key: from the
/// side that is not its table's primary key to the side that is.
fn foreign_key(join: &str, info: &DatasetInfo) -> Option<((String, String), (String, String))> {
    let (left, right) = join.split_once('=')?;
    let side = |text: &str| {
        let (table, column) = text.trim().rsplit_once('.')?;
        Some((table.trim().trim_matches('"').to_string(), column.trim().trim_matches('"').to_string()))
    };
    let (left, right) = (side(left)?, side(right)?);
    let is_key = |(table, column): &(String, String)| info.tables.iter().any(|t| &t.name == table && t.primary_key.as_ref() == Some(column));
    match (is_key(&left), is_key(&right)) {
        (false, true) => Some((left, right)),
        (true, false) => Some((right, left)),
        _ => None,
    }
}
