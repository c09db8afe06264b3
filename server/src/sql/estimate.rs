//! What a query's LLM operators will cost, worked out before it runs. For every
//! operator call, in the SELECT it belongs to, this derives a *reach query*: SQL
//! without operators that counts the call's distinct inputs over the same FROM and
//! the operator-free WHERE conjuncts (what the executor's memo would ask), with the
//! characters of those inputs, and for `llm_reduce` and `llm_rank` the calls their
//! parts and windows make per group. The executor runs these counts (or asks
//! DuckDB's planner, when a count would itself call an operator or takes too long)
//! and turns them into calls and tokens with [`tokens`].
//!
//! The counts are upper bounds where an operator's rows are cut later (another
//! operator's filter, HAVING, a short circuit); the response cache is not
//! consulted, so cached answers make the actual spend lower.

use std::{collections::BTreeSet, ops::ControlFlow};

use sqlparser::ast::{
    visit_expressions, visit_expressions_mut, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, InTarget,
    JoinConstraint, JoinOperator, LimitClause, OrderByKind, Query, Select, SelectItem, SetExpr, Statement, Value,
    Visit, Visitor, With,
};

use super::{
    collect::conjuncts,
    topk::{function_name, ungrouped, AGGREGATES},
};
use crate::operators::{prompts, Kind, Operator, Request};

/// How one operator call's inputs are counted.
#[derive(Debug, Clone, PartialEq)]
pub struct Reach {
    pub operator: Operator,
    /// The call's template (for constant operators, the whole input).
    pub template: String,
    /// One row of `inputs`, `calls`, `chars` (prompt characters over all calls);
    /// `None` for a constant operator (one call).
    pub count_sql: Option<String>,
    /// The inputs' rows, for DuckDB's cardinality estimate (`EXPLAIN`).
    pub rows_sql: Option<String>,
    /// Whether running `count_sql` would call an LLM operator itself (then only
    /// the planner's estimate is used).
    pub calls_operators: bool,
    /// A top-level LIMIT that caps the rows reaching the call.
    pub limit: Option<u64>,
}

/// The evaluation settings the counts depend on.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub rank_window: usize,
    /// Characters one `llm_reduce` call takes before it reduces in parts.
    pub reduce_chunk_chars: usize,
}

/// The reach of every operator call in `statement` (checked and rewritten, before
/// the guard's CASE wrapping), once per distinct call per SELECT.
pub fn reaches(statement: &Statement, settings: Settings) -> Vec<Reach> {
    let Statement::Query(top) = statement else { return Vec::new() };
    let mut queries = Queries(Vec::new());
    let _ = statement.visit(&mut queries);
    let mut out = Vec::new();
    for query in queries.0 {
        reaches_of_query(&query, top.with.as_ref(), settings, &mut out);
    }
    out
}

/// Every query node of a statement, nested ones included, each once.
struct Queries(Vec<Query>);

impl Visitor for Queries {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        self.0.push(query.clone());
        ControlFlow::Continue(())
    }
}

fn reaches_of_query(query: &Query, with: Option<&With>, settings: Settings, out: &mut Vec<Reach>) {
    // The query's own ORDER BY and LIMIT belong to its body when that is one SELECT.
    let mut selects = Vec::new();
    match query.body.as_ref() {
        SetExpr::Select(select) => {
            let order: Vec<Expr> = match &query.order_by {
                Some(order_by) => match &order_by.kind {
                    OrderByKind::Expressions(keys) => keys.iter().map(|k| k.expr.clone()).collect(),
                    _ => Vec::new(),
                },
                None => Vec::new(),
            };
            selects.push((select.as_ref(), order, limit_of(query)));
        }
        body => collect_selects(body, &mut selects),
    }
    for (select, order, limit) in selects {
        reaches_of_select(select, &order, limit, with, settings, out);
    }
}

