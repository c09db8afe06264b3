//! End to end: the real `tag-server` binary on a real socket, answering over both
//! demo datasets with the scripted LLM, through `/v1/ask` (JSON and SSE), `/v1/sql`
//! (JSON, CSV, Arrow), the dataset and conversation endpoints, and the CLI.

use std::process::Command;

use serde_json::{json, Value};
use tag_tests::{
    harness::{server_binary, ServerProcess},
    scripted_llm::{Fault, ScriptedLlm},
};

const NOLAN_QUESTION: &str = "Which Christopher Nolan film grossed the most?";
const NOLAN_SQL: &str = "SELECT title, box_office_usd_millions FROM movies WHERE director = 'Christopher Nolan' ORDER BY box_office_usd_millions DESC LIMIT 1";

fn llm_env(llm: &ScriptedLlm) -> Vec<(&'static str, String)> {
    vec![
        ("TAG_LLM_BASE_URL", llm.base_url()),
        ("TAG_LLM_MODEL", "scripted-model".into()),
        ("TAG_LLM_RETRY_BASE_MS", "5".into()),
    ]
}

/// Synthesis replies are keyed on the question (the last user message of the first
/// attempt); answers on the "Question: ..." line of the generation prompt.
fn script_nolan(llm: &ScriptedLlm) {
    llm.on(&format!("^{}$", regex::escape(NOLAN_QUESTION)), format!("```sql\n{NOLAN_SQL}\n```"));
    llm.on(r"^Question: Which Christopher Nolan film", "The Dark Knight grossed the most, about $1006 million [row 1].");
}

