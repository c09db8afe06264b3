//! One question through the three TAG stages: [`synthesize`] has the LLM write SQL,
//! prepares it and runs it, showing the model its error for a bounded number of
//! repairs (stages 1 and 2); [`generate`] writes the answer from the result (stage
//! 3, streamed); [`ask`] reads the question and its conversation, runs the stages
//! and records the turn. Progress goes to one [`Events`] sink as typed events, which
//! the HTTP layer streams as server-sent events; the final [`AskResponse`] is the
//! same either way.

use std::{sync::Arc, time::Instant};

use futures::StreamExt;
use tokio::sync::mpsc;

pub use tag_types::{AskRequest, AskResponse, AskStats, Event, FailedAttempt, LlmTotals, SchemaStats, Stage};

use crate::{
    catalog::Dataset,
    engine::Engine,
    error::{Error, Result},
    execution::{ExecutionStats, ProgressSink, QueryOptions, Table},
    generation,
    llm::{ChatRequest, LlmBackend, Message, Readiness, SharedLlm, StreamPiece, Usage},
    metrics::LlmStage,
    state::{Conversation, Turn},
    synthesis::{self, Reply},
    text::shorten,
};

const MAX_QUESTION_CHARS: usize = 4000;

/// Where a question's events go: a listener (the SSE stream, the CLI's printer), or
/// nowhere.
#[derive(Clone, Default)]
pub struct Events(Option<mpsc::UnboundedSender<Event>>);

impl Events {
    pub fn to(listener: mpsc::UnboundedSender<Event>) -> Events {
        Events(Some(listener))
    }

    fn send(&self, event: Event) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(event);
        }
    }

    /// The running query's progress, as `progress` events.
    fn progress(&self) -> Option<ProgressSink> {
        let tx = self.0.clone()?;
        Some(Arc::new(move |progress| {
            let _ = tx.send(Event::Progress(progress));
        }))
    }
}