/// The SELECTs of a set operation (nested queries are visited on their own).
fn collect_selects<'a>(body: &'a SetExpr, out: &mut Vec<(&'a Select, Vec<Expr>, Option<u64>)>) {
    match body {
        SetExpr::Select(select) => out.push((select, Vec::new(), None)),
        SetExpr::SetOperation { left, right, .. } => {
            collect_selects(left, out);
            collect_selects(right, out);
        }
        _ => {}
    }
}

fn limit_of(query: &Query) -> Option<u64> {
    let Some(LimitClause::LimitOffset { limit: Some(limit), offset, limit_by }) = &query.limit_clause else { return None };
    if !limit_by.is_empty() {
        return None;
    }
    let offset = match offset {
        Some(offset) => number(&offset.value)?,
        None => 0,
    };
    Some(number(limit)? + offset)
}

fn number(expr: &Expr) -> Option<u64> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

fn operator_of(expr: &Expr) -> Option<Operator> {
    function_name(expr).and_then(|name| Operator::from_name(&name))
}

/// Operator calls anywhere in `expr`, subqueries included.
fn all_calls(expr: &Expr) -> Vec<Expr> {
    let mut found = Vec::new();
    let _ = visit_expressions(expr, |e| {
        if operator_of(e).is_some() {
            found.push(e.clone());
        }
        ControlFlow::<()>::Continue(())
    });
    found
}

