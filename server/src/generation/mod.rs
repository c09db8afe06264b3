//! Stage 3, answer generation: the prompt that asks the LLM to answer from the
//! result table only, citing rows. A result larger than the character budget is
//! shown in part with its full row count and per-column summaries, and the prompt
//! says so. Empty results and unanswerable questions are answered without the LLM,
//! so nothing is invented. An answer that degenerates (repeats itself, is empty,
//! or gives another value than the result's single one) is replaced by a short
//! factual answer built from the result, labelled as such ([`degenerate`],
//! [`from_result`]).

use std::fmt::Write;

use crate::{
    execution::{values::cell_text, Table},
    llm::Message,
    text::shorten,
};

const SYSTEM: &str = "You answer a question about the user's data from the result of a SQL query that was run \
for it. Use only the result table: never add facts that are not in it. Cite the rows your answer rests on as \
[row N]. If the result does not answer the question, say so plainly. If the table is only partly shown, say the \
answer rests on the rows shown. Be concise and answer in the language of the question.";

pub fn messages(question: &str, sql: &str, table: &Table, budget_chars: usize) -> Vec<Message> {
    let mut prompt = String::new();
    let _ = writeln!(prompt, "Question: {question}\n\nSQL that was run:\n{sql}\n");
    prompt.push_str(&render_table(table, budget_chars));
    vec![Message::system(SYSTEM), Message::user(prompt)]
}

/// The result as numbered rows within `budget_chars`, plus a note and column
/// summaries when rows had to be left out.
pub fn render_table(table: &Table, budget_chars: usize) -> String {
    let header: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    let mut text = format!("Result ({} rows; columns: {}):\n", table.row_count, header.join(" | "));
    let mut shown = 0;
    for (i, row) in table.rows.iter().enumerate() {
        let cells: Vec<String> = row.iter().map(|v| one_line(&cell_text(v))).collect();
        let line = format!("[row {}] {}\n", i + 1, cells.join(" | "));
        if text.len() + line.len() > budget_chars && shown > 0 {
            break;
        }
        text.push_str(&line);
        shown += 1;
    }
    if (shown as u64) < table.row_count {
        let _ = writeln!(
            text,
            "Only {shown} of {} rows are shown here; summaries of the {} rows available:",
            table.row_count,
            table.rows.len()
        );
        text.push_str(&summaries(table));
    }
    text
}

fn one_line(text: &str) -> String {
    shorten(&text.replace(['\n', '\r'], " "), 400)
}

fn summaries(table: &Table) -> String {
    let mut text = String::new();
    for (index, column) in table.columns.iter().enumerate() {
        let numbers: Vec<f64> = table.rows.iter().filter_map(|row| row.get(index)?.as_f64()).collect();
        if !numbers.is_empty() {
            let min = numbers.iter().cloned().fold(f64::INFINITY, f64::min);
            let max = numbers.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = numbers.iter().sum();
            let _ = writeln!(
                text,
                "- {}: min {min}, max {max}, mean {:.3}, sum {sum}",
                column.name,
                sum / numbers.len() as f64
            );
        } else {
            let mut distinct: Vec<String> = table.rows.iter().filter_map(|row| row.get(index)).map(cell_text).collect();
            distinct.sort();
            distinct.dedup();
            let _ = writeln!(text, "- {}: {} distinct values", column.name, distinct.len());
        }
    }
    text
}

/// Where a streamed answer starts repeating itself: the byte offset of the second
/// occurrence of a sentence or line (of at least 12 characters) that it already
/// said. Greedy decoding by a small model loops this way until its budget ends.
pub fn repetition(answer: &str) -> Option<usize> {
    let mut seen = std::collections::HashSet::new();
    let mut start = 0;
    for (i, c) in answer.char_indices() {
        if matches!(c, '.' | '!' | '?' | '\n') {
            let end = i + c.len_utf8();
            let sentence = answer[start..end].trim();
            if sentence.chars().count() >= 12 && !seen.insert(sentence.to_lowercase()) {
                return Some(end - answer[start..end].trim_start().len());
            }
            start = end;
        }
    }
    None
}

/// Why the model's answer cannot stand, if it cannot: empty, repeating itself,
/// or not giving the value of a one-value result.
pub fn degenerate(answer: &str, table: &Table) -> Option<&'static str> {
    if answer.trim().is_empty() {
        return Some("the model's answer was empty");
    }
    if repetition(answer).is_some() {
        return Some("the model's answer repeated itself");
    }
    if let ([row], [_]) = (table.rows.as_slice(), table.columns.as_slice()) {
        if !mentions(answer, &row[0]) {
            return Some("the model's answer did not give the result's value");
        }
    }
    None
}

