//! The SQL front end's behaviour, pinned in golden files: every case of
//! `tests/golden/*.sql` (SQL in) against its snapshot in `tests/snapshots/` (the
//! refusal and its reason, or the SQL DuckDB runs, the operators it calls and the
//! query listing the operator's inputs). A difference fails the test; after a
//! deliberate change, regenerate and review with
//! `INSTA_UPDATE=always cargo test -p tag-server --test golden` and `git diff`.
//!
//! A case is one line; a line that starts with `| ` continues the case above on a
//! new line. Lines starting with `--` are comments; blank lines are skipped.

use std::fmt::Write;

use tag_server::sql;

fn cases(text: &str) -> Vec<String> {
    let mut cases: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with("--") || line.trim().is_empty() {
            continue;
        }
        match (line.strip_prefix("| "), cases.last_mut()) {
            (Some(rest), Some(case)) => {
                case.push('\n');
                case.push_str(rest);
            }
            _ => cases.push(line.to_string()),
        }
    }
    cases
}

fn outcome(sql: &str) -> String {
    let mut text = format!("SQL: {sql}\n");
    match sql::check(sql, "q") {
        Err(error) => {
            let _ = writeln!(text, "REFUSED ({}): {}", kind(&error), error.message());
        }
        Ok(checked) => {
            let _ = writeln!(text, "RUNS: {}", checked.executable);
            if !checked.operators.is_empty() {
                let names: Vec<&str> = checked.operators.iter().map(|op| op.name()).collect();
                let _ = writeln!(text, "OPERATORS: {}", names.join(", "));
            }
            if let Some(input) = &checked.input_query {
                let _ = writeln!(text, "INPUTS OF {}: {}", input.operator.name(), input.sql);
            }
        }
    }
    text
}

fn kind(error: &tag_server::Error) -> &'static str {
    match error {
        tag_server::Error::RejectedSql(_) => "rejected",
        _ => "other error",
    }
}

#[test]
fn the_sql_front_end_matches_its_golden_files() {
    insta::glob!("golden/*.sql", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let cases = cases(&text);
        assert!(!cases.is_empty(), "{} has no cases", path.display());
        let report: Vec<String> = cases.iter().map(|case| outcome(case)).collect();
        insta::assert_snapshot!(report.join("\n"));
    });
}
