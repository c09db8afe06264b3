//! The benchmark's databases as DuckDB files the server loads as datasets: BIRD's
//! SQLite databases converted table by table (rusqlite reads, DuckDB's appender
//! writes; no DuckDB extension needed), or small fixture databases with the same
//! schemas and made-up rows for tests. Each `<db>.duckdb` gets a `<db>.toml`
//! beside it with the table and column descriptions of the schema file.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use duckdb::{types::Value, Connection};
use tag_server::sql::quote_ident;

use super::schema::{self, duckdb_type, Table};

pub fn duckdb_path(db_dir: &Path, db: &str) -> PathBuf {
    db_dir.join(format!("{db}.duckdb"))
}

fn create_tables(conn: &Connection, tables: &[Table]) -> Result<()> {
    for table in tables {
        let columns: Vec<String> =
            table.columns.iter().map(|c| format!("{} {}", quote_ident(&c.name), duckdb_type(&c.data_type))).collect();
        conn.execute_batch(&format!("CREATE TABLE {} ({})", quote_ident(&table.name), columns.join(", ")))
            .with_context(|| format!("create table {}", table.name))?;
    }
    Ok(())
}

fn write_description(db_dir: &Path, db: &str, tables: &[Table]) -> Result<()> {
    let path = db_dir.join(format!("{db}.toml"));
    std::fs::write(&path, schema::dataset_toml(db, tables)).with_context(|| format!("write {}", path.display()))
}

fn fresh_database(path: &Path) -> Result<Connection> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    for stale in [path.to_path_buf(), path.with_extension("duckdb.wal")] {
        if stale.exists() {
            std::fs::remove_file(&stale)?;
        }
    }
    Ok(Connection::open(path)?)
}

/// A made-up value for row `i` (1-based) of a column: keys are 1..n in every
/// table, so joins on ids match; text says which column and row it is.
fn fixture_value(column: &str, data_type: &str, i: usize) -> Value {
    match duckdb_type(data_type) {
        "BIGINT" => Value::BigInt(i as i64),
        "DOUBLE" => Value::Double(i as f64 * 1.5),
        "DATE" => Value::Text(format!("2012-08-{:02}", 20 + i % 10)),
        "TIMESTAMP" => Value::Text(format!("2012-08-{:02} 10:00:00", 20 + i % 10)),
        _ => Value::Text(format!("{column} {i}")),
    }
}

/// Writes a fixture database for `db` from its schema file, with `rows` made-up
/// rows per table, and its description.
pub fn build_fixture(schema_file: &Path, db_dir: &Path, db: &str, rows: usize) -> Result<PathBuf> {
    let tables = schema::load(schema_file)?;
    let path = duckdb_path(db_dir, db);
    let conn = fresh_database(&path)?;
    create_tables(&conn, &tables)?;
    for table in &tables {
        let mut appender = conn.appender(&table.name)?;
        for i in 1..=rows {
            let values: Vec<Value> = table.columns.iter().map(|c| fixture_value(&c.name, &c.data_type, i)).collect();
            appender.append_row(duckdb::appender_params_from_iter(values))?;
        }
        appender.flush()?;
    }
    drop(conn);
    write_description(db_dir, db, &tables)?;
    Ok(path)
}

/// What a conversion did: rows per table, and values that did not fit their
/// declared type (SQLite is dynamically typed) and became NULL.
#[derive(Debug, Default)]
pub struct Converted {
    pub tables: Vec<(String, u64)>,
    pub coerced_to_null: u64,
}

/// A SQLite value as a value of the DuckDB column type, or `None` when it does
/// not fit.
fn coerce(value: rusqlite::types::ValueRef<'_>, duck_type: &str) -> Option<Value> {
    use rusqlite::types::ValueRef;
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim().to_string();
    // Blank text in a typed column is a missing value.
    if let ValueRef::Text(t) = value {
        if duck_type != "VARCHAR" && text(t).is_empty() {
            return Some(Value::Null);
        }
    }
    Some(match (value, duck_type) {
        (ValueRef::Null, _) => Value::Null,
        (ValueRef::Integer(n), "BIGINT") => Value::BigInt(n),
        (ValueRef::Real(f), "BIGINT") if f.fract() == 0.0 => Value::BigInt(f as i64),
        (ValueRef::Text(t), "BIGINT") => Value::BigInt(text(t).parse().ok()?),
        (ValueRef::Integer(n), "DOUBLE") => Value::Double(n as f64),
        (ValueRef::Real(f), "DOUBLE") => Value::Double(f),
        (ValueRef::Text(t), "DOUBLE") => Value::Double(text(t).parse().ok()?),
        (ValueRef::Text(t), "DATE" | "TIMESTAMP") => Value::Text(text(t)),
        (ValueRef::Text(t), _) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        (ValueRef::Integer(n), "VARCHAR") => Value::Text(n.to_string()),
        (ValueRef::Real(f), "VARCHAR") => Value::Text(f.to_string()),
        (ValueRef::Blob(b), "VARCHAR") => Value::Text(String::from_utf8_lossy(b).into_owned()),
        _ => return None,
    })
}

