//! A cost-model LLM server for reproducible benchmarks: OpenAI-compatible
//! `/v1/chat/completions`, with a real prefix cache modelled on vLLM's automatic
//! prefix caching (the prompt's tokens in fixed-size blocks, each block identified by
//! the hash of everything up to it, least-recently-used eviction at a configured
//! capacity) and a service time proportional to the uncached prompt tokens plus the
//! completion tokens (the answer's and its end-of-sequence token, cut at the
//! request's `max_tokens`). It models one accelerator: prefill is compute-bound, so the
//! prefills of all requests share it and run one after another, in arrival order;
//! decoding is memory-bound and batched, so up to `slots` sequences decode at once,
//! each at the per-token rate. A request's cached prefix is looked up when its
//! prefill starts, so it reuses what any earlier prefill computed. `usage` reports
//! `prompt_tokens_details.cached_tokens` as vLLM does.
//!
//! Tokens come from a real tokenizer (a GGUF model's vocabulary, by default the
//! server's default model). The answers are fixed placeholders (`yes`/`no` by a
//! hash of the prompt, or a short text): this server measures cost, it never decides
//! answers for the product.

use std::{
    collections::{BTreeMap, HashMap},
    hash::{Hash, Hasher},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{extract::State, routing::post, Json, Router};
use serde::Serialize;
use serde_json::{json, Value};
use tag_server::{llm::embedded::Tokenizer, reorder::PrefixHits};
use tokio::sync::Semaphore;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct CostModel {
    /// Tokens per cache block (vLLM's default is 16).
    pub block_tokens: usize,
    /// Blocks the prefix cache holds.
    pub capacity_blocks: usize,
    /// Accelerator time per uncached prompt token, microseconds (prefills run one at
    /// a time).
    pub prefill_us_per_token: u64,
    /// Time per completion token of one sequence, microseconds (sequences decode in
    /// parallel, up to `slots`).
    pub decode_us_per_token: u64,
    /// Fixed time per request, microseconds, spent in its slot.
    pub overhead_us: u64,
    /// Requests admitted at once (a batch of sequences decoding together).
    pub slots: usize,
}

impl Default for CostModel {
    /// Roughly a 7B model on one data-centre GPU: 10,000 prefill tokens/s for the
    /// whole accelerator, 50 decode tokens/s per sequence with 8 sequences decoding
    /// at once, a 64k-token cache.
    fn default() -> Self {
        CostModel {
            block_tokens: 16,
            capacity_blocks: 4096,
            prefill_us_per_token: 100,
            decode_us_per_token: 20_000,
            overhead_us: 2_000,
            slots: 8,
        }
    }
}

/// Totals over every request served.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct ServerTotals {
    pub requests: u64,
    pub prompt_tokens: u64,
    pub cached_tokens: u64,
    pub completion_tokens: u64,
    /// Sum of modelled service times.
    pub service_seconds: f64,
    /// Characters of the prompts in arrival order, and how many were a prefix shared
    /// with an earlier prompt (the ADRS prefix hit rate's parts).
    pub prompt_chars: u64,
    pub hit_chars: u64,
}

impl ServerTotals {
    /// Prefix hit rate of the prompts in arrival order, percent.
    pub fn phr(&self) -> f64 {
        tag_server::reorder::hit_rate(self.hit_chars, self.prompt_chars)
    }
}

/// Block hashes with least-recently-used eviction.
#[derive(Default)]
struct PrefixCache {
    blocks: HashMap<u64, u64>,
    by_age: BTreeMap<u64, u64>,
    clock: u64,
}

impl PrefixCache {
    /// Cached leading tokens of `tokens`; then every full block becomes most
    /// recently used, evicting the oldest beyond `capacity`.
    fn admit(&mut self, tokens: &[u32], block: usize, capacity: usize) -> usize {
        let mut hashes = Vec::with_capacity(tokens.len() / block);
        let mut parent = 0u64;
        for chunk in tokens.chunks_exact(block) {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            parent.hash(&mut hasher);
            chunk.hash(&mut hasher);
            parent = hasher.finish();
            hashes.push(parent);
        }
        let hit_blocks = hashes.iter().take_while(|h| self.blocks.contains_key(h)).count();
        for hash in hashes {
            self.clock += 1;
            if let Some(old) = self.blocks.insert(hash, self.clock) {
                self.by_age.remove(&old);
            }
            self.by_age.insert(self.clock, hash);
        }
        while self.blocks.len() > capacity {
            let Some((_, oldest)) = self.by_age.pop_first() else { break };
            self.blocks.remove(&oldest);
        }
        hit_blocks * block
    }
}

