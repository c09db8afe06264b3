//! `tagbench warehouse`: database sources measured on a real PostgreSQL (the test
//! harness's: Debian's server in a temporary folder). Three figures:
//!
//! - **Schema linking** on the 300-table schema of `tests/sql/wide.sql`:
//!   for generated questions whose gold tables follow from the schema's names (one
//!   table, or two joined), the recall of the gold tables in the tables linked
//!   into the prompt, and the prompt's schema tokens, against the whole schema.
//! - **Pushdown** over a million-row table: the time and the rows the PostgreSQL
//!   scan hands DuckDB for a selective predicate, against the same predicate
//!   written so that it cannot be pushed down (`abs(id) > k`).
//! - **Start-up**: the time to attach and describe the 300-table warehouse.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context;
use serde::Serialize;
use tag_server::{
    config::{Config, SourceConfig, SourceKind},
    DatasetSources, Engine,
};
use tag_tests::postgres::Postgres;

const DOMAINS: &[&str] = &[
    "sales", "billing", "logistics", "inventory", "marketing", "support", "staffing", "treasury", "manufacturing", "procurement",
    "compliance", "research",
];
const ENTITIES: &[&str] = &[
    "accounts", "contracts", "invoices", "payments", "shipments", "carriers", "warehouses", "products", "suppliers", "employees",
    "departments", "projects", "campaigns", "tickets", "assets", "budgets", "audits", "licenses", "vehicles", "routes", "batches",
    "machines", "experiments", "patents", "incidents",
];

/// A question and the tables it needs.
struct Question {
    text: String,
    gold: Vec<String>,
}

/// One-table questions for every table and join questions for every foreign key.
fn questions() -> Vec<Question> {
    let mut out = Vec::new();
    for domain in DOMAINS {
        for (i, entity) in ENTITIES.iter().enumerate() {
            out.push(Question {
                text: format!("How many {domain} {entity} are on hold?"),
                gold: vec![format!("{domain}_{entity}")],
            });
            if i > 0 {
                let parent = ENTITIES[i - 1];
                out.push(Question {
                    text: format!("What is the total {entity} amount for each of the {domain} {parent}?"),
                    gold: vec![format!("{domain}_{entity}"), format!("{domain}_{parent}")],
                });
            }
        }
    }
    out
}

#[derive(Debug, Serialize)]
pub struct LinkingReport {
    pub questions: usize,
    pub budget_tokens: usize,
    pub whole_schema_tokens: usize,
    /// Mean share of the gold tables that were in the prompt (1 = all, always).
    pub mean_recall: f64,
    /// Questions with every gold table in the prompt.
    pub all_gold_shown: usize,
    pub mean_tables_shown: f64,
    pub mean_prompt_tokens: f64,
    pub max_prompt_tokens: usize,
}

#[derive(Debug, Serialize)]
pub struct PushdownRun {
    pub predicate: String,
    pub seconds: f64,
    /// Rows the PostgreSQL scan handed DuckDB (EXPLAIN ANALYZE's scan cardinality).
    pub rows_transferred: u64,
    pub result: i64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub startup_seconds: f64,
    pub tables: usize,
    pub linking: LinkingReport,
    pub pushdown: Vec<PushdownRun>,
}

fn source(url: String, sample_rows: usize) -> SourceConfig {
    let mut source = SourceConfig::new(SourceKind::Postgres, url);
    source.sample_rows = sample_rows;
    source
}

