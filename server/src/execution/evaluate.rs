//! Evaluating an operator on the calls DuckDB hands over (a chunk of up to 2048 rows
//! that already passed the query's ordinary filters and joins), or on a row-wise
//! operator's whole input listed before the query runs ([`answer_ahead`]). Every
//! distinct prompt is asked once per query; the rows are sent in a prefix-sharing
//! order (GGR over the template and the fields, which also picks each row's field
//! order), all at once, so the LLM client's concurrency limit (or the embedded
//! engine's queue) sends them in that order. How a call becomes requests follows the
//! operator's [`Kind`]: one request per row, or parts and windows over a group's list.

use futures::future::try_join_all;

use super::context::{QueryContext, QueryRegistry};
use crate::{
    error::{Error, Result},
    operators::{call::OperatorCall, prompts, template::placeholders, Answer, Kind, Operator, Request},
    reorder::{self, GgrOptions},
};

/// A call and the order its fields take in the prompt.
pub(super) struct Row {
    pub(super) call: OperatorCall,
    /// Chosen for prefix sharing; `None` keeps the template's order.
    pub(super) field_order: Option<Vec<usize>>,
}

impl Row {
    pub(super) fn new(call: OperatorCall) -> Row {
        Row { call, field_order: None }
    }

    /// Identifies the row's input independently of the field order chosen for it.
    fn key(&self) -> String {
        let call = &self.call;
        let fields: Vec<String> = call.fields.iter().map(|f| f.as_deref().map_or("\u{1}".to_string(), str::to_string)).collect();
        format!("{}\u{0}{}\u{0}{}", call.template, call.own.join("\u{1f}"), fields.join("\u{1f}"))
    }

    fn field_names(&self) -> Vec<String> {
        let names = placeholders(&self.call.template);
        if names.len() == self.call.fields.len() {
            names
        } else {
            (1..=self.call.fields.len()).map(|i| format!("arg{i}")).collect()
        }
    }

    /// The fields as the prompt's data block, in the row's field order.
    fn data(&self) -> String {
        let names = self.field_names();
        match &self.field_order {
            Some(order) => {
                let names: Vec<String> = order.iter().map(|&i| names[i].clone()).collect();
                let values: Vec<Option<String>> = order.iter().map(|&i| self.call.fields[i].clone()).collect();
                prompts::data_block(&names, &values)
            }
            None => prompts::data_block(&names, &self.call.fields),
        }
    }

    /// The fields as the prompt shows them, one text per field.
    fn field_lines(&self) -> Vec<String> {
        self.field_names().iter().zip(&self.call.fields).map(|(name, value)| prompts::data_line(name, value.as_deref())).collect()
    }

    /// The one request of a row-wise or constant operator's row.
    fn request<'a>(&'a self, op: Operator, data: &'a str) -> Result<Request<'a>> {
        if op == Operator::Classify && self.call.own.len() < 2 {
            return Err(Error::sql("llm_classify needs at least two labels"));
        }
        Ok(Request { template: &self.call.template, labels: &self.call.own, data, items: 0 })
    }
}

/// Evaluates `op` on one chunk's calls; answers in the chunk's row order (`None`
/// is NULL: a NULL argument, or an answer that did not have the required form).
pub(super) fn evaluate_chunk(registry: &QueryRegistry, op: Operator, calls: Vec<Option<OperatorCall>>) -> Result<Vec<Option<Answer>>> {
    let mut rows: Vec<Option<Row>> = calls.into_iter().map(|call| call.map(Row::new)).collect();
    let Some(ctx) = context_for(registry, &rows)? else {
        return Ok(rows.iter().map(|_| None).collect());
    };
    ctx.record(op, |s| s.rows += rows.iter().flatten().count() as u64);
    let sending = schedule(&ctx, op, &mut rows);
    let rows = &rows;
    let work = try_join_all(sending.iter().filter_map(|&i| rows[i].as_ref()).map(|row| answer(&ctx, op, row)));
    let answers = ctx.block_on(work)?;
    let mut out: Vec<Option<Answer>> = rows.iter().map(|_| None).collect();
    for (i, answer) in sending.into_iter().zip(answers) {
        out[i] = answer;
    }
    Ok(out)
}

