//! The embedded engine's thread: loads the model, then serves requests in a few
//! KV-cache sequences ("slots", each with its own share of the context), taking
//! turns: each step evaluates the next prompt chunk or the next generated token of
//! one slot.

use std::{
    collections::VecDeque,
    num::NonZeroU32,
    path::Path,
    sync::{atomic::Ordering, OnceLock},
    time::Instant,
};

use llama_cpp_2::{
    context::{params::LlamaContextParams, LlamaContext},
    llama_backend::LlamaBackend,
    llama_batch::LlamaBatch,
    model::{params::LlamaModelParams, LlamaChatMessage, LlamaChatTemplate, LlamaModel},
    sampling::LlamaSampler,
    token::LlamaToken,
};
use tokio::sync::{mpsc, oneshot, watch};

use super::{grammar, EngineCounters};
use crate::{
    error::{Error, Result},
    llm::{model_store, model_store::Preparing, Completion, Constraint, Message, Readiness, Role, Sampling, StreamPiece, Usage},
};

pub struct Job {
    pub messages: Vec<Message>,
    pub max_tokens: u32,
    pub constraint: Option<Constraint>,
    pub sampling: Sampling,
    pub reply: Reply,
}

pub enum Reply {
    Once(oneshot::Sender<Result<Completion>>),
    Stream(mpsc::UnboundedSender<Result<StreamPiece>>),
}

impl Reply {
    /// The caller went away (cancelled request): stop working on it.
    fn is_closed(&self) -> bool {
        match self {
            Reply::Once(tx) => tx.is_closed(),
            Reply::Stream(tx) => tx.is_closed(),
        }
    }

    fn text(&self, text: String) {
        if let Reply::Stream(tx) = self {
            if !text.is_empty() {
                let _ = tx.send(Ok(StreamPiece::Text(text)));
            }
        }
    }

    fn finish(self, result: Result<Completion>) {
        match self {
            Reply::Once(tx) => {
                let _ = tx.send(result);
            }
            Reply::Stream(tx) => {
                let _ = match result {
                    Ok(completion) => tx.send(Ok(StreamPiece::Usage(completion.usage))),
                    Err(e) => tx.send(Err(e)),
                };
            }
        }
    }
}

/// A GGUF model's tokenizer alone (vocabulary only, no weights).
pub struct Tokenizer {
    model: LlamaModel,
}

impl Tokenizer {
    pub fn load(path: &Path) -> Result<Tokenizer> {
        model_store::check_gguf(path)?;
        let backend = backend().map_err(|e| Error::internal(format!("cannot start llama.cpp: {e}")))?;
        let params = LlamaModelParams::default().with_vocab_only(true);
        let model = LlamaModel::load_from_file(backend, path, &params)
            .map_err(|e| Error::Config(format!("cannot read the vocabulary of {}: {e}", path.display())))?;
        Ok(Tokenizer { model })
    }

