//! How operator calls reach the LLM: top-k before the select list, the persistent
//! response cache across restarts, the prefix-sharing (GGR) order of the prompts
//! and their field layout, and the accounting in the query statistics.

use std::sync::Arc;

use serde_json::json;
use tag_server::{
    execution::{ExecutionStats, QueryOptions, Table},
    reorder::prefix_hit_rate,
    Config, DatasetSources, Engine,
};
use tag_tests::scripted_llm::ScriptedLlm;

async fn engine(llm: &ScriptedLlm, data_dir: &std::path::Path, configure: impl FnOnce(&mut Config)) -> Arc<Engine> {
    engine_over(llm, data_dir, DatasetSources::default(), configure).await
}

/// The engine with `sources` added to the datasets the configuration loads.
async fn engine_over(
    llm: &ScriptedLlm,
    data_dir: &std::path::Path,
    sources: DatasetSources,
    configure: impl FnOnce(&mut Config),
) -> Arc<Engine> {
    let mut config = Config::default();
    config.data_dir = data_dir.to_path_buf();
    config.llm.base_url = Some(llm.base_url());
    config.llm.model = "scripted".into();
    config.llm.retry_base_ms = 5;
    configure(&mut config);
    let engine = tokio::task::spawn_blocking(move || Engine::new(config, &sources))
        .await
        .unwrap()
        .expect("engine starts");
    Arc::new(engine)
}

/// The review comes first in the template, the movie (shared by its reviews) after.
const REVIEW_FILTER: &str = "SELECT r.review_id FROM reviews r JOIN movies m USING (movie_id) \
    WHERE llm_filter('the review {r.review_text} praises {m.title} by {m.director}')";