/// The accelerator's prefill queue: each prefill starts when the one before it
/// ends. A virtual clock, so the timer's granularity never adds up over requests.
#[derive(Default)]
struct ComputeQueue {
    free_at: Option<tokio::time::Instant>,
}

impl ComputeQueue {
    /// Queues `work` arriving at `now`; returns when it is done.
    fn reserve(&mut self, now: tokio::time::Instant, work: Duration) -> tokio::time::Instant {
        let start = self.free_at.map_or(now, |free| free.max(now));
        let end = start + work;
        self.free_at = Some(end);
        end
    }
}

struct ServerState {
    model: CostModel,
    tokenizer: Arc<Tokenizer>,
    cache: Mutex<PrefixCache>,
    slots: Semaphore,
    compute: Mutex<ComputeQueue>,
    totals: Mutex<ServerTotals>,
    /// Every prompt seen, for the prefix hit rate.
    seen: Mutex<PrefixHits>,
}

pub struct CostServer {
    pub base_url: String,
    state: Arc<ServerState>,
    task: tokio::task::JoinHandle<()>,
}

impl CostServer {
    /// Serves on a free loopback port.
    pub async fn start(model: CostModel, tokenizer: Arc<Tokenizer>) -> anyhow::Result<CostServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base_url = format!("http://{}/v1", listener.local_addr()?);
        let state = Arc::new(ServerState {
            model,
            tokenizer,
            cache: Mutex::new(PrefixCache::default()),
            slots: Semaphore::new(model.slots.max(1)),
            compute: Mutex::new(ComputeQueue::default()),
            totals: Mutex::new(ServerTotals::default()),
            seen: Mutex::new(Default::default()),
        });
        let app = Router::new().route("/v1/chat/completions", post(complete)).with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(CostServer { base_url, state, task })
    }

    pub fn totals(&self) -> ServerTotals {
        *self.state.totals.lock().expect("totals lock")
    }

    /// Forgets the prefix cache and the totals (a fresh server for the next run).
    pub fn reset(&self) {
        *self.state.cache.lock().expect("cache lock") = PrefixCache::default();
        *self.state.totals.lock().expect("totals lock") = ServerTotals::default();
        self.state.seen.lock().expect("seen lock").clear();
    }
}

impl Drop for CostServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The prompt as a chat template would lay it out: role markers, then content.
fn render(messages: &[Value]) -> String {
    let mut text = String::new();
    for message in messages {
        let role = message["role"].as_str().unwrap_or("user");
        let content = message["content"].as_str().unwrap_or("");
        text.push_str(&format!("<|im_start|>{role}\n{content}<|im_end|>\n"));
    }
    text.push_str("<|im_start|>assistant\n");
    text
}

fn placeholder_answer(prompt: &str) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    prompt.hash(&mut hasher);
    let bit = hasher.finish() % 2 == 0;
    if prompt.contains("yes or no") {
        if bit { "yes" } else { "no" }.to_string()
    } else if prompt.contains("True") && prompt.contains("False") {
        if bit { "True" } else { "False" }.to_string()
    } else if prompt.contains("number from 0 to 1") {
        "0.5".to_string()
    } else {
        "A short placeholder answer from the cost model.".to_string()
    }
}