/// Operator calls of `expr` itself: those inside its subqueries belong to them.
fn local_calls(expr: &Expr) -> Vec<Expr> {
    let mut without_subqueries = expr.clone();
    let _ = visit_expressions_mut(&mut without_subqueries, |e| {
        match e {
            Expr::Subquery(_) | Expr::Exists { .. } => *e = Expr::Value(Value::Null.into()),
            Expr::In { target, .. } if matches!(target, InTarget::Subquery(_)) => *target = InTarget::List(Vec::new()),
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    all_calls(&without_subqueries)
}

fn has_operator(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    Operator::ALL.iter().any(|op| lower.contains(&format!("{}(", op.name())))
}

/// The plain arguments of a call, as SQL.
fn arguments(call: &Expr) -> Option<Vec<String>> {
    let Expr::Function(function) = call else { return None };
    let FunctionArguments::List(list) = &function.args else { return None };
    list.args
        .iter()
        .map(|arg| match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.to_string()),
            _ => None,
        })
        .collect()
}

fn template_of(call: &Expr) -> String {
    arguments(call)
        .and_then(|args| args.get(1).cloned())
        .map(|t| t.trim_matches('\'').replace("''", "'"))
        .unwrap_or_default()
}

fn reaches_of_select(
    select: &Select,
    order: &[Expr],
    limit: Option<u64>,
    with: Option<&With>,
    settings: Settings,
    out: &mut Vec<Reach>,
) {
    let projected: Vec<&Expr> = select
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
            _ => None,
        })
        .collect();
    let group_keys: Vec<&Expr> = match &select.group_by {
        GroupByExpr::Expressions(exprs, _) => exprs.iter().collect(),
        GroupByExpr::All(_) => Vec::new(),
    };
    let mut elsewhere: Vec<&Expr> = projected.clone();
    elsewhere.extend(group_keys.iter().copied());
    elsewhere.extend(select.having.iter());
    elsewhere.extend(select.qualify.iter());
    elsewhere.extend(order.iter());
    let join_conditions: Vec<&Expr> = select
        .from
        .iter()
        .flat_map(|t| t.joins.iter())
        .filter_map(|join| match &join.join_operator {
            JoinOperator::Join(JoinConstraint::On(e))
            | JoinOperator::Inner(JoinConstraint::On(e))
            | JoinOperator::Left(JoinConstraint::On(e))
            | JoinOperator::LeftOuter(JoinConstraint::On(e))
            | JoinOperator::Right(JoinConstraint::On(e))
            | JoinOperator::RightOuter(JoinConstraint::On(e))
            | JoinOperator::FullOuter(JoinConstraint::On(e)) => Some(e),
            _ => None,
        })
        .collect();
    elsewhere.extend(join_conditions);

    let mut where_parts = Vec::new();
    if let Some(selection) = &select.selection {
        conjuncts(selection, &mut where_parts);
    }
    // The conjuncts that cut rows before any operator: those with no operator at all.
    let plain: Vec<String> = where_parts.iter().filter(|p| all_calls(p).is_empty()).map(|p| format!("({p})")).collect();
    let in_where: Vec<Expr> = where_parts.iter().flat_map(local_calls).collect();
    let in_elsewhere: Vec<Expr> = elsewhere.iter().flat_map(|e| local_calls(e)).collect();
    if in_where.is_empty() && in_elsewhere.is_empty() {
        return;
    }
    let only_projected = in_where.is_empty()
        && elsewhere.len() == projected.len()
        && order.is_empty()
        && ungrouped(select)
        && select.distinct.is_none()
        && !projected.iter().any(|e| contains_aggregate(e));
    let limit = limit.filter(|_| only_projected);
    // The QUALIFY that `topk` adds picks the LIMIT's rows before the select list.
    let qualify = select
        .qualify
        .as_ref()
        .filter(|q| in_where.is_empty() && all_calls(q).is_empty())
        .map(|q| format!(" QUALIFY {q}"))
        .unwrap_or_default();
    let from: Vec<String> = select.from.iter().map(ToString::to_string).collect();
    let from_sql = if from.is_empty() { String::new() } else { format!(" FROM {}", from.join(", ")) };
    let where_sql = if plain.is_empty() { String::new() } else { format!(" WHERE {}", plain.join(" AND ")) };
    let group_sql = resolved_group_keys(select, &projected);

    let mut seen = BTreeSet::new();
    for call in in_where.iter().chain(in_elsewhere.iter()) {
        let Some(operator) = operator_of(call) else { continue };
        if !seen.insert(call.to_string()) {
            continue;
        }
        let template = template_of(call);
        let args = arguments(call).unwrap_or_default();
        let (rows_sql, count_sql) = match operator.kind() {
            Kind::Constant => (None, None),
            Kind::RowWise => {
                let rows = format!(
                    "SELECT DISTINCT CAST(row({}) AS VARCHAR) AS tag_input{from_sql}{where_sql}{qualify}",
                    args.join(", ")
                );
                let count = format!(
                    "SELECT count(*) AS inputs, count(*) AS calls, coalesce(sum(length(tag_input)), 0) AS chars FROM ({rows}) AS tag_inputs"
                );
                (Some(rows), Some(count))
            }
            Kind::Group => {
                let Some(own) = args.get(2) else { continue };
                let group = match &group_sql {
                    Some(keys) if !keys.is_empty() => format!(" GROUP BY {}", keys.join(", ")),
                    Some(_) => String::new(),
                    None => continue,
                };
                let rows = format!("SELECT {own} AS tag_items{from_sql}{where_sql}{group}");
                let per_group = format!(
                    "SELECT coalesce(len(tag_items), 0) AS n, coalesce(length(array_to_string(tag_items, ' ')), 0) + {} AS c FROM ({rows}) AS tag_groups",
                    template.len()
                );
                let (calls, chars) = group_calls(operator, settings);
                let count = format!(
                    "SELECT count(*) AS inputs, coalesce(sum({calls}), 0) AS calls, coalesce(sum({chars}), 0) AS chars FROM ({per_group}) AS tag_sizes"
                );
                (Some(rows), Some(count))
            }
        };
        let with_sql = with.map(|w| ctes_needed(w, count_sql.as_deref().unwrap_or(""))).unwrap_or_default();
        let count_sql = count_sql.map(|sql| format!("{with_sql}{sql}"));
        let rows_sql = rows_sql.map(|sql| format!("{with_sql}{sql}"));
        let calls_operators = count_sql.as_deref().is_some_and(has_operator);
        out.push(Reach { operator, template, count_sql, rows_sql, calls_operators, limit });
    }
}

