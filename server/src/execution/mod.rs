//! Query execution: DuckDB runs checked SQL on a blocking thread (never on a tokio
//! worker, because the LLM operators block on the async client from inside DuckDB),
//! with a time limit enforced by interrupting the connection, a row limit on what
//! is returned (the full row count is still reported), and per-operator LLM
//! statistics collected in the query's context.
//!
//! A query is checked and bound once: [`Executor::prepare`] checks the SQL, takes a
//! connection on a blocking thread and prepares the statement there (binding tables,
//! columns and functions, so synthesis can repair mistakes); the thread keeps the
//! prepared statement until [`Executor::execute`] runs it, or drops it when the
//! [`PreparedQuery`] is dropped. The LLM operators are registered on each dataset's
//! database by [`Executor::attach`]; the registry that maps a query's id to its
//! context is private here.

mod context;
mod evaluate;
mod udf;
pub mod values;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use duckdb::{arrow::datatypes::DataType, types::Value, Connection, Statement};
use tokio::sync::oneshot;

use context::{QueryContext, QueryRegistry};
pub use tag_types::{Column, Estimate, ExecutionStats, OperatorEstimate, OperatorStats, Progress, Table};

use crate::{
    catalog::{ConnectionSetup, Dataset},
    config::Config,
    error::{Error, Result},
    llm::{cache::ResponseCache, SharedLlm},
    operators::call,
    sql::{self, collect::InputQuery, estimate, CheckedSql},
};

/// Where a running query's progress goes, about four times a second.
pub type ProgressSink = Arc<dyn Fn(Progress) + Send + Sync>;

#[derive(Default)]
pub struct QueryOptions {
    pub max_rows: usize,
    pub llm: Option<SharedLlm>,
    pub progress: Option<ProgressSink>,
    /// LLM tokens the query may spend (what is left of a daily budget); its
    /// operators stop with `rate_limited` once they reach it.
    pub token_budget: Option<u64>,
}

/// An Arrow IPC stream of at most `max_rows` rows, with the full row count.
pub struct ArrowResult {
    pub bytes: Vec<u8>,
    pub row_count: u64,
    pub truncated: bool,
}

/// The form a query's result is collected in.
enum Output {
    Table { max_rows: usize },
    Arrow { max_rows: usize },
}

enum Collected {
    Table(Table),
    Arrow(ArrowResult),
}

/// What the query's thread needs to run the prepared statement.
struct Start {
    context: Arc<QueryContext>,
    ahead: Option<InputQuery>,
    output: Output,
}

/// A checked query whose statement is prepared on its connection, waiting on its
/// blocking thread to be executed.
pub struct PreparedQuery {
    pub checked: CheckedSql,
    dataset: Arc<Dataset>,
    query_id: String,
    start: oneshot::Sender<Start>,
    interrupt: Arc<duckdb::InterruptHandle>,
    task: tokio::task::JoinHandle<Result<Option<Collected>>>,
}

pub struct Executor {
    config: Arc<Config>,
    cache: Option<Arc<ResponseCache>>,
    registry: Arc<QueryRegistry>,
}

/// Stops the query if its future is dropped before it finished (the client went
/// away), so no work is left running: interrupts the DuckDB connection and cancels
/// the statements it started on a database source.
struct InterruptOnDrop {
    handle: Arc<duckdb::InterruptHandle>,
    dataset: Arc<Dataset>,
    started: Instant,
    armed: bool,
}

impl InterruptOnDrop {
    fn stop(&self) {
        self.handle.interrupt();
        let (dataset, within) = (self.dataset.clone(), self.started.elapsed());
        // A connection and a round trip to the database: not on the async thread.
        std::thread::spawn(move || dataset.cancel_remote(within));
    }
}

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.stop();
        }
    }
}

impl Executor {
    pub fn new(config: Arc<Config>, cache: Option<Arc<ResponseCache>>) -> Self {
        Executor { config, cache, registry: Arc::new(QueryRegistry::default()) }
    }

    /// Registers the LLM operators on a dataset's database; the catalog calls it on
    /// every database it opens, before the configuration is locked.
    pub fn attach(&self) -> ConnectionSetup {
        let registry = self.registry.clone();
        Arc::new(move |conn: &Connection| udf::register_all(conn, &registry))
    }

