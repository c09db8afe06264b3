//! tag-types: the types of tag-server's HTTP API, and nothing else. The server
//! (`tag-server`) serialises them and the chat page (`tag-web`, built for wasm32)
//! deserialises the same definitions, so the page cannot drift from the server.
//! Serde only: no I/O, no server logic.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A question for `POST /v1/ask`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskRequest {
    pub question: String,
    pub dataset: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// Run the query of an earlier answer `confirmation_required`, whose
    /// `estimate_id` is given.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub confirm: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate_id: Option<String>,
}

/// A query for `POST /v1/sql`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    pub sql: String,
    pub dataset: String,
    /// Run it although its estimate is over the confirmation threshold: the
    /// `estimate_id` of the `confirmation_required` answer says which estimate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub confirm: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate_id: Option<String>,
}

/// What a query's LLM operators are expected to spend, worked out before it runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// LLM calls (requests to the model), before the response cache.
    pub llm_calls: u64,
    /// Prompt plus completion tokens.
    pub tokens: u64,
    pub operators: Vec<OperatorEstimate>,
    /// False when some operator's input could not be estimated (it is left out).
    pub complete: bool,
}

/// One operator call's share of an [`Estimate`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OperatorEstimate {
    pub operator: String,
    /// Distinct inputs (rows, or groups) that reach it.
    pub inputs: u64,
    pub llm_calls: u64,
    pub tokens: u64,
    /// How the inputs were found: `count` (a count over the same FROM and the
    /// operator-free predicates), `planner` (DuckDB's cardinality estimate, when the
    /// count was too slow or not possible) or `unknown`.
    pub method: String,
}

/// A result column: name and SQL type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub data_type: String,
}

/// Rows as JSON values, at most a limit of them, with the full count.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
    pub row_count: u64,
    pub truncated: bool,
}

/// The answer of `POST /v1/sql` (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqlResponse {
    /// The SQL as the client wrote it (trimmed).
    pub sql: String,
    #[serde(flatten)]
    pub table: Table,
    pub stats: ExecutionStats,
}

/// Token accounting as reported by the model server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Prompt tokens the server served from its prefix cache.
    pub cached_prompt_tokens: u64,
}

impl Usage {
    pub fn add(&mut self, other: Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.cached_prompt_tokens += other.cached_prompt_tokens;
    }
}

/// Percent of `part` in `whole` (0 when `whole` is 0).
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// Counters of one LLM operator within one query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorStats {
    pub operator: String,
    /// Rows (or groups) the operator was evaluated on.
    pub rows: u64,
    /// Distinct prompts among them.
    pub distinct_prompts: u64,
    /// Prompts answered from this query's memo instead of the LLM.
    pub memo_hits: u64,
    /// Requests answered from the persistent response cache (a yes/no prompt whose
    /// first token did not decide counts its two requests).
    pub cache_hits: u64,
    pub llm_calls: u64,
    pub failed_calls: u64,
    /// Answers that did not have the required form (they became NULL).
    pub invalid_answers: u64,
    #[serde(flatten)]
    pub usage: Usage,
    pub llm_ms: u64,
    /// Characters of the prompts in the order they were sent, and how many of them
    /// were a prefix shared with an earlier prompt (the prefix hit rate's parts).
    pub prompt_chars: u64,
    pub shared_prefix_chars: u64,
}

impl OperatorStats {
    /// Percent of prompt characters shared with an earlier prompt, in sending order.
    pub fn prefix_hit_rate(&self) -> f64 {
        percent(self.shared_prefix_chars, self.prompt_chars)
    }
}

/// What executing one query cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecutionStats {
    pub elapsed_ms: u64,
    /// Wall time with at least one LLM call in flight; the rest of `elapsed_ms` is
    /// DuckDB and the engine.
    pub llm_wall_ms: u64,
    /// Time spent waiting for LLM calls, summed over calls (they overlap).
    pub llm_ms: u64,
    /// Rows (or groups) the operators were evaluated on.
    pub operator_rows: u64,
    pub distinct_prompts: u64,
    pub memo_hits: u64,
    pub cache_hits: u64,
    pub llm_calls: u64,
    /// Percent of prompt characters shared with an earlier prompt, in sending order.
    pub prefix_hit_rate: f64,
    #[serde(flatten)]
    pub usage: Usage,
    pub operators: Vec<OperatorStats>,
    /// The estimate made before the query ran (queries with LLM operators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<Estimate>,
    /// LLM tokens the token may still spend today, after this query (when it has a
    /// daily budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_remaining: Option<u64>,
}