fn contains_aggregate(expr: &Expr) -> bool {
    let mut found = false;
    let _ = visit_expressions(expr, |e| {
        if matches!(e, Expr::Function(f) if f.over.is_some())
            || function_name(e).is_some_and(|n| AGGREGATES.contains(&n.as_str()))
        {
            found = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    found
}

/// The GROUP BY keys as expressions over the FROM (positions and select-list
/// aliases resolved, `GROUP BY ALL` expanded); `None` when they cannot be.
fn resolved_group_keys(select: &Select, projected: &[&Expr]) -> Option<Vec<String>> {
    let aliases: Vec<(String, &Expr)> = select
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::ExprWithAlias { expr, alias } => Some((alias.value.to_ascii_lowercase(), expr)),
            _ => None,
        })
        .collect();
    match &select.group_by {
        GroupByExpr::All(_) => Some(
            projected.iter().filter(|e| !contains_aggregate(e) && all_calls(e).is_empty()).map(|e| e.to_string()).collect(),
        ),
        GroupByExpr::Expressions(exprs, _) => exprs
            .iter()
            .map(|key| {
                let key = match key {
                    Expr::Value(_) => projected.get(number(key)?.checked_sub(1)? as usize).copied()?,
                    Expr::Identifier(ident) => aliases
                        .iter()
                        .find(|(alias, _)| *alias == ident.value.to_ascii_lowercase())
                        .map(|(_, e)| *e)
                        .unwrap_or(key),
                    other => other,
                };
                (all_calls(key).is_empty()).then(|| key.to_string())
            })
            .collect(),
    }
}

/// Per group of `n` items and `c` characters: the calls a group operator makes,
/// and the prompt characters they carry (SQL over the columns `n` and `c`).
fn group_calls(operator: Operator, settings: Settings) -> (String, String) {
    match operator {
        Operator::Rank => {
            let window = settings.rank_window.max(2);
            let stride = (window / 2).max(1);
            let calls = format!(
                "CASE WHEN n < 2 THEN 0 WHEN n <= {window} THEN 1 ELSE 1 + CAST(ceil((n - {window}) / {stride}) AS BIGINT) END"
            );
            let chars = format!("CAST(({calls}) * least(n, {window}) * c / greatest(n, 1) AS BIGINT)");
            (calls, chars)
        }
        _ => {
            let limit = settings.reduce_chunk_chars.max(1);
            // Parts of about `limit` characters, then one call over their partial results.
            let calls = format!("CASE WHEN c <= {limit} OR n <= 1 THEN 1 ELSE CAST(ceil(c / {limit}) AS BIGINT) + 1 END");
            let chars = format!("c + (({calls}) - 1) * {PARTIAL_CHARS}");
            (calls, chars)
        }
    }
}

/// Characters of one partial result of a reduce in parts.
const PARTIAL_CHARS: usize = 400;

/// The `WITH` clause with only the common table expressions `sql` needs
/// (transitively), so an unrelated CTE's operator is not run by a count.
fn ctes_needed(with: &With, sql: &str) -> String {
    let lower = |s: &str| s.to_ascii_lowercase();
    let mut needed: Vec<bool> = vec![false; with.cte_tables.len()];
    let mut texts = vec![lower(sql)];
    loop {
        let mut changed = false;
        for (i, cte) in with.cte_tables.iter().enumerate() {
            let name = lower(&cte.alias.name.value);
            if !needed[i] && texts.iter().any(|t| mentions(t, &name)) {
                needed[i] = true;
                texts.push(lower(&cte.query.to_string()));
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let kept: Vec<String> = with.cte_tables.iter().zip(&needed).filter(|(_, n)| **n).map(|(c, _)| c.to_string()).collect();
    if kept.is_empty() {
        return String::new();
    }
    format!("WITH {}{} ", if with.recursive { "RECURSIVE " } else { "" }, kept.join(", "))
}

/// Whether `text` names `name` as a whole word.
fn mentions(text: &str, name: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(name).any(|(at, _)| {
        let before = text[..at].chars().next_back().is_none_or(|c| !word(c));
        let after = text[at + name.len()..].chars().next().is_none_or(|c| !word(c));
        before && after
    })
}

/// Estimated tokens of `calls` calls of `op` carrying `chars` characters of input:
/// the system text and the operator's prompt around the data, about four
/// characters a token, plus the answer's expected length.
pub fn tokens(op: Operator, calls: u64, chars: u64, operator_max_tokens: u32, rank_window: usize) -> u64 {
    let empty = Request { template: "", labels: &[], data: "", items: 0 };
    let overhead = (prompts::SYSTEM.len() + op.prompt(&empty).len()) as u64;
    let completion: u64 = match op {
        Operator::Filter => 1,
        Operator::Score | Operator::Classify => 3,
        Operator::Rank => 3 * rank_window as u64,
        Operator::Map | Operator::Knowledge => 24,
        Operator::Reduce => 120,
    };
    let completion = completion.min(operator_max_tokens as u64);
    (chars + calls * overhead).div_ceil(CHARS_PER_TOKEN) + calls * completion
}

/// Characters per token of English text in common tokenizers.
pub const CHARS_PER_TOKEN: u64 = 4;

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: Settings = Settings { rank_window: 10, reduce_chunk_chars: 6000 };

    fn reach(sql: &str) -> Vec<Reach> {
        let mut statements = sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::DuckDbDialect {}, sql).unwrap();
        let mut statement = statements.remove(0);
        crate::sql::rewrite::rewrite_calls(&mut statement, "q").unwrap();
        reaches(&statement, SETTINGS)
    }

    #[test]
    fn a_filter_counts_the_inputs_the_other_conjuncts_keep() {
        let r = reach("SELECT title FROM movies WHERE year < 1960 AND llm_filter('{title} is a classic')");
        assert_eq!(r.len(), 1);
        let sql = r[0].count_sql.as_deref().unwrap();
        assert!(sql.contains("FROM movies WHERE (year < 1960)"), "{sql}");
        assert!(!r[0].calls_operators && r[0].limit.is_none());
    }

    #[test]
    fn a_projection_under_a_limit_is_capped_and_group_operators_count_groups() {
        let r = reach("SELECT llm_map('Tagline for {title}') FROM movies LIMIT 10");
        assert_eq!(r[0].limit, Some(10));
        let r = reach("SELECT genres, llm_reduce('Summarize', list(title)) FROM movies GROUP BY 1");
        let sql = r[0].count_sql.as_deref().unwrap();
        assert!(sql.contains("GROUP BY genres"), "{sql}");
        let r = reach("SELECT title FROM movies ORDER BY llm_score('{title}') DESC LIMIT 5");
        assert_eq!(r[0].limit, None, "a score in ORDER BY sees every row");
    }

    #[test]
    fn nested_and_common_table_operators_are_found_and_never_run_by_a_count() {
        let r = reach(
            "WITH f AS (SELECT * FROM movies WHERE llm_filter('{title} is a comedy')), g AS (SELECT 1 AS x) \
             SELECT llm_map('{title}') FROM f WHERE year IN (SELECT year FROM movies WHERE llm_filter('{genres}'))",
        );
        assert_eq!(r.len(), 3, "{r:#?}");
        let map = r.iter().find(|x| x.operator == Operator::Map).unwrap();
        assert!(map.calls_operators, "counting the map would run the CTE's filter");
        assert!(!map.count_sql.as_deref().unwrap().contains("g AS"), "unrelated CTEs are left out");
        let filters: Vec<&Reach> = r.iter().filter(|x| x.operator == Operator::Filter).collect();
        assert!(filters.iter().all(|f| !f.calls_operators), "{filters:#?}");
        assert_eq!(reach("SELECT llm_knowledge('capital of France')")[0].count_sql, None);
    }

    #[test]
    fn tokens_grow_with_calls_and_input() {
        let one = tokens(Operator::Filter, 1, 40, 256, 10);
        assert!(tokens(Operator::Filter, 10, 400, 256, 10) >= 10 * one - 10);
        assert!(tokens(Operator::Reduce, 1, 40, 256, 10) > one);
    }
}