async fn complete(State(state): State<Arc<ServerState>>, Json(body): Json<Value>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let prompt = render(&messages);
    // The answer's tokens and the end-of-sequence token, cut at `max_tokens` as a
    // real server does.
    let mut answer = placeholder_answer(&prompt);
    let answer_tokens = state.tokenizer.tokenize(&answer);
    let limit = body["max_completion_tokens"].as_u64().or(body["max_tokens"].as_u64()).map_or(usize::MAX, |n| n.max(1) as usize);
    let completion_tokens = (answer_tokens.len() + 1).min(limit);
    let finish_reason = if completion_tokens < answer_tokens.len() + 1 { "length" } else { "stop" };
    if completion_tokens < answer_tokens.len() {
        answer = state.tokenizer.detokenize(&answer_tokens[..completion_tokens]);
    }
    let prompt_tokens = state.tokenizer.tokenize(&prompt);
    let hit_chars = state.seen.lock().expect("seen lock").add(&prompt);
    let Ok(_slot) = state.slots.acquire().await else {
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "closed").into_response();
    };
    let model = state.model;
    // The prefill queues behind every earlier one; the cache is looked up as of its
    // start, when all of those have been computed.
    let (cached, prefill_us, prefill_end) = {
        let mut compute = state.compute.lock().expect("compute lock");
        let cached = state.cache.lock().expect("cache lock").admit(&prompt_tokens, model.block_tokens, model.capacity_blocks);
        let prefill_us = model.prefill_us_per_token * (prompt_tokens.len() - cached) as u64;
        let end = compute.reserve(tokio::time::Instant::now(), Duration::from_micros(prefill_us));
        (cached, prefill_us, end)
    };
    tokio::time::sleep_until(prefill_end).await;
    let decode_us = model.overhead_us + model.decode_us_per_token * completion_tokens as u64;
    tokio::time::sleep(Duration::from_micros(decode_us)).await;
    let service_us = prefill_us + decode_us;
    {
        let mut totals = state.totals.lock().expect("totals lock");
        totals.requests += 1;
        totals.prompt_tokens += prompt_tokens.len() as u64;
        totals.cached_tokens += cached as u64;
        totals.completion_tokens += completion_tokens as u64;
        totals.service_seconds += service_us as f64 / 1e6;
        totals.prompt_chars += prompt.chars().count() as u64;
        totals.hit_chars += hit_chars as u64;
    }
    let usage = json!({
        "prompt_tokens": prompt_tokens.len(),
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens.len() + completion_tokens,
        "prompt_tokens_details": { "cached_tokens": cached },
    });
    let model_name = body["model"].as_str().unwrap_or("cost-model").to_string();
    if body["stream"].as_bool() == Some(true) {
        let chunk = json!({"object": "chat.completion.chunk", "model": model_name,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": answer}, "finish_reason": null}]});
        let done = json!({"object": "chat.completion.chunk", "model": model_name,
            "choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason}], "usage": usage});
        let text = format!("data: {chunk}\n\ndata: {done}\n\ndata: [DONE]\n\n");
        return ([(axum::http::header::CONTENT_TYPE, "text/event-stream")], text).into_response();
    }
    Json(json!({
        "id": "cost-model",
        "object": "chat.completion",
        "model": model_name,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": finish_reason}],
        "usage": usage,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::{ComputeQueue, PrefixCache};
    use std::time::Duration;

    #[test]
    fn prefills_queue_one_after_another_and_an_idle_accelerator_starts_at_once() {
        let mut queue = ComputeQueue::default();
        let t0 = tokio::time::Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(queue.reserve(t0, ms(10)), t0 + ms(10));
        assert_eq!(queue.reserve(t0, ms(10)), t0 + ms(20), "arrived together: waits for the first");
        assert_eq!(queue.reserve(t0 + ms(5), ms(1)), t0 + ms(21));
        assert_eq!(queue.reserve(t0 + ms(50), ms(5)), t0 + ms(55), "idle: starts on arrival");
    }

    #[test]
    fn shared_leading_blocks_hit_and_old_blocks_are_evicted() {
        let mut cache = PrefixCache::default();
        let a: Vec<u32> = (0..64).collect();
        assert_eq!(cache.admit(&a, 16, 100), 0);
        let mut b = a.clone();
        b[40] = 999; // differs in the third block
        assert_eq!(cache.admit(&b, 16, 100), 32);
        assert_eq!(cache.admit(&a, 16, 100), 64);
        // Capacity 4 blocks: admitting a fresh 4-block prompt evicts everything else.
        let c: Vec<u32> = (1000..1064).collect();
        cache.admit(&c, 16, 4);
        assert_eq!(cache.admit(&a, 16, 8), 0);
    }
}
