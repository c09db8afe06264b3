//! Whole-input collection. DuckDB hands an operator its rows one chunk (up to 2048
//! rows) at a time, so deduplication and the prefix-sharing order would only see a
//! chunk. When the query's shape says exactly which rows reach its one row-wise
//! operator (a plain SELECT whose operator sits in the select list, the ORDER BY, or
//! a WHERE conjunct of its own, with no LIMIT, grouping or window), this derives
//! the query that lists the operator's distinct inputs:
//! `SELECT DISTINCT <the operator's arguments> FROM <the same FROM> WHERE <the other
//! conjuncts>`. The executor runs it first and answers all inputs in one GGR order;
//! the query itself then finds every answer in its memo. Rows the query would not
//! give the operator are never asked about.

use std::ops::ControlFlow;

use sqlparser::ast::{
    visit_expressions, BinaryOperator, Distinct, Expr, FunctionArg, FunctionArgExpr, FunctionArguments,
    SetExpr, Statement,
};

use super::topk::{any_expr, function_name, projected, ungrouped, AGGREGATES};
use crate::operators::{Kind, Operator};

/// The query listing an operator's distinct inputs, and the operator.
#[derive(Debug, Clone, PartialEq)]
pub struct InputQuery {
    pub operator: Operator,
    pub sql: String,
}

/// The LLM operator `expr` calls.
fn operator_of(expr: &Expr) -> Option<Operator> {
    function_name(expr).and_then(|name| Operator::from_name(&name))
}

/// LLM operator calls anywhere in `expr`, subqueries included.
pub(super) fn count_operators(expr: &Expr) -> usize {
    let mut n = 0;
    let _ = visit_expressions(expr, |e| {
        if operator_of(e).is_some() {
            n += 1;
        }
        ControlFlow::<()>::Continue(())
    });
    n
}

