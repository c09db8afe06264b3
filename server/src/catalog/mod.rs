//! Datasets and their descriptions: the first thing the pipeline needs. A dataset is
//! a folder of CSV/Parquet files (one table per file) or a DuckDB file, plus an
//! optional description file (`dataset.toml` in the folder, `<name>.toml` beside a
//! DuckDB file) with table and column descriptions, keys, joins and example
//! questions. Each dataset gets its own DuckDB database, with the LLM operators
//! registered, external access disabled and the configuration locked once loaded.
//! The catalog also writes the schema text that grounds the synthesis prompt.

pub mod bundled;
mod schema_text;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use duckdb::{AccessMode, Connection};
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    execution::{context::QueryRegistry, operators},
    sql::{quote_ident, quote_literal},
    text::shorten,
};

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
    tables: BTreeMap<String, TableDescription>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableDescription {
    file: Option<String>,
    description: Option<String>,
    primary_key: Option<String>,
    #[serde(default)]
    columns: BTreeMap<String, String>,
}

/// What the API and the prompts know about a dataset.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetInfo {
    pub name: String,
    pub description: String,
    pub tables: Vec<TableInfo>,
    pub joins: Vec<String>,
    pub examples: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableInfo {
    pub name: String,
    pub description: Option<String>,
    pub primary_key: Option<String>,
    pub row_count: u64,
    pub columns: Vec<ColumnInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ColumnInfo {
    pub name: String,
    pub data_type: String,
    pub description: Option<String>,
    /// A few frequent values, as text.
    pub samples: Vec<String>,
    /// Approximate number of distinct values.
    pub distinct_count: u64,
    /// Every value, when the column is text with only a few distinct values.
    pub values: Option<Vec<String>>,
}

/// A loaded dataset: its description and a pool of DuckDB connections.
pub struct Dataset {
    pub info: DatasetInfo,
    /// The schema text used in synthesis prompts.
    pub schema_text: String,
    root: Mutex<Connection>,
    idle: Mutex<Vec<Connection>>,
}

impl Dataset {
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
    Error::Internal("a dataset lock was poisoned".into())
}

/// All datasets the server knows, by name.
#[derive(Default)]
pub struct Catalog {
    datasets: BTreeMap<String, Arc<Dataset>>,
}

impl Catalog {
    pub fn get(&self, name: &str) -> Result<Arc<Dataset>> {
        self.datasets.get(name).cloned().ok_or_else(|| Error::not_found("dataset", name))
    }

    pub fn list(&self) -> impl Iterator<Item = &Arc<Dataset>> {
        self.datasets.values()
    }

    pub fn len(&self) -> usize {
        self.datasets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.datasets.is_empty()
    }

    /// Loads every dataset in `dir`: each sub-folder and each `.duckdb` file.
    pub fn load_dir(&mut self, dir: &Path, runtime: &Arc<QueryRegistry>) -> Result<()> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| Error::Dataset(format!("cannot read datasets folder {}: {e}", dir.display())))?;
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            if path.is_dir() || is_duckdb_file(&path) {
                self.load(&path, runtime)?;
            }
        }
        Ok(())
    }

    /// Loads one dataset from a folder or a DuckDB file.
    pub fn load(&mut self, path: &Path, runtime: &Arc<QueryRegistry>) -> Result<()> {
        let name = dataset_name(path)?;
        if self.datasets.contains_key(&name) {
            return Err(Error::Dataset(format!("two datasets are named {name:?} (second: {})", path.display())));
        }
        let dataset = load_dataset(&name, path, runtime)?;
        tracing::info!(dataset = %name, tables = dataset.info.tables.len(), path = %path.display(), "dataset loaded");
        self.datasets.insert(name, Arc::new(dataset));
        Ok(())
    }
}

fn is_duckdb_file(path: &Path) -> bool {
    path.is_file() && matches!(path.extension().and_then(|e| e.to_str()), Some("duckdb" | "db"))
}

fn dataset_name(path: &Path) -> Result<String> {
    let stem = if path.is_dir() { path.file_name() } else { path.file_stem() };
    let name = stem.and_then(|s| s.to_str()).unwrap_or_default().to_string();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(Error::Dataset(format!(
            "{}: a dataset name may only use letters, digits, '_' and '-'",
            path.display()
        )));
    }
    Ok(name)
}

fn read_description(path: &Path) -> Result<DescriptionFile> {
    if !path.is_file() {
        return Ok(DescriptionFile::default());
    }
    let text = std::fs::read_to_string(path)?;
    toml::from_str(&text).map_err(|e| Error::Dataset(format!("{}: {e}", path.display())))
}

fn load_dataset(name: &str, path: &Path, runtime: &Arc<QueryRegistry>) -> Result<Dataset> {
    let (conn, description) = if path.is_dir() {
        let description = read_description(&path.join("dataset.toml"))?;
        let conn = Connection::open_in_memory()?;
        load_table_files(&conn, path, &description)?;
        (conn, description)
    } else {
        let config = duckdb::Config::default().access_mode(AccessMode::ReadOnly)?;
        let conn = Connection::open_with_flags(path, config)
            .map_err(|e| Error::Dataset(format!("cannot open {}: {e}", path.display())))?;
        (conn, read_description(&path.with_extension("toml"))?)
    };
    let info = describe(&conn, name, description)?;
    operators::register(&conn, runtime)?;
    conn.execute_batch("SET enable_external_access = false; SET lock_configuration = true;")?;
    let schema_text = schema_text::render(&info);
    Ok(Dataset { info, schema_text, root: Mutex::new(conn), idle: Mutex::new(Vec::new()) })
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
        return Err(Error::Dataset(format!("{} has no CSV or Parquet files", dir.display())));
    }
    for (table, file) in files {
        if !file.is_file() {
            return Err(Error::Dataset(format!("table {table}: file {} does not exist", file.display())));
        }
        let reader = match file.extension().and_then(|e| e.to_str()) {
            Some("parquet") => format!("read_parquet({})", quote_literal(&file.to_string_lossy())),
            _ => format!("read_csv({}, header = true)", quote_literal(&file.to_string_lossy())),
        };
        conn.execute_batch(&format!("CREATE TABLE {} AS SELECT * FROM {reader}", quote_ident(&table)))
            .map_err(|e| Error::Dataset(format!("table {table} from {}: {e}", file.display())))?;
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
        return Err(Error::Dataset(format!("dataset {name} has no tables")));
    }
    Ok(DatasetInfo {
        name: name.to_string(),
        description: description.description.unwrap_or_default(),
        tables,
        joins: description.joins,
        examples: description.examples,
    })
}

const LOW_CARDINALITY: usize = 12;
const SAMPLE_CHARS: usize = 80;

fn describe_column(
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

