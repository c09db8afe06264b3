//! The embedded LLM: llama.cpp in-process (the `llama-cpp-2` crate), the offline
//! default when no LLM server is configured. One worker thread owns the model and
//! its context and serves every request through a few sequences ("slots") that take
//! turns. Each slot keeps the KV cache of what it last evaluated; a request goes to
//! the free slot whose cached tokens share the longest prefix with its prompt and
//! only the rest is evaluated, so the prefix-sharing order of the operator scheduler
//! pays off on a laptop as it does on vLLM. Prompts are evaluated in fixed-position
//! chunks, so an answer never depends on what ran before or beside it. Operator
//! answers are constrained by GBNF grammars.
//!
//! Usage is reported like an HTTP server's: `prompt_tokens` and, of those,
//! `cached_prompt_tokens` that were reused rather than evaluated.

mod grammar;
mod worker;

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use futures::stream::BoxStream;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

pub use grammar::{gbnf, literal};
pub use worker::Tokenizer;

use super::{model_store, ChatRequest, Completion, LlmBackend, Preparing, Readiness, StreamPiece};
use crate::{
    config::LlmConfig,
    error::{Error, Result},
};

/// The model a configuration names: its file, or the default model's name.
fn model_name(config: &LlmConfig) -> String {
    let file = match &config.model_path {
        Some(path) => path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        None => model_store::DEFAULT_MODEL.file_name.to_string(),
    };
    file.trim_end_matches(".gguf").to_string()
}

/// Counters of the engine's own work, for tests, benchmarks and `/metrics`.
#[derive(Debug, Default)]
pub struct EngineCounters {
    requests: AtomicU64,
    prompt_tokens: AtomicU64,
    reused_tokens: AtomicU64,
    evaluated_prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    prefill_micros: AtomicU64,
    decode_micros: AtomicU64,
    decode_steps_tokens: AtomicU64,
}

/// A snapshot of [`EngineCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct EngineStats {
    pub requests: u64,
    /// Prompt tokens of all requests.
    pub prompt_tokens: u64,
    /// Prompt tokens whose KV cache was reused from an earlier request.
    pub reused_tokens: u64,
    /// Prompt tokens actually evaluated (`prompt_tokens - reused_tokens`).
    pub evaluated_prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Time in steps that evaluated prompt tokens.
    pub prefill_seconds: f64,
    /// Time in steps that only generated tokens, and the tokens they generated.
    pub decode_seconds: f64,
    pub decode_tokens: u64,
}

impl EngineCounters {
    pub fn snapshot(&self) -> EngineStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        EngineStats {
            requests: get(&self.requests),
            prompt_tokens: get(&self.prompt_tokens),
            reused_tokens: get(&self.reused_tokens),
            evaluated_prompt_tokens: get(&self.evaluated_prompt_tokens),
            completion_tokens: get(&self.completion_tokens),
            prefill_seconds: get(&self.prefill_micros) as f64 / 1e6,
            decode_seconds: get(&self.decode_micros) as f64 / 1e6,
            decode_tokens: get(&self.decode_steps_tokens),
        }
    }
}

/// Why the model cannot be used, without the error kind's prefix (the caller
/// reports it as "no LLM configured").
fn reason(error: Error) -> String {
    match error {
        Error::LlmNotConfigured(why) | Error::Config(why) => why,
        Error::Llm { message, .. } => message,
        other => other.to_string(),
    }
}

pub struct EmbeddedLlm {
    model_name: String,
    status: watch::Receiver<Readiness>,
    jobs: std::sync::mpsc::Sender<worker::Job>,
    counters: Arc<EngineCounters>,
    /// What preparing needs, until [`EmbeddedLlm::prepare`] takes it.
    unstarted: std::sync::Mutex<Option<Unstarted>>,
}

struct Unstarted {
    config: LlmConfig,
    /// Where the default model is cached (`llm.model_dir`, resolved).
    model_dir: PathBuf,
    status: watch::Sender<Readiness>,
    jobs: std::sync::mpsc::Receiver<worker::Job>,
}

