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
pub use tag_types::{Column, ExecutionStats, OperatorStats, Progress, Table};

use crate::{
    catalog::{ConnectionSetup, Dataset},
    config::Config,
    error::{Error, Result},
    llm::{cache::ResponseCache, SharedLlm},
    operators::call,
    sql::{self, collect::InputQuery, CheckedSql},
};

/// Where a running query's progress goes, about four times a second.
pub type ProgressSink = Arc<dyn Fn(Progress) + Send + Sync>;

pub struct QueryOptions {
    pub max_rows: usize,
    pub llm: Option<SharedLlm>,
    pub progress: Option<ProgressSink>,
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