/// Converts one BIRD SQLite database into `<db_dir>/<db>.duckdb`, with the column
/// types of the schema file (when given) or of the SQLite declarations.
pub fn convert_sqlite(sqlite_file: &Path, db_dir: &Path, db: &str, schema_file: Option<&Path>) -> Result<Converted> {
    let source = rusqlite::Connection::open_with_flags(sqlite_file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("open {}", sqlite_file.display()))?;
    let mut tables = Vec::new();
    let names: Vec<String> = source
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if names.is_empty() {
        bail!("{} has no tables", sqlite_file.display());
    }
    let described = match schema_file {
        Some(file) => schema::load(file)?,
        None => Vec::new(),
    };
    for name in names {
        let columns: Vec<schema::Column> = source
            .prepare(&format!("PRAGMA table_info({})", quote_ident(&name)))?
            .query_map([], |row| {
                Ok(schema::Column { name: row.get(1)?, data_type: row.get::<_, String>(2)?, description: String::new() })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut table = Table { name: name.clone(), description: String::new(), primary_key: None, columns };
        if let Some(known) = described.iter().find(|t| t.name.eq_ignore_ascii_case(&name)) {
            table.description = known.description.clone();
            table.primary_key = known.primary_key.clone();
            for column in &mut table.columns {
                if let Some(k) = known.columns.iter().find(|c| c.name.eq_ignore_ascii_case(&column.name)) {
                    column.description = k.description.clone();
                }
            }
        }
        tables.push(table);
    }
    let path = duckdb_path(db_dir, db);
    let target = fresh_database(&path)?;
    create_tables(&target, &tables)?;
    let mut report = Converted::default();
    for table in &tables {
        let types: Vec<&str> = table.columns.iter().map(|c| duckdb_type(&c.data_type)).collect();
        let column_list: Vec<String> = table.columns.iter().map(|c| quote_ident(&c.name)).collect();
        let mut statement = source.prepare(&format!("SELECT {} FROM {}", column_list.join(", "), quote_ident(&table.name)))?;
        let mut rows = statement.query([])?;
        let mut appender = target.appender(&table.name)?;
        let mut count = 0u64;
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(types.len());
            for (i, duck_type) in types.iter().enumerate() {
                values.push(coerce(row.get_ref(i)?, duck_type).unwrap_or_else(|| {
                    report.coerced_to_null += 1;
                    Value::Null
                }));
            }
            appender.append_row(duckdb::appender_params_from_iter(values))?;
            count += 1;
        }
        appender.flush()?;
        report.tables.push((table.name.clone(), count));
    }
    drop(target);
    write_description(db_dir, db, &tables)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_databases_convert_with_types_and_descriptions() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = dir.path().join("shop.sqlite");
        let source = rusqlite::Connection::open(&sqlite).unwrap();
        source
            .execute_batch(
                "CREATE TABLE items (id integer, name text, price real, sold date, \"odd col\" integer);
                 INSERT INTO items VALUES (1, 'pen', 1.5, '2012-08-23', 7), (2, 'ink', '2.25', '', 'n/a'), (3, NULL, 3, NULL, 9.0);",
            )
            .unwrap();
        drop(source);
        let schema_file = dir.path().join("shop.sql");
        std::fs::write(&schema_file, "-- things we sell\nCREATE TABLE items (\n-- item number\nid integer,\nname text,\nprice real,\nsold date,\n\"odd col\" integer\n);\n").unwrap();
        let out = dir.path().join("dbs");
        let report = convert_sqlite(&sqlite, &out, "shop", Some(&schema_file)).unwrap();
        assert_eq!(report.tables, vec![("items".to_string(), 3)]);
        assert_eq!(report.coerced_to_null, 1, "'n/a' in an integer column");
        let conn = Connection::open(duckdb_path(&out, "shop")).unwrap();
        let (price, sold, odd): (f64, String, Option<i64>) = conn
            .query_row("SELECT sum(price), strftime(max(sold), '%Y-%m-%d'), max(\"odd col\") FROM items", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap();
        assert_eq!((price, sold.as_str(), odd), (6.75, "2012-08-23", Some(9)));
        let description = std::fs::read_to_string(out.join("shop.toml")).unwrap();
        assert!(description.contains("things we sell") && description.contains("item number"), "{description}");
    }
}
