//! The three TAG stages end to end for one question: synthesis (with repair
//! attempts that show the model its error), execution, and generation (streamed).
//! Progress is reported as typed [`Event`]s so that the HTTP layer can stream them
//! as server-sent events; the final [`AskResponse`] is the same either way.

use std::time::Instant;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::{
    engine::Engine,
    error::{Error, Result},
    execution::{Column, ExecutionStats, Progress, QueryOptions},
    generation,
    llm::{ChatRequest, LlmBackend, Message, Readiness, StreamPiece, Usage},
    synthesis::{self, Reply},
    text::shorten,
};

const MAX_QUESTION_CHARS: usize = 4000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskRequest {
    pub question: String,
    pub dataset: String,
    #[serde(default)]
    pub conversation_id: Option<String>,
}

/// One attempt at writing SQL that failed, and why.
#[derive(Debug, Clone, Serialize)]
pub struct FailedAttempt {
    pub sql: Option<String>,
    pub error: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LlmTotals {
    pub calls: u64,
    #[serde(flatten)]
    pub usage: Usage,
}

impl LlmTotals {
    fn add(&mut self, calls: u64, usage: Usage) {
        self.calls += calls;
        self.usage.add(usage);
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AskStats {
    pub synthesis_ms: u64,
    pub execution_ms: u64,
    pub generation_ms: u64,
    pub total_ms: u64,
    /// LLM use per stage, and in total.
    pub synthesis_llm: LlmTotals,
    pub generation_llm: LlmTotals,
    pub llm: LlmTotals,
    /// Operator statistics of the executed query.
    pub execution: ExecutionStats,
}

#[derive(Debug, Clone, Serialize)]
pub struct AskResponse {
    pub conversation_id: String,
    pub turn_id: i64,
    pub dataset: String,
    pub question: String,
    pub answer: String,
    /// The SQL that produced the result; `None` when the question was unanswerable.
    pub sql: Option<String>,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<serde_json::Value>>,
    pub row_count: u64,
    pub truncated: bool,
    pub failed_attempts: Vec<FailedAttempt>,
    pub stats: AskStats,
}

/// Streamed while a question is answered.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Stage { stage: &'static str, attempt: usize },
    Sql { sql: String, attempt: usize },
    Progress(Progress),
    Rows { columns: Vec<Column>, rows: Vec<Vec<serde_json::Value>>, row_count: u64, truncated: bool },
    Token { text: String },
    /// The model is still being prepared (downloaded, verified, loaded).
    Model(Readiness),
    Done(Box<AskResponse>),
    Error { code: String, message: String },
}

impl Event {
    pub fn name(&self) -> &'static str {
        match self {
            Event::Stage { .. } => "stage",
            Event::Sql { .. } => "sql",
            Event::Progress(_) => "progress",
            Event::Rows { .. } => "rows",
            Event::Token { .. } => "token",
            Event::Model(_) => "model",
            Event::Done(_) => "done",
            Event::Error { .. } => "error",
        }
    }
}

/// Sends events when someone listens.
struct Events(Option<mpsc::UnboundedSender<Event>>);

impl Events {
    fn send(&self, event: Event) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(event);
        }
    }
}

