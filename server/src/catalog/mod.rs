//! Datasets and their descriptions: the first thing the pipeline needs. A dataset is
//! a folder of CSV/Parquet files (one table per file), a DuckDB file, or a database
//! attached read-only through DuckDB's own extensions ([`source`]: PostgreSQL,
//! MySQL/MariaDB, SQLite), plus a description (`dataset.toml` in a folder,
//! `<name>.toml` beside a file, `[sources.<name>]` in the configuration) with table
//! and column descriptions, keys, joins and example questions. Each dataset gets its
//! own DuckDB database, set up by the catalog's [`ConnectionSetup`] (the executor
//! registers the LLM operators there), with external access disabled and the
//! configuration locked once loaded. A database that cannot be reached is listed as
//! unavailable with the reason, and [`Catalog::reload`] tries it again (the server
//! does every few seconds); a reload also picks up schema changes. The catalog also
//! writes the schema text that grounds the synthesis prompt.

pub mod bundled;
pub mod extensions;
pub mod linking;
mod schema_text;
mod source;

pub(crate) use source::Attached;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
    time::Instant,
};

use duckdb::{AccessMode, Connection};
use serde::Deserialize;
pub use tag_types::{ColumnInfo, DatasetInfo, TableInfo, Term, VerifiedExample};

use crate::{
    config::{SourceConfig, SourceKind, TableDescription},
    error::{Error, Result},
    sql::{quote_ident, quote_literal},
    text::shorten,
};

/// What every dataset's database gets before its configuration is locked (the
/// executor's LLM operators).
pub type ConnectionSetup = std::sync::Arc<dyn Fn(&Connection) -> Result<()> + Send + Sync>;

/// The description file's format.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DescriptionFile {
    description: Option<String>,
    #[serde(default)]
    examples: Vec<String>,
    #[serde(default)]
    joins: Vec<String>,
    #[serde(default)]
    verified: Vec<VerifiedExample>,
    #[serde(default)]
    terms: Vec<Term>,
    #[serde(default)]
    tables: BTreeMap<String, TableDescription>,
}

/// A loaded dataset: its description and a pool of DuckDB connections.
pub struct Dataset {
    pub info: DatasetInfo,
    /// Where the data lives: `files`, `duckdb`, `postgres`, `mysql` or `sqlite`.
    pub source: &'static str,
    /// The schema text used in synthesis prompts.
    pub schema_text: String,
    /// The schema linker over the tables, for schemas too large for one prompt.
    pub linker: linking::Linker,
    /// For a database source: its secret (cut out of every message) and what
    /// cancelling its statements needs.
    attached: Option<Attached>,
    root: Mutex<Connection>,
    idle: Mutex<Vec<Connection>>,
    /// The GBNF grammars of queries over its tables (strict, full), made when
    /// first asked for.
    grammars: [std::sync::OnceLock<Arc<str>>; 2],
}

impl Dataset {
    fn new(info: DatasetInfo, source: &'static str, conn: Connection, attached: Option<Attached>) -> Dataset {
        let schema_text = schema_text::render(&info, None);
        let linker = linking::Linker::new(&info);
        Dataset {
            info,
            source,
            schema_text,
            linker,
            attached,
            root: Mutex::new(conn),
            idle: Mutex::new(Vec::new()),
            grammars: Default::default(),
        }
    }

    /// The grammar of SQL over this dataset's names (see [`crate::synthesis::grammar`]).
    pub fn sql_grammar(&self, scope: crate::synthesis::grammar::Scope) -> &Arc<str> {
        self.grammars[scope as usize].get_or_init(|| crate::synthesis::grammar::gbnf(&self.info, scope).into())
    }

    /// An error of a query on this dataset, with its database's connection string
    /// (and any secret in it) cut out.
    pub fn redact(&self, error: Error) -> Error {
        let Some(attached) = &self.attached else { return error };
        match error {
            // The DuckDB error it came from carries the secret: it is not kept.
            Error::Sql { message, .. } => Error::Sql { message: attached.secret.redact(&message), source: None },
            Error::Llm { message, source } => Error::Llm { message: attached.secret.redact(&message), source },
            other => other,
        }
    }

