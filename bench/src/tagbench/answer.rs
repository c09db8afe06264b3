//! Typed answers, as TAG-Bench's gold answers are written (an integer, a number, a
//! string, or a Python/JSON list of those), the official exact-match rule and a
//! lenient variant, and the parsing of a method's answer text into a typed answer
//! of the gold's shape.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Answer {
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Answer>),
}

impl Answer {
    /// Parses a gold answer the way the official scorer reads it (Python's literal
    /// evaluation, falling back to the text): `54` is an integer, `['a', 'b']` and
    /// `["a"]` are lists, `"..."` is a string, anything else is its trimmed text.
    /// `None` for an empty answer (the aggregation queries have none).
    pub fn parse_gold(text: &str) -> Option<Answer> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        Some(parse_literal(text).unwrap_or_else(|| Answer::Str(text.to_string())))
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Answer::Int(_) => "integer",
            Answer::Float(_) => "number",
            Answer::Str(_) => "string",
            Answer::List(_) => "list",
        }
    }

    /// Shown in reports: lists as JSON, strings bare.
    pub fn display(&self) -> String {
        match self {
            Answer::Str(s) => s.clone(),
            other => serde_json::to_string(other).unwrap_or_default(),
        }
    }
}

/// A Python or JSON literal: integer, float, quoted string, or a list of them.
fn parse_literal(text: &str) -> Option<Answer> {
    let mut parser = Literal { chars: text.chars().collect(), at: 0 };
    let value = parser.value()?;
    parser.skip_space();
    (parser.at == parser.chars.len()).then_some(value)
}

struct Literal {
    chars: Vec<char>,
    at: usize,
}

impl Literal {
    fn skip_space(&mut self) {
        while self.chars.get(self.at).is_some_and(|c| c.is_whitespace()) {
            self.at += 1;
        }
    }

    fn value(&mut self) -> Option<Answer> {
        self.skip_space();
        match *self.chars.get(self.at)? {
            '[' => self.list(),
            quote @ ('\'' | '"') => self.string(quote),
            _ => self.number(),
        }
    }

    fn list(&mut self) -> Option<Answer> {
        self.at += 1;
        let mut items = Vec::new();
        loop {
            self.skip_space();
            if self.chars.get(self.at) == Some(&']') {
                self.at += 1;
                return Some(Answer::List(items));
            }
            items.push(self.value()?);
            self.skip_space();
            match self.chars.get(self.at)? {
                ',' => self.at += 1,
                ']' => {}
                _ => return None,
            }
        }
    }

    fn string(&mut self, quote: char) -> Option<Answer> {
        self.at += 1;
        let mut out = String::new();
        loop {
            let c = *self.chars.get(self.at)?;
            self.at += 1;
            match c {
                '\\' => {
                    let escaped = *self.chars.get(self.at)?;
                    self.at += 1;
                    out.push(match escaped {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    });
                }
                c if c == quote => return Some(Answer::Str(out)),
                c => out.push(c),
            }
        }
    }

    fn number(&mut self) -> Option<Answer> {
        let start = self.at;
        while self.chars.get(self.at).is_some_and(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E')) {
            self.at += 1;
        }
        let text: String = self.chars[start..self.at].iter().collect();
        if let Ok(n) = text.parse::<i64>() {
            return Some(Answer::Int(n));
        }
        text.parse::<f64>().ok().filter(|f| f.is_finite()).map(Answer::Float)
    }
}

