//! The LLM operators as DuckDB scalar functions. DuckDB calls them with flattened
//! chunks of up to 2048 rows that already passed the query's ordinary filters and
//! joins; each call finds its query's [`QueryContext`] from the id the SQL front end
//! passed as the first argument, asks the LLM for every distinct prompt of the
//! chunk concurrently (bounded by the client), and writes strictly parsed answers.
//! When the executor could list a row-wise operator's whole input first
//! ([`answer_ahead`]), the chunks find their answers in the query's memo.
//!
//! All operators are registered volatile: DuckDB must not evaluate them while
//! planning (constant folding would call the LLM during `prepare`), and must keep
//! them above the cheap predicates and joins instead of pushing them down.

use std::sync::Arc;

use duckdb::{
    core::{DataChunkHandle, FlatVector, Inserter, LogicalTypeHandle, LogicalTypeId},
    types::DuckString,
    vscalar::{ScalarFunctionSignature, VScalar},
    vtab::arrow::WritableVector,
    Connection,
};
use futures::future::try_join_all;
use duckdb::ffi::duckdb_string_t;

use super::{
    context::{QueryContext, QueryRegistry},
    prompts,
};
use crate::{
    error::{Error, Result},
    llm::Constraint,
    reorder::{self, GgrOptions},
    sql::template::placeholders,
};

type CallResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// One row's arguments: template, the operator's own list (labels or items) and
/// the values of the template's fields.
pub(crate) struct RowArgs {
    pub(crate) query_id: String,
    pub(crate) template: String,
    pub(crate) own: Vec<String>,
    pub(crate) fields: Vec<Option<String>>,
    /// The order the fields appear in the prompt, chosen for prefix sharing;
    /// `None` keeps the template's order.
    pub(crate) field_order: Option<Vec<usize>>,
}

impl RowArgs {
    /// Identifies the row's input independently of the field order chosen for it.
    fn key(&self) -> String {
        let fields: Vec<String> = self.fields.iter().map(|f| f.as_deref().map_or("\u{1}".to_string(), str::to_string)).collect();
        format!("{}\u{0}{}\u{0}{}", self.template, self.own.join("\u{1f}"), fields.join("\u{1f}"))
    }

    fn field_names(&self) -> Vec<String> {
        let names = placeholders(&self.template);
        if names.len() == self.fields.len() {
            names
        } else {
            (1..=self.fields.len()).map(|i| format!("arg{i}")).collect()
        }
    }

    fn data(&self) -> String {
        let names = self.field_names();
        match &self.field_order {
            Some(order) => {
                let names: Vec<String> = order.iter().map(|&i| names[i].clone()).collect();
                let values: Vec<Option<String>> = order.iter().map(|&i| self.fields[i].clone()).collect();
                prompts::data_block(&names, &values)
            }
            None => prompts::data_block(&names, &self.fields),
        }
    }

    /// The fields as the prompt shows them, one text per field.
    fn field_lines(&self) -> Vec<String> {
        self.field_names().iter().zip(&self.fields).map(|(name, value)| prompts::data_line(name, value.as_deref())).collect()
    }
}

/// Chooses the sending order of a chunk's rows and each row's field order with GGR,
/// so consecutive prompts share long prefixes (the template, then the fields that
/// rows have in common), and records the prefix hit rate of that order. Returns the
/// indices of the non-NULL rows in sending order.
fn schedule(ctx: &QueryContext, operator: &str, rows: &mut [Option<RowArgs>]) -> Vec<usize> {
    // Rows answered ahead keep the field order they were asked with (their answers
    // wait in the memo under that prompt); only the others are ordered here.
    let mut answered_ahead = Vec::new();
    let mut present = Vec::new();
    for (i, row) in rows.iter_mut().enumerate() {
        let Some(row) = row else { continue };
        match ctx.field_order(&row.key()) {
            Some(order) => {
                row.field_order = Some(order);
                answered_ahead.push(i);
            }
            None => present.push(i),
        }
    }
    let mut sending = sending_order(ctx, rows, present);
    record_prefix_hits(ctx, operator, rows, &sending);
    sending.extend(answered_ahead);
    sending
}