impl EmbeddedLlm {
    /// The engine for `config`'s model (`llm.model_path`, or the default model
    /// cached in `model_dir`), not started: [`EmbeddedLlm::prepare`] (or the first
    /// request) starts preparing the model. The `llm.context_size`, `llm.threads`,
    /// `llm.batch_size` and `llm.slots` settings shape the engine.
    pub fn new(config: LlmConfig, model_dir: PathBuf) -> EmbeddedLlm {
        let (status_tx, status) = watch::channel(Readiness::Preparing(Preparing::Loading));
        let (jobs, job_rx) = std::sync::mpsc::channel();
        EmbeddedLlm {
            model_name: model_name(&config),
            status,
            jobs,
            counters: Arc::new(EngineCounters::default()),
            unstarted: std::sync::Mutex::new(Some(Unstarted { config, model_dir, status: status_tx, jobs: job_rx })),
        }
    }

    /// Starts preparing the model (download when needed, verification, loading) in
    /// the background, once; returns at once. Must be called inside a tokio runtime.
    fn start(&self) {
        let Some(Unstarted { config, model_dir, status: status_tx, jobs: job_rx }) =
            self.unstarted.lock().ok().and_then(|mut u| u.take())
        else {
            return;
        };
        let counters = self.counters.clone();
        tokio::spawn(async move {
            let path = match &config.model_path {
                Some(path) => path.clone(),
                None => {
                    let progress = |p: Preparing| {
                        status_tx.send_replace(Readiness::Preparing(p));
                    };
                    match model_store::ensure_default(&model_dir, &config.model_index_url, progress).await {
                        Ok(path) => path,
                        Err(e) => {
                            tracing::error!(error = %e, "the embedded model is not available");
                            status_tx.send_replace(Readiness::Failed(reason(e)));
                            return;
                        }
                    }
                }
            };
            status_tx.send_replace(Readiness::Preparing(Preparing::Loading));
            let spawned = std::thread::Builder::new()
                .name("llama".into())
                .spawn(move || worker::run(&path, &config, &status_tx, job_rx, &counters));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start the embedded engine's thread");
            }
        });
    }

    pub fn stats(&self) -> EngineStats {
        self.counters.snapshot()
    }

    /// Waits until the model is loaded, or says why it cannot be.
    pub async fn wait_ready(&self) -> Result<()> {
        self.start();
        let mut status = self.status.clone();
        loop {
            match &*status.borrow_and_update() {
                Readiness::Ready => return Ok(()),
                Readiness::Failed(why) => return Err(Error::LlmNotConfigured(why.clone())),
                Readiness::Preparing(_) => {}
            }
            if status.changed().await.is_err() {
                return match &*status.borrow() {
                    Readiness::Ready => Ok(()),
                    Readiness::Failed(why) => Err(Error::LlmNotConfigured(why.clone())),
                    Readiness::Preparing(_) => Err(Error::internal("the embedded engine stopped while loading")),
                };
            }
        }
    }

    fn submit(&self, request: &ChatRequest, reply: worker::Reply) -> Result<()> {
        let job = worker::Job {
            messages: request.messages.clone(),
            max_tokens: request.max_tokens,
            constraint: request.constraint.clone(),
            sampling: request.sampling,
            reply,
        };
        self.jobs.send(job).map_err(|_| Error::llm("the embedded engine has stopped"))
    }
}

#[async_trait::async_trait]
impl LlmBackend for EmbeddedLlm {
    fn backend(&self) -> &str {
        "embedded"
    }

    fn model(&self) -> &str {
        &self.model_name
    }

    fn readiness(&self) -> Readiness {
        self.status.borrow().clone()
    }

    fn prepare(&self) {
        self.start();
    }

    async fn complete(&self, request: &ChatRequest) -> Result<Completion> {
        self.wait_ready().await?;
        let (tx, rx) = oneshot::channel();
        self.submit(request, worker::Reply::Once(tx))?;
        rx.await.map_err(|_| Error::llm("the embedded engine dropped the request"))?
    }

    async fn stream(&self, request: &ChatRequest) -> Result<BoxStream<'static, Result<StreamPiece>>> {
        self.wait_ready().await?;
        let (tx, rx) = mpsc::unbounded_channel();
        self.submit(request, worker::Reply::Stream(tx))?;
        Ok(Box::pin(tokio_stream::wrappers::UnboundedReceiverStream::new(rx)))
    }
}