impl ExecutionStats {
    /// The totals over `operators`, with the query's wall times.
    pub fn from_operators(operators: Vec<OperatorStats>, elapsed_ms: u64, llm_wall_ms: u64) -> Self {
        let mut stats = ExecutionStats { elapsed_ms, llm_wall_ms, ..Default::default() };
        let (mut chars, mut shared) = (0, 0);
        for op in &operators {
            stats.llm_ms += op.llm_ms;
            stats.operator_rows += op.rows;
            stats.distinct_prompts += op.distinct_prompts;
            stats.llm_calls += op.llm_calls;
            stats.memo_hits += op.memo_hits;
            stats.cache_hits += op.cache_hits;
            stats.usage.add(op.usage);
            chars += op.prompt_chars;
            shared += op.shared_prefix_chars;
        }
        stats.prefix_hit_rate = percent(shared, chars);
        stats.operators = operators;
        stats
    }
}

/// Progress of a running query, sent about four times a second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub elapsed_ms: u64,
    pub operators: Vec<OperatorStats>,
}

/// LLM calls and their tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmTotals {
    pub calls: u64,
    #[serde(flatten)]
    pub usage: Usage,
}

impl LlmTotals {
    pub fn add(&mut self, calls: u64, usage: Usage) {
        self.calls += calls;
        self.usage.add(usage);
    }
}

/// The schema the SQL-writing LLM was shown: the whole schema, or the tables
/// linked to the question when the whole would not fit its token budget.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SchemaStats {
    /// Tables in the dataset (all were considered).
    pub tables: usize,
    /// Tables shown in the prompt.
    pub shown: Vec<String>,
    /// Estimated tokens of the schema text shown.
    pub tokens: usize,
    /// Whether linking chose a subset (the whole schema was over the budget).
    pub linked: bool,
}

/// Time and LLM use per stage of one question.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// What the synthesis prompt showed of the schema.
    #[serde(default)]
    pub schema: SchemaStats,
    /// LLM tokens the token may still spend today, after this question (when it has
    /// a daily budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_remaining: Option<u64>,
    /// What grounded and shaped the SQL: examples, terms, grammar, candidates.
    #[serde(default)]
    pub synthesis: SynthesisStats,
}

/// How the SQL was written: the verified examples and business terms the prompt
/// showed, whether a grammar constrained it, and the candidates of
/// execution-guided choice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SynthesisStats {
    /// The questions of the verified examples shown, nearest first.
    pub examples: Vec<String>,
    /// The business terms shown (their first word).
    pub terms: Vec<String>,
    /// Whether the SQL was constrained by the dataset's grammar.
    pub grammar: bool,
    /// Candidates written, run for the vote (those that prepared and call no LLM
    /// operator), and agreeing with the one kept (itself included).
    pub candidates: usize,
    pub candidates_ran: usize,
    pub candidates_agreeing: usize,
}

/// One attempt at writing SQL that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedAttempt {
    pub sql: Option<String>,
    pub error: String,
}

/// The answer of `POST /v1/ask`, and the `done` event's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AskResponse {
    pub conversation_id: String,
    pub turn_id: i64,
    pub dataset: String,
    pub question: String,
    pub answer: String,
    /// The SQL that produced the result; `None` when the question was unanswerable.
    pub sql: Option<String>,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
    pub row_count: u64,
    pub truncated: bool,
    /// Why the answer was built from the result instead of written by the model
    /// (its answer repeated itself, was empty, or gave another value); the answer
    /// says so too. Absent when the model wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    pub failed_attempts: Vec<FailedAttempt>,
    pub stats: AskStats,
}

/// The three stages of answering a question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The LLM writes SQL.
    Synthesis,
    /// DuckDB runs it, with the LLM operators.
    Execution,
    /// The LLM writes the answer from the result.
    Generation,
}

/// Progress of preparing the embedded model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Preparing {
    Downloading { done: u64, total: Option<u64> },
    Verifying,
    Loading,
}

/// Whether an LLM backend can answer now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum Readiness {
    Ready,
    /// Still being prepared (model download, verification, loading).
    Preparing(Preparing),
    /// It cannot be used; the message says why and what to do.
    Failed(String),
}