/// Records the prefix hits of the distinct prompts' shared-first layout in
/// sending order (the prefix hit rate's parts).
fn record_prefix_hits(ctx: &QueryContext, operator: &str, rows: &[Option<RowArgs>], sending: &[usize]) {
    let mut seen = std::collections::HashSet::new();
    let texts: Vec<Vec<String>> = sending
        .iter()
        .filter_map(|&i| rows[i].as_ref())
        .map(|row| format!("{}\n{}", row.template, row.data()))
        .filter(|text| seen.insert(text.clone()))
        .map(|text| vec![text])
        .collect();
    let (shared, total) = reorder::prefix_hits(&texts);
    ctx.record(operator, |s| {
        s.prompt_chars += total;
        s.shared_prefix_chars += shared;
    });
}

/// The user prompt and answer constraint of a row-wise operator's row.
fn row_request(operator: &str, row: &RowArgs) -> Result<(String, Option<Constraint>)> {
    Ok(match operator {
        "llm_filter" => (prompts::filter(&row.template, &row.data()), Some(Constraint::YesNo)),
        "llm_map" => (prompts::map(&row.template, &row.data()), None),
        "llm_score" => (prompts::score(&row.template, &row.data()), Some(Constraint::UnitScore)),
        "llm_classify" => {
            if row.own.len() < 2 {
                return Err(Error::Sql("llm_classify needs at least two labels".into()));
            }
            (prompts::classify(&row.template, &row.own, &row.data()), Some(Constraint::OneOf(row.own.clone())))
        }
        other => return Err(Error::Internal(format!("{other} is not a row-wise operator"))),
    })
}

/// Answers a row-wise operator's whole input ahead of the query (collected by the
/// query `sql::collect` derives): one GGR order over all distinct inputs, sent in
/// that order; the chosen field orders are remembered so that the operator's
/// chunks build the same prompts and find the answers in the memo.
pub(crate) fn answer_ahead(ctx: &QueryContext, operator: &'static str, mut rows: Vec<Option<RowArgs>>) -> Result<()> {
    let all = (0..rows.len()).collect();
    let sending = sending_order(ctx, &mut rows, all);
    let mut requests = Vec::with_capacity(sending.len());
    for &i in &sending {
        let Some(row) = rows[i].as_ref() else { continue };
        let Ok(request) = row_request(operator, row) else { return Ok(()) };
        ctx.remember_field_order(row.key(), row.field_order.clone().unwrap_or_else(|| (0..row.fields.len()).collect()));
        requests.push(request);
    }
    record_prefix_hits(ctx, operator, &rows, &sending);
    let work = try_join_all(requests.into_iter().map(|(prompt, constraint)| ctx.ask_ahead(operator, prompts::SYSTEM, prompt, constraint)));
    ctx.block_on(work).map(drop)
}

/// Registers every operator on `conn`'s database.
pub fn register(conn: &Connection, registry: &Arc<QueryRegistry>) -> Result<()> {
    conn.register_scalar_function_with_state::<Filter>("llm_filter", registry)?;
    conn.register_scalar_function_with_state::<Map>("llm_map", registry)?;
    conn.register_scalar_function_with_state::<Classify>("llm_classify", registry)?;
    conn.register_scalar_function_with_state::<Score>("llm_score", registry)?;
    conn.register_scalar_function_with_state::<Knowledge>("llm_knowledge", registry)?;
    conn.register_scalar_function_with_state::<Reduce>("llm_reduce", registry)?;
    conn.register_scalar_function_with_state::<Rank>("llm_rank", registry)?;
    Ok(())
}

fn varchar() -> LogicalTypeHandle {
    LogicalTypeHandle::from(LogicalTypeId::Varchar)
}

fn varchar_list() -> LogicalTypeHandle {
    LogicalTypeHandle::list(&varchar())
}

/// `(query id, template, fields)` or `(query id, template, list, fields)`.
fn signature(with_list: bool, returns: LogicalTypeHandle) -> Vec<ScalarFunctionSignature> {
    let mut params = vec![varchar(), varchar()];
    if with_list {
        params.push(varchar_list());
    }
    params.push(varchar_list());
    vec![ScalarFunctionSignature::exact(params, returns)]
}

/// Reads one VARCHAR column of a flat chunk.
///
/// # Safety
/// `vector` must be a flat VARCHAR vector with at least `len` rows.
unsafe fn read_strings(vector: &FlatVector, len: usize) -> Vec<Option<String>> {
    let data = vector.as_slice_with_len::<duckdb_string_t>(len);
    (0..len)
        .map(|i| {
            if vector.row_is_null(i as u64) {
                None
            } else {
                let mut raw = data[i];
                Some(DuckString::new(&mut raw).as_str().to_string())
            }
        })
        .collect()
}