/// Runs the three measurements; `budget` is the schema-token budget of linking.
pub async fn run(repo: &Path, budget: usize) -> anyhow::Result<Report> {
    let pg = Postgres::start().context("PostgreSQL is not installed (apt-get install postgresql)")?;
    pg.psql("postgres", "CREATE DATABASE wide");
    let wide = repo.join("tests/sql/wide.sql");
    let status = std::process::Command::new("psql").args(pg.psql_args("wide")).args(["-X", "-q", "-f"]).arg(&wide).status()?;
    anyhow::ensure!(status.success(), "loading {} failed", wide.display());
    pg.psql("postgres", "CREATE DATABASE big");
    pg.psql(
        "big",
        "CREATE TABLE events AS SELECT g AS id, CASE WHEN g % 7 = 0 THEN 'urgent' ELSE 'routine' END AS kind, \
         'note ' || g AS note FROM generate_series(1, 1000000) g; ALTER TABLE events ADD PRIMARY KEY (id); ANALYZE;",
    );

    let data = tempfile::tempdir()?;
    let mut config = Config::default();
    config.data_dir = data.path().to_path_buf();
    config.bundled_datasets = false;
    config.llm.backend = tag_server::config::BackendChoice::None;
    config.sources.insert("wide".into(), source(pg.url("wide", "postgres"), 20));
    let started = Instant::now();
    let engine = tokio::task::block_in_place(|| Engine::new(config.clone(), &DatasetSources::default()))?;
    let startup_seconds = started.elapsed().as_secs_f64();
    let wide = engine.catalog.get("wide")?;

    let questions = questions();
    let mut recall_sum = 0.0;
    let (mut all_shown, mut tables_sum, mut tokens_sum, mut max_tokens, mut whole) = (0, 0, 0, 0, 0);
    for question in &questions {
        let linked = wide.linker.link(&question.text, budget);
        let found = question.gold.iter().filter(|g| linked.tables.contains(g)).count();
        recall_sum += found as f64 / question.gold.len() as f64;
        all_shown += usize::from(found == question.gold.len());
        tables_sum += linked.tables.len();
        tokens_sum += linked.tokens;
        max_tokens = max_tokens.max(linked.tokens);
        whole = wide.linker.link(&question.text, usize::MAX).tokens;
    }
    let n = questions.len() as f64;
    let linking = LinkingReport {
        questions: questions.len(),
        budget_tokens: budget,
        whole_schema_tokens: whole,
        mean_recall: recall_sum / n,
        all_gold_shown: all_shown,
        mean_tables_shown: tables_sum as f64 / n,
        mean_prompt_tokens: tokens_sum as f64 / n,
        max_prompt_tokens: max_tokens,
    };

    let mut config = config;
    config.sources.clear();
    config.sources.insert("big".into(), source(pg.url("big", "postgres"), 100));
    let engine = tokio::task::block_in_place(|| Engine::new(config, &DatasetSources::default()))?;
    let big = engine.catalog.get("big")?;
    let mut pushdown = Vec::new();
    // `abs(id)` keeps the same rows but is not a plain comparison, so DuckDB cannot
    // push it down (it does simplify `id + 0` and push that).
    for predicate in ["id > 999000", "abs(id) > 999000"] {
        let sql = format!("SELECT count(*) FROM events WHERE {predicate}");
        let conn = big.checkout()?;
        let started = Instant::now();
        let result: i64 = conn.query_row(&sql, [], |row| row.get(0))?;
        let seconds = started.elapsed().as_secs_f64();
        let plan: String = conn.query_row(&format!("EXPLAIN ANALYZE {sql}"), [], |row| row.get(1))?;
        big.checkin(conn);
        pushdown.push(PushdownRun { predicate: predicate.into(), seconds, rows_transferred: scan_rows(&plan), result });
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(Report { startup_seconds, tables: wide.info.tables.len(), linking, pushdown })
}

/// The row count EXPLAIN ANALYZE shows for the scan (the attached PostgreSQL
/// table's `TABLE_SCAN`): `1,000 rows`.
fn scan_rows(plan: &str) -> u64 {
    let lines: Vec<&str> = plan.lines().collect();
    let Some(scan) = lines.iter().position(|l| l.contains("TABLE_SCAN")) else { return 0 };
    lines[scan..]
        .iter()
        .find_map(|line| {
            let cell = line.trim_matches(|c: char| c == '│' || c.is_whitespace());
            let count = cell.strip_suffix(" rows").or_else(|| cell.strip_suffix(" row"))?;
            count.replace(',', "").parse().ok()
        })
        .unwrap_or(0)
}

pub fn print(report: &Report) {
    let l = &report.linking;
    println!("start-up: attached and described {} tables in {:.2} s", report.tables, report.startup_seconds);
    println!(
        "schema linking over {} questions, budget {} tokens (whole schema {} tokens):",
        l.questions, l.budget_tokens, l.whole_schema_tokens
    );
    println!(
        "  gold-table recall {:.3} ({} of {} questions with every gold table); {:.1} tables and {:.0} tokens per prompt on average, {} at most",
        l.mean_recall, l.all_gold_shown, l.questions, l.mean_tables_shown, l.mean_prompt_tokens, l.max_prompt_tokens
    );
    for run in &report.pushdown {
        println!(
            "pushdown: WHERE {:<18} {:.3} s, {} rows from PostgreSQL, count {}",
            run.predicate, run.seconds, run.rows_transferred, run.result
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_question_names_real_tables() {
        let questions = super::questions();
        assert_eq!(questions.len(), 12 * 25 + 12 * 24);
        assert!(questions.iter().all(|q| !q.gold.is_empty()));
        let plan = "│ TABLE_SCAN │\n│ Filters: id>999000 │\n│ │\n│ 1,000 rows │\n│ (0.00s) │";
        assert_eq!(super::scan_rows(plan), 1000);
    }
}