    /// Token ids of `text` as a server tokenizes a rendered chat template: no
    /// beginning-of-sequence token added, and the template's markers
    /// (`<|im_start|>`, ...) read as the special tokens they are.
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        self.model.vocab().tokenize(text.as_bytes(), false, true).into_iter().map(|t| t.0 as u32).collect()
    }

    /// Whether llama.cpp's own reading of the GBNF `grammar` lets a constrained
    /// model write `text` (or a text it begins): each of its tokens in turn must
    /// survive the grammar's masking.
    pub fn grammar_allows(&self, grammar: &str, text: &str) -> Result<bool> {
        let mut sampler = LlamaSampler::grammar(&self.model, grammar, "root")
            .map_err(|e| Error::internal(format!("llama.cpp cannot read the grammar: {e}")))?;
        for token in self.model.vocab().tokenize(text.as_bytes(), false, false) {
            if !allows(&mut sampler, token) {
                return Ok(false);
            }
            sampler.accept(token);
        }
        Ok(true)
    }

    /// The text of `tokens` (the inverse of [`Tokenizer::tokenize`]).
    pub fn detokenize(&self, tokens: &[u32]) -> String {
        let vocab = self.model.vocab();
        let bytes: Vec<u8> =
            tokens.iter().flat_map(|&t| vocab.token_to_piece(LlamaToken(t as i32), true, None)).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// llama.cpp's backend may be initialised once per process.
fn backend() -> std::result::Result<&'static LlamaBackend, String> {
    static BACKEND: OnceLock<std::result::Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Loads the model and serves jobs until every sender is gone.
pub fn run(
    path: &Path,
    settings: &crate::config::LlmConfig,
    status: &watch::Sender<Readiness>,
    jobs: std::sync::mpsc::Receiver<Job>,
    counters: &EngineCounters,
) {
    let fail = |why: String| {
        tracing::error!(error = %why, "the embedded model cannot be used");
        status.send_replace(Readiness::Failed(why));
    };
    status.send_replace(Readiness::Preparing(Preparing::Loading));
    if let Err(e) = model_store::check_gguf(path) {
        return fail(super::reason(e));
    }
    let backend = match backend() {
        Ok(backend) => backend,
        Err(e) => return fail(format!("cannot start llama.cpp: {e}")),
    };
    let started = Instant::now();
    let model = match LlamaModel::load_from_file(backend, path, &LlamaModelParams::default()) {
        Ok(model) => model,
        Err(e) => {
            return fail(format!(
                "cannot load model file {}: llama.cpp could not read it ({e}); the file is corrupted, truncated or not \
a supported GGUF model",
                path.display()
            ))
        }
    };
    let context_size = settings.context_size.min(model.n_ctx_train().max(512));
    let threads = match settings.threads {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
        n => n,
    } as i32;
    let slots = settings.slots.max(1);
    let chunk = settings.batch_size.max(1) as usize;
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(context_size))
        .with_n_batch(chunk as u32)
        .with_n_ubatch(chunk as u32)
        .with_n_seq_max(slots as u32)
        .with_kv_unified(false)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let ctx = match model.new_context(backend, params) {
        Ok(ctx) => ctx,
        Err(e) => return fail(format!("cannot create a llama.cpp context for {}: {e}", path.display())),
    };
    let template = model.chat_template(None).ok();
    tracing::info!(
        model = %path.display(),
        seconds = started.elapsed().as_secs_f64(),
        context_size,
        threads,
        slots,
        chat_template = template.is_some(),
        "embedded model loaded"
    );
    status.send_replace(Readiness::Ready);
    let mut scheduler = Scheduler {
        model: &model,
        ctx,
        template,
        context_size: context_size as usize / slots,
        chunk,
        slots: (0..slots).map(|_| Slot::default()).collect(),
        queue: VecDeque::new(),
        clock: 0,
        turn: 0,
        counters,
    };
    scheduler.serve(jobs);
}

/// One KV-cache sequence: the tokens whose cache it holds, and the request it is
/// working on, if any.
#[derive(Default)]
struct Slot {
    tokens: Vec<LlamaToken>,
    active: Option<Active>,
    last_used: u64,
}

/// A request waiting for a slot, tokenized.
struct Pending {
    prompt: Vec<LlamaToken>,
    picker: Picker,
    max_tokens: usize,
    reply: Reply,
}

/// A request being evaluated in a slot.
struct Active {
    prompt: Vec<LlamaToken>,
    /// Prompt tokens already in the slot's cache.
    evaluated: usize,
    reused: usize,
    picker: Picker,
    max_tokens: usize,
    /// The sampled token to feed next; `None` while the prompt is evaluated.
    next: Option<LlamaToken>,
    generated: usize,
    /// Generated bytes not yet sent (an incomplete UTF-8 character).
    pending_bytes: Vec<u8>,
    text: String,
    reply: Reply,
}

struct Scheduler<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    template: Option<LlamaChatTemplate>,
    /// Tokens of KV cache of each slot.
    context_size: usize,
    /// Prompts are evaluated in chunks of this many tokens at fixed positions
    /// (`llm.batch_size`), and a reused prefix is cut to a multiple of it.
    /// llama.cpp's CPU kernels round differently for different batch shapes, so a
    /// prompt evaluated in other chunks can (rarely: a small model on a near tie)
    /// decode differently; fixed chunks make every answer independent of what ran
    /// before or beside it.
    chunk: usize,
    slots: Vec<Slot>,
    queue: VecDeque<Pending>,
    clock: u64,
    /// The slot that ran the last step (steps take turns).
    turn: usize,
    counters: &'m EngineCounters,
}

