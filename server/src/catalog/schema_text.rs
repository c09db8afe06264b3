//! The schema text of a dataset as the SQL-writing LLM sees it: tables with row
//! counts and descriptions, columns with types, descriptions, sample values and the
//! full value set of low-cardinality text columns, keys and joins.

use std::fmt::Write;

use super::DatasetInfo;

/// The schema text of every table, or of `only` those (a linked subset): the joins
/// shown are those between the tables shown.
pub fn render(info: &DatasetInfo, only: Option<&[String]>) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "Dataset `{}`{}", info.name, optional(": ", &info.description));
    let shown = |table: &str| only.is_none_or(|names| names.iter().any(|n| n == table));
    for table in info.tables.iter().filter(|t| shown(&t.name)) {
        let _ = writeln!(
            text,
            "\nTABLE {} ({} rows){}{}",
            table.name,
            table.row_count,
            optional(" -- ", table.description.as_deref().unwrap_or("")),
            optional("; primary key: ", table.primary_key.as_deref().unwrap_or(""))
        );
        for column in &table.columns {
            let mut line = format!("  {} {}", column.name, column.data_type);
            if let Some(description) = &column.description {
                let _ = write!(line, " -- {description}");
            }
            match &column.values {
                Some(values) => {
                    let _ = write!(line, "; values: {}", quoted(values));
                }
                None => {
                    let _ = write!(line, "; ~{} distinct", column.distinct_count);
                    if !column.samples.is_empty() {
                        let _ = write!(line, "; e.g. {}", quoted(&column.samples));
                    }
                }
            }
            let _ = writeln!(text, "{line}");
        }
    }
    let joins: Vec<&String> = info.joins.iter().filter(|join| only.is_none() || super::linking::join_tables(join).iter().all(|t| shown(t))).collect();
    if !joins.is_empty() {
        let joins: Vec<&str> = joins.iter().map(|j| j.as_str()).collect();
        let _ = writeln!(text, "\nJOINS: {}", joins.join("; "));
    }
    text
}

fn optional(prefix: &str, value: &str) -> String {
    if value.trim().is_empty() {
        String::new()
    } else {
        format!("{prefix}{}", value.trim())
    }
}

fn quoted(values: &[String]) -> String {
    values.iter().map(|v| format!("'{}'", v.replace('\'', "''"))).collect::<Vec<_>>().join(", ")
}
