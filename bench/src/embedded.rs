//! `tagbench embedded`: what the embedded llama.cpp engine costs and saves, measured
//! through the product's own query path (DuckDB, the `llm_filter` operator, the
//! embedded backend):
//!
//! - prefill and decode tokens per second (one long prompt; one long answer);
//! - the same `llm_filter` over the same reviews, sent in table order with the
//!   template's field order (`query.reorder = false`) and in the engine's
//!   prefix-sharing (GGR) order: prompt tokens evaluated, tokens reused from the KV
//!   cache, wall time and the ratio;
//! - the process's peak resident memory with the model loaded.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use anyhow::Context;
use serde::Serialize;
use tag_server::{
    config::{BackendChoice, LlmConfig},
    execution::QueryOptions,
    llm::{
        embedded::{EmbeddedLlm, EngineStats},
        model_store, ChatRequest, LlmBackend, Message, SharedLlm,
    },
    Config, DatasetSources, Engine,
};

#[derive(Debug, Serialize)]
pub struct Report {
    pub model: String,
    pub threads: usize,
    /// Prompt tokens per evaluation step (`llm.batch_size`).
    pub batch_size: u32,
    pub prefill_tokens_per_second: f64,
    pub decode_tokens_per_second: f64,
    pub rows: usize,
    pub table_order: FilterRun,
    pub prefix_order: FilterRun,
    /// Wall time in table order divided by wall time in prefix-sharing order.
    pub speedup: f64,
    pub peak_rss_mib: f64,
}

#[derive(Debug, Serialize)]
pub struct FilterRun {
    pub seconds: f64,
    pub llm_calls: u64,
    pub prompt_tokens: u64,
    pub reused_tokens: u64,
    pub evaluated_prompt_tokens: u64,
    pub rows_passing: i64,
}

impl Report {
    pub fn table(&self) -> String {
        let mut out = format!(
            "model {} on {} threads, batch size {}\nprefill {:.0} tokens/s, decode {:.1} tokens/s\n\n",
            self.model, self.threads, self.batch_size, self.prefill_tokens_per_second, self.decode_tokens_per_second
        );
        out.push_str(&format!("llm_filter over {} reviews\n", self.rows));
        out.push_str("order          seconds  calls  prompt tok  reused tok  evaluated tok  passing\n");
        for (name, run) in [("table", &self.table_order), ("GGR", &self.prefix_order)] {
            out.push_str(&format!(
                "{name:<14} {:>7.1} {:>6} {:>11} {:>11} {:>14} {:>8}\n",
                run.seconds, run.llm_calls, run.prompt_tokens, run.reused_tokens, run.evaluated_prompt_tokens, run.rows_passing
            ));
        }
        out.push_str(&format!(
            "speed-up {:.2}x; evaluated prompt tokens {:.2}x fewer\npeak resident memory {:.0} MiB\n",
            self.speedup,
            self.table_order.evaluated_prompt_tokens as f64 / self.prefix_order.evaluated_prompt_tokens.max(1) as f64,
            self.peak_rss_mib
        ));
        out
    }
}

/// Written naturally, review first: the engine's GGR moves the shared movie fields
/// to the front.
const TEMPLATE: &str = "The review {review_content} of the movie {movie_title} ({movie_info}) is positive";