    /// Checks `sql` and prepares it on one of the dataset's connections, without
    /// running it: tables, columns and functions are bound, so errors show now.
    pub async fn prepare(&self, dataset: &Arc<Dataset>, sql: &str) -> Result<PreparedQuery> {
        let query_id = uuid::Uuid::new_v4().simple().to_string();
        let checked = sql::check(sql, &query_id)?;
        let (ready_tx, ready_rx) = oneshot::channel();
        let (start, start_rx) = oneshot::channel();
        let task_dataset = dataset.clone();
        let executable = checked.executable.clone();
        let task = tokio::task::spawn_blocking(move || session(&task_dataset, &executable, ready_tx, start_rx));
        let interrupt = match ready_rx.await {
            Ok(ready) => ready.map_err(|e| dataset.redact(e))?,
            // The thread ended without a word: it failed before preparing.
            Err(_) => return Err(task.await?.err().unwrap_or_else(|| Error::internal("the query's thread stopped"))),
        };
        Ok(PreparedQuery { checked, dataset: dataset.clone(), query_id, start, interrupt, task })
    }

    /// The columns `sql` would return, without running it: checked like any query,
    /// then run with no rows asked for (`LIMIT 0`, which DuckDB plans as an empty
    /// result), so no LLM operator is called and nothing is read.
    pub async fn describe(&self, dataset: &Arc<Dataset>, sql: &str) -> Result<arrow::datatypes::SchemaRef> {
        let checked = sql::check(sql, "describe")?;
        let wrapped = format!("SELECT * FROM ({}) AS described LIMIT 0", checked.executable);
        let task_dataset = dataset.clone();
        let schema = tokio::task::spawn_blocking(move || -> Result<arrow::datatypes::SchemaRef> {
            let conn = task_dataset.checkout()?;
            let schema = conn.prepare(&wrapped).and_then(|mut statement| Ok(statement.query_arrow([])?.get_schema()));
            task_dataset.checkin(conn);
            Ok(schema?)
        });
        schema.await?.map_err(|e| dataset.redact(e))
    }

    /// Prepares and runs `sql`; up to `max_rows` rows as JSON with the full count.
    pub async fn run_table(&self, dataset: &Arc<Dataset>, sql: &str, options: QueryOptions) -> Result<(CheckedSql, Table, ExecutionStats)> {
        let prepared = self.prepare(dataset, sql).await?;
        let checked = prepared.checked.clone();
        let (table, stats) = self.execute_table(prepared, options).await?;
        Ok((checked, table, stats))
    }

    /// Prepares and runs `sql`; up to `max_rows` rows as an Arrow IPC stream.
    pub async fn run_arrow(&self, dataset: &Arc<Dataset>, sql: &str, options: QueryOptions) -> Result<(CheckedSql, ArrowResult, ExecutionStats)> {
        let prepared = self.prepare(dataset, sql).await?;
        let checked = prepared.checked.clone();
        let max_rows = options.max_rows;
        match self.execute(prepared, options, Output::Arrow { max_rows }).await? {
            (Collected::Arrow(arrow), stats) => Ok((checked, arrow, stats)),
            (Collected::Table(_), _) => Err(Error::internal("asked for Arrow, collected a table")),
        }
    }

    /// Runs a prepared query; up to `max_rows` rows as an Arrow IPC stream.
    pub async fn execute_arrow(&self, prepared: PreparedQuery, options: QueryOptions) -> Result<(ArrowResult, ExecutionStats)> {
        let max_rows = options.max_rows;
        match self.execute(prepared, options, Output::Arrow { max_rows }).await? {
            (Collected::Arrow(arrow), stats) => Ok((arrow, stats)),
            (Collected::Table(_), _) => Err(Error::internal("asked for Arrow, collected a table")),
        }
    }

