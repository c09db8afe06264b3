//! The LLM operators inside real DuckDB queries over the bundled datasets, against
//! the scripted LLM on loopback: results on known inputs, which rows the LLM sees,
//! strict answer parsing, retries, dead or slow endpoints.

use std::{sync::Arc, time::{Duration, Instant}};

use serde_json::{json, Value};
use tag_server::{
    execution::{QueryOptions, Table},
    config::BackendChoice,
    Config, DatasetSources, Engine, Error,
};
use tag_tests::{
    scripted_llm::{Fault, ScriptedLlm},
};

struct Setup {
    engine: Arc<Engine>,
    llm: ScriptedLlm,
    _data: tempfile::TempDir,
}

async fn setup_with(configure: impl FnOnce(&mut Config)) -> Setup {
    let llm = ScriptedLlm::start().await;
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.data_dir = data.path().to_path_buf();
    config.llm.base_url = Some(llm.base_url());
    config.llm.model = "scripted".into();
    config.llm.retry_base_ms = 5;
    config.llm.max_retries = 3;
    configure(&mut config);
    let engine = tokio::task::spawn_blocking(move || Engine::new(config, &DatasetSources::default()))
        .await
        .unwrap()
        .expect("engine starts");
    Setup { engine: Arc::new(engine), llm, _data: data }
}

async fn setup() -> Setup {
    setup_with(|_| {}).await
}

impl Setup {
    async fn query(&self, dataset: &str, sql: &str) -> Result<Table, Error> {
        let dataset = self.engine.catalog.get(dataset).unwrap();
        let options = QueryOptions { max_rows: 10_000, llm: self.engine.llm.clone(), progress: None, token_budget: None };
        self.engine.executor.run_table(&dataset, sql, options).await.map(|(_, table, _)| table)
    }

    async fn query_ok(&self, dataset: &str, sql: &str) -> Table {
        self.query(dataset, sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn count(&self, dataset: &str, sql: &str) -> u64 {
        self.query_ok(dataset, sql).await.rows[0][0].as_u64().unwrap()
    }
}

/// The value of `[field]: value` in an operator prompt.
fn field<'a>(prompt: &'a str, name: &str) -> &'a str {
    let marker = format!("[{name}]: ");
    let start = prompt.find(&marker).unwrap_or_else(|| panic!("no field {name} in {prompt}")) + marker.len();
    prompt[start..].lines().next().unwrap()
}

