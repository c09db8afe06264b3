//! The LLM operators as DuckDB scalar functions. Each is registered with its
//! operator and the executor's query registry as state; a call decodes the chunk
//! ([`call::decode_chunk`]), evaluates it ([`evaluate_chunk`]) and writes the answers
//! as the operator's SQL type. One function type per answer type: DuckDB needs the
//! return type when the function is registered.
//!
//! All operators are registered volatile: DuckDB must not evaluate them while
//! planning (constant folding would call the LLM during `prepare`), and must keep
//! them above the cheap predicates and joins instead of pushing them down.

use std::{marker::PhantomData, sync::Arc};

use duckdb::{
    core::{DataChunkHandle, Inserter, LogicalTypeHandle, LogicalTypeId},
    vscalar::{ScalarFunctionSignature, VScalar},
    vtab::arrow::WritableVector,
    Connection,
};

use super::{context::QueryRegistry, evaluate::evaluate_chunk};
use crate::{
    error::{Error, Result},
    operators::{call, Answer, AnswerType, Operator},
};

type CallResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// What every registered function carries.
#[derive(Clone)]
struct State {
    op: Operator,
    registry: Arc<QueryRegistry>,
}

/// Registers every operator on `conn`'s database.
pub(super) fn register_all(conn: &Connection, registry: &Arc<QueryRegistry>) -> Result<()> {
    for op in Operator::ALL {
        let state = State { op, registry: registry.clone() };
        match op.answer_type() {
            AnswerType::Boolean => register::<Boolean>(conn, state)?,
            AnswerType::Text => register::<Text>(conn, state)?,
            AnswerType::Number => register::<Number>(conn, state)?,
            AnswerType::TextList => register::<TextList>(conn, state)?,
        }
    }
    Ok(())
}

/// Registers one operator returning `O`'s type, in its call layout.
fn register<O: Output>(conn: &Connection, state: State) -> Result<()> {
    let name = state.op.name();
    if call::has_own_argument(state.op) {
        conn.register_scalar_function_with_state::<Udf<O, WithOwn>>(name, &state)?;
    } else {
        conn.register_scalar_function_with_state::<Udf<O, Plain>>(name, &state)?;
    }
    Ok(())
}

/// Whether the call layout has an own argument (see [`call`]).
trait Layout {
    const WITH_OWN: bool;
}

struct Plain;
struct WithOwn;

impl Layout for Plain {
    const WITH_OWN: bool = false;
}

impl Layout for WithOwn {
    const WITH_OWN: bool = true;
}

/// How answers of one SQL type are written to DuckDB's output vector.
trait Output {
    fn logical_type() -> LogicalTypeHandle;
    fn write(output: &mut dyn WritableVector, answers: &[Option<Answer>]) -> Result<()>;
}

struct Boolean;
struct Text;
struct Number;
struct TextList;

fn mismatch(answer: &Answer) -> Error {
    Error::internal(format!("an operator answered {answer:?}, not its declared type"))
}

impl Output for Boolean {
    fn logical_type() -> LogicalTypeHandle {
        LogicalTypeId::Boolean.into()
    }
    fn write(output: &mut dyn WritableVector, answers: &[Option<Answer>]) -> Result<()> {
        let mut vector = output.flat_vector();
        for (i, answer) in answers.iter().enumerate() {
            match answer {
                Some(Answer::Boolean(value)) => vector.as_mut_slice::<bool>()[i] = *value,
                Some(other) => return Err(mismatch(other)),
                None => vector.set_null(i),
            }
        }
        Ok(())
    }
}

impl Output for Number {
    fn logical_type() -> LogicalTypeHandle {
        LogicalTypeId::Double.into()
    }
    fn write(output: &mut dyn WritableVector, answers: &[Option<Answer>]) -> Result<()> {
        let mut vector = output.flat_vector();
        for (i, answer) in answers.iter().enumerate() {
            match answer {
                Some(Answer::Number(value)) => vector.as_mut_slice::<f64>()[i] = *value,
                Some(other) => return Err(mismatch(other)),
                None => vector.set_null(i),
            }
        }
        Ok(())
    }
}

impl Output for Text {
    fn logical_type() -> LogicalTypeHandle {
        LogicalTypeId::Varchar.into()
    }
    fn write(output: &mut dyn WritableVector, answers: &[Option<Answer>]) -> Result<()> {
        let mut vector = output.flat_vector();
        for (i, answer) in answers.iter().enumerate() {
            match answer {
                Some(Answer::Text(text)) => vector.insert(i, text.as_str()),
                Some(other) => return Err(mismatch(other)),
                None => vector.set_null(i),
            }
        }
        Ok(())
    }
}

impl Output for TextList {
    fn logical_type() -> LogicalTypeHandle {
        LogicalTypeHandle::list(&LogicalTypeId::Varchar.into())
    }
    fn write(output: &mut dyn WritableVector, answers: &[Option<Answer>]) -> Result<()> {
        let mut lists = output.list_vector();
        let mut total = 0;
        for answer in answers.iter().flatten() {
            match answer {
                Answer::TextList(items) => total += items.len(),
                other => return Err(mismatch(other)),
            }
        }
        let child = lists.child(total);
        let mut offset = 0;
        for (i, answer) in answers.iter().enumerate() {
            match answer {
                Some(Answer::TextList(items)) => {
                    for (j, item) in items.iter().enumerate() {
                        child.insert(offset + j, item.as_str());
                    }
                    lists.set_entry(i, offset, items.len());
                    offset += items.len();
                }
                _ => {
                    lists.set_entry(i, offset, 0);
                    lists.set_null(i);
                }
            }
        }
        lists.set_len(total);
        Ok(())
    }
}

/// An operator returning `O`'s SQL type, called in layout `L`.
struct Udf<O, L>(PhantomData<(O, L)>);

impl<O: Output, L: Layout> VScalar for Udf<O, L> {
    type State = State;

    unsafe fn invoke(state: &State, input: &mut DataChunkHandle, output: &mut dyn WritableVector) -> CallResult {
        debug_assert_eq!(call::has_own_argument(state.op), L::WITH_OWN, "registered in its own layout");
        // SAFETY: DuckDB passes flattened chunks whose columns match `signatures()`,
        // `call::parameters(L::WITH_OWN)`, and `register` picked `L` from the operator.
        let calls = unsafe { call::decode_chunk(state.op, input) };
        let answers = evaluate_chunk(&state.registry, state.op, calls).map_err(|e| e.to_string())?;
        O::write(output, &answers).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn signatures() -> Vec<ScalarFunctionSignature> {
        vec![ScalarFunctionSignature::exact(call::parameters(L::WITH_OWN), O::logical_type())]
    }

    fn volatile() -> bool {
        true
    }
}
