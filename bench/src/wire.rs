//! `tagbench wire`: the same 100,000-row result read over the PostgreSQL wire
//! protocol (text rows by the simple query protocol, binary rows by a prepared
//! statement) and from `/v1/sql` as Arrow IPC, in alternating rounds side by side,
//! from one server in this process; and the wire connection's set-up time
//! (connect, sign in, `SELECT 1`). The client is `tokio-postgres`, which decodes
//! each row as a driver does; the Arrow side reads the whole body.

use std::{sync::Arc, time::Instant};

use serde::Serialize;

use crate::median;
use tag_server::{api, Config, DatasetSources, Engine};

#[derive(Debug, Serialize)]
pub struct WireReport {
    pub rows: usize,
    pub rounds: usize,
    pub sql: String,
    pub text_rows_per_s: Vec<f64>,
    pub binary_rows_per_s: Vec<f64>,
    pub arrow_rows_per_s: Vec<f64>,
    pub text_median: f64,
    pub binary_median: f64,
    pub arrow_median: f64,
    /// Connect, sign in and `SELECT 1`, milliseconds (median of 20).
    pub connect_ms: f64,
}

impl WireReport {
    pub fn table(&self) -> String {
        let row = |name: &str, values: &[f64], median: f64| {
            format!("{name:<34} {:>10.0} rows/s  (median; rounds {:?})\n", median, values.iter().map(|v| v.round()).collect::<Vec<_>>())
        };
        format!(
            "{} rows of {:?}, {} alternating rounds\n{}{}{}wire text / Arrow: {:.3}; wire binary / Arrow: {:.3}\nwire connection set-up (connect, sign in, SELECT 1): {:.1} ms (median of 20)\n",
            self.rows,
            self.sql,
            self.rounds,
            row("wire, text (simple query)", &self.text_rows_per_s, self.text_median),
            row("wire, binary (prepared statement)", &self.binary_rows_per_s, self.binary_median),
            row("/v1/sql, Arrow IPC", &self.arrow_rows_per_s, self.arrow_median),
            self.text_median / self.arrow_median,
            self.binary_median / self.arrow_median,
            self.connect_ms,
        )
    }
}

pub async fn run(rows: usize, rounds: usize) -> anyhow::Result<WireReport> {
    let dir = tempfile::tempdir()?;
    let mut config = Config::default();
    config.data_dir = dir.path().to_path_buf();
    config.cache.enabled = false;
    config.query.max_rows = rows;
    let engine = Arc::new(tokio::task::block_in_place(|| Engine::with_llm(config, &DatasetSources::default(), None))?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let http = format!("http://{}/v1/sql", listener.local_addr()?);
    let app = api::app(engine.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let pg_port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    tag_server::pg::serve(engine, ([127, 0, 0, 1], pg_port).into()).await?;
    let dsn = format!("host=127.0.0.1 port={pg_port} dbname=movies user=bench");

    let sql = format!("SELECT a.review_id, b.movie_id, a.review_text FROM reviews a, reviews b LIMIT {rows}");
    let connect = || async {
        let (client, connection) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        anyhow::Ok(client)
    };
    let client = connect().await?;
    let statement = client.prepare(&sql).await?;
    let http_client = reqwest::Client::new();
    let body = serde_json::json!({"sql": sql, "dataset": "movies"});

    let (mut text, mut binary, mut arrow) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let started = Instant::now();
        let messages = client.simple_query(&sql).await?;
        let got = messages.iter().filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_))).count();
        anyhow::ensure!(got == rows, "text: {got} rows, not {rows}");
        text.push(rows as f64 / started.elapsed().as_secs_f64());

        let started = Instant::now();
        let result = client.query(&statement, &[]).await?;
        let sum: i64 = result.iter().map(|r| r.get::<_, i64>(0)).sum();
        anyhow::ensure!(result.len() == rows && sum > 0, "binary: {} rows, not {rows}", result.len());
        binary.push(rows as f64 / started.elapsed().as_secs_f64());

        let started = Instant::now();
        let response = http_client.post(&http).header("accept", "application/vnd.apache.arrow.stream").json(&body).send().await?.error_for_status()?;
        let count: usize = response.headers().get("x-row-count").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
        let bytes = response.bytes().await?;
        anyhow::ensure!(count == rows && !bytes.is_empty(), "arrow: {count} rows, not {rows}");
        arrow.push(rows as f64 / started.elapsed().as_secs_f64());
    }

    let mut connects = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let fresh = connect().await?;
        fresh.simple_query("SELECT 1").await?;
        connects.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(WireReport {
        rows,
        rounds,
        sql,
        text_median: median(&text),
        binary_median: median(&binary),
        arrow_median: median(&arrow),
        text_rows_per_s: text,
        binary_rows_per_s: binary,
        arrow_rows_per_s: arrow,
        connect_ms: median(&connects),
    })
}
