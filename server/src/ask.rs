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

pub use tag_types::{AskRequest, AskResponse, AskStats, Event, FailedAttempt, LlmTotals, SchemaStats, Stage, SynthesisStats};

use crate::{
    auth::Principal,
    catalog::{linking::tokens, Dataset},
    engine::Engine,
    error::{Error, Result},
    execution::{Estimate, ExecutionStats, ProgressSink, QueryOptions, Table},
    generation,
    llm::{ChatRequest, Completion, Constraint, LlmBackend, Message, Readiness, Sampling, SharedLlm, StreamPiece, Usage},
    metrics::LlmStage,
    query::{self, admit, estimate_id, estimate_key},
    state::{Conversation, Turn},
    synthesis::{self, examples, Grounding, Reply},
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
    principal: Principal,
    conversation: Option<Conversation>,
    history: Vec<Turn>,
    /// The SQL written by an earlier request whose estimate this one confirms, and
    /// the estimate's id.
    confirmed: Option<(String, String)>,
}

impl Question {
    async fn read(engine: &Engine, principal: &Principal, request: AskRequest) -> Result<Question> {
        let text = request.question.trim().to_string();
        if text.is_empty() {
            return Err(Error::InvalidRequest("the question is empty".into()));
        }
        if text.chars().count() > MAX_QUESTION_CHARS {
            return Err(Error::InvalidRequest(format!("the question is longer than {MAX_QUESTION_CHARS} characters")));
        }
        let dataset = engine.dataset_for(principal, &request.dataset)?;
        let llm = engine.require_llm()?;
        let confirmed = match (request.confirm, request.estimate_id) {
            (false, _) => None,
            (true, None) => {
                return Err(Error::InvalidRequest("\"confirm\": true needs the \"estimate_id\" of the estimate being confirmed".into()))
            }
            (true, Some(id)) => {
                let gone = || {
                    Error::InvalidRequest(format!(
                        "no question waits for a confirmation with estimate_id {id:?} (they wait {} minutes, and run once)",
                        query::PENDING_FOR.as_secs() / 60
                    ))
                };
                let pending = engine.pending.get(&id, &principal.name).ok_or_else(gone)?;
                if pending.question != text || pending.dataset != request.dataset || pending.conversation_id != request.conversation_id {
                    return Err(Error::InvalidRequest(format!(
                        "estimate_id {id:?} is for another question; send the same question, dataset and conversation"
                    )));
                }
                // Run once: a second confirming request that raced this one finds it gone.
                engine.pending.remove(&id).ok_or_else(gone)?;
                Some((pending.sql, id))
            }
        };
        let mut question =
            Question { text, dataset, llm, principal: principal.clone(), conversation: None, history: Vec::new(), confirmed };
        let Some(id) = &request.conversation_id else { return Ok(question) };
        let conversation = engine.state.conversation(id, principal.owner_filter()).await?;
        if conversation.dataset != request.dataset {
            return Err(Error::InvalidRequest(format!(
                "conversation {id} is about dataset {:?}, not {:?}",
                conversation.dataset, request.dataset
            )));
        }
        question.history = engine.state.turns(&conversation.id).await?;
        question.conversation = Some(conversation);
        Ok(question)
    }
}

/// What synthesis ended with.
enum Synthesized {
    /// A query that ran, and its result (with the estimate made before it ran).
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
    synthesis: SynthesisStats,
    /// The SQL last tried (for the audit trail of a question that failed).
    last_sql: Option<String>,
}

/// Answers `request` for `principal`, who came in through `interface`, sending
/// its progress to `events`; audited however it ends.
pub async fn ask(engine: &Engine, principal: &Principal, interface: &str, request: AskRequest, events: Events) -> Result<AskResponse> {
    let started = Instant::now();
    let mut entry = crate::state::AuditEntry {
        interface: interface.into(),
        action: "ask".into(),
        dataset: request.dataset.clone(),
        question: Some(request.question.trim().to_string()),
        ..query::blank_entry()
    };
    let mut spent = LlmTotals::default();
    let result = answer(engine, principal, request, &events, started, &mut spent, &mut entry.sql).await;
    entry.duration_ms = millis(started);
    match &result {
        Ok(response) => {
            entry.sql = response.sql.clone();
            entry.rows = response.sql.as_ref().map(|_| response.row_count);
            if let Some(estimate) = &response.stats.execution.estimate {
                (entry.estimated_calls, entry.estimated_tokens) = (Some(estimate.llm_calls), Some(estimate.tokens));
            }
        }
        Err(error) => query::failed(&mut entry, error),
    }
    entry.llm_calls = spent.calls;
    entry.prompt_tokens = spent.usage.prompt_tokens;
    entry.completion_tokens = spent.usage.completion_tokens;
    engine.audit(principal, entry).await;
    result
}

