//! GBNF grammars for the answer shapes operators need, so the embedded model can
//! only produce a well-formed answer (`yes`/`no`, one of the labels, a number in
//! range, a list of item numbers).

use std::borrow::Cow;

use crate::llm::Constraint;

pub fn gbnf(constraint: &Constraint) -> Cow<'_, str> {
    match constraint {
        Constraint::YesNo => r#"root ::= "yes" | "no""#.into(),
        Constraint::OneOf(labels) => {
            let choices: Vec<String> = labels.iter().map(|label| literal(label)).collect();
            format!("root ::= {}", choices.join(" | ")).into()
        }
        Constraint::UnitScore => r#"root ::= "0" ("." [0-9] [0-9]?)? | "1" (".0" "0"?)?"#.into(),
        Constraint::NumberList => r#"root ::= [1-9] [0-9]? (", " [1-9] [0-9]?)*"#.into(),
        Constraint::Grammar(grammar) => Cow::Borrowed(grammar),
    }
}

/// A GBNF string literal.
pub fn literal(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_literals() {
        let labels = Constraint::OneOf(vec!["a \"quoted\" label".into(), "back\\slash".into()]);
        let grammar = gbnf(&labels);
        assert_eq!(grammar, r#"root ::= "a \"quoted\" label" | "back\\slash""#);
    }
}
