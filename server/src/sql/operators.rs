//! The LLM operators' SQL surface: which functions exist, how their arguments are
//! written by users, and the rewrite into the form the DuckDB callbacks take.
//!
//! Users write `llm_filter('{title} is a classic')`; DuckDB runs
//! `llm_filter('<query id>', '{title} is a classic', [CAST("title" AS VARCHAR)])`.
//! Every rewritten call has the same shape: query id, template, the operator's own
//! argument (labels or the list to reduce/rank, when it has one), then the row's
//! field values as a `VARCHAR[]` labelled by the template's placeholders.

use std::ops::ControlFlow;

use sqlparser::{
    ast::{
        Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectNamePart, Statement, Value,
        VisitMut, VisitorMut,
    },
    dialect::DuckDbDialect,
    parser::Parser,
};

use super::{quote_literal, quote_name, template::placeholders};
use crate::error::{Error, Result};

/// What the operator takes besides its template and the row's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorKind {
    /// `llm_filter`, `llm_map`, `llm_score`, `llm_knowledge`: template and fields.
    Row,
    /// `llm_classify`: template, labels, fields.
    Labels,
    /// `llm_reduce`, `llm_rank`: template, a LIST, fields.
    List,
}

/// One operator's reference entry, used by the rewrite and by the synthesis prompt.
pub struct OperatorSpec {
    pub name: &'static str,
    pub kind: OperatorKind,
    pub returns: &'static str,
    pub meaning: &'static str,
    pub example: &'static str,
}

pub const OPERATORS: &[OperatorSpec] = &[
    OperatorSpec {
        name: "llm_filter",
        kind: OperatorKind::Row,
        returns: "BOOLEAN",
        meaning: "true when the statement holds for the row (world knowledge or reading text)",
        example: "SELECT title FROM movies WHERE genres LIKE '%Romance%' AND llm_filter('{title} is considered a classic')",
    },
    OperatorSpec {
        name: "llm_map",
        kind: OperatorKind::Row,
        returns: "VARCHAR",
        meaning: "free text per row: extract, rewrite, translate, answer about the row",
        example: "SELECT title, llm_map('The country where {title} is mainly set') AS country FROM movies LIMIT 10",
    },
    OperatorSpec {
        name: "llm_classify",
        kind: OperatorKind::Labels,
        returns: "VARCHAR (one of the labels)",
        meaning: "one label out of a fixed list for the row",
        example: "SELECT llm_classify('Sentiment of {review_text}', ['positive', 'negative', 'mixed']) AS sentiment, count(*) FROM reviews GROUP BY 1",
    },
    OperatorSpec {
        name: "llm_score",
        kind: OperatorKind::Row,
        returns: "DOUBLE in 0..1",
        meaning: "graded relevance; ORDER BY it DESC LIMIT k for top-k",
        example: "SELECT title FROM movies ORDER BY llm_score('How family-friendly is {title}') DESC LIMIT 5",
    },
    OperatorSpec {
        name: "llm_reduce",
        kind: OperatorKind::List,
        returns: "VARCHAR",
        meaning: "one text over a group of values, e.g. a summary",
        example: "SELECT m.title, llm_reduce('Summarize the reviews', list(r.review_text)) FROM movies m JOIN reviews r USING (movie_id) WHERE m.title = 'Titanic' GROUP BY m.title",
    },
    OperatorSpec {
        name: "llm_rank",
        kind: OperatorKind::List,
        returns: "VARCHAR[] (the list, reordered)",
        meaning: "orders a list by a criterion, best first",
        example: "SELECT llm_rank('most romantic first', list(title)) FROM movies WHERE year < 1960",
    },
    OperatorSpec {
        name: "llm_knowledge",
        kind: OperatorKind::Row,
        returns: "VARCHAR",
        meaning: "one world-knowledge fact, asked once per query",
        example: "SELECT title FROM movies WHERE director = llm_knowledge('Who directed Jaws? Answer with the name only.')",
    },
];

pub fn find(name: &str) -> Option<&'static OperatorSpec> {
    OPERATORS.iter().find(|op| op.name.eq_ignore_ascii_case(name))
}

