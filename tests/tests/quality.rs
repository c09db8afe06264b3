//! Answer quality through the real binary with the scripted LLM: the verified
//! example nearest the question and the business terms it uses reach the
//! synthesis prompt; an answer that loops is cut, replaced by one built from the
//! result and labelled; examples saved through the API survive a restart, wait
//! for an admin's approval when the saver is an analyst, and reach synthesis once
//! approved; bad example requests get clear errors.

use serde_json::{json, Value};
use tag_tests::{
    harness::{create_token, ServerProcess},
    scripted_llm::ScriptedLlm,
};

fn llm_env(llm: &ScriptedLlm) -> Vec<(&'static str, String)> {
    vec![
        ("TAG_LLM_BASE_URL", llm.base_url()),
        ("TAG_LLM_MODEL", "scripted-model".into()),
        ("TAG_LLM_RETRY_BASE_MS", "5".into()),
    ]
}

async fn call(client: &reqwest::Client, method: &str, url: &str, token: Option<&Value>, body: Option<Value>) -> (u16, Value) {
    let mut request = client.request(method.parse().unwrap(), url);
    if let Some(token) = token {
        request = request.bearer_auth(token["secret"].as_str().unwrap());
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

const BURTON: &str = "Which Steven Spielberg film grossed the least?";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nearest_example_and_the_terms_used_reach_the_prompt_and_a_looping_answer_is_replaced() {
    let llm = ScriptedLlm::start().await;
    llm.on(&format!("^{}$", regex::escape(BURTON)), "```sql\nSELECT count(*) AS films FROM movies WHERE director = 'Tim Burton'\n```");
    llm.on("^Question: Which Steven Spielberg", "I'm glad you asked about Spielberg. I'm glad you asked about Spielberg. I'm glad you");
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), &llm_env(&llm), &[]);
    let client = reqwest::Client::new();
    let (status, body) = call(&client, "POST", &server.url("/v1/ask"), None, Some(json!({"question": BURTON, "dataset": "movies"}))).await;
    assert_eq!(status, 200, "{body}");

    // Retrieval: the verified example that shares the question's terms comes first,
    // as an earlier exchange; the term "grossed" brings its meaning.
    let synthesis = &llm.requests()[0];
    let users: Vec<&str> = synthesis.messages.iter().filter(|(role, _)| role == "user").map(|(_, c)| c.as_str()).collect();
    assert_eq!(users.first(), Some(&"Which Steven Spielberg film grossed the most?"), "{users:?}");
    assert_eq!(users.last(), Some(&BURTON));
    let assistant = synthesis.messages.iter().find(|(role, _)| role == "assistant").unwrap();
    assert!(assistant.1.contains("director = 'Steven Spielberg' ORDER BY box_office_usd_millions DESC LIMIT 1"), "{}", assistant.1);
    assert!(synthesis.system().contains("BUSINESS TERMS"), "{}", synthesis.system());
    assert!(synthesis.system().contains("movies.box_office_usd_millions (worldwide box office"), "{}", synthesis.system());
    assert!(!synthesis.system().contains("reviews.rating (1 to 5 stars)"), "a term the question does not use is not shown");
    assert_eq!(body["stats"]["synthesis"]["examples"][0], "Which Steven Spielberg film grossed the most?");
    assert_eq!(body["stats"]["synthesis"]["terms"][0], "gross");
    assert_eq!(body["stats"]["synthesis"]["grammar"], false, "a server without a grammar field gets none");

    // The answer looped: replaced by the result's value, labelled, with the SQL.
    let answer = body["answer"].as_str().unwrap();
    assert_eq!(body["fallback"], "the model's answer repeated itself");
    assert!(answer.starts_with("Built from the result, not written by the model (the model's answer repeated itself)"), "{answer}");
    assert!(answer.contains("films is 0 [row 1]."), "{answer}");
    assert!(answer.contains("SQL that was run: `SELECT count(*) AS films FROM movies WHERE director = 'Tim Burton'`"), "{answer}");
    // The answer's budget is the smaller one.
    let generation = llm.requests().into_iter().find(|r| r.last_user().starts_with("Question:")).unwrap();
    assert_eq!(generation.max_tokens, Some(400));
    assert_eq!(synthesis.max_tokens, Some(1024));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_examples_wait_for_approval_survive_a_restart_and_reach_synthesis() {
    let llm = ScriptedLlm::start().await;
    const SQL: &str = "SELECT title FROM movies WHERE country = 'Japan' ORDER BY year LIMIT 1";
    llm.on("^What is the oldest Japanese film", format!("```sql\n{SQL}\n```"));
    llm.on("^Which is the earliest Japanese film", format!("```sql\n{SQL}\n```"));
    llm.on("^Question:", "Seven Samurai [row 1].");
    let data = tempfile::tempdir().unwrap();
    let admin = create_token(data.path(), &["--name", "root", "--role", "admin"]);
    let ann = create_token(data.path(), &["--name", "ann", "--role", "analyst"]);
    let server = ServerProcess::start(data.path(), &llm_env(&llm), &[]);
    let client = reqwest::Client::new();
    let examples = server.url("/v1/datasets/movies/examples");

    // An analyst saves an answer's SQL (by its turn): it waits for an admin.
    let ask = json!({"question": "What is the oldest Japanese film?", "dataset": "movies"});
    let (status, asked) = call(&client, "POST", &server.url("/v1/ask"), Some(&ann), Some(ask)).await;
    assert_eq!(status, 200, "{asked}");
    let (status, saved) = call(&client, "POST", &examples, Some(&ann), Some(json!({"turn_id": asked["turn_id"]}))).await;
    assert_eq!(status, 201, "{saved}");
    assert_eq!((saved["status"].as_str(), saved["sql"].as_str(), saved["saved_by"].as_str()), (Some("pending"), Some(SQL), Some("ann")));
    let approve = server.url(&format!("/v1/datasets/movies/examples/{}/approve", saved["id"]));
    let (status, refused) = call(&client, "POST", &approve, Some(&ann), None).await;
    assert_eq!(status, 403, "an analyst cannot approve: {refused}");
    // Pending, it is not shown to synthesis.
    llm.clear_requests();
    let ask = json!({"question": "Which is the earliest Japanese film?", "dataset": "movies"});
    let (status, _) = call(&client, "POST", &server.url("/v1/ask"), Some(&ann), Some(ask.clone())).await;
    assert_eq!(status, 200);
    assert!(!llm.requests()[0].messages.iter().any(|(_, c)| c == "What is the oldest Japanese film?"));

    // Bad requests: clear errors, nothing saved.
    for (body, expected) in [
        (json!({"question": "Delete them", "sql": "DELETE FROM movies"}), 400),
        (json!({"question": "q", "sql": "SELECT nosuch FROM movies"}), 400),
        (json!({"question": "  ", "sql": "SELECT 1"}), 400),
        (json!({"turn_id": 1, "question": "q", "sql": "SELECT 1"}), 400),
        (json!({"turn_id": 999_999}), 404),
        (json!({"question": "q", "sql": "SELECT 1", "extra": true}), 400),
    ] {
        let (status, error) = call(&client, "POST", &examples, Some(&admin), Some(body.clone())).await;
        assert_eq!(status, expected, "{body} → {error}");
        assert!(error["error"]["message"].is_string(), "{error}");
    }
    let (status, _) = call(&client, "POST", &server.url("/v1/datasets/nosuch/examples"), Some(&admin), Some(json!({"question": "q", "sql": "SELECT 1"}))).await;
    assert_eq!(status, 404);
    let (status, _) = call(&client, "POST", &examples, None, Some(json!({"question": "q", "sql": "SELECT 1"}))).await;
    assert_eq!(status, 401);

    // The admin approves; after a restart it is there, approved, and used.
    let (status, approved) = call(&client, "POST", &approve, Some(&admin), None).await;
    assert_eq!((status, approved["status"].as_str()), (200, Some("approved")), "{approved}");
    server.stop();
    let server = ServerProcess::start(data.path(), &llm_env(&llm), &[]);
    let (status, listed) = call(&client, "GET", &server.url("/v1/datasets/movies/examples"), Some(&ann), None).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["saved"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["saved"][0]["status"], "approved");
    assert!(listed["verified"].as_array().unwrap().len() >= 5, "the description file's examples are listed too");
    llm.clear_requests();
    let (status, body) = call(&client, "POST", &server.url("/v1/ask"), Some(&ann), Some(ask)).await;
    assert_eq!(status, 200, "{body}");
    let synthesis = &llm.requests()[0];
    assert!(synthesis.messages.iter().any(|(role, c)| role == "user" && c == "What is the oldest Japanese film?"), "{:?}", synthesis.messages);
    assert_eq!(body["stats"]["synthesis"]["examples"][0], "What is the oldest Japanese film?");
    // An admin's own example is approved at once.
    let (status, mine) = call(&client, "POST", &server.url("/v1/datasets/movies/examples"), Some(&admin), Some(json!({"question": "How many films?", "sql": "SELECT count(*) FROM movies;"}))).await;
    assert_eq!((status, mine["status"].as_str(), mine["sql"].as_str()), (201, Some("approved"), Some("SELECT count(*) FROM movies")));
    let path = server.url(&format!("/v1/datasets/movies/examples/{}", mine["id"]));
    assert_eq!(call(&client, "DELETE", &path, Some(&ann), None).await.0, 403);
    assert_eq!(call(&client, "DELETE", &path, Some(&admin), None).await.0, 204);
    assert_eq!(call(&client, "DELETE", &path, Some(&admin), None).await.0, 404);
}