    /// Cancels this dataset's statements on its database that started within the
    /// last `within` (a query that timed out, or whose client went away).
    pub fn cancel_remote(&self, within: std::time::Duration) {
        let Some(attached) = &self.attached else { return };
        match self.checkout() {
            Ok(conn) => {
                attached.cancel_recent(&conn, within);
                self.checkin(conn);
            }
            Err(e) => tracing::warn!(error = %e, "cannot cancel the query's statements on the database"),
        }
    }

    /// The schema text of the given tables only (a linked subset, in the dataset's order).
    pub fn schema_text_of(&self, tables: &[String]) -> String {
        schema_text::render(&self.info, Some(tables))
    }

    /// A connection of this dataset's database; give it back with [`Dataset::checkin`].
    pub fn checkout(&self) -> Result<Connection> {
        if let Some(conn) = self.idle.lock().map_err(poisoned)?.pop() {
            return Ok(conn);
        }
        Ok(self.root.lock().map_err(poisoned)?.try_clone()?)
    }

    pub fn checkin(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < 8 {
                idle.push(conn);
            }
        }
    }
}

fn poisoned<T>(_: T) -> Error {
    Error::internal("a dataset lock was poisoned")
}

/// Where a dataset comes from, so it can be loaded again.
#[derive(Clone)]
enum Origin {
    Path(PathBuf),
    Source(SourceConfig),
}

/// A dataset as the catalog holds it: loaded, or not reachable now and why.
#[derive(Clone)]
enum State {
    Ready(Arc<Dataset>),
    Unavailable(String),
}

struct Entry {
    origin: Origin,
    state: State,
    loaded: Instant,
}

/// A dataset as listed: loaded, or unavailable with the reason.
pub enum Listing {
    Ready(Arc<Dataset>),
    Unavailable { name: String, source: &'static str, reason: String },
}

impl Listing {
    pub fn name(&self) -> &str {
        match self {
            Listing::Ready(dataset) => &dataset.info.name,
            Listing::Unavailable { name, .. } => name,
        }
    }

    /// The dataset as `GET /v1/datasets` and MCP's `list_datasets` list it.
    pub fn summary(self) -> tag_types::DatasetSummary {
        match self {
            Listing::Ready(d) => tag_types::DatasetSummary {
                name: d.info.name.clone(),
                description: d.info.description.clone(),
                tables: d
                    .info
                    .tables
                    .iter()
                    .map(|t| tag_types::TableSummary { name: t.name.clone(), row_count: t.row_count, columns: t.columns.len() })
                    .collect(),
                examples: d.info.examples.clone(),
                source: d.source.to_string(),
                available: true,
                reason: None,
            },
            Listing::Unavailable { name, source, reason } => tag_types::DatasetSummary {
                name,
                description: String::new(),
                tables: Vec::new(),
                examples: Vec::new(),
                source: source.to_string(),
                available: false,
                reason: Some(reason),
            },
        }
    }
}

/// All datasets the server knows, by name.
pub struct Catalog {
    entries: RwLock<BTreeMap<String, Entry>>,
    setup: ConnectionSetup,
    extension_dir: PathBuf,
    /// The query timeout, which a database source's own statement timeout follows.
    timeout_secs: u64,
}

fn source_name(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::Postgres => "postgres",
        SourceKind::Mysql => "mysql",
        SourceKind::Sqlite => "sqlite",
    }
}

impl Catalog {
    /// An empty catalog whose datasets' databases get `setup`; database sources
    /// load their DuckDB extension from `extension_dir` when DuckDB has none.
    pub fn new(setup: ConnectionSetup, extension_dir: PathBuf, timeout_secs: u64) -> Self {
        Catalog { entries: RwLock::new(BTreeMap::new()), setup, extension_dir, timeout_secs }
    }

    /// The dataset, or why not: unknown (404) or unavailable (503).
    pub fn get(&self, name: &str) -> Result<Arc<Dataset>> {
        let entries = self.entries.read().map_err(poisoned)?;
        match entries.get(name).map(|entry| &entry.state) {
            Some(State::Ready(dataset)) => Ok(dataset.clone()),
            Some(State::Unavailable(reason)) => Err(Error::Unavailable { name: name.to_string(), reason: reason.clone() }),
            None => Err(Error::not_found("dataset", name)),
        }
    }