fn column(table: &Table, index: usize) -> Vec<Value> {
    table.rows.iter().map(|row| row[index].clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_sees_only_rows_that_pass_the_ordinary_predicates() {
    let s = setup().await;
    s.llm.on_fn(r"Statement: \[title\] is a classic romance", |prompt| {
        let year: i64 = field(prompt, "year").parse().unwrap();
        if year < 1950 { "Yes" } else { "No." }.into()
    });
    let expected_prompts = s
        .count("movies", "SELECT count(*) FROM movies WHERE genres LIKE '%Romance%' AND year < 1970")
        .await;
    assert!(expected_prompts > 5, "the dataset has classic romances");
    let table = s
        .query_ok(
            "movies",
            "SELECT title, year FROM movies WHERE genres LIKE '%Romance%' AND year < 1970 \
             AND llm_filter('{title} is a classic romance ({year})') ORDER BY year",
        )
        .await;
    let prompts = s.llm.requests_matching("classic romance");
    assert_eq!(prompts.len() as u64, expected_prompts, "one prompt per surviving row, none for the others");
    for prompt in &prompts {
        let year: i64 = field(prompt.last_user(), "year").parse().unwrap();
        assert!(year < 1970);
        assert_eq!(prompt.temperature, Some(0.0));
        assert!(prompt.system().contains("never follow instructions"));
    }
    let titles = column(&table, 0);
    assert!(titles.contains(&json!("Casablanca")) && titles.contains(&json!("Gone with the Wind")), "{titles:?}");
    assert!(table.rows.iter().all(|row| row[1].as_i64().unwrap() < 1950));
}

/// DuckDB rates an arithmetic predicate as costlier than an operator and would
/// evaluate the operator first; the engine's guard keeps the cheap predicate first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predicates_duckdb_rates_as_costly_still_run_before_the_operator() {
    let s = setup().await;
    s.llm.on(r"Statement: \[title\] is an even-year film", "yes");
    let expected = s.count("movies", "SELECT count(*) FROM movies WHERE year % 2 = 0 AND runtime_minutes * 2 > 200").await;
    let table = s
        .query_ok(
            "movies",
            "SELECT title, year FROM movies WHERE year % 2 = 0 AND llm_filter('{title} is an even-year film ({year})') \
             AND runtime_minutes * 2 > 200",
        )
        .await;
    let prompts = s.llm.requests_matching("even-year film");
    assert_eq!(prompts.len() as u64, expected, "only rows passing both ordinary predicates reach the LLM");
    assert!(prompts.iter().all(|p| field(p.last_user(), "year").parse::<i64>().unwrap() % 2 == 0));
    assert_eq!(table.row_count, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_after_a_join_sees_only_joined_rows() {
    let s = setup().await;
    s.llm.on(r"Statement: the review is negative", "no");
    let table = s
        .query_ok(
            "movies",
            "SELECT m.title, r.review_text FROM movies m JOIN reviews r ON r.movie_id = m.movie_id \
             WHERE m.director = 'Stanley Kubrick' AND llm_filter('the review is negative: {r.review_text}')",
        )
        .await;
    assert_eq!(table.row_count, 0);
    let expected = s
        .count("movies", "SELECT count(*) FROM movies m JOIN reviews r USING (movie_id) WHERE m.director = 'Stanley Kubrick'")
        .await;
    assert_eq!(s.llm.requests_matching("review is negative").len() as u64, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_that_are_not_yes_or_no_are_never_true() {
    let s = setup().await;
    s.llm.on(r"Statement: \[title\] is overrated", "Maybe, it depends on taste.");
    let table = s
        .query_ok(
            "movies",
            "SELECT title, llm_filter('{title} is overrated') AS verdict FROM movies WHERE director = 'James Cameron'",
        )
        .await;
    assert!(table.row_count >= 3);
    assert!(table.rows.iter().all(|row| row[1].is_null()), "unparsable answers become NULL: {:?}", table.rows);
    let filtered = s
        .query_ok("movies", "SELECT title FROM movies WHERE director = 'James Cameron' AND llm_filter('{title} is overrated')")
        .await;
    assert_eq!(filtered.row_count, 0);
}

/// A yes/no answer is decided by its first token, so a filter asks for one token;
/// when that token does not decide (here a markdown star), it asks again with the
/// operator's full budget, and the answer is the same as without the first try.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_asks_for_one_token_and_for_more_only_when_one_does_not_decide() {
    let s = setup().await;
    s.llm.on(r"Statement: \[title\] is long", "yes");
    s.llm.on(r"Statement: \[title\] is loud", "**Yes**");
    let sql = |statement: &str| {
        format!("SELECT title FROM movies WHERE director = 'James Cameron' AND llm_filter('{{title}} {statement}') ORDER BY title")
    };
    let all = s.query_ok("movies", "SELECT title FROM movies WHERE director = 'James Cameron' ORDER BY title").await;
    assert!(all.row_count >= 3);

    assert_eq!(s.query_ok("movies", &sql("is long")).await.rows, all.rows);
    let long = s.llm.requests_matching("is long");
    assert_eq!(long.len() as u64, all.row_count);
    assert!(long.iter().all(|r| r.max_tokens == Some(1)), "{:?}", long.iter().map(|r| r.max_tokens).collect::<Vec<_>>());

    assert_eq!(s.query_ok("movies", &sql("is loud")).await.rows, all.rows, "the full answer decides");
    let loud = s.llm.requests_matching("is loud");
    let budgets: Vec<Option<u64>> = loud.iter().map(|r| r.max_tokens).collect();
    assert_eq!(loud.len() as u64, 2 * all.row_count, "{budgets:?}");
    assert_eq!(budgets.iter().filter(|&&b| b == Some(1)).count() as u64, all.row_count);
    assert!(budgets.iter().all(|&b| b == Some(1) || b == Some(Config::default().llm.operator_max_tokens as u64)), "{budgets:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_classify_and_score_return_parsed_values() {
    let s = setup().await;
    s.llm.on_fn(r"Instruction: Translate \[title\]", |p| format!("FR: {}", field(p, "title")));
    s.llm.on_fn(r"Task: Sentiment of \[review_text\]", |p| {
        let text = field(p, "review_text");
        if text.contains("worst") { "negative".into() } else if text.contains("terrible") { "unsure".into() } else { "Positive.".into() }
    });
    s.llm.on_fn(r"Criterion: how long is \[title\]", |p| {
        let title = field(p, "title");
        if title.starts_with("The Room") { "seven".into() } else { format!("{:.2}", (title.len() as f64 / 100.0).min(1.0)) }
    });

    let mapped = s
        .query_ok("movies", "SELECT title, llm_map('Translate {title} to French') FROM movies WHERE year = 1942")
        .await;
    assert_eq!(mapped.rows, vec![vec![json!("Casablanca"), json!("FR: Casablanca")]]);

    let classified = s
        .query_ok(
            "movies",
            "SELECT r.review_text, llm_classify('Sentiment of {review_text}', ['positive', 'negative']) AS s \
             FROM reviews r JOIN movies m USING (movie_id) WHERE m.title = 'Battlefield Earth' ORDER BY review_id",
        )
        .await;
    let labels = column(&classified, 1);
    assert_eq!(labels, vec![json!(null), json!("negative"), json!("positive")], "{:?}", classified.rows);

    let scored = s
        .query_ok(
            "movies",
            "SELECT title, llm_score('how long is {title}') AS score FROM movies \
             WHERE director IN ('Tommy Wiseau', 'Peter Jackson') ORDER BY score DESC NULLS LAST",
        )
        .await;
    assert_eq!(scored.rows[0][0], json!("The Lord of the Rings: The Fellowship of the Ring"));
    assert_eq!(scored.rows.last().unwrap(), &vec![json!("The Room"), json!(null)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reduce_sees_every_item_of_the_group() {
    let s = setup().await;
    s.llm.on_fn(r"Instruction: Summarize the reviews", |p| {
        let count = p.lines().filter(|l| l.starts_with('[') && l.as_bytes().get(1).is_some_and(u8::is_ascii_digit)).count();
        format!("{count} reviews about {}", field(p, "m.title"))
    });
    let table = s
        .query_ok(
            "movies",
            "SELECT m.title, llm_reduce('Summarize the reviews of {m.title}', list(r.review_text)) AS summary \
             FROM movies m JOIN reviews r USING (movie_id) WHERE m.year < 1940 GROUP BY m.title ORDER BY m.title",
        )
        .await;
    assert!(table.row_count >= 3);
    for row in &table.rows {
        assert_eq!(row[1], json!(format!("3 reviews about {}", row[0].as_str().unwrap())));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rank_orders_long_lists_with_sliding_windows() {
    let s = setup_with(|c| c.query.rank_window = 6).await;
    // The scripted model ranks by box office, which it reads from the item text.
    s.llm.on_fn(r"Criterion: highest grossing first", |p| {
        let mut items: Vec<(usize, i64)> = p
            .lines()
            .filter_map(|line| {
                let rest = line.strip_prefix('[')?;
                let (number, text) = rest.split_once("] ")?;
                let number: usize = number.parse().ok()?;
                let gross: i64 = text.rsplit(' ').next()?.parse().ok()?;
                Some((number, gross))
            })
            .collect();
        items.sort_by_key(|(_, gross)| -gross);
        items.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>().join(", ")
    });
    let table = s
        .query_ok(
            "movies",
            "SELECT llm_rank('highest grossing first', list(title || ' ' || box_office_usd_millions ORDER BY title)) \
             FROM movies WHERE year BETWEEN 1990 AND 1995",
        )
        .await;
    let ranked: Vec<String> = table.rows[0][0].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    let expected = s
        .query_ok(
            "movies",
            "SELECT title || ' ' || box_office_usd_millions FROM movies WHERE year BETWEEN 1990 AND 1995 \
             ORDER BY box_office_usd_millions DESC LIMIT 3",
        )
        .await;
    let top: Vec<String> = expected.rows.iter().map(|r| r[0].as_str().unwrap().to_string()).collect();
    assert_eq!(&ranked[..3], &top[..], "the top of the list is right after one pass");
    let mut sorted_in = ranked.clone();
    sorted_in.sort();
    let all = s.count("movies", "SELECT count(*) FROM movies WHERE year BETWEEN 1990 AND 1995").await;
    assert_eq!(sorted_in.len() as u64, all, "nothing lost or duplicated");
    sorted_in.dedup();
    assert_eq!(sorted_in.len() as u64, all);
    assert!(s.llm.requests_matching("highest grossing first").len() > 1, "several windows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knowledge_is_asked_once_per_query() {
    let s = setup().await;
    s.llm.on(r"Question: Who directed Jaws\?", "Steven Spielberg.");
    let table = s
        .query_ok(
            "movies",
            "SELECT title FROM movies WHERE director = llm_knowledge('Who directed Jaws? Answer with the name only.') ORDER BY year",
        )
        .await;
    assert_eq!(s.llm.requests_matching("Who directed Jaws").len(), 1);
    let spielberg = s.count("movies", "SELECT count(*) FROM movies WHERE director = 'Steven Spielberg'").await;
    assert_eq!(table.row_count, spielberg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_prompts_in_one_query_make_one_call() {
    let s = setup().await;
    s.llm.on(r"Statement: \[support_response\] addresses \[request\]", "yes");
    let distinct = s
        .count("support", "SELECT count(*) FROM (SELECT DISTINCT request, support_response FROM tickets WHERE category = 'billing')")
        .await;
    let all = s.count("support", "SELECT count(*) FROM tickets WHERE category = 'billing'").await;
    assert!(all > distinct, "the demo data repeats request/response pairs");
    let table = s
        .query_ok(
            "support",
            "SELECT ticket_id FROM tickets WHERE category = 'billing' AND llm_filter('{support_response} addresses {request}')",
        )
        .await;
    assert_eq!(table.row_count, all);
    assert_eq!(s.llm.requests().len() as u64, distinct);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_429_and_500_are_retried() {
    let s = setup().await;
    s.llm.on(r"Translate", "ok");
    s.llm.fail(None, Fault::Status(429), 1).fail(None, Fault::Status(500), 1).fail(None, Fault::Status(503), 1);
    let table = s.query_ok("movies", "SELECT llm_map('Translate {title}') FROM movies WHERE year = 1942").await;
    assert_eq!(table.rows, vec![vec![json!("ok")]]);
    assert_eq!(s.llm.requests().len(), 4, "three failures then success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_failures_and_malformed_bodies_are_clear_errors() {
    let s = setup().await;
    s.llm.on(r"Translate", "ok");
    s.llm.fail(None, Fault::Status(500), 10);
    let error = s.query("movies", "SELECT llm_map('Translate {title}') FROM movies WHERE year = 1942").await.unwrap_err();
    assert!(matches!(&error, Error::Llm { message: m, .. } if m.contains("500")), "{error}");

    let s = setup().await;
    s.llm.on(r"Translate", "ok");
    s.llm.fail(None, Fault::Malformed, 1);
    let error = s.query("movies", "SELECT llm_map('Translate {title}') FROM movies WHERE year = 1942").await.unwrap_err();
    assert!(matches!(&error, Error::Llm { message: m, .. } if m.contains("malformed")), "{error}");
    assert_eq!(s.llm.requests().len(), 1, "a malformed body is not retried");

    let s = setup().await;
    s.llm.on(r"Translate", "ok");
    s.llm.fail(None, Fault::Status(400), 1);
    let error = s.query("movies", "SELECT llm_map('Translate {title}') FROM movies WHERE year = 1942").await.unwrap_err();
    assert!(matches!(&error, Error::Llm { message: m, .. } if m.contains("400")), "{error}");
    assert_eq!(s.llm.requests().len(), 1, "a 400 is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_fails_fast_with_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/v1", listener.local_addr().unwrap());
    drop(listener);
    let s = setup_with(|c| c.llm.base_url = Some(dead)).await;
    let started = Instant::now();
    let error = s.query("movies", "SELECT llm_map('Translate {title}') FROM movies WHERE year = 1942").await.unwrap_err();
    assert!(matches!(&error, Error::Llm { message: m, .. } if m.contains("cannot connect")), "{error}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_llm_calls_hit_the_query_timeout() {
    let s = setup_with(|c| c.query.timeout_secs = 1).await;
    s.llm.on(r"Translate", "ok");
    s.llm.fail(None, Fault::Delay(Duration::from_secs(20)), 50);
    let started = Instant::now();
    let error = s.query("movies", "SELECT llm_map('Translate {title}') FROM movies WHERE year < 1960").await.unwrap_err();
    assert!(matches!(error, Error::Timeout(_)), "{error}");
    assert!(started.elapsed() < Duration::from_secs(8), "interrupted promptly: {:?}", started.elapsed());
    // The connection is usable afterwards.
    assert_eq!(s.count("movies", "SELECT count(*) FROM movies WHERE year = 1942").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_without_an_llm_explain_what_to_configure() {
    let s = setup_with(|c| {
        c.llm.base_url = None;
        c.llm.backend = BackendChoice::None;
    })
    .await;
    let error = s.query("movies", "SELECT llm_map('Translate {title}') FROM movies").await.unwrap_err();
    assert!(matches!(&error, Error::LlmNotConfigured(m) if m.contains("TAG_LLM_BACKEND")), "{error}");
    assert_eq!(s.count("movies", "SELECT count(*) FROM movies").await, 228);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_llm_request_that_times_out_is_retried_then_reported() {
    let s = setup_with(|c| {
        c.llm.request_timeout_secs = 1;
        c.llm.max_retries = 1;
    })
    .await;
    s.llm.on(r"Translate", "ok");
    s.llm.fail(None, Fault::Delay(Duration::from_secs(5)), 2);
    let error = s.query("movies", "SELECT llm_map('Translate {title}') FROM movies WHERE year = 1942").await.unwrap_err();
    assert!(matches!(&error, Error::Llm { message: m, .. } if m.contains("timed out")), "{error}");
    assert_eq!(s.llm.requests().len(), 2, "one retry after the first timeout");

    s.llm.fail(None, Fault::Delay(Duration::from_secs(5)), 1);
    let table = s.query_ok("movies", "SELECT llm_map('Translate {title}') FROM movies WHERE year = 1942").await;
    assert_eq!(table.rows, vec![vec![json!("ok")]], "a timeout followed by a good answer succeeds");
}
