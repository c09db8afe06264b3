//! OpenAI-compatible chat-completions client (OpenAI, vLLM, SGLang, Ollama,
//! llama.cpp server, ...). Bounded concurrency across all callers, a timeout per
//! request, and retries with exponential backoff and jitter on 429, 5xx and
//! connection failures. A malformed body is not retried: it is an answer, and a
//! wrong one.

use std::{sync::Arc, time::Duration};

use backon::{ExponentialBuilder, Retryable};
use futures::{stream::BoxStream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Semaphore;

use super::{ChatRequest, Completion, Constraint, LlmBackend, Sampling, StreamPiece, Usage};
use crate::{
    config::{LlmConfig, SqlGrammar},
    error::{Error, Result},
    text::shorten,
};

pub struct OpenAiClient {
    http: reqwest::Client,
    endpoint: String,
    model: String,
    api_key: Option<String>,
    permits: Arc<Semaphore>,
    backoff: ExponentialBuilder,
    /// The request field a grammar goes in (`llm.sql_grammar`), if the server takes one.
    grammar_field: Option<&'static str>,
}

/// Why one attempt failed, and whether trying again may help.
#[derive(Debug)]
struct AttemptError {
    retryable: bool,
    message: String,
}

impl OpenAiClient {
    pub fn new(config: &LlmConfig) -> Result<Self> {
        let base_url = config
            .base_url
            .as_deref()
            .ok_or_else(|| Error::LlmNotConfigured("set TAG_LLM_BASE_URL".into()))?;
        let http = super::http::client_builder()
            .timeout(Duration::from_secs(config.request_timeout_secs))
            .connect_timeout(Duration::from_secs(config.request_timeout_secs.min(10)))
            .build()
            .map_err(|e| Error::Config(format!("cannot build HTTP client: {e}")))?;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(config.retry_base_ms))
            .with_max_delay(Duration::from_secs(20))
            .with_max_times(config.max_retries)
            .with_jitter();
        Ok(OpenAiClient {
            http,
            endpoint: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            model: config.model.clone(),
            api_key: config.api_key.clone().filter(|k| !k.is_empty()),
            permits: Arc::new(Semaphore::new(config.concurrency)),
            backoff,
            grammar_field: match config.sql_grammar {
                SqlGrammar::Grammar => Some("grammar"),
                SqlGrammar::GuidedGrammar => Some("guided_grammar"),
                SqlGrammar::Auto | SqlGrammar::Off => None,
            },
        })
    }

    fn body(&self, request: &ChatRequest, stream: bool) -> serde_json::Value {
        let mut body = json!({
            "model": self.model,
            "messages": request.messages,
            "temperature": 0.0,
            "max_tokens": request.max_tokens,
            "stream": stream,
        });
        if stream {
            body["stream_options"] = json!({ "include_usage": true });
        }
        if let Sampling::Random { temperature, seed } = request.sampling {
            body["temperature"] = json!(temperature);
            body["seed"] = json!(seed);
        }
        if let (Some(field), Some(Constraint::Grammar(grammar))) = (self.grammar_field, &request.constraint) {
            body[field] = json!(grammar);
        }
        body
    }

    /// Sends one request and returns the successful response; retries what is retryable.
    async fn send(&self, body: &serde_json::Value) -> Result<reqwest::Response> {
        let attempt = || async {
            let mut builder = self.http.post(&self.endpoint).json(body);
            if let Some(key) = &self.api_key {
                builder = builder.bearer_auth(key);
            }
            let response = builder.send().await.map_err(|e| AttemptError {
                retryable: e.is_connect() || e.is_timeout() || e.is_request(),
                message: describe_reqwest_error(&e),
            })?;
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            let text = response.text().await.unwrap_or_default();
            Err(AttemptError {
                retryable: status.as_u16() == 429 || status.is_server_error(),
                message: format!("HTTP {status}: {}", shorten(&text, 300)),
            })
        };
        attempt
            .retry(self.backoff)
            .when(|e: &AttemptError| e.retryable)
            .notify(|e: &AttemptError, delay: Duration| {
                tracing::warn!(error = %e.message, ?delay, "llm request failed, retrying");
            })
            .await
            .map_err(|e| Error::llm(format!("{} ({})", e.message, self.endpoint)))
    }
}

fn describe_reqwest_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "request timed out".into()
    } else if e.is_connect() {
        "cannot connect to the LLM endpoint".into()
    } else {
        e.to_string()
    }
}

#[derive(Deserialize)]
struct ChatResponse {
    choices: Vec<Choice>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: Option<WireMessage>,
    delta: Option<WireMessage>,
}

#[derive(Deserialize)]
struct WireMessage {
    content: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Deserialize)]
struct PromptTokensDetails {
    #[serde(default)]
    cached_tokens: u64,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Self {
        Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            cached_prompt_tokens: u.prompt_tokens_details.map(|d| d.cached_tokens).unwrap_or(0),
        }
    }
}

#[async_trait::async_trait]
impl LlmBackend for OpenAiClient {
    fn backend(&self) -> &str {
        "openai"
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn complete(&self, request: &ChatRequest) -> Result<Completion> {
        let _permit = self.permits.acquire().await.map_err(|_| Error::internal("llm semaphore closed"))?;
        let response = self.send(&self.body(request, false)).await?;
        let bytes = response.bytes().await.map_err(|e| Error::llm_from(describe_reqwest_error(&e), e))?;
        let parsed: ChatResponse = serde_json::from_slice(&bytes)
            .map_err(|e| Error::llm_from(format!("malformed response from the LLM endpoint: {e}"), e))?;
        let text = parsed
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message)
            .and_then(|m| m.content)
            .ok_or_else(|| Error::llm("the LLM response has no message content"))?;
        Ok(Completion { text, usage: parsed.usage.map(Usage::from).unwrap_or_default() })
    }

    async fn stream(&self, request: &ChatRequest) -> Result<BoxStream<'static, Result<StreamPiece>>> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::internal("llm semaphore closed"))?;
        let response = self.send(&self.body(request, true)).await?;
        let mut bytes = response.bytes_stream();
        let pieces = async_stream::stream! {
            // The permit lives as long as the stream is read.
            let _permit = permit;
            let mut buffer = String::new();
            while let Some(chunk) = bytes.next().await {
                let chunk = match chunk {
                    Ok(chunk) => chunk,
                    Err(e) => {
                        yield Err(Error::llm_from(format!("stream interrupted: {}", describe_reqwest_error(&e)), e));
                        return;
                    }
                };
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find('\n') {
                    let line: String = buffer.drain(..=end).collect();
                    let Some(data) = line.trim().strip_prefix("data:") else { continue };
                    let data = data.trim();
                    if data == "[DONE]" {
                        return;
                    }
                    match serde_json::from_str::<ChatResponse>(data) {
                        Ok(parsed) => {
                            if let Some(text) = parsed.choices.into_iter().next().and_then(|c| c.delta).and_then(|d| d.content) {
                                if !text.is_empty() {
                                    yield Ok(StreamPiece::Text(text));
                                }
                            }
                            if let Some(usage) = parsed.usage {
                                yield Ok(StreamPiece::Usage(usage.into()));
                            }
                        }
                        Err(e) => {
                            yield Err(Error::llm_from(format!("malformed stream event from the LLM endpoint: {e}"), e));
                            return;
                        }
                    }
                }
            }
        };
        Ok(pieces.boxed())
    }
}