/// Reads one `VARCHAR[]` column of a flat chunk; a NULL list reads as `None`.
///
/// # Safety
/// Column `column` of `input` must be a flat `VARCHAR[]` vector.
unsafe fn read_lists(input: &DataChunkHandle, column: usize) -> Vec<Option<Vec<Option<String>>>> {
    let len = input.len();
    let validity = input.flat_vector(column);
    let lists = input.list_vector(column);
    let child_len = lists.len();
    let child = lists.child(child_len);
    let values = read_strings(&child, child_len);
    (0..len)
        .map(|row| {
            if validity.row_is_null(row as u64) {
                return None;
            }
            let (offset, length) = lists.get_entry(row);
            Some(values[offset..offset + length].to_vec())
        })
        .collect()
}

/// Reads all rows of a chunk. Rows whose template or list is NULL come back as `None`.
///
/// # Safety
/// `input` must have the columns of [`signature`] with the same `with_list`.
unsafe fn read_rows(input: &DataChunkHandle, with_list: bool) -> Vec<Option<RowArgs>> {
    let len = input.len();
    let ids = read_strings(&input.flat_vector(0), len);
    let templates = read_strings(&input.flat_vector(1), len);
    let own = if with_list { Some(read_lists(input, 2)) } else { None };
    let fields = read_lists(input, if with_list { 3 } else { 2 });
    (0..len)
        .map(|row| {
            let query_id = ids[row].clone()?;
            let template = templates[row].clone()?;
            let own = match &own {
                Some(lists) => lists[row].clone()?.into_iter().flatten().collect(),
                None => Vec::new(),
            };
            let fields = fields[row].clone().unwrap_or_default();
            Some(RowArgs { query_id, template, own, fields, field_order: None })
        })
        .collect()
}

/// The context of the query these rows belong to.
fn context_for(registry: &QueryRegistry, rows: &[Option<RowArgs>]) -> Result<Arc<QueryContext>> {
    let id = rows.iter().flatten().next().map(|r| r.query_id.as_str()).unwrap_or("");
    registry.get(id).ok_or_else(|| {
        Error::Internal("LLM operators only run inside a query started by the server; the query id is unknown".into())
    })
}

/// The order to send the rows at `present` in: GGR's when reordering is on (it
/// also sets each row's field order), else as they are.
fn sending_order(ctx: &QueryContext, rows: &mut [Option<RowArgs>], present: Vec<usize>) -> Vec<usize> {
    if ctx.settings.reorder && !present.is_empty() {
        prefix_sharing_order(rows, &present)
    } else {
        present
    }
}

/// GGR over the rows' fields (the template too, so rows of different call sites
/// group apart); sets each row's field order and returns the row order.
fn prefix_sharing_order(rows: &mut [Option<RowArgs>], present: &[usize]) -> Vec<usize> {
    let table: Vec<Vec<String>> = present
        .iter()
        .filter_map(|&i| rows[i].as_ref())
        .map(|row| std::iter::once(row.template.clone()).chain(row.field_lines()).collect())
        .collect();
    let order = reorder::ggr(&table, GgrOptions::default());
    for (k, &i) in present.iter().enumerate() {
        if let Some(row) = rows[i].as_mut() {
            // Field 0 is the template; a row with fewer fields than the widest (another
            // call site's) keeps only its own.
            let own = row.fields.len();
            row.field_order = Some(order.fields[k].iter().filter(|&&f| f > 0 && f <= own).map(|f| f - 1).collect());
        }
    }
    order.rows.iter().map(|&k| present[k]).collect()
}

/// Evaluates `each` for every non-NULL row inside the query's context: all rows are
/// issued at once in the prefix-sharing order of [`schedule`], and the LLM client's
/// concurrency limit (or the embedded engine's queue) sends them in that order, so
/// neighbours in the order are neighbours in time.
fn evaluate<'a, T, F, Fut>(
    registry: &QueryRegistry,
    operator: &'static str,
    rows: &'a mut [Option<RowArgs>],
    each: F,
) -> Result<Vec<Option<T>>>
where
    F: Fn(Arc<QueryContext>, &'a RowArgs) -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    if rows.iter().all(Option::is_none) {
        return Ok(rows.iter().map(|_| None).collect());
    }
    let ctx = context_for(registry, rows)?;
    ctx.record(operator, |s| s.rows += rows.iter().flatten().count() as u64);
    let sending = schedule(&ctx, operator, rows);
    let rows: &'a [Option<RowArgs>] = rows;
    let work = try_join_all(sending.iter().filter_map(|&i| rows[i].as_ref()).map(|row| each(ctx.clone(), row)));
    let answers = ctx.block_on(work)?;
    let mut out: Vec<Option<T>> = rows.iter().map(|_| None).collect();
    for (i, answer) in sending.into_iter().zip(answers) {
        out[i] = answer;
    }
    Ok(out)
}