/// The server-sent events of `POST /v1/ask` with `Accept: text/event-stream`; the
/// SSE event name is [`Event::name`], its data this value as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Stage { stage: Stage, attempt: usize },
    Sql { sql: String, attempt: usize },
    Progress(Progress),
    Rows { columns: Vec<Column>, rows: Vec<Vec<Value>>, row_count: u64, truncated: bool },
    Token { text: String },
    /// The model is still being prepared (downloaded, verified, loaded).
    Model(Readiness),
    Done(Box<AskResponse>),
    /// The error object's fields besides `code` and `message` (the estimate and
    /// `estimate_id` of `confirmation_required`) are in `details`.
    Error {
        code: String,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        details: Option<Value>,
    },
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

/// A dataset in `GET /v1/datasets`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetSummary {
    pub name: String,
    pub description: String,
    pub tables: Vec<TableSummary>,
    pub examples: Vec<String>,
    /// Where the data lives: `files`, `duckdb`, `postgres`, `mysql` or `sqlite`.
    #[serde(default)]
    pub source: String,
    /// False while its database cannot be reached; `reason` says why.
    #[serde(default = "yes")]
    pub available: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSummary {
    pub name: String,
    pub row_count: u64,
    pub columns: usize,
}

/// What the server knows about a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    pub name: String,
    pub description: String,
    pub tables: Vec<TableInfo>,
    pub joins: Vec<String>,
    pub examples: Vec<String>,
    /// Verified question → SQL pairs from the description file (`[[verified]]`);
    /// synthesis shows the ones nearest a question. Examples saved through the API
    /// are listed by `GET /v1/datasets/{name}/examples`.
    #[serde(default)]
    pub verified: Vec<VerifiedExample>,
    /// Business terms: the words users say, and what they mean in these tables.
    #[serde(default)]
    pub terms: Vec<Term>,
}

/// A question and the SQL known to answer it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifiedExample {
    pub question: String,
    pub sql: String,
}

/// A business term: the words (synonyms) users say, and what they mean in the
/// tables (`gross` → `movies.box_office_usd_millions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Term {
    pub words: Vec<String>,
    pub means: String,
}

/// `POST /v1/datasets/{name}/examples`: save a question and the SQL that answers it
/// (from an answer whose SQL is right), or, with `turn_id`, the question and SQL of
/// that turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaveExampleRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
}

/// A saved example: `pending` until an admin approves it (when access control is
/// on, an analyst's examples wait), then `approved` and used by synthesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedExample {
    pub id: i64,
    pub dataset: String,
    pub question: String,
    pub sql: String,
    pub status: ExampleStatus,
    /// The token name that saved it.
    pub saved_by: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExampleStatus {
    Pending,
    Approved,
}

impl ExampleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExampleStatus::Pending => "pending",
            ExampleStatus::Approved => "approved",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableInfo {
    pub name: String,
    pub description: Option<String>,
    pub primary_key: Option<String>,
    pub row_count: u64,
    pub columns: Vec<ColumnInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnInfo {
    pub name: String,
    pub data_type: String,
    pub description: Option<String>,
    /// A few frequent values, as text.
    pub samples: Vec<String>,
    /// Approximate number of distinct values.
    pub distinct_count: u64,
    /// Every value, when the column is text with only a few distinct values.
    pub values: Option<Vec<String>>,
}

/// `GET /v1/datasets/{name}`: the dataset, a few rows of each table, and the schema
/// text the SQL-writing LLM sees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetDetail {
    #[serde(flatten)]
    pub info: DatasetInfo,
    pub sample_rows: std::collections::BTreeMap<String, Table>,
    pub schema_text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: String,
    pub dataset: String,
    pub title: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One question and what the server answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    pub id: i64,
    pub question: String,
    pub sql: Option<String>,
    pub answer: String,
    pub row_count: Option<u64>,
    pub created_at: i64,
}

/// `GET /v1/conversations/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationDetail {
    pub conversation: Conversation,
    pub turns: Vec<Turn>,
}

/// `PATCH /v1/conversations/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    pub title: String,
}

/// Thumbs up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rating {
    Up,
    Down,
}

impl Rating {
    pub fn as_str(self) -> &'static str {
        match self {
            Rating::Up => "up",
            Rating::Down => "down",
        }
    }
}