    /// What a checked query's LLM operators will spend, before it runs: the counts
    /// of `sql::estimate` on one of the dataset's connections, within
    /// [`ESTIMATE_TIME`] in all (a count still running then is interrupted and
    /// DuckDB's planner estimate used instead).
    pub async fn estimate(&self, dataset: &Arc<Dataset>, checked: &CheckedSql) -> Result<Estimate> {
        if checked.operators.is_empty() {
            return Ok(Estimate { complete: true, ..Default::default() });
        }
        let query = &self.config.query;
        let settings = estimate::Settings { rank_window: query.rank_window, reduce_chunk_chars: query.answer_table_chars };
        let reaches = estimate::reaches(&checked.tree, settings);
        let (max_tokens, window) = (self.config.llm.operator_max_tokens, query.rank_window);
        let task_dataset = dataset.clone();
        let (handle_tx, handle_rx) = oneshot::channel();
        let task = tokio::task::spawn_blocking(move || -> Result<Vec<OperatorEstimate>> {
            let conn = task_dataset.checkout()?;
            let _ = handle_tx.send(conn.interrupt_handle());
            let deadline = Instant::now() + ESTIMATE_TIME;
            let estimates = reaches.iter().map(|reach| estimate_one(&conn, reach, deadline, max_tokens, window)).collect();
            task_dataset.checkin(conn);
            Ok(estimates)
        });
        let watchdog = match handle_rx.await {
            Ok(handle) => Some(tokio::spawn(async move {
                tokio::time::sleep(ESTIMATE_TIME).await;
                handle.interrupt();
            })),
            Err(_) => None,
        };
        let operators = task.await?;
        if let Some(watchdog) = watchdog {
            watchdog.abort();
        }
        let operators = operators.map_err(|e| dataset.redact(e))?;
        Ok(Estimate {
            llm_calls: operators.iter().map(|o| o.llm_calls).sum(),
            tokens: operators.iter().map(|o| o.tokens).sum(),
            complete: !operators.is_empty() && operators.iter().all(|o| o.method != "unknown"),
            operators,
        })
    }

    /// Runs a prepared query; up to `max_rows` rows as JSON with the full count.
    pub async fn execute_table(&self, prepared: PreparedQuery, options: QueryOptions) -> Result<(Table, ExecutionStats)> {
        let max_rows = options.max_rows;
        match self.execute(prepared, options, Output::Table { max_rows }).await? {
            (Collected::Table(table), stats) => Ok((table, stats)),
            (Collected::Arrow(_), _) => Err(Error::internal("asked for a table, collected Arrow")),
        }
    }

    async fn execute(&self, prepared: PreparedQuery, options: QueryOptions, output: Output) -> Result<(Collected, ExecutionStats)> {
        let started = Instant::now();
        let PreparedQuery { checked, dataset, query_id, start, interrupt, mut task } = prepared;
        if !checked.operators.is_empty() && options.llm.is_none() {
            let names: Vec<&str> = checked.operators.iter().map(|op| op.name()).collect();
            return Err(Error::LlmNotConfigured(format!(
                "this query calls {} and needs an LLM, and TAG_LLM_BACKEND is none",
                names.join(", ")
            )));
        }
        let context = Arc::new(QueryContext::new(
            query_id,
            options.llm.clone(),
            tokio::runtime::Handle::current(),
            self.config.clone(),
            self.cache.clone(),
            options.token_budget,
        ));
        let registered = self.registry.enter(context.clone());
        let mut interrupt = InterruptOnDrop { handle: interrupt, dataset: dataset.clone(), started, armed: true };
        let ahead = checked.input_query.clone().filter(|_| self.config.query.collect_inputs);
        if start.send(Start { context: context.clone(), ahead, output }).is_err() {
            return Err(task.await?.err().unwrap_or_else(|| Error::internal("the query's thread stopped")));
        }

        let timeout = Duration::from_secs(self.config.query.timeout_secs);
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let outcome = loop {
            tokio::select! {
                joined = &mut task => break joined?,
                _ = &mut deadline => {
                    context.cancel.cancel();
                    interrupt.stop();
                    let _ = task.await;
                    interrupt.armed = false;
                    return Err(Error::Timeout(timeout));
                }
                _ = tick.tick(), if options.progress.is_some() => {
                    if let Some(progress) = &options.progress {
                        progress(Progress { elapsed_ms: millis(started.elapsed()), operators: context.stats() });
                    }
                }
            }
        };
        interrupt.armed = false;
        let stats = ExecutionStats::from_operators(context.stats(), millis(started.elapsed()), millis(context.llm_wall_time()));
        drop(registered);
        match outcome {
            Ok(Some(collected)) => Ok((collected, stats)),
            Ok(None) => Err(Error::internal("the query's thread stopped before running it")),
            // An LLM failure inside an operator surfaces as a DuckDB error; report the cause.
            Err(e) => Err(dataset.redact(context.take_failure().unwrap_or(e))),
        }
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

/// The time all of one query's estimate counts may take.
pub const ESTIMATE_TIME: Duration = Duration::from_secs(3);

/// Characters of one input the planner's estimate assumes (it knows rows, not text).
const PLANNER_INPUT_CHARS: u64 = 120;

/// One operator call's estimate: its count, else the planner's row estimate, else
/// unknown (left out of the totals).
fn estimate_one(conn: &Connection, reach: &estimate::Reach, deadline: Instant, max_tokens: u32, window: usize) -> OperatorEstimate {
    let op = reach.operator;
    let counted = match &reach.count_sql {
        None => Some((1, 1, reach.template.len() as u64, "count")),
        Some(_) if reach.calls_operators || Instant::now() >= deadline => None,
        Some(sql) => conn
            .query_row(sql, [], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?)))
            .map(|(inputs, calls, chars)| (inputs.max(0) as u64, calls.max(0) as u64, chars.max(0) as u64, "count"))
            .map_err(|e| tracing::debug!(error = %e, "estimate count failed; asking the planner"))
            .ok(),
    };
    let found = counted.or_else(|| {
        let rows = planner_rows(conn, reach.rows_sql.as_deref()?)?;
        let chars = rows * (PLANNER_INPUT_CHARS + reach.template.len() as u64);
        Some((rows, rows, chars, "planner"))
    });
    let Some((mut inputs, mut calls, mut chars, method)) = found else {
        return OperatorEstimate { operator: op.name().into(), method: "unknown".into(), ..Default::default() };
    };
    if let Some(limit) = reach.limit.filter(|limit| inputs > *limit) {
        chars = chars * limit / inputs.max(1);
        (inputs, calls) = (limit, calls.min(limit));
    }
    OperatorEstimate {
        operator: op.name().into(),
        inputs,
        llm_calls: calls,
        tokens: estimate::tokens(op, calls, chars, max_tokens, window),
        method: method.into(),
    }
}

