//! The BIRD schema files of `../shared/data/tagbench/bird_schemas`: SQLite DDL with
//! a comment before each table (its description, then its row count and primary
//! key) and before each column (its description, then statistics). Parsed into
//! tables and columns with descriptions, for the datasets' TOML descriptions and
//! for the fixture databases.

use std::path::Path;

use anyhow::{bail, Context, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub name: String,
    pub description: String,
    pub primary_key: Option<String>,
    pub columns: Vec<Column>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub data_type: String,
    pub description: String,
}

/// The five BIRD dev databases TAG-Bench uses.
pub const DATABASES: [&str; 5] =
    ["california_schools", "codebase_community", "debit_card_specializing", "european_football_2", "formula_1"];

fn unquote(name: &str) -> String {
    let name = name.trim().trim_end_matches(',');
    for (open, close) in [('"', '"'), ('`', '`'), ('[', ']')] {
        if let Some(inner) = name.strip_prefix(open).and_then(|n| n.strip_suffix(close)) {
            return inner.to_string();
        }
    }
    name.to_string()
}

/// Splits a column line (`"Free Meal Count (K-12)" real,`) into name and type.
fn column_line(line: &str) -> Option<(String, String)> {
    let line = line.trim().trim_end_matches(',');
    let (name, rest) = match line.chars().next()? {
        quote @ ('"' | '`') => {
            let end = line[1..].find(quote)? + 1;
            (line[..=end].to_string(), line[end + 1..].trim())
        }
        '[' => {
            let end = line.find(']')?;
            (line[..=end].to_string(), line[end + 1..].trim())
        }
        _ => {
            let (name, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            (name.to_string(), rest.trim())
        }
    };
    Some((unquote(&name), rest.split_whitespace().next().unwrap_or("text").to_lowercase()))
}

pub fn parse(sql: &str) -> Result<Vec<Table>> {
    let mut tables = Vec::new();
    let mut comments: Vec<String> = Vec::new();
    let mut current: Option<Table> = None;
    for raw in sql.lines() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("--") {
            comments.push(comment.trim().to_string());
            continue;
        }
        let upper = line.to_uppercase();
        if let Some(rest) = upper.strip_prefix("CREATE TABLE") {
            let name_part = line[line.len() - rest.len()..].trim().trim_end_matches('(').trim();
            let description = comments.first().cloned().unwrap_or_default();
            let primary_key = comments
                .iter()
                .find_map(|c| c.split_once("primary key:").map(|(_, k)| k.trim().trim_matches(['(', ')']).to_string()))
                .filter(|k| !k.is_empty());
            current = Some(Table { name: unquote(name_part), description, primary_key, columns: Vec::new() });
        } else if line.starts_with(')') {
            match current.take() {
                Some(table) => tables.push(table),
                None => bail!("a ')' closes no CREATE TABLE"),
            }
        } else if let Some(table) = current.as_mut() {
            if upper.starts_with("PRIMARY KEY") || upper.starts_with("FOREIGN KEY") || upper.starts_with("UNIQUE") {
                comments.clear();
                continue;
            }
            let (name, data_type) = column_line(line).with_context(|| format!("cannot read the column line {line:?}"))?;
            let description = comments.iter().find(|c| !c.starts_with("Stats:") && !c.starts_with("Foreign keys:")).cloned().unwrap_or_default();
            table.columns.push(Column { name, data_type, description });
        }
        comments.clear();
    }
    if tables.is_empty() {
        bail!("no CREATE TABLE found");
    }
    Ok(tables)
}

pub fn load(path: &Path) -> Result<Vec<Table>> {
    let sql = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&sql).with_context(|| format!("in {}", path.display()))
}

/// DuckDB's type for a SQLite declared type.
pub fn duckdb_type(sqlite_type: &str) -> &'static str {
    let t = sqlite_type.to_lowercase();
    if t.contains("int") {
        "BIGINT"
    } else if t.contains("real") || t.contains("float") || t.contains("double") || t.contains("numeric") || t.contains("decimal") {
        "DOUBLE"
    } else if t == "date" {
        "DATE"
    } else if t.contains("datetime") || t.contains("timestamp") {
        "TIMESTAMP"
    } else {
        "VARCHAR"
    }
}

/// The dataset description the server reads beside a DuckDB file (`<db>.toml`):
/// table and column descriptions, primary keys.
pub fn dataset_toml(db: &str, tables: &[Table]) -> String {
    let mut doc = toml::Table::new();
    doc.insert("description".into(), format!("BIRD dev database {db} (TAG-Bench)").into());
    let mut table_docs = toml::Table::new();
    for table in tables {
        let mut entry = toml::Table::new();
        entry.insert("description".into(), table.description.clone().into());
        if let Some(key) = &table.primary_key {
            if !key.contains(',') {
                entry.insert("primary_key".into(), key.clone().into());
            }
        }
        let columns: toml::Table = table
            .columns
            .iter()
            .filter(|c| !c.description.is_empty())
            .map(|c| (c.name.clone(), toml::Value::from(c.description.clone())))
            .collect();
        entry.insert("columns".into(), columns.into());
        table_docs.insert(table.name.clone(), entry.into());
    }
    doc.insert("tables".into(), table_docs.into());
    toml::to_string(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_columns_and_descriptions_are_read() {
        let sql = "-- Schools and their scores\n-- 12 rows, primary key: (CDSCode)\nCREATE TABLE schools (\n\
                   -- County-District-School code\n-- Stats: 0% null 100% unique\nCDSCode text,\n\
                   -- Free meals\n\"Free Meal Count (K-12)\" real,\n`Date` date\n);\n";
        let tables = parse(sql).unwrap();
        assert_eq!(tables.len(), 1);
        let t = &tables[0];
        assert_eq!((t.name.as_str(), t.description.as_str(), t.primary_key.as_deref()), ("schools", "Schools and their scores", Some("CDSCode")));
        assert_eq!(t.columns.len(), 3);
        assert_eq!(t.columns[1], Column { name: "Free Meal Count (K-12)".into(), data_type: "real".into(), description: "Free meals".into() });
        assert_eq!((t.columns[2].name.as_str(), t.columns[2].description.as_str()), ("Date", ""));
        assert_eq!(duckdb_type("real"), "DOUBLE");
        assert_eq!(duckdb_type("integer"), "BIGINT");
        let toml_text = dataset_toml("x", &tables);
        assert!(toml_text.contains("[tables.schools.columns]"), "{toml_text}");
    }

    #[test]
    fn the_five_bird_schemas_parse_when_present() {
        let dir = super::super::shared_data_dir().join("tagbench/bird_schemas");
        if !dir.is_dir() {
            eprintln!("skipping: {} is not here", dir.display());
            return;
        }
        for db in DATABASES {
            let tables = load(&dir.join(format!("{db}.sql"))).unwrap();
            assert!(tables.iter().all(|t| !t.columns.is_empty()), "{db}");
        }
    }
}
