//! `tagbench`: benchmarks of tag-server. Run `tagbench --help`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "tagbench", about = "Benchmarks of tag-server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The same operator queries (a filter and a map over movie reviews, a filter
    /// over beer reviews) sent naively (one request per row, table order, no dedup,
    /// no cache) and by the engine, against the cost-model server or a real LLM.
    BenchOps {
        /// The folder with movies_small.csv and beer.csv.
        #[arg(long, default_value = "../shared/data/llm_sql")]
        data: PathBuf,
        /// Rows of movies_small.csv to use (0 = all 1,019).
        #[arg(long, default_value_t = 0)]
        movies_rows: usize,
        /// Rows of beer.csv to use (0 = all 28,479).
        #[arg(long, default_value_t = 4000)]
        beer_rows: usize,
        /// Requests in flight, for both.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// A real OpenAI-compatible server instead of the cost model.
        #[arg(long, env = "TAG_LLM_BASE_URL")]
        llm_base_url: Option<String>,
        #[arg(long, env = "TAG_LLM_MODEL", default_value = "gpt-4o-mini")]
        llm_model: String,
        #[arg(long, env = "TAG_LLM_API_KEY", hide_env_values = true)]
        llm_api_key: Option<String>,
        /// Cost model: accelerator microseconds per uncached prompt token.
        #[arg(long, default_value_t = 100)]
        prefill_us: u64,
        /// Cost model: microseconds per completion token.
        #[arg(long, default_value_t = 20_000)]
        decode_us: u64,
        /// Cost model: sequences decoding at once (prefills queue one at a time).
        #[arg(long, default_value_t = 8)]
        slots: usize,
        /// Cost model: prefix-cache capacity in 16-token blocks.
        #[arg(long, default_value_t = 4096)]
        cache_blocks: usize,
        /// A Python interpreter with `lotus-ai` installed: also run LOTUS's
        /// sem_filter on the filter workloads.
        #[arg(long)]
        lotus_python: Option<PathBuf>,
        /// The engine answers operator inputs chunk by chunk as DuckDB hands them
        /// over, instead of listing the whole input first (query.collect_inputs).
        #[arg(long)]
        chunked: bool,
        #[arg(long)]
        json: bool,
    },
    /// Database sources on a real PostgreSQL (Debian's, started in a temporary
    /// folder): schema linking on a 300-table schema (gold-table recall, prompt
    /// tokens), pushdown over a million rows, and the start-up time.
    Warehouse {
        /// Schema tokens the synthesis prompt may carry (query.schema_tokens).
        #[arg(long, default_value_t = 6000)]
        budget: usize,
        #[arg(long)]
        json: bool,
    },
    /// The cost estimate made before a query runs against what it then spends, over
    /// the demo datasets and the LLM-SQL benchmark tables (cost-model server).
    Estimate {
        /// The folder with movies_small.csv and beer.csv.
        #[arg(long, default_value = "../shared/data/llm_sql")]
        data: PathBuf,
        /// Rows of beer.csv to use.
        #[arg(long, default_value_t = 2000)]
        beer_rows: usize,
        #[arg(long)]
        json: bool,
    },
    /// A 100,000-row result over the PostgreSQL wire protocol (text and binary
    /// rows) against /v1/sql with Arrow, side by side, and the wire connection's
    /// set-up time.
    Wire {
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        #[arg(long)]
        json: bool,
    },
    /// Requests per second on /v1/sql with and without a bearer token, side by side.
    Auth {
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[arg(long, default_value_t = 6)]
        rounds: usize,
        /// Seconds per round.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        #[arg(long)]
        json: bool,
    },
    /// Prefix hit rate of a CSV table in its original order and in the engine's
    /// GGR order (the ADRS LLM-SQL benchmark's metric), and the solver's time.
    Reorder {
        #[arg(long)]
        csv: PathBuf,
        /// Columns merged into one (values joined with no separator, placed last),
        /// e.g. `--merge review/overall,review/taste`. Repeatable.
        #[arg(long)]
        merge: Vec<String>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Write the rows in the chosen order, each row's cells in its chosen field
        /// order, as CSV (no header: field orders differ by row).
        #[arg(long)]
        out: Option<PathBuf>,
        /// GGR's early stop: column levels recursed into before the fixed order
        /// (default: the engine's).
        #[arg(long)]
        max_depth: Option<usize>,
        /// GGR's early stop: the smallest group hit count worth recursing into
        /// (default: the engine's).
        #[arg(long)]
        min_hit_count: Option<u64>,
        /// GGR's early stop: subtables with fewer rows take the fixed order
        /// (default: the engine's).
        #[arg(long)]
        min_rows: Option<usize>,
        /// GGR alone: do not also try the best single field order for all rows.
        #[arg(long)]
        no_fixed_order: bool,
    },
    /// The embedded llama.cpp engine: prefill and decode tokens/s, an llm_filter over
    /// reviews in table order vs prefix-sharing order, and peak memory.
    Embedded {
        /// The reviews table (ADRS LLM-SQL benchmark's movies_small.csv).
        #[arg(long, default_value = "../shared/data/llm_sql/movies_small.csv")]
        csv: PathBuf,
        /// Rows with a review to filter (in table order).
        #[arg(long, default_value_t = 200)]
        rows: usize,
        /// A GGUF model; default: the server's default model (downloaded once).
        #[arg(long)]
        model: Option<PathBuf>,
        /// CPU threads (0 = all cores).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Prompt tokens per evaluation step (the server's llm.batch_size).
        #[arg(long, default_value_t = 32)]
        batch_size: u32,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// TAG-Bench data: the official query file and the five BIRD dev databases
    /// (downloaded, or local copies), converted into DuckDB files in --db-dir.
    Fetch {
        #[arg(long, default_value = "tagbench-data")]
        db_dir: PathBuf,
        /// A local tag_queries.csv instead of downloading it.
        #[arg(long)]
        queries: Option<PathBuf>,
        /// A local BIRD dev_databases folder (<db>/<db>.sqlite) instead of downloading.
        #[arg(long)]
        bird_dir: Option<PathBuf>,
        /// The BIRD schema files with column descriptions (<db>.sql).
        #[arg(long, default_value = "../shared/data/tagbench/bird_schemas")]
        schemas: PathBuf,
    },
    /// Small databases with the five BIRD schemas and made-up rows (for trying the
    /// harness without the real data).
    Fixtures {
        #[arg(long, default_value = "../shared/data/tagbench/bird_schemas")]
        schemas: PathBuf,
        #[arg(long, default_value = "tagbench-fixtures")]
        db_dir: PathBuf,
        #[arg(long, default_value_t = 5)]
        rows: usize,
    },
    /// Runs TAG-Bench methods with the LLM the server is configured with (TAG_LLM_*)
    /// and writes <out>/<method>.json and <out>/report.md. An interrupted run
    /// resumes where it stopped.
    Run {
        #[arg(long, default_value = "tagbench-data/tag_queries.csv")]
        queries: PathBuf,
        #[arg(long, default_value = "tagbench-data")]
        db_dir: PathBuf,
        #[arg(long, default_value = "tagbench-runs/latest")]
        out: PathBuf,
        /// Methods to run (repeatable or comma-separated); default: all.
        #[arg(long, value_delimiter = ',')]
        method: Vec<tag_bench::tagbench::methods::Method>,
        /// Only these query IDs, e.g. --only 0,1,3.
        #[arg(long, value_delimiter = ',')]
        only: Option<Vec<u32>>,
        /// Queries in flight at once.
        #[arg(long, default_value_t = 1)]
        parallel: usize,
        /// Start over instead of resuming.
        #[arg(long)]
        fresh: bool,
        /// A plans file instead of the project's (bench/tagbench/plans.toml).
        #[arg(long)]
        plans: Option<PathBuf>,
        /// RAG: rows embedded per table.
        #[arg(long, default_value_t = 2000)]
        rag_rows_per_table: usize,
        #[arg(long, default_value_t = 10)]
        rag_top_k: usize,
        #[arg(long, default_value = "text-embedding-3-small", env = "TAG_EMBEDDING_MODEL")]
        embedding_model: String,
    },
    /// Prints the Markdown tables of finished runs (<out>/<method>.json files).
    Report { runs: Vec<PathBuf> },
    /// Execution accuracy of the SQL the server writes for the demo datasets'
    /// question set, one row per step of the answer-quality work (baseline, +
    /// verified examples and terms, + grammar, + execution-guided candidates), with
    /// the LLM the server is configured with (TAG_LLM_*; default the embedded
    /// model), and the answers' old settings against the new.
    Quality {
        #[arg(long, default_value = "bench/quality/questions.toml")]
        questions: PathBuf,
        /// Steps to run (default all), e.g. `--steps baseline,grammar`.
        #[arg(long, value_delimiter = ',')]
        steps: Vec<tag_bench::quality::Step>,
        /// Only the first N questions (0 = all).
        #[arg(long, default_value_t = 0)]
        limit: usize,
        /// Compare the answers to the gold results of the first N questions.
        #[arg(long, default_value_t = 12)]
        answers: usize,
        /// Write the whole report (every question's SQL) as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Compares two runs: both summaries and the queries one got right and the other not.
    Compare { first: PathBuf, second: PathBuf },
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::BenchOps {
            data,
            movies_rows,
            beer_rows,
            concurrency,
            llm_base_url,
            llm_model,
            llm_api_key,
            prefill_us,
            decode_us,
            slots,
            cache_blocks,
            lotus_python,
            chunked,
            json,
        } => {
            let cost_model = tag_bench::cost_server::CostModel {
                prefill_us_per_token: prefill_us,
                decode_us_per_token: decode_us,
                slots,
                capacity_blocks: cache_blocks,
                ..Default::default()
            };
            let options = tag_bench::ops::Options {
                data: &data,
                movies_rows,
                beer_rows,
                concurrency,
                llm_base_url,
                llm_model,
                llm_api_key,
                cost_model,
                lotus_python,
                collect_inputs: !chunked,
            };
            let report = tag_bench::ops::run(options).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.table());
            }
        }
        Command::Warehouse { budget, json } => {
            let repo = std::env::current_dir()?;
            let report = tag_bench::warehouse::run(&repo, budget).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                tag_bench::warehouse::print(&report);
            }
        }
        Command::Wire { rows, rounds, json } => {
            let report = tag_bench::wire::run(rows, rounds).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.table());
            }
        }
        Command::Auth { concurrency, rounds, seconds, json } => {
            let report = tag_bench::auth::run(concurrency, rounds, seconds).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.table());
            }
        }
        Command::Estimate { data, beer_rows, json } => {
            let report = tag_bench::estimate::run(&data, beer_rows).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.table());
            }
        }
        Command::Reorder { csv, merge, json, out, max_depth, min_hit_count, min_rows, no_fixed_order } => {
            let mut options = tag_server::reorder::GgrOptions::default();
            options.max_depth = max_depth.unwrap_or(options.max_depth);
            options.min_hit_count = min_hit_count.unwrap_or(options.min_hit_count);
            options.min_rows = min_rows.unwrap_or(options.min_rows);
            options.fixed_order = !no_fixed_order;
            let report = tag_bench::reorder::run(&csv, &merge, out.as_deref(), options)?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", report.table());
            }
        }
        Command::Embedded { csv, rows, model, threads, batch_size, json } => {
            let report = tag_bench::embedded::run(&csv, rows, model, threads, batch_size).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.table());
            }
        }
        Command::Quality { questions, steps, limit, answers, json } => {
            let steps = if steps.is_empty() { tag_bench::quality::Step::ALL.to_vec() } else { steps };
            let options = tag_bench::quality::Options { questions: &questions, steps, limit, answer_questions: answers };
            let report = tag_bench::quality::run(options).await?;
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
            }
            print!("{}", report.table());
        }
        Command::Fetch { db_dir, queries, bird_dir, schemas } => {
            let schemas = schemas.is_dir().then_some(schemas);
            tag_bench::tagbench::fetch(&db_dir, queries.as_deref(), bird_dir.as_deref(), schemas.as_deref()).await?;
        }
        Command::Fixtures { schemas, db_dir, rows } => tag_bench::tagbench::fixtures(&schemas, &db_dir, rows)?,
        Command::Run {
            queries,
            db_dir,
            out,
            method,
            only,
            parallel,
            fresh,
            plans,
            rag_rows_per_table,
            rag_top_k,
            embedding_model,
        } => {
            use tag_bench::tagbench::{self, methods::Method};
            let plans_text = match plans {
                Some(path) => std::fs::read_to_string(&path)?,
                None => tagbench::PLANS.to_string(),
            };
            let methods = if method.is_empty() {
                vec![Method::Handwritten, Method::Tag, Method::Text2sql, Method::Text2sqlLm, Method::Rag, Method::RetrievalRank]
            } else {
                method
            };
            let config_file = std::env::var_os("TAG_CONFIG").map(PathBuf::from);
            let options = tagbench::RunOptions {
                config: tag_server::Config::load(config_file.as_deref())?,
                queries,
                db_dir,
                out: out.clone(),
                methods,
                only,
                parallel,
                fresh,
                plans: tagbench::parse_plans(&plans_text)?,
                rag: tagbench::methods::RagSettings {
                    max_rows_per_table: rag_rows_per_table,
                    top_k: rag_top_k,
                    rerank_candidates: rag_top_k * 3,
                    embedding_model,
                },
            };
            let runs = tagbench::run(options).await?;
            let table = tagbench::report::markdown(&runs);
            std::fs::write(out.join("report.md"), &table)?;
            print!("{table}");
        }
        Command::Report { runs } => {
            let runs = runs.iter().map(|p| tag_bench::tagbench::report::read_run(p)).collect::<anyhow::Result<Vec<_>>>()?;
            print!("{}", tag_bench::tagbench::report::markdown(&runs));
        }
        Command::Compare { first, second } => {
            let (a, b) = (tag_bench::tagbench::report::read_run(&first)?, tag_bench::tagbench::report::read_run(&second)?);
            print!("{}", tag_bench::tagbench::report::compare(&a, &b));
        }
    }
    Ok(())
}