async fn answer(
    engine: &Engine,
    principal: &Principal,
    request: AskRequest,
    events: &Events,
    started: Instant,
    spent: &mut LlmTotals,
    last_sql: &mut Option<String>,
) -> Result<AskResponse> {
    let question = Question::read(engine, principal, request).await?;
    // The token's turn to spend: questions with a daily budget run one at a time.
    let spending = engine.budgets.spend(principal).await?;
    wait_for_model(question.llm.as_ref(), events).await;
    let (synthesized, attempts) = match synthesize(engine, &question, events).await {
        Ok(done) => done,
        Err((error, attempts)) => {
            *spent = attempts.llm;
            *last_sql = attempts.last_sql;
            spending.record(spent.usage.prompt_tokens + spent.usage.completion_tokens);
            return Err(error);
        }
    };
    spent.add(attempts.llm.calls, attempts.llm.usage);
    if let Synthesized::Query { execution, .. } = &synthesized {
        spent.add(execution.llm_calls, execution.usage);
    }
    let generation_started = Instant::now();
    let generated = generate(engine, &question, &synthesized, events).await;
    let (answer, generation_llm) = match generated {
        Ok(done) => done,
        Err(error) => {
            spending.record(spent.usage.prompt_tokens + spent.usage.completion_tokens);
            return Err(error);
        }
    };
    spent.add(generation_llm.calls, generation_llm.usage);
    spending.record(spent.usage.prompt_tokens + spent.usage.completion_tokens);
    drop(spending);
    let generation_ms = millis(generation_started);
    let mut response = record(engine, question, synthesized, attempts, answer, generation_llm, generation_ms, started).await?;
    response.stats.budget_remaining = engine.budgets.remaining(principal);
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

/// Stages 1 and 2: the model writes SQL, which is checked and prepared, its cost
/// estimated and admitted, then run; an error the model may fix (a query that
/// fails, or one over the per-query cap of LLM calls) goes back to it, up to
/// `query.max_repairs` times. A query over the confirmation threshold waits for the
/// client's confirmation, and a confirming request runs the SQL it was shown.
async fn synthesize(engine: &Engine, question: &Question, events: &Events) -> Result<(Synthesized, Attempts), (Error, Attempts)> {
    let config = &engine.config;
    let mut attempts = Attempts::default();
    if let Some((sql, id)) = &question.confirmed {
        attempts.last_sql = Some(sql.clone());
        return match run(engine, question, sql, Some(id), 1, events, &mut attempts).await {
            Ok(Ran::Done(synthesized)) => Ok((synthesized, attempts)),
            Ok(Ran::Repair(error) | Ran::Failed(error)) | Err(error) => Err((error, attempts)),
        };
    }
    // Follow-ups are linked with the conversation's earlier questions too.
    let mut terms: Vec<&str> = question.history.iter().map(|turn| turn.question.as_str()).collect();
    terms.push(&question.text);
    let linked = question.dataset.linker.link(&terms.join(" "), config.query.schema_tokens);
    let schema_text = if linked.whole { question.dataset.schema_text.clone() } else { question.dataset.schema_text_of(&linked.tables) };
    let grounding = match grounding(engine, question).await {
        Ok(grounding) => grounding,
        Err(e) => return Err((e, attempts)),
    };
    let mut messages = synthesis::messages(&schema_text, &grounding, &question.history, &question.text);
    attempts.schema = SchemaStats { tables: linked.considered, shown: linked.tables, tokens: linked.tokens, linked: !linked.whole };
    let grammar = config.sql_grammar();
    attempts.synthesis = SynthesisStats {
        examples: grounding.examples.iter().map(|e| e.question.clone()).collect(),
        terms: grounding.terms.iter().filter_map(|t| t.words.first().cloned()).collect(),
        grammar,
        ..Default::default()
    };
    // The embedded (small) model is held to the dataset's names; a server's model
    // also gets WITH and derived tables.
    let scope = match question.llm.backend() {
        "embedded" => synthesis::grammar::Scope::Strict,
        _ => synthesis::grammar::Scope::Full,
    };
    let constraint = grammar.then(|| Constraint::Grammar(question.dataset.sql_grammar(scope).clone()));
    let count = 1 + config.query.max_repairs;
    for attempt in 1..=count {
        let attempt_started = Instant::now();
        events.send(Event::Stage { stage: Stage::Synthesis, attempt });
        let request = ChatRequest { constraint: constraint.clone(), ..ChatRequest::new(messages.clone(), config.llm.max_tokens) };
        let candidates = if attempt == 1 { config.query.candidates } else { 1 };
        let completion = match write_candidates(engine, question, &request, candidates, &mut attempts).await {
            Ok(completion) => completion,
            Err(e) => return Err((e, attempts)),
        };
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
        attempts.synthesis_ms += millis(attempt_started);
        messages.push(Message::assistant(completion.text.clone()));
        attempts.last_sql = Some(sql.clone());
        match run(engine, question, &sql, None, attempt, events, &mut attempts).await {
            Ok(Ran::Done(synthesized)) => return Ok((synthesized, attempts)),
            Ok(Ran::Repair(e)) => {
                attempts.failed.push(FailedAttempt { sql: Some(sql), error: e.to_string() });
                messages.push(synthesis::repair_message(&e.to_string()));
            }
            Ok(Ran::Failed(e)) if attempt < count => {
                attempts.failed.push(FailedAttempt { sql: Some(sql), error: e.to_string() });
                messages.push(synthesis::repair_message(&e.to_string()));
            }
            Ok(Ran::Failed(e)) | Err(e) => return Err((e, attempts)),
        }
    }
    let last = attempts.failed.last().map(|a| a.error.clone()).unwrap_or_default();
    Err((Error::sql(format!("no working query after {count} attempts; last error: {last}")), attempts))
}

/// The verified examples nearest the question (from the description file and
/// those saved and approved) and the business terms it uses.
async fn grounding(engine: &Engine, question: &Question) -> Result<Grounding> {
    let info = &question.dataset.info;
    let wanted = engine.config.query.examples;
    let mut known = info.verified.clone();
    if wanted > 0 {
        let saved = engine.state.examples(Some(&info.name), Some(crate::state::ExampleStatus::Approved)).await?;
        known.extend(saved.into_iter().map(|e| crate::catalog::VerifiedExample { question: e.question, sql: e.sql }));
    }
    let examples = examples::nearest(&question.text, &known, wanted).into_iter().cloned().collect();
    let terms = examples::used(&question.text, &info.terms).into_iter().cloned().collect();
    Ok(Grounding { examples, terms })
}

/// Rows a candidate's query may return when it runs for the vote.
const VOTE_ROWS: usize = 200;
/// The sampling temperature of the candidates after the first (greedy) one.
const CANDIDATE_TEMPERATURE: f32 = 0.7;

/// The model's reply to `request`; with `count` > 1, execution-guided choice: the
/// first candidate greedy, the others sampled, all at once (they share the prompt,
/// so the embedded engine reuses its cache); each candidate whose SQL prepares and
/// calls no LLM operator runs with a row limit, and the reply kept is the one whose
/// result most others agree with (ties: the earliest), else the first that runs
/// and returns rows, else the first that prepares, else the greedy one.
async fn write_candidates(
    engine: &Engine,
    question: &Question,
    request: &ChatRequest,
    count: usize,
    attempts: &mut Attempts,
) -> Result<Completion> {
    if count <= 1 {
        let completion = question.llm.complete(request).await?;
        attempts.llm.add(1, completion.usage);
        attempts.synthesis.candidates = 1;
        return Ok(completion);
    }
    let requests: Vec<ChatRequest> = (0..count)
        .map(|i| match i {
            0 => request.clone(),
            i => ChatRequest {
                sampling: Sampling::Random { temperature: CANDIDATE_TEMPERATURE, seed: i as u32 },
                ..request.clone()
            },
        })
        .collect();
    let replies = futures::future::join_all(requests.iter().map(|r| question.llm.complete(r))).await;
    let mut completions = Vec::new();
    for reply in replies {
        match reply {
            Ok(completion) => {
                attempts.llm.add(1, completion.usage);
                completions.push(completion);
            }
            Err(e) if completions.is_empty() => return Err(e),
            Err(e) => tracing::warn!(error = %e, "an SQL candidate failed"),
        }
    }
    // Each candidate's result, as a comparable fingerprint (None: not run).
    let mut prepared_any = None;
    let mut fingerprints: Vec<Option<String>> = Vec::new();
    for (i, completion) in completions.iter().enumerate() {
        let Reply::Sql(sql) = synthesis::parse_reply(&completion.text) else {
            fingerprints.push(None);
            continue;
        };
        let Ok(prepared) = engine.executor.prepare(&question.dataset, &sql).await else {
            fingerprints.push(None);
            continue;
        };
        prepared_any.get_or_insert(i);
        if !prepared.checked.operators.is_empty() {
            fingerprints.push(None);
            continue;
        }
        let options = QueryOptions { max_rows: VOTE_ROWS, llm: None, progress: None, token_budget: None };
        fingerprints.push(match engine.executor.execute_table(prepared, options).await {
            Ok((table, _)) if table.row_count > 0 => {
                attempts.synthesis.candidates_ran += 1;
                let mut rows: Vec<String> = table.rows.iter().map(|row| serde_json::Value::from(row.clone()).to_string()).collect();
                rows.sort();
                Some(format!("{}\n{}", table.row_count, rows.join("\n")))
            }
            Ok(_) | Err(_) => {
                attempts.synthesis.candidates_ran += 1;
                None
            }
        });
    }
    let agreeing = |i: usize| fingerprints.iter().filter(|f| f.is_some() && **f == fingerprints[i]).count();
    let voted = (0..fingerprints.len()).filter(|&i| fingerprints[i].is_some()).max_by_key(|&i| (agreeing(i), std::cmp::Reverse(i)));
    let chosen = voted.or(prepared_any).unwrap_or(0);
    attempts.synthesis.candidates = completions.len();
    attempts.synthesis.candidates_agreeing = voted.map(agreeing).unwrap_or(0);
    Ok(completions.swap_remove(chosen))
}

/// What running one written query came to.
enum Ran {
    Done(Synthesized),
    /// It did not prepare: the error goes back to the SQL-writing model.
    Repair(Error),
    /// It failed when admitted or run: back to the model while attempts remain,
    /// else the question's error.
    Failed(Error),
}

/// Prepares `sql`, estimates and admits it (`confirmed`: the estimate id the
/// client confirmed), and runs it. A query that needs confirmation is kept
/// waiting under its estimate id, with the error that says so.
async fn run(
    engine: &Engine,
    question: &Question,
    sql: &str,
    confirmed: Option<&str>,
    attempt: usize,
    events: &Events,
    attempts: &mut Attempts,
) -> Result<Ran> {
    let dataset = &question.dataset;
    let prepare_started = Instant::now();
    let prepared = engine.executor.prepare(dataset, sql).await;
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(e) if e.is_repairable() && confirmed.is_none() => {
            attempts.synthesis_ms += millis(prepare_started);
            return Ok(Ran::Repair(e));
        }
        Err(e) => return Err(e),
    };
    let mut estimate: Option<Estimate> = None;
    if !prepared.checked.operators.is_empty() {
        let found = engine.executor.estimate(dataset, &prepared.checked).await?;
        let key = estimate_key(&dataset.info.name, &prepared.checked.original);
        match admit(engine, &question.principal, &key, &found, confirmed.is_some(), confirmed) {
            Ok(()) => {}
            Err(Error::TooCostly(message)) if confirmed.is_none() => return Ok(Ran::Failed(Error::TooCostly(message))),
            Err(e @ Error::Confirm { .. }) => {
                let conversation = question.conversation.as_ref().map(|c| c.id.clone());
                let (name, id) = (&dataset.info.name, estimate_id(&key, &found));
                engine.pending.put(id, &question.principal.name, name, &question.text, conversation, prepared.checked.original.clone());
                events.send(Event::Sql { sql: prepared.checked.original.clone(), attempt });
                return Err(e);
            }
            Err(e) => return Err(e),
        }
        estimate = Some(found);
    }
    attempts.synthesis_ms += millis(prepare_started);
    events.send(Event::Sql { sql: sql.to_string(), attempt });
    events.send(Event::Stage { stage: Stage::Execution, attempt });
    let execution_started = Instant::now();
    let original = prepared.checked.original.clone();
    let options = QueryOptions {
        max_rows: engine.config.query.max_rows,
        llm: Some(question.llm.clone()),
        progress: events.progress(),
        token_budget: engine.budgets.remaining(&question.principal),
    };
    let result = engine.executor.execute_table(prepared, options).await.map_err(|e| engine.query_failure(dataset, e));
    attempts.execution_ms += millis(execution_started);
    match result {
        Ok((table, mut execution)) => {
            execution.estimate = estimate;
            Ok(Ran::Done(Synthesized::Query { sql: original, table, execution }))
        }
        Err(e) if e.is_repairable() && confirmed.is_none() => Ok(Ran::Failed(e)),
        Err(e) => Err(e),
    }
}

