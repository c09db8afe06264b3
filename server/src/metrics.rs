//! Prometheus counters for `/metrics` (the `prometheus-client` crate, Prometheus text
//! format 0.0.4): requests by route and status, questions, queries, errors by code,
//! feedback by rating, LLM calls and tokens by stage, and the operators' accounting
//! (rows, distinct prompts, memo and cache hits, prefix sharing). Every counter is a
//! field recorded through a typed method, so a misspelt name cannot vanish, and the
//! crate escapes label values.

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder},
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

use crate::llm::Usage;
use tag_types::{ExecutionStats, Rating};

pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The stage an LLM call belongs to.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum LlmStage {
    Synthesis,
    Operators,
    Generation,
}

impl EncodeLabelValue for LlmStage {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        let name = match self {
            LlmStage::Synthesis => "synthesis",
            LlmStage::Operators => "operators",
            LlmStage::Generation => "generation",
        };
        EncodeLabelValue::encode(&name, encoder)
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RatingLabels {
    rating: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: LlmStage,
}

pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    questions: Counter,
    sql_queries: Counter,
    errors: Family<CodeLabels, Counter>,
    feedback: Family<RatingLabels, Counter>,
    llm_calls: Family<StageLabels, Counter>,
    llm_prompt_tokens: Family<StageLabels, Counter>,
    llm_cached_prompt_tokens: Family<StageLabels, Counter>,
    llm_completion_tokens: Family<StageLabels, Counter>,
    operator_rows: Counter,
    operator_distinct_prompts: Counter,
    operator_memo_hits: Counter,
    operator_cache_hits: Counter,
    operator_prompt_chars: Counter,
    operator_shared_prefix_chars: Counter,
    operator_llm_wall_ms: Counter,
    query_ms: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        // Registered as `tag_<name>`; the counter's samples are `tag_<name>_total`.
        macro_rules! register {
            ($name:literal, $help:literal, $metric:expr) => {{
                let metric = $metric;
                registry.register(concat!("tag_", $name), $help, metric.clone());
                metric
            }};
        }
        Metrics {
            http_requests: register!("http_requests", "HTTP requests by route and status", Family::default()),
            questions: register!("questions", "questions answered by /v1/ask and the CLI", Counter::default()),
            sql_queries: register!("sql_queries", "queries run through /v1/sql", Counter::default()),
            errors: register!("errors", "failed requests by error code", Family::default()),
            feedback: register!("feedback", "thumbs up/down given to answers, by rating", Family::default()),
            llm_calls: register!("llm_calls", "LLM calls by stage", Family::default()),
            llm_prompt_tokens: register!("llm_prompt_tokens", "prompt tokens by stage", Family::default()),
            llm_cached_prompt_tokens: register!(
                "llm_cached_prompt_tokens",
                "prompt tokens served from the LLM server's prefix cache, by stage",
                Family::default()
            ),
            llm_completion_tokens: register!("llm_completion_tokens", "completion tokens by stage", Family::default()),
            operator_rows: register!("operator_rows", "rows (or groups) LLM operators were evaluated on", Counter::default()),
            operator_distinct_prompts: register!(
                "operator_distinct_prompts",
                "distinct operator prompts within their queries",
                Counter::default()
            ),
            operator_memo_hits: register!(
                "operator_memo_hits",
                "operator prompts answered by an identical prompt of the same query",
                Counter::default()
            ),
            operator_cache_hits: register!(
                "operator_cache_hits",
                "operator prompts answered from the persistent response cache",
                Counter::default()
            ),
            operator_prompt_chars: register!(
                "operator_prompt_chars",
                "characters of operator prompts, in sending order",
                Counter::default()
            ),
            operator_shared_prefix_chars: register!(
                "operator_shared_prefix_chars",
                "of those, characters shared with an earlier prompt (prefix hit rate = shared / all)",
                Counter::default()
            ),
            operator_llm_wall_ms: register!(
                "operator_llm_wall_ms",
                "wall time with at least one operator LLM call in flight, milliseconds",
                Counter::default()
            ),
            query_ms: register!("query_ms", "wall time of queries with LLM operators, milliseconds", Counter::default()),
            registry,
        }
    }
}

impl Metrics {
    pub fn http_request(&self, method: &str, route: &str, status: u16) {
        self.http_requests.get_or_create(&HttpLabels { method: method.to_string(), route: route.to_string(), status }).inc();
    }

    pub fn error(&self, code: &str) {
        self.errors.get_or_create(&CodeLabels { code: code.to_string() }).inc();
    }

    pub fn question(&self) {
        self.questions.inc();
    }

    pub fn sql_query(&self) {
        self.sql_queries.inc();
    }

    pub fn feedback(&self, rating: Rating) {
        self.feedback.get_or_create(&RatingLabels { rating: rating.as_str().to_string() }).inc();
    }

    pub fn llm(&self, stage: LlmStage, calls: u64, usage: Usage) {
        let labels = StageLabels { stage };
        self.llm_calls.get_or_create(&labels).inc_by(calls);
        self.llm_prompt_tokens.get_or_create(&labels).inc_by(usage.prompt_tokens);
        self.llm_cached_prompt_tokens.get_or_create(&labels).inc_by(usage.cached_prompt_tokens);
        self.llm_completion_tokens.get_or_create(&labels).inc_by(usage.completion_tokens);
    }

    /// A query's operator accounting (and its LLM calls, as stage `operators`).
    pub fn execution(&self, stats: &ExecutionStats) {
        self.llm(LlmStage::Operators, stats.llm_calls, stats.usage);
        if stats.operators.is_empty() {
            return;
        }
        self.operator_rows.inc_by(stats.operator_rows);
        self.operator_distinct_prompts.inc_by(stats.distinct_prompts);
        self.operator_memo_hits.inc_by(stats.memo_hits);
        self.operator_cache_hits.inc_by(stats.cache_hits);
        self.operator_prompt_chars.inc_by(stats.operators.iter().map(|o| o.prompt_chars).sum());
        self.operator_shared_prefix_chars.inc_by(stats.operators.iter().map(|o| o.shared_prefix_chars).sum());
        self.operator_llm_wall_ms.inc_by(stats.llm_wall_ms);
        self.query_ms.inc_by(stats.elapsed_ms);
    }

    /// The Prometheus text exposition format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_their_labels_escaped() {
        let metrics = Metrics::default();
        metrics.question();
        metrics.http_request("GET", "/v1/\"odd\"\nroute", 404);
        metrics.llm(LlmStage::Synthesis, 2, Usage { prompt_tokens: 10, completion_tokens: 3, cached_prompt_tokens: 4 });
        let text = metrics.render();
        assert!(text.contains("tag_questions_total 1\n"), "{text}");
        assert!(text.contains("tag_sql_queries_total 0\n"), "{text}");
        assert!(text.contains(r#"tag_http_requests_total{method="GET",route="/v1/\"odd\"\nroute",status="404"} 1"#), "{text}");
        assert!(text.contains(r#"tag_llm_calls_total{stage="synthesis"} 2"#), "{text}");
        assert!(text.contains(r#"tag_llm_cached_prompt_tokens_total{stage="synthesis"} 4"#), "{text}");
    }
}
