//! Datasets that live in a database, end to end: a real PostgreSQL (Debian's, in a
//! temporary folder) seeded with the demo datasets, a million-row table, a slow
//! view and a 300-table schema; a real SQLite file; the real server on a real
//! socket with the scripted LLM. The catalog comes from the database (comments,
//! keys, statistics), filters are pushed down to it, hostile SQL changes nothing
//! in it, no secret reaches a response or the log, a database that stops and starts
//! again is picked up without a restart, and a timed-out query's statement is
//! cancelled on the database.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tag_tests::{harness::ServerProcess, hostile, mariadb::MariaDb, postgres::Postgres, scripted_llm::ScriptedLlm};

const PASSWORD: &str = "reader-pw-7f3k";

async fn post(client: &reqwest::Client, url: &str, body: Value) -> (u16, Value) {
    let response = client.post(url).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn sql(dataset: &str, sql: &str) -> Value {
    json!({"sql": sql, "dataset": dataset})
}

/// PostgreSQL with the demo datasets in `warehouse`, plus a million-row `events`
/// table and a slow view, readable by `tag_reader`.
fn warehouse() -> Option<Postgres> {
    let pg = Postgres::start()?;
    pg.seed_demo("warehouse", PASSWORD);
    pg.psql(
        "warehouse",
        "CREATE TABLE events AS SELECT g AS id, CASE WHEN g % 7 = 0 THEN 'urgent' ELSE 'routine' END AS kind, \
         'note ' || g AS note FROM generate_series(1, 1000000) g; \
         ALTER TABLE events ADD PRIMARY KEY (id); COMMENT ON TABLE events IS 'one row per event, a million of them'; \
         CREATE FUNCTION slow_id(i integer) RETURNS integer AS $$ BEGIN PERFORM pg_sleep(0.005); RETURN i; END $$ LANGUAGE plpgsql; \
         CREATE VIEW slow_events AS SELECT slow_id(id) AS nap, kind FROM events; \
         CREATE TABLE audit_secrets (id integer, secret text); INSERT INTO audit_secrets VALUES (1, 'top secret'); \
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO tag_reader; ANALYZE;",
    );
    Some(pg)
}

fn server_env(pg: &Postgres, llm: &ScriptedLlm) -> Vec<(&'static str, String)> {
    vec![
        ("TAG_LLM_BASE_URL", llm.base_url()),
        ("TAG_LLM_RETRY_BASE_MS", "5".into()),
        ("TAG_SOURCES__WAREHOUSE__KIND", "postgres".into()),
        ("TAG_SOURCES__WAREHOUSE__URL", format!("postgres://tag_reader:${{WAREHOUSE_PASSWORD}}@127.0.0.1:{}/warehouse", pg.port)),
        ("TAG_SOURCES__WAREHOUSE__EXCLUDE", "[\"audit_*\"]".into()),
        ("TAG_SOURCES__WAREHOUSE__SAMPLE_ROWS", "200".into()),
        ("WAREHOUSE_PASSWORD", PASSWORD.into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_warehouse_is_a_dataset_with_its_comments_keys_and_pushdown() {
    let Some(pg) = warehouse() else { return };
    let llm = ScriptedLlm::start().await;
    llm.on("(?s)Statement: \\[note\\] sounds urgent", "yes");
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("server.log");
    let server = ServerProcess::start_logged(data.path(), &server_env(&pg, &llm), &["--no-bundled"], &log);
    let client = reqwest::Client::new();
    let mut bodies = Vec::new();

    let (status, datasets) = get(&client, &server.url("/v1/datasets")).await;
    assert_eq!(status, 200, "{datasets}");
    let warehouse = datasets.as_array().unwrap().iter().find(|d| d["name"] == "warehouse").expect("listed").clone();
    assert_eq!((warehouse["source"].as_str(), warehouse["available"].as_bool()), (Some("postgres"), Some(true)), "{warehouse}");
    bodies.push(datasets.to_string());

    // The catalog comes from the database: comments, keys, statistics, samples.
    let (status, detail) = get(&client, &server.url("/v1/datasets/warehouse")).await;
    assert_eq!(status, 200, "{detail}");
    let tables: Vec<&Value> = detail["tables"].as_array().unwrap().iter().collect();
    let names: Vec<&str> = tables.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for expected in ["events", "movies", "reviews", "slow_events", "tickets"] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    assert!(!names.contains(&"audit_secrets"), "excluded tables are not in the dataset: {names:?}");
    let table = |name: &str| tables.iter().find(|t| t["name"] == name).unwrap();
    assert_eq!(table("movies")["description"], "one row per film");
    assert_eq!(table("movies")["primary_key"], "movie_id");
    let genres = table("movies")["columns"].as_array().unwrap().iter().find(|c| c["name"] == "genres").unwrap().clone();
    assert!(genres["description"].as_str().unwrap().contains("separated by '|'"), "{genres}");
    assert!(!genres["samples"].as_array().unwrap().is_empty(), "sampled values: {genres}");
    let events_rows = table("events")["row_count"].as_u64().unwrap();
    assert!((900_000..=1_100_000).contains(&events_rows), "row count from the statistics: {events_rows}");
    assert!(detail["joins"].as_array().unwrap().contains(&json!("reviews.movie_id = movies.movie_id")), "{}", detail["joins"]);
    assert!(detail["schema_text"].as_str().unwrap().contains("one row per film"));
    assert_eq!(detail["sample_rows"]["movies"]["rows"].as_array().unwrap().len(), 5);
    bodies.push(detail.to_string());

    // SQL over the warehouse, with joins.
    let (status, body) = post(&client, &server.url("/v1/sql"), sql("warehouse", "SELECT count(*) FROM movies")).await;
    assert_eq!((status, &body["rows"]), (200, &json!([[228]])), "{body}");
    let (status, body) = post(
        &client,
        &server.url("/v1/sql"),
        sql("warehouse", "SELECT m.title, count(*) AS n FROM movies m JOIN reviews r USING (movie_id) GROUP BY m.movie_id, m.title ORDER BY n DESC, m.movie_id LIMIT 1"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0][1], json!(3), "{body}");

    // Pushdown: the selective predicate goes to PostgreSQL, and the LLM sees only
    // the ten rows it keeps.
    llm.clear_requests();
    let logged_before = std::fs::read_to_string(pg.log()).unwrap().len();
    let (status, body) = post(
        &client,
        &server.url("/v1/sql"),
        sql("warehouse", "SELECT id FROM events WHERE id > 999990 AND llm_filter('{note} sounds urgent') ORDER BY id"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["row_count"], 10, "{body}");
    assert_eq!(llm.requests().len(), 10, "one LLM call per matching row");
    let pg_log = std::fs::read_to_string(pg.log()).unwrap();
    let copies: Vec<&str> = pg_log[logged_before..].lines().filter(|l| l.contains("COPY") && l.contains("\"events\"")).collect();
    assert!(!copies.is_empty(), "the scan reads events with COPY");
    assert!(copies.iter().all(|l| l.contains("\"id\" > '999990'")), "every COPY of events carries the filter: {copies:?}");
    bodies.push(body.to_string());

    // A question through the three stages over warehouse rows.
    llm.on(
        "(?s)Which closed tickets",
        "```sql\nSELECT ticket_id FROM tickets WHERE status = 'closed' AND product = 'PixelNote' ORDER BY ticket_id LIMIT 3\n```",
    );
    llm.on("(?s)Result \\(", "Three closed PixelNote tickets [row 1].");
    let (status, answer) =
        post(&client, &server.url("/v1/ask"), json!({"question": "Which closed tickets are about PixelNote?", "dataset": "warehouse"})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["row_count"], 3, "{answer}");
    bodies.push(answer.to_string());

    // A write never reaches the database; the reader role holds too.
    let (status, body) = post(&client, &server.url("/v1/sql"), sql("warehouse", "DELETE FROM movies")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("rejected_sql")), "{body}");
    assert_eq!(pg.psql("warehouse", "SELECT count(*) FROM movies"), "228");

    // No secret in any response or in the log.
    server.stop();
    let log_text = std::fs::read_to_string(&log).unwrap();
    for text in bodies.iter().chain(std::iter::once(&log_text)) {
        assert!(!text.contains(PASSWORD), "the password leaked: {}", &text[..text.len().min(2000)]);
    }
    assert!(log_text.contains("dataset attached"), "{log_text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_sql_over_the_warehouse_is_refused_and_changes_nothing() {
    let Some(pg) = warehouse() else { return };
    let llm = ScriptedLlm::start().await;
    let data = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), &server_env(&pg, &llm), &["--no-bundled"]);
    let client = reqwest::Client::new();
    let before = pg.dump("warehouse");
    let roles_before = pg.psql("postgres", "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles");
    for (name, statement) in hostile::STATEMENTS {
        let statement = statement.replace('@', &outside.path().to_string_lossy());
        let (status, body) = post(&client, &server.url("/v1/sql"), sql("warehouse", &statement)).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("rejected_sql")), "{name}: {body}");
        assert!(!body.to_string().contains(PASSWORD), "{name}: {body}");
    }
    // Excluded tables are not reachable by name, however spelled.
    for statement in ["SELECT * FROM audit_secrets", "SELECT * FROM public.audit_secrets", "SELECT * FROM main.audit_secrets"] {
        let (status, body) = post(&client, &server.url("/v1/sql"), sql("warehouse", statement)).await;
        assert_eq!(status, 400, "{statement}: {body}");
        assert!(!body.to_string().contains("top secret"), "{statement}: {body}");
    }
    assert_eq!(pg.dump("warehouse"), before, "the warehouse is byte-for-byte unchanged");
    assert_eq!(pg.psql("postgres", "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles"), roles_before);
    assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none(), "nothing was written outside");
}