/// Stage 3: the answer, streamed as tokens. Empty results and unanswerable
/// questions are answered without the model, so nothing is invented.
async fn generate(engine: &Engine, question: &Question, synthesized: &Synthesized, events: &Events) -> Result<(Answer, LlmTotals)> {
    let config = &engine.config;
    events.send(Event::Stage { stage: Stage::Generation, attempt: 1 });
    let (sql, table) = match synthesized {
        Synthesized::Unanswerable(reason) => {
            let answer = generation::unanswerable_answer(&question.dataset.info.name, reason);
            events.send(Event::Token { text: answer.clone() });
            return Ok((Answer { text: answer, fallback: None }, LlmTotals::default()));
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
        return Ok((Answer { text: answer, fallback: None }, LlmTotals::default()));
    }
    let answer = write_answer(question.llm.as_ref(), config, &question.text, sql, table, |text| {
        events.send(Event::Token { text: text.to_string() })
    })
    .await?;
    if let Some(reason) = &answer.0.fallback {
        tracing::info!(reason, "the model's answer was replaced by one built from the result");
    }
    Ok(answer)
}

/// Stage 3's model call: the answer to `question` from `sql`'s result `table`,
/// streamed to `on_token`, with repeated phrases penalised (`Sampling::Prose`),
/// within `llm.answer_max_tokens`, stopped at its first repeated sentence; an
/// answer that degenerates is replaced by one built from the result (labelled).
pub async fn write_answer(
    llm: &dyn LlmBackend,
    config: &crate::Config,
    question: &str,
    sql: &str,
    table: &Table,
    mut on_token: impl FnMut(&str),
) -> Result<(Answer, LlmTotals)> {
    let request = ChatRequest {
        sampling: Sampling::Prose,
        ..ChatRequest::new(generation::messages(question, sql, table, config.query.answer_table_chars), config.llm.answer_max_tokens)
    };
    let mut stream = llm.stream(&request).await?;
    let mut answer = String::new();
    let mut usage = Usage::default();
    while let Some(piece) = stream.next().await {
        match piece? {
            StreamPiece::Text(text) => {
                answer.push_str(&text);
                on_token(&text);
                // A loop stops at its first repeat, which can only complete at a
                // sentence's end (dropping the stream cancels the call, whose usage
                // then never comes: it is estimated).
                if text.contains(['.', '!', '?', '\n']) && generation::repetition(&answer).is_some() {
                    let prompt: usize = request.messages.iter().map(|m| tokens(&m.content)).sum();
                    usage = Usage { prompt_tokens: prompt as u64, completion_tokens: tokens(&answer) as u64, ..usage };
                    break;
                }
            }
            StreamPiece::Usage(u) => usage = u,
        }
    }
    let answer = answer.trim().to_string();
    let answer = match generation::degenerate(&answer, table) {
        None => Answer { text: answer, fallback: None },
        Some(reason) => Answer { text: generation::from_result(table, sql, reason), fallback: Some(reason.to_string()) },
    };
    Ok((answer, LlmTotals { calls: 1, usage }))
}

/// The answer, and why it was built from the result, when it was.
pub struct Answer {
    pub text: String,
    pub fallback: Option<String>,
}

/// Stores the turn (in a new conversation when the question started one), counts
/// the question in the metrics and shapes the response.
#[allow(clippy::too_many_arguments)]
async fn record(
    engine: &Engine,
    question: Question,
    synthesized: Synthesized,
    attempts: Attempts,
    answer: Answer,
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
        None => {
            let title = shorten(&question.text, 80);
            engine.state.create_conversation(&question.dataset.info.name, &title, &question.principal.name).await?
        }
    };
    let row_count = table.as_ref().map(|t| t.row_count);
    let turn_id = engine.state.add_turn(&conversation.id, &question.text, sql.as_deref(), &answer.text, row_count).await?;

    let mut stats = AskStats {
        synthesis_ms: attempts.synthesis_ms,
        execution_ms: attempts.execution_ms,
        generation_ms,
        synthesis_llm: attempts.llm,
        generation_llm,
        execution,
        schema: attempts.schema,
        synthesis: attempts.synthesis,
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
        answer: answer.text,
        fallback: answer.fallback,
        sql,
        truncated: row_count > rows.len() as u64,
        columns,
        rows,
        row_count,
        failed_attempts: attempts.failed,
        stats,
    })
}
