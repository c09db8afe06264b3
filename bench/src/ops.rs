//! `tagbench bench-ops`: the same LLM operator query over the same rows, sent
//! (a) naively – one request per row in table order, fields in the template's
//! order, no deduplication, no cache (what LOTUS does) – and (b) by this engine –
//! dedup, persistent cache, GGR prefix-sharing order – against the same
//! OpenAI-compatible server: the cost-model server (default; a real prefix cache and
//! a service time per uncached token) or a real LLM (`--llm-base-url`). Reports wall
//! time, LLM calls, prompt and cached tokens, the prefix hit rate of the order the
//! server saw, and the ratios, measured side by side in one run.

use std::{path::Path, sync::Arc, time::Instant};

use anyhow::Context;
use futures::future::join_all;
use serde::Serialize;
use tag_server::{
    config::LlmConfig,
    execution::QueryOptions,
    llm::{embedded::Tokenizer, model_store, ChatRequest, Constraint, LlmBackend, Message, OpenAiClient, SharedLlm, Usage},
    operators::{prompts, template::placeholders},
    Config, DatasetSources, Engine,
};

use crate::cost_server::{CostModel, CostServer, ServerTotals};

/// One workload: an operator over a table.
struct Workload {
    name: &'static str,
    table: &'static str,
    operator: &'static str,
    template: &'static str,
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "movies filter",
        table: "movies_small",
        operator: "llm_filter",
        template: "The review {review_content} of the movie {movie_title} ({movie_info}) is positive",
    },
    Workload {
        name: "movies map",
        table: "movies_small",
        operator: "llm_map",
        template: "In five words, what does the review {review_content} say about {movie_title} ({movie_info})?",
    },
    Workload {
        name: "beer filter",
        table: "beer",
        operator: "llm_filter",
        template: "The reviewer {review_profileName} liked the beer {beer_name} ({beer_style}, id {beer_beerId}): \
overall {review_overall}, taste {review_taste}, palate {review_palate}, appearance {review_appearance}",
    },
];

#[derive(Debug, Serialize)]
pub struct OpsReport {
    pub server: String,
    pub cost_model: Option<CostModel>,
    pub concurrency: usize,
    pub workloads: Vec<WorkloadReport>,
}

#[derive(Debug, Serialize)]
pub struct WorkloadReport {
    pub name: String,
    pub rows: usize,
    pub naive: Run,
    pub engine: Run,
    /// The engine again, over the same rows: answers from the persistent cache.
    pub engine_rerun: Run,
    /// LOTUS's `sem_filter` on the same rows and server (filters; with `--lotus-python`).
    pub lotus: Option<Run>,
    /// naive wall time / engine wall time.
    pub speedup: f64,
    pub prompt_token_ratio: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct Run {
    pub seconds: f64,
    pub llm_calls: u64,
    pub prompt_tokens: u64,
    pub cached_tokens: u64,
    /// Percent, over the prompts in the order the server received them (cost
    /// model only).
    pub phr: Option<f64>,
    /// The engine's wall time with no LLM call in flight (DuckDB, ordering, prompt
    /// building, the cache): its overhead outside LLM calls.
    pub outside_llm_seconds: Option<f64>,
}

pub struct Options<'a> {
    pub data: &'a Path,
    pub movies_rows: usize,
    pub beer_rows: usize,
    pub concurrency: usize,
    pub llm_base_url: Option<String>,
    pub llm_model: String,
    pub llm_api_key: Option<String>,
    pub cost_model: CostModel,
    /// A Python interpreter with `lotus-ai` installed, to run LOTUS too.
    pub lotus_python: Option<std::path::PathBuf>,
    /// The engine lists an operator's whole input first (`query.collect_inputs`);
    /// `false` answers chunk by chunk, for comparison.
    pub collect_inputs: bool,
}

