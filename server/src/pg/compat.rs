//! PostgreSQL's spelling of a catalog query, as the catalog database of
//! [`super::catalog`] answers it: the `pg_catalog.` qualifier dropped (its tables
//! and functions are found unqualified there, before DuckDB's own `pg_catalog`),
//! `information_schema.x` as `information_schema_x`, `OPERATOR(pg_catalog.~)` as
//! `~` and `COLLATE pg_catalog.default` dropped (psql's name patterns), and a
//! regular expression literal after `~` or `!~` made to match anywhere in the
//! text, as PostgreSQL's does (DuckDB's `~` matches the whole text), and
//! `generate_series(..) s` given the column alias `s(s)` (PostgreSQL's `s` is then
//! the value, DuckDB's the row). A `regclass` cast names the relation: a
//! column's `x::regclass` becomes `tag_regclass_name(x)` (PostgreSQL prints it
//! as the table's name), a literal's `'movies'::regclass` becomes
//! `tag_regclass('movies')` (its oid). PostgreSQL functions DuckDB has under
//! another name are called by it ([`RENAMED`]). Other
//! literals and the rest of the statement stay as written.

use pgwire::error::PgWireResult;
use sqlparser::tokenizer::{Token, Whitespace};

use super::params::{render, tokens};

/// PostgreSQL's functions that DuckDB has under another name (variadic ones,
/// which a macro cannot be).
const RENAMED: &[(&str, &str)] = &[("json_build_object", "json_object"), ("jsonb_build_object", "json_object"), ("json_build_array", "json_array"), ("jsonb_build_array", "json_array")];

/// The call a `regclass` cast of `operand` becomes: a literal's oid
/// (`tag_regclass('movies')`), a column's relation name (`tag_regclass_name(c.oid)`);
/// `None` for any other operand.
fn regclass(operand: &[&Token]) -> Option<String> {
    let function = match operand {
        [Token::SingleQuotedString(_)] => "tag_regclass",
        [Token::Word(_), rest @ ..] if rest.chunks(2).all(|p| matches!(p, [Token::Period, Token::Word(_)])) => "tag_regclass_name",
        _ => return None,
    };
    let operand: String = operand.iter().map(|t| render(t)).collect();
    Some(format!("{function}({operand})"))
}

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