/// The context of the query these rows belong to; `None` when every row is NULL.
fn context_for(registry: &QueryRegistry, rows: &[Option<Row>]) -> Result<Option<std::sync::Arc<QueryContext>>> {
    let Some(row) = rows.iter().flatten().next() else { return Ok(None) };
    match registry.get(&row.call.query_id) {
        Some(ctx) => Ok(Some(ctx)),
        None => Err(Error::internal("LLM operators only run inside a query started by the server; the query id is unknown")),
    }
}

/// One call's answer, by the operator's kind.
async fn answer(ctx: &QueryContext, op: Operator, row: &Row) -> Result<Option<Answer>> {
    match (op.kind(), op) {
        (Kind::RowWise | Kind::Constant, _) => {
            let data = row.data();
            let request = row.request(op, &data)?;
            let text = ctx.ask(op, op.prompt(&request), op.constraint(&request)).await?;
            Ok(invalid(ctx, op, op.parse(&text, &request)))
        }
        (Kind::Group, Operator::Reduce) => {
            if row.call.own.is_empty() {
                return Ok(None);
            }
            reduce(ctx, row, row.call.own.clone()).await.map(|text| Some(Answer::Text(text)))
        }
        (Kind::Group, Operator::Rank) => rank(ctx, row).await.map(|items| Some(Answer::TextList(items))),
        (Kind::Group, other) => Err(Error::internal(format!("{} has no group evaluation", other.name()))),
    }
}

fn invalid(ctx: &QueryContext, op: Operator, parsed: Option<Answer>) -> Option<Answer> {
    if parsed.is_none() {
        ctx.record(op, |s| s.invalid_answers += 1);
    }
    parsed
}

/// Chooses the sending order of a chunk's rows and each row's field order with GGR,
/// so consecutive prompts share long prefixes (the template, then the fields that
/// rows have in common), and records the prefix hit rate of that order. Returns the
/// indices of the non-NULL rows in sending order.
fn schedule(ctx: &QueryContext, op: Operator, rows: &mut [Option<Row>]) -> Vec<usize> {
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
    record_prefix_hits(ctx, op, rows, &sending);
    sending.extend(answered_ahead);
    sending
}

/// Records the prefix hits of the distinct prompts' shared-first layout in
/// sending order (the prefix hit rate's parts).
fn record_prefix_hits(ctx: &QueryContext, op: Operator, rows: &[Option<Row>], sending: &[usize]) {
    let mut seen = std::collections::HashSet::new();
    let texts: Vec<Vec<String>> = sending
        .iter()
        .filter_map(|&i| rows[i].as_ref())
        .map(|row| format!("{}\n{}", row.call.template, row.data()))
        .filter(|text| seen.insert(text.clone()))
        .map(|text| vec![text])
        .collect();
    let (shared, total) = reorder::prefix_hits(&texts);
    ctx.record(op, |s| {
        s.prompt_chars += total;
        s.shared_prefix_chars += shared;
    });
}

/// The order to send the rows at `present` in: GGR's when reordering is on (it
/// also sets each row's field order), else as they are.
fn sending_order(ctx: &QueryContext, rows: &mut [Option<Row>], present: Vec<usize>) -> Vec<usize> {
    if ctx.reorder() && !present.is_empty() {
        prefix_sharing_order(rows, &present)
    } else {
        present
    }
}

