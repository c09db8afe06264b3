//! Parameters of the extended query protocol: their types, as the client gave them
//! or inferred from the statement where it left them to the server (a cast, a
//! comparison with a column of the dataset, `LIMIT`/`OFFSET`), and their values
//! bound into the statement as SQL literals. The bound statement is then checked
//! and run like any other: a parameter is a value, never SQL.

use std::{collections::HashMap, ops::ControlFlow};

use pgwire::{
    api::{portal::Portal, Type},
    error::{PgWireError, PgWireResult},
    types::FromSqlText,
};
use sqlparser::{
    ast::{Expr, InTarget, LimitClause, Query, Statement as Ast, Value, Visit, Visitor},
    dialect::DuckDbDialect,
    parser::Parser,
    tokenizer::{Token, Tokenizer},
};
use tag_types::DatasetInfo;

use super::user_error;
use crate::sql::quote_literal;

/// A parsed statement of the extended protocol: its SQL and the types of its
/// parameters (`$1` is the first).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub sql: String,
    pub parameters: Vec<Type>,
}

fn parse(sql: &str) -> Option<Vec<Ast>> {
    Parser::parse_sql(&DuckDbDialect {}, sql).ok()
}

/// The number of a placeholder (`$3` is 3).
fn placeholder(expr: &Expr) -> Option<usize> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => p.strip_prefix('$')?.parse().ok().filter(|n| *n > 0),
            _ => None,
        },
        Expr::Nested(inner) => placeholder(inner),
        _ => None,
    }
}

/// The PostgreSQL type of a DuckDB type name.
pub fn pg_type_of(duckdb: &str) -> Type {
    let upper = duckdb.trim().to_ascii_uppercase();
    if upper.ends_with("[]") {
        return match pg_type_of(&upper[..upper.len() - 2]) {
            Type::INT2 => Type::INT2_ARRAY,
            Type::INT4 => Type::INT4_ARRAY,
            Type::INT8 => Type::INT8_ARRAY,
            Type::FLOAT4 => Type::FLOAT4_ARRAY,
            Type::FLOAT8 => Type::FLOAT8_ARRAY,
            Type::BOOL => Type::BOOL_ARRAY,
            Type::OID => Type::OID_ARRAY,
            _ => Type::TEXT_ARRAY,
        };
    }
    let base = upper.split('(').next().unwrap_or_default().trim();
    match base {
        "BIGINT" | "INT8" | "LONG" | "HUGEINT" | "UBIGINT" | "UINTEGER" => Type::INT8,
        "INTEGER" | "INT" | "INT4" | "SIGNED" | "USMALLINT" => Type::INT4,
        "SMALLINT" | "INT2" | "SHORT" | "TINYINT" | "INT1" | "UTINYINT" => Type::INT2,
        "DOUBLE" | "FLOAT8" | "DOUBLE PRECISION" => Type::FLOAT8,
        "FLOAT" | "FLOAT4" | "REAL" => Type::FLOAT4,
        "DECIMAL" | "NUMERIC" => Type::NUMERIC,
        "BOOLEAN" | "BOOL" | "LOGICAL" => Type::BOOL,
        // A cast's type (`$1::oid[]`, asyncpg's type introspection); a regclass
        // parameter stays text: it is a relation's name.
        "OID" => Type::OID,
        "DATE" => Type::DATE,
        "TIME" => Type::TIME,
        "TIMESTAMP WITH TIME ZONE" | "TIMESTAMPTZ" => Type::TIMESTAMPTZ,
        b if b.starts_with("TIMESTAMP") || b == "DATETIME" => Type::TIMESTAMP,
        "INTERVAL" => Type::INTERVAL,
        "BLOB" | "BYTEA" => Type::BYTEA,
        _ => Type::TEXT,
    }
}

/// Infers the types of the placeholders the client left to the server.
struct Inference<'a> {
    columns: &'a HashMap<String, Type>,
    found: HashMap<usize, Type>,
}

impl Inference<'_> {
    fn column_type(&self, expr: &Expr) -> Option<Type> {
        let name = match expr {
            Expr::Identifier(ident) => &ident.value,
            Expr::CompoundIdentifier(parts) => &parts.last()?.value,
            Expr::Nested(inner) => return self.column_type(inner),
            _ => return None,
        };
        self.columns.get(&name.to_ascii_lowercase()).cloned()
    }

    /// `$n` compared with `other`: `$n` has its type.
    fn beside(&mut self, maybe: &Expr, other: &Expr) {
        if let (Some(n), Some(t)) = (placeholder(maybe), self.column_type(other)) {
            self.found.entry(n).or_insert(t);
        }
    }
}