fn the_operator(expr: &Expr) -> Option<Expr> {
    let mut found = None;
    let _ = visit_expressions(expr, |e| {
        if operator_of(e).is_some() {
            found = Some(e.clone());
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    found
}

/// The terms of a top-level AND chain (nested parentheses included).
pub(super) fn conjuncts(expr: &Expr, out: &mut Vec<Expr>) {
    match expr {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        Expr::Nested(inner) if matches!(inner.as_ref(), Expr::BinaryOp { op: BinaryOperator::And, .. }) => conjuncts(inner, out),
        other => out.push(other.clone()),
    }
}

/// Whether every row that evaluates `expr` evaluates its one operator: the path
/// from `expr` down to the operator has no short circuit (AND, OR, CASE, COALESCE,
/// ...) and no window. The operator's own arguments are not looked into.
fn reaches_operator_always(expr: &Expr) -> bool {
    if operator_of(expr).is_some() {
        return true;
    }
    let one_side = |with: &Expr, without: &Expr| count_operators(without) == 0 && reaches_operator_always(with);
    match expr {
        Expr::Nested(inner) | Expr::UnaryOp { expr: inner, .. } | Expr::Cast { expr: inner, .. } => reaches_operator_always(inner),
        Expr::IsTrue(inner) | Expr::IsFalse(inner) | Expr::IsNotTrue(inner) | Expr::IsNotFalse(inner) => reaches_operator_always(inner),
        Expr::IsNull(inner) | Expr::IsNotNull(inner) => reaches_operator_always(inner),
        Expr::BinaryOp { left, op, right } if !matches!(op, BinaryOperator::And | BinaryOperator::Or) => {
            one_side(left, right) || one_side(right, left)
        }
        Expr::Function(f) if f.over.is_none() => {
            let Some(name) = function_name(expr) else { return false };
            if ["coalesce", "ifnull", "nullif", "if", "iif", "greatest", "least"].contains(&name.as_str()) {
                return false;
            }
            let FunctionArguments::List(list) = &f.args else { return false };
            let with_operator: Vec<&Expr> = list
                .args
                .iter()
                .filter_map(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                    _ => None,
                })
                .filter(|e| count_operators(e) > 0)
                .collect();
            with_operator.len() == 1 && reaches_operator_always(with_operator[0])
        }
        _ => false,
    }
}

/// The input query for `statement` (already rewritten), when its shape allows one.
pub fn input_query(statement: &Statement) -> Option<InputQuery> {
    let Statement::Query(query) = statement else { return None };
    if query.with.is_some() || query.limit_clause.is_some() || query.fetch.is_some() {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else { return None };
    if !matches!(select.distinct, None | Some(Distinct::Distinct)) || !ungrouped(select) {
        return None;
    }
    let projected = projected(select);
    let order_keys: Vec<&Expr> = match &query.order_by {
        Some(order_by) => match &order_by.kind {
            sqlparser::ast::OrderByKind::Expressions(keys) => keys.iter().map(|k| &k.expr).collect(),
            _ => return None,
        },
        None => Vec::new(),
    };
    let in_projection: usize = projected.iter().map(|e| count_operators(e)).sum();
    let in_order: usize = order_keys.iter().map(|e| count_operators(e)).sum();
    let in_where = select.selection.as_ref().map_or(0, count_operators);
    let in_from = select.from.iter().map(|t| t.to_string()).any(|t| t.to_ascii_lowercase().contains("llm_"));
    if in_projection + in_order + in_where != 1 || in_from {
        return None;
    }
    let mut where_rest: Vec<Expr> = Vec::new();
    let call = if in_where == 1 {
        let mut parts = Vec::new();
        conjuncts(select.selection.as_ref()?, &mut parts);
        let mut call = None;
        for part in parts {
            if count_operators(&part) == 1 {
                if !reaches_operator_always(&part) {
                    return None;
                }
                call = the_operator(&part);
            } else {
                where_rest.push(part);
            }
        }
        call?
    } else {
        // In the select list or ORDER BY: every row of the FROM/WHERE reaches it, unless
        // the select list aggregates or uses windows (then rows are not 1:1).
        let aggregates = projected.iter().any(|e| {
            any_expr(e, |x| matches!(x, Expr::Function(f) if f.over.is_some()) || is_aggregate(x))
        });
        let short = projected.iter().chain(order_keys.iter()).any(|e| count_operators(e) == 1 && !reaches_operator_always(e));
        if aggregates || short {
            return None;
        }
        if let Some(selection) = &select.selection {
            where_rest.push(selection.clone());
        }
        projected.iter().chain(order_keys.iter()).find_map(|e| the_operator(e))?
    };
    let operator = operator_of(&call).filter(|op| op.kind() == Kind::RowWise)?;
    let Expr::Function(function) = &call else { return None };
    let FunctionArguments::List(list) = &function.args else { return None };
    let args: Vec<String> = list
        .args
        .iter()
        .map(|arg| match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.to_string()),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let from: Vec<String> = select.from.iter().map(ToString::to_string).collect();
    if from.is_empty() {
        return None;
    }
    let mut sql = format!("SELECT DISTINCT {} FROM {}", args.join(", "), from.join(", "));
    if !where_rest.is_empty() {
        let rest: Vec<String> = where_rest.iter().map(|e| format!("({e})")).collect();
        sql.push_str(&format!(" WHERE {}", rest.join(" AND ")));
    }
    Some(InputQuery { operator, sql })
}

fn is_aggregate(expr: &Expr) -> bool {
    function_name(expr).is_some_and(|name| AGGREGATES.contains(&name.as_str()))
}

#[cfg(test)]
mod tests {
    fn input(sql: &str) -> Option<String> {
        let checked = crate::sql::check(sql, "q").unwrap();
        checked.input_query.map(|i| i.sql)
    }

    #[test]
    fn a_filter_conjunct_collects_the_rows_the_other_conjuncts_keep() {
        let sql = input("SELECT title FROM movies WHERE year < 1960 AND llm_filter('{genres} includes comedy')").unwrap();
        assert_eq!(sql, "SELECT DISTINCT 'q', '{genres} includes comedy', [CAST(\"genres\" AS VARCHAR)] FROM movies WHERE (year < 1960)");
        let sql = input("SELECT title, llm_map('Tagline for {title}') FROM movies WHERE year > 2000 ORDER BY title").unwrap();
        assert!(sql.ends_with("FROM movies WHERE (year > 2000)"), "{sql}");
        let sql = input("SELECT m.title FROM movies m JOIN reviews r ON r.movie_id = m.movie_id WHERE llm_filter('{r.review_text} is negative')").unwrap();
        assert!(sql.contains("FROM movies m JOIN reviews r ON r.movie_id = m.movie_id"), "{sql}");
    }

    #[test]
    fn shapes_whose_operator_inputs_are_not_known_up_front_are_left_alone() {
        for sql in [
            "SELECT title, llm_map('{title}') FROM movies ORDER BY year LIMIT 5",
            "SELECT title FROM movies WHERE year < 1960 OR llm_filter('{title}')",
            "SELECT title FROM movies WHERE llm_filter('{title}') AND llm_filter('{genres}')",
            "SELECT genres, count(*) FROM movies WHERE llm_filter('{genres}') GROUP BY genres",
            "SELECT llm_reduce('Summarize', list(title)) FROM movies",
            "SELECT max(llm_score('{title}')) FROM movies",
            "WITH t AS (SELECT * FROM movies) SELECT llm_map('{title}') FROM t",
            "SELECT title FROM movies WHERE CASE WHEN year > 2000 THEN llm_filter('{title}') ELSE false END",
            "SELECT llm_knowledge('capital of France')",
        ] {
            assert_eq!(input(sql), None, "{sql}");
        }
    }
}
