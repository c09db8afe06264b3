//! Per-query LLM context: what an operator callback running inside DuckDB needs to
//! reach the async LLM client (a runtime handle, never a nested runtime), the
//! query's cancellation token, a memo so each distinct prompt is asked once per
//! query (and can be answered ahead of the operator), and per-operator statistics.
//! The registry that maps a query id (the first argument of every operator call)
//! to its context is private to the executor.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::{
    config::Config,
    error::{Error, Result},
    llm::{cache::ResponseCache, ChatRequest, Constraint, Message, SharedLlm},
    operators::{prompts, Operator},
};
pub use tag_types::OperatorStats;

/// Wall time with at least one LLM call in flight.
#[derive(Default)]
struct InFlight {
    calls: usize,
    since: Option<Instant>,
    total: Duration,
}

type Answer = Result<String>;

pub(super) struct QueryContext {
    pub(super) id: String,
    llm: Option<SharedLlm>,
    handle: tokio::runtime::Handle,
    config: Arc<Config>,
    cache: Option<Arc<ResponseCache>>,
    pub(super) cancel: CancellationToken,
    memo: Mutex<HashMap<String, Arc<MemoEntry>>>,
    /// Field orders chosen when the operator's whole input was answered ahead
    /// (see `sql::collect`), by row key, so the operator's chunks lay their prompts
    /// out the same way and find the answers.
    field_orders: Mutex<HashMap<String, Vec<usize>>>,
    stats: Mutex<BTreeMap<&'static str, OperatorStats>>,
    /// The first LLM failure, reported instead of DuckDB's wrapped message.
    failure: Mutex<Option<Error>>,
    in_flight: Mutex<InFlight>,
    /// LLM calls started and tokens spent so far, against `query.max_llm_calls`
    /// and the token budget.
    calls: std::sync::atomic::AtomicU64,
    tokens: std::sync::atomic::AtomicU64,
    token_budget: Option<u64>,
}

impl QueryContext {
    pub(super) fn new(
        id: String,
        llm: Option<SharedLlm>,
        handle: tokio::runtime::Handle,
        config: Arc<Config>,
        cache: Option<Arc<ResponseCache>>,
        token_budget: Option<u64>,
    ) -> Self {
        QueryContext {
            calls: Default::default(),
            tokens: Default::default(),
            token_budget,
            id,
            llm,
            handle,
            config,
            cache,
            cancel: CancellationToken::new(),
            memo: Mutex::new(HashMap::new()),
            field_orders: Mutex::new(HashMap::new()),
            stats: Mutex::new(BTreeMap::new()),
            failure: Mutex::new(None),
            in_flight: Mutex::new(InFlight::default()),
        }
    }

    /// Whether prompts are sent in the prefix-sharing (GGR) order (`query.reorder`).
    pub(super) fn reorder(&self) -> bool {
        self.config.query.reorder
    }

    /// Window size of `llm_rank` (`query.rank_window`).
    pub(super) fn rank_window(&self) -> usize {
        self.config.query.rank_window
    }

    /// Characters of items one `llm_reduce` call may take before it reduces in
    /// parts (`query.answer_table_chars`).
    pub(super) fn reduce_chunk_chars(&self) -> usize {
        self.config.query.answer_table_chars
    }

    /// Wall time so far with at least one LLM call in flight.
    pub(super) fn llm_wall_time(&self) -> Duration {
        self.in_flight.lock().map(|f| f.total + f.since.map_or(Duration::ZERO, |s| s.elapsed())).unwrap_or_default()
    }

    fn call_started(&self) {
        if let Ok(mut f) = self.in_flight.lock() {
            if f.calls == 0 {
                f.since = Some(Instant::now());
            }
            f.calls += 1;
        }
    }

    fn call_ended(&self) {
        if let Ok(mut f) = self.in_flight.lock() {
            f.calls = f.calls.saturating_sub(1);
            if f.calls == 0 {
                if let Some(since) = f.since.take() {
                    f.total += since.elapsed();
                }
            }
        }
    }