/// `sql` as the catalog database answers it.
pub fn rewrite(sql: &str) -> PgWireResult<String> {
    let tokens = tokens(sql)?;
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    // The flags of the regular expression operator just written, if one was.
    let mut regex: Option<&str> = None;
    // The index of a `generate_series` alias to repeat as its column's.
    let mut column_alias: Option<usize> = None;
    while i < tokens.len() {
        let token = &tokens[i];
        if let (Some(flags), Token::SingleQuotedString(pattern)) = (regex, token) {
            out.push_str(&render(&Token::SingleQuotedString(format!("(?{flags}).*(?:{pattern}).*"))));
            regex = None;
            i += 1;
            continue;
        }
        if !is_blank(token) {
            regex = None;
        }
        match token {
            Token::Tilde | Token::TildeAsterisk | Token::ExclamationMarkTilde | Token::ExclamationMarkTildeAsterisk => {
                let negated = matches!(token, Token::ExclamationMarkTilde | Token::ExclamationMarkTildeAsterisk);
                let insensitive = matches!(token, Token::TildeAsterisk | Token::ExclamationMarkTildeAsterisk);
                out.push_str(if negated { "!~" } else { "~" });
                regex = Some(if insensitive { "is" } else { "s" });
                i += 1;
                continue;
            }
            _ => {}
        }
        // A schema's name, quoted ("pg_catalog", as Metabase writes it) or not.
        let names = |schema: &str| match token {
            Token::Word(w) if w.quote_style == Some('"') => w.value == schema,
            _ => word(token).as_deref() == Some(schema),
        };
        let qualified = |schema: &str| names(schema) && tokens.get(i + 1) == Some(&Token::Period) && tokens.get(i + 2).is_some_and(|t| matches!(t, Token::Word(_)));
        // pg_catalog.x -> x
        if qualified("pg_catalog") {
            i += 2;
            continue;
        }
        // information_schema.x -> information_schema_x
        if qualified("information_schema") {
            if let Token::Word(name) = &tokens[i + 2] {
                let mut renamed = name.clone();
                renamed.value = format!("information_schema_{}", name.value);
                out.push_str(&render(&Token::Word(renamed)));
            }
            i += 3;
            continue;
        }
        // OPERATOR(pg_catalog.~) -> ~
        if word(token).as_deref() == Some("operator") && tokens.get(i + 1) == Some(&Token::LParen) {
            if let Some(close) = closing(&tokens, i + 1) {
                let inner = &tokens[i + 2..close];
                let op_at = match inner {
                    [schema, Token::Period, ..] if word(schema).as_deref() == Some("pg_catalog") => 2,
                    _ => 0,
                };
                match &inner[op_at..] {
                    [Token::Tilde] => regex = Some("s"),
                    [Token::ExclamationMarkTilde] => regex = Some("s"),
                    _ => {}
                }
                inner[op_at..].iter().for_each(|t| out.push_str(&render(t)));
                i = close + 1;
                continue;
            }
        }
        // x.y::regclass -> tag_regclass_name(x.y); 'name'::regclass -> tag_regclass('name')
        if matches!(token, Token::Word(_) | Token::SingleQuotedString(_)) && i.checked_sub(1).is_none_or(|p| tokens[p] != Token::Period) {
            let mut end = i;
            while matches!(token, Token::Word(_)) && tokens.get(end + 1) == Some(&Token::Period) && matches!(tokens.get(end + 2), Some(Token::Word(_))) {
                end += 2;
            }
            let cast_to = |at: usize| match (tokens.get(at), tokens.get(at + 1), tokens.get(at + 2), tokens.get(at + 3)) {
                (Some(Token::DoubleColon), Some(schema), Some(Token::Period), Some(name)) if word(schema).as_deref() == Some("pg_catalog") => word(name).map(|n| (n, at + 3)),
                (Some(Token::DoubleColon), Some(name), _, _) => word(name).map(|n| (n, at + 1)),
                _ => None,
            };
            if let Some((_, last)) = cast_to(end + 1).filter(|(name, _)| name == "regclass") {
                let operand: Vec<&Token> = tokens[i..=end].iter().collect();
                if let Some(call) = regclass(&operand) {
                    out.push_str(&call);
                    i = last + 1;
                    continue;
                }
            }
        }
        // CAST(x AS regclass), as x::regclass
        if word(token).as_deref() == Some("cast") {
            if let Some((open, close)) = next_solid(&tokens, i).filter(|&p| tokens[p] == Token::LParen).and_then(|open| Some((open, closing(&tokens, open)?))) {
                let inner: Vec<&Token> = tokens[open + 1..close].iter().filter(|t| !is_blank(t)).collect();
                let target = match inner.as_slice() {
                    [.., as_, schema, Token::Period, name] if word(schema).as_deref() == Some("pg_catalog") => (word(as_), word(name), inner.len() - 4),
                    [.., as_, name] => (word(as_), word(name), inner.len() - 2),
                    _ => (None, None, 0),
                };
                if let (Some(as_), Some(name), operand_len) = target {
                    if let Some(call) = (as_ == "as" && name == "regclass").then(|| regclass(&inner[..operand_len])).flatten() {
                        out.push_str(&call);
                        i = close + 1;
                        continue;
                    }
                }
            }
        }
        // generate_series(..) [AS] s -> generate_series(..) [AS] s(s)
        if word(token).as_deref() == Some("generate_series") {
            if let Some(close) = next_solid(&tokens, i).filter(|&p| tokens[p] == Token::LParen).and_then(|open| closing(&tokens, open)) {
                let mut alias = next_solid(&tokens, close);
                if alias.is_some_and(|a| word(&tokens[a]).as_deref() == Some("as")) {
                    alias = alias.and_then(|a| next_solid(&tokens, a));
                }
                let plain = |a: usize| matches!(&tokens[a], Token::Word(w) if w.keyword == sqlparser::keywords::Keyword::NoKeyword);
                if let Some(alias) = alias.filter(|&a| plain(a) && next_solid(&tokens, a).is_none_or(|n| tokens[n] != Token::LParen)) {
                    column_alias = Some(alias);
                }
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
        if let Some((_, renamed)) = word(token).and_then(|w| RENAMED.iter().find(|(from, _)| *from == w)) {
            if next_solid(&tokens, i).is_some_and(|p| tokens[p] == Token::LParen) {
                out.push_str(renamed);
                i += 1;
                continue;
            }
        }
        out.push_str(&render(token));
        if column_alias == Some(i) {
            out.push_str(&format!("({})", render(token)));
        }
        i += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::rewrite;

    #[test]
    fn qualifiers_operators_and_collations_are_rewritten_and_nothing_else() {
        assert_eq!(
            rewrite("SELECT pg_catalog.pg_get_userbyid(c.relowner) AS \"Owner\" FROM pg_catalog.pg_class c WHERE c.reloftype::pg_catalog.regtype::pg_catalog.text = ''").unwrap(),
            "SELECT pg_get_userbyid(c.relowner) AS \"Owner\" FROM pg_class c WHERE c.reloftype::regtype::text = ''"
        );
        assert_eq!(rewrite("SELECT 'it''s', E'a\\nb', \"a\"\"b\" FROM pg_class").unwrap(), "SELECT 'it''s', E'a\\nb', \"a\"\"b\" FROM pg_class", "quotes inside stay doubled");
        assert_eq!(rewrite("SELECT * FROM information_schema.columns WHERE table_name = 'information_schema.x'").unwrap(), "SELECT * FROM information_schema_columns WHERE table_name = 'information_schema.x'");
        assert_eq!(rewrite("SELECT 'pg_catalog.pg_class', \"PG_CATALOG\".x FROM \"pg_catalog\".\"pg_class\"").unwrap(), "SELECT 'pg_catalog.pg_class', \"PG_CATALOG\".x FROM \"pg_class\"", "a literal and another quoted name stay");
        assert_eq!(
            rewrite("WHERE c.relname OPERATOR(pg_catalog.~) '^(movies)$' COLLATE pg_catalog.default AND pg_catalog.pg_table_is_visible(c.oid)").unwrap(),
            "WHERE c.relname ~ '(?s).*(?:^(movies)$).*'  AND pg_table_is_visible(c.oid)"
        );
        assert_eq!(
            rewrite("SELECT a[s] FROM pg_catalog.generate_series(0, pg_catalog.array_upper(x, 1)) s, generate_series(1, 2) AS t WHERE 1 IN (SELECT * FROM generate_series(1, 2))").unwrap(),
            "SELECT a[s] FROM generate_series(0, array_upper(x, 1)) s(s), generate_series(1, 2) AS t(t) WHERE 1 IN (SELECT * FROM generate_series(1, 2))"
        );
        assert_eq!(
            rewrite("SELECT conrelid::pg_catalog.regclass AS ontable, r.x::regclass, 'main.movies'::regclass, a.b::regtype FROM r WHERE r.oid = '16386'::regclass").unwrap(),
            "SELECT tag_regclass_name(conrelid) AS ontable, tag_regclass_name(r.x), tag_regclass('main.movies'), a.b::regtype FROM r WHERE r.oid = tag_regclass('16386')"
        );
        assert_eq!(
            rewrite("WHERE d.classoid = CAST('pg_catalog.pg_class' AS REGCLASS) AND CAST(c.oid AS pg_catalog.regclass) = 1 AND CAST(x AS INT) = 2").unwrap(),
            "WHERE d.classoid = tag_regclass('pg_catalog.pg_class') AND tag_regclass_name(c.oid) = 1 AND CAST(x AS INT) = 2"
        );
        assert_eq!(rewrite("WHERE n.nspname !~ '^pg_' AND x ~* 'A''b' AND y ~ z").unwrap(), "WHERE n.nspname !~ '(?s).*(?:^pg_).*' AND x ~ '(?is).*(?:A''b).*' AND y ~ z");
    }
}
