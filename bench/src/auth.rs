//! `tagbench auth`: what access control costs per request. Two servers in this
//! process over the same bundled data, one open and one requiring a bearer token
//! (resolved and checked against the state database on every request, with the
//! token's requests-per-minute window and an audit record), answer the same
//! `/v1/sql` query from the same number of concurrent clients, in alternating
//! rounds, side by side; reports requests per second of each and the ratio.

use std::{sync::Arc, time::{Duration, Instant}};

use serde::Serialize;

use crate::median;
use tag_server::{
    api,
    auth::{Limits, Role},
    Config, DatasetSources, Engine,
};

#[derive(Debug, Serialize)]
pub struct AuthReport {
    pub concurrency: usize,
    pub rounds: usize,
    pub seconds_per_round: f64,
    pub open_rps: Vec<f64>,
    pub token_rps: Vec<f64>,
    pub open_median_rps: f64,
    pub token_median_rps: f64,
    /// token / open.
    pub ratio: f64,
    pub sql: String,
}

const SQL: &str = "SELECT count(*) FROM movies WHERE year > 2000";

async fn serve(with_token: bool) -> anyhow::Result<(String, Option<String>, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let mut config = Config::default();
    config.data_dir = dir.path().to_path_buf();
    config.cache.enabled = false;
    let engine = tokio::task::block_in_place(|| Engine::with_llm(config, &DatasetSources::default(), None))?;
    let secret = match with_token {
        true => Some(engine.auth.store().create("bench", Role::Analyst, None, None, Limits { requests_per_minute: Some(u32::MAX), ..Limits::default() })?.1),
        false => None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/v1/sql", listener.local_addr()?);
    let app = api::app(Arc::new(engine));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, secret, dir))
}

/// Requests per second of `concurrency` clients for `seconds`.
async fn round(url: &str, secret: Option<&str>, concurrency: usize, seconds: f64) -> anyhow::Result<f64> {
    let client = reqwest::Client::new();
    let body = serde_json::json!({"sql": SQL, "dataset": "movies"});
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let workers = (0..concurrency).map(|_| {
        let (client, body) = (client.clone(), body.clone());
        async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                let mut request = client.post(url).json(&body);
                if let Some(secret) = secret {
                    request = request.bearer_auth(secret);
                }
                let response = request.send().await?;
                anyhow::ensure!(response.status().is_success(), "status {}", response.status());
                response.bytes().await?;
                done += 1;
            }
            anyhow::Ok(done)
        }
    });
    let counts = futures::future::try_join_all(workers).await?;
    Ok(counts.iter().sum::<u64>() as f64 / started.elapsed().as_secs_f64())
}

pub async fn run(concurrency: usize, rounds: usize, seconds: f64) -> anyhow::Result<AuthReport> {
    let (open_url, _, _open_dir) = serve(false).await?;
    let (token_url, secret, _token_dir) = serve(true).await?;
    // Warm both (connections, DuckDB's first plans).
    round(&open_url, None, concurrency, 0.5).await?;
    round(&token_url, secret.as_deref(), concurrency, 0.5).await?;
    let (mut open_rps, mut token_rps) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        // Alternate which goes first, so drift hits both alike.
        if i % 2 == 0 {
            open_rps.push(round(&open_url, None, concurrency, seconds).await?);
            token_rps.push(round(&token_url, secret.as_deref(), concurrency, seconds).await?);
        } else {
            token_rps.push(round(&token_url, secret.as_deref(), concurrency, seconds).await?);
            open_rps.push(round(&open_url, None, concurrency, seconds).await?);
        }
    }
    let (open_median_rps, token_median_rps) = (median(&open_rps), median(&token_rps));
    Ok(AuthReport {
        concurrency,
        rounds,
        seconds_per_round: seconds,
        ratio: token_median_rps / open_median_rps,
        open_rps,
        token_rps,
        open_median_rps,
        token_median_rps,
        sql: SQL.into(),
    })
}

impl AuthReport {
    pub fn table(&self) -> String {
        format!(
            "POST /v1/sql {:?}, {} clients, {} alternating rounds of {:.0} s\nopen:  {:.0} requests/s (median; rounds {:?})\ntoken: {:.0} requests/s (median; rounds {:?})\ntoken / open: {:.3}\n",
            self.sql,
            self.concurrency,
            self.rounds,
            self.seconds_per_round,
            self.open_median_rps,
            self.open_rps.iter().map(|r| r.round()).collect::<Vec<_>>(),
            self.token_median_rps,
            self.token_rps.iter().map(|r| r.round()).collect::<Vec<_>>(),
            self.ratio
        )
    }
}
