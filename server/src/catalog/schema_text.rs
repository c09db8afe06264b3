//! The schema text of a dataset as the SQL-writing LLM sees it: tables with row
//! counts and descriptions, columns with types, descriptions, sample values and the
//! full value set of low-cardinality text columns, keys and joins.

use std::fmt::Write;

use super::DatasetInfo;

pub fn render(info: &DatasetInfo) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "Dataset `{}`{}", info.name, optional(": ", &info.description));
    for table in &info.tables {
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
    if !info.joins.is_empty() {
        let _ = writeln!(text, "\nJOINS: {}", info.joins.join("; "));
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
