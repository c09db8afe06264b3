//! The grammar of the SQL a model may write for a dataset, in GBNF (llama.cpp's
//! grammar format, which vLLM's `guided_grammar` also takes): a read-only subset of
//! DuckDB's SELECT (WITH, joins, subqueries, GROUP BY/HAVING, ORDER BY/LIMIT,
//! CASE, CAST, FILTER, window functions, list literals), where every table in a
//! FROM clause is one of the dataset's tables, every column reference one of its
//! columns (qualified or not), and every LLM operator call starts with a template
//! whose `{braces}` name real columns; other functions are DuckDB's common ones
//! ([`FUNCTIONS`]). What a context-free grammar cannot know is left open: names a
//! query defines itself (a CTE's name in FROM and its columns when qualified by a
//! name, inside a `WITH` query; an output alias in GROUP BY and ORDER BY). DuckDB's
//! checks and the allow-list still run on every query.
//!
//! The strict [`Scope`] leaves those out and bounds every list and literal
//! ([`STRICT_RULES`]): the embedded (small) model is held to the dataset's names
//! and to queries that end; servers' models get the full grammar.
//!
//! [`accepts`] reads a grammar back and tells whether a text is in its language;
//! the tests check every plan and gold query with it.

use std::collections::{BTreeSet, HashMap};

use crate::{catalog::DatasetInfo, llm::embedded::literal, operators::Operator};

/// Keywords, each written upper or lower case (`kw-select ::= "SELECT" | "select"`).
const KEYWORDS: &[&str] = &[
    "select", "distinct", "from", "where", "group", "by", "having", "order", "limit", "offset", "as", "and", "or", "not",
    "is", "null", "true", "false", "like", "ilike", "in", "between", "case", "when", "then", "else", "end", "cast",
    "try_cast", "asc", "desc", "nulls", "first", "last", "join", "left", "right", "full", "outer", "inner", "cross",
    "on", "using", "with", "union", "intersect", "except", "all", "exists", "filter", "over", "partition", "extract",
    "date", "timestamp", "interval",
];

/// The functions a query may call besides the LLM operators: DuckDB's common
/// aggregates, window and scalar functions (none reads files or the network),
/// written lower or upper case.
const FUNCTIONS: &[&str] = &[
    "count", "sum", "avg", "min", "max", "list", "array_agg", "string_agg", "group_concat", "median", "mode",
    "quantile_cont", "quantile_disc", "stddev", "stddev_pop", "stddev_samp", "variance", "var_pop", "var_samp", "corr",
    "any_value", "arg_max", "arg_min", "max_by", "min_by", "count_if", "bool_and", "bool_or", "first", "last",
    "approx_count_distinct", "histogram", "row_number", "rank", "dense_rank", "percent_rank", "ntile", "lag", "lead",
    "first_value", "last_value", "round", "abs", "ceil", "ceiling", "floor", "sqrt", "power", "pow", "exp", "ln",
    "log", "log10", "log2", "sign", "mod", "greatest", "least", "coalesce", "nullif", "ifnull", "lower", "upper",
    "length", "len", "strlen", "substr", "substring", "left", "right", "trim", "ltrim", "rtrim", "replace", "concat",
    "concat_ws", "lpad", "rpad", "reverse", "repeat", "position", "instr", "strpos", "contains", "starts_with",
    "ends_with", "split_part", "string_split", "regexp_extract", "regexp_matches", "regexp_replace", "format",
    "printf", "year", "month", "day", "quarter", "week", "weekday", "dayofweek", "dayofyear", "dayname",
    "monthname", "hour", "minute", "second", "date_part", "datepart", "date_trunc", "datetrunc", "date_diff",
    "datediff", "date_add", "age", "strftime", "strptime", "epoch", "make_date", "today", "current_date", "now",
    "list_contains", "list_sort", "list_distinct", "list_value", "array_length", "unnest", "typeof", "hash",
];