fn millis(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

/// A question that passed its checks, with its dataset and conversation so far.
struct Question {
    text: String,
    dataset: Arc<Dataset>,
    llm: SharedLlm,
    conversation: Option<Conversation>,
    history: Vec<Turn>,
}

impl Question {
    async fn read(engine: &Engine, request: AskRequest) -> Result<Question> {
        let text = request.question.trim().to_string();
        if text.is_empty() {
            return Err(Error::InvalidRequest("the question is empty".into()));
        }
        if text.chars().count() > MAX_QUESTION_CHARS {
            return Err(Error::InvalidRequest(format!("the question is longer than {MAX_QUESTION_CHARS} characters")));
        }
        let dataset = engine.catalog.get(&request.dataset)?;
        let llm = engine.require_llm()?;
        let Some(id) = &request.conversation_id else {
            return Ok(Question { text, dataset, llm, conversation: None, history: Vec::new() });
        };
        let conversation = engine.state.conversation(id).await?;
        if conversation.dataset != request.dataset {
            return Err(Error::InvalidRequest(format!(
                "conversation {id} is about dataset {:?}, not {:?}",
                conversation.dataset, request.dataset
            )));
        }
        let history = engine.state.turns(&conversation.id).await?;
        Ok(Question { text, dataset, llm, conversation: Some(conversation), history })
    }
}

/// What synthesis ended with.
enum Synthesized {
    /// A query that ran, and its result.
    Query { sql: String, table: Table, execution: ExecutionStats },
    /// The model said the data cannot answer the question, and why.
    Unanswerable(String),
}

/// What the attempts at writing SQL cost, and those that failed.
#[derive(Default)]
struct Attempts {
    failed: Vec<FailedAttempt>,
    llm: LlmTotals,
    synthesis_ms: u64,
    execution_ms: u64,
    schema: SchemaStats,
}

/// Answers `request`, sending its progress to `events`.
pub async fn ask(engine: &Engine, request: AskRequest, events: Events) -> Result<AskResponse> {
    let started = Instant::now();
    let question = Question::read(engine, request).await?;
    wait_for_model(question.llm.as_ref(), &events).await;
    let (synthesized, attempts) = synthesize(engine, &question, &events).await?;
    let generation_started = Instant::now();
    let (answer, generation_llm) = generate(engine, &question, &synthesized, &events).await?;
    let generation_ms = millis(generation_started);
    let response = record(engine, question, synthesized, attempts, answer, generation_llm, generation_ms, started).await?;
    events.send(Event::Done(Box::new(response.clone())));
    Ok(response)
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

/// Stages 1 and 2: the model writes SQL, which is checked and prepared, then run;
/// an error the model may fix goes back to it, up to `query.max_repairs` times.
async fn synthesize(engine: &Engine, question: &Question, events: &Events) -> Result<(Synthesized, Attempts)> {
    let config = &engine.config;
    let dataset = &question.dataset;
    // Follow-ups are linked with the conversation's earlier questions too.
    let mut terms: Vec<&str> = question.history.iter().map(|turn| turn.question.as_str()).collect();
    terms.push(&question.text);
    let linked = dataset.linker.link(&terms.join(" "), config.query.schema_tokens);
    let schema_text = if linked.whole { dataset.schema_text.clone() } else { dataset.schema_text_of(&linked.tables) };
    let mut messages = synthesis::messages(&schema_text, &question.history, &question.text);
    let mut attempts = Attempts::default();
    attempts.schema = SchemaStats { tables: linked.considered, shown: linked.tables, tokens: linked.tokens, linked: !linked.whole };
    let count = 1 + config.query.max_repairs;
    for attempt in 1..=count {
        let attempt_started = Instant::now();
        events.send(Event::Stage { stage: Stage::Synthesis, attempt });
        let completion = question.llm.complete(&ChatRequest::new(messages.clone(), config.llm.max_tokens)).await?;
        attempts.llm.add(1, completion.usage);
        let sql = match synthesis::parse_reply(&completion.text) {
            Reply::Sql(sql) => sql,
            Reply::Unanswerable(reason) => {
                attempts.synthesis_ms += millis(attempt_started);
                return Ok((Synthesized::Unanswerable(reason), attempts));
            }
            Reply::Unreadable => {
                attempts.synthesis_ms += millis(attempt_started);
                let error = "the reply contained no SQL query".to_string();
                attempts.failed.push(FailedAttempt { sql: None, error: error.clone() });
                messages.push(Message::assistant(completion.text));
                messages.push(synthesis::repair_message(&error));
                continue;
            }
        };
        messages.push(Message::assistant(completion.text.clone()));
        let prepared = engine.executor.prepare(&question.dataset, &sql).await;
        attempts.synthesis_ms += millis(attempt_started);
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(e) if e.is_repairable() => {
                attempts.failed.push(FailedAttempt { sql: Some(sql), error: e.to_string() });
                messages.push(synthesis::repair_message(&e.to_string()));
                continue;
            }
            Err(e) => return Err(e),
        };
        events.send(Event::Sql { sql: sql.clone(), attempt });
        events.send(Event::Stage { stage: Stage::Execution, attempt });
        let execution_started = Instant::now();
        let original = prepared.checked.original.clone();
        let options = QueryOptions { max_rows: config.query.max_rows, llm: Some(question.llm.clone()), progress: events.progress() };
        let result = engine.executor.execute_table(prepared, options).await.map_err(|e| engine.query_failure(dataset, e));
        attempts.execution_ms += millis(execution_started);
        match result {
            Ok((table, execution)) => return Ok((Synthesized::Query { sql: original, table, execution }, attempts)),
            Err(e) if e.is_repairable() && attempt < count => {
                attempts.failed.push(FailedAttempt { sql: Some(sql), error: e.to_string() });
                messages.push(synthesis::repair_message(&e.to_string()));
            }
            Err(e) => return Err(e),
        }
    }
    let last = attempts.failed.last().map(|a| a.error.clone()).unwrap_or_default();
    Err(Error::sql(format!("no working query after {count} attempts; last error: {last}")))
}

/// Stage 3: the answer, streamed as tokens. Empty results and unanswerable
/// questions are answered without the model, so nothing is invented.
async fn generate(engine: &Engine, question: &Question, synthesized: &Synthesized, events: &Events) -> Result<(String, LlmTotals)> {
    let config = &engine.config;
    events.send(Event::Stage { stage: Stage::Generation, attempt: 1 });
    let (sql, table) = match synthesized {
        Synthesized::Unanswerable(reason) => {
            let answer = generation::unanswerable_answer(&question.dataset.info.name, reason);
            events.send(Event::Token { text: answer.clone() });
            return Ok((answer, LlmTotals::default()));
        }
        Synthesized::Query { sql, table, .. } => (sql, table),
    };
    events.send(Event::Rows {
        columns: table.columns.clone(),
        rows: table.rows.iter().take(config.query.answer_rows).cloned().collect(),
        row_count: table.row_count,
        truncated: table.row_count > config.query.answer_rows as u64,
    });
    if table.row_count == 0 {
        let answer = generation::empty_answer();
        events.send(Event::Token { text: answer.clone() });
        return Ok((answer, LlmTotals::default()));
    }
    let request = ChatRequest::new(
        generation::messages(&question.text, sql, table, config.query.answer_table_chars),
        config.llm.max_tokens,
    );
    let mut stream = question.llm.stream(&request).await?;
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
    let answer = answer.trim().to_string();
    if answer.is_empty() {
        return Err(Error::llm("the LLM returned an empty answer"));
    }
    Ok((answer, LlmTotals { calls: 1, usage }))
}

/// Stores the turn (in a new conversation when the question started one), counts
/// the question in the metrics and shapes the response.
#[allow(clippy::too_many_arguments)]
async fn record(
    engine: &Engine,
    question: Question,
    synthesized: Synthesized,
    attempts: Attempts,
    answer: String,
    generation_llm: LlmTotals,
    generation_ms: u64,
    started: Instant,
) -> Result<AskResponse> {
    let (sql, table, execution) = match synthesized {
        Synthesized::Query { sql, table, execution } => (Some(sql), Some(table), execution),
        Synthesized::Unanswerable(_) => (None, None, ExecutionStats::default()),
    };
    let conversation = match question.conversation {
        Some(conversation) => conversation,
        None => engine.state.create_conversation(&question.dataset.info.name, &shorten(&question.text, 80)).await?,
    };
    let row_count = table.as_ref().map(|t| t.row_count);
    let turn_id = engine.state.add_turn(&conversation.id, &question.text, sql.as_deref(), &answer, row_count).await?;

    let mut stats = AskStats {
        synthesis_ms: attempts.synthesis_ms,
        execution_ms: attempts.execution_ms,
        generation_ms,
        synthesis_llm: attempts.llm,
        generation_llm,
        execution,
        schema: attempts.schema,
        ..Default::default()
    };
    stats.llm.add(stats.synthesis_llm.calls, stats.synthesis_llm.usage);
    stats.llm.add(stats.execution.llm_calls, stats.execution.usage);
    stats.llm.add(stats.generation_llm.calls, stats.generation_llm.usage);
    stats.total_ms = millis(started);
    engine.metrics.question();
    engine.metrics.llm(LlmStage::Synthesis, stats.synthesis_llm.calls, stats.synthesis_llm.usage);
    engine.metrics.execution(&stats.execution);
    engine.metrics.llm(LlmStage::Generation, stats.generation_llm.calls, stats.generation_llm.usage);

    let Table { columns, mut rows, row_count, .. } = table.unwrap_or_default();
    rows.truncate(engine.config.query.answer_rows);
    Ok(AskResponse {
        conversation_id: conversation.id,
        turn_id,
        dataset: question.dataset.info.name.clone(),
        question: question.text,
        answer,
        sql,
        truncated: row_count > rows.len() as u64,
        columns,
        rows,
        row_count,
        failed_attempts: attempts.failed,
        stats,
    })
}