fn invalid<T>(ctx: &QueryContext, operator: &str, parsed: Option<T>) -> Option<T> {
    if parsed.is_none() {
        ctx.record(operator, |s| s.invalid_answers += 1);
    }
    parsed
}

/// Writes BOOLEAN or DOUBLE results; `None` becomes NULL.
fn write_primitives<T: Copy>(output: &mut dyn WritableVector, values: &[Option<T>]) {
    let mut vector = output.flat_vector();
    for (i, value) in values.iter().enumerate() {
        match value {
            Some(value) => vector.as_mut_slice::<T>()[i] = *value,
            None => vector.set_null(i),
        }
    }
}

fn write_strings(output: &mut dyn WritableVector, values: &[Option<String>]) {
    let mut vector = output.flat_vector();
    for (i, value) in values.iter().enumerate() {
        match value {
            Some(text) => vector.insert(i, text.as_str()),
            None => vector.set_null(i),
        }
    }
}

fn to_duck_error(e: Error) -> Box<dyn std::error::Error> {
    e.to_string().into()
}

/// Declares one operator: its DuckDB signature (always volatile, see the module
/// docs) and the body that turns a chunk's rows into output values.
macro_rules! scalar_operator {
    ($type:ident, with_list: $with_list:expr, returns: $returns:expr, |$output:ident, $registry:ident, $rows:ident| $body:block) => {
        struct $type;

        impl VScalar for $type {
            type State = Arc<QueryRegistry>;

            unsafe fn invoke(
                state: &Self::State,
                input: &mut DataChunkHandle,
                $output: &mut dyn WritableVector,
            ) -> CallResult {
                // SAFETY: DuckDB passes flattened chunks whose columns match `signatures()`.
                let mut $rows = unsafe { read_rows(input, $with_list) };
                let $registry: &QueryRegistry = state;
                $body
            }

            fn signatures() -> Vec<ScalarFunctionSignature> {
                signature($with_list, $returns)
            }

            fn volatile() -> bool {
                true
            }
        }
    };
}

scalar_operator!(Filter, with_list: false, returns: LogicalTypeId::Boolean.into(), |output, registry, rows| {
    let answers = evaluate(registry, "llm_filter", &mut rows, |ctx, row| async move {
        let (prompt, constraint) = row_request("llm_filter", row)?;
        let answer = ctx.ask("llm_filter", prompts::SYSTEM, prompt, constraint).await?;
        Ok(invalid(&ctx, "llm_filter", prompts::parse_yes_no(&answer)))
    })
    .map_err(to_duck_error)?;
    write_primitives(output, &answers);
    Ok(())
});

scalar_operator!(Map, with_list: false, returns: varchar(), |output, registry, rows| {
    let answers = evaluate(registry, "llm_map", &mut rows, |ctx, row| async move {
        let (prompt, constraint) = row_request("llm_map", row)?;
        let answer = ctx.ask("llm_map", prompts::SYSTEM, prompt, constraint).await?;
        Ok(Some(answer.trim().to_string()))
    })
    .map_err(to_duck_error)?;
    write_strings(output, &answers);
    Ok(())
});

scalar_operator!(Knowledge, with_list: false, returns: varchar(), |output, registry, rows| {
    let answers = evaluate(registry, "llm_knowledge", &mut rows, |ctx, row| async move {
        let answer = ctx.ask("llm_knowledge", prompts::SYSTEM, prompts::knowledge(&row.template, &row.data()), None).await?;
        Ok(Some(answer.trim().trim_end_matches('.').trim().to_string()))
    })
    .map_err(to_duck_error)?;
    write_strings(output, &answers);
    Ok(())
});

scalar_operator!(Score, with_list: false, returns: LogicalTypeId::Double.into(), |output, registry, rows| {
    let answers = evaluate(registry, "llm_score", &mut rows, |ctx, row| async move {
        let (prompt, constraint) = row_request("llm_score", row)?;
        let answer = ctx.ask("llm_score", prompts::SYSTEM, prompt, constraint).await?;
        Ok(invalid(&ctx, "llm_score", prompts::parse_score(&answer)))
    })
    .map_err(to_duck_error)?;
    write_primitives(output, &answers);
    Ok(())
});

