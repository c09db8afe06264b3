//! Cheap first for top-k queries. DuckDB computes a SELECT's select list before its
//! ORDER BY ... LIMIT, so `SELECT llm_map(...) FROM movies ORDER BY revenue DESC
//! LIMIT 10` would call the LLM for every movie and keep ten answers. When the
//! ordering and the limit do not depend on the select list, this adds
//! `QUALIFY row_number() OVER (ORDER BY <the same keys>) <= limit + offset`: the rows
//! the LIMIT would keep are chosen first (a window over plain columns), and the
//! operators in the select list run on those rows only. The result is unchanged.

use std::ops::ControlFlow;

use sqlparser::ast::{
    visit_expressions, Expr, GroupByExpr, LimitClause, ObjectNamePart, OrderByKind, Select, SelectItem, SetExpr, Statement,
    Value,
};

use super::rewrite::parse_expr;
use crate::operators::Operator;
use crate::error::Result;

/// Aggregates make a SELECT return one row per group; then the select list is not
/// computed per input row and the rewrite does not apply.
pub(super) const AGGREGATES: &[&str] = &[
    "count", "sum", "avg", "mean", "min", "max", "list", "array_agg", "string_agg", "group_concat", "listagg",
    "median", "mode", "quantile", "quantile_cont", "quantile_disc", "stddev", "stddev_pop", "stddev_samp",
    "variance", "var_pop", "var_samp", "any_value", "first", "last", "arg_max", "arg_min", "argmax", "argmin",
    "max_by", "min_by", "bool_and", "bool_or", "approx_count_distinct", "approx_quantile", "histogram", "product",
    "bit_and", "bit_or", "bit_xor", "count_star", "entropy", "kurtosis", "skewness", "corr", "covar_pop",
    "covar_samp", "fsum", "favg", "sumkahan", "bitstring_agg",
];

pub(super) fn function_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Function(f) => match f.name.0.last() {
            Some(ObjectNamePart::Identifier(i)) => Some(i.value.to_ascii_lowercase()),
            _ => None,
        },
        _ => None,
    }
}

pub(super) fn any_expr(expr: &Expr, mut test: impl FnMut(&Expr) -> bool) -> bool {
    visit_expressions(expr, |e| if test(e) { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }).is_break()
}

/// A SELECT that returns one row per input row: no grouping, HAVING, QUALIFY,
/// windows, TOP or INTO.
pub(super) fn ungrouped(select: &Select) -> bool {
    matches!(&select.group_by, GroupByExpr::Expressions(exprs, _) if exprs.is_empty())
        && select.having.is_none()
        && select.qualify.is_none()
        && select.named_window.is_empty()
        && select.top.is_none()
        && select.into.is_none()
}

/// The expressions of the select list (wildcards left out).
pub(super) fn projected(select: &Select) -> Vec<&Expr> {
    select
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
            _ => None,
        })
        .collect()
}

/// Adds the QUALIFY when the top-level query has the shape; returns whether it did.
pub(super) fn limit_before_operators(statement: &mut Statement) -> Result<bool> {
    let Statement::Query(query) = statement else { return Ok(false) };
    let Some(order_by) = &query.order_by else { return Ok(false) };
    let OrderByKind::Expressions(keys) = &order_by.kind else { return Ok(false) };
    let Some(LimitClause::LimitOffset { limit: Some(limit), offset, limit_by }) = &query.limit_clause else {
        return Ok(false);
    };
    let number = |e: &Expr| match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse::<u64>().ok(),
            _ => None,
        },
        _ => None,
    };
    let Some(limit) = number(limit) else { return Ok(false) };
    let offset = match offset {
        Some(offset) => match number(&offset.value) {
            Some(n) => n,
            None => return Ok(false),
        },
        None => 0,
    };
    if keys.is_empty() || !limit_by.is_empty() {
        return Ok(false);
    }
    let SetExpr::Select(select) = query.body.as_mut() else { return Ok(false) };
    if select.distinct.is_some() || !ungrouped(select) {
        return Ok(false);
    }
    let projected = projected(select);
    let has_operator = projected.iter().any(|e| any_expr(e, |x| function_name(x).is_some_and(|n| Operator::from_name(&n).is_some())));
    let has_aggregate_or_window = projected.iter().any(|e| {
        any_expr(e, |x| {
            matches!(x, Expr::Function(f) if f.over.is_some())
                || function_name(x).is_some_and(|n| AGGREGATES.contains(&n.as_str()))
        })
    });
    if !has_operator || has_aggregate_or_window {
        return Ok(false);
    }
    // The keys must be plain expressions over the input: no select-list alias, no
    // position (`ORDER BY 2`), no operator.
    let aliases: Vec<String> = select
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    for key in keys {
        if number(&key.expr).is_some() {
            return Ok(false);
        }
        let refers_to_output = any_expr(&key.expr, |x| match x {
            Expr::Identifier(i) => aliases.contains(&i.value.to_ascii_lowercase()),
            x => function_name(x).is_some_and(|n| Operator::from_name(&n).is_some()),
        });
        if refers_to_output {
            return Ok(false);
        }
    }
    let keys_sql: Vec<String> = keys.iter().map(ToString::to_string).collect();
    let qualify = parse_expr(&format!("row_number() OVER (ORDER BY {}) <= {}", keys_sql.join(", "), limit + offset))?;
    select.qualify = Some(qualify);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use sqlparser::{dialect::DuckDbDialect, parser::Parser};

    use super::*;

    fn rewrite(sql: &str) -> Option<String> {
        let mut statement = Parser::parse_sql(&DuckDbDialect {}, sql).unwrap().remove(0);
        limit_before_operators(&mut statement).unwrap().then(|| statement.to_string())
    }

    #[test]
    fn top_k_over_plain_keys_limits_before_the_select_list() {
        let sql = "SELECT title, llm_map('q', 'Summarize {title}', [title]) FROM movies WHERE year > 2000 \
ORDER BY box_office DESC, title LIMIT 10 OFFSET 5";
        let rewritten = rewrite(sql).expect("rewritten");
        assert!(
            rewritten.contains("QUALIFY row_number() OVER (ORDER BY box_office DESC, title) <= 15"),
            "{rewritten}"
        );
        assert!(rewritten.ends_with("ORDER BY box_office DESC, title LIMIT 10 OFFSET 5"), "{rewritten}");
    }

    #[test]
    fn shapes_where_the_order_or_rows_depend_on_the_select_list_are_left_alone() {
        for sql in [
            "SELECT llm_score('q', 'x', [t]) AS s FROM t ORDER BY s DESC LIMIT 3",
            "SELECT t, llm_map('q', 'x', [t]) FROM t ORDER BY 1 LIMIT 3",
            "SELECT DISTINCT llm_map('q', 'x', [t]) FROM t ORDER BY t LIMIT 3",
            "SELECT count(*), llm_map('q', 'x', [max(t)]) FROM t ORDER BY 1 LIMIT 3",
            "SELECT t, llm_map('q', 'x', [t]) FROM t ORDER BY t",
            "SELECT t FROM t ORDER BY t LIMIT 3",
            "SELECT t, llm_map('q', 'x', [t]) FROM t GROUP BY t ORDER BY t LIMIT 3",
            "SELECT t, llm_map('q', 'x', [t]) FROM t ORDER BY llm_score('q', 'y', [t]) LIMIT 3",
        ] {
            assert_eq!(rewrite(sql), None, "{sql}");
        }
    }
}