/// DuckDB's estimated cardinality of `sql`'s result (`EXPLAIN`, which plans the
/// query without running it, so operators in it are not called).
fn planner_rows(conn: &Connection, sql: &str) -> Option<u64> {
    let plan: String = conn.query_row(&format!("EXPLAIN (FORMAT JSON) {sql}"), [], |row| row.get(1)).ok()?;
    let plan: serde_json::Value = serde_json::from_str(&plan).ok()?;
    fn first(node: &serde_json::Value) -> Option<u64> {
        match node {
            serde_json::Value::Object(map) => {
                if let Some(n) = map.get("extra_info").and_then(|e| e.get("Estimated Cardinality")) {
                    return n.as_str().and_then(|s| s.trim_start_matches('~').parse().ok()).or_else(|| n.as_u64());
                }
                map.get("children").and_then(first)
            }
            serde_json::Value::Array(items) => items.iter().find_map(first),
            _ => None,
        }
    }
    first(&plan)
}

/// The query's blocking thread: takes a connection, prepares the statement, says
/// whether that worked, waits to be started, runs and collects. The connection goes
/// back to the dataset's pool whatever happens.
fn session(
    dataset: &Dataset,
    executable: &str,
    ready: oneshot::Sender<Result<Arc<duckdb::InterruptHandle>>>,
    start: oneshot::Receiver<Start>,
) -> Result<Option<Collected>> {
    let conn = match dataset.checkout() {
        Ok(conn) => conn,
        Err(e) => {
            let _ = ready.send(Err(e));
            return Ok(None);
        }
    };
    let result = run_prepared(&conn, executable, ready, start);
    dataset.checkin(conn);
    result
}

fn run_prepared(
    conn: &Connection,
    executable: &str,
    ready: oneshot::Sender<Result<Arc<duckdb::InterruptHandle>>>,
    start: oneshot::Receiver<Start>,
) -> Result<Option<Collected>> {
    let mut statement = match conn.prepare(executable) {
        Ok(statement) => statement,
        Err(e) => {
            let _ = ready.send(Err(e.into()));
            return Ok(None);
        }
    };
    if ready.send(Ok(conn.interrupt_handle())).is_err() {
        return Ok(None);
    }
    // Dropped without being executed: nothing to run.
    let Ok(start) = start.blocking_recv() else { return Ok(None) };
    if let Some(input) = &start.ahead {
        answer_inputs_ahead(conn, &start.context, input)?;
    }
    Ok(Some(match start.output {
        Output::Table { max_rows } => Collected::Table(collect_table(&mut statement, max_rows)?),
        Output::Arrow { max_rows } => Collected::Arrow(collect_arrow(&mut statement, max_rows)?),
    }))
}