/// `POST /v1/feedback`: a verdict on one answer (a turn); a second one replaces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    pub turn_id: i64,
    pub rating: Rating,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A reader's verdict on one answer, with the question it was about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feedback {
    pub turn_id: i64,
    pub conversation_id: String,
    pub question: String,
    pub rating: Rating,
    pub comment: Option<String>,
    pub created_at: i64,
}

/// A signed-in token's view of itself: `GET /v1/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    /// Whether the server requires tokens (when false, everyone is an admin).
    pub auth_required: bool,
    pub name: String,
    /// `admin` or `analyst`.
    pub role: String,
    /// The datasets it may use; `None`: all.
    pub datasets: Option<Vec<String>>,
    pub requests_per_minute: Option<u32>,
    pub tokens_per_day: Option<u64>,
    /// LLM tokens left today.
    pub budget_remaining: Option<u64>,
    /// Estimated LLM calls above which a query asks for confirmation.
    pub confirm_calls: Option<u64>,
}

/// One ask or sql request, as the audit trail keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    /// Seconds since the epoch.
    pub at: i64,
    /// The token's name (empty when access control is off) and id.
    pub principal: String,
    pub token_id: Option<String>,
    /// Where it came in: `http`, and later `pgwire`, `mcp`.
    pub interface: String,
    /// `ask` or `sql`.
    pub action: String,
    pub dataset: String,
    pub question: Option<String>,
    /// The SQL that ran (or was refused).
    pub sql: Option<String>,
    pub rows: Option<u64>,
    pub llm_calls: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub estimated_calls: Option<u64>,
    pub estimated_tokens: Option<u64>,
    /// `ok`, or the error code.
    pub outcome: String,
    pub message: Option<String>,
    pub duration_ms: u64,
}

/// `GET /v1/audit`: newest first; `next_before` pages further back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub next_before: Option<i64>,
}

/// Every error: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Every event survives the trip through JSON, as the page reads what the
    /// server writes.
    #[test]
    fn events_round_trip_through_json() {
        let response = AskResponse {
            conversation_id: "c".into(),
            turn_id: 3,
            dataset: "movies".into(),
            question: "q".into(),
            answer: "a".into(),
            sql: Some("SELECT 1".into()),
            columns: vec![Column { name: "x".into(), data_type: "INTEGER".into() }],
            rows: vec![vec![json!(1)]],
            row_count: 1,
            truncated: false,
            fallback: Some("the model's answer was empty".into()),
            failed_attempts: vec![FailedAttempt { sql: None, error: "no SQL".into() }],
            stats: AskStats::default(),
        };
        let events = vec![
            Event::Stage { stage: Stage::Execution, attempt: 2 },
            Event::Sql { sql: "SELECT 1".into(), attempt: 1 },
            Event::Progress(Progress { elapsed_ms: 5, operators: vec![OperatorStats { operator: "llm_filter".into(), rows: 2, ..Default::default() }] }),
            Event::Rows { columns: vec![], rows: vec![vec![json!("a")]], row_count: 9, truncated: true },
            Event::Token { text: "Hi".into() },
            Event::Model(Readiness::Preparing(Preparing::Downloading { done: 1, total: Some(2) })),
            Event::Model(Readiness::Failed("offline".into())),
            Event::Model(Readiness::Ready),
            Event::Done(Box::new(response)),
            Event::Error { code: "timeout".into(), message: "too slow".into(), details: None },
            Event::Error { code: "confirmation_required".into(), message: "costly".into(), details: Some(json!({"estimate_id": "e"})) },
        ];
        for event in events {
            let text = serde_json::to_string(&event).unwrap();
            let back: Event = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(back, event, "{text}");
        }
    }

    #[test]
    fn the_wire_names_are_the_documented_ones() {
        let stage = serde_json::to_value(Event::Stage { stage: Stage::Synthesis, attempt: 1 }).unwrap();
        assert_eq!(stage, json!({"type": "stage", "stage": "synthesis", "attempt": 1}));
        let model = serde_json::to_value(Event::Model(Readiness::Preparing(Preparing::Verifying))).unwrap();
        assert_eq!(model, json!({"type": "model", "state": "preparing", "detail": {"phase": "verifying"}}));
        let feedback: FeedbackRequest = serde_json::from_value(json!({"turn_id": 1, "rating": "down"})).unwrap();
        assert_eq!(feedback.rating, Rating::Down);
        assert!(serde_json::from_value::<FeedbackRequest>(json!({"turn_id": 1, "rating": "meh"})).is_err());
    }
}