impl Scheduler<'_> {
    fn serve(&mut self, jobs: std::sync::mpsc::Receiver<Job>) {
        loop {
            if self.idle() {
                match jobs.recv() {
                    Ok(job) => self.admit(job),
                    Err(_) => return,
                }
            }
            while let Ok(job) = jobs.try_recv() {
                self.admit(job);
            }
            self.drop_cancelled();
            self.assign_slots();
            self.step();
        }
    }

    fn idle(&self) -> bool {
        self.queue.is_empty() && self.slots.iter().all(|s| s.active.is_none())
    }

    /// Renders and tokenizes the request and prepares its sampler.
    fn admit(&mut self, job: Job) {
        let prompt_text = self.render(&job.messages);
        let prompt = self.model.vocab().tokenize(prompt_text.as_bytes(), true, true);
        if prompt.is_empty() {
            return job.reply.finish(Err(Error::llm("the prompt is empty")));
        }
        if prompt.len() + 1 > self.context_size {
            return job.reply.finish(Err(Error::llm(format!(
                "the prompt has {} tokens; each of the embedded model's slots holds {} (raise llm.context_size, \
TAG_LLM_CONTEXT_SIZE, or lower llm.slots)",
                prompt.len(),
                self.context_size
            ))));
        }
        let grammar = match &job.constraint {
            None => None,
            Some(constraint) => match LlamaSampler::grammar(self.model, &grammar::gbnf(constraint), "root") {
                Ok(grammar) => Some(grammar),
                Err(e) => return job.reply.finish(Err(Error::internal(format!("invalid answer grammar: {e}")))),
            },
        };
        let mut chain = Vec::new();
        match job.sampling {
            Sampling::Greedy => chain.push(LlamaSampler::greedy()),
            Sampling::Prose => {
                // DRY (llama.cpp's defaults, over the answer so far): a phrase that
                // repeats what came before gets costlier the longer it runs.
                chain.push(LlamaSampler::dry(self.model, 0.8, 1.75, 2, 512, ["\n", ":", "\"", "*"]));
                chain.push(LlamaSampler::greedy());
            }
            Sampling::Random { temperature, seed } => {
                chain.extend([LlamaSampler::top_k(40), LlamaSampler::temp(temperature), LlamaSampler::dist(seed)]);
            }
        }
        // A query's grammar winds down (see Picker::pick); the operators' short
        // answers and lists are left to run to their end.
        let wind_down = matches!(job.constraint, Some(Constraint::Grammar(_)));
        let picker = Picker { chain: LlamaSampler::chain_simple(chain), grammar, wind_down: wind_down.then(|| self.model.vocab().eos()).filter(|eos| eos.0 >= 0) };
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let max_tokens = (job.max_tokens as usize).max(1);
        self.queue.push_back(Pending { prompt, picker, max_tokens, reply: job.reply });
    }

    /// The chat prompt, by the model's own template (GGUF metadata), or ChatML.
    fn render(&self, messages: &[Message]) -> String {
        let role = |r: Role| match r {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        if let Some(template) = &self.template {
            let chat: std::result::Result<Vec<_>, _> = messages
                .iter()
                .map(|m| LlamaChatMessage::new(role(m.role).into(), m.content.replace('\0', "")))
                .collect();
            if let Ok(chat) = chat {
                if let Ok(text) = self.model.apply_chat_template(template, &chat, true) {
                    return text;
                }
            }
        }
        let mut text = String::new();
        for m in messages {
            text.push_str(&format!("<|im_start|>{}\n{}<|im_end|>\n", role(m.role), m.content));
        }
        text.push_str("<|im_start|>assistant\n");
        text
    }

    fn drop_cancelled(&mut self) {
        self.queue.retain(|p| !p.reply.is_closed());
        for slot in &mut self.slots {
            if slot.active.as_ref().is_some_and(|a| a.reply.is_closed()) {
                slot.active = None;
            }
        }
    }

    /// Gives waiting requests the free slot whose cache shares the longest prefix
    /// with their prompt (ties: the least recently used slot). The reused prefix is
    /// cut to a multiple of the chunk size, so the rest is evaluated in the same chunks as
    /// a fresh evaluation would use, and the answer does not depend on what the
    /// slot held before.
    fn assign_slots(&mut self) {
        while let Some(pending) = self.queue.pop_front() {
            let best = (0..self.slots.len()).filter(|&i| self.slots[i].active.is_none()).max_by_key(|&i| {
                let slot = &self.slots[i];
                (common_prefix(&slot.tokens, &pending.prompt), std::cmp::Reverse(slot.last_used))
            });
            let Some(best) = best else {
                self.queue.push_front(pending);
                return;
            };
            let prompt_len = pending.prompt.len();
            let common = common_prefix(&self.slots[best].tokens, &pending.prompt).min(prompt_len - 1);
            let keep = common / self.chunk * self.chunk;
            let kept = match self.ctx.clear_kv_cache_seq(Some(best as u32), Some(keep as u32), None) {
                Ok(true) => keep,
                _ => {
                    self.clear_slot(best);
                    0
                }
            };
            self.clock += 1;
            let slot = &mut self.slots[best];
            slot.tokens.truncate(kept);
            slot.last_used = self.clock;
            self.counters.prompt_tokens.fetch_add(prompt_len as u64, Ordering::Relaxed);
            self.counters.reused_tokens.fetch_add(kept as u64, Ordering::Relaxed);
            slot.active = Some(Active {
                evaluated: kept,
                reused: kept,
                prompt: pending.prompt,
                picker: pending.picker,
                // The sequence's share of the context bounds the answer.
                max_tokens: pending.max_tokens.min(self.context_size - prompt_len),
                next: None,
                generated: 0,
                pending_bytes: Vec::new(),
                text: String::new(),
                reply: pending.reply,
            });
        }
    }

    fn clear_slot(&mut self, index: usize) {
        let _ = self.ctx.clear_kv_cache_seq(Some(index as u32), None, None);
        self.slots[index].tokens.clear();
    }

    /// One step for the next slot with work, in turn: its next generated token, or
    /// its next prompt chunk (positions `[k·chunk, (k+1)·chunk)`). Each step
    /// evaluates one sequence, in chunks at fixed positions, so results are the same
    /// whatever else runs and whatever the cache held: concurrent requests answer
    /// exactly as sequential ones.
    fn step(&mut self) {
        let count = self.slots.len();
        let Some(index) = (1..=count).map(|k| (self.turn + k) % count).find(|&i| self.slots[i].active.is_some()) else {
            return;
        };
        self.turn = index;
        let slot = &mut self.slots[index];
        let Some(active) = &mut slot.active else { return };
        let chunk = self.chunk;
        let mut batch = LlamaBatch::new(chunk, 1);
        let mut added = Vec::new();
        let prefill = active.next.is_none();
        let added_ok = if let Some(token) = active.next {
            added.push(token);
            batch.add(token, slot.tokens.len() as i32, &[index as i32], true).is_ok()
        } else {
            let end = (active.evaluated / chunk * chunk + chunk).min(active.prompt.len());
            let mut ok = true;
            for position in active.evaluated..end {
                let last = position + 1 == active.prompt.len();
                ok &= batch.add(active.prompt[position], position as i32, &[index as i32], last).is_ok();
                added.push(active.prompt[position]);
            }
            active.evaluated = end;
            ok
        };
        let logits_at = added.len() as i32 - 1;
        let wants_logits = !prefill || active.evaluated == active.prompt.len();
        let started = Instant::now();
        let decoded = if added_ok { self.ctx.decode(&mut batch).map_err(|e| e.to_string()) } else { Err("batch overflow".into()) };
        let micros = started.elapsed().as_micros() as u64;
        if prefill {
            self.counters.prefill_micros.fetch_add(micros, Ordering::Relaxed);
            self.counters.evaluated_prompt_tokens.fetch_add(added.len() as u64, Ordering::Relaxed);
        } else {
            self.counters.decode_micros.fetch_add(micros, Ordering::Relaxed);
            self.counters.decode_steps_tokens.fetch_add(1, Ordering::Relaxed);
        }
        if let Err(e) = decoded {
            tracing::error!(error = %e, "llama.cpp decode failed");
            if let Some(active) = self.slots[index].active.take() {
                active.reply.finish(Err(Error::llm(format!("the embedded model failed to evaluate the prompt: {e}"))));
            }
            self.clear_slot(index);
            return;
        }
        self.slots[index].tokens.extend(added);
        if wants_logits {
            self.sample(index, logits_at);
        }
    }

    fn sample(&mut self, index: usize, batch_index: i32) {
        let vocab = self.model.vocab();
        let slot = &mut self.slots[index];
        let Some(active) = &mut slot.active else { return };
        // A grammar with no way on (not expected of a well-formed one) ends the text.
        let past_half = active.generated * 2 >= active.max_tokens;
        let token = active.picker.pick(&self.ctx, batch_index, past_half);
        let done = token.is_none_or(|token| vocab.is_eog(token));
        let token = token.unwrap_or(LlamaToken(0));
        if !done {
            active.generated += 1;
            active.pending_bytes.extend(vocab.token_to_piece(token, false, None));
            let text = take_valid_utf8(&mut active.pending_bytes);
            active.text.push_str(&text);
            active.reply.text(text);
        }
        if done || active.generated >= active.max_tokens {
            let active = slot.active.take().expect("active");
            self.counters.completion_tokens.fetch_add(active.generated as u64, Ordering::Relaxed);
            let mut text = active.text;
            text.push_str(&String::from_utf8_lossy(&active.pending_bytes));
            let usage = Usage {
                prompt_tokens: active.prompt.len() as u64,
                completion_tokens: active.generated as u64,
                cached_prompt_tokens: active.reused as u64,
            };
            active.reply.finish(Ok(Completion { text, usage }));
        } else {
            active.next = Some(token);
        }
    }
}