/// GGR over the rows' fields (the template too, so rows of different call sites
/// group apart); sets each row's field order and returns the row order.
fn prefix_sharing_order(rows: &mut [Option<Row>], present: &[usize]) -> Vec<usize> {
    let table: Vec<Vec<String>> = present
        .iter()
        .filter_map(|&i| rows[i].as_ref())
        .map(|row| std::iter::once(row.call.template.clone()).chain(row.field_lines()).collect())
        .collect();
    let order = reorder::ggr(&table, GgrOptions::default());
    for (k, &i) in present.iter().enumerate() {
        if let Some(row) = rows[i].as_mut() {
            // Field 0 is the template; a row with fewer fields than the widest (another
            // call site's) keeps only its own.
            let own = row.call.fields.len();
            row.field_order = Some(order.fields[k].iter().filter(|&&f| f > 0 && f <= own).map(|f| f - 1).collect());
        }
    }
    order.rows.iter().map(|&k| present[k]).collect()
}

/// Answers a row-wise operator's whole input ahead of the query (listed by the
/// query `sql::collect` derives): one GGR order over all distinct inputs, sent in
/// that order; the chosen field orders are remembered so that the operator's
/// chunks build the same prompts and find the answers in the memo.
pub(super) fn answer_ahead(ctx: &QueryContext, op: Operator, calls: Vec<Option<OperatorCall>>) -> Result<()> {
    debug_assert_eq!(op.kind(), Kind::RowWise);
    let mut rows: Vec<Option<Row>> = calls.into_iter().map(|call| call.map(Row::new)).collect();
    let all = (0..rows.len()).collect();
    let sending = sending_order(ctx, &mut rows, all);
    let mut requests = Vec::with_capacity(sending.len());
    for &i in &sending {
        let Some(row) = rows[i].as_ref() else { continue };
        let data = row.data();
        // A call the operator would refuse is left to the query, which reports it.
        let Ok(request) = row.request(op, &data) else { return Ok(()) };
        ctx.remember_field_order(row.key(), row.field_order.clone().unwrap_or_else(|| (0..row.call.fields.len()).collect()));
        requests.push((op.prompt(&request), op.constraint(&request)));
    }
    record_prefix_hits(ctx, op, &rows, &sending);
    let work = try_join_all(requests.into_iter().map(|(prompt, constraint)| ctx.ask_ahead(op, prompt, constraint)));
    ctx.block_on(work).map(drop)
}

/// Reduces `items` in one call, or in parts whose results are reduced again when
/// they do not fit one prompt.
async fn reduce(ctx: &QueryContext, row: &Row, items: Vec<String>) -> Result<String> {
    let limit = ctx.reduce_chunk_chars().max(1);
    let total: usize = items.iter().map(|i| i.len()).sum();
    if total <= limit || items.len() == 1 {
        let data = prompts::items_block(&row.field_names(), &row.call.fields, &items);
        let request = Request { template: &row.call.template, labels: &[], data: &data, items: items.len() };
        let text = ctx.ask(Operator::Reduce, Operator::Reduce.prompt(&request), None).await?;
        return Ok(text.trim().to_string());
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

/// Listwise ranking with sliding windows from the back of the list to the front
/// (half-window stride), so the best items bubble to the top in one pass.
async fn rank(ctx: &QueryContext, row: &Row) -> Result<Vec<String>> {
    let mut items = row.call.own.clone();
    let window = ctx.rank_window().max(2);
    if items.len() < 2 {
        return Ok(items);
    }
    let stride = (window / 2).max(1);
    let mut start = items.len().saturating_sub(window);
    loop {
        let end = (start + window).min(items.len());
        let slice = items[start..end].to_vec();
        let data = prompts::items_block(&row.field_names(), &row.call.fields, &slice);
        let request = Request { template: &row.call.template, labels: &[], data: &data, items: slice.len() };
        let text = ctx.ask(Operator::Rank, Operator::Rank.prompt(&request), Operator::Rank.constraint(&request)).await?;
        match Operator::Rank.parse(&text, &request) {
            Some(Answer::Order(order)) => {
                for (k, index) in order.into_iter().enumerate() {
                    items[start + k] = slice[index].clone();
                }
            }
            _ => ctx.record(Operator::Rank, |s| s.invalid_answers += 1),
        }
        if start == 0 {
            break;
        }
        start = start.saturating_sub(stride);
    }
    Ok(items)
}
