//! The SQL front end, between synthesis and execution. SQL from the LLM or from a
//! client is untrusted: it is parsed with sqlparser (DuckDB dialect), the whole tree
//! is walked against a read-only allow-list, and LLM operator calls are rewritten
//! into the form the DuckDB functions take (template placeholders resolved to
//! columns, the query's id passed along). What runs is the re-printed, checked tree,
//! never the original text, so a comment cannot smuggle a second statement in.

mod anchors;
pub mod collect;
pub mod estimate;
mod guard;
mod rewrite;
mod safety;
mod topk;

use sqlparser::{ast::Statement, dialect::DuckDbDialect, parser::Parser};

use crate::{
    error::{Error, Result},
    operators::Operator,
};

/// The name a database source is attached under in its dataset's DuckDB. SQL may
/// not name it: the dataset's tables are views over the included tables only.
pub const SOURCE_CATALOG: &str = "tag_source";

/// `name` as a quoted identifier, embedded quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A dotted name (`m.title`, `main.movies`) with each part quoted, so names with
/// spaces or keywords still work.
pub fn quote_name(dotted: &str) -> String {
    dotted.split('.').map(|part| quote_ident(part.trim())).collect::<Vec<_>>().join(".")
}

/// `text` as a SQL string literal.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A checked, rewritten query ready for DuckDB.
#[derive(Debug, Clone)]
pub struct CheckedSql {
    /// The SQL as written by the user or the LLM (trimmed), for display.
    pub original: String,
    /// The SQL DuckDB executes: re-printed from the checked tree, operators rewritten.
    pub executable: String,
    /// The LLM operators the query calls, in order of appearance.
    pub operators: Vec<Operator>,
    /// The query listing its one row-wise operator's distinct inputs, when the
    /// shape allows it (see [`collect`]).
    pub input_query: Option<collect::InputQuery>,
    /// The checked, rewritten tree before the guard's wrapping, from which the cost
    /// estimate derives its counts ([`estimate::reaches`]).
    pub tree: Statement,
}

/// Parses, checks and rewrites `sql`. `query_id` is passed to every LLM operator
/// call so that its callback finds this query's LLM context.
pub fn check(sql: &str, query_id: &str) -> Result<CheckedSql> {
    let original = sql.trim().trim_end_matches(';').trim().to_string();
    if original.is_empty() {
        return Err(Error::RejectedSql("the SQL is empty".into()));
    }
    let mut statements = Parser::parse_sql(&DuckDbDialect {}, &original)
        .map_err(|e| Error::RejectedSql(format!("cannot parse SQL: {e}")))?;
    if statements.len() != 1 {
        return Err(Error::RejectedSql(format!(
            "exactly one statement is allowed, found {}",
            statements.len()
        )));
    }
    let mut statement = statements.remove(0);
    if !matches!(statement, Statement::Query(_)) {
        return Err(Error::RejectedSql(format!(
            "only read-only queries (SELECT, WITH, VALUES) may run, not {}",
            statement_kind(&statement)
        )));
    }
    safety::check_read_only(&statement)?;
    let operators = rewrite::rewrite_calls(&mut statement, query_id)?;
    if !operators.is_empty() {
        anchors::anchor_where_operators(&mut statement, query_id)?;
        topk::limit_before_operators(&mut statement)?;
    }
    // The inputs are listed from the query as written; the guard below only makes
    // DuckDB respect the same cheap-first order.
    let input_query = if operators.is_empty() { None } else { collect::input_query(&statement) };
    let tree = statement.clone();
    if !operators.is_empty() {
        guard::guard_where_operators(&mut statement)?;
    }
    Ok(CheckedSql { original, executable: statement.to_string(), operators, input_query, tree })
}

