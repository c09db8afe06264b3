//! The read-only allow-list. A statement passes only if every query body is a
//! SELECT, VALUES, a set operation or a plain table, every table in FROM is a named
//! table or an allowed generator, and no function reads files, URLs, the
//! environment or runs SQL text. DuckDB itself runs with external access disabled
//! and its configuration locked, so this is the first of two walls, not the only one.

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, ObjectName, ObjectNamePart, Query, SetExpr, Statement, TableFactor, Visit, Visitor};

use crate::error::{Error, Result};

/// Table functions allowed in FROM: generators and this database's own catalog.
const ALLOWED_TABLE_FUNCTIONS: &[&str] =
    &["range", "generate_series", "unnest", "duckdb_tables", "duckdb_columns", "duckdb_views"];

pub(super) fn check_read_only(statement: &Statement) -> Result<()> {
    let mut checker = ReadOnlyChecker;
    match statement.visit(&mut checker) {
        ControlFlow::Break(reason) => Err(Error::RejectedSql(reason)),
        ControlFlow::Continue(()) => Ok(()),
    }
}

struct ReadOnlyChecker;

fn last_part(name: &ObjectName) -> String {
    match name.0.last() {
        Some(ObjectNamePart::Identifier(ident)) => ident.value.to_ascii_lowercase(),
        Some(other) => other.to_string().to_ascii_lowercase(),
        None => String::new(),
    }
}

/// Scalar or table functions that reach outside the database or run SQL text.
fn is_forbidden_function(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "glob",
        "getenv",
        "query",
        "query_table",
        "sniff_csv",
        "load_extension",
        "duckdb_secrets",
        "which_secret",
        "checkpoint",
        "force_checkpoint",
    ];
    EXACT.contains(&name)
        || name.starts_with("read_")
        || name.starts_with("pragma_")
        || name.starts_with("parquet_")
        || name.ends_with("_scan")
        || name.ends_with("_attach")
        || name.ends_with("_query")
        || name.ends_with("_execute")
        // The database scanners' own functions (pass-through queries and writes,
        // pools, caches, secrets).
        || name.starts_with("postgres_")
        || name.starts_with("mysql_")
        || name.starts_with("sqlite_")
}

/// A name that reaches the attached database past the dataset's views.
fn names_the_source(name: &ObjectName) -> bool {
    name.0.iter().any(|part| match part {
        ObjectNamePart::Identifier(ident) => ident.value.eq_ignore_ascii_case(super::SOURCE_CATALOG),
        ObjectNamePart::Function(_) => false,
    })
}

/// A table name that DuckDB would resolve to a file or URL (a replacement scan).
fn looks_like_path(name: &ObjectName) -> bool {
    name.0.iter().any(|part| match part {
        ObjectNamePart::Identifier(ident) => {
            ident.quote_style == Some('\'')
                || ident.value.contains('/')
                || ident.value.contains('\\')
                || ident.value.contains(':')
                || (ident.quote_style.is_some() && ident.value.contains('.'))
        }
        ObjectNamePart::Function(_) => true,
    })
}

fn check_body(body: &SetExpr) -> ControlFlow<String> {
    match body {
        SetExpr::Select(select) => {
            if select.into.is_some() {
                return ControlFlow::Break("SELECT ... INTO creates a table and is not allowed".into());
            }
            ControlFlow::Continue(())
        }
        SetExpr::Query(_) | SetExpr::Values(_) | SetExpr::Table(_) => ControlFlow::Continue(()),
        SetExpr::SetOperation { left, right, .. } => {
            check_body(left)?;
            check_body(right)
        }
        SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => {
            ControlFlow::Break("data-modifying statements are not allowed, not even inside WITH".into())
        }
        #[allow(unreachable_patterns)]
        _ => ControlFlow::Break("this kind of query body is not allowed".into()),
    }
}

impl Visitor for ReadOnlyChecker {
    type Break = String;

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<String> {
        match statement {
            Statement::Query(_) => ControlFlow::Continue(()),
            other => ControlFlow::Break(format!("statement {} is not allowed inside a query", super::statement_kind(other))),
        }
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<String> {
        check_body(&query.body)
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<String> {
        match factor {
            TableFactor::Table { name, args, .. } => {
                if names_the_source(name) {
                    return ControlFlow::Break(format!("{name} is not one of the dataset's tables"));
                }
                if looks_like_path(name) {
                    return ControlFlow::Break(format!("reading files or URLs is not allowed: {name}"));
                }
                if args.is_some() {
                    return check_table_function(name);
                }
                ControlFlow::Continue(())
            }
            TableFactor::Function { name, .. } => check_table_function(name),
            TableFactor::TableFunction { expr, .. } => match expr {
                Expr::Function(function) => check_table_function(&function.name),
                _ => ControlFlow::Break("this table expression is not allowed".into()),
            },
            TableFactor::Derived { .. } | TableFactor::NestedJoin { .. } | TableFactor::UNNEST { .. } => {
                ControlFlow::Continue(())
            }
            TableFactor::Pivot { .. } | TableFactor::Unpivot { .. } => ControlFlow::Continue(()),
            _ => ControlFlow::Break("this table expression is not allowed".into()),
        }
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<String> {
        if let Expr::Function(function) = expr {
            let name = last_part(&function.name);
            if is_forbidden_function(&name) {
                return ControlFlow::Break(format!("function {name} is not allowed: it reads outside the dataset"));
            }
        }
        ControlFlow::Continue(())
    }
}

fn check_table_function(name: &ObjectName) -> ControlFlow<String> {
    let function = last_part(name);
    if ALLOWED_TABLE_FUNCTIONS.contains(&function.as_str()) {
        ControlFlow::Continue(())
    } else {
        ControlFlow::Break(format!("table function {function} is not allowed"))
    }
}
