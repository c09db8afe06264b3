//! What the catalog queries of PostgreSQL clients need beyond DuckDB's own
//! `pg_catalog` views, rewritten before the statement is checked and run:
//! functions called with their `pg_catalog.` qualifier (DuckDB resolves them
//! unqualified), `OPERATOR(pg_catalog.~)` and `COLLATE pg_catalog.default` (psql's
//! name patterns), and the catalog functions DuckDB lacks, answered with the value
//! they have here (there is one owner, no serial sequences, no extension types).
//! Only function calls are touched; literals, identifiers and the rest of the
//! statement stay as written.

use pgwire::error::PgWireResult;
use sqlparser::tokenizer::{Token, Whitespace};

use super::params::tokens;

/// Functions DuckDB does not have, and the SQL of their value here.
const CONSTANTS: &[(&str, &str)] = &[
    // The owner of every table (psql's \dt, \d).
    ("pg_get_userbyid", "'tag-server'"),
    // Types by name: none beyond the built-in ones (SQLAlchemy's hstore lookup).
    ("to_regtype", "CAST(NULL AS BIGINT)"),
    // No column is backed by a sequence (SQLAlchemy's get_columns).
    ("pg_get_serial_sequence", "CAST(NULL AS VARCHAR)"),
];

fn is_blank(token: &Token) -> bool {
    matches!(token, Token::Whitespace(Whitespace::Space | Whitespace::Newline | Whitespace::Tab))
}

fn word(token: &Token) -> Option<String> {
    match token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_lowercase()),
        _ => None,
    }
}

/// The index of the next token after `i` that is not blank.
fn next_solid(tokens: &[Token], mut i: usize) -> Option<usize> {
    i += 1;
    while i < tokens.len() && is_blank(&tokens[i]) {
        i += 1;
    }
    (i < tokens.len()).then_some(i)
}

/// The index of the parenthesis closing the one at `open`.
fn closing(tokens: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, token) in tokens.iter().enumerate().skip(open) {
        match token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `sql` as DuckDB can answer it; unchanged unless it calls a `pg_` function.
pub fn rewrite(sql: &str) -> PgWireResult<String> {
    if !sql.to_ascii_lowercase().contains("pg_") {
        return Ok(sql.to_string());
    }
    let tokens = tokens(sql)?;
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i];
        let call = |name_at: usize| next_solid(&tokens, name_at).filter(|&p| tokens[p] == Token::LParen);
        // pg_catalog.f( -> f(
        if word(token).as_deref() == Some("pg_catalog") && tokens.get(i + 1) == Some(&Token::Period) {
            if let Some(name_at) = (i + 2 < tokens.len()).then_some(i + 2).filter(|&n| word(&tokens[n]).is_some() && call(n).is_some()) {
                i = name_at;
                continue;
            }
        }
        // OPERATOR(pg_catalog.~) -> ~
        if word(token).as_deref() == Some("operator") && tokens.get(i + 1) == Some(&Token::LParen) {
            if let Some(close) = closing(&tokens, i + 1) {
                let inner = &tokens[i + 2..close];
                let op_at = match inner {
                    [schema, Token::Period, ..] if word(schema).as_deref() == Some("pg_catalog") => 2,
                    _ => 0,
                };
                inner[op_at..].iter().for_each(|t| out.push_str(&t.to_string()));
                i = close + 1;
                continue;
            }
        }
        // COLLATE pg_catalog.default: DuckDB's default collation is the one meant.
        if word(token).as_deref() == Some("collate") {
            if let Some(schema) = next_solid(&tokens, i) {
                if word(&tokens[schema]).as_deref() == Some("pg_catalog") && tokens.get(schema + 1) == Some(&Token::Period) {
                    if tokens.get(schema + 2).is_some_and(|t| matches!(t, Token::Word(w) if w.value.eq_ignore_ascii_case("default"))) {
                        i = schema + 3;
                        continue;
                    }
                }
            }
        }
        if let Some(name) = word(token) {
            if let (Some((_, value)), Some(open)) = (CONSTANTS.iter().find(|(f, _)| *f == name), call(i)) {
                if let Some(close) = closing(&tokens, open) {
                    out.push_str(value);
                    i = close + 1;
                    continue;
                }
            }
        }
        out.push_str(&token.to_string());
        i += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::rewrite;

    #[test]
    fn qualified_calls_and_missing_functions_are_rewritten_and_nothing_else() {
        assert_eq!(
            rewrite("SELECT pg_catalog.pg_get_userbyid(c.relowner) AS \"Owner\" FROM pg_catalog.pg_class c WHERE pg_catalog.pg_table_is_visible(c.oid)").unwrap(),
            "SELECT 'tag-server' AS \"Owner\" FROM pg_catalog.pg_class c WHERE pg_table_is_visible(c.oid)"
        );
        assert_eq!(rewrite("SELECT to_regtype('hstore'), pg_get_serial_sequence(f(a, (b)), 'x') + 1").unwrap(), "SELECT CAST(NULL AS BIGINT), CAST(NULL AS VARCHAR) + 1");
        assert_eq!(rewrite("SELECT 'pg_get_userbyid(1)', pg_get_userbyid FROM t").unwrap(), "SELECT 'pg_get_userbyid(1)', pg_get_userbyid FROM t", "a literal and a column stay");
        assert_eq!(rewrite("SELECT title FROM movies").unwrap(), "SELECT title FROM movies");
        assert_eq!(
            rewrite("WHERE c.relname OPERATOR(pg_catalog.~) '^(movies)$' COLLATE pg_catalog.default AND pg_catalog.pg_table_is_visible(c.oid)").unwrap(),
            "WHERE c.relname ~ '^(movies)$'  AND pg_table_is_visible(c.oid)"
        );
    }
}
