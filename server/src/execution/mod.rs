//! Query execution: DuckDB runs checked SQL on a blocking thread (never on a tokio
//! worker, because the LLM operators block on the async client from inside DuckDB),
//! with a time limit enforced by interrupting the connection, a row limit on what
//! is returned (the full row count is still reported), and per-operator LLM
//! statistics collected in the query's context.

pub mod context;
pub mod operators;
pub mod prompts;
pub mod values;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use duckdb::{arrow::datatypes::DataType, types::Value, Statement};
use serde::Serialize;
use tokio::sync::mpsc;

pub use context::{OperatorSettings, OperatorStats, QueryContext, QueryRegistry};

use crate::{
    catalog::Dataset,
    error::{Error, Result},
    llm::{SharedLlm, Usage},
    sql::{self, CheckedSql},
};

/// A result column: name and SQL type.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub data_type: String,
}

/// Rows as JSON values, limited, with the full count.
#[derive(Debug, Clone, Serialize)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<serde_json::Value>>,
    pub row_count: u64,
    pub truncated: bool,
}

/// What executing one query cost.
#[derive(Debug, Clone, Default, Serialize)]
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
}

impl ExecutionStats {
    fn from_operators(operators: Vec<OperatorStats>, elapsed: Duration, llm_wall: Duration) -> Self {
        let mut stats = ExecutionStats {
            elapsed_ms: elapsed.as_millis() as u64,
            llm_wall_ms: llm_wall.as_millis() as u64,
            ..Default::default()
        };
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
        stats.prefix_hit_rate = crate::reorder::hit_rate(shared, chars);
        stats.operators = operators;
        stats
    }
}

/// Progress of a running query, sent about four times a second.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub elapsed_ms: u64,
    pub operators: Vec<OperatorStats>,
}

pub struct QueryOptions {
    pub max_rows: usize,
    pub llm: Option<SharedLlm>,
    pub progress: Option<mpsc::UnboundedSender<Progress>>,
}

pub struct Executor {
    registry: Arc<QueryRegistry>,
    settings: OperatorSettings,
    timeout: Duration,
}

/// Interrupts the DuckDB connection if the query's future is dropped before it
/// finished (the client went away), so no work is left running.
struct InterruptOnDrop {
    handle: Arc<duckdb::InterruptHandle>,
    armed: bool,
}

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.handle.interrupt();
        }
    }
}

impl Executor {
    pub fn new(registry: Arc<QueryRegistry>, settings: OperatorSettings, timeout: Duration) -> Self {
        Executor { registry, settings, timeout }
    }

    /// Checks `sql` and prepares it in DuckDB without running it: binds tables,
    /// columns and functions, so that the synthesis stage can repair mistakes.
    pub async fn validate(&self, dataset: &Arc<Dataset>, sql: &str) -> Result<CheckedSql> {
        let checked = sql::check(sql, "validate")?;
        let dataset = dataset.clone();
        let executable = checked.executable.clone();
        tokio::task::spawn_blocking(move || {
            let conn = dataset.checkout()?;
            let prepared = conn.prepare(&executable).map(|_| ());
            dataset.checkin(conn);
            prepared.map_err(Error::from)
        })
        .await
        .map_err(|e| Error::Internal(format!("validation task failed: {e}")))??;
        Ok(checked)
    }

    /// Runs `sql` and returns up to `max_rows` rows as JSON with the full count.
    pub async fn run_table(
        &self,
        dataset: &Arc<Dataset>,
        sql: &str,
        options: QueryOptions,
    ) -> Result<(CheckedSql, Table, ExecutionStats)> {
        let max_rows = options.max_rows;
        self.run(dataset, sql, options, move |stmt| collect_table(stmt, max_rows)).await
    }

    /// Runs `sql` and returns up to `max_rows` rows as an Arrow IPC stream, with the
    /// full row count and whether rows were cut.
    pub async fn run_arrow(
        &self,
        dataset: &Arc<Dataset>,
        sql: &str,
        options: QueryOptions,
    ) -> Result<(CheckedSql, (Vec<u8>, u64, bool), ExecutionStats)> {
        let max_rows = options.max_rows;
        self.run(dataset, sql, options, move |stmt| collect_arrow(stmt, max_rows)).await
    }

