//! Pure text work of the page, kept apart from the components: Markdown to safe
//! HTML, SQL to highlighted HTML, CSV of a result, and the choice of a chart.

use pulldown_cmark::{html, CowStr, Event, Options, Parser, Tag};
use serde_json::Value;

use crate::api::TableData;

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Markdown to HTML where nothing from the text can run: raw HTML is shown as text,
/// and links and images keep only http(s) targets.
pub fn markdown(text: &str) -> String {
    let safe_url = |url: &CowStr| url.starts_with("https://") || url.starts_with("http://");
    let mut skipped_links = 0usize;
    let events = Parser::new_ext(text, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH).filter_map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Some(Event::Text(raw)),
        Event::Start(Tag::Link { ref dest_url, .. }) | Event::Start(Tag::Image { ref dest_url, .. }) if !safe_url(dest_url) => {
            skipped_links += 1;
            None
        }
        Event::End(pulldown_cmark::TagEnd::Link) | Event::End(pulldown_cmark::TagEnd::Image) if skipped_links > 0 => {
            skipped_links -= 1;
            None
        }
        other => Some(other),
    });
    let mut out = String::new();
    html::push_html(&mut out, events);
    out
}

const SQL_KEYWORDS: &[&str] = &[
    "select", "from", "where", "group", "by", "order", "limit", "having", "join", "left", "right", "inner", "outer",
    "full", "cross", "on", "using", "as", "and", "or", "not", "in", "is", "null", "like", "ilike", "between", "case",
    "when", "then", "else", "end", "distinct", "union", "all", "with", "desc", "asc", "qualify", "over", "partition",
    "true", "false", "cast", "exists", "offset", "nulls", "first", "last", "except", "intersect", "filter",
];

