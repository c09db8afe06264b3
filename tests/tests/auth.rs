//! Access control through the real binary on a real socket: every endpoint under
//! every kind of caller (no token, a malformed header, unknown, revoked and expired
//! tokens, an analyst on a dataset it may not use, an analyst on another's
//! conversation, an analyst on admin endpoints, the owner, an admin), with the
//! statuses and JSON errors, and nothing changed by a refused request; tokens
//! created with the CLI surviving a restart and a revocation taking effect at once;
//! the refusal to listen beyond loopback without tokens; budgets under 32
//! concurrent requests; the cost estimate and its confirmation through the API; the
//! per-query cap; the audit trail.

use std::{path::Path, process::Command, time::Duration};

use serde_json::{json, Value};
use tag_tests::{
    harness::{create_token, server_binary, token_command, ServerProcess},
    scripted_llm::ScriptedLlm,
};

const QUESTION: &str = "Which Christopher Nolan film grossed the most?";
const SQL: &str = "SELECT title FROM movies WHERE director = 'Christopher Nolan' ORDER BY box_office_usd_millions DESC LIMIT 1";
/// One LLM call per review (684 of them, few repeated): over a threshold of 100.
const COSTLY: &str = "SELECT count(*) AS n FROM reviews WHERE llm_filter('{review_text} is enthusiastic')";
const COSTLY_QUESTION: &str = "How many reviews are enthusiastic?";

fn llm_env(llm: &ScriptedLlm) -> Vec<(&'static str, String)> {
    vec![
        ("TAG_LLM_BASE_URL", llm.base_url()),
        ("TAG_LLM_MODEL", "scripted-model".into()),
        ("TAG_LLM_RETRY_BASE_MS", "5".into()),
    ]
}

fn script(llm: &ScriptedLlm) {
    llm.on(&format!("^{}$", regex::escape(QUESTION)), format!("```sql\n{SQL}\n```"));
    llm.on(r"^Question: Which Christopher Nolan", "The Dark Knight [row 1].");
    llm.on(&format!("^{}$", regex::escape(COSTLY_QUESTION)), format!("```sql\n{COSTLY}\n```"));
    llm.on(r"^Question: How many reviews", "Many of them [row 1].");
    llm.on(r"(?s)Statement:", "yes");
    llm.default_reply("A tagline.");
}

fn cli(data: &Path, args: &[&str]) -> (bool, String, String) {
    token_command(data, args)
}

fn create(data: &Path, args: &[&str]) -> Value {
    create_token(data, args)
}

struct Reply {
    status: u16,
    body: Value,
    retry_after: Option<String>,
    www_authenticate: Option<String>,
}

async fn call(client: &reqwest::Client, method: &str, url: &str, auth: Option<&str>, body: Option<Value>) -> Reply {
    let mut request = client.request(method.parse().unwrap(), url);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_string());
    let (retry_after, www_authenticate) = (header("retry-after"), header("www-authenticate"));
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    Reply { status, body: serde_json::from_str(&text).unwrap_or(Value::String(text)), retry_after, www_authenticate }
}

fn bearer(token: &Value) -> String {
    format!("Bearer {}", token["secret"].as_str().unwrap())
}

