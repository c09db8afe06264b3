//! `tagbench estimate`: how close the cost estimate made before a query runs
//! (`Executor::estimate`) comes to what the query then spends. Queries of every
//! shape the estimate handles (filters after cheap predicates and joins, maps under
//! a LIMIT, top-k scores, classify and reduce per group, rank, a constant, CTEs,
//! two filters in one WHERE – an upper bound) over the demo datasets and the
//! LLM-SQL benchmark tables, each estimated and then run against the cost-model
//! server (real tokenizer, placeholder answers) with the response cache off.
//! Reports estimated and actual LLM calls and tokens, and the errors.

use std::{path::Path, sync::Arc};

use serde::Serialize;

use crate::median;
use tag_server::{
    config::LlmConfig,
    execution::QueryOptions,
    llm::{embedded::Tokenizer, model_store, OpenAiClient, SharedLlm},
    Config, DatasetSources, Engine,
};

use crate::cost_server::{CostModel, CostServer};

/// (dataset, what it shows, SQL)
const QUERIES: &[(&str, &str, &str)] = &[
    ("movies", "filter after a predicate", "SELECT title FROM movies WHERE year < 1990 AND llm_filter('{title} is a comedy')"),
    (
        "movies",
        "filter after a join",
        "SELECT m.title FROM movies m JOIN reviews r ON r.movie_id = m.movie_id WHERE m.year > 2000 AND llm_filter('{r.review_text} is negative')",
    ),
    ("movies", "map under a LIMIT", "SELECT title, llm_map('A tagline for {title}') FROM movies LIMIT 25"),
    (
        "movies",
        "top-k score",
        "SELECT title FROM movies WHERE genres LIKE '%Drama%' ORDER BY llm_score('How dark is {title}') DESC LIMIT 5",
    ),
    (
        "movies",
        "classify, grouped",
        "SELECT llm_classify('Sentiment of {review_text}', ['positive', 'negative', 'mixed']) AS s, count(*) FROM reviews GROUP BY 1",
    ),
    (
        "movies",
        "reduce per group",
        "SELECT m.title, llm_reduce('Summarize the reviews', list(r.review_text)) FROM movies m JOIN reviews r USING (movie_id) WHERE m.year < 1970 GROUP BY m.title",
    ),
    ("movies", "rank", "SELECT llm_rank('most romantic first', list(title)) FROM movies WHERE year < 1960"),
    ("movies", "constant", "SELECT title FROM movies WHERE director = llm_knowledge('Who directed Jaws? Answer with the name only.')"),
    (
        "movies",
        "map over a CTE",
        "WITH old AS (SELECT * FROM movies WHERE year < 1980) SELECT title, llm_map('The country of {title}') FROM old",
    ),
    (
        "movies",
        "two filters (upper bound)",
        "SELECT count(*) FROM reviews WHERE llm_filter('{review_text} is long') AND llm_filter('{review_text} is kind')",
    ),
    (
        "support",
        "filter on two fields",
        "SELECT count(*) FROM tickets WHERE status = 'closed' AND llm_filter('{support_response} addresses {request}')",
    ),
    ("support", "reduce per category", "SELECT category, llm_reduce('Common themes', list(request)) FROM tickets GROUP BY category"),
    ("llm_sql", "beer filter", "SELECT count(*) FROM beer WHERE llm_filter('The reviewer liked {beer_name} ({beer_style})')"),
    (
        "llm_sql",
        "movie reviews map",
        "SELECT llm_map('In five words, what does {review_content} say about {movie_title}?') FROM movies_small",
    ),
    (
        "llm_sql",
        "movie reviews filter, non-empty reviews",
        "SELECT count(*) FROM movies_small WHERE review_content IS NOT NULL AND llm_filter('{review_content} praises the acting')",
    ),
];

#[derive(Debug, Serialize)]
pub struct EstimateReport {
    pub queries: Vec<QueryEstimate>,
    /// Median and largest absolute relative error of the calls, and of the tokens.
    pub calls_median_error: f64,
    pub calls_max_error: f64,
    pub tokens_median_error: f64,
    pub tokens_max_error: f64,
    pub prompt_tokens_median_error: f64,
}

#[derive(Debug, Serialize)]
pub struct QueryEstimate {
    pub dataset: String,
    pub shape: String,
    pub sql: String,
    pub method: String,
    pub estimated_calls: u64,
    pub actual_calls: u64,
    pub estimated_tokens: u64,
    pub actual_tokens: u64,
    pub actual_prompt_tokens: u64,
    /// The estimate's prompt part (tokens minus the expected completions).
    pub estimated_prompt_tokens: u64,
    pub estimate_ms: u64,
}

fn error(estimated: u64, actual: u64) -> f64 {
    if actual == 0 {
        return if estimated == 0 { 0.0 } else { 1.0 };
    }
    (estimated as f64 - actual as f64).abs() / actual as f64
}