/// The official rule: typed equality, lists in order. Integers and floats compare
/// by value (`3 == 3.0` in Python).
pub fn exact(predicted: &Answer, gold: &Answer) -> bool {
    match (predicted, gold) {
        (Answer::Int(a), Answer::Float(b)) | (Answer::Float(b), Answer::Int(a)) => (*a as f64) == *b,
        (Answer::List(a), Answer::List(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| exact(x, y)),
        (a, b) => a == b,
    }
}

fn normalise(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// Lenient: strings case- and whitespace-normalised, numbers equal within 1e-6
/// relative, a one-element list equal to its element, and lists compared as sets
/// when the question does not ask for an order. Labelled as not the paper's metric.
pub fn lenient(predicted: &Answer, gold: &Answer, ordered: bool) -> bool {
    let number = |a: &Answer| match a {
        Answer::Int(n) => Some(*n as f64),
        Answer::Float(f) => Some(*f),
        Answer::Str(s) => s.trim().replace(',', "").parse().ok(),
        Answer::List(_) => None,
    };
    match (predicted, gold) {
        (Answer::List(p), Answer::List(g)) => {
            if p.len() != g.len() {
                return false;
            }
            if ordered {
                return p.iter().zip(g).all(|(x, y)| lenient(x, y, true));
            }
            let mut unmatched: Vec<&Answer> = g.iter().collect();
            for item in p {
                match unmatched.iter().position(|candidate| lenient(item, candidate, false)) {
                    Some(i) => {
                        unmatched.swap_remove(i);
                    }
                    None => return false,
                }
            }
            true
        }
        (Answer::List(p), single) if p.len() == 1 => lenient(&p[0], single, ordered),
        (single, Answer::List(g)) if g.len() == 1 => lenient(single, &g[0], ordered),
        (p, g) => match (number(p), number(g)) {
            (Some(a), Some(b)) => (a - b).abs() <= 1e-6 * b.abs().max(1.0),
            _ => normalise(&p.display()) == normalise(&g.display()),
        },
    }
}

/// Whether a question asks for an order (ranking words), so that lenient scoring
/// keeps list order.
pub fn asks_for_order(question: &str) -> bool {
    let q = question.to_lowercase();
    ["order", "rank", "most", "least", "top ", "highest", "lowest", "first", "best", "worst", "sorted", "descending", "ascending"]
        .iter()
        .any(|word| q.contains(word))
}

/// Reads a method's final answer text as a value of the gold's shape: a number
/// from the first number in the text, a list from a list literal (or comma- or
/// line-separated items), a string from the text without quotes or a final period.
pub fn parse_predicted(text: &str, shape: &Answer) -> Option<Answer> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let literal = text.find('[').and_then(|start| text.rfind(']').and_then(|end| parse_literal(&text[start..=end])));
    match shape {
        Answer::Int(_) | Answer::Float(_) => {
            if let Some(Answer::List(items)) = &literal {
                if items.len() == 1 {
                    return Some(items[0].clone());
                }
            }
            first_number(text)
        }
        Answer::List(gold_items) => {
            if let Some(list @ Answer::List(_)) = literal {
                return Some(list);
            }
            let item_shape = gold_items.first().cloned().unwrap_or(Answer::Str(String::new()));
            let separator = if text.contains('\n') { '\n' } else { ',' };
            let items: Option<Vec<Answer>> = text
                .split(separator)
                .map(|item| clean_string(item.trim_start_matches(|c: char| c == '-' || c == '*' || c.is_whitespace())))
                .filter(|item| !item.is_empty())
                .map(|item| parse_predicted(&item, &item_shape))
                .collect();
            items.map(Answer::List)
        }
        Answer::Str(_) => {
            if let Some(Answer::List(items)) = &literal {
                if let [single @ Answer::Str(_)] = items.as_slice() {
                    return Some(single.clone());
                }
            }
            Some(Answer::Str(clean_string(text)))
        }
    }
}

fn first_number(text: &str) -> Option<Answer> {
    let cleaned: String = text.replace(',', "");
    let bytes: Vec<char> = cleaned.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let starts = bytes[i].is_ascii_digit() || (bytes[i] == '-' && bytes.get(i + 1).is_some_and(|c| c.is_ascii_digit()));
        if starts {
            let start = i;
            i += 1;
            while i < bytes.len() && (bytes[i].is_ascii_digit() || (bytes[i] == '.' && bytes.get(i + 1).is_some_and(|c| c.is_ascii_digit()))) {
                i += 1;
            }
            let number: String = bytes[start..i].iter().collect();
            return parse_literal(&number);
        }
        i += 1;
    }
    None
}