scalar_operator!(Classify, with_list: true, returns: varchar(), |output, registry, rows| {
    let answers = evaluate(registry, "llm_classify", &mut rows, |ctx, row| async move {
        let (prompt, constraint) = row_request("llm_classify", row)?;
        let answer = ctx.ask("llm_classify", prompts::SYSTEM, prompt, constraint).await?;
        Ok(invalid(&ctx, "llm_classify", prompts::parse_label(&answer, &row.own)))
    })
    .map_err(to_duck_error)?;
    write_strings(output, &answers);
    Ok(())
});

scalar_operator!(Reduce, with_list: true, returns: varchar(), |output, registry, rows| {
    let answers = evaluate(registry, "llm_reduce", &mut rows, |ctx, row| async move {
        if row.own.is_empty() {
            return Ok(None);
        }
        reduce(&ctx, row, row.own.clone()).await.map(Some)
    })
    .map_err(to_duck_error)?;
    write_strings(output, &answers);
    Ok(())
});

/// Reduces `items` in one call, or in parts whose results are reduced again when
/// they do not fit one prompt.
async fn reduce(ctx: &QueryContext, row: &RowArgs, items: Vec<String>) -> Result<String> {
    let limit = ctx.settings.reduce_chunk_chars.max(1);
    let total: usize = items.iter().map(|i| i.len()).sum();
    if total <= limit || items.len() == 1 {
        let data = prompts::items_block(&row.field_names(), &row.fields, &items);
        let answer = ctx.ask("llm_reduce", prompts::SYSTEM, prompts::reduce(&row.template, &data), None).await?;
        return Ok(answer.trim().to_string());
    }
    let mut parts: Vec<Vec<String>> = vec![Vec::new()];
    let mut size = 0;
    for item in items {
        if size + item.len() > limit && !parts.last().is_some_and(Vec::is_empty) {
            parts.push(Vec::new());
            size = 0;
        }
        size += item.len();
        parts.last_mut().expect("parts is never empty").push(item);
    }
    let partials = try_join_all(parts.into_iter().map(|part| Box::pin(reduce(ctx, row, part)))).await?;
    Box::pin(reduce(ctx, row, partials)).await
}

scalar_operator!(Rank, with_list: true, returns: varchar_list(), |output, registry, rows| {
    let answers = evaluate(registry, "llm_rank", &mut rows, |ctx, row| async move {
        rank(&ctx, row).await.map(Some)
    })
    .map_err(to_duck_error)?;
    let mut lists = output.list_vector();
    let total: usize = answers.iter().flatten().map(Vec::len).sum();
    let child = lists.child(total);
    let mut offset = 0;
    for (i, answer) in answers.iter().enumerate() {
        match answer {
            Some(items) => {
                for (j, item) in items.iter().enumerate() {
                    child.insert(offset + j, item.as_str());
                }
                lists.set_entry(i, offset, items.len());
                offset += items.len();
            }
            None => {
                lists.set_entry(i, offset, 0);
                lists.set_null(i);
            }
        }
    }
    lists.set_len(total);
    Ok(())
});

/// Listwise ranking with sliding windows from the back of the list to the front
/// (half-window stride), so the best items bubble to the top in one pass.
async fn rank(ctx: &QueryContext, row: &RowArgs) -> Result<Vec<String>> {
    let mut items = row.own.clone();
    let window = ctx.settings.rank_window.max(2);
    if items.len() < 2 {
        return Ok(items);
    }
    let stride = (window / 2).max(1);
    let mut start = items.len().saturating_sub(window);
    loop {
        let end = (start + window).min(items.len());
        let slice = items[start..end].to_vec();
        let data = prompts::items_block(&row.field_names(), &row.fields, &slice);
        let answer = ctx.ask("llm_rank", prompts::SYSTEM, prompts::rank(&row.template, slice.len(), &data), Some(Constraint::NumberList)).await?;
        match prompts::parse_ranking(&answer, slice.len()) {
            Some(order) => {
                for (k, index) in order.into_iter().enumerate() {
                    items[start + k] = slice[index].clone();
                }
            }
            None => ctx.record("llm_rank", |s| s.invalid_answers += 1),
        }
        if start == 0 {
            break;
        }
        start = start.saturating_sub(stride);
    }
    Ok(items)
}