    /// Every dataset, in name order.
    pub fn list(&self) -> Vec<Listing> {
        let Ok(entries) = self.entries.read() else { return Vec::new() };
        entries
            .iter()
            .map(|(name, entry)| match &entry.state {
                State::Ready(dataset) => Listing::Ready(dataset.clone()),
                State::Unavailable(reason) => Listing::Unavailable {
                    name: name.clone(),
                    source: match &entry.origin {
                        Origin::Source(config) => source_name(config.kind),
                        Origin::Path(_) => "files",
                    },
                    reason: reason.clone(),
                },
            })
            .collect()
    }

    /// The loaded datasets.
    pub fn ready(&self) -> Vec<Arc<Dataset>> {
        self.list()
            .into_iter()
            .filter_map(|listing| match listing {
                Listing::Ready(dataset) => Some(dataset),
                Listing::Unavailable { .. } => None,
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.entries.read().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(&mut self, name: String, origin: Origin, state: State) -> Result<()> {
        let entries = self.entries.get_mut().map_err(poisoned)?;
        if entries.contains_key(&name) {
            return Err(Error::dataset(format!("two datasets are named {name:?}")));
        }
        entries.insert(name, Entry { origin, state, loaded: Instant::now() });
        Ok(())
    }

    /// Loads every dataset in `dir`: each sub-folder, DuckDB file and SQLite file.
    pub fn load_dir(&mut self, dir: &Path) -> Result<()> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| Error::dataset_from(format!("cannot read datasets folder {}: {e}", dir.display()), e))?;
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            if path.is_dir() || is_database_file(&path) {
                self.load(&path)?;
            }
        }
        Ok(())
    }

    /// Loads one dataset from a folder, a DuckDB file or a SQLite file (attached
    /// read-only, as a `sqlite` source).
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let name = dataset_name(path)?;
        if is_sqlite_file(path) {
            return self.add_source(&name, SourceConfig::new(SourceKind::Sqlite, path.to_string_lossy().into_owned()));
        }
        let dataset = load_dataset(&name, path, &self.setup)?;
        tracing::info!(dataset = %name, tables = dataset.info.tables.len(), path = %path.display(), "dataset loaded");
        self.insert(name, Origin::Path(path.to_path_buf()), State::Ready(Arc::new(dataset)))
    }

    /// Adds a dataset that lives in a database. A database that cannot be reached
    /// now is listed as unavailable with the reason (and tried again by
    /// [`Catalog::reload`]); only a configuration mistake is an error.
    pub fn add_source(&mut self, name: &str, config: SourceConfig) -> Result<()> {
        if dataset_name(Path::new(name)).is_err() {
            return Err(Error::Config(format!("sources.{name}: a dataset name may only use letters, digits, '_' and '-'")));
        }
        let state = self.open_source(name, &config)?;
        self.insert(name.to_string(), Origin::Source(config), state)
    }

    fn open_source(&self, name: &str, config: &SourceConfig) -> Result<State> {
        let started = Instant::now();
        match source::open(name, config, &self.extension_dir, &self.setup, self.timeout_secs) {
            Ok((conn, info, attached)) => {
                tracing::info!(dataset = name, source = source_name(config.kind), tables = info.tables.len(),
                    seconds = started.elapsed().as_secs_f64(), "dataset attached");
                Ok(State::Ready(Arc::new(Dataset::new(info, source_name(config.kind), conn, Some(attached)))))
            }
            Err(e @ Error::Config(_)) => Err(e),
            Err(e) => {
                let reason = e.message();
                tracing::warn!(dataset = name, reason = %reason, "dataset unavailable");
                Ok(State::Unavailable(reason))
            }
        }
    }

    /// Loads `name` again from where it came from (a database's schema changes, a
    /// database that is back); queries already running keep the old copy. A
    /// database still unreachable stays unavailable and says why.
    pub fn reload(&self, name: &str) -> Result<()> {
        let origin = {
            let entries = self.entries.read().map_err(poisoned)?;
            entries.get(name).map(|e| e.origin.clone()).ok_or_else(|| Error::not_found("dataset", name))?
        };
        let state = match &origin {
            Origin::Source(config) => self.open_source(name, config)?,
            Origin::Path(path) => State::Ready(Arc::new(load_dataset(name, path, &self.setup)?)),
        };
        let mut entries = self.entries.write().map_err(poisoned)?;
        if let Some(entry) = entries.get_mut(name) {
            entry.state = state;
            entry.loaded = Instant::now();
        }
        Ok(())
    }

    /// Datasets to load again now: unavailable ones tried last `retry` ago or
    /// longer, and sources whose `refresh_secs` have passed.
    pub fn due(&self, retry: std::time::Duration) -> Vec<String> {
        let Ok(entries) = self.entries.read() else { return Vec::new() };
        entries
            .iter()
            .filter(|(_, entry)| match (&entry.state, &entry.origin) {
                (State::Unavailable(_), _) => entry.loaded.elapsed() >= retry,
                (State::Ready(_), Origin::Source(config)) => {
                    config.refresh_secs > 0 && entry.loaded.elapsed().as_secs() >= config.refresh_secs
                }
                (State::Ready(_), Origin::Path(_)) => false,
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Marks a ready dataset unavailable (its database stopped answering), so that
    /// it is attached again once it is back.
    pub fn mark_unavailable(&self, name: &str, reason: String) {
        if let Ok(mut entries) = self.entries.write() {
            if let Some(entry) = entries.get_mut(name) {
                if matches!(entry.origin, Origin::Source(_)) {
                    tracing::warn!(dataset = name, reason = %reason, "dataset unavailable");
                    entry.state = State::Unavailable(reason);
                    entry.loaded = Instant::now();
                }
            }
        }
    }
}

fn is_database_file(path: &Path) -> bool {
    path.is_file() && (matches!(path.extension().and_then(|e| e.to_str()), Some("duckdb" | "db")) || is_sqlite_file(path))
}

/// Whether `path` is a SQLite database (by its header).
fn is_sqlite_file(path: &Path) -> bool {
    use std::io::Read;
    let mut header = [0u8; 16];
    path.is_file() && std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut header)).is_ok() && &header == b"SQLite format 3\0"
}