/// Rewrites every operator call in `statement`; returns the operators found.
pub(super) fn rewrite_calls(statement: &mut Statement, query_id: &str) -> Result<Vec<String>> {
    let mut rewriter = Rewriter { query_id, found: Vec::new() };
    match statement.visit(&mut rewriter) {
        ControlFlow::Break(error) => Err(error),
        ControlFlow::Continue(()) => Ok(rewriter.found),
    }
}

struct Rewriter<'a> {
    query_id: &'a str,
    found: Vec<String>,
}

impl VisitorMut for Rewriter<'_> {
    type Break = Error;

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Error> {
        let Expr::Function(function) = expr else { return ControlFlow::Continue(()) };
        let Some(ObjectNamePart::Identifier(ident)) = function.name.0.last() else {
            return ControlFlow::Continue(());
        };
        let Some(spec) = find(&ident.value) else { return ControlFlow::Continue(()) };
        if function.name.0.len() != 1 {
            return ControlFlow::Continue(());
        }
        match rewrite_one(spec, function, self.query_id) {
            Ok(()) => {
                self.found.push(spec.name.to_string());
                ControlFlow::Continue(())
            }
            Err(e) => ControlFlow::Break(e),
        }
    }
}

fn misuse(spec: &OperatorSpec, problem: &str) -> Error {
    Error::RejectedSql(format!("{}: {problem}; example: {}", spec.name, spec.example))
}

pub(super) fn parse_expr(sql: &str) -> Result<Expr> {
    Parser::new(&DuckDbDialect {})
        .try_with_sql(sql)
        .and_then(|mut parser| parser.parse_expr())
        .map_err(|e| Error::Internal(format!("operator rewrite produced invalid SQL {sql:?}: {e}")))
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

fn rewrite_one(spec: &OperatorSpec, function: &mut Function, query_id: &str) -> Result<()> {
    let FunctionArguments::List(list) = &function.args else {
        return Err(misuse(spec, "takes arguments"));
    };
    if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
        return Err(misuse(spec, "DISTINCT, ORDER BY or other clauses are not supported in the call"));
    }
    let mut args = Vec::with_capacity(list.args.len());
    for arg in &list.args {
        match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => args.push(expr.clone()),
            _ => return Err(misuse(spec, "takes positional arguments only")),
        }
    }
    let Some(template) = args.first().and_then(string_literal).map(str::to_string) else {
        return Err(misuse(spec, "the first argument must be a string literal template"));
    };
    let mut rest = args.split_off(1);

    let own_argument = match spec.kind {
        OperatorKind::Row => None,
        OperatorKind::Labels => {
            if rest.is_empty() {
                return Err(misuse(spec, "the second argument must be the labels, e.g. ['yes', 'no']"));
            }
            let labels = rest.remove(0);
            Some(match string_literal(&labels) {
                Some(text) => {
                    let items: Vec<String> =
                        text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(quote_literal).collect();
                    if items.len() < 2 {
                        return Err(misuse(spec, "give at least two labels"));
                    }
                    format!("[{}]", items.join(", "))
                }
                None => format!("CAST({labels} AS VARCHAR[])"),
            })
        }
        OperatorKind::List => {
            if rest.is_empty() {
                return Err(misuse(spec, "the second argument must be a list, e.g. list(review)"));
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
                spec,
                &format!(
                    "the template has {} placeholders but {} field arguments were given",
                    names.len(),
                    rest.len()
                ),
            ));
        }
        rest.iter().map(|expr| format!("CAST({expr} AS VARCHAR)")).collect()
    };
    let fields = if field_sql.is_empty() {
        "CAST([] AS VARCHAR[])".to_string()
    } else {
        format!("[{}]", field_sql.join(", "))
    };

    let mut new_args = vec![quote_literal(query_id), quote_literal(&template)];
    new_args.extend(own_argument);
    new_args.push(fields);
    let call = parse_expr(&format!("{}({})", spec.name, new_args.join(", ")))?;
    let Expr::Function(rewritten) = call else {
        return Err(Error::Internal("operator rewrite did not produce a function call".into()));
    };
    function.name = rewritten.name;
    function.args = rewritten.args;
    Ok(())
}