/// The dataset-independent rules; `table`, `column`, `column-raw`, `op-name` and
/// the keywords are added per dataset.
const RULES: &str = r#"o-with-query ::= kw-with sp o-cte (ws "," ws o-cte)* sp o-query
o-cte ::= ident sp kw-as ws "(" ws o-query ws ")"
o-derived-query ::= kw-select sp (kw-distinct sp)? o-select-list sp kw-from sp "(" ws o-query ws ")" (sp (kw-as sp)? ident)? o-join* o-where? o-group-by? o-having? (sp set-op sp o-select-body)* o-order-by? o-limit?
set-op ::= (kw-union | kw-intersect | kw-except) (sp kw-all)?
join-kind ::= ((kw-left | kw-right | kw-full) (sp kw-outer)? sp | kw-inner sp | kw-cross sp)?
cmp-op ::= "=" | "!=" | "<>" | "<=" | ">=" | "<" | ">"
type ::= ident (ws "(" ws [0-9]+ (ws "," ws [0-9]+)? ws ")")? ("[]")?
number ::= [0-9]+ ("." [0-9]+)? | "." [0-9]+
string ::= "'" ([^'] | "''")* "'"
ident ::= [a-zA-Z_] [a-zA-Z0-9_]* | "\"" [^"]+ "\""
qualifier ::= table | alias
alias ::= [a-z] [a-z0-9_]? [a-z0-9_]?
o-qualifier ::= ident
o-alias ::= ident
template-text ::= [^'{}]
o-column ::= column | ident
o-table ::= table | ident
o-column-raw ::= column-raw | [a-zA-Z_] [a-zA-Z0-9_]*
sp ::= " " | "\n" [ \t]*
ws ::= sp?
"#;

/// The rules of a query and its expressions, over the dataset's names (`table`,
/// `column`, `column-raw`; a column is qualified by a table's name or a short
/// lower-case alias, as `m` or `r1`). A copy with every rule name prefixed `o-` reads a query
/// that names what it defines itself (inside WITH, or over a FROM subquery): its
/// tables may also be CTE names, its columns any name.
const QUERY_RULES: &str = r#"query ::= select-body (sp set-op sp select-body)* order-by? limit?
select-body ::= kw-select sp (kw-distinct sp)? select-list (sp kw-from sp table-item join*)? where? group-by? having?
select-list ::= select-item (ws "," ws select-item)*
select-item ::= "*" | qualifier "." "*" | expr (sp kw-as sp ident)?
table-item ::= (table | "(" ws query ws ")") (sp (kw-as sp)? alias)?
join ::= ws "," ws table-item | sp join-kind kw-join sp table-item join-condition?
join-condition ::= sp kw-on sp expr | sp kw-using ws "(" ws column (ws "," ws column)* ws ")"
where ::= sp kw-where sp expr
group-by ::= sp kw-group sp kw-by sp (kw-all | group-item (ws "," ws group-item)*)
group-item ::= expr | ident
having ::= sp kw-having sp expr
order-by ::= sp kw-order sp kw-by sp order-item (ws "," ws order-item)*
order-item ::= (expr | ident) (sp (kw-asc | kw-desc))? (sp kw-nulls sp (kw-first | kw-last))?
limit ::= sp kw-limit sp [0-9]+ (sp kw-offset sp [0-9]+)?
expr-list ::= expr (ws "," ws expr)*
expr ::= and-expr (sp kw-or sp and-expr)*
and-expr ::= not-expr (sp kw-and sp not-expr)*
not-expr ::= (kw-not sp)* predicate
predicate ::= sum-expr predicate-tail?
predicate-tail ::= ws cmp-op ws sum-expr | sp kw-is sp (kw-not sp)? (kw-null | kw-true | kw-false | kw-distinct sp kw-from sp sum-expr) | sp (kw-not sp)? (kw-like | kw-ilike) sp sum-expr | sp (kw-not sp)? kw-in ws "(" ws (query | expr-list) ws ")" | sp (kw-not sp)? kw-between sp sum-expr sp kw-and sp sum-expr
sum-expr ::= term (ws ("+" | "||") ws term | ws "-" (sp term | unsigned-term))*
term ::= factor (ws ("*" | "/" | "//" | "%") ws factor)*
unsigned-term ::= unsigned-factor (ws ("*" | "/" | "//" | "%") ws factor)*
factor ::= ("-" ws)? unsigned-factor
unsigned-factor ::= primary subscript* ("::" type)*
subscript ::= "[" ws expr? (ws ":" ws expr?)? ws "]"
primary ::= number | string | kw-null | kw-true | kw-false | "(" ws query ws ")" | "(" ws expr-list ws ")" | case | cast | extract | exists | list-literal | typed-literal | op-call | call | colref
call ::= function ws "(" ws (kw-distinct sp)? ("*" | expr-list)? (sp kw-order sp kw-by sp order-item (ws "," ws order-item)*)? ws ")" (sp kw-filter ws "(" ws kw-where sp expr ws ")")? (sp kw-over ws "(" ws (kw-partition sp kw-by sp expr-list)? (ws kw-order sp kw-by sp order-item (ws "," ws order-item)*)? ws ")")?
case ::= kw-case (sp expr)? (sp kw-when sp expr sp kw-then sp expr)+ (sp kw-else sp expr)? sp kw-end
cast ::= (kw-cast | kw-try-cast) ws "(" ws expr sp kw-as sp type ws ")"
extract ::= kw-extract ws "(" ws ident sp kw-from sp expr ws ")"
exists ::= kw-exists ws "(" ws query ws ")"
list-literal ::= "[" ws expr-list? ws "]"
typed-literal ::= (kw-date | kw-timestamp | kw-interval) sp string
colref ::= (qualifier ".")? column
op-call ::= op-name ws "(" ws template (ws "," ws expr)* ws ")"
template ::= "'" (template-text | "''" | "{" (qualifier ".")? column-raw "}")* "'"
"#;

/// The strict grammar's bounded forms of rules above: one line, a FROM clause,
/// select items without AND/OR chains or comparisons (conditions go in WHERE, CASE or
/// FILTER), no list longer than a few items, no name or literal longer than a few dozen
/// characters, one-letter aliases (`m`, `r1`), and the common types only. Every query
/// it takes ends within a few hundred characters, so a small model that would go on
/// (another column, another condition, more spaces) is held to a query it must end.
const STRICT_RULES: &str = r#"query ::= select-body (sp set-op sp select-body)? order-by? limit?
select-body ::= kw-select sp (kw-distinct sp)? select-list sp kw-from sp table-item join{0,3} where? group-by? having?
select-list ::= select-item (ws "," ws select-item){0,5}
select-item ::= "*" | qualifier "." "*" | sum-expr (sp kw-as sp ident)?
group-by ::= sp kw-group sp kw-by sp (kw-all | group-item (ws "," ws group-item){0,3})
order-by ::= sp kw-order sp kw-by sp order-item (ws "," ws order-item){0,2}
limit ::= sp kw-limit sp [0-9]{1,6} (sp kw-offset sp [0-9]{1,6})?
expr-list ::= expr (ws "," ws expr){0,7}
expr ::= and-expr (sp kw-or sp and-expr){0,3}
and-expr ::= not-expr (sp kw-and sp not-expr){0,4}
not-expr ::= (kw-not sp)? predicate
sum-expr ::= term (ws ("+" | "||") ws term | ws "-" (sp term | unsigned-term)){0,3}
term ::= factor (ws ("*" | "/" | "//" | "%") ws factor){0,3}
unsigned-term ::= unsigned-factor (ws ("*" | "/" | "//" | "%") ws factor){0,3}
factor ::= ("-" ws)? unsigned-factor
unsigned-factor ::= primary subscript? ("::" type)?
case ::= kw-case (sp expr)? (sp kw-when sp expr sp kw-then sp expr){1,4} (sp kw-else sp expr)? sp kw-end
template ::= "'" (template-text | "''" | "{" (qualifier ".")? column-raw "}"){1,300} "'"
number ::= [0-9]{1,12} ("." [0-9]{1,6})? | "." [0-9]{1,6}
string ::= "'" ([^'] | "''"){0,80} "'"
ident ::= [a-zA-Z_] [a-zA-Z0-9_]{0,30} | "\"" [^"]{1,30} "\""
alias ::= [a-z] [0-9]?
type ::= ("INTEGER" | "BIGINT" | "DOUBLE" | "VARCHAR" | "DATE" | "TIMESTAMP" | "BOOLEAN" | "integer" | "bigint" | "double" | "varchar" | "date" | "timestamp" | "boolean") | ("DECIMAL" | "decimal") "(" [0-9]{1,2} ", " [0-9]{1,2} ")"
sp ::= " "
"#;

/// `rules` with each rule that [`STRICT_RULES`] bounds replaced by its bounded form.
fn bounded(rules: &str) -> String {
    let strict: HashMap<&str, &str> = STRICT_RULES.lines().filter_map(|l| l.split_once(" ::= ").map(|(n, _)| (n, l))).collect();
    rules.lines().map(|line| line.split_once(" ::= ").and_then(|(name, _)| strict.get(name).copied()).unwrap_or(line)).map(|l| format!("{l}\n")).collect()
}

/// The `o-` copy of [`QUERY_RULES`]: each rule it defines renamed, and the
/// dataset's names (`table`, `column`, `column-raw`) opened to any name.
fn open_copy() -> String {
    let defined: Vec<&str> = QUERY_RULES.lines().filter_map(|l| l.split_once(" ::= ").map(|(n, _)| n)).collect();
    let rename = |word: &str| -> String {
        if defined.contains(&word) || ["table", "column", "column-raw", "qualifier", "alias"].contains(&word) {
            format!("o-{word}")
        } else {
            word.to_string()
        }
    };
    let mut out = String::new();
    for line in QUERY_RULES.lines() {
        // Rename the words outside literals and character classes.
        let (mut word, mut in_literal, mut in_class, mut escaped) = (String::new(), false, false, false);
        for c in line.chars() {
            if !in_literal && !in_class && (c.is_ascii_alphanumeric() || c == '-') {
                word.push(c);
                continue;
            }
            if !word.is_empty() {
                out.push_str(&rename(&word));
                word.clear();
            }
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' if in_literal || in_class => escaped = true,
                '"' if !in_class => in_literal = !in_literal,
                '[' if !in_literal => in_class = true,
                ']' if in_class => in_class = false,
                _ => {}
            }
        }
        out.push_str(&rename(&word));
        out.push('\n');
    }
    out
}

/// Which queries a grammar takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only queries whose every column and table is the dataset's: what a small
    /// model is held to (a derived table's output names are not referable).
    Strict,
    /// Also queries that name what they define (WITH, a FROM subquery), whose own
    /// names it cannot check: for larger models on servers, and the plans.
    Full,
}

/// The GBNF grammar of queries over `info`'s tables.
pub fn gbnf(info: &DatasetInfo, scope: Scope) -> String {
    // The query alone, or in the ```sql block the examples in the prompt show
    // (a model held to bare SQL when it would open a block writes worse SQL; the
    // block's end is optional, so the text may end as soon as the query does). No
    // whitespace after the query: the model ends it instead of padding it.
    let statement = match scope {
        Scope::Strict => "statement ::= query \";\"?\n",
        Scope::Full => "statement ::= (query | o-with-query | o-derived-query) \";\"?\n",
    };
    let root = format!("root ::= \"```sql\\n\" statement (\"\\n```\")? | statement\n{statement}");
    let mut text = match scope {
        Scope::Strict => format!("{root}{}{}{}", bounded(RULES), bounded(QUERY_RULES), open_copy()),
        Scope::Full => format!("{root}{RULES}{QUERY_RULES}{}", open_copy()),
    };
    let mut tables = BTreeSet::new();
    let mut columns = BTreeSet::new();
    let mut raw = BTreeSet::new();
    for table in &info.tables {
        let parts: Vec<&str> = table.name.split('.').collect();
        let quoted: Vec<String> = parts.iter().map(|p| format!("\"{}\"", p.replace('"', "\"\""))).collect();
        tables.insert(literal(&quoted.join(".")));
        if parts.iter().all(|p| is_bare(p)) {
            tables.insert(literal(&table.name));
            tables.insert(literal(&table.name.to_lowercase()));
        }
        for column in &table.columns {
            columns.insert(literal(&format!("\"{}\"", column.name.replace('"', "\"\""))));
            if is_bare(&column.name) {
                columns.insert(literal(&column.name));
                columns.insert(literal(&column.name.to_lowercase()));
            }
            if !column.name.is_empty() && !column.name.contains(['{', '}', '\'']) {
                raw.insert(literal(&column.name));
            }
        }
    }
    let alternatives = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(" | ");
    text.push_str(&format!("table ::= {}\n", alternatives(&tables)));
    text.push_str(&format!("column ::= {}\n", alternatives(&columns)));
    text.push_str(&format!("column-raw ::= {}\n", if raw.is_empty() { "\"\"".to_string() } else { alternatives(&raw) }));
    let operators: Vec<String> = Operator::ALL.iter().map(|op| literal(op.name())).collect();
    text.push_str(&format!("op-name ::= {}\n", operators.join(" | ")));
    let functions: Vec<String> = FUNCTIONS.iter().flat_map(|f| [literal(f), literal(&f.to_uppercase())]).collect();
    text.push_str(&format!("function ::= {}\n", functions.join(" | ")));
    for keyword in KEYWORDS {
        let name = keyword.replace('_', "-");
        text.push_str(&format!("kw-{name} ::= {} | {}\n", literal(&keyword.to_uppercase()), literal(keyword)));
    }
    text
}

/// A name DuckDB reads without quotes.
fn is_bare(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !KEYWORDS.contains(&name.to_ascii_lowercase().as_str())
}

/// Whether `text`, without the whitespace around it, is in the language of
/// `grammar` (GBNF, from its `root` rule).
pub fn accepts(grammar: &str, text: &str) -> Result<bool, String> {
    let parsed = Parsed::read(grammar)?;
    let root = *parsed.names.get("root").ok_or("the grammar has no root rule")?;
    let chars: Vec<char> = text.trim().chars().collect();
    let mut matcher = Matcher { grammar: &parsed, text: &chars, memo: HashMap::new() };
    Ok(matcher.rule(root, 0).contains(&chars.len()))
}

/// How far into `text` the grammar reads (any rule's longest match from any
/// position it was tried at): where a text outside the language goes wrong.
pub fn reach(grammar: &str, text: &str) -> Result<usize, String> {
    let parsed = Parsed::read(grammar)?;
    let root = *parsed.names.get("root").ok_or("the grammar has no root rule")?;
    let chars: Vec<char> = text.trim().chars().collect();
    let mut matcher = Matcher { grammar: &parsed, text: &chars, memo: HashMap::new() };
    matcher.rule(root, 0);
    let far = matcher.memo.values().filter_map(|ends| ends.last().copied()).max().unwrap_or(0);
    Ok(chars[..far].iter().collect::<String>().len())
}

/// One piece of a GBNF rule.
#[derive(Debug, Clone)]
enum Node {
    Literal(Vec<char>),
    Class { negated: bool, ranges: Vec<(char, char)> },
    Rule(usize),
    Choice(Vec<Vec<Node>>),
    /// `node` `min` to `max` times (`*`, `+`, `?`, `{m}`, `{m,}`, `{m,n}`).
    Repeat { node: Box<Node>, min: usize, max: Option<usize> },
}

struct Parsed {
    names: HashMap<String, usize>,
    rules: Vec<Vec<Vec<Node>>>,
}

impl Parsed {
    /// Reads a grammar written one rule per line (as [`gbnf`] writes them).
    fn read(grammar: &str) -> Result<Parsed, String> {
        let lines: Vec<(&str, &str)> = grammar
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.split_once("::=").map(|(n, b)| (n.trim(), b.trim())).ok_or(format!("not a rule: {l}")))
            .collect::<Result<_, _>>()?;
        let names: HashMap<String, usize> = lines.iter().enumerate().map(|(i, (n, _))| (n.to_string(), i)).collect();
        let mut rules = Vec::new();
        for (name, body) in &lines {
            let mut reader = Reader { chars: body.chars().collect(), at: 0, names: &names };
            let choice = reader.choice()?;
            if reader.at < reader.chars.len() {
                return Err(format!("rule {name}: unexpected {:?}", reader.chars[reader.at..].iter().collect::<String>()));
            }
            rules.push(choice);
        }
        Ok(Parsed { names, rules })
    }
}

struct Reader<'a> {
    chars: Vec<char>,
    at: usize,
    names: &'a HashMap<String, usize>,
}

impl Reader<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    fn choice(&mut self) -> Result<Vec<Vec<Node>>, String> {
        let mut alternatives = vec![self.sequence()?];
        while self.peek() == Some('|') {
            self.at += 1;
            alternatives.push(self.sequence()?);
        }
        Ok(alternatives)
    }

    fn sequence(&mut self) -> Result<Vec<Node>, String> {
        let mut nodes = Vec::new();
        loop {
            self.skip_space();
            let node = match self.peek() {
                None | Some('|') | Some(')') => return Ok(nodes),
                Some('"') => {
                    self.at += 1;
                    let mut text = Vec::new();
                    loop {
                        match self.escaped()? {
                            (false, '"') => break,
                            (_, c) => text.push(c),
                        }
                    }
                    Node::Literal(text)
                }
                Some('[') => {
                    self.at += 1;
                    let negated = self.peek() == Some('^');
                    if negated {
                        self.at += 1;
                    }
                    let mut ranges = Vec::new();
                    loop {
                        let (escaped, start) = self.escaped()?;
                        if !escaped && start == ']' {
                            break;
                        }
                        if self.peek() == Some('-') && self.chars.get(self.at + 1) != Some(&']') {
                            self.at += 1;
                            let (_, end) = self.escaped()?;
                            ranges.push((start, end));
                        } else {
                            ranges.push((start, start));
                        }
                    }
                    Node::Class { negated, ranges }
                }
                Some('(') => {
                    self.at += 1;
                    let choice = self.choice()?;
                    if self.peek() != Some(')') {
                        return Err("unclosed (".into());
                    }
                    self.at += 1;
                    Node::Choice(choice)
                }
                Some(c) if c.is_ascii_alphanumeric() || c == '-' => {
                    let start = self.at;
                    while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == '-') {
                        self.at += 1;
                    }
                    let name: String = self.chars[start..self.at].iter().collect();
                    Node::Rule(*self.names.get(&name).ok_or(format!("undefined rule {name}"))?)
                }
                Some(c) => return Err(format!("unexpected {c:?}")),
            };
            let bounds = match self.peek() {
                Some('*') => self.mark((0, None)),
                Some('+') => self.mark((1, None)),
                Some('?') => self.mark((0, Some(1))),
                Some('{') => Some(self.bounds()?),
                _ => None,
            };
            let node = match bounds {
                Some((min, max)) => Node::Repeat { node: Box::new(node), min, max },
                None => node,
            };
            nodes.push(node);
        }
    }

    /// Steps over a one-character repetition mark.
    fn mark(&mut self, bounds: (usize, Option<usize>)) -> Option<(usize, Option<usize>)> {
        self.at += 1;
        Some(bounds)
    }

    /// Reads `{m}`, `{m,}` or `{m,n}`.
    fn bounds(&mut self) -> Result<(usize, Option<usize>), String> {
        let close = self.chars[self.at..].iter().position(|&c| c == '}').ok_or("unclosed {")?;
        let inside: String = self.chars[self.at + 1..self.at + close].iter().collect();
        self.at += close + 1;
        let number = |text: &str| text.trim().parse::<usize>().map_err(|_| format!("bad repetition {{{inside}}}"));
        Ok(match inside.split_once(',') {
            None => (number(&inside)?, Some(number(&inside)?)),
            Some((min, max)) if max.trim().is_empty() => (number(min)?, None),
            Some((min, max)) => (number(min)?, Some(number(max)?)),
        })
    }

    /// The next character of a literal or class, and whether it was escaped.
    fn escaped(&mut self) -> Result<(bool, char), String> {
        let c = self.peek().ok_or("unterminated literal")?;
        self.at += 1;
        if c != '\\' {
            return Ok((false, c));
        }
        let e = self.peek().ok_or("unterminated escape")?;
        self.at += 1;
        Ok((true, match e {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            other => other,
        }))
    }
}

/// Matches by sets of end positions, memoised per rule and start.
struct Matcher<'a> {
    grammar: &'a Parsed,
    text: &'a [char],
    memo: HashMap<(usize, usize), BTreeSet<usize>>,
}