fn dataset_name(path: &Path) -> Result<String> {
    let stem = if path.is_dir() { path.file_name() } else { path.file_stem() };
    let name = stem.and_then(|s| s.to_str()).unwrap_or_default().to_string();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(Error::dataset(format!("{}: a dataset name may only use letters, digits, '_' and '-'", path.display())));
    }
    Ok(name)
}

fn read_description(path: &Path) -> Result<DescriptionFile> {
    if !path.is_file() {
        return Ok(DescriptionFile::default());
    }
    let text = std::fs::read_to_string(path)?;
    toml::from_str(&text).map_err(|e| Error::dataset_from(format!("{}: {e}", path.display()), e))
}

fn load_dataset(name: &str, path: &Path, setup: &ConnectionSetup) -> Result<Dataset> {
    let (conn, description) = if path.is_dir() {
        let description = read_description(&path.join("dataset.toml"))?;
        let conn = Connection::open_in_memory()?;
        load_table_files(&conn, path, &description)?;
        (conn, description)
    } else {
        let config = duckdb::Config::default().access_mode(AccessMode::ReadOnly)?;
        let conn = Connection::open_with_flags(path, config)
            .map_err(|e| Error::dataset_from(format!("cannot open {}: {e}", path.display()), e))?;
        (conn, read_description(&path.with_extension("toml"))?)
    };
    let info = describe(&conn, name, description)?;
    setup(&conn)?;
    conn.execute_batch("SET enable_external_access = false; SET lock_configuration = true;")?;
    Ok(Dataset::new(info, if path.is_dir() { "files" } else { "duckdb" }, conn, None))
}

