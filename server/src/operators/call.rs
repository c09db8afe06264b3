//! An operator call as DuckDB runs it, encoded and decoded here and nowhere else.
//!
//! Users write `llm_filter('{title} is a classic')`; DuckDB runs
//! `llm_filter('<query id>', '{title} is a classic', [CAST("title" AS VARCHAR)])`.
//! Every call has the same layout: the query id (the executor finds the query's LLM
//! context by it), the template, the operator's own argument when it has one (its
//! labels, or the group's list), then the row's field values as a `VARCHAR[]`,
//! labelled by the template's placeholders. The SQL front end writes it with
//! [`encode`]; the executor reads it back from DuckDB's chunks with [`decode_chunk`]
//! and from a listing of the inputs with [`decode_row`].

use duckdb::{
    core::{DataChunkHandle, FlatVector, LogicalTypeHandle, LogicalTypeId},
    ffi::duckdb_string_t,
    types::{DuckString, Value},
};

use super::{Operator, OwnArgument};

/// The position of the query id among the DuckDB arguments.
pub const QUERY_ID: usize = 0;

/// One row's decoded arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorCall {
    pub query_id: String,
    pub template: String,
    /// The labels or the group's values; empty for operators without one.
    pub own: Vec<String>,
    /// The field values, in the order of the template's placeholders.
    pub fields: Vec<Option<String>>,
}

/// The DuckDB call: `name(query_id, template, [own,] fields)`, each argument given
/// as SQL text (`own` only for operators that take one).
pub fn encode(op: Operator, query_id: &str, template: &str, own: Option<String>, fields: &[String]) -> String {
    debug_assert_eq!(own.is_some(), op.own_argument() != OwnArgument::None);
    let mut args = vec![crate::sql::quote_literal(query_id), crate::sql::quote_literal(template)];
    args.extend(own);
    args.push(if fields.is_empty() { "CAST([] AS VARCHAR[])".to_string() } else { format!("[{}]", fields.join(", ")) });
    format!("{}({})", op.name(), args.join(", "))
}

/// Whether `op`'s calls carry an own argument (labels or a list).
pub fn has_own_argument(op: Operator) -> bool {
    op.own_argument() != OwnArgument::None
}

/// The DuckDB parameter types of calls with or without an own argument:
/// `VARCHAR, VARCHAR, [VARCHAR[],] VARCHAR[]`.
pub fn parameters(with_own: bool) -> Vec<LogicalTypeHandle> {
    let varchar = || LogicalTypeHandle::from(LogicalTypeId::Varchar);
    let mut params = vec![varchar(), varchar()];
    if with_own {
        params.push(LogicalTypeHandle::list(&varchar()));
    }
    params.push(LogicalTypeHandle::list(&varchar()));
    params
}

/// The index of the fields argument.
fn fields_index(op: Operator) -> usize {
    if has_own_argument(op) {
        3
    } else {
        2
    }
}

/// A call from its parts; `None` when the query id, the template or the own list is
/// NULL (the operator's answer is then NULL).
fn assemble(
    query_id: Option<String>,
    template: Option<String>,
    own: Option<Vec<Option<String>>>,
    fields: Option<Vec<Option<String>>>,
) -> Option<OperatorCall> {
    Some(OperatorCall {
        query_id: query_id?,
        template: template?,
        own: own?.into_iter().flatten().collect(),
        fields: fields.unwrap_or_default(),
    })
}

/// Decodes every row of a chunk of `op`'s arguments.
///
/// # Safety
/// `input` must be a flattened chunk whose columns have the types of
/// [`parameters`]`(has_own_argument(op))`, as DuckDB passes them to a function
/// registered with them.
pub unsafe fn decode_chunk(op: Operator, input: &DataChunkHandle) -> Vec<Option<OperatorCall>> {
    let len = input.len();
    // SAFETY (all four reads): the columns have the types of `parameters(..)`.
    let ids = unsafe { read_strings(&input.flat_vector(QUERY_ID), len) };
    let templates = unsafe { read_strings(&input.flat_vector(1), len) };
    let own = match op.own_argument() {
        OwnArgument::None => None,
        OwnArgument::Labels | OwnArgument::List => Some(unsafe { read_lists(input, 2) }),
    };
    let fields = unsafe { read_lists(input, fields_index(op)) };
    (0..len)
        .map(|row| {
            let own = match &own {
                Some(lists) => lists[row].clone(),
                None => Some(Vec::new()),
            };
            assemble(ids[row].clone(), templates[row].clone(), own, fields[row].clone())
        })
        .collect()
}

/// Decodes one row of a query that selects `op`'s arguments (the listing of its
/// distinct inputs).
pub fn decode_row(op: Operator, row: &duckdb::Row<'_>) -> duckdb::Result<Option<OperatorCall>> {
    let own = match op.own_argument() {
        OwnArgument::None => Some(Vec::new()),
        OwnArgument::Labels | OwnArgument::List => text_list(row.get(2)?),
    };
    Ok(assemble(row.get(QUERY_ID)?, row.get(1)?, own, text_list(row.get(fields_index(op))?)))
}

fn text_list(value: Value) -> Option<Vec<Option<String>>> {
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
}

/// Reads one VARCHAR column of a flat chunk.
///
/// # Safety
/// `vector` must be a flat VARCHAR vector with at least `len` rows.
unsafe fn read_strings(vector: &FlatVector, len: usize) -> Vec<Option<String>> {
    // The caller guarantees a VARCHAR vector of `len` rows.
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
    // SAFETY: the child of a `VARCHAR[]` vector is a VARCHAR vector of `child_len` rows.
    let values = unsafe { read_strings(&child, child_len) };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_encoded_in_one_layout() {
        assert_eq!(
            encode(Operator::Filter, "q1", "{title} is old", None, &["CAST(\"title\" AS VARCHAR)".into()]),
            "llm_filter('q1', '{title} is old', [CAST(\"title\" AS VARCHAR)])"
        );
        assert_eq!(
            encode(Operator::Classify, "q", "it's {x}", Some("['a', 'b']".into()), &[]),
            "llm_classify('q', 'it''s {x}', ['a', 'b'], CAST([] AS VARCHAR[]))"
        );
        assert_eq!(parameters(has_own_argument(Operator::Reduce)).len(), 4);
        assert_eq!(parameters(has_own_argument(Operator::Score)).len(), 3);
    }

    /// What `encode` writes, DuckDB evaluates, and `decode_row` reads back.
    #[test]
    fn an_encoded_call_decodes_to_its_parts() {
        let conn = duckdb::Connection::open_in_memory().unwrap();
        for (op, own) in [(Operator::Map, None), (Operator::Classify, Some("['a', NULL, 'b']"))] {
            let args = encode(op, "q9", "{x} and {y}", own.map(str::to_string), &["'one'".into(), "NULL".into()]);
            let select = args.replacen(&format!("{}(", op.name()), "SELECT ", 1);
            let select = &select[..select.len() - 1];
            let call = conn.query_row(select, [], |row| decode_row(op, row)).unwrap().unwrap();
            assert_eq!(call.query_id, "q9");
            assert_eq!(call.template, "{x} and {y}");
            assert_eq!(call.fields, vec![Some("one".to_string()), None]);
            let expected_own: Vec<String> = if own.is_some() { vec!["a".into(), "b".into()] } else { vec![] };
            assert_eq!(call.own, expected_own);
        }
    }
}