async fn post(client: &reqwest::Client, url: &str, body: Value) -> (u16, Value) {
    let response = client.post(url).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_answers_with_sql_rows_and_stats() {
    let llm = ScriptedLlm::start().await;
    script_nolan(&llm);
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), &llm_env(&llm), &[]);
    let client = reqwest::Client::new();

    let health: Value = client.get(server.url("/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["llm"]["backend"], "openai");
    assert_eq!(health["llm"]["model"], "scripted-model");
    assert_eq!(health["datasets"], json!(["movies", "support"]));

    let (status, body) =
        post(&client, &server.url("/v1/ask"), json!({"question": NOLAN_QUESTION, "dataset": "movies"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["answer"], "The Dark Knight grossed the most, about $1006 million [row 1].");
    assert_eq!(body["sql"], NOLAN_SQL);
    assert_eq!(body["columns"][0]["name"], "title");
    assert_eq!(body["rows"], json!([["The Dark Knight", 1006]]));
    assert_eq!(body["row_count"], 1);
    assert_eq!(body["truncated"], false);
    let stats = &body["stats"];
    assert_eq!(stats["synthesis_llm"]["calls"], 1);
    assert_eq!(stats["generation_llm"]["calls"], 1);
    assert_eq!(stats["llm"]["calls"], 2);
    assert!(stats["llm"]["prompt_tokens"].as_u64().unwrap() > 100);
    assert!(stats["llm"]["completion_tokens"].as_u64().unwrap() > 0);
    for key in ["synthesis_ms", "execution_ms", "generation_ms", "total_ms"] {
        assert!(stats[key].is_u64(), "{key} in {stats}");
    }

    // The synthesis prompt carries the schema text and the operator reference.
    let synthesis = &llm.requests()[0];
    assert!(synthesis.system().contains("TABLE movies (228 rows)"), "{}", synthesis.system());
    assert!(synthesis.system().contains("llm_filter"));
    assert!(synthesis.system().contains("JOINS: reviews.movie_id = movies.movie_id"));
    // The answer was generated from the result table, streamed.
    let generation = &llm.requests()[1];
    assert!(generation.stream);
    assert!(generation.last_user().contains("[row 1] The Dark Knight | 1006"), "{}", generation.last_user());

    let metrics = client.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tag_questions_total 1"), "{metrics}");
    assert!(metrics.contains("tag_llm_calls_total{stage=\"synthesis\"} 1"), "{metrics}");
    assert!(metrics.contains("route=\"/v1/ask\",status=\"200\""), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_streams_typed_events_over_sse_with_operators() {
    let llm = ScriptedLlm::start().await;
    let question = "Which closed PayFlow billing tickets got a reply that did not address the request?";
    let sql = "SELECT ticket_id, request FROM tickets WHERE product = 'PayFlow' AND category = 'billing' AND status = 'closed' \
               AND NOT llm_filter('{support_response} addresses {request}') ORDER BY ticket_id";
    llm.on(&format!("^{}$", regex::escape(question)), format!("```sql\n{sql}\n```"));
    llm.on_fn(r"Statement: \[support_response\] addresses \[request\]", |p| {
        if p.contains("[support_response]: Thank") || p.contains("FAQ") || p.contains("We value") || p.contains("looking into")
            || p.contains("latest version") || p.contains("restarting") { "no".into() } else { "yes".into() }
    });
    llm.on(r"^Question: Which closed PayFlow", "Several tickets got generic replies [row 1].");
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), &llm_env(&llm), &[]);
    let client = reqwest::Client::new();

    let response = client
        .post(server.url("/v1/ask"))
        .header("accept", "text/event-stream")
        .json(&json!({"question": question, "dataset": "support"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let text = response.text().await.unwrap();
    let events: Vec<(String, Value)> = text
        .split("\n\n")
        .filter_map(|block| {
            let name = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((name.to_string(), serde_json::from_str(data).unwrap()))
        })
        .collect();
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).filter(|n| *n != "progress").collect();
    assert_eq!(&names[..4], &["stage", "sql", "stage", "stage"], "{names:?}");
    assert!(names.contains(&"rows") && names.contains(&"token"));
    assert_eq!(names.last(), Some(&"done"));
    let done = &events.last().unwrap().1;
    assert_eq!(done["type"], "done");
    let tokens: String = events.iter().filter(|(n, _)| n == "token").map(|(_, e)| e["text"].as_str().unwrap()).collect();
    assert_eq!(tokens, done["answer"].as_str().unwrap());
    let stats = &done["stats"]["execution"];
    assert_eq!(stats["operators"][0]["operator"], "llm_filter");
    let filter_calls = stats["operators"][0]["llm_calls"].as_u64().unwrap();
    assert!(filter_calls > 0);
    assert_eq!(llm.requests_matching(r"^Decide whether .*\n.*addresses").len() as u64, filter_calls);

    // The rows are exactly the tickets whose reply is generic, computed in plain SQL.
    let (status, expected) = post(
        &client,
        &server.url("/v1/sql"),
        json!({"dataset": "support", "sql": "SELECT ticket_id FROM tickets WHERE product = 'PayFlow' AND category = 'billing' \
               AND status = 'closed' AND (support_response LIKE 'Thank%' OR support_response LIKE '%FAQ%' OR \
               support_response LIKE 'We value%' OR support_response LIKE '%looking into%' OR support_response LIKE '%latest version%' \
               OR support_response LIKE '%restarting%') ORDER BY ticket_id"}),
    )
    .await;
    assert_eq!(status, 200);
    let got: Vec<Value> = done["rows"].as_array().unwrap().iter().map(|r| r[0].clone()).collect();
    let want: Vec<Value> = expected["rows"].as_array().unwrap().iter().map(|r| r[0].clone()).collect();
    assert!(!want.is_empty());
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sql_is_repaired_and_follow_ups_survive_a_restart() {
    let llm = ScriptedLlm::start().await;
    let first = "How many films did Steven Spielberg direct?";
    llm.on(&format!("^{}$", regex::escape(first)), "```sql\nSELECT count(*) AS films FROM movies WHERE directr = 'Steven Spielberg'\n```");
    llm.on(r"^That query failed: .*directr", "```sql\nSELECT count(*) AS films FROM movies WHERE director = 'Steven Spielberg'\n```");
    llm.on(r"^Question: How many films did Steven Spielberg", "Steven Spielberg directed 6 films here [row 1].");
    let follow_up = "And which of them is the oldest?";
    llm.on(&format!("^{}$", regex::escape(follow_up)), "```sql\nSELECT title, year FROM movies WHERE director = 'Steven Spielberg' ORDER BY year LIMIT 1\n```");
    llm.on(r"^Question: And which of them", "Jaws, from 1975 [row 1].");

    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), &llm_env(&llm), &[]);
    let client = reqwest::Client::new();
    let (status, body) = post(&client, &server.url("/v1/ask"), json!({"question": first, "dataset": "movies"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!([[6]]));
    assert_eq!(body["failed_attempts"].as_array().unwrap().len(), 1);
    assert!(body["failed_attempts"][0]["error"].as_str().unwrap().contains("directr"));
    assert_eq!(body["stats"]["synthesis_llm"]["calls"], 2);
    let conversation = body["conversation_id"].as_str().unwrap().to_string();

    let (status, body) = post(
        &client,
        &server.url("/v1/ask"),
        json!({"question": follow_up, "dataset": "movies", "conversation_id": conversation}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!([["Jaws", 1975]]));
    assert_eq!(body["conversation_id"], conversation);
    // The follow-up's synthesis prompt holds the earlier turn.
    let synthesis = llm.requests_matching(&format!("^{}$", regex::escape(follow_up)));
    let messages = &synthesis[0].messages;
    assert!(messages.iter().any(|(role, c)| role == "user" && c == first));
    assert!(messages.iter().any(|(role, c)| role == "assistant" && c.contains("director = 'Steven Spielberg'")));

    server.stop();
    let server = ServerProcess::start(data.path(), &llm_env(&llm), &[]);
    let body: Value =
        client.get(server.url(&format!("/v1/conversations/{conversation}"))).send().await.unwrap().json().await.unwrap();
    let turns = body["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 2);
    assert_eq!(turns[1]["answer"], "Jaws, from 1975 [row 1].");
    let list: Value = client.get(server.url("/v1/conversations")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list[0]["id"], conversation);
    assert_eq!(list[0]["title"], first);

    let (status, _) = post(
        &client,
        &server.url("/v1/ask"),
        json!({"question": follow_up, "dataset": "movies", "conversation_id": conversation}),
    )
    .await;
    assert_eq!(status, 200);

    let renamed = client
        .patch(server.url(&format!("/v1/conversations/{conversation}")))
        .json(&json!({"title": "Spielberg"}))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 200);
    let deleted = client.delete(server.url(&format!("/v1/conversations/{conversation}"))).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    let gone = client.get(server.url(&format!("/v1/conversations/{conversation}"))).send().await.unwrap();
    assert_eq!(gone.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_results_and_unanswerable_questions_are_not_invented() {
    let llm = ScriptedLlm::start().await;
    llm.on(r"^Which films from 1850", "```sql\nSELECT title FROM movies WHERE year = 1850\n```");
    llm.on(r"^What will the weather be", "UNANSWERABLE: the dataset has no weather data");
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), &llm_env(&llm), &[]);
    let client = reqwest::Client::new();

    let (status, body) = post(&client, &server.url("/v1/ask"), json!({"question": "Which films from 1850 are there?", "dataset": "movies"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["row_count"], 0);
    assert!(body["answer"].as_str().unwrap().contains("returned no rows"));
    let (status, body) = post(&client, &server.url("/v1/ask"), json!({"question": "What will the weather be tomorrow?", "dataset": "movies"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sql"], Value::Null);
    assert!(body["answer"].as_str().unwrap().contains("no weather data"));
    assert_eq!(llm.requests().len(), 2, "no answer was generated by the LLM for either");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_failures_during_ask_are_clear_errors() {
    let llm = ScriptedLlm::start().await;
    script_nolan(&llm);
    llm.fail(None, Fault::Status(500), 100);
    let data = tempfile::tempdir().unwrap();
    let mut env = llm_env(&llm);
    env.push(("TAG_LLM_MAX_RETRIES", "1".into()));
    let server = ServerProcess::start(data.path(), &env, &[]);
    let client = reqwest::Client::new();
    let (status, body) = post(&client, &server.url("/v1/ask"), json!({"question": NOLAN_QUESTION, "dataset": "movies"})).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "llm_error");
    assert!(body["error"]["message"].as_str().unwrap().contains("500"));

    let llm = ScriptedLlm::start().await;
    llm.on(r".*", "I would rather talk about something else.");
    let mut env = llm_env(&llm);
    env.push(("TAG_QUERY_MAX_REPAIRS", "1".into()));
    let server = ServerProcess::start(data.path(), &env, &[]);
    let (status, body) = post(&client, &server.url("/v1/ask"), json!({"question": NOLAN_QUESTION, "dataset": "movies"})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "sql_error");
    assert!(body["error"]["message"].as_str().unwrap().contains("2 attempts"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_llm_the_server_says_what_to_configure() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), &[], &[]);
    let client = reqwest::Client::new();
    let health: Value = client.get(server.url("/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["llm"], Value::Null);
    let (status, body) = post(&client, &server.url("/v1/ask"), json!({"question": NOLAN_QUESTION, "dataset": "movies"})).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "llm_not_configured");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("TAG_LLM_BACKEND") && message.contains("TAG_LLM_BASE_URL"), "{message}");
    let (status, body) = post(&client, &server.url("/v1/sql"), json!({"sql": "SELECT count(*) AS n FROM movies", "dataset": "movies"})).await;
    assert_eq!(status, 200);
    assert_eq!(body["rows"], json!([[228]]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_endpoint_speaks_json_csv_and_arrow() {
    let data = tempfile::tempdir().unwrap();
    let mut env = vec![("TAG_QUERY_MAX_ROWS", "50".to_string())];
    let fixtures = tag_tests::harness::crate_dir().join("fixtures");
    env.push(("TAG_DATASETS_DIR", fixtures.to_string_lossy().into_owned()));
    let server = ServerProcess::start(data.path(), &env, &[]);
    let client = reqwest::Client::new();
    let sql = "SELECT movie_id, title, year FROM movies ORDER BY movie_id";

    let (status, body) = post(&client, &server.url("/v1/sql"), json!({"sql": sql, "dataset": "movies"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["row_count"], 228);
    assert_eq!(body["rows"].as_array().unwrap().len(), 50);
    assert_eq!(body["truncated"], true);
    assert_eq!(body["columns"], json!([
        {"name": "movie_id", "data_type": "BIGINT"},
        {"name": "title", "data_type": "VARCHAR"},
        {"name": "year", "data_type": "BIGINT"}
    ]));

    let response = client
        .post(server.url("/v1/sql"))
        .header("accept", "text/csv")
        .json(&json!({"sql": "SELECT title, year FROM movies WHERE year = 1942", "dataset": "movies"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-row-count"], "1");
    assert_eq!(response.text().await.unwrap(), "title,year\nCasablanca,1942\n");

    let response = client
        .post(server.url("/v1/sql"))
        .header("accept", "application/vnd.apache.arrow.stream")
        .json(&json!({"sql": sql, "dataset": "movies"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-row-count"], "228");
    assert_eq!(response.headers()["x-truncated"], "true");
    let bytes = response.bytes().await.unwrap();
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes.to_vec()), None).unwrap();
    let rows: usize = reader.map(|batch| batch.unwrap().num_rows()).sum();
    assert_eq!(rows, 50);

    // A dataset given as a folder, from TAG_DATASETS_DIR.
    let (status, body) = post(&client, &server.url("/v1/sql"), json!({"sql": "SELECT count(*) FROM cities", "dataset": "geo"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!([[3]]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datasets_are_described_with_columns_samples_and_examples() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), &[], &[]);
    let client = reqwest::Client::new();
    let list: Value = client.get(server.url("/v1/datasets")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list[0]["name"], "movies");
    assert_eq!(list[0]["tables"], json!([{"name": "movies", "row_count": 228, "columns": 8}, {"name": "reviews", "row_count": 684, "columns": 5}]));
    assert!(!list[0]["examples"].as_array().unwrap().is_empty());

    let body: Value = client.get(server.url("/v1/datasets/support")).send().await.unwrap().json().await.unwrap();
    let tickets = &body["tables"][0];
    assert_eq!(tickets["name"], "tickets");
    assert_eq!(tickets["primary_key"], "ticket_id");
    let category = tickets["columns"].as_array().unwrap().iter().find(|c| c["name"] == "category").unwrap();
    assert_eq!(category["data_type"], "VARCHAR");
    assert_eq!(category["values"].as_array().unwrap().len(), 6);
    assert!(category["description"].is_string());
    assert_eq!(body["sample_rows"]["tickets"]["rows"].as_array().unwrap().len(), 5);
    assert!(body["schema_text"].as_str().unwrap().contains("category VARCHAR -- ticket category; values:"));

    let missing = client.get(server.url("/v1/datasets/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_asks_and_runs_sql_in_process() {
    let llm = ScriptedLlm::start().await;
    script_nolan(&llm);
    let data = tempfile::tempdir().unwrap();
    let binary = server_binary();
    let base_url = llm.base_url();
    let data_dir = data.path().to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(binary)
            .args(["ask", NOLAN_QUESTION, "--dataset", "movies"])
            .env("TAG_LLM_BASE_URL", base_url)
            .env("TAG_DATA_DIR", data_dir)
            .env("TAG_LOG", "warn")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stdout.contains("The Dark Knight grossed the most"), "{stdout}");
    assert!(stderr.contains(NOLAN_SQL), "{stderr}");

    let output = Command::new(server_binary())
        .args(["sql", "SELECT count(*) AS n FROM tickets WHERE status = 'open'", "--dataset", "support", "--format", "csv"])
        .env("TAG_DATA_DIR", data.path())
        .env("TAG_LOG", "warn")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("n\n"), "{stdout}");
    let open: u64 = stdout.lines().nth(1).unwrap().parse().unwrap();
    assert!(open > 0);

    let output = Command::new(server_binary())
        .args(["sql", "DROP TABLE tickets", "--dataset", "support"])
        .env("TAG_DATA_DIR", data.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("only read-only queries"));

    let output = Command::new(server_binary())
        .args(["serve"])
        .env("TAG_DATA_DIR", data.path())
        .env("TAG_LLM_BASE_URL", "ftp://nowhere")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("TAG_LLM_BASE_URL"), "{}", String::from_utf8_lossy(&output.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_is_stored_per_answer_and_validated() {
    let llm = ScriptedLlm::start().await;
    script_nolan(&llm);
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), &llm_env(&llm), &[]);
    let client = reqwest::Client::new();
    let (status, answer) =
        post(&client, &server.url("/v1/ask"), json!({"question": NOLAN_QUESTION, "dataset": "movies"})).await;
    assert_eq!(status, 200, "{answer}");
    let turn_id = answer["turn_id"].as_i64().unwrap();

    let (status, stored) =
        post(&client, &server.url("/v1/feedback"), json!({"turn_id": turn_id, "rating": "down", "comment": " wrong film "})).await;
    assert_eq!(status, 201, "{stored}");
    assert_eq!((stored["rating"].as_str(), stored["comment"].as_str()), (Some("down"), Some("wrong film")));
    assert_eq!(stored["question"], NOLAN_QUESTION);
    let (status, _) = post(&client, &server.url("/v1/feedback"), json!({"turn_id": turn_id, "rating": "up"})).await;
    assert_eq!(status, 201);
    let all: Value = client.get(server.url("/v1/feedback")).send().await.unwrap().json().await.unwrap();
    assert_eq!(all.as_array().unwrap().len(), 1, "the second verdict replaces the first: {all}");
    assert_eq!((all[0]["rating"].as_str(), &all[0]["comment"]), (Some("up"), &Value::Null));

    let (status, body) = post(&client, &server.url("/v1/feedback"), json!({"turn_id": turn_id, "rating": "meh"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_request")), "{body}");
    let (status, body) = post(&client, &server.url("/v1/feedback"), json!({"turn_id": turn_id + 100, "rating": "up"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");
    let (status, body) = post(&client, &server.url("/v1/feedback"), json!({"rating": "up"})).await;
    assert_eq!(status, 400, "a missing turn_id is refused: {body}");
    let metrics = client.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tag_feedback_total{rating=\"up\"} 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_serves_the_page_bundle_or_says_how_to_build_it() {
    let data = tempfile::tempdir().unwrap();
    let bundle = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();

    let missing = bundle.path().join("missing");
    let server = ServerProcess::start(data.path(), &[("TAG_WEB_DIR", missing.display().to_string())], &[]);
    let response = client.get(server.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let hint = response.text().await.unwrap();
    assert!(hint.contains("The chat page is not built") && hint.contains(".ci/web"), "{hint}");
    server.stop();

    std::fs::write(bundle.path().join("index.html"), "<!doctype html><title>page</title>").unwrap();
    std::fs::write(bundle.path().join("app-1234.js"), "console.log(1)").unwrap();
    let server = ServerProcess::start(data.path(), &[("TAG_WEB_DIR", bundle.path().display().to_string())], &[]);
    let response = client.get(server.url("/")).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(response.text().await.unwrap(), "<!doctype html><title>page</title>");
    let script = client.get(server.url("/app-1234.js")).send().await.unwrap();
    assert_eq!(script.status(), 200);
    assert!(script.headers()["content-type"].to_str().unwrap().contains("javascript"));
    let unknown = client.get(server.url("/v1/nope")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found", "unknown API paths keep the JSON error");
    let post = client.post(server.url("/app-1234.js")).send().await.unwrap();
    assert_eq!(post.status(), 404, "only GET reaches the bundle");
    assert_eq!(post.json::<Value>().await.unwrap()["error"]["code"], "not_found");
    let traversal = client.get(server.url("/../Cargo.toml")).send().await.unwrap();
    assert_eq!(traversal.status(), 404);
}