/// Whether `answer` states `value` (a number in any usual rounding, with or
/// without thousands separators, or the text itself).
fn mentions(answer: &str, value: &serde_json::Value) -> bool {
    let text: String = {
        // 1,234 → 1234
        let chars: Vec<char> = answer.chars().collect();
        chars
            .iter()
            .enumerate()
            .filter(|&(i, &c)| {
                !(c == ',' && i > 0 && chars[i - 1].is_ascii_digit() && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
            })
            .map(|(_, &c)| c)
            .collect()
    };
    if value.is_null() {
        return true;
    }
    let Some(number) = value.as_f64() else {
        let wanted = cell_text(value).to_lowercase();
        return wanted.chars().count() > 200 || text.to_lowercase().contains(wanted.trim());
    };
    let mut forms = vec![cell_text(value), format!("{number:.0}"), format!("{number:.1}"), format!("{number:.2}")];
    if number.fract() == 0.0 {
        forms.push(format!("{}", number as i64));
    }
    forms.iter().any(|form| contains_number(&text, form))
}

/// `form` in `text` as a whole number (not inside a longer one).
fn contains_number(text: &str, form: &str) -> bool {
    let digit_at = |i: usize| text[i..].chars().next().is_some_and(|c| c.is_ascii_digit());
    text.match_indices(form).any(|(at, _)| {
        let before = text[..at].chars().last();
        let after_index = at + form.len();
        let after_digit = after_index < text.len()
            && (digit_at(after_index) || (text[after_index..].starts_with('.') && after_index + 1 < text.len() && digit_at(after_index + 1)));
        !before.is_some_and(|c| c.is_ascii_digit()) && !after_digit
    })
}

/// A short factual answer built from the result, for when the model's answer
/// cannot stand (`reason`), labelled as such and with the SQL that was run.
pub fn from_result(table: &Table, sql: &str, reason: &str) -> String {
    let mut text = format!("Built from the result, not written by the model ({reason}):\n");
    let cells = |row: &[serde_json::Value]| -> String {
        table.columns.iter().zip(row).map(|(c, v)| format!("{}: {}", c.name, one_line(&cell_text(v)))).collect::<Vec<_>>().join(", ")
    };
    match (table.rows.as_slice(), table.columns.as_slice()) {
        ([row], [column]) => {
            let _ = writeln!(text, "{} is {} [row 1].", column.name, one_line(&cell_text(&row[0])));
        }
        (rows, _) => {
            let _ = writeln!(text, "The query returned {} row{}:", table.row_count, if table.row_count == 1 { "" } else { "s" });
            for (i, row) in rows.iter().take(5).enumerate() {
                let _ = writeln!(text, "- [row {}] {}", i + 1, cells(row));
            }
            if table.row_count > 5 {
                let _ = writeln!(text, "- … and {} more (see the table).", table.row_count - 5);
            }
        }
    }
    let _ = write!(text, "\nSQL that was run: `{}`", sql.split_whitespace().collect::<Vec<_>>().join(" "));
    text
}

/// The answer when the query returned no rows.
pub fn empty_answer() -> String {
    "The query returned no rows, so the data holds no answer to this question. Try a broader question, or check \
the SQL for a filter that is too strict."
        .to_string()
}

/// The answer when the model said the tables cannot answer the question.
pub fn unanswerable_answer(dataset: &str, reason: &str) -> String {
    let reason = if reason.is_empty() { "the tables do not hold the information needed" } else { reason };
    format!("I can't answer that from the `{dataset}` dataset: {reason}")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::execution::Column;

    fn table(rows: usize) -> Table {
        Table {
            columns: vec![
                Column { name: "title".into(), data_type: "VARCHAR".into() },
                Column { name: "revenue".into(), data_type: "DOUBLE".into() },
            ],
            rows: (0..rows).map(|i| vec![json!(format!("film {i}")), json!(i as f64)]).collect(),
            row_count: rows as u64,
            truncated: false,
        }
    }

    #[test]
    fn a_looping_answer_is_caught_where_it_repeats() {
        let looped = "I'm glad you asked about Nolan. I'm glad you asked about Nolan. I'm glad";
        assert_eq!(repetition(looped), Some(looped.find("Nolan. I'm").unwrap() + "Nolan. ".len()));
        assert_eq!(repetition("Yes. Yes. It grossed 1006 million [row 1]."), None, "short sentences may repeat");
        assert_eq!(repetition("Line one is here\nline one is here\n"), Some(17));
    }

    #[test]
    fn degenerate_answers_are_named_and_replaced_with_the_result() {
        let one = Table {
            columns: vec![Column { name: "films".into(), data_type: "BIGINT".into() }],
            rows: vec![vec![json!(1234)]],
            row_count: 1,
            truncated: false,
        };
        assert_eq!(degenerate("There are 1,234 films [row 1].", &one), None);
        assert_eq!(degenerate("There are 1234.", &one), None);
        assert_eq!(degenerate("There are 12345 films.", &one), Some("the model's answer did not give the result's value"));
        assert_eq!(degenerate("  ", &one), Some("the model's answer was empty"));
        let replaced = from_result(&one, "SELECT count(*) AS films\nFROM movies", "the model's answer was empty");
        assert!(replaced.starts_with("Built from the result, not written by the model (the model's answer was empty)"), "{replaced}");
        assert!(replaced.contains("films is 1234 [row 1]."), "{replaced}");
        assert!(replaced.ends_with("SQL that was run: `SELECT count(*) AS films FROM movies`"), "{replaced}");
        let rows = from_result(&table(7), "SELECT 1", "the model's answer repeated itself");
        assert!(rows.contains("The query returned 7 rows:\n- [row 1] title: film 0, revenue: 0.0"), "{rows}");
        assert!(rows.contains("and 2 more"), "{rows}");
        assert_eq!(degenerate("Film 3 earned the most [row 4].", &table(7)), None, "many rows: only loops and emptiness count");
    }

    #[test]
    fn small_results_are_shown_whole() {
        let text = render_table(&table(3), 10_000);
        assert!(text.contains("[row 3] film 2 | 2.0"), "{text}");
        assert!(!text.contains("Only"));
    }

    #[test]
    fn large_results_are_summarised_and_say_so() {
        let text = render_table(&table(500), 600);
        assert!(text.contains("of 500 rows are shown"), "{text}");
        assert!(text.contains("revenue: min 0, max 499"), "{text}");
        assert!(text.len() < 1200);
    }
}