/// SQL as HTML with spans for keywords, LLM operators, functions, strings, numbers
/// and comments; every piece of the text is escaped.
pub fn highlight_sql(sql: &str) -> String {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let span = |out: &mut String, class: &str, text: &str| {
        out.push_str(&format!("<span class=\"sql-{class}\">{}</span>", escape(text)));
    };
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c == '\'' || c == '"' {
            i += 1;
            while i < chars.len() {
                if chars[i] == c {
                    if i + 1 < chars.len() && chars[i + 1] == c {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            span(&mut out, if c == '\'' { "string" } else { "ident" }, &text);
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            span(&mut out, "comment", &chars[start..i].iter().collect::<String>());
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            span(&mut out, "number", &chars[start..i].iter().collect::<String>());
        } else if c.is_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let lower = word.to_ascii_lowercase();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            if lower.starts_with("llm_") {
                span(&mut out, "llm", &word);
            } else if SQL_KEYWORDS.contains(&lower.as_str()) {
                span(&mut out, "keyword", &word);
            } else if next == Some(&'(') {
                span(&mut out, "function", &word);
            } else {
                out.push_str(&escape(&word));
            }
        } else {
            out.push_str(&escape(&c.to_string()));
            i += 1;
        }
    }
    out
}

/// A cell as plain text (strings without quotes, NULL as empty).
pub fn cell_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// RFC 4180 CSV of the table's rows.
pub fn csv(table: &TableData) -> String {
    let field = |text: &str| {
        if text.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text.to_string()
        }
    };
    let mut out = String::new();
    let header: Vec<String> = table.columns.iter().map(|c| field(&c.name)).collect();
    out.push_str(&header.join(","));
    out.push_str("\r\n");
    for row in &table.rows {
        let cells: Vec<String> = row.iter().map(|v| field(&cell_text(v))).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

pub fn is_numeric_type(data_type: &str) -> bool {
    let t = data_type.to_ascii_uppercase();
    ["INT", "DOUBLE", "FLOAT", "DECIMAL", "REAL", "NUMERIC"].iter().any(|n| t.contains(n))
}

fn is_time_type(data_type: &str) -> bool {
    let t = data_type.to_ascii_uppercase();
    t.contains("DATE") || t.contains("TIME")
}

#[derive(Clone, Debug, PartialEq)]
pub enum ChartKind {
    Bar,
    Line,
}

/// What to draw: one numeric series over a category or a time axis.
#[derive(Clone, Debug, PartialEq)]
pub struct ChartSpec {
    pub kind: ChartKind,
    pub label_column: String,
    pub value_column: String,
    pub points: Vec<(String, f64)>,
}

const MAX_CHART_POINTS: usize = 50;

/// A chart when the result has a numeric column over a category or time column and
/// at least two rows; `None` otherwise.
pub fn chart_spec(table: &TableData) -> Option<ChartSpec> {
    if table.rows.len() < 2 {
        return None;
    }
    let is_year = |name: &str| {
        let name = name.to_ascii_lowercase();
        name == "year" || name.ends_with("_year") || name == "month" || name == "date"
    };
    let label = table
        .columns
        .iter()
        .position(|c| is_time_type(&c.data_type) || (is_year(&c.name)))
        .map(|i| (i, ChartKind::Line))
        .or_else(|| table.columns.iter().position(|c| !is_numeric_type(&c.data_type)).map(|i| (i, ChartKind::Bar)))?;
    let value = table.columns.iter().enumerate().position(|(i, c)| i != label.0 && is_numeric_type(&c.data_type))?;
    let mut points: Vec<(String, f64)> = table
        .rows
        .iter()
        .filter_map(|row| Some((cell_text(row.get(label.0)?), row.get(value)?.as_f64()?)))
        .take(MAX_CHART_POINTS)
        .collect();
    if points.len() < 2 {
        return None;
    }
    if label.1 == ChartKind::Line {
        points.sort_by(|a, b| a.0.cmp(&b.0));
    }
    Some(ChartSpec {
        kind: label.1,
        label_column: table.columns[label.0].name.clone(),
        value_column: table.columns[value].name.clone(),
        points,
    })
}

/// Orders rows by one column: numbers numerically, NULLs last, text by its value.
pub fn sort_rows(rows: &mut [Vec<Value>], column: usize, ascending: bool) {
    rows.sort_by(|a, b| {
        let (x, y) = (a.get(column).unwrap_or(&Value::Null), b.get(column).unwrap_or(&Value::Null));
        let order = match (x, y) {
            (Value::Null, Value::Null) => std::cmp::Ordering::Equal,
            (Value::Null, _) => return std::cmp::Ordering::Greater,
            (_, Value::Null) => return std::cmp::Ordering::Less,
            (Value::Number(p), Value::Number(q)) => {
                p.as_f64().unwrap_or(0.0).partial_cmp(&q.as_f64().unwrap_or(0.0)).unwrap_or(std::cmp::Ordering::Equal)
            }
            _ => cell_text(x).cmp(&cell_text(y)),
        };
        if ascending {
            order
        } else {
            order.reverse()
        }
    });
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use tag_types::Column;

    fn table(columns: &[(&str, &str)], rows: Vec<Vec<Value>>) -> TableData {
        TableData {
            columns: columns.iter().map(|(n, t)| Column { name: n.to_string(), data_type: t.to_string() }).collect(),
            row_count: rows.len() as u64,
            rows,
            truncated: false,
        }
    }

    #[test]
    fn markdown_never_passes_html_or_script_links_through() {
        let html = markdown("**Inception** <script>alert(1)</script> [x](javascript:alert(1)) [ok](https://a.example)");
        assert!(html.contains("<strong>Inception</strong>"));
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(html.contains("<a href=\"https://a.example\">ok</a>"), "{html}");
    }

    #[test]
    fn sql_is_highlighted_and_escaped() {
        let html = highlight_sql("SELECT title FROM movies WHERE llm_filter('{title} <b>', title) AND year > 2000");
        assert!(html.contains("<span class=\"sql-keyword\">SELECT</span>"));
        assert!(html.contains("<span class=\"sql-llm\">llm_filter</span>"));
        assert!(html.contains("<span class=\"sql-string\">&#39;{title} &lt;b&gt;&#39;</span>"), "{html}");
        assert!(html.contains("<span class=\"sql-number\">2000</span>"));
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let t = table(&[("title", "VARCHAR"), ("n", "INTEGER")], vec![vec![json!("a, \"b\""), json!(1)], vec![Value::Null, json!(2)]]);
        assert_eq!(csv(&t), "title,n\r\n\"a, \"\"b\"\"\",1\r\n,2\r\n");
    }

    #[test]
    fn charts_need_a_number_over_a_category_or_time() {
        let bars = table(&[("genre", "VARCHAR"), ("films", "BIGINT")], vec![vec![json!("Drama"), json!(3)], vec![json!("Sci-Fi"), json!(2)]]);
        let spec = chart_spec(&bars).unwrap();
        assert_eq!(spec.kind, ChartKind::Bar);
        assert_eq!(spec.points, vec![("Drama".into(), 3.0), ("Sci-Fi".into(), 2.0)]);
        let line = table(&[("year", "INTEGER"), ("gross", "DOUBLE")], vec![vec![json!(2010), json!(5.5)], vec![json!(2008), json!(1.0)]]);
        let spec = chart_spec(&line).unwrap();
        assert_eq!((spec.kind, spec.points[0].0.as_str()), (ChartKind::Line, "2008"));
        let text_only = table(&[("title", "VARCHAR")], vec![vec![json!("a")], vec![json!("b")]]);
        assert_eq!(chart_spec(&text_only), None);
        let one_row = table(&[("genre", "VARCHAR"), ("films", "BIGINT")], vec![vec![json!("Drama"), json!(3)]]);
        assert_eq!(chart_spec(&one_row), None);
    }

    #[test]
    fn sorting_is_numeric_with_nulls_last() {
        let mut rows = vec![vec![json!(10)], vec![Value::Null], vec![json!(9)]];
        sort_rows(&mut rows, 0, true);
        assert_eq!(rows, vec![vec![json!(9)], vec![json!(10)], vec![Value::Null]]);
        sort_rows(&mut rows, 0, false);
        assert_eq!(rows, vec![vec![json!(10)], vec![json!(9)], vec![Value::Null]]);
    }

    #[test]
    fn events_are_split_on_blank_lines_and_keep_alives_skipped() {
        let mut buffer = b"event: token\ndata: {\"type\":\"token\",\"text\":\"Hi\"}\n\n:\n\nevent: done\ndata: {\"a\"".to_vec();
        let events = crate::api::take_events(&mut buffer);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0], crate::api::Event::Token { text: "Hi".into() });
        assert_eq!(buffer, b"event: done\ndata: {\"a\"".to_vec(), "an incomplete event waits for the rest");
    }
}