fn clean_string(text: &str) -> String {
    let text = text.trim().trim_end_matches('.').trim();
    let unquoted = ['"', '\''].iter().find_map(|q| text.strip_prefix(*q).and_then(|t| t.strip_suffix(*q)));
    unquoted.unwrap_or(text).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Answer {
        Answer::Str(text.into())
    }

    #[test]
    fn gold_answers_parse_like_python_literals() {
        assert_eq!(Answer::parse_gold("54"), Some(Answer::Int(54)));
        assert_eq!(Answer::parse_gold("(562) 944-0033"), Some(s("(562) 944-0033")));
        assert_eq!(Answer::parse_gold("['Jennifer', 'Lisa']"), Some(Answer::List(vec![s("Jennifer"), s("Lisa")])));
        assert_eq!(Answer::parse_gold(" [\"Long Beach\", \"Paramount\"] "), Some(Answer::List(vec![s("Long Beach"), s("Paramount")])));
        assert_eq!(Answer::parse_gold("[115372, 115254]"), Some(Answer::List(vec![Answer::Int(115372), Answer::Int(115254)])));
        assert_eq!(Answer::parse_gold("\"That pirates chart\nis cooked\""), Some(s("That pirates chart\nis cooked")));
        assert_eq!(Answer::parse_gold("TRUE"), Some(s("TRUE")));
        assert_eq!(Answer::parse_gold("K-5"), Some(s("K-5")));
        assert_eq!(Answer::parse_gold("2.5"), Some(Answer::Float(2.5)));
        assert_eq!(Answer::parse_gold("Strunk & White"), Some(s("Strunk & White")));
        assert_eq!(Answer::parse_gold("['it''s']"), Some(s("['it''s']")), "not a literal: kept as text");
        assert_eq!(Answer::parse_gold("  "), None);
    }

    #[test]
    fn exact_is_typed_and_ordered() {
        let list = |items: &[&str]| Answer::List(items.iter().map(|i| s(i)).collect());
        assert!(exact(&Answer::Int(54), &Answer::Int(54)));
        assert!(exact(&Answer::Float(54.0), &Answer::Int(54)));
        assert!(!exact(&s("54"), &Answer::Int(54)), "a string is not an integer");
        assert!(exact(&list(&["a", "b"]), &list(&["a", "b"])));
        assert!(!exact(&list(&["b", "a"]), &list(&["a", "b"])), "order matters");
        assert!(!exact(&list(&["a"]), &list(&["a", "b"])));
        assert!(!exact(&s("lisa"), &s("Lisa")));
    }

    #[test]
    fn lenient_normalises_and_ignores_order_when_not_asked() {
        let list = |items: &[&str]| Answer::List(items.iter().map(|i| s(i)).collect());
        assert!(lenient(&s(" lisa "), &s("Lisa"), false));
        assert!(lenient(&list(&["b", "a"]), &list(&["a", "b"]), false));
        assert!(!lenient(&list(&["b", "a"]), &list(&["a", "b"]), true));
        assert!(lenient(&s("1,236"), &Answer::Int(1236), false));
        assert!(lenient(&list(&["Kristof van Hout"]), &s("kristof van hout"), false));
        assert!(!lenient(&list(&["a", "a"]), &list(&["a", "b"]), false), "each gold item is matched once");
        assert!(asks_for_order("List the top 3 schools ordered by score"));
        assert!(!asks_for_order("Which of these posts mention papers?"));
    }

    #[test]
    fn predictions_are_read_in_the_gold_shape() {
        assert_eq!(parse_predicted("There are 1,236 schools.", &Answer::Int(0)), Some(Answer::Int(1236)));
        assert_eq!(parse_predicted("[42]", &Answer::Int(0)), Some(Answer::Int(42)));
        assert_eq!(parse_predicted("no idea", &Answer::Int(0)), None);
        assert_eq!(parse_predicted("\"Hans Vonk\".", &s("")), Some(s("Hans Vonk")));
        assert_eq!(parse_predicted("['FC Barcelona']", &s("")), Some(s("FC Barcelona")));
        let gold = Answer::List(vec![s("x")]);
        assert_eq!(parse_predicted("Answer: ['Naldo', 'Didier Drogba']", &gold), Some(Answer::List(vec![s("Naldo"), s("Didier Drogba")])));
        assert_eq!(parse_predicted("Naldo, Didier Drogba", &gold), Some(Answer::List(vec![s("Naldo"), s("Didier Drogba")])));
        assert_eq!(parse_predicted("- 8485\n- 15670", &Answer::List(vec![Answer::Int(1)])), Some(Answer::List(vec![Answer::Int(8485), Answer::Int(15670)])));
        assert_eq!(parse_predicted("", &s("")), None);
    }
}