/// How a request's next token is chosen: its sampler chain (greedy, DRY, or
/// random), held to its grammar when it has one.
struct Picker {
    chain: LlamaSampler,
    grammar: Option<LlamaSampler>,
    /// The end-of-text token, when past half its budget the text ends wherever
    /// its grammar lets it end.
    wind_down: Option<LlamaToken>,
}

impl Picker {
    /// The next token after the `batch_index`-th logits of the last evaluation.
    /// With a grammar, as llama.cpp's own common sampler does: the chain picks from
    /// the whole vocabulary, and only when the grammar refuses that token is the
    /// vocabulary masked (about 49,000 tokens checked against the grammar, instead
    /// of one) and the chain asked again. Greedy picks the same token either way.
    /// `None` (the text ends) when the grammar allows no token at all, or, past
    /// half the budget (`past_half`) of a request that winds down, as soon as the
    /// grammar lets the text end: a small model that would fill every list of a
    /// query to its bound ends with a complete query, not one cut off mid-clause
    /// at the budget's end.
    fn pick(&mut self, ctx: &LlamaContext<'_>, batch_index: i32, past_half: bool) -> Option<LlamaToken> {
        let Some(grammar) = &mut self.grammar else {
            return Some(self.chain.sample(ctx, batch_index));
        };
        if self.wind_down.is_some_and(|eos| past_half && allows(grammar, eos)) {
            return None;
        }
        let mut candidates = ctx.token_data_array_ith(batch_index);
        candidates.apply_sampler(&mut self.chain);
        let first = candidates.selected_token()?;
        let token = if allows(grammar, first) {
            first
        } else {
            let mut candidates = ctx.token_data_array_ith(batch_index);
            candidates.apply_sampler(grammar);
            candidates.apply_sampler(&mut self.chain);
            let index = candidates.selected?;
            let chosen = candidates.data.get(index)?;
            if chosen.logit() == f32::NEG_INFINITY {
                return None;
            }
            chosen.id()
        };
        grammar.accept(token);
        self.chain.accept(token);
        Some(token)
    }
}