pub async fn run(csv: &Path, rows: usize, model: Option<PathBuf>, threads: usize, batch_size: u32) -> anyhow::Result<Report> {
    let csv = csv.canonicalize().with_context(|| format!("cannot find {}", csv.display()))?;
    let data = tempfile::tempdir()?;
    let model = match model {
        Some(path) => path,
        None => {
            let dir = model_store::model_dir(None, data.path());
            model_store::ensure_default(&dir, model_store::DEFAULT_INDEX_URL, |_| {}).await?
        }
    };
    let settings = |slots| LlmConfig {
        model_path: Some(model.clone()),
        context_size: 8192,
        threads,
        batch_size,
        slots,
        ..LlmConfig::default()
    };
    let (prefill, decode) = throughput(EmbeddedLlm::new(settings(1), data.path().to_path_buf())).await?;

    let dataset_dir = data.path().join("llm_sql");
    std::fs::create_dir_all(&dataset_dir)?;
    std::fs::copy(&csv, dataset_dir.join("movies_small.csv"))?;
    let sql = format!(
        "SELECT count(*) FROM (SELECT * FROM movies_small WHERE review_content <> '' LIMIT {rows}) \
         WHERE llm_filter('{TEMPLATE}')"
    );
    // A fresh engine (empty KV cache) for each order, so neither warms the other.
    let table_order = filter_run(&dataset_dir, &data.path().join("a"), settings(2), &sql, false).await?;
    let prefix_order = filter_run(&dataset_dir, &data.path().join("b"), settings(2), &sql, true).await?;
    Ok(Report {
        model: model.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        batch_size,
        threads: if threads == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) } else { threads },
        prefill_tokens_per_second: prefill,
        decode_tokens_per_second: decode,
        rows,
        speedup: table_order.seconds / prefix_order.seconds,
        table_order,
        prefix_order,
        peak_rss_mib: peak_rss_mib(),
    })
}

/// Prefill from one long prompt, decode from one long unconstrained answer; both
/// from the engine's own timings.
async fn throughput(llm: EmbeddedLlm) -> anyhow::Result<(f64, f64)> {
    let long = "The quick brown fox jumps over the lazy dog while the farmer counts his sheep. ".repeat(40);
    let request = ChatRequest::new(vec![Message::user(format!("{long}\nSummarise the text above."))], 1);
    llm.complete(&request).await?;
    let after_prefill: EngineStats = llm.stats();
    let request = ChatRequest::new(vec![Message::user("Write a long story about a lighthouse keeper.".to_string())], 128);
    llm.complete(&request).await?;
    let after = llm.stats();
    let prefill = after_prefill.evaluated_prompt_tokens as f64 / after_prefill.prefill_seconds.max(1e-9);
    let decode = (after.decode_tokens - after_prefill.decode_tokens) as f64
        / (after.decode_seconds - after_prefill.decode_seconds).max(1e-9);
    Ok((prefill, decode))
}

async fn filter_run(
    dataset_dir: &Path,
    data_dir: &Path,
    settings: LlmConfig,
    sql: &str,
    reorder: bool,
) -> anyhow::Result<FilterRun> {
    let llm = Arc::new(EmbeddedLlm::new(settings, data_dir.to_path_buf()));
    llm.wait_ready().await?;
    let mut config = Config::default();
    config.data_dir = data_dir.to_path_buf();
    config.bundled_datasets = false;
    config.query.reorder = reorder;
    config.llm.backend = BackendChoice::Embedded;
    config.query.timeout_secs = 24 * 3600;
    let sources = DatasetSources { paths: vec![dataset_dir.to_path_buf()], ..Default::default() };
    let shared: SharedLlm = llm.clone();
    let engine = tokio::task::block_in_place(|| Engine::with_llm(config, &sources, Some(shared.clone())))?;
    let dataset = engine.catalog.get("llm_sql")?;
    let before = llm.stats();
    let started = Instant::now();
    let options = QueryOptions { max_rows: 10, llm: Some(shared), progress: None, token_budget: None };
    let (_, table, stats) = engine.executor.run_table(&dataset, sql, options).await?;
    let seconds = started.elapsed().as_secs_f64();
    let after = llm.stats();
    let rows_passing = table.rows.first().and_then(|r| r.first()).and_then(|v| v.as_i64()).unwrap_or(-1);
    Ok(FilterRun {
        seconds,
        llm_calls: stats.llm_calls,
        prompt_tokens: after.prompt_tokens - before.prompt_tokens,
        reused_tokens: after.reused_tokens - before.reused_tokens,
        evaluated_prompt_tokens: after.evaluated_prompt_tokens - before.evaluated_prompt_tokens,
        rows_passing,
    })
}

/// Peak resident set size of this process (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}