pub async fn run(data: &Path, beer_rows: usize) -> anyhow::Result<EstimateReport> {
    let work = tempfile::tempdir()?;
    let tables = work.path().join("llm_sql");
    std::fs::create_dir_all(&tables)?;
    crate::ops::copy_csv(&data.join("movies_small.csv"), &tables.join("movies_small.csv"), 0)?;
    crate::ops::copy_csv(&data.join("beer.csv"), &tables.join("beer.csv"), beer_rows)?;
    let model_dir = model_store::model_dir(None, work.path());
    let gguf = model_store::ensure_default(&model_dir, model_store::DEFAULT_INDEX_URL, |_| {}).await?;
    let tokenizer = Arc::new(tokio::task::block_in_place(|| Tokenizer::load(&gguf))?);
    let free = CostModel { prefill_us_per_token: 0, decode_us_per_token: 0, overhead_us: 0, slots: 64, ..Default::default() };
    let server = CostServer::start(free, tokenizer).await?;

    let mut llm = LlmConfig::default();
    llm.base_url = Some(server.base_url.clone());
    llm.model = "cost-model".into();
    llm.concurrency = 16;
    let mut config = Config::default();
    config.data_dir = work.path().join("state");
    config.cache.enabled = false;
    config.llm = llm.clone();
    config.query.timeout_secs = 3600;
    config.query.max_llm_calls = 1_000_000;
    let client: SharedLlm = Arc::new(OpenAiClient::new(&llm)?);
    let sources = DatasetSources { paths: vec![tables.clone()], ..Default::default() };
    let engine = tokio::task::block_in_place(|| Engine::with_llm(config, &sources, Some(client.clone())))?;

    let mut queries = Vec::new();
    for (dataset, shape, sql) in QUERIES {
        let data = engine.catalog.get(dataset)?;
        let prepared = engine.executor.prepare(&data, sql).await?;
        let started = std::time::Instant::now();
        let estimate = engine.executor.estimate(&data, &prepared.checked).await?;
        let estimate_ms = started.elapsed().as_millis() as u64;
        server.reset();
        let options = QueryOptions { max_rows: 10, llm: Some(client.clone()), ..Default::default() };
        let (_, stats) = engine.executor.execute_table(prepared, options).await?;
        let totals = server.totals();
        let completion_part: u64 = estimate
            .operators
            .iter()
            .map(|o| o.tokens.saturating_sub(prompt_part(o.tokens, o.llm_calls, &o.operator, &engine.config)))
            .sum();
        queries.push(QueryEstimate {
            dataset: dataset.to_string(),
            shape: shape.to_string(),
            sql: sql.to_string(),
            method: estimate.operators.iter().map(|o| o.method.clone()).collect::<Vec<_>>().join("+"),
            estimated_calls: estimate.llm_calls,
            actual_calls: stats.llm_calls,
            estimated_tokens: estimate.tokens,
            actual_tokens: totals.prompt_tokens + totals.completion_tokens,
            actual_prompt_tokens: totals.prompt_tokens,
            estimated_prompt_tokens: estimate.tokens.saturating_sub(completion_part),
            estimate_ms,
        });
    }
    Ok(EstimateReport {
        calls_median_error: median(&queries.iter().map(|q| error(q.estimated_calls, q.actual_calls)).collect::<Vec<_>>()),
        calls_max_error: queries.iter().map(|q| error(q.estimated_calls, q.actual_calls)).fold(0.0, f64::max),
        tokens_median_error: median(&queries.iter().map(|q| error(q.estimated_tokens, q.actual_tokens)).collect::<Vec<_>>()),
        tokens_max_error: queries.iter().map(|q| error(q.estimated_tokens, q.actual_tokens)).fold(0.0, f64::max),
        prompt_tokens_median_error: median(
            &queries.iter().map(|q| error(q.estimated_prompt_tokens, q.actual_prompt_tokens)).collect::<Vec<_>>(),
        ),
        queries,
    })
}

/// The prompt part of an operator's estimated tokens: what is left after the
/// completions the estimate expects.
fn prompt_part(tokens: u64, calls: u64, operator: &str, config: &Config) -> u64 {
    let Some(op) = tag_server::operators::Operator::from_name(operator) else { return tokens };
    let with_answers = tag_server::sql::estimate::tokens(op, calls, 0, config.llm.operator_max_tokens, config.query.rank_window);
    let without = tag_server::sql::estimate::tokens(op, calls, 0, 0, config.query.rank_window);
    tokens.saturating_sub(with_answers - without)
}

impl EstimateReport {
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| dataset | query | method | calls est. | calls actual | tokens est. | tokens actual | prompt tokens est. | prompt tokens actual | estimate ms |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for q in &self.queries {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                q.dataset,
                q.shape,
                q.method,
                q.estimated_calls,
                q.actual_calls,
                q.estimated_tokens,
                q.actual_tokens,
                q.estimated_prompt_tokens,
                q.actual_prompt_tokens,
                q.estimate_ms
            ));
        }
        out.push_str(&format!(
            "\ncalls: median error {:.1}%, largest {:.1}%; tokens: median error {:.1}%, largest {:.1}%; prompt tokens: median error {:.1}%\n",
            100.0 * self.calls_median_error,
            100.0 * self.calls_max_error,
            100.0 * self.tokens_median_error,
            100.0 * self.tokens_max_error,
            100.0 * self.prompt_tokens_median_error
        ));
        out
    }
}