async fn unavailable(client: &reqwest::Client, server: &ServerProcess) -> Value {
    let (status, body) = post(client, &server.url("/v1/sql"), sql("warehouse", "SELECT count(*) FROM movies")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("dataset_unavailable")), "{body}");
    assert!(!body.to_string().contains(PASSWORD), "{body}");
    body
}

async fn wait_available(client: &reqwest::Client, server: &ServerProcess) {
    let started = Instant::now();
    loop {
        let (status, body) = post(client, &server.url("/v1/sql"), sql("warehouse", "SELECT count(*) FROM movies")).await;
        if status == 200 {
            assert_eq!(body["rows"], json!([[228]]));
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the warehouse did not come back: {body}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warehouse_that_stops_and_starts_again_is_picked_up_without_a_restart() {
    let Some(pg) = warehouse() else { return };
    let llm = ScriptedLlm::start().await;
    let data = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();

    // Down at start-up: listed as unavailable with the reason; the server runs.
    pg.stop();
    let server = ServerProcess::start(data.path(), &server_env(&pg, &llm), &[]);
    let (_, datasets) = get(&client, &server.url("/v1/datasets")).await;
    let warehouse = datasets.as_array().unwrap().iter().find(|d| d["name"] == "warehouse").unwrap().clone();
    assert_eq!(warehouse["available"], false, "{warehouse}");
    let reason = warehouse["reason"].as_str().unwrap();
    assert!(reason.contains("cannot attach") && !reason.contains(PASSWORD), "{reason}");
    let (status, _) = post(&client, &server.url("/v1/sql"), sql("movies", "SELECT count(*) FROM movies")).await;
    assert_eq!(status, 200, "the other datasets answer");
    unavailable(&client, &server).await;
    pg.restart();
    wait_available(&client, &server).await;

    // Stopped mid-session, started again.
    pg.stop();
    let body = unavailable(&client, &server).await;
    assert!(body["error"]["message"].as_str().unwrap().contains("warehouse"), "{body}");
    pg.restart();
    wait_available(&client, &server).await;

    // A refresh picks up a schema change.
    pg.psql("warehouse", "CREATE TABLE premieres (movie_id integer, city text); COMMENT ON TABLE premieres IS 'where films opened'; GRANT SELECT ON premieres TO tag_reader;");
    let (status, detail) = post(&client, &server.url("/v1/datasets/warehouse/refresh"), json!({})).await;
    assert_eq!(status, 200, "{detail}");
    let premieres = detail["tables"].as_array().unwrap().iter().find(|t| t["name"] == "premieres").expect("the new table").clone();
    assert_eq!(premieres["description"], "where films opened");
}

/// The server's statements still running on the database.
fn running_statements(pg: &Postgres) -> String {
    pg.psql(
        "postgres",
        "SELECT string_agg(left(query, 80), ' | ') FROM pg_stat_activity WHERE application_name LIKE 'tag-server:%' AND state = 'active'",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_that_times_out_or_is_abandoned_is_cancelled_on_the_warehouse() {
    let Some(pg) = warehouse() else { return };
    let llm = ScriptedLlm::start().await;
    let data = tempfile::tempdir().unwrap();
    let mut env = server_env(&pg, &llm);
    env.push(("TAG_QUERY_TIMEOUT_SECS", "2".into()));
    let server = ServerProcess::start(data.path(), &env, &["--no-bundled"]);
    let client = reqwest::Client::new();
    let slow = sql("warehouse", "SELECT sum(nap) FROM slow_events");

    let started = Instant::now();
    let (status, body) = post(&client, &server.url("/v1/sql"), slow.clone()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (504, Some("timeout")), "{body}");
    assert!(started.elapsed() < Duration::from_secs(15), "answered {:?} after the start", started.elapsed());
    pg.wait_for(Duration::from_secs(10), "the timed-out statement to end", || running_statements(&pg).is_empty());

    // A client that goes away: its query is stopped too.
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(700)).build().unwrap();
    assert!(impatient.post(server.url("/v1/sql")).json(&slow).send().await.is_err());
    pg.wait_for(Duration::from_secs(10), "the abandoned statement to end", || running_statements(&pg).is_empty());
    let (status, _) = post(&client, &server.url("/v1/sql"), sql("warehouse", "SELECT count(*) FROM movies")).await;
    assert_eq!(status, 200, "the dataset still answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wide_schema_is_linked_to_the_question() {
    let Some(pg) = Postgres::start() else { return };
    pg.psql("postgres", "CREATE DATABASE wide");
    let wide = tag_tests::harness::crate_dir().join("sql/wide.sql");
    let status = std::process::Command::new("psql").args(pg.psql_args("wide")).args(["-X", "-q", "-f"]).arg(wide).status().unwrap();
    assert!(status.success());
    let llm = ScriptedLlm::start().await;
    llm.on("(?s)How many logistics shipments", "```sql\nSELECT count(*) AS n FROM logistics_shipments WHERE status = 'open'\n```");
    llm.on("(?s)Result \\(", "There are 7 [row 1].");
    let data = tempfile::tempdir().unwrap();
    let env = vec![
        ("TAG_LLM_BASE_URL", llm.base_url()),
        ("TAG_SOURCES__WIDE__KIND", "postgres".to_string()),
        ("TAG_SOURCES__WIDE__URL", pg.url("wide", "postgres")),
        ("TAG_SOURCES__WIDE__SAMPLE_ROWS", "20".to_string()),
        ("TAG_QUERY_SCHEMA_TOKENS", "3000".to_string()),
    ];
    let server = ServerProcess::start(data.path(), &env, &["--no-bundled"]);
    let client = reqwest::Client::new();
    let (status, detail) = get(&client, &server.url("/v1/datasets/wide")).await;
    assert_eq!(status, 200);
    assert_eq!(detail["tables"].as_array().unwrap().len(), 300);
    assert_eq!(detail["joins"].as_array().unwrap().len(), 12 * 24, "one join per foreign key");

    let (status, answer) = post(
        &client,
        &server.url("/v1/ask"),
        json!({"question": "How many logistics shipments are still open?", "dataset": "wide"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let schema = &answer["stats"]["schema"];
    assert_eq!((schema["tables"].as_u64(), schema["linked"].as_bool()), (Some(300), Some(true)), "{schema}");
    let shown: Vec<&str> = schema["shown"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert!(shown.contains(&"logistics_shipments"), "{shown:?}");
    assert!(shown.len() < 60, "a bounded subset: {shown:?}");
    assert!(schema["tokens"].as_u64().unwrap() <= 3000, "{schema}");
    let prompt = llm.requests_matching("How many logistics shipments")[0].system().to_string();
    assert!(prompt.contains("TABLE logistics_shipments") && !prompt.contains("TABLE research_patents"), "the prompt shows the linked tables only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_file_is_a_dataset_with_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop.sqlite");
    {
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT);
             CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers (id), total REAL, note TEXT);
             INSERT INTO customers VALUES (1, 'Ada', 'UK'), (2, 'Grace', 'US'), (3, 'Linus', 'FI');
             INSERT INTO orders VALUES (1, 1, 10.5, 'urgent, call back'), (2, 1, 3.0, 'no rush'), (3, 2, 99.0, 'urgent delivery');",
        )
        .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let llm = ScriptedLlm::start().await;
    llm.on("(?s)Statement: \\[note\\] is urgent.*urgent", "yes");
    llm.default_reply("no");
    let data = tempfile::tempdir().unwrap();
    let env = vec![("TAG_LLM_BASE_URL", llm.base_url())];
    let server = ServerProcess::start(data.path(), &env, &["--no-bundled", "--dataset-path", &path.to_string_lossy()]);
    let client = reqwest::Client::new();
    let (status, detail) = get(&client, &server.url("/v1/datasets/shop")).await;
    assert_eq!(status, 200, "{detail}");
    assert!(detail["joins"].as_array().unwrap().contains(&json!("orders.customer_id = customers.id")), "{detail}");
    let orders = detail["tables"].as_array().unwrap().iter().find(|t| t["name"] == "orders").unwrap().clone();
    assert_eq!((orders["primary_key"].as_str(), orders["row_count"].as_u64()), (Some("id"), Some(3)), "{orders}");
    let (status, body) = post(
        &client,
        &server.url("/v1/sql"),
        sql("shop", "SELECT c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE llm_filter('{note} is urgent') ORDER BY 1"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!([["Ada"], ["Grace"]]), "{body}");
    let (status, body) = post(&client, &server.url("/v1/sql"), sql("shop", "DELETE FROM orders")).await;
    assert_eq!(status, 400, "{body}");
    server.stop();
    assert_eq!(std::fs::read(&path).unwrap(), before, "the SQLite file is unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_database_is_a_dataset_with_its_comments_and_keys() {
    let Some(db) = MariaDb::start() else { return };
    db.sql(
        "CREATE DATABASE shop; \
         CREATE TABLE shop.customers (id INT PRIMARY KEY, name TEXT COMMENT 'full name', country TEXT) COMMENT='people who buy'; \
         CREATE TABLE shop.orders (id INT PRIMARY KEY, customer_id INT, total DOUBLE, note TEXT, \
           FOREIGN KEY (customer_id) REFERENCES shop.customers (id)) COMMENT='one row per order'; \
         INSERT INTO shop.customers VALUES (1, 'Ada', 'UK'), (2, 'Grace', 'US'); \
         INSERT INTO shop.orders VALUES (1, 1, 10.5, 'urgent'), (2, 1, 3.0, 'no rush'), (3, 2, 99.0, 'urgent'); \
         CREATE USER 'reader'@'localhost' IDENTIFIED BY 'maria-pw-91'; CREATE USER 'reader'@'%' IDENTIFIED BY 'maria-pw-91'; \
         GRANT SELECT ON shop.* TO 'reader'@'localhost'; GRANT SELECT ON shop.* TO 'reader'@'%'; ANALYZE TABLE shop.orders;",
    );
    let llm = ScriptedLlm::start().await;
    let data = tempfile::tempdir().unwrap();
    let url = format!("shop=mysql://reader:${{SHOP_PASSWORD}}@127.0.0.1:{}/shop", db.port);
    let env = vec![("TAG_LLM_BASE_URL", llm.base_url()), ("SHOP_PASSWORD", "maria-pw-91".to_string())];
    let server = ServerProcess::start(data.path(), &env, &["--no-bundled", "--dataset-url", &url]);
    let client = reqwest::Client::new();
    let (status, detail) = get(&client, &server.url("/v1/datasets/shop")).await;
    assert_eq!(status, 200, "{detail}");
    let names: Vec<&str> = detail["tables"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["customers", "orders"], "the connection's database only");
    let customers = detail["tables"].as_array().unwrap().iter().find(|t| t["name"] == "customers").unwrap().clone();
    assert_eq!((customers["description"].as_str(), customers["primary_key"].as_str()), (Some("people who buy"), Some("id")));
    assert!(detail["joins"].as_array().unwrap().contains(&json!("orders.customer_id = customers.id")), "{detail}");
    let (status, body) = post(
        &client,
        &server.url("/v1/sql"),
        sql("shop", "SELECT c.name, sum(o.total) AS spent FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY c.name ORDER BY 1"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!([["Ada", 13.5], ["Grace", 99.0]]), "{body}");
    for statement in ["DELETE FROM orders", "SELECT * FROM mysql_query('tag_source', 'SELECT 1')", "SELECT * FROM tag_source.shop.orders"] {
        let (status, body) = post(&client, &server.url("/v1/sql"), sql("shop", statement)).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("rejected_sql")), "{statement}: {body}");
    }
    assert!(!detail.to_string().contains("maria-pw-91"));
    assert_eq!(db.sql("SELECT count(*) FROM shop.orders"), "3");
}
