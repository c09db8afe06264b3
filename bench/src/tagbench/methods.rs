//! The methods `tagbench tag-bench run` compares, each run through the same LLM
//! backend configuration as the server (`TAG_LLM_*`):
//!
//! - `tag`: the product's whole pipeline (synthesis → execution with LLM operators
//!   → generation), with the answer asked for in the query's expected form;
//! - `text2sql`: the LLM writes plain SQL for the question; the result is the answer;
//! - `text2sql-lm`: the LLM writes SQL for the query's Text2SQL input (the data it
//!   needs); the LLM answers the question from those rows;
//! - `rag`: rows as text, embedded through the endpoint's `/v1/embeddings`; the
//!   top-k rows by cosine similarity go into the answering prompt;
//! - `retrieval-rank`: RAG's retrieval, then the LLM scores each retrieved row's
//!   relevance and the best rows go into the prompt;
//! - `handwritten`: the project's extended-SQL plan for the query, executed by the
//!   engine (this also measures the execution stage alone).

use std::{collections::HashMap, sync::Arc, time::Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tag_server::{
    ask::{self, AskRequest},
    catalog::Dataset,
    execution::{values::cell_text, QueryOptions, Table},
    generation::render_table,
    llm::{ChatRequest, Message, SharedLlm, Usage},
    synthesis::{self, Reply},
    Engine,
};
use tokio::sync::Mutex;

use super::{answer::Answer, queries::Query};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
#[value(rename_all = "kebab-case")]
pub enum Method {
    Tag,
    Text2sql,
    Text2sqlLm,
    Rag,
    RetrievalRank,
    Handwritten,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Tag => "tag",
            Method::Text2sql => "text2sql",
            Method::Text2sqlLm => "text2sql-lm",
            Method::Rag => "rag",
            Method::RetrievalRank => "retrieval-rank",
            Method::Handwritten => "handwritten",
        }
    }
}

/// What one method produced for one query.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outcome {
    pub sql: Option<String>,
    /// The method's final answer text.
    pub answer_text: String,
    pub llm_calls: u64,
    #[serde(flatten)]
    pub usage: Usage,
}

impl Outcome {
    fn count(&mut self, usage: Usage) {
        self.llm_calls += 1;
        self.usage.add(usage);
    }
}

/// How the answer must be written, from the gold answer's shape (aggregation
/// queries, which have none, get a short free-text answer).
pub fn format_instruction(query: &Query) -> &'static str {
    match &query.gold {
        Some(Answer::Int(_)) => "Answer with one integer and nothing else.",
        Some(Answer::Float(_)) => "Answer with one number and nothing else.",
        Some(Answer::List(_)) => {
            "Answer with a Python list literal and nothing else, e.g. ['first', 'second'] or [12, 7], in the order the question asks for."
        }
        Some(Answer::Str(_)) => "Answer with the single value asked for and nothing else.",
        None => "Answer in at most five sentences.",
    }
}

/// A result table as an answer text: one cell as itself, otherwise the first
/// column's values as a list literal (aggregation results as their text).
pub fn table_answer(table: &Table) -> String {
    let cell = |v: &Value| match v {
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        other => other.to_string(),
    };
    match (table.rows.len(), table.columns.len()) {
        (1, 1) => cell_text(&table.rows[0][0]),
        _ => format!("[{}]", table.rows.iter().filter_map(|r| r.first()).map(cell).collect::<Vec<_>>().join(", ")),
    }
}

/// Everything the methods share: the engine (datasets, executor, LLM), the plans,
/// and the embedding cache of the RAG methods.
pub struct Runner {
    pub engine: Arc<Engine>,
    pub plans: HashMap<u32, String>,
    pub rag: RagSettings,
    http: reqwest::Client,
    embeddings: Mutex<HashMap<String, Arc<Vec<(String, Vec<f32>)>>>>,
}

#[derive(Debug, Clone)]
pub struct RagSettings {
    /// Rows per table embedded (the first ones; BIRD tables reach 100k+ rows).
    pub max_rows_per_table: usize,
    pub top_k: usize,
    /// Rows retrieval-rank scores before keeping `top_k`.
    pub rerank_candidates: usize,
    pub embedding_model: String,
}

const ANSWER_ROWS_CHARS: usize = 8000;

impl Runner {
    pub fn new(engine: Arc<Engine>, plans: HashMap<u32, String>, rag: RagSettings) -> Self {
        Runner { engine, plans, rag, http: reqwest::Client::new(), embeddings: Mutex::new(HashMap::new()) }
    }

    fn llm(&self) -> Result<SharedLlm> {
        Ok(self.engine.require_llm()?)
    }