    /// Runs `work` to completion from a DuckDB thread, or stops when the query is
    /// cancelled. Must not be called from an async context.
    pub(super) fn block_on<T>(&self, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        let cancel = self.cancel.clone();
        self.handle.block_on(async move {
            tokio::select! {
                _ = cancel.cancelled() => Err(Error::Cancelled),
                result = work => result,
            }
        })
    }

    pub(super) fn record(&self, op: Operator, update: impl FnOnce(&mut OperatorStats)) {
        if let Ok(mut stats) = self.stats.lock() {
            let entry =
                stats.entry(op.name()).or_insert_with(|| OperatorStats { operator: op.name().to_string(), ..Default::default() });
            update(entry);
        }
    }

    pub(super) fn stats(&self) -> Vec<OperatorStats> {
        self.stats.lock().map(|s| s.values().cloned().collect()).unwrap_or_default()
    }

    pub(super) fn take_failure(&self) -> Option<Error> {
        self.failure.lock().ok().and_then(|mut f| f.take())
    }

    fn remember_failure(&self, error: &Error) {
        if let Ok(mut failure) = self.failure.lock() {
            if failure.is_none() {
                *failure = Some(match error {
                    Error::Llm { .. } | Error::Cancelled | Error::TooCostly(_) | Error::RateLimited { .. } => error.clone(),
                    other => Error::Llm { message: other.to_string(), source: Some(Arc::new(other.clone())) },
                });
            }
        }
    }

    pub(super) fn remember_field_order(&self, row_key: String, order: Vec<usize>) {
        if let Ok(mut orders) = self.field_orders.lock() {
            orders.insert(row_key, order);
        }
    }

    pub(super) fn field_order(&self, row_key: &str) -> Option<Vec<usize>> {
        self.field_orders.lock().ok()?.get(row_key).cloned()
    }

    fn memo_entry(&self, key: String) -> Result<Arc<MemoEntry>> {
        let mut memo = self.memo.lock().map_err(|_| Error::internal("memo lock poisoned"))?;
        Ok(memo.entry(key).or_default().clone())
    }

    /// Asks the model one operator prompt; identical prompts within the query share
    /// one call, even when they arrive concurrently. The first time the operator
    /// itself asks a prompt counts as a distinct prompt (also when it was answered
    /// ahead), every later time as a memo hit.
    pub(super) async fn ask(&self, op: Operator, prompt: String, constraint: Option<Constraint>) -> Result<String> {
        let entry = self.memo_entry(prompt.clone())?;
        let first = !entry.asked_by_operator.swap(true, Ordering::SeqCst);
        self.record(op, |s| if first { s.distinct_prompts += 1 } else { s.memo_hits += 1 });
        self.answer(op, &entry, prompt, constraint).await
    }

    /// Answers a prompt ahead of the operator (whole-input collection): the answer
    /// waits in the memo; nothing is counted as the operator's until it asks.
    pub(super) async fn ask_ahead(&self, op: Operator, prompt: String, constraint: Option<Constraint>) -> Result<String> {
        let entry = self.memo_entry(prompt.clone())?;
        self.answer(op, &entry, prompt, constraint).await
    }

    /// The memoised answer to `prompt` (under the operators' one system text).
    async fn answer(&self, op: Operator, entry: &MemoEntry, prompt: String, constraint: Option<Constraint>) -> Result<String> {
        let Some(llm) = self.llm.clone() else {
            return Err(Error::LlmNotConfigured("LLM operators need an LLM; TAG_LLM_BACKEND is none".into()));
        };
        let mut request = ChatRequest {
            messages: vec![Message::system(prompts::SYSTEM), Message::user(prompt)],
            max_tokens: self.config.llm.operator_max_tokens,
            constraint,
            sampling: crate::llm::Sampling::Greedy,
        };
        let answer = entry
            .cell
            .get_or_init(|| async {
                // A yes/no answer is decided by its first token: asking for one token
                // spares the model the decoding step of its end-of-sequence token. When
                // that token does not decide (markup, a leading space, a split word),
                // the full budget is asked for.
                if request.constraint == Some(Constraint::YesNo) && request.max_tokens > 1 {
                    let full = request.max_tokens;
                    request.max_tokens = 1;
                    let first = self.call(op, &llm, &request).await?;
                    if prompts::parse_yes_no(&first).is_some() {
                        return Ok(first);
                    }
                    request.max_tokens = full;
                }
                self.call(op, &llm, &request).await
            })
            .await;
        answer.clone()
    }