pub async fn run(options: Options<'_>) -> anyhow::Result<OpsReport> {
    let work = tempfile::tempdir()?;
    let dataset = work.path().join("llm_sql");
    std::fs::create_dir_all(&dataset)?;
    copy_csv(&options.data.join("movies_small.csv"), &dataset.join("movies_small.csv"), options.movies_rows)?;
    copy_csv(&options.data.join("beer.csv"), &dataset.join("beer.csv"), options.beer_rows)?;

    let (server, base_url, model) = match &options.llm_base_url {
        Some(url) => (None, url.clone(), options.llm_model.clone()),
        None => {
            let model_dir = model_store::model_dir(None, work.path());
            let gguf = model_store::ensure_default(&model_dir, model_store::DEFAULT_INDEX_URL, |_| {}).await?;
            let tokenizer = Arc::new(tokio::task::block_in_place(|| Tokenizer::load(&gguf))?);
            let server = CostServer::start(options.cost_model, tokenizer).await?;
            let url = server.base_url.clone();
            (Some(server), url, "cost-model".to_string())
        }
    };
    let mut llm_config = LlmConfig::default();
    llm_config.base_url = Some(base_url.clone());
    llm_config.model = model;
    llm_config.api_key = options.llm_api_key.clone();
    llm_config.concurrency = options.concurrency;
    llm_config.request_timeout_secs = 600;

    let mut reports = Vec::new();
    for workload in WORKLOADS {
        let rows = read_rows(&dataset.join(format!("{}.csv", workload.table)), workload.template)?;
        if let Some(server) = &server {
            server.reset();
        }
        let naive = naive_run(&llm_config, workload, &rows).await?;
        let naive = with_server(naive, server.as_ref());

        // A fresh data folder: an empty persistent cache for the first engine run.
        let state = tempfile::tempdir()?;
        if let Some(server) = &server {
            server.reset();
        }
        let engine = with_server(engine_run(&llm_config, &dataset, state.path(), workload, options.collect_inputs).await?, server.as_ref());
        if let Some(server) = &server {
            server.reset();
        }
        let engine_rerun = with_server(engine_run(&llm_config, &dataset, state.path(), workload, options.collect_inputs).await?, server.as_ref());
        let lotus = match (&options.lotus_python, workload.operator) {
            (Some(python), "llm_filter") => {
                if let Some(server) = &server {
                    server.reset();
                }
                let csv = dataset.join(format!("{}.csv", workload.table));
                let run = lotus_run(python, &csv, workload.template, &base_url, &llm_config.model).await?;
                Some(with_server(run, server.as_ref()))
            }
            _ => None,
        };
        reports.push(WorkloadReport {
            name: workload.name.to_string(),
            rows: rows.len(),
            speedup: naive.seconds / engine.seconds.max(1e-9),
            prompt_token_ratio: naive.prompt_tokens as f64 / engine.prompt_tokens.max(1) as f64,
            naive,
            engine,
            engine_rerun,
            lotus,
        });
    }
    Ok(OpsReport {
        server: if server.is_some() { "cost model".into() } else { base_url },
        cost_model: server.is_some().then_some(options.cost_model),
        concurrency: options.concurrency,
        workloads: reports,
    })
}

/// The server's own count of what it served, when it is the cost model.
fn with_server(mut run: Run, server: Option<&CostServer>) -> Run {
    if let Some(server) = server {
        let totals: ServerTotals = server.totals();
        run.phr = Some(totals.phr());
        run.llm_calls = totals.requests;
        run.cached_tokens = totals.cached_tokens;
        run.prompt_tokens = totals.prompt_tokens;
    }
    run
}

/// Copies the first `limit` rows (0 = all) with column names usable in templates
/// (`review/taste` becomes `review_taste`).
pub(crate) fn copy_csv(from: &Path, to: &Path, limit: usize) -> anyhow::Result<()> {
    let mut reader = csv::Reader::from_path(from).with_context(|| format!("cannot read {}", from.display()))?;
    let mut writer = csv::Writer::from_path(to)?;
    let header: Vec<String> = reader.headers()?.iter().map(|h| h.replace('/', "_")).collect();
    writer.write_record(&header)?;
    for (i, record) in reader.records().enumerate() {
        if limit > 0 && i >= limit {
            break;
        }
        writer.write_record(&record?)?;
    }
    writer.flush()?;
    Ok(())
}

/// The template's fields of every row, in table order.
fn read_rows(csv: &Path, template: &str) -> anyhow::Result<Vec<Vec<Option<String>>>> {
    let mut reader = csv::Reader::from_path(csv)?;
    let header: Vec<String> = reader.headers()?.iter().map(str::to_string).collect();
    let indices: Vec<usize> = placeholders(template)
        .iter()
        .map(|name| header.iter().position(|h| h == name).with_context(|| format!("no column {name}")))
        .collect::<anyhow::Result<_>>()?;
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record?;
        // DuckDB reads an empty CSV field as NULL.
        rows.push(indices.iter().map(|&i| record.get(i).filter(|v| !v.is_empty()).map(str::to_string)).collect());
    }
    Ok(rows)
}

/// One request per row, in table order, the template's field order, no dedup and
/// no cache, with the same concurrency limit as the engine.
async fn naive_run(config: &LlmConfig, workload: &Workload, rows: &[Vec<Option<String>>]) -> anyhow::Result<Run> {
    let client = OpenAiClient::new(config)?;
    let names = placeholders(workload.template);
    let requests: Vec<ChatRequest> = rows
        .iter()
        .map(|fields| {
            let data = prompts::data_block(&names, fields);
            let (prompt, constraint) = match workload.operator {
                "llm_filter" => (prompts::filter(workload.template, &data), Some(Constraint::YesNo)),
                _ => (prompts::map(workload.template, &data), None),
            };
            let mut request = ChatRequest::new(vec![Message::system(prompts::SYSTEM), Message::user(prompt)], 256);
            request.constraint = constraint;
            request
        })
        .collect();
    let started = Instant::now();
    let results = join_all(requests.iter().map(|r| client.complete(r))).await;
    let seconds = started.elapsed().as_secs_f64();
    let mut usage = Usage::default();
    for result in results {
        usage.add(result?.usage);
    }
    Ok(Run {
        seconds,
        llm_calls: requests.len() as u64,
        prompt_tokens: usage.prompt_tokens,
        cached_tokens: usage.cached_prompt_tokens,
        ..Default::default()
    })
}

