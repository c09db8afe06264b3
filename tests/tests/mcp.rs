//! The MCP server at /mcp through the real binary on a real socket, with the
//! official MCP Python SDK as the client (nobody here wrote it) and the scripted
//! LLM: the tools (list and describe datasets, ask with progress notifications,
//! read-only SQL), the schema resources, and tokens: scoped to their datasets,
//! refused without or with a bad one; hostile SQL refused as a tool error with
//! nothing changed.

use serde_json::{json, Value};
use tag_tests::{
    harness::{clients_dir, clients_python, create_token, ServerProcess},
    scripted_llm::ScriptedLlm,
};

const QUESTION: &str = "Which Christopher Nolan film grossed the most?";
const SQL: &str = "SELECT title, box_office_usd_millions FROM movies WHERE director = 'Christopher Nolan' ORDER BY box_office_usd_millions DESC LIMIT 1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_sdk_lists_describes_asks_and_queries_with_a_scoped_token() {
    let Some(python) = clients_python() else { return };
    let llm = ScriptedLlm::start().await;
    llm.on(&format!("^{}$", regex::escape(QUESTION)), format!("```sql\n{SQL}\n```"));
    llm.on(r"^Question: Which Christopher Nolan", "The Dark Knight grossed the most [row 1].");
    let data = tempfile::tempdir().unwrap();
    let admin = create_token(data.path(), &["--name", "root", "--role", "admin"]);
    let agent = create_token(data.path(), &["--name", "agent", "--datasets", "movies"]);
    let env = [("TAG_LLM_BASE_URL", llm.base_url()), ("TAG_LLM_MODEL", "scripted-model".to_string())];
    let server = ServerProcess::start(data.path(), &env, &[]);

    let output = tokio::process::Command::new(&python)
        .arg(clients_dir().join("mcp_client.py"))
        .args([server.url("/mcp"), agent["secret"].as_str().unwrap().to_string(), QUESTION.to_string()])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)));

    assert_eq!(seen["server"], "tag-server");
    assert_eq!(seen["tools"], json!(["ask", "describe_dataset", "list_datasets", "sql"]));
    // The token sees its one dataset, and the other reads as not found.
    let datasets = seen["datasets"]["content"]["datasets"].as_array().unwrap_or_else(|| panic!("{seen}"));
    assert_eq!(datasets.iter().map(|d| d["name"].as_str().unwrap()).collect::<Vec<_>>(), ["movies"]);
    assert_eq!(seen["describe"]["error"], false);
    assert!(seen["describe"]["content"]["schema_text"].as_str().unwrap().contains("TABLE movies"), "{seen}");
    assert_eq!(seen["describe_support"]["error"], true);
    assert_eq!(seen["describe_support"]["content"]["code"], "not_found");

    assert_eq!(seen["sql"]["error"], false);
    assert_eq!(seen["sql"]["content"]["rows"], json!([["The Dark Knight", 2008], ["Inception", 2010]]));
    assert_eq!(seen["sql_drop"]["error"], true);
    assert_eq!(seen["sql_drop"]["content"]["code"], "rejected_sql");
    assert_eq!(seen["sql_unknown"]["content"]["code"], "not_found");
    assert_eq!(seen["count_after"]["content"]["rows"], json!([[228]]), "nothing changed");

    // A question: the answer, the SQL and the rows, with progress on the way.
    assert_eq!(seen["ask"]["error"], false, "{seen}");
    let ask = &seen["ask"]["content"];
    assert_eq!(ask["answer"], "The Dark Knight grossed the most [row 1].");
    assert_eq!(ask["sql"], SQL);
    assert_eq!(ask["rows"], json!([["The Dark Knight", 1006]]));
    let progress: Vec<&str> = seen["progress"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for expected in ["synthesis (attempt 1)", "execution (attempt 1)", "generation (attempt 1)"] {
        assert!(progress.contains(&expected), "progress {expected}: {progress:?}");
    }
    assert!(progress.iter().any(|p| p.starts_with("sql: SELECT title")), "{progress:?}");

    assert_eq!(seen["resources"], json!(["tag://datasets/movies/schema"]));
    assert!(seen["schema"].as_str().unwrap().starts_with("Dataset `movies`"), "{seen}");
    assert_eq!(seen["no_token"], 401);
    assert_eq!(seen["bad_token"], 401);

    // In the audit trail as interface `mcp`, under the agent's name.
    let audit: Value = reqwest::Client::new()
        .get(server.url("/v1/audit?limit=100"))
        .bearer_auth(admin["secret"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = audit["entries"].as_array().unwrap_or_else(|| panic!("{audit}"));
    let mcp: Vec<&Value> = entries.iter().filter(|e| e["interface"] == "mcp" && e["principal"] == "agent").collect();
    assert!(mcp.iter().any(|e| e["action"] == "ask" && e["question"] == QUESTION), "{audit}");
    assert!(mcp.iter().any(|e| e["action"] == "sql" && e["outcome"] == "rejected_sql"), "{audit}");
}
