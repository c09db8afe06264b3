//! Stage 3, answer generation: the prompt that asks the LLM to answer from the
//! result table only, citing rows. A result larger than the character budget is
//! shown in part with its full row count and per-column summaries, and the prompt
//! says so. Empty results and unanswerable questions are answered without the LLM,
//! so nothing is invented.

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
