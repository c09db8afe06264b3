//! The LLM layer: one [`LlmBackend`] trait for every model the server can use, the
//! request/usage types shared by the stages, the OpenAI-compatible HTTP client and
//! the embedded llama.cpp engine. Every stage (synthesis, operators, answers) calls
//! the model through this trait.

pub mod cache;
pub mod embedded;
pub mod http;
pub mod model_store;
mod openai;

use std::sync::Arc;

use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

pub use embedded::EmbeddedLlm;
pub use openai::OpenAiClient;
pub use tag_types::{Preparing, Readiness, Usage};

use crate::error::Result;

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Message { role: Role::System, content: content.into() }
    }
    pub fn user(content: impl Into<String>) -> Self {
        Message { role: Role::User, content: content.into() }
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Message { role: Role::Assistant, content: content.into() }
    }
}

/// A chat-completion request. Temperature is 0 unless [`Sampling::Random`] asks
/// otherwise (with a seed): every call is deterministic for a given model, prompt
/// and sampling, so results can be reused.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    pub max_tokens: u32,
    /// The form the answer must take. Backends that can constrain decoding (the
    /// embedded engine, with a grammar) enforce it; others rely on the prompt, and
    /// the caller's strict parser checks the answer either way.
    pub constraint: Option<Constraint>,
    pub sampling: Sampling,
}

impl ChatRequest {
    pub fn new(messages: Vec<Message>, max_tokens: u32) -> Self {
        ChatRequest { messages, max_tokens, constraint: None, sampling: Sampling::Greedy }
    }
}

/// How tokens are chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum Sampling {
    /// The most likely token each time (temperature 0).
    #[default]
    Greedy,
    /// Greedy, with repeated phrases penalised: prose answers. A tiny model's
    /// greedy prose otherwise loops on one sentence until its budget runs out. The
    /// embedded engine applies a DRY penalty; servers get temperature 0 as for
    /// `Greedy` (real models do not need the crutch).
    Prose,
    /// Random at `temperature`, from `seed` (candidates that differ).
    Random { temperature: f32, seed: u32 },
}

/// Answer shapes an operator needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Constraint {
    /// `yes` or `no`.
    YesNo,
    /// Exactly one of the labels.
    OneOf(Vec<String>),
    /// A number from 0 to 1.
    UnitScore,
    /// Comma-separated item numbers.
    NumberList,
    /// A GBNF grammar (a SQL query over the dataset's own tables and columns),
    /// shared rather than copied into each request.
    Grammar(Arc<str>),
}

#[derive(Debug, Clone)]
pub struct Completion {
    pub text: String,
    pub usage: Usage,
}

/// A piece of a streamed completion: text deltas, then (when the server reports it)
/// the usage of the whole call.
#[derive(Debug, Clone)]
pub enum StreamPiece {
    Text(String),
    Usage(Usage),
}

#[async_trait::async_trait]
pub trait LlmBackend: Send + Sync {
    /// Short backend name for health output and cache keys, e.g. `openai`.
    fn backend(&self) -> &str;
    /// Model identifier in use.
    fn model(&self) -> &str;
    /// Whether the backend can answer now. Calls made while it is preparing wait.
    fn readiness(&self) -> Readiness {
        Readiness::Ready
    }
    /// Starts any slow preparation (the embedded model's download and loading) in
    /// the background, so that the first request does not pay for all of it.
    fn prepare(&self) {}
    async fn complete(&self, request: &ChatRequest) -> Result<Completion>;
    async fn stream(&self, request: &ChatRequest) -> Result<BoxStream<'static, Result<StreamPiece>>>;
}

pub type SharedLlm = Arc<dyn LlmBackend>;