impl Matcher<'_> {
    fn rule(&mut self, rule: usize, at: usize) -> BTreeSet<usize> {
        if let Some(found) = self.memo.get(&(rule, at)) {
            return found.clone();
        }
        // The grammar has no left recursion; this only stops a loop if it had.
        self.memo.insert((rule, at), BTreeSet::new());
        let alternatives = &self.grammar.rules[rule];
        let found = self.choice(alternatives, at);
        self.memo.insert((rule, at), found.clone());
        found
    }

    fn choice(&mut self, alternatives: &[Vec<Node>], at: usize) -> BTreeSet<usize> {
        let mut found = BTreeSet::new();
        for sequence in alternatives {
            found.extend(self.sequence(sequence, at));
        }
        found
    }

    fn sequence(&mut self, nodes: &[Node], at: usize) -> BTreeSet<usize> {
        let mut positions = BTreeSet::from([at]);
        for node in nodes {
            let mut next = BTreeSet::new();
            for &p in &positions {
                next.extend(self.node(node, p));
            }
            if next.is_empty() {
                return next;
            }
            positions = next;
        }
        positions
    }

    fn node(&mut self, node: &Node, at: usize) -> BTreeSet<usize> {
        match node {
            Node::Literal(text) => {
                let end = at + text.len();
                if self.text.get(at..end) == Some(text.as_slice()) {
                    BTreeSet::from([end])
                } else {
                    BTreeSet::new()
                }
            }
            Node::Class { negated, ranges } => match self.text.get(at) {
                Some(&c) if ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated => BTreeSet::from([at + 1]),
                _ => BTreeSet::new(),
            },
            Node::Rule(rule) => self.rule(*rule, at),
            Node::Choice(alternatives) => self.choice(alternatives, at),
            Node::Repeat { node, min, max } => {
                // The positions after `count` repetitions, one count at a time.
                let mut found = BTreeSet::new();
                let mut current = BTreeSet::from([at]);
                let mut count = 0;
                loop {
                    if count >= *min {
                        found.extend(current.iter().copied());
                    }
                    if current.is_empty() || max.is_some_and(|max| count >= max) {
                        return found;
                    }
                    let mut next = BTreeSet::new();
                    for &p in &current {
                        next.extend(self.node(node, p).into_iter().filter(|&q| q > p));
                    }
                    count += 1;
                    if max.is_none() && count > *min {
                        // Unbounded: a position found already leads nowhere new.
                        next.retain(|q| !found.contains(q));
                    }
                    current = next;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tag_types::{ColumnInfo, TableInfo};

    use super::*;

    fn movies() -> DatasetInfo {
        let table = |name: &str, columns: &[&str]| TableInfo {
            name: name.into(),
            description: None,
            primary_key: None,
            row_count: 1,
            columns: columns
                .iter()
                .map(|c| ColumnInfo {
                    name: c.to_string(),
                    data_type: "VARCHAR".into(),
                    description: None,
                    samples: vec![],
                    distinct_count: 1,
                    values: None,
                })
                .collect(),
        };
        DatasetInfo {
            name: "movies".into(),
            description: String::new(),
            tables: vec![
                table("movies", &["movie_id", "title", "year", "genres", "director", "box_office_usd_millions"]),
                table("reviews", &["review_id", "movie_id", "rating", "review_text", "Date"]),
            ],
            joins: vec![],
            examples: vec![],
            verified: vec![],
            terms: vec![],
        }
    }

    #[test]
    fn queries_over_the_datasets_names_are_accepted() {
        let grammar = gbnf(&movies(), Scope::Full);
        for sql in [
            "SELECT title FROM movies WHERE director = 'Christopher Nolan' ORDER BY box_office_usd_millions DESC LIMIT 1",
            "select count(*) from movies",
            "SELECT m.title, avg(r.rating) AS avg_rating FROM movies m JOIN reviews r ON r.movie_id = m.movie_id GROUP BY m.title HAVING count(*) > 2 ORDER BY avg_rating DESC LIMIT 3;",
            "SELECT (year / 10) * 10 AS decade, count(*) AS films FROM movies GROUP BY decade ORDER BY decade",
            "SELECT title FROM movies WHERE genres LIKE '%Romance%' AND llm_filter('{title} is considered a classic')",
            "SELECT llm_classify('Sentiment of {review_text}', ['positive', 'negative']) AS sentiment, count(*) FROM reviews GROUP BY 1",
            "SELECT m.title, llm_reduce('Summarize the reviews', list(r.review_text)) FROM movies m JOIN reviews r USING (movie_id) WHERE m.title = 'Titanic' GROUP BY m.title",
            "SELECT CASE WHEN count(*) FILTER (WHERE rating >= 4) > 1 THEN 'Yes' ELSE 'No' END FROM reviews",
            "SELECT CAST(substr(r.\"Date\", 1, 4) AS BIGINT) AS y FROM reviews r WHERE r.rating IN (SELECT max(rating) FROM reviews)",
            "WITH best AS (SELECT movie_id, max(rating) AS top FROM reviews GROUP BY movie_id) SELECT m.title, best.top FROM movies m JOIN best ON best.movie_id = m.movie_id",
            "SELECT title FROM movies WHERE year BETWEEN 1990 AND 1999 AND box_office_usd_millions IS NOT NULL",
        ] {
            assert_eq!(accepts(&grammar, sql), Ok(true), "{sql}");
        }
    }

    #[test]
    fn unknown_columns_and_tables_and_writes_are_refused() {
        let strict = gbnf(&movies(), Scope::Strict);
        assert_eq!(accepts(&strict, "WITH t AS (SELECT 1 AS x) SELECT x FROM t"), Ok(false), "the strict grammar takes no WITH");
        assert_eq!(accepts(&strict, "SELECT s.n FROM (SELECT count(*) AS n FROM movies) s"), Ok(false), "nor a derived table's names");
        assert_eq!(accepts(&strict, "SELECT title FROM (SELECT title FROM movies LIMIT 5) WHERE llm_filter('{title} is long')"), Ok(true));
        // Bounded: a few select items, short literals, one line.
        let items = |n: usize| format!("SELECT {} FROM movies", vec!["title"; n].join(", "));
        assert_eq!(accepts(&strict, &items(6)), Ok(true));
        assert_eq!(accepts(&strict, &items(7)), Ok(false));
        assert_eq!(accepts(&strict, &format!("SELECT title FROM movies WHERE title = '{}'", "a".repeat(81))), Ok(false));
        assert_eq!(accepts(&strict, "SELECT title\n  FROM movies"), Ok(false));
        assert_eq!(accepts(&strict, "SELECT 1999, 2000"), Ok(false), "no FROM");
        assert_eq!(accepts(&strict, "SELECT 2005 and 2006 or 2007 FROM movies"), Ok(false), "a condition as a select item");
        assert_eq!(accepts(&strict, "SELECT CAST(year AS The) FROM movies"), Ok(false), "not a type");
        assert_eq!(accepts(&strict, "SELECT is.title FROM movies is"), Ok(false), "a keyword as an alias");
        assert_eq!(accepts(&strict, "SELECT CAST(year AS VARCHAR), m.title FROM movies m"), Ok(true));
        // The ```sql block of the prompt's examples, its end optional.
        assert_eq!(accepts(&strict, "```sql\nSELECT title FROM movies\n```"), Ok(true));
        assert_eq!(accepts(&strict, "```sql\nSELECT title FROM movies;"), Ok(true));
        assert_eq!(accepts(&strict, "```sql\nSELECT title FROM movies\n```\nMore text"), Ok(false));
        let grammar = gbnf(&movies(), Scope::Full);
        assert_eq!(accepts(&grammar, &items(7)), Ok(true));
        assert_eq!(accepts(&grammar, "SELECT title\n  FROM movies"), Ok(true));
        for minus in ["SELECT year - -1 FROM movies", "SELECT year-1, -year FROM movies"] {
            assert_eq!((accepts(&grammar, minus), accepts(&strict, minus)), (Ok(true), Ok(true)), "{minus}");
        }
        for sql in [
            "SELECT review_score FROM reviews",
            "SELECT title FROM films",
            "SELECT title FROM movies WHERE gross > 100",
            "SELECT m.gross FROM movies m",
            "SELECT title FROM movies WHERE llm_filter('{gross} is high')",
            "DELETE FROM movies",
            "SELECT 1; DROP TABLE movies",
            "SELECT * FROM read_csv('/etc/passwd')",
            // `--` starts a comment: here it would hide the FROM clause.
            "SELECT year --1 FROM movies",
        ] {
            assert_eq!(accepts(&grammar, sql), Ok(false), "{sql}");
            assert_eq!(accepts(&strict, sql), Ok(false), "{sql}");
        }
    }

    #[test]
    fn the_grammar_reads_back() {
        assert!(accepts("root ::= \"a\" [b-c]* (\"d\" | \"e\")?", "abccd").unwrap());
        assert!(!accepts("root ::= \"a\" [b-c]* (\"d\" | \"e\")?", "abx").unwrap());
        assert!(accepts("root ::= [^'] \"\\\"\"", "x\"").unwrap());
        assert!(accepts("root ::= missing", "").is_err());
        for (text, taken) in [("a", false), ("aa", true), ("aaa", true), ("aaaa", false)] {
            assert_eq!(accepts("root ::= \"a\"{2,3}", text), Ok(taken), "{text}");
        }
        assert!(accepts("root ::= \"a\"{2} \"b\"{1,}", "aabbb").unwrap());
        assert!(!accepts("root ::= \"a\"{2}", "aaa").unwrap());
        assert!(accepts("root ::= \"a\"{2", "aa").is_err());
    }
}
