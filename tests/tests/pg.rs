//! The PostgreSQL wire-protocol endpoint through the real binary on a real socket,
//! with Debian's `psql` as the client (nobody here wrote it): queries, an LLM
//! operator, a question with `ask(...)` and its notices, the session statements
//! clients send, the hostile SQL corpus refused with SQLSTATEs and nothing changed,
//! tokens as passwords and databases as datasets, and malformed or truncated
//! protocol messages that close only their own connection.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::Command,
    time::Duration,
};

use serde_json::Value;
use tag_tests::{
    harness::{create_token, datasets_dir, snapshot, ServerProcess},
    hostile,
    scripted_llm::ScriptedLlm,
};

const QUESTION: &str = "Which Christopher Nolan film grossed the most?";
const SQL: &str = "SELECT title, box_office_usd_millions FROM movies WHERE director = 'Christopher Nolan' ORDER BY box_office_usd_millions DESC LIMIT 1";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `psql` is there (`postgresql-client`, which `.ci/run` installs with the server),
/// or the test fails under CI's flags.
fn have_psql() -> bool {
    if Command::new("psql").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    if std::env::var("TAG_REQUIRE_POSTGRES").as_deref() == Ok("1") {
        panic!("TAG_REQUIRE_POSTGRES=1 but psql is not installed (apt-get install postgresql-client)");
    }
    eprintln!("\n!!!!! SKIPPED: the wire-protocol test needs psql (apt-get install postgresql-client)\n");
    false
}

struct Psql {
    port: u16,
}

