//! Cheap first inside a WHERE clause. DuckDB orders a conjunction's terms by its
//! own cost estimates, and it rates our operators as cheaper than, say,
//! `id % 2 = 0`: `WHERE id % 2 = 0 AND llm_filter(...)` called the LLM for every
//! row (measured: 5,000 rows in, 2,500 needed). Each conjunct with an LLM operator
//! becomes `CASE WHEN <the other, ordinary conjuncts> THEN <it> ELSE false END`:
//! CASE evaluates its THEN only for the rows whose WHEN holds, whatever order
//! DuckDB picks. The ordinary conjuncts stay as they are, so they are still pushed
//! into scans. The result is unchanged: a row passes exactly when every conjunct
//! is true.

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Select, Statement, VisitMut, VisitorMut};

use super::{
    collect::{conjuncts, count_operators},
    rewrite::parse_expr,
};
use crate::error::{Error, Result};

pub(super) fn guard_where_operators(statement: &mut Statement) -> Result<()> {
    match statement.visit(&mut Guard) {
        ControlFlow::Break(error) => Err(error),
        ControlFlow::Continue(()) => Ok(()),
    }
}

struct Guard;

impl VisitorMut for Guard {
    type Break = Error;

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<Error> {
        let Some(selection) = select.selection.take() else { return ControlFlow::Continue(()) };
        let mut parts = Vec::new();
        conjuncts(&selection, &mut parts);
        let (with_operators, ordinary): (Vec<Expr>, Vec<Expr>) = parts.into_iter().partition(|e| count_operators(e) > 0);
        if with_operators.is_empty() || ordinary.is_empty() {
            select.selection = Some(selection);
            return ControlFlow::Continue(());
        }
        let condition: Vec<String> = ordinary.iter().map(|e| format!("({e})")).collect();
        let condition = condition.join(" AND ");
        let mut terms: Vec<String> = ordinary.iter().map(|e| format!("({e})")).collect();
        for term in &with_operators {
            terms.push(format!("CASE WHEN {condition} THEN ({term}) ELSE false END"));
        }
        match parse_expr(&terms.join(" AND ")) {
            Ok(guarded) => {
                select.selection = Some(guarded);
                ControlFlow::Continue(())
            }
            Err(e) => ControlFlow::Break(e),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn operator_conjuncts_run_only_where_the_ordinary_ones_hold() {
        let sql = crate::sql::check("SELECT id FROM items WHERE id % 2 = 0 AND llm_filter('{name}') AND kind = 'a'", "q")
            .unwrap()
            .executable;
        assert!(
            sql.ends_with("WHERE (id % 2 = 0) AND (kind = 'a') AND CASE WHEN (id % 2 = 0) AND (kind = 'a') THEN (llm_filter('q', '{name}', [CAST(\"name\" AS VARCHAR)])) ELSE false END"),
            "{sql}"
        );
        // Nothing to guard: only an operator, or no operator.
        let sql = crate::sql::check("SELECT id FROM items WHERE llm_filter('{name}')", "q").unwrap().executable;
        assert!(sql.ends_with("WHERE llm_filter('q', '{name}', [CAST(\"name\" AS VARCHAR)])"), "{sql}");
        let sql = crate::sql::check("SELECT id FROM items WHERE id > 1 OR llm_filter('{name}')", "q").unwrap().executable;
        assert!(!sql.contains("CASE"), "{sql}");
    }
}
