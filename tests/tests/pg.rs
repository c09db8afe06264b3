//! The PostgreSQL wire-protocol endpoint through the real binary on a real socket,
//! with clients nobody here wrote: Debian's `psql` (queries, an LLM operator, a
//! question with `ask(...)` and its notices, the session statements clients send,
//! Ctrl-C on a slow query), Python's psycopg 3 and asyncpg (the extended protocol:
//! parameters, binary results, cursors and portals read in slices) and pgJDBC
//! (prepared statements, `Statement.cancel`); the hostile SQL corpus refused with
//! SQLSTATEs and nothing changed, tokens as passwords and databases as datasets,
//! and malformed or truncated protocol messages that close only their own
//! connection.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::Command,
    time::Duration,
};

use serde_json::Value;
use tag_tests::{
    harness::{clients_dir, clients_python, create_token, datasets_dir, snapshot, ServerProcess},
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
        self.run_as("analyst", database, password, statements)
    }

    /// [`Psql::run`] as `user`.
    fn run_as(&self, user: &str, database: &str, password: Option<&str>, statements: &[&str]) -> Output {
        let mut command = Command::new("psql");
        command
            .arg(format!("host=127.0.0.1 port={} dbname={database} user={user} sslmode=disable connect_timeout=10", self.port))
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

    // psql's \dt and \d: catalog queries (see the golden files for all of them).
    let out = psql.run("movies", None, &["\\dt"]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout, "main|movies|table|tag-server\nmain|reviews|table|tag-server");
    let out = psql.run("movies", None, &["\\d reviews"]);
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains("review_text|text|||"), "{}", out.stdout);

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

    // SCRAM-SHA-256 when the user names the token (its id): the token never
    // crosses the wire. libpq's require_auth (psycopg's, libpq 16+) proves which.
    let id = ann["id"].as_str().unwrap();
    let out = psql.run_as(id, "movies", Some(secret), &["SELECT count(*) FROM reviews"]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout, "684");
    let out = psql.run_as(id, "movies", Some(&format!("{secret}x")), &["SELECT 1"]);
    assert!(!out.ok && out.stderr.contains("password authentication failed: SCRAM's proof does not match"), "{}", out.stderr);
    if let Some(python) = clients_python() {
        let check = |user: &str| {
            let script = format!(
                "import psycopg\ntry:\n    c = psycopg.connect('host=127.0.0.1 port={} dbname=movies user={user} sslmode=disable require_auth=scram-sha-256', password='{secret}')\n    print(c.execute('SELECT count(*) FROM movies').fetchone()[0])\nexcept psycopg.OperationalError as e:\n    print('refused', e)",
                psql.port
            );
            let output = Command::new(&python).args(["-c", &script]).output().unwrap();
            String::from_utf8_lossy(&output.stdout).trim().to_string()
        };
        assert_eq!(check(id), "228", "SCRAM-SHA-256 with the token's id as the user");
        // asyncpg over SCRAM, and a failed sign-in that ends with the error alone
        // (no ReadyForQuery after it, which asyncpg reports as a protocol violation).
        let script = format!(
            "import asyncio, asyncpg\nasync def main():\n    c = await asyncpg.connect(host='127.0.0.1', port={port}, database='movies', user='{id}', password='{secret}', ssl=False)\n    print(await c.fetchval('SELECT count(*) FROM movies'))\n    await c.close()\n    try:\n        await asyncpg.connect(host='127.0.0.1', port={port}, database='movies', user='{id}', password='wrong', ssl=False)\n    except asyncpg.InvalidPasswordError:\n        print('refused')\nasyncio.run(main())",
            port = psql.port
        );
        let output = Command::new(&python).args(["-c", &script]).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "228\nrefused", "{stderr}");
        assert!(stderr.trim().is_empty(), "{stderr}");
        let cleartext = check("analyst");
        assert!(cleartext.starts_with("refused") && cleartext.contains("password"), "another user name is asked for a cleartext password: {cleartext}");
    }

    let (ok, _, err) = tag_tests::harness::token_command(data.path(), &["revoke", "ann"]);
    assert!(ok, "{err}");
    let out = psql.run("movies", Some(secret), &["SELECT 1"]);
    assert!(!out.ok && out.stderr.contains("password authentication failed"), "a revoked token is refused at once: {}", out.stderr);
    let out = psql.run_as(id, "movies", Some(secret), &["SELECT 1"]);
    assert!(!out.ok && out.stderr.contains("password authentication failed"), "also over SCRAM: {}", out.stderr);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_drivers_bind_parameters_read_binary_page_through_cursors_and_feed_pandas() {
    let Some(python) = clients_python() else { return };
    let llm = ScriptedLlm::start().await;
    script(&llm);
    let data = tempfile::tempdir().unwrap();
    let (server, psql) = server(data.path(), &llm, &[]);
    let script = clients_dir().join("pg_drivers.py");
    let output = tokio::process::Command::new(&python).arg(&script).arg(psql.port.to_string()).arg(QUESTION).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)));

    // psycopg: parameters bound as values, text (25) and bigint (20) columns.
    assert_eq!(seen["psycopg_params"]["rows"], serde_json::json!([["The Dark Knight", 2008], ["Inception", 2010]]));
    assert_eq!(seen["psycopg_params"]["types"], serde_json::json!([25, 20]));
    assert_eq!(seen["psycopg_binary"], serde_json::json!([["It Happened One Night", "1934", "3"]]));
    assert_eq!(seen["psycopg_injection"], 0, "the quote stays in the value");
    assert_eq!(seen["psycopg_arrays"], serde_json::json!([300003, 2]));
    // A server-side cursor (DECLARE, FETCH FORWARD 1000, CLOSE) read with fetchmany.
    assert_eq!(seen["psycopg_server_cursor"], serde_json::json!([1000, 1000, 500]));
    assert_eq!(seen["psycopg_drop"], "42501", "refused as insufficient privilege");
    assert_eq!(seen["psycopg_after_error"], 228);
    // A question with its text as a parameter: the table, the answer as a notice.
    assert_eq!(seen["psycopg_ask"]["rows"], serde_json::json!([["The Dark Knight", "1006"]]));
    let notices = seen["psycopg_ask"]["notices"].to_string();
    assert!(notices.contains("NOTICE: answer: The Dark Knight grossed the most [row 1]."), "{notices}");

    // The common types, as text and as binary: timestamps (a DuckDB TIMESTAMPTZ names
    // its zone; it goes as an offset), lists as arrays, numeric, and what arrow-pg
    // cannot encode (an interval, a time) as text.
    let expected = serde_json::json!([
        "datetime.datetime(2020, 1, 2, 3, 4, 5)",
        "datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)",
        "'1 hours 30 mins'",
        "[1, 2, 3]",
        "['a', 'b']",
        "Decimal('1.50')",
        "'01:02:03'",
        "42"
    ]);
    assert_eq!(seen["psycopg_types_text"], expected);
    assert_eq!(seen["psycopg_types_binary"], expected);
    assert_eq!(seen["asyncpg_arrays"], serde_json::json!(["[1, 2, 3]", "[2]", "[True]", "[1.5]", "[datetime.date(2020, 1, 1)]"]));
    assert_eq!(seen["asyncpg_types"], serde_json::json!(["datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)", "Decimal('1.50')", "['a', 'b']", "42"]));

    // asyncpg: parameter types inferred from the columns and casts, binary results.
    assert_eq!(seen["asyncpg_fetch"], serde_json::json!([["A Beautiful Mind", 2001, 317.0], ["Amelie", 2001, 174.0]]));
    assert_eq!(seen["asyncpg_parameters"], serde_json::json!(["date", "int4", "text", "bool", "float8", "numeric"]));
    assert_eq!(seen["asyncpg_columns"], serde_json::json!([["d", "date"], ["n", "int4"], ["t", "text"], ["b", "bool"], ["f", "float8"], ["m", "numeric"]]));
    assert_eq!(seen["asyncpg_roundtrip"], serde_json::json!(["2020-02-29", 42, "it's", true, 0.5, "12.250"]));
    // A portal executed 1,000 rows at a time (Execute with a row limit).
    assert_eq!(seen["asyncpg_portal"], serde_json::json!([1000, 1000, 500]));
    assert_eq!(seen["asyncpg_error"], "42P01", "an unknown table is undefined_table");
    assert_eq!(seen["asyncpg_closed"], true, "Terminate closes the connection");

    // SQLAlchemy 2 over psycopg, and pandas.read_sql through it.
    assert_eq!(seen["sqlalchemy_count"], 96);
    assert_eq!(seen["pandas"]["columns"], serde_json::json!(["title", "year"]));
    assert_eq!(seen["pandas"]["rows"], serde_json::json!([["It Happened One Night", 1934], ["Snow White and the Seven Dwarfs", 1937]]));
    assert_eq!(seen["pandas"]["dtypes"][1], "int64");
    assert_eq!(seen["sqlalchemy_tables"], serde_json::json!(["movies", "reviews"]), "reflection of the table names");
    // Reflection of the columns (with types and comments), keys and comments.
    assert_eq!(
        seen["sqlalchemy_columns"],
        serde_json::json!([
            ["review_id", "BIGINT", false, "review identifier"],
            ["movie_id", "BIGINT", true, "the reviewed film (movies.movie_id)"],
            ["reviewer", "TEXT", true, "reviewer name"],
            ["rating", "BIGINT", true, "stars from 1 (worst) to 5 (best)"],
            ["review_text", "TEXT", true, "the review, one or two sentences"]
        ])
    );
    assert_eq!(seen["sqlalchemy_primary_key"], serde_json::json!(["review_id"]));
    assert_eq!(seen["sqlalchemy_foreign_keys"], serde_json::json!([[["movie_id"], "movies", ["movie_id"]]]));
    assert_eq!(seen["sqlalchemy_comment"], "short audience reviews, three per film");
    assert_eq!(seen["sqlalchemy_reflected"], serde_json::json!({"movies": 8, "reviews": 5}), "MetaData.reflect: every table and column");

    let audit: Value = reqwest::get(server.url("/v1/audit?limit=200")).await.unwrap().json().await.unwrap();
    let entries = audit["entries"].as_array().unwrap_or_else(|| panic!("{audit}"));
    assert!(
        entries.iter().any(|e| e["interface"] == "pg" && e["sql"].as_str().is_some_and(|s| s.contains("'Christopher Nolan'"))),
        "the bound statement is what was checked and audited: {audit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgjdbc_prepares_statements_and_cancels_a_slow_query() {
    let Some(_) = clients_python() else { return };
    let jar = Path::new("/usr/share/java/postgresql.jar");
    assert!(jar.exists(), "pgJDBC is missing (apt-get install libpostgresql-jdbc-java; .ci/clients does)");
    let llm = ScriptedLlm::start().await;
    script(&llm);
    // Every operator call waits 20 s: only a cancel ends the slow query early.
    llm.fail(Some("(?s)Statement:"), tag_tests::scripted_llm::Fault::Delay(Duration::from_secs(20)), 100);
    let data = tempfile::tempdir().unwrap();
    let (server, psql) = server(data.path(), &llm, &[]);
    let classes = tempfile::tempdir().unwrap();
    let javac = Command::new("javac").arg("-d").arg(classes.path()).arg(clients_dir().join("Jdbc.java")).output().expect("run javac");
    assert!(javac.status.success(), "{}", String::from_utf8_lossy(&javac.stderr));
    let classpath = format!("{}:{}", jar.display(), classes.path().display());
    let output = tokio::process::Command::new("java").args(["-cp", &classpath, "Jdbc", &psql.port.to_string()]).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "product PostgreSQL");
    // DatabaseMetaData, as BI tools sync it: the dataset's tables with their
    // descriptions, columns with JDBC types (-5 BIGINT, 12 VARCHAR), keys, indexes.
    let metadata: Vec<&str> = lines.iter().copied().take_while(|l| !l.starts_with("columns ")).skip(1).collect();
    assert_eq!(
        metadata,
        [
            "schema information_schema",
            "schema main",
            "schema pg_catalog",
            "table main.movies TABLE one row per film",
            "table main.reviews TABLE short audience reviews, three per film",
            "column movie_id -5 int8 1 NO film identifier",
            "column title 12 text 2 YES film title in English",
            "column year -5 int8 3 YES year of first release",
            "column genres 12 text 4 YES genres separated by '|', e.g. 'Drama|Romance'; match with genres LIKE '%Romance%'",
            "column director 12 text 5 YES main director (first credited when several)",
            "column runtime_minutes -5 int8 6 YES running time in minutes",
            "column box_office_usd_millions -5 int8 7 YES approximate worldwide box-office gross in millions of US dollars, not adjusted for inflation",
            "column country 12 text 8 YES main production country",
            "primary movie_id 1 movies_pkey",
            "imported movie_id -> movies.movie_id reviews_movie_id_fkey",
            "index reviews_pkey review_id unique=true",
        ],
        "{stdout}"
    );
    let lines = &lines[metadata.len()..];
    assert_eq!(lines[1], "columns title:text year:int8");
    assert_eq!(&lines[2..4], ["row The Dark Knight|2008", "row Inception|2010"]);
    let cancelled = lines[4];
    let ms: u64 = cancelled.strip_prefix("cancelled 57014 after ").and_then(|r| r.strip_suffix(" ms")).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{stdout}"));
    assert!(ms < 10_000, "cancelled at once, not after the 20 s operator call: {ms} ms");
    assert_eq!(lines[5], "after 228", "the session goes on after the cancel");
    let audit: Value = reqwest::get(server.url("/v1/audit?limit=50")).await.unwrap().json().await.unwrap();
    let entries = audit["entries"].as_array().unwrap_or_else(|| panic!("{audit}"));
    assert!(entries.iter().any(|e| e["interface"] == "pg" && e["outcome"] == "cancelled"), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_ctrl_c_cancels_a_slow_query_and_its_llm_calls() {
    if !have_psql() {
        return;
    }
    let llm = ScriptedLlm::start().await;
    llm.on(r"(?s)Statement:", "yes");
    llm.fail(Some("(?s)Statement:"), tag_tests::scripted_llm::Fault::Delay(Duration::from_secs(20)), 100);
    let data = tempfile::tempdir().unwrap();
    let (_server, psql) = server(data.path(), &llm, &[]);
    let child = Command::new("psql")
        .arg(format!("host=127.0.0.1 port={} dbname=movies user=analyst sslmode=disable", psql.port))
        .args(["-X", "-A", "-t", "-v", "VERBOSITY=verbose", "-c", "SELECT count(*) FROM reviews WHERE movie_id = 1 AND llm_filter('{review_text} is enthusiastic')"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while llm.requests_matching("(?s)Statement:").is_empty() {
        assert!(started.elapsed() < Duration::from_secs(30), "the query never reached its operator");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let calls_before = llm.requests_matching("(?s)Statement:").len();
    // What psql does on Ctrl-C: a cancel request on a connection of its own.
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("57014"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(15), "cancelled at once, not after the 20 s calls: {:?}", started.elapsed());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calls_after = llm.requests_matching("(?s)Statement:").len();
    assert!(calls_after <= calls_before + 2, "no more LLM calls after the cancel: {calls_before} then {calls_after}");
    let out = psql.run("movies", None, &["SELECT count(*) FROM movies"]);
    assert_eq!(out.stdout, "228", "the server goes on: {}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_configured_certificate_is_optional_for_clients() {
    if !have_psql() {
        return;
    }
    let llm = ScriptedLlm::start().await;
    let data = tempfile::tempdir().unwrap();
    let (cert, key) = (data.path().join("cert.pem"), data.path().join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let tls = [("TAG_PG_TLS_CERT", cert.display().to_string()), ("TAG_PG_TLS_KEY", key.display().to_string())];
    let (_server, psql) = server(data.path(), &llm, &tls);
    let connect = |sslmode: &str| {
        let output = Command::new("psql")
            .arg(format!("host=127.0.0.1 port={} dbname=movies user=analyst sslmode={sslmode} connect_timeout=10", psql.port))
            .args(["-X", "-A", "-t", "-w", "-c", "\\conninfo", "-c", "SELECT count(*) FROM movies"])
            .output()
            .expect("run psql");
        (output.status.success(), String::from_utf8_lossy(&output.stdout).to_string(), String::from_utf8_lossy(&output.stderr).to_string())
    };
    let (ok, stdout, stderr) = connect("require");
    assert!(ok, "{stderr}");
    assert!(stdout.contains("SSL connection (protocol: TLSv1."), "{stdout}");
    assert!(stdout.trim_end().ends_with("228"), "{stdout}");
    let (ok, stdout, stderr) = connect("disable");
    assert!(ok && !stdout.contains("SSL connection") && stdout.trim_end().ends_with("228"), "TLS is optional: {stdout} {stderr}");
}

/// The golden files of the catalog queries clients send: `tests/pg_catalog/*.sql`,
/// each the query text (or psql backslash commands) one client sends, beside its
/// answer through `psql` in `.out`. Regenerate the answers with `UPDATE_GOLDEN=1`.
fn golden_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pg_catalog")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_queries_of_psql_drivers_and_bi_tools_match_their_golden_files() {
    if !have_psql() {
        return;
    }
    let llm = ScriptedLlm::start().await;
    let data = tempfile::tempdir().unwrap();
    let (_server, psql) = server(data.path(), &llm, &[]);
    let update = std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1");
    let mut files: Vec<_> = std::fs::read_dir(golden_dir()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "sql")).collect();
    files.sort();
    assert!(files.len() >= 20, "the golden files are there: {files:?}");
    let mut mismatches = Vec::new();
    for file in &files {
        let output = Command::new("psql")
            .arg(format!("host=127.0.0.1 port={} dbname=movies user=analyst sslmode=disable connect_timeout=10", psql.port))
            .args(["-X", "-w", "-f"])
            .arg(file)
            .output()
            .expect("run psql");
        let stderr = String::from_utf8_lossy(&output.stderr).replace(&file.display().to_string(), "FILE");
        let mut answer = String::from_utf8_lossy(&output.stdout).to_string();
        if !stderr.is_empty() {
            answer.push_str("-- stderr --\n");
            answer.push_str(&stderr);
        }
        let name = file.file_stem().unwrap().to_string_lossy().to_string();
        // Only the refused_* cases may fail, and each of their writes must.
        if name.starts_with("refused_") {
            assert_eq!(stderr.matches("ERROR:").count(), 3, "{name}: {answer}");
        } else {
            assert!(!stderr.contains("ERROR"), "{name}: {answer}");
        }
        let golden = file.with_extension("out");
        if update {
            std::fs::write(&golden, &answer).unwrap();
        } else if std::fs::read_to_string(&golden).unwrap_or_default() != answer {
            mismatches.push(format!("{name}:\n{answer}"));
        }
    }
    assert!(mismatches.is_empty(), "answers that differ from their golden files (UPDATE_GOLDEN=1 rewrites them):\n{}", mismatches.join("\n"));
}