/// What one `psql` run printed and how it ended.
struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Psql {
    /// Runs `statements` (one `-c` each) in one session on `database`, unaligned
    /// and tuples only, verbose errors (with the SQLSTATE), never prompting.
    fn run(&self, database: &str, password: Option<&str>, statements: &[&str]) -> Output {
        let mut command = Command::new("psql");
        command
            .arg(format!("host=127.0.0.1 port={} dbname={database} user=analyst sslmode=disable connect_timeout=10", self.port))
            .args(["-X", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose"])
            .env_remove("PGPASSWORD");
        if let Some(password) = password {
            command.env("PGPASSWORD", password);
        }
        for statement in statements {
            command.args(["-c", statement]);
        }
        let output = command.output().expect("run psql");
        Output {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).trim().to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        }
    }
}

fn server(data: &Path, llm: &ScriptedLlm, extra: &[(&'static str, String)]) -> (ServerProcess, Psql) {
    let port = free_port();
    let mut env = vec![
        ("TAG_LLM_BASE_URL", llm.base_url()),
        ("TAG_LLM_MODEL", "scripted-model".to_string()),
        ("TAG_PG_LISTEN", format!("127.0.0.1:{port}")),
    ];
    env.extend(extra.iter().cloned());
    (ServerProcess::start(data, &env, &[]), Psql { port })
}

fn script(llm: &ScriptedLlm) {
    llm.on(&format!("^{}$", regex::escape(QUESTION)), format!("```sql\n{SQL}\n```"));
    llm.on(r"^Question: Which Christopher Nolan", "The Dark Knight grossed the most [row 1].");
    llm.on(r"(?s)Statement:", "yes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_runs_queries_operators_and_questions() {
    if !have_psql() {
        return;
    }
    let llm = ScriptedLlm::start().await;
    script(&llm);
    let data = tempfile::tempdir().unwrap();
    let (server, psql) = server(data.path(), &llm, &[]);

    let out = psql.run("movies", None, &["SELECT title, year FROM movies WHERE director = 'Christopher Nolan' ORDER BY year LIMIT 3"]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout, "The Dark Knight|2008\nInception|2010\nInterstellar|2014");

    // Types come through as PostgreSQL's: psql's \gdesc asks for them.
    let out = psql.run("movies", None, &["SELECT title, year, box_office_usd_millions, year > 2000 AS recent FROM movies LIMIT 1"]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout.split('|').count(), 4, "{}", out.stdout);

    // A result over query.max_rows is cut there, with a warning.
    let out = psql.run("movies", None, &["SELECT a.review_id FROM reviews a, reviews b LIMIT 20000"]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 10_000);
    assert!(out.stderr.contains("WARNING:  01000: the result was cut at 10000 rows"), "{}", out.stderr);

    // An LLM operator over the wire: one call per review of film 1.
    let out = psql.run("movies", None, &["SELECT count(*) FROM reviews WHERE movie_id = 1 AND llm_filter('{review_text} is enthusiastic')"]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout, "3");
    assert_eq!(llm.requests_matching("(?s)Statement:").len(), 3);

    // A question: the result table, with the answer and the SQL as notices.
    let out = psql.run("movies", None, &[&format!("SELECT * FROM ask('{}')", QUESTION.replace('\'', "''"))]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout, "The Dark Knight|1006");
    assert!(out.stderr.contains("answer: The Dark Knight grossed the most [row 1]."), "{}", out.stderr);
    assert!(out.stderr.contains(&format!("sql: {SQL}")), "{}", out.stderr);

    // The session statements drivers send are answered; a server setting is not.
    let out = psql.run(
        "movies",
        None,
        &["SET application_name = 'metabase'", "SET extra_float_digits = 3", "BEGIN READ ONLY", "SHOW server_version", "SHOW transaction_read_only", "COMMIT", "DISCARD ALL"],
    );
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout, "SET\nSET\nBEGIN\n16.0 (tag-server)\non\nCOMMIT\nDISCARD ALL");
    let out = psql.run("movies", None, &["SHOW no_such_setting"]);
    assert!(!out.ok && out.stderr.contains("42704"), "{}", out.stderr);

    // Everything is in the audit trail as interface `pg`.
    let audit: Value = reqwest::get(server.url("/v1/audit?limit=100")).await.unwrap().json().await.unwrap();
    let entries = audit["entries"].as_array().unwrap_or_else(|| panic!("{audit}"));
    let pg: Vec<&Value> = entries.iter().filter(|e| e["interface"] == "pg").collect();
    assert!(pg.iter().any(|e| e["action"] == "ask" && e["question"] == QUESTION), "{audit}");
    assert!(pg.iter().any(|e| e["action"] == "sql" && e["llm_calls"] == 3), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_sql_over_the_wire_is_refused_with_a_sqlstate_and_changes_nothing() {
    if !have_psql() {
        return;
    }
    let llm = ScriptedLlm::start().await;
    let data = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let (_server, psql) = server(data.path(), &llm, &[]);
    let warm = psql.run("movies", None, &["SELECT count(*) FROM movies"]);
    assert_eq!(warm.stdout, "228", "{}", warm.stderr);
    let datasets_before = snapshot(&datasets_dir());
    let outside_dir = outside.path().to_string_lossy().to_string();
    let mut refused = 0;
    // An empty statement is not an error in PostgreSQL either (EmptyQueryResponse).
    for (name, statement) in hostile::STATEMENTS.iter().filter(|(_, sql)| !sql.trim().is_empty()) {
        let statement = statement.replace('@', &outside_dir);
        let out = psql.run("movies", None, &[&statement]);
        assert!(!out.ok, "{name}: {statement} was not refused: {}", out.stdout);
        assert!(out.stderr.contains("ERROR:  42501:"), "{name}: refused as insufficient privilege (42501): {}", out.stderr);
        refused += 1;
    }
    assert!(refused >= 20);
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0, "nothing written outside");
    assert_eq!(snapshot(&datasets_dir()), datasets_before, "the datasets are unchanged");
    let after = psql.run("movies", None, &["SELECT count(*) FROM movies"]);
    assert_eq!(after.stdout, "228");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_passwords_and_databases_are_datasets() {
    if !have_psql() {
        return;
    }
    let llm = ScriptedLlm::start().await;
    let data = tempfile::tempdir().unwrap();
    let ann = create_token(data.path(), &["--name", "ann", "--datasets", "movies"]);
    let secret = ann["secret"].as_str().unwrap();
    let (_server, psql) = server(data.path(), &llm, &[]);

    let out = psql.run("movies", Some(secret), &["SELECT count(*) FROM movies"]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout, "228");
    // Not one of its datasets, or no such dataset: the same answer.
    for database in ["support", "nosuch"] {
        let out = psql.run(database, Some(secret), &["SELECT 1"]);
        assert!(!out.ok && out.stderr.contains(&format!("FATAL:  database \"{database}\" does not exist")), "{database}: {}", out.stderr);
    }
    let out = psql.run("movies", Some("tag_wrong_0000"), &["SELECT 1"]);
    assert!(!out.ok && out.stderr.contains("FATAL:  password authentication failed"), "{}", out.stderr);
    let out = psql.run("movies", None, &["SELECT 1"]);
    assert!(!out.ok && out.stderr.contains("no password supplied"), "{}", out.stderr);
    let (ok, _, err) = tag_tests::harness::token_command(data.path(), &["revoke", "ann"]);
    assert!(ok, "{err}");
    let out = psql.run("movies", Some(secret), &["SELECT 1"]);
    assert!(!out.ok && out.stderr.contains("password authentication failed"), "a revoked token is refused at once: {}", out.stderr);
}

/// Sends `bytes` on a fresh connection and reads until the server closes it.
fn closed_after(port: u16, bytes: &[u8], close_write: bool) -> Vec<u8> {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    socket.write_all(bytes).unwrap();
    if close_write {
        socket.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut reply = Vec::new();
    match socket.read_to_end(&mut reply) {
        Ok(_) => reply,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => reply,
        Err(e) => panic!("the server did not close the connection: {e} (read {reply:?})"),
    }
}

fn startup(database: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196608u32.to_be_bytes()); // protocol 3.0
    for (key, value) in [("user", "analyst"), ("database", database)] {
        body.extend_from_slice(key.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut message = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    message.extend(body);
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_truncated_messages_close_only_their_connection() {
    if !have_psql() {
        return;
    }
    let llm = ScriptedLlm::start().await;
    let data = tempfile::tempdir().unwrap();
    let (_server, psql) = server(data.path(), &llm, &[]);
    // A session that stays open through the others' failures.
    let mut steady = TcpStream::connect(("127.0.0.1", psql.port)).unwrap();
    steady.write_all(&startup("movies")).unwrap();

    // A startup packet with a length that is not one, and with an unknown protocol:
    // closed at once. (One that promises more bytes than it sends waits for them,
    // as TCP does, until the client hangs up or pgwire's 60-second startup timeout.)
    closed_after(psql.port, &[0, 0, 0, 2, 0, 0, 0, 0], false);
    closed_after(psql.port, &[0, 0, 0, 8, 0x12, 0x34, 0x56, 0x78], false);
    // A startup packet cut short, then the client hangs up half-way.
    closed_after(psql.port, &startup("movies")[..10], true);
    // A query message whose length promises more than comes.
    let mut truncated = startup("movies");
    truncated.extend_from_slice(b"Q\x00\x00\x01\x00SELECT");
    closed_after(psql.port, &truncated, true);

    let out = psql.run("movies", None, &["SELECT count(*) FROM movies"]);
    assert!(out.ok && out.stdout == "228", "others are unharmed: {} {}", out.stdout, out.stderr);
    // The steady session still answers a query.
    let sql = b"SELECT 41 + 1\0";
    let mut query = vec![b'Q'];
    query.extend_from_slice(&((sql.len() + 4) as u32).to_be_bytes());
    query.extend_from_slice(sql);
    steady.write_all(&query).unwrap();
    steady.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while !seen.windows(2).any(|w| w == b"42") {
        let n = steady.read(&mut buffer).expect("the steady session answers");
        assert!(n > 0, "the steady session was closed");
        seen.extend_from_slice(&buffer[..n]);
    }
}