/// The first keyword of a statement, for error messages.
fn statement_kind(statement: &Statement) -> String {
    let text = statement.to_string();
    text.split_whitespace().next().unwrap_or("statement").to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(sql: &str) -> String {
        match check(sql, "q1") {
            Err(Error::RejectedSql(message)) => message,
            other => panic!("{sql:?} was not rejected: {other:?}"),
        }
    }

    #[test]
    fn plain_selects_pass_unchanged() {
        for sql in [
            "SELECT title FROM movies WHERE year > 1990 ORDER BY revenue DESC LIMIT 5",
            "WITH t AS (SELECT 1 AS x) SELECT x FROM t",
            "SELECT * EXCLUDE (runtime) FROM movies",
            "SELECT genre, count(*) FROM movies GROUP BY ALL",
            "SELECT * FROM range(10)",
            "SELECT unnest([1, 2, 3])",
            "FROM movies SELECT title",
            "VALUES (1), (2)",
        ] {
            let checked = check(sql, "q1").unwrap_or_else(|e| panic!("{sql}: {e}"));
            assert!(checked.operators.is_empty());
        }
    }

    #[test]
    fn writes_and_side_effects_are_rejected() {
        let cases = [
            "DROP TABLE movies",
            "DELETE FROM movies",
            "INSERT INTO movies VALUES (1)",
            "UPDATE movies SET year = 1",
            "CREATE TABLE x AS SELECT 1",
            "SELECT 1; DROP TABLE movies",
            "WITH d AS (DELETE FROM movies RETURNING *) SELECT * FROM d",
            "COPY movies TO '/tmp/x.csv'",
            "ATTACH '/tmp/x.db' AS x",
            "INSTALL httpfs",
            "LOAD httpfs",
            "PRAGMA database_list",
            "SET threads = 1",
            "SELECT * FROM read_csv('/etc/passwd')",
            "SELECT * FROM read_parquet('x.parquet')",
            "SELECT * FROM 'data.csv'",
            "SELECT * FROM \"/etc/passwd\"",
            "SELECT read_text('/etc/passwd')",
            "SELECT * FROM glob('/*')",
            "SELECT getenv('HOME')",
            "SELECT * FROM query('DROP TABLE movies')",
            "SELECT * INTO copy_of_movies FROM movies",
            "SELECT 1 /* ; */ ; DELETE FROM movies",
            "",
            "   ;  ",
        ];
        for sql in cases {
            rejected(sql);
        }
    }

    #[test]
    fn comments_do_not_hide_statements() {
        let checked = check("SELECT 1 -- ; DROP TABLE movies", "q1").expect("a comment is harmless");
        assert!(!checked.executable.to_lowercase().contains("drop"));
    }

    #[test]
    fn operator_templates_resolve_to_columns() {
        let checked = check("SELECT title FROM movies WHERE llm_filter('{title} is a classic romance')", "q7").unwrap();
        assert_eq!(checked.operators, vec![Operator::Filter]);
        let sql = checked.executable;
        assert!(sql.contains("llm_filter('q7', '{title} is a classic romance', [CAST(\"title\" AS VARCHAR)])"), "{sql}");
    }

    #[test]
    fn explicit_arguments_and_qualified_names_work() {
        let sql = check("SELECT llm_map('Translate {x}', m.title) FROM movies m", "q").unwrap().executable;
        assert!(sql.contains("llm_map('q', 'Translate {x}', [CAST(m.title AS VARCHAR)])"), "{sql}");
        let sql = check("SELECT llm_map('{m.title}') FROM movies m", "q").unwrap().executable;
        assert!(sql.contains("[CAST(\"m\".\"title\" AS VARCHAR)]"), "{sql}");
        let message = rejected("SELECT llm_map('{a} and {b}', x) FROM t");
        assert!(message.contains("2 placeholders"), "{message}");
    }

    #[test]
    fn where_operators_are_anchored_to_the_join_keys() {
        let sql = check(
            "SELECT m.title FROM movies m JOIN reviews r ON r.movie_id = m.movie_id \
             WHERE m.year < 1960 AND llm_filter('{r.review_text} is negative')",
            "q",
        )
        .unwrap()
        .executable;
        assert!(
            sql.contains("llm_filter(CASE WHEN r.movie_id IS NULL AND m.movie_id IS NULL THEN 'q' ELSE 'q' END, "),
            "{sql}"
        );
        let sql = check("SELECT * FROM movies JOIN reviews USING (movie_id) WHERE llm_filter('{review_text}')", "q")
            .unwrap()
            .executable;
        assert!(sql.contains("CASE WHEN movies.movie_id IS NULL AND reviews.movie_id IS NULL"), "{sql}");
        let sql = check("SELECT * FROM a, b WHERE a.id = b.id AND llm_filter('{b.x}')", "q").unwrap().executable;
        assert!(sql.contains("CASE WHEN a.id IS NULL AND b.id IS NULL"), "{sql}");
        // One table, or an operator in the select list: nothing to anchor.
        let sql = check("SELECT llm_map('{title}') FROM movies m JOIN reviews r USING (movie_id) WHERE llm_filter('{title}')", "q")
            .unwrap()
            .executable;
        assert!(sql.starts_with("SELECT llm_map('q', "), "{sql}");
        let sql = check("SELECT title FROM movies WHERE llm_filter('{title}')", "q").unwrap().executable;
        assert!(sql.contains("llm_filter('q', "), "{sql}");
    }

    #[test]
    fn list_operators_and_labels_are_rewritten() {
        let sql = check("SELECT llm_reduce('Summarize the reviews', list(review)) FROM reviews", "q").unwrap().executable;
        assert!(sql.contains("llm_reduce('q', 'Summarize the reviews', CAST(list(review) AS VARCHAR[]), CAST([] AS VARCHAR[]))"), "{sql}");
        let sql = check("SELECT llm_classify('{review}', 'positive, negative') FROM reviews", "q").unwrap().executable;
        assert!(sql.contains("['positive', 'negative']"), "{sql}");
        let sql = check("SELECT llm_knowledge('Which year did WW2 end?')", "q").unwrap().executable;
        assert!(sql.contains("llm_knowledge('q', 'Which year did WW2 end?', CAST([] AS VARCHAR[]))"), "{sql}");
    }

    #[test]
    fn operator_misuse_is_explained() {
        assert!(rejected("SELECT llm_filter(title) FROM movies").contains("string literal"));
        assert!(rejected("SELECT llm_reduce('x') FROM movies").contains("list"));
        assert!(rejected("SELECT llm_classify('{title}') FROM movies").contains("labels"));
    }
}
