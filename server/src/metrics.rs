//! Prometheus counters for `/metrics`: requests by route and status, questions,
//! queries, errors by code, and LLM calls and tokens by stage.

use std::{collections::BTreeMap, fmt::Write, sync::Mutex};

use crate::llm::Usage;

#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(String, String), u64>>,
}

const HELP: &[(&str, &str)] = &[
    ("tag_http_requests_total", "HTTP requests by route and status"),
    ("tag_questions_total", "questions answered by /v1/ask and the CLI"),
    ("tag_sql_queries_total", "queries run through /v1/sql"),
    ("tag_errors_total", "failed requests by error code"),
    ("tag_llm_calls_total", "LLM calls by stage"),
    ("tag_llm_prompt_tokens_total", "prompt tokens by stage"),
    ("tag_llm_cached_prompt_tokens_total", "prompt tokens served from the LLM server's prefix cache, by stage"),
    ("tag_llm_completion_tokens_total", "completion tokens by stage"),
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