/// The callers of the matrix, in column order.
const CALLERS: [&str; 8] = ["none", "malformed", "unknown", "revoked", "expired", "other analyst", "owner (analyst)", "admin"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_every_kind_of_caller_as_it_should() {
    let llm = ScriptedLlm::start().await;
    script(&llm);
    let data = tempfile::tempdir().unwrap();
    let admin = create(data.path(), &["--name", "root", "--role", "admin"]);
    let ann = create(data.path(), &["--name", "ann", "--datasets", "movies"]);
    let bob = create(data.path(), &["--name", "bob"]);
    let revoked = create(data.path(), &["--name", "gone"]);
    assert!(cli(data.path(), &["revoke", revoked["id"].as_str().unwrap()]).0);
    let expired = create(data.path(), &["--name", "old", "--expires-in", "1s"]);
    std::thread::sleep(Duration::from_millis(1100));
    let server = ServerProcess::start(data.path(), &llm_env(&llm), &[]);
    let client = reqwest::Client::new();
    let url = |path: &str| server.url(path);

    // The owner's conversation, turn and feedback, and a cache entry, to read and to try to change.
    let asked = call(&client, "POST", &url("/v1/ask"), Some(&bearer(&ann)), Some(json!({"question": QUESTION, "dataset": "movies"}))).await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    let (conversation, turn) = (asked.body["conversation_id"].as_str().unwrap().to_string(), asked.body["turn_id"].as_i64().unwrap());
    let feedback = json!({"turn_id": turn, "rating": "up", "comment": "right"});
    assert_eq!(call(&client, "POST", &url("/v1/feedback"), Some(&bearer(&ann)), Some(feedback)).await.status, 201);
    let mapped = json!({"sql": "SELECT llm_map('Tagline for {title}') FROM movies LIMIT 1", "dataset": "movies"});
    assert_eq!(call(&client, "POST", &url("/v1/sql"), Some(&bearer(&admin)), Some(mapped)).await.status, 200);

    let auths: Vec<Option<String>> = vec![
        None,
        Some("Basic cm9vdDpyb290".into()),
        Some("Bearer tag_000000000000_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into()),
        Some(bearer(&revoked)),
        Some(bearer(&expired)),
        Some(bearer(&bob)),
        Some(bearer(&ann)),
        Some(bearer(&admin)),
    ];
    let conv = format!("/v1/conversations/{conversation}");
    let sql_movies = json!({"sql": "SELECT count(*) FROM movies", "dataset": "movies"});
    let sql_support = json!({"sql": "SELECT count(*) FROM tickets", "dataset": "support"});
    let ask_support = json!({"question": "How many tickets?", "dataset": "support"});
    // (method, path, body, expected status per caller); the admin's column runs last.
    let rows: Vec<(&str, String, Option<Value>, [u16; 8])> = vec![
        ("GET", "/healthz".into(), None, [200, 200, 200, 200, 200, 200, 200, 200]),
        ("GET", "/v1/me".into(), None, [401, 401, 401, 401, 401, 200, 200, 200]),
        ("GET", "/v1/datasets".into(), None, [401, 401, 401, 401, 401, 200, 200, 200]),
        ("GET", "/v1/datasets/movies".into(), None, [401, 401, 401, 401, 401, 200, 200, 200]),
        ("GET", "/v1/datasets/support".into(), None, [401, 401, 401, 401, 401, 200, 404, 200]),
        ("GET", "/v1/datasets/nosuch".into(), None, [401, 401, 401, 401, 401, 404, 404, 404]),
        ("POST", "/v1/datasets/movies/refresh".into(), None, [401, 401, 401, 401, 401, 403, 403, 200]),
        ("POST", "/v1/datasets/support/refresh".into(), None, [401, 401, 401, 401, 401, 403, 404, 200]),
        ("POST", "/v1/sql".into(), Some(sql_movies), [401, 401, 401, 401, 401, 200, 200, 200]),
        ("POST", "/v1/sql".into(), Some(sql_support), [401, 401, 401, 401, 401, 200, 404, 200]),
        ("POST", "/v1/ask".into(), Some(ask_support), [401, 401, 401, 401, 401, 400, 404, 400]),
        ("GET", "/v1/conversations".into(), None, [401, 401, 401, 401, 401, 200, 200, 200]),
        ("GET", conv.clone(), None, [401, 401, 401, 401, 401, 404, 200, 200]),
        ("PATCH", conv.clone(), Some(json!({"title": "taken over"})), [401, 401, 401, 401, 401, 404, 200, 200]),
        ("POST", "/v1/feedback".into(), Some(json!({"turn_id": turn, "rating": "down"})), [401, 401, 401, 401, 401, 404, 201, 201]),
        ("GET", "/v1/feedback".into(), None, [401, 401, 401, 401, 401, 200, 200, 200]),
        ("GET", "/v1/cache".into(), None, [401, 401, 401, 401, 401, 403, 403, 200]),
        ("GET", "/v1/audit".into(), None, [401, 401, 401, 401, 401, 403, 403, 200]),
        ("GET", "/v1/tokens".into(), None, [401, 401, 401, 401, 401, 403, 403, 200]),
        ("POST", "/v1/tokens".into(), Some(json!({"name": "x", "role": "admin"})), [401, 401, 401, 401, 401, 403, 403, 201]),
        ("GET", "/metrics".into(), None, [401, 401, 401, 401, 401, 403, 403, 200]),
        ("DELETE", "/v1/cache".into(), None, [401, 401, 401, 401, 401, 403, 403, 200]),
        ("DELETE", conv.clone(), None, [401, 401, 401, 401, 401, 404, 204, 404]),
    ];
    let mut table = format!("| endpoint | {} |\n|---|{}\n", CALLERS.join(" | "), "---|".repeat(CALLERS.len()));
    let mut failures = Vec::new();
    let mut seen: Vec<[u16; 8]> = vec![[0; 8]; rows.len()];
    // First every refused request and the analysts' reads, then a check that nothing
    // changed, then the changes that are allowed (the owner's, then the admin's).
    for pass in 0..2 {
        for (r, (method, path, body, expected)) in rows.iter().enumerate() {
            for (c, auth) in auths.iter().enumerate() {
                let reads = *method == "GET" || path.starts_with("/v1/sql") || path.starts_with("/v1/ask");
                let first = CALLERS[c] != "admin" && (expected[c] >= 300 || reads);
                if (pass == 0) != first {
                    continue;
                }
                let reply = call(&client, method, &url(path), auth.as_deref(), body.clone()).await;
                seen[r][c] = reply.status;
                if reply.status != expected[c] {
                    failures.push(format!("{method} {path} as {}: {} (expected {}): {}", CALLERS[c], reply.status, expected[c], reply.body));
                }
                if reply.status >= 400 {
                    let code = reply.body["error"]["code"].as_str().unwrap_or("");
                    let message = reply.body["error"]["message"].as_str().unwrap_or("");
                    if code.is_empty() || message.is_empty() {
                        failures.push(format!("{method} {path} as {}: no JSON error: {}", CALLERS[c], reply.body));
                    }
                    if reply.status == 401 && reply.www_authenticate.as_deref() != Some("Bearer") {
                        failures.push(format!("{method} {path} as {}: 401 without WWW-Authenticate: Bearer", CALLERS[c]));
                    }
                    if reply.status == 404 && reply.body.to_string().contains("may not") {
                        failures.push(format!("{method} {path} as {}: a 404 that says why: {}", CALLERS[c], reply.body));
                    }
                }
                if c == 2 || c == 3 || c == 4 {
                    // Unknown, revoked and expired: one answer, word for word.
                    let unknown = call(&client, method, &url(path), auths[2].as_deref(), body.clone()).await;
                    if unknown.body != reply.body {
                        failures.push(format!("{method} {path}: {} answers differently from unknown: {}", CALLERS[c], reply.body));
                    }
                }
            }
        }
        if pass == 0 {
            // Nothing the refused requests tried changed anything.
            let mine = call(&client, "GET", &url(&conv), Some(&bearer(&admin)), None).await;
            assert_eq!(mine.body["conversation"]["title"], QUESTION, "{}", mine.body);
            let feedback = call(&client, "GET", &url("/v1/feedback"), Some(&bearer(&admin)), None).await;
            assert_eq!((feedback.body[0]["rating"].as_str(), feedback.body[0]["comment"].as_str()), (Some("up"), Some("right")));
            let cache = call(&client, "GET", &url("/v1/cache"), Some(&bearer(&admin)), None).await;
            assert!(cache.body["entries"].as_u64().unwrap() >= 1, "{}", cache.body);
            let tokens = call(&client, "GET", &url("/v1/tokens"), Some(&bearer(&admin)), None).await;
            assert_eq!(tokens.body.as_array().unwrap().len(), 5, "{}", tokens.body);
            let bobs = call(&client, "GET", &url("/v1/conversations"), Some(&bearer(&bob)), None).await;
            assert_eq!(bobs.body, json!([]), "another analyst sees none of ann's conversations");
            let bobs = call(&client, "GET", &url("/v1/feedback"), Some(&bearer(&bob)), None).await;
            assert_eq!(bobs.body, json!([]));
            let datasets = call(&client, "GET", &url("/v1/datasets"), Some(&bearer(&ann)), None).await;
            let names: Vec<&str> = datasets.body.as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
            assert_eq!(names, vec!["movies"], "only the datasets the token may use");
        }
    }
    for (r, (method, path, body, _)) in rows.iter().enumerate() {
        let shown: Vec<String> = seen[r].iter().map(u16::to_string).collect();
        let on = body.as_ref().and_then(|b| b["dataset"].as_str()).map(|d| format!(" ({d})")).unwrap_or_default();
        table.push_str(&format!("| {method} {}{on} | {} |\n", path.replace(&conversation, "{id}"), shown.join(" | ")));
    }
    println!("{table}");
    assert!(failures.is_empty(), "{}\n{table}", failures.join("\n"));

    let health = call(&client, "GET", &url("/healthz"), None, None).await;
    assert_eq!(health.body["auth"]["required"], true);
    assert!(health.body.get("datasets").is_none(), "no dataset names without a token: {}", health.body);
    let me = call(&client, "GET", &url("/v1/me"), Some(&bearer(&ann)), None).await;
    assert_eq!((me.body["name"].as_str(), me.body["role"].as_str()), (Some("ann"), Some("analyst")));
    assert_eq!(me.body["datasets"], json!(["movies"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_survive_a_restart_and_a_revocation_works_at_once() {
    let data = tempfile::tempdir().unwrap();
    let ann = create(data.path(), &["--name", "ann"]);
    let client = reqwest::Client::new();
    let server = ServerProcess::start(data.path(), &[], &[]);
    assert_eq!(call(&client, "GET", &server.url("/v1/datasets"), Some(&bearer(&ann)), None).await.status, 200);
    server.stop();
    let server = ServerProcess::start(data.path(), &[], &[]);
    assert_eq!(call(&client, "GET", &server.url("/v1/datasets"), Some(&bearer(&ann)), None).await.status, 200, "after a restart");
    let (ok, listed, _) = cli(data.path(), &["list"]);
    assert!(ok && listed.contains("ann") && !listed.contains(ann["secret"].as_str().unwrap()), "{listed}");
    assert!(cli(data.path(), &["revoke", "ann"]).0);
    let refused = call(&client, "GET", &server.url("/v1/datasets"), Some(&bearer(&ann)), None).await;
    assert_eq!(refused.status, 401, "revoked by another process, without a restart");
    assert!(!cli(data.path(), &["revoke", "nobody"]).0, "revoking an unknown token fails");

    // Through the API: an admin creates and revokes.
    let admin = create(data.path(), &["--name", "root", "--role", "admin"]);
    let body = json!({"name": "bi", "role": "analyst", "datasets": ["support"], "tokens_per_day": 1000});
    let made = call(&client, "POST", &server.url("/v1/tokens"), Some(&bearer(&admin)), Some(body)).await;
    assert_eq!(made.status, 201, "{}", made.body);
    let bi = made.body.clone();
    let me = call(&client, "GET", &server.url("/v1/me"), Some(&bearer(&bi)), None).await;
    assert_eq!((me.body["tokens_per_day"].as_u64(), me.body["budget_remaining"].as_u64()), (Some(1000), Some(1000)));
    let bad = call(&client, "POST", &server.url("/v1/tokens"), Some(&bearer(&admin)), Some(json!({"name": "x", "role": "root"}))).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    let body = json!({"name": "x", "role": "analyst", "datasets": ["nosuch"]});
    let bad = call(&client, "POST", &server.url("/v1/tokens"), Some(&bearer(&admin)), Some(body)).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    let path = format!("/v1/tokens/{}", bi["id"].as_str().unwrap());
    assert_eq!(call(&client, "DELETE", &server.url(&path), Some(&bearer(&admin)), None).await.status, 204);
    assert_eq!(call(&client, "GET", &server.url("/v1/me"), Some(&bearer(&bi)), None).await.status, 401);
    assert_eq!(call(&client, "DELETE", &server.url(&path), Some(&bearer(&admin)), None).await.status, 404, "already revoked");
}

#[test]
fn listening_beyond_loopback_without_tokens_is_refused_unless_opted_out() {
    let data = tempfile::tempdir().unwrap();
    let run = |extra: &[(&str, &str)]| {
        let mut command = Command::new(server_binary());
        command
            .args(["--no-bundled", "serve", "--listen", "0.0.0.0:0"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TAG_DATA_DIR", data.path())
            .env("TAG_LLM_BACKEND", "none")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (k, v) in extra {
            command.env(k, v);
        }
        command.spawn().unwrap()
    };
    let refused = run(&[]).wait_with_output().unwrap();
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(message.contains("tag-server token create") && message.contains("auth.mode"), "{message}");
    // Opted out, it starts (and is stopped here once it listens).
    let mut open = run(&[("TAG_AUTH_MODE", "none")]);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(open.stdout.take().unwrap()), &mut line).unwrap();
    assert!(line.starts_with("listening on"), "{line}");
    let _ = open.kill();
    let _ = open.wait();
    // With an admin token from the environment, it starts too.
    let mut given = run(&[("TAG_AUTH_ADMIN_TOKEN", "a-long-enough-admin-secret")]);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(given.stdout.take().unwrap()), &mut line).unwrap();
    assert!(line.starts_with("listening on"), "{line}");
    let _ = given.kill();
    let _ = given.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budgets_hold_under_32_concurrent_requests() {
    let llm = ScriptedLlm::start().await;
    script(&llm);
    let data = tempfile::tempdir().unwrap();
    let limited = create(data.path(), &["--name", "rpm", "--requests-per-minute", "10"]);
    let thrifty = create(data.path(), &["--name", "thrifty", "--tokens-per-day", "5000"]);
    let mut env = llm_env(&llm);
    env.push(("TAG_CACHE_ENABLED", "false".into()));
    let server = ServerProcess::start(data.path(), &env, &[]);
    let client = reqwest::Client::new();

    let auth = bearer(&limited);
    let datasets = server.url("/v1/datasets");
    let replies = futures::future::join_all((0..32).map(|_| call(&client, "GET", &datasets, Some(&auth), None))).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let limited_replies: Vec<&Reply> = replies.iter().filter(|r| r.status == 429).collect();
    assert_eq!((ok, limited_replies.len()), (10, 22), "exactly the limit gets through");
    assert!(limited_replies.iter().all(|r| r.retry_after.as_deref().is_some_and(|s| s.parse::<u64>().is_ok_and(|n| (1..=60).contains(&n)))));
    assert!(limited_replies.iter().all(|r| r.body["error"]["code"] == "rate_limited"));

    // Each query maps 20 distinct titles (about 2,000 tokens each with the scripted
    // model's four bytes a token): a budget of 5,000 lets two through, and the
    // estimate of a third is over what is left.
    let auth = bearer(&thrifty);
    let sql = |i: usize| json!({"sql": format!("SELECT llm_map('Tagline {i} for {{title}}') FROM movies ORDER BY title LIMIT 20"), "dataset": "movies"});
    let sql_url = server.url("/v1/sql");
    let replies = futures::future::join_all((0..32).map(|i| call(&client, "POST", &sql_url, Some(&auth), Some(sql(i))))).await;
    let done: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
    let refused: Vec<&Reply> = replies.iter().filter(|r| r.status == 429).collect();
    assert_eq!(done.len() + refused.len(), 32, "{:?}", replies.iter().map(|r| (r.status, r.body.to_string())).collect::<Vec<_>>());
    assert!(!done.is_empty() && !refused.is_empty(), "some ran, the rest were refused");
    let spent = |r: &Reply| r.body["stats"]["prompt_tokens"].as_u64().unwrap() + r.body["stats"]["completion_tokens"].as_u64().unwrap();
    let total: u64 = done.iter().map(|r| spent(r)).sum();
    let largest = done.iter().map(|r| spent(r)).max().unwrap();
    println!("32 concurrent queries on a 5000-token budget: {} ran ({total} tokens, the largest {largest}), {} refused", done.len(), refused.len());
    assert!(total <= 5000 + largest, "the overrun is at most one request's worth: {total} spent, largest {largest}");
    assert!(refused.iter().all(|r| r.retry_after.is_some()));
    let me = call(&client, "GET", &server.url("/v1/me"), Some(&auth), None).await;
    assert_eq!(me.body["budget_remaining"].as_u64(), Some(5000u64.saturating_sub(total)), "{}", me.body);
    // The last successful response says what is left.
    assert!(done.iter().any(|r| r.body["stats"]["budget_remaining"].as_u64() == Some(5000u64.saturating_sub(total))));

    // A restart remembers the day's spend (from the audit trail).
    server.stop();
    let server = ServerProcess::start(data.path(), &env, &[]);
    let me = call(&client, "GET", &server.url("/v1/me"), Some(&auth), None).await;
    assert_eq!(me.body["budget_remaining"].as_u64(), Some(5000u64.saturating_sub(total)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_costly_query_waits_for_the_clients_confirmation_of_its_estimate() {
    let llm = ScriptedLlm::start().await;
    script(&llm);
    let data = tempfile::tempdir().unwrap();
    let ann = create(data.path(), &["--name", "ann", "--confirm-calls", "100"]);
    let bob = create(data.path(), &["--name", "bob", "--confirm-calls", "100"]);
    let mut env = llm_env(&llm);
    env.push(("TAG_CACHE_ENABLED", "false".into()));
    let server = ServerProcess::start(data.path(), &env, &[]);
    let client = reqwest::Client::new();
    let auth = bearer(&ann);
    let sql = |extra: Value| {
        let mut body = json!({"sql": COSTLY, "dataset": "movies"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };

    llm.clear_requests();
    let first = call(&client, "POST", &server.url("/v1/sql"), Some(&auth), Some(sql(json!({})))).await;
    assert_eq!(first.status, 409, "{}", first.body);
    assert_eq!(first.body["error"]["code"], "confirmation_required");
    let estimate = first.body["error"]["estimate"].clone();
    let id = first.body["error"]["estimate_id"].as_str().unwrap().to_string();
    let calls = estimate["llm_calls"].as_u64().unwrap();
    assert!((600..=700).contains(&calls), "about one call per distinct review: {estimate}");
    assert!(estimate["tokens"].as_u64().unwrap() > calls * 20, "{estimate}");
    assert_eq!(estimate["operators"][0]["method"], "count");
    assert!(llm.requests().is_empty(), "nothing was asked of the LLM before the confirmation");

    let missing = call(&client, "POST", &server.url("/v1/sql"), Some(&auth), Some(sql(json!({"confirm": true})))).await;
    assert_eq!((missing.status, missing.body["error"]["code"].as_str()), (400, Some("invalid_request")));
    let stale = call(&client, "POST", &server.url("/v1/sql"), Some(&auth), Some(sql(json!({"confirm": true, "estimate_id": "0123456789abcdef"})))).await;
    assert_eq!((stale.status, stale.body["error"]["code"].as_str()), (409, Some("estimate_changed")), "{}", stale.body);
    assert_eq!(stale.body["error"]["estimate_id"], id.as_str(), "the current estimate comes with it");
    assert!(llm.requests().is_empty());

    let confirmed = call(&client, "POST", &server.url("/v1/sql"), Some(&auth), Some(sql(json!({"confirm": true, "estimate_id": id})))).await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    let stats = &confirmed.body["stats"];
    assert_eq!(stats["estimate"]["llm_calls"].as_u64(), Some(calls));
    let actual = stats["llm_calls"].as_u64().unwrap();
    assert_eq!(actual, calls, "the count is exact for a filter over a table");
    let actual_tokens = stats["prompt_tokens"].as_u64().unwrap() + stats["completion_tokens"].as_u64().unwrap();
    let estimated_tokens = stats["estimate"]["tokens"].as_u64().unwrap() as f64;
    assert!((estimated_tokens / actual_tokens as f64 - 1.0).abs() < 0.5, "tokens within 50%: {estimated_tokens} vs {actual_tokens}");

    // A question: the SQL is written once, shown with the estimate, and run on confirmation.
    llm.clear_requests();
    let ask = json!({"question": COSTLY_QUESTION, "dataset": "movies"});
    let first = call(&client, "POST", &server.url("/v1/ask"), Some(&auth), Some(ask.clone())).await;
    assert_eq!((first.status, first.body["error"]["code"].as_str()), (409, Some("confirmation_required")), "{}", first.body);
    let id = first.body["error"]["estimate_id"].as_str().unwrap().to_string();
    assert_eq!(llm.requests().len(), 1, "only the SQL was written");
    let mut confirm = ask.clone();
    confirm["confirm"] = json!(true);
    confirm["estimate_id"] = json!(id);
    let theirs = call(&client, "POST", &server.url("/v1/ask"), Some(&bearer(&bob)), Some(confirm.clone())).await;
    assert_eq!(theirs.status, 400, "another token cannot run ann's pending question: {}", theirs.body);
    let other = json!({"question": "Something else?", "dataset": "movies", "confirm": true, "estimate_id": id});
    assert_eq!(call(&client, "POST", &server.url("/v1/ask"), Some(&auth), Some(other)).await.status, 400);
    let done = call(&client, "POST", &server.url("/v1/ask"), Some(&auth), Some(confirm.clone())).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body["sql"], COSTLY);
    assert_eq!(done.body["stats"]["synthesis_llm"]["calls"], 0, "the confirmed SQL is not written again");
    assert!(done.body["stats"]["execution"]["estimate"]["llm_calls"].as_u64().is_some());
    let again = call(&client, "POST", &server.url("/v1/ask"), Some(&auth), Some(confirm)).await;
    assert_eq!(again.status, 400, "a confirmation runs once");

    // Over the stream: the error event carries the estimate.
    let response = client
        .post(server.url("/v1/ask"))
        .header("authorization", &auth)
        .header("accept", "text/event-stream")
        .json(&ask)
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    let error = text.lines().filter_map(|l| l.strip_prefix("data: ")).filter_map(|d| serde_json::from_str::<Value>(d).ok()).find(|e| e["type"] == "error").unwrap();
    assert_eq!(error["code"], "confirmation_required");
    assert!(error["details"]["estimate"]["llm_calls"].as_u64().is_some() && error["details"]["estimate_id"].is_string(), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_query_cap_stops_a_runaway_query_before_and_while_it_runs() {
    let llm = ScriptedLlm::start().await;
    script(&llm);
    let data = tempfile::tempdir().unwrap();
    let mut env = llm_env(&llm);
    env.push(("TAG_QUERY_MAX_LLM_CALLS", "50".into()));
    env.push(("TAG_CACHE_ENABLED", "false".into()));
    let server = ServerProcess::start(data.path(), &env, &[]);
    let client = reqwest::Client::new();
    llm.clear_requests();
    let refused = call(&client, "POST", &server.url("/v1/sql"), None, Some(json!({"sql": COSTLY, "dataset": "movies"}))).await;
    assert_eq!((refused.status, refused.body["error"]["code"].as_str()), (422, Some("too_costly")), "{}", refused.body);
    assert!(llm.requests().is_empty());
    // The estimate cannot see through an operator's own filter; the running count stops it.
    let sneaky = "SELECT count(*) FROM reviews WHERE llm_filter('{review_text} is long') AND llm_filter('{review_text} is kind')";
    let stopped = call(&client, "POST", &server.url("/v1/sql"), None, Some(json!({"sql": sneaky, "dataset": "movies"}))).await;
    assert!(stopped.status == 422, "{}", stopped.body);
    assert!(llm.requests().len() <= 50 + 8, "at most the cap plus the calls in flight: {}", llm.requests().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_records_who_asked_what_and_how_it_ended() {
    let llm = ScriptedLlm::start().await;
    script(&llm);
    let data = tempfile::tempdir().unwrap();
    let admin = create(data.path(), &["--name", "root", "--role", "admin"]);
    let ann = create(data.path(), &["--name", "ann"]);
    let server = ServerProcess::start(data.path(), &llm_env(&llm), &[]);
    let client = reqwest::Client::new();
    let auth = bearer(&ann);
    call(&client, "POST", &server.url("/v1/ask"), Some(&auth), Some(json!({"question": QUESTION, "dataset": "movies"}))).await;
    call(&client, "POST", &server.url("/v1/sql"), Some(&auth), Some(json!({"sql": "DELETE FROM movies", "dataset": "movies"}))).await;
    let mapped = json!({"sql": "SELECT llm_map('Tagline for {title}') FROM movies ORDER BY title LIMIT 3", "dataset": "movies"});
    call(&client, "POST", &server.url("/v1/sql"), Some(&auth), Some(mapped)).await;
    call(&client, "POST", &server.url("/v1/sql"), Some(&bearer(&admin)), Some(json!({"sql": "SELECT 1", "dataset": "support"}))).await;

    let all = call(&client, "GET", &server.url("/v1/audit"), Some(&bearer(&admin)), None).await;
    assert_eq!(all.status, 200, "{}", all.body);
    let entries = all.body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "{}", all.body);
    let asked = entries.iter().find(|e| e["action"] == "ask").unwrap();
    assert_eq!((asked["principal"].as_str(), asked["dataset"].as_str(), asked["outcome"].as_str()), (Some("ann"), Some("movies"), Some("ok")));
    assert_eq!((asked["question"].as_str(), asked["sql"].as_str(), asked["rows"].as_u64()), (Some(QUESTION), Some(SQL), Some(1)));
    assert_eq!(asked["llm_calls"], 2, "synthesis and the answer");
    assert!(asked["prompt_tokens"].as_u64().unwrap() > 0 && asked["interface"] == "http");
    let refused = entries.iter().find(|e| e["outcome"] == "rejected_sql").unwrap();
    assert_eq!(refused["sql"], "DELETE FROM movies");
    let mapped = entries.iter().find(|e| e["llm_calls"] == 3).unwrap();
    assert_eq!((mapped["estimated_calls"].as_u64(), mapped["rows"].as_u64()), (Some(3), Some(3)), "{mapped}");

    let anns = call(&client, "GET", &server.url("/v1/audit?principal=ann&action=sql"), Some(&bearer(&admin)), None).await;
    assert_eq!(anns.body["entries"].as_array().unwrap().len(), 2, "{}", anns.body);
    let page = call(&client, "GET", &server.url("/v1/audit?limit=3"), Some(&bearer(&admin)), None).await;
    let before = page.body["next_before"].as_i64().unwrap();
    let rest = call(&client, "GET", &server.url(&format!("/v1/audit?before={before}")), Some(&bearer(&admin)), None).await;
    assert_eq!((rest.body["entries"].as_array().unwrap().len(), &rest.body["next_before"]), (1, &Value::Null));
    let bad = call(&client, "GET", &server.url("/v1/audit?limit=lots"), Some(&bearer(&admin)), None).await;
    assert_eq!((bad.status, bad.body["error"]["code"].as_str()), (400, Some("invalid_request")));
    let bad = call(&client, "GET", &server.url("/v1/audit?colour=red"), Some(&bearer(&admin)), None).await;
    assert_eq!(bad.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_their_own_address_need_no_token() {
    let data = tempfile::tempdir().unwrap();
    create(data.path(), &["--name", "ann"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let env = vec![("TAG_AUTH_METRICS_LISTEN", format!("127.0.0.1:{port}"))];
    let server = ServerProcess::start(data.path(), &env, &[]);
    let client = reqwest::Client::new();
    assert_eq!(call(&client, "GET", &server.url("/metrics"), None, None).await.status, 401, "not on the main address");
    let scraped = call(&client, "GET", &format!("http://127.0.0.1:{port}/metrics"), None, None).await;
    assert_eq!(scraped.status, 200);
    assert!(scraped.body.as_str().is_some_and(|text| text.contains("tag_http_requests")), "{}", scraped.body);
    let other = call(&client, "GET", &format!("http://127.0.0.1:{port}/v1/datasets"), None, None).await;
    assert_eq!(other.status, 404, "only /metrics there");
}
