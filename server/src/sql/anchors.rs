//! Keeps LLM predicates above the joins. DuckDB pushes a WHERE conjunct that
//! references one table down to that table's scan, below the join, so an LLM filter
//! on `r.review_text` would run on reviews that the join later drops (the test
//! `filter_after_a_join_sees_only_joined_rows` caught exactly that). For every
//! SELECT with joins, the query-id argument of each LLM operator in its WHERE clause
//! becomes `CASE WHEN <join keys> IS NULL THEN 'id' ELSE 'id' END`: the same value,
//! but an expression over columns of both sides of the join, which DuckDB can only
//! evaluate once the join has produced the row. Operators in the select list,
//! GROUP BY, HAVING or ORDER BY already run above the joins and are left alone.

use std::ops::ControlFlow;

use sqlparser::ast::{
    visit_expressions, visit_expressions_mut, BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments,
    JoinConstraint, JoinOperator, ObjectNamePart, Select, Statement, TableFactor, VisitMut, VisitorMut,
};

use super::{quote_literal, rewrite::parse_expr};
use crate::{
    error::{Error, Result},
    operators::{call, Operator},
};

pub(super) fn anchor_where_operators(statement: &mut Statement, query_id: &str) -> Result<()> {
    let mut anchor = Anchor { query_id };
    match statement.visit(&mut anchor) {
        ControlFlow::Break(error) => Err(error),
        ControlFlow::Continue(()) => Ok(()),
    }
}

struct Anchor<'a> {
    query_id: &'a str,
}

impl VisitorMut for Anchor<'_> {
    type Break = Error;

    // Outer SELECTs are visited before the ones nested in them, so an operator ends
    // up anchored to the joins of its innermost SELECT.
    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<Error> {
        let keys = join_keys(select);
        let literal = quote_literal(self.query_id);
        let id_sql = if keys.len() < 2 {
            literal
        } else {
            let condition: Vec<String> = keys.iter().map(|k| format!("{k} IS NULL")).collect();
            format!("CASE WHEN {} THEN {literal} ELSE {literal} END", condition.join(" AND "))
        };
        let id_expr = match parse_expr(&id_sql) {
            Ok(expr) => expr,
            Err(e) => return ControlFlow::Break(e),
        };
        if let Some(selection) = &mut select.selection {
            let _ = visit_expressions_mut(selection, |expr| {
                if let Expr::Function(function) = expr {
                    let is_operator = matches!(function.name.0.as_slice(), [ObjectNamePart::Identifier(i)] if Operator::from_name(&i.value).is_some());
                    if let (true, FunctionArguments::List(list)) = (is_operator, &mut function.args) {
                        if let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(id))) = list.args.get_mut(call::QUERY_ID) {
                            *id = id_expr.clone();
                        }
                    }
                }
                ControlFlow::<()>::Continue(())
            });
        }
        ControlFlow::Continue(())
    }
}

/// The alias (or table name) a relation's columns are qualified with.
fn relation_name(factor: &TableFactor) -> Option<String> {
    match factor {
        TableFactor::Table { name, alias, .. } => Some(match alias {
            Some(alias) => alias.name.to_string(),
            None => name.0.last()?.to_string(),
        }),
        TableFactor::Derived { alias: Some(alias), .. } => Some(alias.name.to_string()),
        _ => None,
    }
}

fn constraint(operator: &JoinOperator) -> Option<&JoinConstraint> {
    match operator {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c)
        | JoinOperator::Semi(c)
        | JoinOperator::LeftSemi(c)
        | JoinOperator::RightSemi(c)
        | JoinOperator::Anti(c)
        | JoinOperator::LeftAnti(c)
        | JoinOperator::RightAnti(c) => Some(c),
        _ => None,
    }
}

fn is_column(expr: &Expr) -> bool {
    matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
}

fn push_columns(expr: &Expr, keys: &mut Vec<String>) {
    let _ = visit_expressions(expr, |e| {
        if is_column(e) {
            keys.push(e.to_string());
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Column equalities `a.x = b.y` among the conjuncts of a WHERE clause.
fn push_equalities(expr: &Expr, keys: &mut Vec<String>) {
    match expr {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            push_equalities(left, keys);
            push_equalities(right, keys);
        }
        Expr::BinaryOp { left, op: BinaryOperator::Eq, right } if is_column(left) && is_column(right) => {
            keys.push(left.to_string());
            keys.push(right.to_string());
        }
        Expr::Nested(inner) => push_equalities(inner, keys),
        _ => {}
    }
}

/// Columns that tie the SELECT's relations together: ON and USING columns, and
/// column equalities in WHERE when the FROM lists several relations.
fn join_keys(select: &Select) -> Vec<String> {
    let mut keys = Vec::new();
    for from in &select.from {
        let mut previous = relation_name(&from.relation);
        for join in &from.joins {
            let current = relation_name(&join.relation);
            match constraint(&join.join_operator) {
                Some(JoinConstraint::On(expr)) => push_columns(expr, &mut keys),
                Some(JoinConstraint::Using(columns)) | Some(JoinConstraint::UsingAlias(columns, _)) => {
                    for column in columns {
                        for side in [&previous, &current].into_iter().flatten() {
                            keys.push(format!("{side}.{column}"));
                        }
                    }
                }
                _ => {}
            }
            previous = current;
        }
    }
    if select.from.len() > 1 {
        if let Some(selection) = &select.selection {
            push_equalities(selection, &mut keys);
        }
    }
    keys.dedup();
    keys.truncate(8);
    keys
}