    fn dataset(&self, query: &Query) -> Result<Arc<Dataset>> {
        Ok(self.engine.catalog.get(&query.db)?)
    }

    pub async fn run(&self, method: Method, query: &Query) -> Result<Outcome> {
        match method {
            Method::Tag => self.tag(query).await,
            Method::Text2sql => self.text2sql(query).await,
            Method::Text2sqlLm => self.text2sql_lm(query).await,
            Method::Rag => self.rag(query, false).await,
            Method::RetrievalRank => self.rag(query, true).await,
            Method::Handwritten => self.handwritten(query).await,
        }
    }

    async fn chat(&self, outcome: &mut Outcome, messages: Vec<Message>, max_tokens: u32) -> Result<String> {
        let completion = self.llm()?.complete(&ChatRequest::new(messages, max_tokens)).await?;
        outcome.count(completion.usage);
        Ok(completion.text)
    }

    async fn tag(&self, query: &Query) -> Result<Outcome> {
        let request = AskRequest {
            question: format!("{}\n{}", query.question, format_instruction(query)),
            dataset: query.db.clone(),
            conversation_id: None,
            confirm: false,
            estimate_id: None,
        };
        let console = tag_server::auth::Principal::console();
        let response = ask::ask(&self.engine, &console, "tagbench", request, ask::Events::default()).await?;
        Ok(Outcome {
            sql: response.sql,
            answer_text: response.answer,
            llm_calls: response.stats.llm.calls,
            usage: response.stats.llm.usage,
        })
    }

    /// Asks the LLM for plain SQL (no LLM operators) answering `question`, and runs it.
    async fn plain_sql(&self, outcome: &mut Outcome, query: &Query, question: &str) -> Result<Table> {
        let dataset = self.dataset(query)?;
        let system = format!(
            "You write one DuckDB SQL query that answers the user's question about the tables below. \
             Only standard SQL: no LLM functions. Reply with the SQL in a single ```sql block.\n\n{}",
            dataset.schema_text
        );
        let reply = self.chat(outcome, vec![Message::system(system), Message::user(question)], 1024).await?;
        let sql = match synthesis::parse_reply(&reply) {
            Reply::Sql(sql) => sql,
            Reply::Unanswerable(reason) => bail!("the model found the question unanswerable: {reason}"),
            Reply::Unreadable => bail!("the model's reply has no SQL: {reply:?}"),
        };
        let options = QueryOptions { max_rows: self.engine.config.query.max_rows, llm: None, progress: None, token_budget: None };
        let (_, table, _) = self.engine.executor.run_table(&dataset, &sql, options).await?;
        outcome.sql = Some(sql);
        Ok(table)
    }

    async fn text2sql(&self, query: &Query) -> Result<Outcome> {
        let mut outcome = Outcome::default();
        let table = self.plain_sql(&mut outcome, query, &query.question).await?;
        outcome.answer_text = table_answer(&table);
        Ok(outcome)
    }

    async fn answer_from(&self, outcome: &mut Outcome, query: &Query, context: &str) -> Result<String> {
        let prompt = format!(
            "Data:\n{context}\n\nQuestion: {}\nUse the data and your own knowledge. {}",
            query.question,
            format_instruction(query)
        );
        let system = "You answer questions about a database from the rows given and world knowledge.";
        self.chat(outcome, vec![Message::system(system), Message::user(prompt)], 512).await
    }

    async fn text2sql_lm(&self, query: &Query) -> Result<Outcome> {
        let mut outcome = Outcome::default();
        let table = self.plain_sql(&mut outcome, query, &query.text2sql_input).await?;
        let context = render_table(&table, ANSWER_ROWS_CHARS);
        outcome.answer_text = self.answer_from(&mut outcome, query, &context).await?;
        Ok(outcome)
    }

    async fn handwritten(&self, query: &Query) -> Result<Outcome> {
        let sql = self.plans.get(&query.id).ok_or_else(|| anyhow!("no hand-written plan for query {}", query.id))?.clone();
        let dataset = self.dataset(query)?;
        let options = QueryOptions { max_rows: self.engine.config.query.max_rows, llm: self.engine.llm.clone(), progress: None, token_budget: None };
        let (_, table, stats) = self.engine.executor.run_table(&dataset, &sql, options).await?;
        Ok(Outcome { sql: Some(sql), answer_text: table_answer(&table), llm_calls: stats.llm_calls, usage: stats.usage })
    }