    async fn run<T, F>(
        &self,
        dataset: &Arc<Dataset>,
        sql: &str,
        options: QueryOptions,
        collect: F,
    ) -> Result<(CheckedSql, T, ExecutionStats)>
    where
        T: Send + 'static,
        F: FnOnce(&mut Statement<'_>) -> Result<T> + Send + 'static,
    {
        let started = Instant::now();
        let query_id = uuid::Uuid::new_v4().simple().to_string();
        let checked = sql::check(sql, &query_id)?;
        if !checked.operators.is_empty() && options.llm.is_none() {
            return Err(Error::LlmNotConfigured(format!(
                "this query calls {} and needs an LLM, and TAG_LLM_BACKEND is none",
                checked.operators.join(", ")
            )));
        }
        let context = Arc::new(QueryContext::new(
            query_id,
            options.llm.clone(),
            tokio::runtime::Handle::current(),
            self.settings.clone(),
        ));
        let registered = self.registry.enter(context.clone());
        let conn = dataset.checkout()?;
        let mut interrupt = InterruptOnDrop { handle: conn.interrupt_handle(), armed: true };
        let task_dataset = dataset.clone();
        let executable = checked.executable.clone();
        let ahead = checked.input_query.clone().filter(|_| self.settings.collect_inputs);
        let task_context = context.clone();
        let mut task = tokio::task::spawn_blocking(move || {
            if let Some(input) = &ahead {
                if let Err(e) = answer_inputs_ahead(&conn, &task_context, input) {
                    task_dataset.checkin(conn);
                    return Err(e);
                }
            }
            let result = match conn.prepare(&executable) {
                Ok(mut stmt) => collect(&mut stmt),
                Err(e) => Err(Error::from(e)),
            };
            task_dataset.checkin(conn);
            result
        });

        let deadline = tokio::time::sleep(self.timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let outcome = loop {
            tokio::select! {
                joined = &mut task => {
                    break joined.map_err(|e| Error::Internal(format!("query task failed: {e}")))?;
                }
                _ = &mut deadline => {
                    context.cancel.cancel();
                    interrupt.handle.interrupt();
                    let _ = task.await;
                    interrupt.armed = false;
                    return Err(Error::Timeout(self.timeout));
                }
                _ = tick.tick(), if options.progress.is_some() => {
                    if let Some(progress) = &options.progress {
                        let _ = progress.send(Progress {
                            elapsed_ms: started.elapsed().as_millis() as u64,
                            operators: context.stats(),
                        });
                    }
                }
            }
        };
        interrupt.armed = false;
        let stats = ExecutionStats::from_operators(context.stats(), started.elapsed(), context.llm_wall_time());
        drop(registered);
        match outcome {
            Ok(value) => Ok((checked, value, stats)),
            // An LLM failure inside an operator surfaces as a DuckDB error; report the cause.
            Err(e) => Err(context.take_failure().unwrap_or(e)),
        }
    }
}

/// Distinct inputs beyond this are left to the operator's chunks (memory bound).
const MAX_COLLECTED_INPUTS: usize = 100_000;

/// Lists the operator's distinct inputs with the query `sql::collect` derived, and
/// answers them all ahead in one prefix-sharing order. A listing that fails (or
/// is too long) is skipped: the query then runs as usual and reports its own
/// errors. An LLM failure is the query's failure.
fn answer_inputs_ahead(conn: &duckdb::Connection, context: &QueryContext, input: &crate::sql::collect::InputQuery) -> Result<()> {
    match list_inputs(conn, input) {
        Ok(Some(rows)) => operators::answer_ahead(context, input.operator, rows),
        Ok(None) => Ok(()),
        Err(e) => {
            tracing::debug!(error = %e, "cannot list the operator's inputs; answering chunk by chunk");
            Ok(())
        }
    }
}

/// The operator's distinct inputs, read as its callback reads a chunk (a row with a
/// NULL template or label list is `None`); `None` when there are too many.
fn list_inputs(conn: &duckdb::Connection, input: &crate::sql::collect::InputQuery) -> duckdb::Result<Option<Vec<Option<operators::RowArgs>>>> {
    let text_list = |value: Value| -> Option<Vec<Option<String>>> {
        match value {
            Value::List(items) => Some(
                items
                    .into_iter()
                    .map(|item| match item {
                        Value::Null => None,
                        Value::Text(text) => Some(text),
                        other => Some(format!("{other:?}")),
                    })
                    .collect(),
            ),
            _ => None,
        }
    };
    let mut statement = conn.prepare(&input.sql)?;
    let mut rows = statement.query([])?;
    let with_labels = input.operator == "llm_classify";
    let mut collected = Vec::new();
    while let Some(row) = rows.next()? {
        if collected.len() >= MAX_COLLECTED_INPUTS {
            return Ok(None);
        }
        let query_id: Option<String> = row.get(0)?;
        let template: Option<String> = row.get(1)?;
        let own = if with_labels { text_list(row.get(2)?) } else { Some(Vec::new()) };
        let fields = text_list(row.get(if with_labels { 3 } else { 2 })?).unwrap_or_default();
        collected.push(match (query_id, template, own) {
            (Some(query_id), Some(template), Some(own)) => Some(operators::RowArgs {
                query_id,
                template,
                own: own.into_iter().flatten().collect(),
                fields,
                field_order: None,
            }),
            _ => None,
        });
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
        let stmt = rows.as_ref().ok_or_else(|| Error::Internal("result has no statement".into()))?;
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

fn collect_arrow(stmt: &mut Statement<'_>, max_rows: usize) -> Result<(Vec<u8>, u64, bool)> {
    let batches = stmt.query_arrow([])?;
    let schema = batches.get_schema();
    let mut buffer = Vec::new();
    let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut buffer, &schema)
        .map_err(|e| Error::Internal(format!("arrow writer: {e}")))?;
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
        writer.write(&batch).map_err(|e| Error::Internal(format!("arrow writer: {e}")))?;
    }
    writer.finish().map_err(|e| Error::Internal(format!("arrow writer: {e}")))?;
    drop(writer);
    Ok((buffer, row_count, row_count > written as u64))
}