/// LOTUS's `sem_filter` (bench/lotus/sem_filter.py) in a child process.
async fn lotus_run(python: &Path, csv: &Path, template: &str, base_url: &str, model: &str) -> anyhow::Result<Run> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("lotus/sem_filter.py");
    let output = tokio::process::Command::new(python)
        .arg(&script)
        .args([csv.to_string_lossy().as_ref(), template, base_url, model])
        // No network fetch of LiteLLM's price list.
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .output()
        .await
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !output.status.success() {
        anyhow::bail!("LOTUS failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let line = String::from_utf8_lossy(&output.stdout);
    let result: serde_json::Value = serde_json::from_str(line.trim().lines().last().unwrap_or_default())
        .with_context(|| format!("unexpected LOTUS output: {line}"))?;
    Ok(Run { seconds: result["seconds"].as_f64().unwrap_or(f64::NAN), llm_calls: 0, ..Default::default() })
}

/// The operator query through the engine (DuckDB, the operator UDF, the scheduler).
async fn engine_run(config: &LlmConfig, dataset: &Path, state: &Path, workload: &Workload, collect_inputs: bool) -> anyhow::Result<Run> {
    let mut engine_config = Config::default();
    engine_config.query.collect_inputs = collect_inputs;
    engine_config.data_dir = state.to_path_buf();
    engine_config.bundled_datasets = false;
    engine_config.llm = config.clone();
    engine_config.query.timeout_secs = 24 * 3600;
    let llm: SharedLlm = Arc::new(OpenAiClient::new(config)?);
    let sources = DatasetSources { paths: vec![dataset.to_path_buf()], ..Default::default() };
    let engine = tokio::task::block_in_place(|| Engine::with_llm(engine_config, &sources, Some(llm.clone())))?;
    let data = engine.catalog.get("llm_sql")?;
    let sql = match workload.operator {
        "llm_filter" => format!("SELECT count(*) FROM {} WHERE llm_filter('{}')", workload.table, workload.template),
        _ => format!("SELECT llm_map('{}') FROM {}", workload.template, workload.table),
    };
    let started = Instant::now();
    let options = QueryOptions { max_rows: 1, llm: Some(llm), progress: None, token_budget: None };
    let (_, _, stats) = engine.executor.run_table(&data, &sql, options).await?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(Run {
        seconds,
        llm_calls: stats.llm_calls,
        prompt_tokens: stats.usage.prompt_tokens,
        cached_tokens: stats.usage.cached_prompt_tokens,
        phr: None,
        outside_llm_seconds: Some((seconds - stats.llm_wall_ms as f64 / 1e3).max(0.0)),
    })
}

impl OpsReport {
    pub fn table(&self) -> String {
        let mut out = format!("server: {}; concurrency {}\n", self.server, self.concurrency);
        if let Some(model) = &self.cost_model {
            out.push_str(&format!(
                "cost model: {} us/uncached prompt token (prefills queue one at a time), {} us/completion token \
per sequence, {} us/request, {} sequences decoding at once, {}-token blocks, {} blocks of cache\n",
                model.prefill_us_per_token, model.decode_us_per_token, model.overhead_us, model.slots, model.block_tokens,
                model.capacity_blocks
            ));
        }
        for w in &self.workloads {
            out.push_str(&format!("\n{} ({} rows)\n", w.name, w.rows));
            out.push_str("run            seconds   calls  prompt tok  cached tok    PHR  outside LLM calls\n");
            let mut runs = vec![("naive", &w.naive), ("engine", &w.engine), ("engine rerun", &w.engine_rerun)];
            if let Some(lotus) = &w.lotus {
                runs.push(("LOTUS", lotus));
            }
            for (name, run) in runs {
                let outside = match run.outside_llm_seconds {
                    Some(outside) if run.llm_calls > 0 => format!("{outside:.2} s ({:.1}%)", 100.0 * outside / run.seconds.max(1e-9)),
                    _ => "-".into(),
                };
                out.push_str(&format!(
                    "{name:<13} {:>8.2} {:>7} {:>11} {:>11} {:>6}  {outside}\n",
                    run.seconds,
                    run.llm_calls,
                    run.prompt_tokens,
                    run.cached_tokens,
                    run.phr.map(|p| format!("{p:.1}%")).unwrap_or_else(|| "-".into())
                ));
            }
            out.push_str(&format!("speed-up {:.2}x, prompt tokens {:.2}x fewer\n", w.speedup, w.prompt_token_ratio));
        }
        out
    }
}
