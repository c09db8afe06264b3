//! Hostile and malformed input against the real server: each gets a clear 4xx JSON
//! error, and nothing changes on disk (datasets, the server's data directory, or
//! files the SQL tried to write).

use std::path::Path;

use serde_json::{json, Value};
use tag_tests::{
    harness::{datasets_dir, snapshot, ServerProcess},
    hostile,
    scripted_llm::ScriptedLlm,
};

/// Every file under `dir` with its contents.
enum Body {
    Json(Value),
    Raw(&'static str, Vec<u8>),
}

struct Case {
    name: &'static str,
    path: &'static str,
    body: Body,
    status: u16,
    code: &'static str,
}

fn sql_case(name: &'static str, sql: &str, code: &'static str) -> Case {
    Case { name, path: "/v1/sql", body: Body::Json(json!({"sql": sql, "dataset": "movies"})), status: 400, code }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_and_malformed_requests_get_clear_errors_and_change_nothing() {
    let llm = ScriptedLlm::start().await;
    llm.default_reply("```sql\nDROP TABLE movies\n```");
    let data = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("stolen.csv");
    let target = target.to_string_lossy().to_string();
    let env = vec![
        ("TAG_LLM_BASE_URL", llm.base_url()),
        ("TAG_QUERY_MAX_REPAIRS", "1".to_string()),
        ("TAG_MAX_BODY_BYTES", "65536".to_string()),
    ];
    let server = ServerProcess::start(data.path(), &env, &[]);
    // A fresh connection per request: the server closes the connection it rejected
    // the oversized body on, and a pooled client would reuse it for the next case.
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    // Warm up: one good query, so the state database exists before the snapshot.
    let warm = client.post(server.url("/v1/sql")).json(&json!({"sql": "SELECT 1", "dataset": "movies"})).send().await.unwrap();
    assert_eq!(warm.status(), 200);
    let datasets_before = snapshot(&datasets_dir());
    let data_before = snapshot(data.path());

    let outside_dir = outside.path().to_string_lossy().to_string();
    let mut cases: Vec<Case> = hostile::STATEMENTS
        .iter()
        .map(|(name, statement)| sql_case(name, &statement.replace('@', &outside_dir), "rejected_sql"))
        .collect();
    cases.extend([
        sql_case("unknown table", "SELECT * FROM secrets", "sql_error"),
        Case { name: "unknown dataset (sql)", path: "/v1/sql", body: Body::Json(json!({"sql": "SELECT 1", "dataset": "nope"})), status: 404, code: "not_found" },
        Case { name: "missing field", path: "/v1/sql", body: Body::Json(json!({"dataset": "movies"})), status: 400, code: "invalid_request" },
        Case { name: "unknown field", path: "/v1/sql", body: Body::Json(json!({"sql": "SELECT 1", "dataset": "movies", "mode": "write"})), status: 400, code: "invalid_request" },
        Case { name: "invalid json", path: "/v1/sql", body: Body::Raw("application/json", b"{\"sql\": ".to_vec()), status: 400, code: "invalid_request" },
        Case { name: "not json", path: "/v1/ask", body: Body::Raw("text/plain", b"question=hi".to_vec()), status: 415, code: "unsupported_media_type" },
        Case { name: "huge body", path: "/v1/sql", body: Body::Raw("application/json", vec![b' '; 2 * 1024 * 1024]), status: 413, code: "payload_too_large" },
        Case { name: "empty question", path: "/v1/ask", body: Body::Json(json!({"question": "  ", "dataset": "movies"})), status: 400, code: "invalid_request" },
        Case { name: "question too long", path: "/v1/ask", body: Body::Json(json!({"question": "why ".repeat(2000), "dataset": "movies"})), status: 400, code: "invalid_request" },
        Case { name: "unknown dataset (ask)", path: "/v1/ask", body: Body::Json(json!({"question": "hi", "dataset": "nope"})), status: 404, code: "not_found" },
        Case { name: "unknown conversation", path: "/v1/ask", body: Body::Json(json!({"question": "hi", "dataset": "movies", "conversation_id": "nope"})), status: 404, code: "not_found" },
        Case { name: "wrong type", path: "/v1/ask", body: Body::Json(json!({"question": 42, "dataset": "movies"})), status: 400, code: "invalid_request" },
        Case { name: "llm writes DDL", path: "/v1/ask", body: Body::Json(json!({"question": "drop everything", "dataset": "movies"})), status: 400, code: "sql_error" },
    ]);
    cases.push(Case {
        name: "no such endpoint",
        path: "/v1/drop",
        body: Body::Json(json!({})),
        status: 404,
        code: "not_found",
    });
    assert!(cases.len() >= 30);

    for case in &cases {
        let request = client.post(server.url(case.path));
        let request = match &case.body {
            Body::Json(value) => request.json(value),
            Body::Raw(content_type, bytes) => request.header("content-type", *content_type).body(bytes.clone()),
        };
        let response = request.send().await.unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or_else(|e| panic!("{}: body is not JSON: {e}", case.name));
        assert_eq!(status, case.status, "{}: {body}", case.name);
        assert_eq!(body["error"]["code"], case.code, "{}: {body}", case.name);
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(message.len() > 10, "{}: the message explains: {body}", case.name);
    }

    // The LLM's DDL never ran: the table is whole.
    let response = client.post(server.url("/v1/sql")).json(&json!({"sql": "SELECT count(*) FROM movies", "dataset": "movies"})).send().await.unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["rows"], json!([[228]]));
    assert!(!Path::new(&target).exists(), "nothing was written outside");
    assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none(), "nothing was written outside");
    assert!(snapshot(&datasets_dir()) == datasets_before, "datasets changed");
    let data_after = snapshot(data.path());
    assert_eq!(data_before.keys().collect::<Vec<_>>(), data_after.keys().collect::<Vec<_>>(), "no files appeared in the data dir");
    let conversations: Value = client.get(server.url("/v1/conversations")).send().await.unwrap().json().await.unwrap();
    assert_eq!(conversations, json!([]), "failed questions leave no conversations behind");
}