/// Creates one table per CSV/Parquet file: those the description names, else all.
fn load_table_files(conn: &Connection, dir: &Path, description: &DescriptionFile) -> Result<()> {
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for (table, spec) in &description.tables {
        if let Some(file) = &spec.file {
            files.push((table.clone(), dir.join(file)));
        }
    }
    if files.is_empty() {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let is_table = matches!(path.extension().and_then(|e| e.to_str()), Some("csv" | "parquet"));
            if let (true, Some(stem)) = (is_table, path.file_stem().and_then(|s| s.to_str())) {
                files.push((stem.to_string(), path.clone()));
            }
        }
    }
    if files.is_empty() {
        return Err(Error::dataset(format!("{} has no CSV or Parquet files", dir.display())));
    }
    for (table, file) in files {
        if !file.is_file() {
            return Err(Error::dataset(format!("table {table}: file {} does not exist", file.display())));
        }
        let reader = match file.extension().and_then(|e| e.to_str()) {
            Some("parquet") => format!("read_parquet({})", quote_literal(&file.to_string_lossy())),
            _ => format!("read_csv({}, header = true)", quote_literal(&file.to_string_lossy())),
        };
        conn.execute_batch(&format!("CREATE TABLE {} AS SELECT * FROM {reader}", quote_ident(&table)))
            .map_err(|e| Error::dataset_from(format!("table {table} from {}: {e}", file.display()), e))?;
    }
    Ok(())
}

/// Reads tables, columns, counts and sample values from the database.
fn describe(conn: &Connection, name: &str, description: DescriptionFile) -> Result<DatasetInfo> {
    let mut tables = Vec::new();
    let mut stmt = conn.prepare(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT internal AND NOT temporary ORDER BY schema_name, table_name",
    )?;
    let names: Vec<(String, String)> =
        stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<std::result::Result<_, _>>()?;
    for (schema, table) in names {
        let qualified =
            if schema == "main" { quote_ident(&table) } else { format!("{}.{}", quote_ident(&schema), quote_ident(&table)) };
        let display_name = if schema == "main" { table.clone() } else { format!("{schema}.{table}") };
        let spec = description.tables.get(&display_name);
        let mut columns_stmt = conn.prepare(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? ORDER BY column_index",
        )?;
        let columns: Vec<(String, String)> = columns_stmt
            .query_map([&schema, &table], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<std::result::Result<_, _>>()?;
        let row_count: i64 = conn.query_row(&format!("SELECT count(*) FROM {qualified}"), [], |row| row.get(0))?;
        let mut column_infos = Vec::new();
        for (column, data_type) in columns {
            column_infos.push(describe_column(conn, &qualified, &column, &data_type, spec)?);
        }
        tables.push(TableInfo {
            name: display_name,
            description: spec.and_then(|s| s.description.clone()),
            primary_key: spec.and_then(|s| s.primary_key.clone()),
            row_count: row_count as u64,
            columns: column_infos,
        });
    }
    if tables.is_empty() {
        return Err(Error::dataset(format!("dataset {name} has no tables")));
    }
    Ok(DatasetInfo {
        name: name.to_string(),
        description: description.description.unwrap_or_default(),
        tables,
        joins: description.joins,
        examples: description.examples,
        verified: description.verified,
        terms: description.terms,
    })
}

const LOW_CARDINALITY: usize = 12;
const SAMPLE_CHARS: usize = 80;

pub(super) fn describe_column(
    conn: &Connection,
    table: &str,
    column: &str,
    data_type: &str,
    spec: Option<&TableDescription>,
) -> Result<ColumnInfo> {
    let col = quote_ident(column);
    let distinct_count: i64 =
        conn.query_row(&format!("SELECT approx_count_distinct({col}) FROM {table}"), [], |row| row.get(0))?;
    let mut stmt = conn.prepare(&format!(
        "SELECT CAST({col} AS VARCHAR) AS v FROM {table} WHERE {col} IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT {}",
        LOW_CARDINALITY + 1
    ))?;
    let frequent: Vec<String> = stmt
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<std::result::Result<Vec<_>, _>>()?
        .into_iter()
        .map(|v| shorten(&v, SAMPLE_CHARS))
        .collect();
    let is_text = data_type == "VARCHAR" || data_type == "BOOLEAN";
    let values = (is_text && frequent.len() <= LOW_CARDINALITY).then(|| frequent.clone());
    Ok(ColumnInfo {
        name: column.to_string(),
        data_type: data_type.to_string(),
        description: spec.and_then(|s| s.columns.get(column).cloned()),
        samples: frequent.into_iter().take(3).collect(),
        distinct_count: distinct_count as u64,
        values,
    })
}