async fn run(engine: &Engine, sql: &str) -> (Table, ExecutionStats) {
    let dataset = engine.catalog.get("movies").unwrap();
    let options = QueryOptions { max_rows: 10_000, llm: engine.llm.clone(), progress: None, token_budget: None };
    let (_, table, stats) = engine.executor.run_table(&dataset, sql, options).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    (table, stats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_k_rows_are_chosen_before_the_select_list_calls_the_llm() {
    let llm = ScriptedLlm::start().await;
    llm.on(r"Instruction: Write a tagline for \[title\]", "A tagline.");
    let data = tempfile::tempdir().unwrap();
    let engine = engine(&llm, data.path(), |_| {}).await;
    let (table, stats) = run(
        &engine,
        "SELECT title, llm_map('Write a tagline for {title}') AS tagline FROM movies \
         ORDER BY box_office_usd_millions DESC, title LIMIT 3 OFFSET 1",
    )
    .await;
    assert_eq!(llm.requests_matching("Write a tagline").len(), 4, "limit + offset rows reach the LLM, not 228");
    assert_eq!(stats.operator_rows, 4);
    let (expected, _) = run(&engine, "SELECT title FROM movies ORDER BY box_office_usd_millions DESC, title LIMIT 3 OFFSET 1").await;
    let titles: Vec<_> = table.rows.iter().map(|r| r[0].clone()).collect();
    let expected: Vec<_> = expected.rows.iter().map(|r| r[0].clone()).collect();
    assert_eq!(titles, expected);
    assert!(table.rows.iter().all(|r| r[1] == json!("A tagline.")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_reused_across_restarts_until_the_cache_is_cleared() {
    let llm = ScriptedLlm::start().await;
    llm.on_fn(r"Statement: \[title\] won an Oscar", |prompt| if prompt.contains("Titanic") { "yes" } else { "no" }.into());
    let data = tempfile::tempdir().unwrap();
    let sql = "SELECT title FROM movies WHERE director = 'James Cameron' AND llm_filter('{title} won an Oscar')";

    let first = engine(&llm, data.path(), |_| {}).await;
    let (table, stats) = run(&first, sql).await;
    assert_eq!(table.rows, vec![vec![json!("Titanic")]]);
    let calls = llm.requests_matching("won an Oscar").len();
    assert!(calls >= 3);
    assert_eq!((stats.llm_calls, stats.cache_hits), (calls as u64, 0));
    drop(first);

    // A restart on the same data folder: every answer comes from the cache.
    let second = engine(&llm, data.path(), |_| {}).await;
    let (table, stats) = run(&second, sql).await;
    assert_eq!(table.rows, vec![vec![json!("Titanic")]]);
    assert_eq!(llm.requests_matching("won an Oscar").len(), calls, "no new LLM calls");
    assert_eq!((stats.llm_calls, stats.cache_hits), (0, calls as u64));
    assert_eq!(stats.usage.prompt_tokens, 0, "cached answers cost no tokens");

    // Disabled: the LLM is asked again.
    let uncached = engine(&llm, data.path(), |c| c.cache.enabled = false).await;
    run(&uncached, sql).await;
    assert_eq!(llm.requests_matching("won an Oscar").len(), 2 * calls);

    // Cleared: asked again, then cached again.
    assert_eq!(second.cache.as_ref().unwrap().clear().unwrap(), calls as u64);
    let (_, stats) = run(&second, sql).await;
    assert_eq!(stats.llm_calls, calls as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_are_sent_in_a_prefix_sharing_order_with_shared_fields_first() {
    let llm = ScriptedLlm::start().await;
    llm.on(r"Statement: the review", "no");
    let data = tempfile::tempdir().unwrap();
    let engine = engine(&llm, data.path(), |c| c.llm.concurrency = 1).await;
    let (_, stats) = run(&engine, REVIEW_FILTER).await;
    let prompts: Vec<String> = llm.requests_matching("the review").iter().map(|r| r.last_user().to_string()).collect();
    assert_eq!(prompts.len(), 684);
    // Shared fields (the director, shared by a director's films, and the title,
    // shared by a film's reviews) lead each data block; the review comes last ...
    for prompt in &prompts {
        let data = &prompt[prompt.find("<data>").unwrap()..];
        let review = data.find("[r.review_text]").unwrap();
        assert!(data.find("[m.title]").unwrap() < review && data.find("[m.director]").unwrap() < review, "{prompt}");
    }
    // ... and the reviews of one movie are sent one after another (GGR's early
    // stopping leaves a few movies in two runs).
    let titles: Vec<&str> = prompts.iter().map(|p| p.split("[m.title]: ").nth(1).unwrap().lines().next().unwrap()).collect();
    let changes = titles.windows(2).filter(|w| w[0] != w[1]).count();
    let movies: std::collections::HashSet<_> = titles.iter().collect();
    assert!(changes + 1 <= movies.len() + movies.len() / 10, "{} runs for {} movies", changes + 1, movies.len());
    // The recorded prefix hit rate is that of the prompts as sent, and beats the
    // table order with the template's field order.
    let sent: Vec<Vec<String>> = prompts.iter().map(|p| vec![p.clone()]).collect();
    assert!(stats.prefix_hit_rate > 40.0, "{}", stats.prefix_hit_rate);
    let naive: Vec<Vec<String>> = {
        let (table, _) = run(
            &engine,
            "SELECT r.review_text, m.title, m.director FROM reviews r JOIN movies m USING (movie_id) ORDER BY r.review_id",
        )
        .await;
        table
            .rows
            .iter()
            .map(|r| vec![format!("[r.review_text]: {}\n[m.title]: {}\n[m.director]: {}\n", r[0], r[1], r[2])])
            .collect()
    };
    assert!(prefix_hit_rate(&sent) > prefix_hit_rate(&naive) + 10.0);

    // With reordering off, rows go in table order with the template's field order.
    let llm = ScriptedLlm::start().await;
    llm.on(r"Statement: the review", "no");
    let plain = tempfile::tempdir().unwrap();
    let engine = self::engine(&llm, plain.path(), |c| {
        c.llm.concurrency = 1;
        c.query.reorder = false;
    })
    .await;
    let (_, stats) = run(&engine, REVIEW_FILTER).await;
    let prompts: Vec<String> = llm.requests_matching("the review").iter().map(|r| r.last_user().to_string()).collect();
    let data = |p: &String| p[p.find("<data>").unwrap()..].to_string();
    assert!(prompts.iter().map(data).all(|d| d.find("[r.review_text]").unwrap() < d.find("[m.title]").unwrap()));
    assert!(stats.prefix_hit_rate < prefix_hit_rate(&sent) - 10.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_account_for_rows_prompts_hits_tokens_and_time() {
    let llm = ScriptedLlm::start().await;
    llm.on(r"Statement: \[genres\] includes comedy", "yes");
    let data = tempfile::tempdir().unwrap();
    let engine = engine(&llm, data.path(), |_| {}).await;
    let (table, stats) = run(&engine, "SELECT title FROM movies WHERE year < 1960 AND llm_filter('{genres} includes comedy')").await;
    let (rows, _) = run(&engine, "SELECT count(*), count(DISTINCT genres) FROM movies WHERE year < 1960").await;
    let (rows_in, distinct) = (rows.rows[0][0].as_u64().unwrap(), rows.rows[0][1].as_u64().unwrap());
    assert_eq!(table.row_count, rows_in);
    assert_eq!(stats.operator_rows, rows_in);
    assert_eq!(stats.distinct_prompts, distinct);
    assert_eq!(stats.memo_hits, rows_in - distinct, "identical prompts are asked once");
    assert_eq!(stats.llm_calls, distinct);
    assert!(stats.usage.prompt_tokens > 0 && stats.usage.completion_tokens > 0);
    assert!(stats.prefix_hit_rate > 0.0);
    assert!(stats.llm_wall_ms <= stats.elapsed_ms);
    let op = &stats.operators[0];
    assert_eq!((op.operator.as_str(), op.rows, op.cache_hits), ("llm_filter", rows_in, 0));
}

/// 3,000 items in 30 categories, interleaved (item i is in category i % 30), so
/// DuckDB hands an operator over them in two chunks that both hold every category.
fn interleaved_items(dir: &std::path::Path) -> std::path::PathBuf {
    let dataset = dir.join("items");
    std::fs::create_dir_all(&dataset).unwrap();
    let mut csv = String::from("id,category,name\n");
    for i in 0..3000 {
        csv.push_str(&format!("{i},category {:02},item {i}\n", i % 30));
    }
    std::fs::write(dataset.join("items.csv"), csv).unwrap();
    dataset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_input_beyond_one_chunk_is_deduplicated_and_ordered_at_once() {
    let data = tempfile::tempdir().unwrap();
    let dataset = interleaved_items(data.path());
    let sql = "SELECT id FROM items WHERE id % 3 = 0 AND llm_filter('{category} fits {name}') ORDER BY id";
    let mut outcomes = Vec::new();
    for collect in [true, false] {
        let llm = ScriptedLlm::start().await;
        llm.on(r"(?s)Statement: .*item \d*7\b", "no");
        llm.on(r"Statement: \[category\] fits \[name\]", "yes");
        let state = tempfile::tempdir().unwrap();
        let sources = DatasetSources { paths: vec![dataset.clone()], ..Default::default() };
        let engine = engine_over(&llm, state.path(), sources, |c| {
            c.bundled_datasets = false;
            c.llm.concurrency = 1;
            c.query.collect_inputs = collect;
        })
        .await;
        let options = QueryOptions { max_rows: 10_000, llm: engine.llm.clone(), progress: None, token_budget: None };
        let (_, table, stats) = engine.executor.run_table(&engine.catalog.get("items").unwrap(), sql, options).await.unwrap();
        let prompts: Vec<String> = llm.requests_matching("fits").iter().map(|r| r.last_user().to_string()).collect();
        let categories: Vec<String> = prompts.iter().map(|p| p.split("[category]: ").nth(1).unwrap().lines().next().unwrap().to_string()).collect();
        let runs = categories.windows(2).filter(|w| w[0] != w[1]).count() + 1;
        outcomes.push((table.rows, stats, prompts.len(), runs));
    }
    let (collected, chunked) = (&outcomes[0], &outcomes[1]);
    // Only ids divisible by 3 reach the filter (the guard makes DuckDB keep that
    // order): 1,000 rows, each a distinct input, in 10 categories.
    assert_eq!(collected.1.operator_rows, 1000);
    assert_eq!(collected.2, 1000, "every input is asked once");
    eprintln!("runs of one category: {} whole input, {} chunk by chunk", collected.3, chunked.3);
    // Ten categories: ordered at once they come in few runs (GGR's early stopping
    // splits a few); chunk by chunk every chunk brings every category back.
    assert!(collected.3 <= 20, "the whole input was ordered at once ({} runs)", collected.3);
    assert!(chunked.3 > collected.3, "chunk by chunk, categories come back in every chunk ({} vs {} runs)", chunked.3, collected.3);
    assert!(collected.0.len() < 1000 && !collected.0.is_empty(), "the scripted answers keep some rows and drop others");
    // The same answers, rows and accounting either way.
    assert_eq!(collected.0, chunked.0);
    assert_eq!(chunked.2, 1000);
    let (a, b) = (&collected.1, &chunked.1);
    assert_eq!((a.operator_rows, a.distinct_prompts, a.memo_hits, a.llm_calls), (b.operator_rows, b.distinct_prompts, b.memo_hits, b.llm_calls));
    assert_eq!((a.distinct_prompts, a.memo_hits), (1000, 0));
    assert!(a.prefix_hit_rate > b.prefix_hit_rate, "{} vs {}", a.prefix_hit_rate, b.prefix_hit_rate);
}