/// Whether the grammar sampler, in its present state, lets the model write `token`
/// next: llama.cpp's masking applied to that one token.
fn allows(grammar: &mut LlamaSampler, token: LlamaToken) -> bool {
    use llama_cpp_2::token::{data::LlamaTokenData, data_array::LlamaTokenDataArray};
    let mut single = LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, 0.0, 0.0)], false);
    single.apply_sampler(grammar);
    single.data[0].logit() != f32::NEG_INFINITY
}

fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Removes and returns the longest valid UTF-8 prefix of `bytes`, keeping an
/// incomplete trailing character for the next token.
fn take_valid_utf8(bytes: &mut Vec<u8>) -> String {
    let valid = match std::str::from_utf8(bytes) {
        Ok(_) => bytes.len(),
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(_) => {
            let text = String::from_utf8_lossy(bytes).into_owned();
            bytes.clear();
            return text;
        }
    };
    let text = String::from_utf8(bytes[..valid].to_vec()).unwrap_or_default();
    bytes.drain(..valid);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_is_released_whole_characters_at_a_time() {
        let mut bytes = "é".as_bytes()[..1].to_vec();
        assert_eq!(take_valid_utf8(&mut bytes), "");
        bytes.extend(&"é".as_bytes()[1..]);
        bytes.extend(b"x");
        assert_eq!(take_valid_utf8(&mut bytes), "éx");
        assert!(bytes.is_empty());
    }
}