    /// One request: from the persistent cache, or from the model (then cached).
    async fn call(&self, op: Operator, llm: &SharedLlm, request: &ChatRequest) -> Answer {
        let cache_key = self.cache.as_ref().map(|_| ResponseCache::key(llm.backend(), llm.model(), request));
        if let (Some(cache), Some(key)) = (&self.cache, &cache_key) {
            match cache.get(key) {
                Ok(Some(hit)) => {
                    self.record(op, |s| s.cache_hits += 1);
                    return Ok(hit.text);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "response cache lookup failed"),
            }
        }
        if let Err(e) = self.admit_call() {
            self.remember_failure(&e);
            return Err(e);
        }
        let started = Instant::now();
        self.call_started();
        let result = llm.complete(request).await;
        self.call_ended();
        let elapsed = started.elapsed();
        match result {
            Ok(completion) => {
                self.tokens.fetch_add(completion.usage.prompt_tokens + completion.usage.completion_tokens, Ordering::SeqCst);
                self.record(op, |s| {
                    s.llm_calls += 1;
                    s.usage.add(completion.usage);
                    s.llm_ms += millis(elapsed);
                });
                if let (Some(cache), Some(key)) = (&self.cache, &cache_key) {
                    if let Err(e) = cache.put(key, &completion.text, completion.usage) {
                        tracing::warn!(error = %e, "response cache write failed");
                    }
                }
                Ok(completion.text)
            }
            Err(e) => {
                self.record(op, |s| {
                    s.failed_calls += 1;
                    s.llm_ms += millis(elapsed);
                });
                self.remember_failure(&e);
                Err(e)
            }
        }
    }
}

impl QueryContext {
    /// Counts one more LLM call, or refuses it: over `query.max_llm_calls` (the cap
    /// that protects the LLM server from one runaway query), or with the token
    /// budget spent (calls in flight may overrun it by their own tokens).
    fn admit_call(&self) -> Result<()> {
        let max = self.config.query.max_llm_calls;
        if self.calls.fetch_add(1, Ordering::SeqCst) >= max {
            return Err(Error::TooCostly(format!(
                "the query made {max} LLM calls, the most one query may make (query.max_llm_calls); \
narrow it with cheap SQL predicates first"
            )));
        }
        if let Some(budget) = self.token_budget {
            let spent = self.tokens.load(Ordering::SeqCst);
            if spent >= budget {
                return Err(Error::RateLimited {
                    message: format!("the query spent the {budget} LLM tokens left of this token's daily budget"),
                    retry_after: crate::auth::budget::seconds_to_midnight(),
                });
            }
        }
        Ok(())
    }
}

/// One prompt's answer within a query, and whether the operator has asked it yet.
#[derive(Default)]
struct MemoEntry {
    cell: OnceCell<Answer>,
    asked_by_operator: AtomicBool,
}

fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

/// Maps query ids to contexts, so a callback finds its query's context from the id
/// the SQL front end passed as the operator's first argument.
#[derive(Default)]
pub(super) struct QueryRegistry {
    queries: Mutex<HashMap<String, Arc<QueryContext>>>,
}

impl QueryRegistry {
    pub(super) fn get(&self, id: &str) -> Option<Arc<QueryContext>> {
        self.queries.lock().ok()?.get(id).cloned()
    }

    /// Registers `context` until the returned guard is dropped.
    pub(super) fn enter(self: &Arc<Self>, context: Arc<QueryContext>) -> RegisteredQuery {
        if let Ok(mut queries) = self.queries.lock() {
            queries.insert(context.id.clone(), context.clone());
        }
        RegisteredQuery { registry: self.clone(), context }
    }
}

/// Keeps a query registered; on drop it cancels any LLM work still running and
/// removes the query.
pub(super) struct RegisteredQuery {
    registry: Arc<QueryRegistry>,
    context: Arc<QueryContext>,
}

impl Drop for RegisteredQuery {
    fn drop(&mut self) {
        self.context.cancel.cancel();
        if let Ok(mut queries) = self.registry.queries.lock() {
            queries.remove(&self.context.id);
        }
    }
}
