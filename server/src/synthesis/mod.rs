//! Stage 1, query synthesis: the prompt that asks the LLM for one DuckDB query,
//! grounded in the dataset's schema text, its business terms and verified examples
//! ([`examples`]) and the operator reference, with the conversation so far; the
//! grammar that constrains the query to the dataset's names ([`grammar`]); reading
//! the SQL out of the reply; and the repair message that shows the model what went
//! wrong with its last attempt.

pub mod examples;
pub mod grammar;

use std::fmt::Write;

use crate::{
    catalog::{Term, VerifiedExample},
    llm::Message,
    operators::Operator,
    state::Turn,
};

/// What the dataset knows that bears on one question: the verified examples
/// nearest it and the business terms it uses.
#[derive(Debug, Clone, Default)]
pub struct Grounding {
    pub examples: Vec<VerifiedExample>,
    pub terms: Vec<Term>,
}

/// What the model replied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Sql(String),
    /// The model says the data cannot answer the question, and why.
    Unanswerable(String),
    /// Neither SQL nor a refusal.
    Unreadable,
}

pub const UNANSWERABLE: &str = "UNANSWERABLE:";

fn system_prompt(schema_text: &str, terms: &[Term]) -> String {
    let mut text = String::from(
        "You write one DuckDB SQL query that answers the user's question about the tables below.\n\
Use ordinary SQL for everything exact: filters, joins, counts, sums, sorting, limits. Call an LLM operator only \
for what needs world knowledge or reading text, and apply cheap SQL filters first so operators see few rows.\n\
LLM operators (templates name columns in braces, e.g. '{title}'):\n",
    );
    for op in Operator::ALL {
        let _ = writeln!(text, "- {}(...) -> {}: {}. Example: {}", op.name(), op.returns(), op.meaning(), op.example());
    }
    text.push_str(
        "Rules: only SELECT queries; no file readers; one statement. Name result columns clearly. \
Reply with the SQL in a single ```sql block and nothing else.\n",
    );
    let _ = writeln!(
        text,
        "If the tables cannot answer the question even with the operators, reply with `{UNANSWERABLE} <short reason>` instead."
    );
    text.push('\n');
    text.push_str(schema_text);
    if !terms.is_empty() {
        text.push_str("\nBUSINESS TERMS (what the user's words mean in these tables):\n");
        for term in terms {
            let _ = writeln!(text, "- {}: {}", term.words.join(", "), term.means);
        }
    }
    text
}

/// The messages of the first attempt: system prompt (with `schema_text`, the
/// dataset's or the part linked to the question, and the terms the question
/// uses), the verified examples as earlier exchanges, earlier turns, the question.
pub fn messages(schema_text: &str, grounding: &Grounding, history: &[Turn], question: &str) -> Vec<Message> {
    let mut messages = vec![Message::system(system_prompt(schema_text, &grounding.terms))];
    for example in &grounding.examples {
        messages.push(Message::user(example.question.clone()));
        messages.push(Message::assistant(format!("```sql\n{}\n```", example.sql.trim())));
    }
    for turn in history {
        messages.push(Message::user(turn.question.clone()));
        let reply = match &turn.sql {
            Some(sql) => format!("```sql\n{sql}\n```"),
            None => format!("{UNANSWERABLE} {}", turn.answer),
        };
        messages.push(Message::assistant(reply));
    }
    messages.push(Message::user(question.to_string()));
    messages
}

/// The follow-up message after a failed attempt.
pub fn repair_message(error: &str) -> Message {
    Message::user(format!(
        "That query failed: {error}\nWrite a corrected query for the same question. Reply with the SQL in a single ```sql block."
    ))
}

/// Reads the SQL (or the refusal) out of a reply.
pub fn parse_reply(reply: &str) -> Reply {
    let text = reply.trim();
    if let Some(reason) = text.strip_prefix(UNANSWERABLE) {
        return Reply::Unanswerable(reason.trim().to_string());
    }
    if let Some(start) = text.find("```") {
        let after = &text[start + 3..];
        let body_start = after.find('\n').map(|i| i + 1).unwrap_or(after.len());
        let language = after[..body_start].trim().to_ascii_lowercase();
        if language.is_empty() || language == "sql" || language == "duckdb" {
            let body = &after[body_start..];
            let end = body.find("```").unwrap_or(body.len());
            let sql = body[..end].trim();
            if !sql.is_empty() {
                return Reply::Sql(sql.to_string());
            }
        }
    }
    let first_word = text.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
    if ["SELECT", "WITH", "FROM", "VALUES", "(SELECT"].contains(&first_word.as_str()) {
        return Reply::Sql(text.to_string());
    }
    if text.contains(UNANSWERABLE) {
        let reason = text.split(UNANSWERABLE).nth(1).unwrap_or("").trim();
        return Reply::Unanswerable(reason.to_string());
    }
    Reply::Unreadable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sql_from_fences_or_bare_text() {
        assert_eq!(parse_reply("```sql\nSELECT 1\n```"), Reply::Sql("SELECT 1".into()));
        assert_eq!(parse_reply("Here you go:\n```\nSELECT 2;\n```\nDone."), Reply::Sql("SELECT 2;".into()));
        assert_eq!(parse_reply("SELECT 3"), Reply::Sql("SELECT 3".into()));
        assert_eq!(parse_reply("UNANSWERABLE: no weather data"), Reply::Unanswerable("no weather data".into()));
        assert_eq!(parse_reply("I am not sure."), Reply::Unreadable);
        assert_eq!(parse_reply("```python\nprint(1)\n```"), Reply::Unreadable);
    }
}