/// Distinct inputs beyond this are left to the operator's chunks (memory bound).
const MAX_COLLECTED_INPUTS: usize = 100_000;

/// Lists the operator's distinct inputs with the query `sql::collect` derived, and
/// answers them all ahead in one prefix-sharing order. A listing that fails (or
/// is too long) is skipped: the query then runs as usual and reports its own
/// errors. An LLM failure is the query's failure.
fn answer_inputs_ahead(conn: &Connection, context: &QueryContext, input: &InputQuery) -> Result<()> {
    match list_inputs(conn, input) {
        Ok(Some(calls)) => evaluate::answer_ahead(context, input.operator, calls),
        Ok(None) => Ok(()),
        Err(e) => {
            tracing::debug!(error = %e, "cannot list the operator's inputs; answering chunk by chunk");
            Ok(())
        }
    }
}

/// The operator's distinct inputs, decoded as its callback decodes a chunk;
/// `None` when there are too many.
fn list_inputs(conn: &Connection, input: &InputQuery) -> duckdb::Result<Option<Vec<Option<call::OperatorCall>>>> {
    let mut statement = conn.prepare(&input.sql)?;
    let mut rows = statement.query([])?;
    let mut collected = Vec::new();
    while let Some(row) = rows.next()? {
        if collected.len() >= MAX_COLLECTED_INPUTS {
            return Ok(None);
        }
        collected.push(call::decode_row(input.operator, row)?);
    }
    Ok(Some(collected))
}

fn column_type_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INTEGER".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 => "UTINYINT".into(),
        DataType::UInt16 => "USMALLINT".into(),
        DataType::UInt32 => "UINTEGER".into(),
        DataType::UInt64 => "UBIGINT".into(),
        DataType::Float16 | DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("DECIMAL({p},{s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Timestamp(_, _) => "TIMESTAMP".into(),
        DataType::Time32(_) | DataType::Time64(_) => "TIME".into(),
        DataType::Interval(_) => "INTERVAL".into(),
        DataType::List(field) | DataType::LargeList(field) | DataType::FixedSizeList(field, _) => {
            format!("{}[]", column_type_name(field.data_type()))
        }
        DataType::Struct(_) => "STRUCT".into(),
        DataType::Map(_, _) => "MAP".into(),
        DataType::Binary | DataType::LargeBinary => "BLOB".into(),
        other => format!("{other:?}").to_uppercase(),
    }
}

fn collect_table(stmt: &mut Statement<'_>, max_rows: usize) -> Result<Table> {
    let mut rows_out = Vec::new();
    let mut row_count: u64 = 0;
    let mut rows = stmt.query([])?;
    let columns: Vec<Column> = {
        let stmt = rows.as_ref().ok_or_else(|| Error::internal("result has no statement"))?;
        stmt.column_names()
            .into_iter()
            .enumerate()
            .map(|(i, name)| Column { name, data_type: column_type_name(&stmt.column_type(i)) })
            .collect()
    };
    let column_count = columns.len();
    while let Some(row) = rows.next()? {
        row_count += 1;
        if rows_out.len() < max_rows {
            let mut values = Vec::with_capacity(column_count);
            for i in 0..column_count {
                values.push(values::to_json(row.get::<_, Value>(i)?));
            }
            rows_out.push(values);
        }
    }
    Ok(Table { columns, truncated: row_count > rows_out.len() as u64, rows: rows_out, row_count })
}

fn collect_arrow(stmt: &mut Statement<'_>, max_rows: usize) -> Result<ArrowResult> {
    let batches = stmt.query_arrow([])?;
    let schema = batches.get_schema();
    let mut buffer = Vec::new();
    let arrow_error = |e: arrow::error::ArrowError| Error::internal_from(format!("arrow writer: {e}"), e);
    let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut buffer, &schema).map_err(arrow_error)?;
    let mut written: usize = 0;
    let mut row_count: u64 = 0;
    for batch in batches {
        row_count += batch.num_rows() as u64;
        let room = max_rows.saturating_sub(written);
        if room == 0 {
            continue;
        }
        let batch = if batch.num_rows() > room { batch.slice(0, room) } else { batch };
        written += batch.num_rows();
        writer.write(&batch).map_err(arrow_error)?;
    }
    writer.finish().map_err(arrow_error)?;
    drop(writer);
    Ok(ArrowResult { bytes: buffer, row_count, truncated: row_count > written as u64 })
}