impl Visitor for Inference<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(LimitClause::LimitOffset { limit, offset, .. }) = &query.limit_clause {
            for expr in limit.iter().chain(offset.iter().map(|o| &o.value)) {
                if let Some(n) = placeholder(expr) {
                    self.found.insert(n, Type::INT8);
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::Cast { expr: inner, data_type, .. } => {
                if let Some(n) = placeholder(inner) {
                    self.found.insert(n, pg_type_of(&data_type.to_string()));
                }
            }
            Expr::BinaryOp { left, right, .. } => {
                self.beside(left, right);
                self.beside(right, left);
            }
            Expr::Between { expr, low, high, .. } => {
                self.beside(low, expr);
                self.beside(high, expr);
            }
            Expr::In { expr, target: InTarget::List(list), .. } => {
                for item in list {
                    self.beside(item, expr);
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// `sql` with the client's parameter types, and the server's inference (over the
/// dataset's columns) where the client left one unspecified; text otherwise.
pub fn prepare(sql: &str, client_types: &[Type], dataset: Option<&DatasetInfo>) -> Prepared {
    let statements = parse(sql).unwrap_or_default();
    let written = tokens(sql).unwrap_or_default().iter().filter_map(placeholder_token).max().unwrap_or(0);
    let count = written.max(client_types.len());
    let mut parameters: Vec<Type> = (0..count).map(|i| client_types.get(i).cloned().unwrap_or(Type::UNKNOWN)).collect();
    if parameters.iter().any(|t| *t == Type::UNKNOWN) {
        let mut columns = HashMap::new();
        for table in dataset.map(|d| d.tables.as_slice()).unwrap_or_default() {
            for column in &table.columns {
                columns.entry(column.name.to_ascii_lowercase()).or_insert_with(|| pg_type_of(&column.data_type));
            }
        }
        let mut inference = Inference { columns: &columns, found: HashMap::new() };
        let _ = Visit::visit(&statements, &mut inference);
        for (i, t) in parameters.iter_mut().enumerate() {
            if *t == Type::UNKNOWN {
                *t = inference.found.remove(&(i + 1)).unwrap_or(Type::TEXT);
            }
        }
    }
    Prepared { sql: sql.to_string(), parameters }
}

fn unsupported(kind: &str, pg_type: &Type) -> PgWireError {
    user_error("ERROR", "0A000", format!("{kind} parameters of type {} are not supported; send the value as text", pg_type.name()))
}

fn invalid(pg_type: &Type, value: &str) -> PgWireError {
    user_error("ERROR", "22P02", format!("invalid input syntax for type {}: \"{value}\"", pg_type.name()))
}

/// A value typed as `pg_type`, written as text, as a SQL literal.
fn literal_from_text(pg_type: &Type, text: &str) -> PgWireResult<String> {
    let trimmed = text.trim();
    Ok(match *pg_type {
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => trimmed.parse::<i64>().map_err(|_| invalid(pg_type, text))?.to_string(),
        Type::FLOAT4 | Type::FLOAT8 | Type::NUMERIC => {
            let value: f64 = trimmed.parse().map_err(|_| invalid(pg_type, text))?;
            if !value.is_finite() {
                format!("CAST({} AS DOUBLE)", quote_literal(trimmed))
            } else if trimmed.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')) {
                trimmed.to_string()
            } else {
                return Err(invalid(pg_type, text));
            }
        }
        Type::BOOL => match trimmed.to_ascii_lowercase().as_str() {
            "t" | "true" | "yes" | "on" | "1" | "y" => "TRUE".into(),
            "f" | "false" | "no" | "off" | "0" | "n" => "FALSE".into(),
            _ => return Err(invalid(pg_type, text)),
        },
        Type::DATE => format!("CAST({} AS DATE)", quote_literal(trimmed)),
        Type::TIME => format!("CAST({} AS TIME)", quote_literal(trimmed)),
        Type::TIMESTAMP => format!("CAST({} AS TIMESTAMP)", quote_literal(trimmed)),
        Type::TIMESTAMPTZ => format!("CAST({} AS TIMESTAMPTZ)", quote_literal(trimmed)),
        Type::INTERVAL => format!("CAST({} AS INTERVAL)", quote_literal(trimmed)),
        _ => quote_literal(text),
    })
}

/// A list literal of `items` (`NULL` for a missing one).
fn list<T>(items: Vec<Option<T>>, literal: impl Fn(T) -> String) -> String {
    let items: Vec<String> = items.into_iter().map(|item| item.map_or_else(|| "NULL".to_string(), &literal)).collect();
    format!("[{}]", items.join(", "))
}

/// Parameter `i` of `portal` (0-based) as a SQL literal, decoded as `pg_type`.
fn literal(portal: &Portal<Prepared>, i: usize, pg_type: &Type) -> PgWireResult<String> {
    let Some(Some(bytes)) = portal.parameters.get(i) else { return Ok("NULL".into()) };
    if portal.parameter_format.is_text(i) {
        let text = String::from_sql_text(pg_type, bytes).map_err(PgWireError::FailedToParseParameter)?;
        return literal_from_text(pg_type, &text);
    }
    fn get<T: postgres_types::FromSqlOwned>(portal: &Portal<Prepared>, i: usize, pg_type: &Type) -> PgWireResult<T> {
        portal.parameter::<T>(i, pg_type)?.ok_or_else(|| user_error("ERROR", "22004", "a NULL parameter"))
    }
    Ok(match *pg_type {
        Type::INT2 => get::<i16>(portal, i, pg_type)?.to_string(),
        Type::INT4 => get::<i32>(portal, i, pg_type)?.to_string(),
        Type::INT8 => get::<i64>(portal, i, pg_type)?.to_string(),
        Type::OID => get::<u32>(portal, i, pg_type)?.to_string(),
        Type::FLOAT4 => literal_from_text(&Type::FLOAT8, &get::<f32>(portal, i, pg_type)?.to_string())?,
        Type::FLOAT8 => literal_from_text(pg_type, &get::<f64>(portal, i, pg_type)?.to_string())?,
        Type::NUMERIC => literal_from_text(pg_type, &get::<rust_decimal::Decimal>(portal, i, pg_type)?.to_string())?,
        Type::BOOL => if get::<bool>(portal, i, pg_type)? { "TRUE" } else { "FALSE" }.into(),
        Type::DATE => literal_from_text(pg_type, &get::<chrono::NaiveDate>(portal, i, pg_type)?.to_string())?,
        Type::TIMESTAMP => literal_from_text(pg_type, &get::<chrono::NaiveDateTime>(portal, i, pg_type)?.to_string())?,
        Type::TIMESTAMPTZ => literal_from_text(pg_type, &get::<chrono::DateTime<chrono::Utc>>(portal, i, pg_type)?.to_rfc3339())?,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => quote_literal(&get::<String>(portal, i, pg_type)?),
        // Arrays as lists (asyncpg's type introspection binds an oid[]).
        Type::INT2_ARRAY => list(get::<Vec<Option<i16>>>(portal, i, pg_type)?, |n| n.to_string()),
        Type::INT4_ARRAY => list(get::<Vec<Option<i32>>>(portal, i, pg_type)?, |n| n.to_string()),
        Type::INT8_ARRAY => list(get::<Vec<Option<i64>>>(portal, i, pg_type)?, |n| n.to_string()),
        Type::OID_ARRAY => list(get::<Vec<Option<u32>>>(portal, i, pg_type)?, |n| n.to_string()),
        Type::FLOAT8_ARRAY => list(get::<Vec<Option<f64>>>(portal, i, pg_type)?, |n| format!("CAST('{n}' AS DOUBLE)")),
        Type::BOOL_ARRAY => list(get::<Vec<Option<bool>>>(portal, i, pg_type)?, |b| if b { "TRUE".into() } else { "FALSE".into() }),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => list(get::<Vec<Option<String>>>(portal, i, pg_type)?, |t| quote_literal(&t)),
        ref other => return Err(unsupported("binary", other)),
    })
}

/// The portal's statement with its parameters bound as literals; the statement as
/// it is when it has none.
pub fn bind(portal: &Portal<Prepared>) -> PgWireResult<String> {
    let statement = &portal.statement.statement;
    if portal.parameter_len() == 0 {
        return Ok(statement.sql.clone());
    }
    let mut literals = Vec::with_capacity(portal.parameter_len());
    for i in 0..portal.parameter_len() {
        let pg_type = statement.parameters.get(i).cloned().unwrap_or(Type::TEXT);
        literals.push(literal(portal, i, &pg_type)?);
    }
    substitute(&statement.sql, &literals)
}

/// The tokens of `sql`, whitespace and comments included (they print back as
/// they were written).
pub(super) fn tokens(sql: &str) -> PgWireResult<Vec<Token>> {
    Tokenizer::new(&DuckDbDialect {}, sql).tokenize().map_err(|e| user_error("ERROR", "42601", format!("syntax error: {e}")))
}

/// A token as SQL text again. sqlparser's `Display` writes a string literal's or
/// quoted name's value between quotes without doubling the quotes inside it
/// (`'it''s'` would come back as `'it's'`), so those are written here.
pub(super) fn render(token: &Token) -> String {
    match token {
        Token::SingleQuotedString(value) | Token::EscapedStringLiteral(value) => crate::sql::quote_literal(value),
        Token::Word(word) => match word.quote_style {
            Some('"') => crate::sql::quote_ident(&word.value),
            _ => token.to_string(),
        },
        _ => token.to_string(),
    }
}

fn placeholder_token(token: &Token) -> Option<usize> {
    match token {
        Token::Placeholder(p) => p.strip_prefix('$')?.parse().ok().filter(|n| *n > 0),
        _ => None,
    }
}

/// `sql` with each `$n` token replaced by `literals[n - 1]`, the rest as written.
pub fn substitute(sql: &str, literals: &[String]) -> PgWireResult<String> {
    let mut out = String::with_capacity(sql.len());
    for token in tokens(sql)? {
        match placeholder_token(&token) {
            Some(n) => {
                let literal = literals.get(n - 1).ok_or_else(|| {
                    user_error("ERROR", "08P01", format!("there is no parameter ${n}: {} were bound", literals.len()))
                })?;
                out.push_str(literal);
            }
            None => out.push_str(&render(&token)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_types_come_from_casts_columns_and_limits() {
        let info: DatasetInfo = serde_json::from_value(serde_json::json!({
            "name": "m", "description": "", "joins": [], "examples": [],
            "tables": [{"name": "movies", "description": null, "primary_key": null, "row_count": 1, "columns": [
                {"name": "year", "data_type": "INTEGER", "description": null, "samples": [], "distinct_count": 1, "values": null},
                {"name": "title", "data_type": "VARCHAR", "description": null, "samples": [], "distinct_count": 1, "values": null}
            ]}]
        }))
        .unwrap();
        let p = prepare("SELECT title FROM movies WHERE year > $1 AND title = $2 AND $3::DOUBLE > 1 LIMIT $4", &[], Some(&info));
        assert_eq!(p.parameters, vec![Type::INT4, Type::TEXT, Type::FLOAT8, Type::INT8]);
        let p = prepare("SELECT $1, m.year FROM movies m WHERE m.year BETWEEN $2 AND $3", &[Type::INT8], Some(&info));
        assert_eq!(p.parameters, vec![Type::INT8, Type::INT4, Type::INT4], "the client's type is kept");
        assert_eq!(prepare("SELECT 1", &[], None).parameters, vec![]);
    }

    #[test]
    fn values_are_bound_as_literals_never_as_sql() {
        let sql = substitute("SELECT * FROM movies WHERE title = $1 AND year > $2", &[quote_literal("x'; DROP TABLE movies; --"), "2000".into()]).unwrap();
        assert_eq!(sql, "SELECT * FROM movies WHERE title = 'x''; DROP TABLE movies; --' AND year > 2000");
        assert!(substitute("SELECT $2", &["1".into()]).is_err(), "a parameter that was not bound");
        assert_eq!(substitute("SELECT 'it''s' AS \"a\"\"b\", $1", &["1".into()]).unwrap(), "SELECT 'it''s' AS \"a\"\"b\", 1", "the statement's own quotes stay doubled");
        assert_eq!(substitute("DECLARE c CURSOR FOR SELECT '$1', $1 -- $1", &["7".into()]).unwrap(), "DECLARE c CURSOR FOR SELECT '$1', 7 -- $1\n", "only placeholder tokens");
        assert_eq!(literal_from_text(&Type::INT4, " 42 ").unwrap(), "42");
        assert!(literal_from_text(&Type::INT4, "42; DROP TABLE x").is_err());
        assert!(literal_from_text(&Type::FLOAT8, "1e3)").is_err());
        assert_eq!(literal_from_text(&Type::DATE, "2020-01-02").unwrap(), "CAST('2020-01-02' AS DATE)");
        assert_eq!(literal_from_text(&Type::BOOL, "t").unwrap(), "TRUE");
        assert_eq!(literal_from_text(&Type::TEXT, "it's").unwrap(), "'it''s'");
    }

    #[test]
    fn duckdb_types_map_to_postgres_types() {
        assert_eq!(pg_type_of("DECIMAL(10,2)"), Type::NUMERIC);
        assert_eq!(pg_type_of("BIGINT[]"), Type::INT8_ARRAY);
        assert_eq!(pg_type_of("TIMESTAMP WITH TIME ZONE"), Type::TIMESTAMPTZ);
        assert_eq!(pg_type_of("VARCHAR"), Type::TEXT);
        assert_eq!(pg_type_of("oid[]"), Type::OID_ARRAY, "a cast of a parameter to oid[]");
    }
}
