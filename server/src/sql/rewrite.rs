//! The rewrite of LLM operator calls from the form users write into the form the
//! DuckDB functions take ([`crate::operators::call`]): the template's placeholders
//! resolved to the columns in scope (or the explicit field arguments taken), the
//! labels or list argument checked, and the query's id passed along.

use std::ops::ControlFlow;

use sqlparser::{
    ast::{
        Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectNamePart, Statement, Value,
        VisitMut, VisitorMut,
    },
    dialect::DuckDbDialect,
    parser::Parser,
};

use super::{quote_literal, quote_name};
use crate::{
    error::{Error, Result},
    operators::{call, template::placeholders, Operator, OwnArgument},
};

/// Rewrites every operator call in `statement`; returns the operators found.
pub(super) fn rewrite_calls(statement: &mut Statement, query_id: &str) -> Result<Vec<Operator>> {
    let mut rewriter = Rewriter { query_id, found: Vec::new() };
    match statement.visit(&mut rewriter) {
        ControlFlow::Break(error) => Err(error),
        ControlFlow::Continue(()) => Ok(rewriter.found),
    }
}

struct Rewriter<'a> {
    query_id: &'a str,
    found: Vec<Operator>,
}

impl VisitorMut for Rewriter<'_> {
    type Break = Error;

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Error> {
        let Expr::Function(function) = expr else { return ControlFlow::Continue(()) };
        let Some(ObjectNamePart::Identifier(ident)) = function.name.0.last() else {
            return ControlFlow::Continue(());
        };
        let Some(op) = Operator::from_name(&ident.value) else { return ControlFlow::Continue(()) };
        if function.name.0.len() != 1 {
            // `main.llm_filter(...)` would reach the DuckDB function unrewritten, with
            // arguments of the caller's choosing.
            return ControlFlow::Break(misuse(op, "call it by its name alone, without a schema"));
        }
        match rewrite_one(op, function, self.query_id) {
            Ok(()) => {
                self.found.push(op);
                ControlFlow::Continue(())
            }
            Err(e) => ControlFlow::Break(e),
        }
    }
}

fn misuse(op: Operator, problem: &str) -> Error {
    Error::RejectedSql(format!("{}: {problem}; example: {}", op.name(), op.example()))
}

pub(super) fn parse_expr(sql: &str) -> Result<Expr> {
    Parser::new(&DuckDbDialect {})
        .try_with_sql(sql)
        .and_then(|mut parser| parser.parse_expr())
        .map_err(|e| Error::internal_from(format!("operator rewrite produced invalid SQL {sql:?}: {e}"), e))
}

fn string_literal(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Value(value) => match &value.value {
            Value::SingleQuotedString(s) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

fn rewrite_one(op: Operator, function: &mut Function, query_id: &str) -> Result<()> {
    let FunctionArguments::List(list) = &function.args else {
        return Err(misuse(op, "takes arguments"));
    };
    if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
        return Err(misuse(op, "DISTINCT, ORDER BY or other clauses are not supported in the call"));
    }
    let mut args = Vec::with_capacity(list.args.len());
    for arg in &list.args {
        match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => args.push(expr.clone()),
            _ => return Err(misuse(op, "takes positional arguments only")),
        }
    }
    let Some(template) = args.first().and_then(string_literal).map(str::to_string) else {
        return Err(misuse(op, "the first argument must be a string literal template"));
    };
    let mut rest = args.split_off(1);

    let own_argument = match op.own_argument() {
        OwnArgument::None => None,
        OwnArgument::Labels => {
            if rest.is_empty() {
                return Err(misuse(op, "the second argument must be the labels, e.g. ['yes', 'no']"));
            }
            let labels = rest.remove(0);
            Some(match string_literal(&labels) {
                Some(text) => {
                    let items: Vec<String> =
                        text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(quote_literal).collect();
                    if items.len() < 2 {
                        return Err(misuse(op, "give at least two labels"));
                    }
                    format!("[{}]", items.join(", "))
                }
                None => format!("CAST({labels} AS VARCHAR[])"),
            })
        }
        OwnArgument::List => {
            if rest.is_empty() {
                return Err(misuse(op, "the second argument must be a list, e.g. list(review)"));
            }
            let items = rest.remove(0);
            Some(format!("CAST({items} AS VARCHAR[])"))
        }
    };

    let names = placeholders(&template);
    let field_sql: Vec<String> = if rest.is_empty() {
        names.iter().map(|name| format!("CAST({} AS VARCHAR)", quote_name(name))).collect()
    } else {
        if !names.is_empty() && names.len() != rest.len() {
            return Err(misuse(
                op,
                &format!(
                    "the template has {} placeholders but {} field arguments were given",
                    names.len(),
                    rest.len()
                ),
            ));
        }
        rest.iter().map(|expr| format!("CAST({expr} AS VARCHAR)")).collect()
    };
    let call = parse_expr(&call::encode(op, query_id, &template, own_argument, &field_sql))?;
    let Expr::Function(rewritten) = call else {
        return Err(Error::internal("operator rewrite did not produce a function call"));
    };
    function.name = rewritten.name;
    function.args = rewritten.args;
    Ok(())
}