fn millis(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

/// While the model is being prepared, reports its progress about twice a second;
/// the first LLM call then waits for it (or fails with the reason).
async fn wait_for_model(llm: &dyn LlmBackend, events: &Events) {
    llm.prepare();
    let mut last = None;
    while let Readiness::Preparing(progress) = llm.readiness() {
        if last.as_ref() != Some(&progress) {
            events.send(Event::Model(Readiness::Preparing(progress.clone())));
            last = Some(progress);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Answers `request`, sending events to `events` when given.
pub async fn ask(engine: &Engine, request: AskRequest, events: Option<mpsc::UnboundedSender<Event>>) -> Result<AskResponse> {
    let events = Events(events);
    let started = Instant::now();
    let question = request.question.trim().to_string();
    if question.is_empty() {
        return Err(Error::InvalidRequest("the question is empty".into()));
    }
    if question.chars().count() > MAX_QUESTION_CHARS {
        return Err(Error::InvalidRequest(format!("the question is longer than {MAX_QUESTION_CHARS} characters")));
    }
    let dataset = engine.catalog.get(&request.dataset)?;
    let llm = engine.require_llm()?;
    let conversation = match &request.conversation_id {
        Some(id) => {
            let conversation = engine.state.conversation(id).await?;
            if conversation.dataset != request.dataset {
                return Err(Error::InvalidRequest(format!(
                    "conversation {id} is about dataset {:?}, not {:?}",
                    conversation.dataset, request.dataset
                )));
            }
            Some(conversation)
        }
        None => None,
    };
    let history = match &conversation {
        Some(conversation) => engine.state.turns(&conversation.id).await?,
        None => Vec::new(),
    };
    let config = &engine.config;
    let mut stats = AskStats::default();
    wait_for_model(llm.as_ref(), &events).await;

    // Stage 1 and 2: write SQL, run it, repair on error.
    let mut messages = synthesis::messages(&dataset, &history, &question);
    let mut failed_attempts: Vec<FailedAttempt> = Vec::new();
    let mut outcome = None;
    let mut unanswerable = None;
    let attempts = 1 + config.query.max_repairs;
    for attempt in 1..=attempts {
        let attempt_started = Instant::now();
        events.send(Event::Stage { stage: "synthesis", attempt });
        let completion = llm.complete(&ChatRequest::new(messages.clone(), config.llm.max_tokens)).await?;
        stats.synthesis_llm.add(1, completion.usage);
        let sql = match synthesis::parse_reply(&completion.text) {
            Reply::Sql(sql) => sql,
            Reply::Unanswerable(reason) => {
                stats.synthesis_ms += millis(attempt_started);
                unanswerable = Some(reason);
                break;
            }
            Reply::Unreadable => {
                stats.synthesis_ms += millis(attempt_started);
                let error = "the reply contained no SQL query".to_string();
                failed_attempts.push(FailedAttempt { sql: None, error: error.clone() });
                messages.push(Message::assistant(completion.text));
                messages.push(synthesis::repair_message(&error));
                continue;
            }
        };
        messages.push(Message::assistant(completion.text.clone()));
        let validated = engine.executor.validate(&dataset, &sql).await;
        stats.synthesis_ms += millis(attempt_started);
        if let Err(e) = validated {
            if !e.is_repairable() {
                return Err(e);
            }
            failed_attempts.push(FailedAttempt { sql: Some(sql), error: e.to_string() });
            messages.push(synthesis::repair_message(&e.to_string()));
            continue;
        }
        events.send(Event::Sql { sql: sql.clone(), attempt });
        events.send(Event::Stage { stage: "execution", attempt });
        let execution_started = Instant::now();
        let (progress_tx, mut progress_rx) = mpsc::unbounded_channel();
        let forward = events.0.clone().map(|tx| {
            tokio::spawn(async move {
                while let Some(progress) = progress_rx.recv().await {
                    let _ = tx.send(Event::Progress(progress));
                }
            })
        });
        let result = engine
            .executor
            .run_table(
                &dataset,
                &sql,
                QueryOptions {
                    max_rows: config.query.max_rows,
                    llm: Some(llm.clone()),
                    progress: forward.is_some().then_some(progress_tx),
                },
            )
            .await;
        if let Some(forward) = forward {
            let _ = forward.await;
        }
        stats.execution_ms += millis(execution_started);
        match result {
            Ok((checked, table, execution)) => {
                outcome = Some((checked, table));
                stats.execution = execution;
                break;
            }
            Err(e) if e.is_repairable() && attempt < attempts => {
                failed_attempts.push(FailedAttempt { sql: Some(sql), error: e.to_string() });
                messages.push(synthesis::repair_message(&e.to_string()));
            }
            Err(e) => return Err(e),
        }
    }
    if outcome.is_none() && unanswerable.is_none() {
        let last = failed_attempts.last().map(|a| a.error.clone()).unwrap_or_default();
        return Err(Error::Sql(format!("no working query after {attempts} attempts; last error: {last}")));
    }

    // Stage 3: the answer.
    events.send(Event::Stage { stage: "generation", attempt: 1 });
    let generation_started = Instant::now();
    let (sql, table) = match outcome {
        Some((checked, table)) => (Some(checked.original), Some(table)),
        None => (None, None),
    };
    if let Some(table) = &table {
        events.send(Event::Rows {
            columns: table.columns.clone(),
            rows: table.rows.iter().take(config.query.answer_rows).cloned().collect(),
            row_count: table.row_count,
            truncated: table.row_count > config.query.answer_rows as u64,
        });
    }
    let answer = match (&sql, &table) {
        (None, _) | (_, None) => {
            let answer = generation::unanswerable_answer(&dataset.info.name, unanswerable.as_deref().unwrap_or(""));
            events.send(Event::Token { text: answer.clone() });
            answer
        }
        (Some(_), Some(table)) if table.row_count == 0 => {
            let answer = generation::empty_answer();
            events.send(Event::Token { text: answer.clone() });
            answer
        }
        (Some(sql), Some(table)) => {
            let request = ChatRequest::new(
                generation::messages(&question, sql, table, config.query.answer_table_chars),
                config.llm.max_tokens,
            );
            let mut stream = llm.stream(&request).await?;
            let mut answer = String::new();
            let mut usage = Usage::default();
            while let Some(piece) = stream.next().await {
                match piece? {
                    StreamPiece::Text(text) => {
                        answer.push_str(&text);
                        events.send(Event::Token { text });
                    }
                    StreamPiece::Usage(u) => usage = u,
                }
            }
            stats.generation_llm.add(1, usage);
            let answer = answer.trim().to_string();
            if answer.is_empty() {
                return Err(Error::Llm("the LLM returned an empty answer".into()));
            }
            answer
        }
    };
    stats.generation_ms = millis(generation_started);

    let row_count = table.as_ref().map(|t| t.row_count);
    let conversation = match conversation {
        Some(conversation) => conversation,
        None => engine.state.create_conversation(&dataset.info.name, &shorten(&question, 80)).await?,
    };
    let turn_id = engine.state.add_turn(&conversation.id, &question, sql.as_deref(), &answer, row_count).await?;
    stats.llm.add(stats.synthesis_llm.calls, stats.synthesis_llm.usage);
    stats.llm.add(stats.execution.llm_calls, stats.execution.usage);
    stats.llm.add(stats.generation_llm.calls, stats.generation_llm.usage);
    stats.total_ms = millis(started);
    engine.metrics.add("tag_questions_total", "", 1);
    engine.metrics.add_llm("synthesis", stats.synthesis_llm.calls, stats.synthesis_llm.usage);
    engine.metrics.add_execution(&stats.execution);
    engine.metrics.add_llm("generation", stats.generation_llm.calls, stats.generation_llm.usage);

    let (columns, mut rows, table_row_count) =
        table.map(|t| (t.columns, t.rows, t.row_count)).unwrap_or((Vec::new(), Vec::new(), 0));
    rows.truncate(config.query.answer_rows);
    let response = AskResponse {
        conversation_id: conversation.id,
        turn_id,
        dataset: dataset.info.name.clone(),
        question,
        answer,
        sql,
        truncated: table_row_count > rows.len() as u64,
        columns,
        rows,
        row_count: table_row_count,
        failed_attempts,
        stats,
    };
    events.send(Event::Done(Box::new(response.clone())));
    Ok(response)
}

