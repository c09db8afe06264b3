//! Prometheus counters for `/metrics`: requests by route and status, questions,
//! queries, errors by code, LLM calls and tokens by stage, and the operators'
//! accounting (rows, distinct prompts, memo and cache hits, prefix sharing).

use std::{collections::BTreeMap, fmt::Write, sync::Mutex};

use crate::{execution::ExecutionStats, llm::Usage};

#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(String, String), u64>>,
}

const HELP: &[(&str, &str)] = &[
    ("tag_http_requests_total", "HTTP requests by route and status"),
    ("tag_questions_total", "questions answered by /v1/ask and the CLI"),
    ("tag_sql_queries_total", "queries run through /v1/sql"),
    ("tag_errors_total", "failed requests by error code"),
    ("tag_feedback_total", "thumbs up/down given to answers, by rating"),
    ("tag_llm_calls_total", "LLM calls by stage"),
    ("tag_llm_prompt_tokens_total", "prompt tokens by stage"),
    ("tag_llm_cached_prompt_tokens_total", "prompt tokens served from the LLM server's prefix cache, by stage"),
    ("tag_llm_completion_tokens_total", "completion tokens by stage"),
    ("tag_operator_rows_total", "rows (or groups) LLM operators were evaluated on"),
    ("tag_operator_distinct_prompts_total", "distinct operator prompts within their queries"),
    ("tag_operator_memo_hits_total", "operator prompts answered by an identical prompt of the same query"),
    ("tag_operator_cache_hits_total", "operator prompts answered from the persistent response cache"),
    ("tag_operator_prompt_chars_total", "characters of operator prompts, in sending order"),
    ("tag_operator_shared_prefix_chars_total", "of those, characters shared with an earlier prompt (prefix hit rate = shared / all)"),
    ("tag_operator_llm_wall_ms_total", "wall time with at least one operator LLM call in flight, milliseconds"),
    ("tag_query_ms_total", "wall time of queries with LLM operators, milliseconds"),
];

impl Metrics {
    pub fn add(&self, name: &str, labels: &str, value: u64) {
        if let Ok(mut counters) = self.counters.lock() {
            *counters.entry((name.to_string(), labels.to_string())).or_default() += value;
        }
    }

    pub fn add_llm(&self, stage: &str, calls: u64, usage: Usage) {
        let labels = format!("stage=\"{stage}\"");
        self.add("tag_llm_calls_total", &labels, calls);
        self.add("tag_llm_prompt_tokens_total", &labels, usage.prompt_tokens);
        self.add("tag_llm_cached_prompt_tokens_total", &labels, usage.cached_prompt_tokens);
        self.add("tag_llm_completion_tokens_total", &labels, usage.completion_tokens);
    }

    /// A query's operator accounting (and its LLM calls, as stage `operators`).
    pub fn add_execution(&self, stats: &ExecutionStats) {
        self.add_llm("operators", stats.llm_calls, stats.usage);
        if stats.operators.is_empty() {
            return;
        }
        self.add("tag_operator_rows_total", "", stats.operator_rows);
        self.add("tag_operator_distinct_prompts_total", "", stats.distinct_prompts);
        self.add("tag_operator_memo_hits_total", "", stats.memo_hits);
        self.add("tag_operator_cache_hits_total", "", stats.cache_hits);
        self.add("tag_operator_prompt_chars_total", "", stats.operators.iter().map(|o| o.prompt_chars).sum());
        self.add("tag_operator_shared_prefix_chars_total", "", stats.operators.iter().map(|o| o.shared_prefix_chars).sum());
        self.add("tag_operator_llm_wall_ms_total", "", stats.llm_wall_ms);
        self.add("tag_query_ms_total", "", stats.elapsed_ms);
    }

    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let counters = self.counters.lock().map(|c| c.clone()).unwrap_or_default();
        let mut text = String::new();
        for (name, help) in HELP {
            let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} counter");
            let mut any = false;
            for ((metric, labels), value) in &counters {
                if metric == name {
                    any = true;
                    if labels.is_empty() {
                        let _ = writeln!(text, "{name} {value}");
                    } else {
                        let _ = writeln!(text, "{name}{{{labels}}} {value}");
                    }
                }
            }
            if !any && ["tag_questions_total", "tag_sql_queries_total"].contains(name) {
                let _ = writeln!(text, "{name} 0");
            }
        }
        text
    }
}