    async fn embed(&self, outcome: &mut Outcome, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let config = &self.engine.config.llm;
        let base = config.base_url.as_deref().ok_or_else(|| anyhow!("the RAG methods need an OpenAI-compatible server with /v1/embeddings (TAG_LLM_BASE_URL)"))?;
        let mut vectors = Vec::with_capacity(texts.len());
        for batch in texts.chunks(64) {
            let mut request = self.http.post(format!("{}/embeddings", base.trim_end_matches('/')));
            if let Some(key) = &config.api_key {
                request = request.bearer_auth(key);
            }
            let response = request
                .json(&serde_json::json!({"model": self.rag.embedding_model, "input": batch}))
                .send()
                .await
                .context("embeddings request")?;
            let status = response.status();
            let body: Value = response.json().await.context("embeddings answer is not JSON")?;
            if !status.is_success() {
                bail!("embeddings failed with {status}: {body}");
            }
            let data = body["data"].as_array().ok_or_else(|| anyhow!("embeddings answer has no data: {body}"))?;
            if data.len() != batch.len() {
                bail!("asked for {} embeddings, got {}", batch.len(), data.len());
            }
            for item in data {
                let vector: Vec<f32> = item["embedding"]
                    .as_array()
                    .ok_or_else(|| anyhow!("an embedding is not a list"))?
                    .iter()
                    .map(|x| x.as_f64().unwrap_or(0.0) as f32)
                    .collect();
                vectors.push(vector);
            }
            outcome.usage.prompt_tokens += body["usage"]["prompt_tokens"].as_u64().unwrap_or(0);
        }
        Ok(vectors)
    }

    /// Every row of the database as `table: col=value; ...`, embedded once per run.
    async fn row_index(&self, outcome: &mut Outcome, query: &Query) -> Result<Arc<Vec<(String, Vec<f32>)>>> {
        let mut cache = self.embeddings.lock().await;
        if let Some(index) = cache.get(&query.db) {
            return Ok(index.clone());
        }
        let dataset = self.dataset(query)?;
        let mut rows = Vec::new();
        for table in &dataset.info.tables {
            let sql = format!("SELECT * FROM {} LIMIT {}", tag_server::sql::quote_name(&table.name), self.rag.max_rows_per_table);
            let options = QueryOptions { max_rows: self.rag.max_rows_per_table, llm: None, progress: None, token_budget: None };
            let (_, result, _) = self.engine.executor.run_table(&dataset, &sql, options).await?;
            for row in &result.rows {
                let cells: Vec<String> = result
                    .columns
                    .iter()
                    .zip(row)
                    .filter(|(_, v)| !v.is_null())
                    .map(|(c, v)| format!("{}={}", c.name, cell_text(v)))
                    .collect();
                rows.push(format!("{}: {}", table.name, cells.join("; ")));
            }
        }
        let vectors = self.embed(outcome, &rows).await?;
        let index = Arc::new(rows.into_iter().zip(vectors).collect::<Vec<_>>());
        cache.insert(query.db.clone(), index.clone());
        Ok(index)
    }

    async fn rag(&self, query: &Query, rerank: bool) -> Result<Outcome> {
        let mut outcome = Outcome::default();
        let index = self.row_index(&mut outcome, query).await?;
        let question = self.embed(&mut outcome, std::slice::from_ref(&query.question)).await?.remove(0);
        let mut scored: Vec<(f32, &String)> = index.iter().map(|(text, v)| (cosine(&question, v), text)).collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let wanted = if rerank { self.rag.rerank_candidates } else { self.rag.top_k };
        let mut rows: Vec<&String> = scored.into_iter().take(wanted).map(|(_, text)| text).collect();
        if rerank {
            let mut relevance = Vec::with_capacity(rows.len());
            for row in &rows {
                let prompt = format!(
                    "Question: {}\nRow: {row}\nHow relevant is this row to answering the question? Reply with a number from 0 to 1 and nothing else.",
                    query.question
                );
                let text = self.chat(&mut outcome, vec![Message::user(prompt)], 8).await?;
                relevance.push(text.trim().parse::<f64>().unwrap_or(0.0));
            }
            let mut order: Vec<usize> = (0..rows.len()).collect();
            order.sort_by(|&a, &b| relevance[b].total_cmp(&relevance[a]));
            rows = order.into_iter().take(self.rag.top_k).map(|i| rows[i]).collect();
        }
        let context: Vec<String> = rows.iter().enumerate().map(|(i, r)| format!("[row {}] {r}", i + 1)).collect();
        outcome.answer_text = self.answer_from(&mut outcome, query, &context.join("\n")).await?;
        Ok(outcome)
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let denominator = norm(a) * norm(b);
    if denominator == 0.0 {
        0.0
    } else {
        dot / denominator
    }
}

/// Times a method on a query.
pub async fn timed(runner: &Runner, method: Method, query: &Query) -> (Result<Outcome>, f64) {
    let start = Instant::now();
    let outcome = runner.run(method, query).await;
    (outcome, start.elapsed().as_secs_f64())
}
